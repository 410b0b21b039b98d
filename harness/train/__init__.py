"""LoRA recipe: flat config, examples from the task's templates, training, adapter manifest."""
