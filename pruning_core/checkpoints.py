"""Long per-frame loops report progress and notice interruption, wherever they run.

Converting, hashing and resizing a long clip happens before the engine's first layer, inside
helpers that know nothing about ComfyUI or the CLI. Each such loop calls ``checkpoint(phase, i, n)``
between frames; a caller that wants progress and interruption wraps the work in ``watching(...)``.
Outside ``watching`` a checkpoint costs one context-variable read and does nothing.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Callable, Iterator

ProgressFn = Callable[[str, int, int], None]   # (phase, done, total)


class Interrupted(Exception):
    """Raised between frames, layers or tokens when the caller's interrupt check fires."""


_watch: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("videoprune_checkpoint", default=None)


@contextmanager
def watching(interrupt: Callable[[], bool] | None = None, progress: ProgressFn | None = None) -> Iterator[None]:
    """Within this block every ``checkpoint`` reports to ``progress`` and raises ``Interrupted``
    once ``interrupt()`` is true."""
    token = _watch.set((interrupt, progress))
    try:
        yield
    finally:
        _watch.reset(token)


def checkpoint(phase: str, done: int, total: int) -> None:
    """Called between frames by long loops: report ``done``/``total`` of ``phase``; stop if asked."""
    w = _watch.get()
    if w is None:
        return
    interrupt, progress = w
    if progress is not None:
        progress(phase, done, total)
    if interrupt is not None and interrupt():
        raise Interrupted(f"interrupted while {phase} ({done}/{total})")
