"""What a task file imports to build its samples: `Sample` (and the other shared records). A stable
name for researchers' task files; the harness itself imports these from harness.core.types."""

from harness.core.types import Completion, Decoding, Message, Request, Sample

__all__ = ["Completion", "Decoding", "Message", "Request", "Sample"]
