"""Does a video fit the model's context? Computed from the frame count and size, before any encoding.

The sequence a Video LLM sees is its prompt text plus the visual tokens of the clip, and decoding
adds one position per generated token. Past the LLM's ``max_position_embeddings`` (text config)
the rotary positions were never trained: the model answers garbage after spending minutes on the
encoding. So the length is computed up front from what the adapter says a clip of ``F`` frames
at ``H×W`` costs (``Adapter.sequence_length``), and a clip that does not fit is refused with the
largest frame count that does fit at that resolution. Position ids are counted as sequence
positions (for M-RoPE models the ids grow more slowly, but the KV cache and attention still span
the whole sequence, and the checkpoints' own processors cap the length the same way).
"""
from __future__ import annotations

from .errors import VideoPruneError


class ContextLengthError(VideoPruneError):
    """The clip and answer need more positions than the model has."""


def max_positions(adapter) -> int | None:
    """The LLM's ``max_position_embeddings``, or None when the config does not say."""
    n = getattr(adapter.text_config, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def max_frames(adapter, height: int, width: int, question: str, new_tokens: int, limit: int) -> int:
    """The most frames (≤ ``limit``) of ``height×width`` whose prompt plus ``new_tokens`` fit; 0 if none."""
    cap = max_positions(adapter)
    if cap is None:
        return limit
    lo, hi = 0, limit  # the sequence length grows with the frame count: bisect
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if adapter.sequence_length(mid, height, width, question) + new_tokens <= cap:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_fits(adapter, num_frames: int, height: int, width: int, question: str, new_tokens: int = 1) -> int:
    """Raise ``ContextLengthError`` unless ``num_frames`` frames and ``new_tokens`` fit; returns the prompt length."""
    length = adapter.sequence_length(num_frames, height, width, question)
    cap = max_positions(adapter)
    if cap is None or length + new_tokens <= cap:
        return length
    size = f"{width}x{height}"
    if length < cap:  # the clip fits; the answer does not
        best = max_frames(adapter, height, width, question, new_tokens, num_frames)
        raise ContextLengthError(
            f"{num_frames} frames at {size} take {length} of the model's {cap} positions, leaving {cap - length} "
            f"for the answer but {new_tokens} new tokens were asked for; ask for at most {cap - length} new tokens"
            + (f", or use at most {best} frames" if best > 0 else ""))
    best = max_frames(adapter, height, width, question, new_tokens, num_frames)
    fix = (f"use at most {best} frames at this resolution" if best > 0 else
           "not even 1 frame fits at this resolution: lower the resolution or shorten the question")
    raise ContextLengthError(f"{num_frames} frames at {size} need {length + new_tokens} positions (prompt {length} + "
                             f"{new_tokens} to answer), more than the model's {cap} (max_position_embeddings); {fix}")
