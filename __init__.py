"""VideoPrune for ComfyUI: training-free visual-token pruning for Video LLMs, as nodes.

ComfyUI imports this file (under a name of its own choosing) and reads the three names below.
It must import without ComfyUI and without CUDA, and must never shadow ComfyUI's own top-level
``nodes`` module: the pack's ``nodes`` package is only ever imported relatively.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    # appended, not prepended: ComfyUI's own modules (its `nodes`) keep winning name lookups,
    # while our library `pruning_core` becomes importable
    sys.path.append(_HERE)

from .nodes.pack import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
