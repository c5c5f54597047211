"""VideoPrune for ComfyUI: training-free visual-token pruning for Video LLMs, as nodes.

ComfyUI imports this file (under a name of its own choosing) and reads the three names below.
It must import without ComfyUI and without CUDA, and must never shadow ComfyUI's own top-level
``nodes`` module: the pack's ``nodes`` package is only ever imported relatively, or, when this
file is imported as a plain module, under a private name.
"""
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    # appended, not prepended: ComfyUI's own modules (its `nodes`) keep winning name lookups,
    # while our library `pruning_core` becomes importable
    sys.path.append(_HERE)


def _load_pack_without_parent():
    """The pack's ``nodes.pack`` when this file has no parent package.

    pytest imports a rootdir ``__init__.py`` as a package-less module when the checkout's folder
    is not a Python identifier (``ComfyUI-VideoPrune``), so a relative import cannot work there.
    The pack's ``nodes`` package is then loaded under a private name, never as top-level ``nodes``.
    """
    name = "_videoprune_pack_nodes"
    if name + ".pack" in sys.modules:
        return sys.modules[name + ".pack"]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(_HERE, "nodes", "__init__.py"),
        submodule_search_locations=[os.path.join(_HERE, "nodes")])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(name + ".pack")


if __package__ and __package__ in sys.modules:
    from .nodes.pack import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
else:
    _pack = _load_pack_without_parent()
    NODE_CLASS_MAPPINGS = _pack.NODE_CLASS_MAPPINGS
    NODE_DISPLAY_NAME_MAPPINGS = _pack.NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
