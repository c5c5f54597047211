"""VideoPrune core: training-free visual-token pruning for Video LLMs.

Imports nothing heavy at package import; see ``pruning_core.engine`` and ``pruning_core.loader``.
"""

__version__ = "0.1.0"
