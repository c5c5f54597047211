"""Analytic prefill FLOPs and KV-cache size, with presets holding real checkpoint dimensions.

Prefill FLOPs of one decoder layer with ``n`` tokens (HieraVid eq. 12):
``4·n·d² + 2·n²·d + 2·n·d·m`` (attention projections, attention itself, FFN), summed over the
layers with each layer's own token count. Embedding, lm_head and the vision tower are not
counted, as in the papers' tables.

Paper convention (checked by tests/test_flops.py): ShaRP Table 1 reports "TFLOPs for video
tokens", i.e. with ``n_text = 0``: LLaVA-OneVision-7B with 32×196 = 6272 visual tokens gives
40.8 TFLOPs, FastV K=2 keeping 25% gives 11.0 and keeping 20% gives 9.31. "FastV K=2" means
layers 0 and 1 see all tokens and layers 2..L-1 the kept ones: the schedule ``{2: kept}``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ModelLoadError, PlanError


@dataclass(frozen=True)
class ModelDims:
    """Language-model dimensions of a checkpoint; doubles as ``model_info`` for building plans."""

    name: str
    backbone: str
    hidden_size: int          # d
    intermediate_size: int    # m
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    checkpoint: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _qwen2(name: str, backbone: str, checkpoint: str, d: int, m: int, layers: int, heads: int, kv: int,
           vocab: int, head_dim: int | None = None) -> ModelDims:
    return ModelDims(name, backbone, d, m, layers, heads, kv, head_dim or d // heads, vocab, checkpoint)


# Dims from the checkpoints' config.json (their language models: Qwen2 / Qwen2.5).
_Q05 = dict(d=896, m=4864, layers=24, heads=14, kv=2, vocab=151936)        # Qwen2-0.5B
_Q15 = dict(d=1536, m=8960, layers=28, heads=12, kv=2, vocab=151936)       # Qwen2-1.5B
_Q3 = dict(d=2048, m=11008, layers=36, heads=16, kv=2, vocab=151936)       # Qwen2.5-3B
_Q7 = dict(d=3584, m=18944, layers=28, heads=28, kv=4, vocab=152064)       # Qwen2-7B / Qwen2.5-7B
# Qwen3-VL's language models (the checkpoints' text_config; Qwen3-1.7B / Qwen3-4B / Qwen3-8B / Qwen3-30B-A3B
# dims, head_dim 128 everywhere). The MoE's m counts the ACTIVE FFN: num_experts_per_tok (8) ×
# moe_intermediate_size (768) of its 128 experts; the router (2·n·d·128, ~2% of that FFN) is not counted.
# Eq. 12 takes q/k/v/o as d×d: it ignores GQA and, for the 4B, that heads·head_dim (4096) ≠ d (2560).
_Q3VL2 = dict(d=2048, m=6144, layers=28, heads=16, kv=8, vocab=151936, head_dim=128)
_Q3VL4 = dict(d=2560, m=9728, layers=36, heads=32, kv=8, vocab=151936, head_dim=128)
_Q3VL8 = dict(d=4096, m=12288, layers=36, heads=32, kv=8, vocab=151936, head_dim=128)
_Q3VL30A3 = dict(d=2048, m=8 * 768, layers=48, heads=32, kv=4, vocab=151936, head_dim=128)

PRESETS: dict[str, ModelDims] = {p.name: p for p in (
    _qwen2("llava-onevision-0.5b", "llava_onevision", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf", **_Q05),
    _qwen2("llava-onevision-7b", "llava_onevision", "llava-hf/llava-onevision-qwen2-7b-ov-hf", **_Q7),
    _qwen2("llava-video-7b", "llava_onevision", "llava-hf/LLaVA-Video-7B-Qwen2-hf", **_Q7),
    _qwen2("qwen2-vl-2b", "qwen2_vl", "Qwen/Qwen2-VL-2B-Instruct", **_Q15),
    _qwen2("qwen2-vl-7b", "qwen2_vl", "Qwen/Qwen2-VL-7B-Instruct", **_Q7),
    _qwen2("qwen2.5-vl-3b", "qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct", **_Q3),
    _qwen2("qwen2.5-vl-7b", "qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct", **_Q7),
    _qwen2("qwen3-vl-2b", "qwen3_vl", "Qwen/Qwen3-VL-2B-Instruct", **_Q3VL2),
    _qwen2("qwen3-vl-4b", "qwen3_vl", "Qwen/Qwen3-VL-4B-Instruct", **_Q3VL4),
    _qwen2("qwen3-vl-8b", "qwen3_vl", "Qwen/Qwen3-VL-8B-Instruct", **_Q3VL8),
    _qwen2("qwen3-vl-30b-a3b", "qwen3_vl_moe", "Qwen/Qwen3-VL-30B-A3B-Instruct", **_Q3VL30A3),
)}
ALIASES: dict[str, str] = {"qwen2-0.5b": "llava-onevision-0.5b"}


def get_preset(name: str) -> ModelDims:
    """A preset by name or alias (case-insensitive)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in PRESETS:
        known = sorted([*PRESETS, *ALIASES])
        raise ModelLoadError(f"unknown model preset {name!r}; known: {', '.join(known)}")
    return PRESETS[key]


