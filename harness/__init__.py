"""Does fine-tuning pay off for a task, or is a better prompt enough?"""

__version__ = "0.1.0"
