"""Errors a user can act on. Every message is one clear line; the CLI prints it without a traceback.

A message that tells the user to change a setting names it the way the caller shows it: a CLI flag
(``--device cpu``) by default, a node's widget (``the 'device' widget of Load Video LLM``) inside
``naming_widgets``, which the ComfyUI nodes use around their work.
"""
import contextvars
from contextlib import contextmanager

_widgets_of: contextvars.ContextVar[str | None] = contextvars.ContextVar("videoprune_widget_names", default=None)


class VideoPruneError(Exception):
    """Base class: a problem with the user's input, not a bug."""


class PlanError(VideoPruneError, ValueError):
    """A plan names an unknown method, a bad parameter or an illegal stage order."""


class VideoError(VideoPruneError, ValueError):
    """A video cannot be read, is empty, or has an unusable size."""


class ModelLoadError(VideoPruneError, RuntimeError):
    """A model path, hub id or architecture cannot be loaded."""


@contextmanager
def naming_widgets(node: str):
    """Within this block, ``setting`` names widgets of ``node`` (e.g. "Load Video LLM") instead of CLI flags."""
    token = _widgets_of.set(node)
    try:
        yield
    finally:
        _widgets_of.reset(token)


def setting(flag: str, widget: str, value: str) -> str:
    """How to tell the user to set an option: ``use --device cpu`` or ``set the 'device' widget of Load Video LLM to cpu``."""
    node = _widgets_of.get()
    if node is None:
        return f"use {flag} {value}"
    return f"set the '{widget}' widget of {node} to {value}"
