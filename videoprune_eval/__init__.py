"""VideoPrune inside lmms-eval: the model type ``videoprune`` and the offline task ``videoprune_synthetic``.

Imports nothing heavy at package import. ``args``, ``cache``, ``figures``, ``runner`` and
``synthetic_task`` need only pruning_core; ``lmms_model`` and ``manifest`` need lmms-eval
(``python install.py --standalone --eval``). ``python -m videoprune_eval --help`` sets up the task.
"""
