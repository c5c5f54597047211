"""Which transformers releases VideoPrune runs on, and a one-line refusal where an internal changed.

The engine drives decoder layers itself, so it relies on a few transformers internals beyond the
public model classes. ``SUPPORTED`` is the range ``requirements.txt`` admits (wide, so installing
the pack never downgrades a host's transformers); ``VERIFIED`` lists the releases the test suite
has run on. A release inside the range whose internals moved is refused with one line that names
the range and the internal, instead of failing deep inside a forward pass.
"""
from __future__ import annotations

import functools
import inspect
import re
import warnings

from .errors import VideoPruneError

SUPPORTED = (5, 23), (6, 0)            # >= 5.23, < 6
VERIFIED = ("5.23", "5.24")
SUPPORTED_TEXT = "transformers >=5.23,<6 (verified on " + ", ".join(VERIFIED) + ")"


class TransformersVersionError(VideoPruneError, RuntimeError):
    """The installed transformers is outside the supported range or lacks an internal we drive."""


def parse_version(text: str) -> tuple[int, int]:
    """``"5.24.0.dev0"`` -> ``(5, 24)``; unparsable text -> ``(0, 0)``."""
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _internals_missing(transformers) -> list[str]:
    """The internals the engine relies on that this transformers does not have, by name."""
    missing = []
    cache_cls = getattr(transformers, "DynamicCache", None)
    if cache_cls is None:
        return ["transformers.DynamicCache"]
    if "config" not in inspect.signature(cache_cls.__init__).parameters:
        missing.append("DynamicCache(config=...)")
    try:
        from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer
    except ImportError:
        return missing + ["transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer"]
    params = inspect.signature(Qwen2DecoderLayer.forward).parameters
    for name in ("attention_mask", "position_embeddings", "past_key_values", "use_cache"):
        if name not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            missing.append(f"decoder layer argument {name!r}")
    return missing


@functools.lru_cache(maxsize=1)
def check_transformers() -> str:
    """Refuse an unusable transformers in one line; warn once for an unverified one in range.

    Returns the installed version string.
    """
    try:
        import transformers
    except ImportError:
        raise TransformersVersionError(
            f"transformers is not installed; VideoPrune needs {SUPPORTED_TEXT}: run python install.py") from None
    version = transformers.__version__
    v = parse_version(version)
    low, high = SUPPORTED
    if not (low <= v < high):
        raise TransformersVersionError(
            f"transformers {version} is not supported; VideoPrune needs {SUPPORTED_TEXT}")
    missing = _internals_missing(transformers)
    if missing:
        raise TransformersVersionError(
            f"transformers {version} changed an internal VideoPrune relies on ({'; '.join(missing)}); "
            f"use {SUPPORTED_TEXT}")
    if f"{v[0]}.{v[1]}" not in VERIFIED:
        warnings.warn(f"transformers {version} is inside the supported range but not yet verified; "
                      f"verified: {', '.join(VERIFIED)}", stacklevel=2)
    return version