# ---------------------------------------------------------------- FLOPs

def layer_flops(n: float, d: int, m: int, pairs: float | None = None) -> float:
    """Prefill FLOPs of one decoder layer with ``n`` tokens: 4nd² + 2n²d + 2ndm (HieraVid eq. 12).

    ``pairs``: (query, key) pairs a restricted attention mask allows (StreamingLLM's streamed
    prefill). The attention term 2n²d is the cost of the causal n(n+1)/2 pairs, so it scales by
    ``pairs / (n(n+1)/2)``; the projections and the FFN still see every token. None = causal.
    """
    attn = 2.0 * n * n * d
    if pairs is not None and n > 0:
        attn *= float(pairs) / (n * (n + 1) / 2.0)
    return 4.0 * n * d * d + attn + 2.0 * n * d * m


def prefill_flops(tokens_per_layer: Sequence[int], d: int, m: int,
                  pairs_per_layer: Sequence[int | None] | None = None) -> float:
    """Prefill FLOPs summed over layers, each with its own token count (HieraVid eq. 12) and, where
    given, the attention pairs its mask allows."""
    pairs = list(pairs_per_layer) if pairs_per_layer else [None] * len(tokens_per_layer)
    return float(sum(layer_flops(float(n), d, m, p) for n, p in zip(tokens_per_layer, pairs)))


def tokens_per_layer_for(n_text: int, n_visual: int, schedule: Mapping[int, int] | Sequence[int] | None,
                         num_layers: int) -> list[int]:
    """Total tokens (text + visual) entering each layer under a visual-token schedule.

    ``schedule`` either maps a layer to the visual count from that layer on (``{2: 1568}``:
    layers 0-1 see all ``n_visual``, layers 2.. see 1568; key 0 = a pre-LLM stage), or lists
    the visual count of every layer. ``None``/``{}`` means unpruned.
    """
    if num_layers < 1:
        raise PlanError(f"num_layers must be >= 1, got {num_layers}")
    if n_text < 0 or n_visual < 0:
        raise PlanError(f"token counts must be >= 0, got text {n_text}, visual {n_visual}")
    if schedule is None:
        schedule = {}
    if isinstance(schedule, Mapping):
        visual = [n_visual] * num_layers
        for layer in sorted(schedule):
            if not 0 <= int(layer) < num_layers:
                raise PlanError(f"schedule layer {layer} is out of range for {num_layers} layers")
            visual[int(layer):] = [int(schedule[layer])] * (num_layers - int(layer))
    else:
        visual = [int(v) for v in schedule]
        if len(visual) != num_layers:
            raise PlanError(f"schedule lists {len(visual)} layers, the model has {num_layers}")
    bad = [v for v in visual if not 0 <= v <= n_visual]
    if bad:
        raise PlanError(f"schedule keeps {bad[0]} visual tokens; must be within 0..{n_visual}")
    return [n_text + v for v in visual]


