"""How a running node reports progress, notices interruption and finds its folders.

Inside our headless runtime, the runtime installs an ``ExecContext`` for each node it runs.
Inside ComfyUI there is none, and the same calls go to ComfyUI's own progress bar,
interruption flag and ``folder_paths``. Outside both they are no-ops, so nodes stay callable
from plain Python.
"""
from __future__ import annotations

import contextvars
import functools
import importlib
import importlib.util
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import Interrupted

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ExecContext:
    """What the headless runtime gives the node it is running."""

    node_id: str
    class_type: str
    progress: Callable[[str, int, int], None] | None = None     # (node_id, value, max)
    interrupted: Callable[[], bool] = lambda: False
    input_dirs: list[Path] = field(default_factory=list)
    model_dirs: list[Path] = field(default_factory=list)
    output_dir: Path | None = None
    allow_downloads: bool = True


_current: contextvars.ContextVar[ExecContext | None] = contextvars.ContextVar("videoprune_exec", default=None)


@contextmanager
def running(ctx: ExecContext):
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def current() -> ExecContext | None:
    return _current.get()


def _optional_module(name: str):
    """A module of the host (ComfyUI's ``comfy.*``, ``folder_paths``) if it is there, else None.

    Never imports ComfyUI where it is not installed; a module already in ``sys.modules`` wins.
    """
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    if not _installed(name.split(".")[0]):
        return None
    try:
        return importlib.import_module(name)
    except Exception:
        return None


@functools.lru_cache(maxsize=None)
def _installed(top: str) -> bool:
    # searching sys.path costs a few stat calls; the answer does not change while we run
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _comfy(module: str):
    return _optional_module(module)


def _folder_paths():
    return _optional_module("folder_paths")


class Progress:
    """A progress bar of ``total`` steps: ComfyUI's when inside ComfyUI, the runtime callback otherwise."""

    def __init__(self, total: int):
        self.total = max(int(total), 1)
        self._ctx = current()
        self._bar = None
        if self._ctx is None:
            utils = _comfy("comfy.utils")
            if utils is not None and hasattr(utils, "ProgressBar"):
                self._bar = utils.ProgressBar(self.total)

    def update(self, value: int, total: int | None = None) -> None:
        if total is not None:
            self.total = max(int(total), 1)
        if self._ctx is not None and self._ctx.progress is not None:
            self._ctx.progress(self._ctx.node_id, int(value), self.total)
        elif self._bar is not None:
            self._bar.update_absolute(int(value), self.total)


def interrupted() -> bool:
    """True once the user asked to stop. Inside ComfyUI this raises ComfyUI's own interruption."""
    ctx = current()
    if ctx is not None:
        return bool(ctx.interrupted())
    mm = _comfy("comfy.model_management")
    if mm is not None and hasattr(mm, "throw_exception_if_processing_interrupted"):
        mm.throw_exception_if_processing_interrupted()
    return False


def check_interrupt() -> None:
    """Raise ``Interrupted`` (or ComfyUI's interruption) if the user asked to stop."""
    if interrupted():
        ctx = current()
        raise Interrupted(ctx.node_id if ctx else None, ctx.class_type if ctx else None)


def input_dirs() -> list[Path]:
    ctx = current()
    if ctx is not None and ctx.input_dirs:
        return list(ctx.input_dirs)
    fp = _folder_paths()
    if fp is not None:
        return [Path(fp.get_input_directory())]
    return [REPO_ROOT / "input"]


def model_dirs() -> list[Path]:
    """Folders holding Video LLMs: ComfyUI's ``models/LLM`` (registered or default), else ``models/LLM``
    here (or ``$VIDEOPRUNE_MODELS``), the same folders the CLI uses."""
    ctx = current()
    if ctx is not None and ctx.model_dirs:
        return list(ctx.model_dirs)
    fp = _folder_paths()
    if fp is not None:
        try:
            dirs = [Path(p) for p in fp.get_folder_paths("LLM")]
        except Exception:
            dirs = []
        return dirs or [Path(fp.models_dir) / "LLM"]
    from pruning_core.model_store import default_model_dirs
    return default_model_dirs()


def downloads_allowed() -> bool:
    """Whether a hub id missing from the model folders may be downloaded (a public demo says no)."""
    ctx = current()
    return ctx.allow_downloads if ctx is not None else True


def output_dir() -> Path:
    """Where image previews go: the runtime's output dir, ComfyUI's temp dir, or ./output here."""
    ctx = current()
    if ctx is not None and ctx.output_dir is not None:
        return ctx.output_dir
    fp = _folder_paths()
    if fp is not None:
        return Path(fp.get_temp_directory())
    return REPO_ROOT / "output"


def preview_type() -> str:
    """ComfyUI's ``type`` for ui.images entries: previews live in ComfyUI's temp folder."""
    if current() is None and _folder_paths() is not None:
        return "temp"
    return "output"
