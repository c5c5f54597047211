"""Doc functions of ``videoprune_synthetic`` (lmms-eval imports this file through the YAML's !function).

Importing it writes the task's local files when they are missing (deterministic, offline, seconds),
so the dataset exists before lmms-eval's loader reads ``data/test.jsonl``.
"""
from videoprune_eval.synthetic_task import (doc_to_target, doc_to_text, doc_to_visual,  # noqa: F401
                                            ensure_exported, process_results)

ensure_exported()
