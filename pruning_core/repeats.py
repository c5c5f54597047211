"""Timings as the median of repeated runs: one run's wall clock on a shared CPU is one noisy shot.

The answer, kept ids and FLOPs come from the first run (the engine is deterministic); only the
timings are repeated. TTFT keeps its one meaning, vision + pre-LLM stages + prefill, built from
the medians of the parts (vision encoding is done once per input and not repeated).
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import Callable

from .errors import PlanError
from .result import Result

MAX_REPEATS = 20


def median_of_repeats(first: Result, rerun: Callable[[], Result], repeats: int) -> Result:
    """``first`` with ``pre_llm_ms``/``prefill_ms`` (and so ``ttft_ms``) the medians over ``repeats``
    runs (``first`` plus ``repeats - 1`` calls of ``rerun``), and ``timing_spread`` holding every
    sample and the min/max of each timing."""
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= MAX_REPEATS:
        raise PlanError(f"timing repeats must be a whole number in 1..{MAX_REPEATS}, got {repeats!r}")
    if repeats == 1:
        return first
    runs = [first] + [rerun() for _ in range(repeats - 1)]
    pre = [float(r.pre_llm_ms) for r in runs]
    prefill = [float(r.prefill_ms) for r in runs]
    ttft = [float(first.vision_ms) + a + b for a, b in zip(pre, prefill)]
    spread = {"repeats": repeats,
              **{name: {"samples": xs, "min": min(xs), "max": max(xs)}
                 for name, xs in (("pre_llm_ms", pre), ("prefill_ms", prefill), ("ttft_ms", ttft))}}
    med_pre, med_prefill = statistics.median(pre), statistics.median(prefill)
    return dataclasses.replace(first, pre_llm_ms=med_pre, prefill_ms=med_prefill,
                               ttft_ms=float(first.vision_ms) + med_pre + med_prefill, timing_spread=spread)
