"""What a task file imports to define its task: `Task`, `Fixtures`, `HubSource`, `AnswerRule` and
`stable_id`. A stable name for researchers' task files (one file per task, nothing else to edit);
the harness itself imports these from harness.taskkit.registry."""

from harness.taskkit.registry import KINDS, AnswerRule, Fixtures, HubSource, Task, get_task, stable_id

__all__ = ["KINDS", "AnswerRule", "Fixtures", "HubSource", "Task", "get_task", "stable_id"]
