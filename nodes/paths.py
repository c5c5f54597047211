"""Paths named in a workflow resolve only inside the allowed folders (no ``..`` or absolute escapes)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from pruning_core.errors import VideoPruneError


def resolve_inside(name: str, roots: Iterable[Path], what: str = "file",
                   error: type[VideoPruneError] = VideoPruneError, must_exist: bool = True) -> Path:
    """The path ``name`` names inside one of ``roots`` (relative to a root, or absolute but inside one).

    Symlinks are resolved first, so a link pointing out of the folder is refused like ``..``.
    """
    roots = [Path(r).resolve() for r in roots]
    if not isinstance(name, str) or not name.strip():
        raise error(f"no {what} given")
    if "\x00" in name:
        raise error(f"{what} name contains a NUL byte")
    raw = Path(name.strip()).expanduser()
    candidates = [raw.resolve()] if raw.is_absolute() else [(r / raw).resolve() for r in roots]
    inside = [c for c in candidates if any(c == r or c.is_relative_to(r) for r in roots)]
    where = ", ".join(str(r) for r in roots)
    if not inside:
        raise error(f"{what} {name!r} is outside the allowed folder(s) {where}")
    if not must_exist:
        return inside[0]
    for c in inside:
        if c.exists():
            return c
    raise error(f"{what} {name!r} not found in {where}")


def is_inside(path: Path, roots: Iterable[Path]) -> bool:
    p = Path(path).resolve()
    return any(p == Path(r).resolve() or p.is_relative_to(Path(r).resolve()) for r in roots)