def realistic_layer_flops(n: float, d: int, m: int, heads: int, kv_heads: int, head_dim: int,
                          pairs: float | None = None) -> float:
    """FLOPs (2 per multiply-add) of one Qwen2-style decoder layer with ``n`` tokens, as the
    hardware executes it, beside eq. 12's stylised count (``layer_flops``):

    - projections: q and o are ``d × heads·head_dim``; k and v are only ``d × kv_heads·head_dim``
      (GQA): ``2n·d·(2·heads + 2·kv_heads)·head_dim``;
    - attention: causal, so QKᵀ and AV each cover the ``n(n+1)/2`` allowed (query, key) pairs for
      every query head: ``2 · 2 · heads·head_dim · pairs`` (``pairs`` defaults to causal);
    - FFN: SwiGLU's three ``d × m`` matrices (gate, up, down): ``6n·d·m``.

    Norms, RoPE, softmax, biases and the SiLU product are O(n·d) and not counted. Eq. 12 stays
    for reproducing the papers' tables; this one predicts what a CPU or GPU can gain.
    """
    if pairs is None:
        pairs = n * (n + 1) / 2.0
    proj = 2.0 * n * d * (2 * heads + 2 * kv_heads) * head_dim
    attn = 4.0 * heads * head_dim * float(pairs)
    return proj + attn + 6.0 * n * d * m


def realistic_prefill_flops(tokens_per_layer: Sequence[int], dims: Any,
                            pairs_per_layer: Sequence[int | None] | None = None) -> float:
    """``realistic_layer_flops`` summed over layers; ``dims`` is a ``ModelDims`` or an adapter's
    ``ModelInfo`` (anything with hidden_size, intermediate_size, num_heads, num_kv_heads, head_dim)."""
    pairs = list(pairs_per_layer) if pairs_per_layer else [None] * len(tokens_per_layer)
    return float(sum(realistic_layer_flops(float(n), dims.hidden_size, dims.intermediate_size, dims.num_heads,
                                           dims.num_kv_heads, dims.head_dim, p)
                     for n, p in zip(tokens_per_layer, pairs)))


def equivalent_retention(tokens_per_layer: Sequence[int], n_text: int, n_visual: int,
                         d: int | None = None, m: int | None = None, flops: float | None = None) -> float:
    """Constant visual share that costs the same prefill FLOPs as this per-layer schedule.

    With ``d`` and ``m`` it solves eq. 12 for the constant count ``v`` with
    ``L·f(n_text + v) = Σ f(n_l)``, a quadratic in ``n = n_text + v``:
    ``2d·n² + (4d² + 2dm)·n − F/L = 0``. Without them it returns the mean over layers of the
    visual counts, which is that same answer when the n²-term is small next to the linear
    ones (2n·d ≪ 4d² + 2dm, i.e. n ≪ 2d + m: ~30k tokens for a 7B model), and is always the
    KV-cache/linear-FLOPs-weighted retention. ``flops`` overrides the FLOPs of the schedule (a
    masked prefill, ``prefill_flops(..., pairs_per_layer)``).
    """
    if n_visual <= 0 or not tokens_per_layer:
        return 1.0
    L = len(tokens_per_layer)
    if d is None or m is None:
        return sum(n - n_text for n in tokens_per_layer) / (L * n_visual)
    per_layer = (prefill_flops(tokens_per_layer, d, m) if flops is None else float(flops)) / L
    a, b = 2.0 * d, 4.0 * d * d + 2.0 * d * m
    n = (-b + math.sqrt(b * b + 4.0 * a * per_layer)) / (2.0 * a)
    return (n - n_text) / n_visual


