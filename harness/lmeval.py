"""What a task file written by `harness import-lm-eval` imports to read a document as
lm-evaluation-harness does. A stable name for those files; the harness itself imports these from
harness.taskkit.lmeval_docs."""

from harness.taskkit.lmeval_docs import apply_template, doc_choices, doc_target, sample_from_doc

__all__ = ["apply_template", "doc_choices", "doc_target", "sample_from_doc"]