def kv_cache_bytes(tokens_per_layer: Sequence[int], num_kv_heads: int, head_dim: int, dtype_bytes: int = 2) -> int:
    """Bytes of the prefill KV cache: keys and values of every token kept in every layer."""
    return int(sum(tokens_per_layer)) * 2 * num_kv_heads * head_dim * dtype_bytes


# ---------------------------------------------------------------- plans → schedules

def schedule_from_stages(stages: Sequence[Any], n_visual: int) -> tuple[dict[int, int], list[str]]:
    """Analytic visual-token schedule of built stages, for FLOPs without running the model.

    A pre-LLM stage acts at layer 0, a layer stage at its ``layer``. The kept count is the
    stage's ``expected_kept(n_visual)`` when it has one, else its ``retention`` parameter
    (relative to the ORIGINAL count, as everywhere). Cache stages do not change prefill
    tokens. Returns (schedule, methods whose count depends on the data and was not counted).
    """
    from .tokens import budget

    schedule: dict[int, int] = {}
    data_dependent: list[str] = []
    alive = n_visual
    for st in stages:
        if st.kind not in ("pre", "layer"):
            continue
        layer = 0 if st.kind == "pre" else int(st.layer)
        if hasattr(st, "expected_kept"):
            kept = int(st.expected_kept(n_visual))
        elif st.params.get("retention") is not None:
            kept = budget(float(st.params["retention"]), n_visual, alive)
        else:
            data_dependent.append(st.method)
            continue
        alive = min(alive, kept)
        schedule[layer] = alive
    return schedule, data_dependent


def flops_report(dims: ModelDims, n_visual: int, n_text: int = 0, plan: Any = None,
                 dtype_bytes: int = 2) -> dict:
    """FLOPs, KV-cache bytes and retention figures of a plan on a preset, without weights.

    ``plan`` is anything ``registry.parse_plan`` reads. Stages whose kept count depends on
    the video are listed under ``data_dependent`` and counted as keeping everything.
    """
    from .registry import build_stages, format_plan, parse_plan

    steps = parse_plan(plan)
    stages = build_stages(steps, dims)
    schedule, data_dependent = schedule_from_stages(stages, n_visual)
    tpl = tokens_per_layer_for(n_text, n_visual, schedule, dims.num_layers)
    full = [n_text + n_visual] * dims.num_layers
    d, m = dims.hidden_size, dims.intermediate_size
    pairs = None   # a stage that restricts attention in the prefill (StreamingLLM streamed)
    for st in stages:
        if hasattr(st, "expected_pairs"):
            pairs = st.expected_pairs(tpl, n_text, n_visual) or pairs
    f, f0 = prefill_flops(tpl, d, m, pairs), prefill_flops(full, d, m)
    kept = tpl[-1] - n_text
    return {
        "preset": dims.name, "plan": format_plan(steps), "visual_tokens": n_visual, "text_tokens": n_text,
        "kept_tokens": kept, "retention": kept / n_visual if n_visual else 1.0,
        "equivalent_retention": equivalent_retention(tpl, n_text, n_visual, d, m, flops=f),
        "schedule": {str(k): v for k, v in sorted(schedule.items())}, "tokens_per_layer": tpl,
        "flops": f, "flops_unpruned": f0, "tflops": f / 1e12, "tflops_unpruned": f0 / 1e12,
        "flops_ratio": f / f0 if f0 else 1.0, "speedup_predicted": f0 / f if f else 1.0,
        "kv_cache_bytes": kv_cache_bytes(tpl, dims.num_kv_heads, dims.head_dim, dtype_bytes),
        "kv_cache_bytes_unpruned": kv_cache_bytes(full, dims.num_kv_heads, dims.head_dim, dtype_bytes),
        "data_dependent": data_dependent,
    }
