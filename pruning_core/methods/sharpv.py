"""SharpV (SharpV.txt): information-aware adaptive pre-LLM pruning (``sharpv``) and
degradation-aware withdrawal of visual tokens from the hidden states and KV cache (``sharpv_memory``).

The math is in ``sharpv_ops``; this module wires it to the stage interface and registers both methods.
Choices where the paper is ambiguous are written down in ``docs/methods/sharpv.md``.
"""
from __future__ import annotations

import dataclasses

import torch

from ..registry import MethodSpec, Param, register, retention_param
from ..stages import CacheStage, CacheView, LayerContext, PreContext, PreStage, Selection, Withdrawal, recording
from ..tokens import allocate_proportional, budget, normalize, topk_per_group
from . import sharpv_ops as ops

PAPER = "SharpV: Information-Aware Adaptive Pruning of Visual Tokens and KV Cache for VideoLLMs"


def _floats(x: torch.Tensor, nd: int = 6) -> list[float]:
    return [round(float(v), nd) for v in x.tolist()]


class SharpVVisual(PreStage):
    """Visual SharpV: keep, per frame, the tokens with the highest I = T + w·S (eqs. 1–6)."""

    def select(self, ctx: PreContext) -> Selection:
        p = self.params
        layout = ctx.layout
        n_frames = layout.num_frames
        ids = ctx.ids.to(ctx.embeds.device)
        frame = layout.frame_of(ids)
        pos = ids % layout.tokens_per_frame
        x = ctx.embeds

        xn = normalize(x)
        buf = torch.empty_like(xn)
        spatial = ops.spatial_importance(x, frame, n_frames, xn, buf)
        ref = ops.temporal_reference(frame, pos, n_frames)
        temporal = ops.as_metric(ops.temporal_importance(x, ref, spatial, xn, buf), p["metric"])
        spatial = ops.as_metric(spatial, p["metric"])
        imp = ops.importance(temporal, spatial, p["w"])
        ratios = ops.frame_ratios(temporal, frame, n_frames)
        alive = torch.bincount(frame, minlength=n_frames)

        if p["mode"] == "manual":
            counts = ops.threshold_counts(imp, frame, n_frames, p["k"], p["min_per_frame"])
            weights = counts.double()
        else:
            counts = ops.adaptive_counts(ratios, alive, p["min_per_frame"])
            weights = ratios * alive.double()
        if p["target_retention"] is not None:
            total = budget(p["target_retention"], ctx.n_original, int(ids.numel()))
            counts = allocate_proportional(weights, alive, total, p["min_per_frame"])
        counts = ops.ensure_nonempty(counts, imp, frame)

        keep = topk_per_group(imp, frame, counts)
        info = {
            "mode": p["mode"],
            "metric": p["metric"],
            "frame_ratios": _floats(ratios),            # eq. 5 (eq. 6 for the first frame)
            "kept_per_frame": counts.tolist(),
            "alive_per_frame": alive.tolist(),
            "kept": int(keep.numel()),
            "retention": int(keep.numel()) / ctx.n_original,
        }
        if p["target_retention"] is not None:
            info["target_retention"] = p["target_retention"]
        return Selection(keep=keep, info=info, scores={"importance": imp} if recording(ctx) else {})


class SharpVMemory(CacheStage):
    """Memory SharpV (eq. 7): once the visual hidden states have drifted below cosine M from the
    visual embeddings the LLM received, withdraw them: later layers run without them, so their
    KV cache never holds visual entries (and, optionally, the measured layer's cache is evicted)."""

    def __init__(self, method: str, params: dict, num_layers: int | None = None):
        super().__init__(method, params)
        self.num_layers = num_layers
        self._reset()

    def _reset(self) -> None:
        self._curve: list[tuple[int, float]] = []
        self._first: int | None = None
        self._withdrawn = 0
        self._entering: int | None = None
        self._n_original: int | None = None
        self._last_layer = -1

    def after_layer(self, ctx: LayerContext) -> Withdrawal | None:
        if ctx.layer <= self._last_layer:      # a new prefill with the same stage object
            self._reset()
        self._last_layer = ctx.layer
        n = int(ctx.ids.numel())
        if self._entering is None:
            self._entering = n
            self._n_original = ctx.n_original
        if n == 0:
            return None
        sim = ops.visual_similarity(ctx.visual_hidden, ctx.visual_embeds0)
        self._curve.append((ctx.layer, float(sim.mean())))
        drop = torch.nonzero(ops.degraded(sim, self.params["m"], self.params["granularity"])).flatten()
        if drop.numel() == 0:
            return None
        evict = [ctx.layer] if self.params["evict_measured_layer"] else []
        if not evict and self.num_layers is not None and ctx.layer >= self.num_layers - 1:
            return None                        # no later layer left to withdraw from
        if self._first is None:
            self._first = ctx.layer + 1
        self._withdrawn += int(drop.numel())
        return Withdrawal(drop=drop, evict_layers=evict,
                          info={"layer": ctx.layer, "withdrawn": int(drop.numel()),
                                "similarity": round(self._curve[-1][1], 6)})

    def after_prefill(self, cache: CacheView) -> dict | None:
        per_layer = [int((cache.visual_ids(l) >= 0).sum()) for l in range(cache.num_layers)]
        denom = max(1, (self._entering or 0) * cache.num_layers)
        return {
            # Fig. 3: mean cos(V_l, V) of the visual tokens alive after layer l
            "similarity": [[layer, round(s, 6)] for layer, s in self._curve],
            "first_withdrawn_layer": self._first,
            "withdrawn_tokens": self._withdrawn,
            "visual_kv_entries": per_layer,
            "memory_ratio": round(sum(per_layer) / denom, 6),   # MR of Table 3
            # Table 3's "token budget" VR × MR: VR = tokens alive before this stage / ORIGINAL tokens
            "token_budget": round(sum(per_layer) / max(1, (self._n_original or 0) * cache.num_layers), 6),
        }


def _build_visual(params: dict, model_info) -> list:
    return [SharpVVisual("sharpv", params)]


def _build_memory(params: dict, model_info) -> list:
    return [SharpVMemory("sharpv_memory", params, getattr(model_info, "num_layers", None))]


_TARGET = dataclasses.replace(
    retention_param(None, ref="matched-budget comparison (not in the paper)",
                    tooltip="Optional: rescale the adaptive per-frame ratios so exactly this fraction of "
                            "the ORIGINAL visual tokens is kept (for comparisons at a matched budget). "
                            "Empty = let SharpV choose."),
    name="target_retention", optional=True)

register(MethodSpec(
    name="sharpv",
    title="SharpV (visual)",
    node="SharpV",
    kind="pre",
    summary="Pre-LLM, attention-free: per-frame adaptive ratios from temporal change; keeps the tokens "
            "with the highest spatio-temporal dissimilarity I = T + w·S.",
    paper=PAPER,
    category="SharpV",
    params=(
        Param("mode", "choice", "adaptive", "adaptive: per-frame ratio ‖T_t‖/(2√f) (eq. 5); "
              "manual: keep tokens with I > K.", choices=("adaptive", "manual"), ref="SharpV eqs. 5–6, Table 3"),
        Param("w", "float", 1.0, "Weight of spatial importance S in I = T + w·S.",
              min=0.0, max=10.0, step=0.1, ref="SharpV eq. 4, Fig. 5b"),
        Param("metric", "choice", "dissim", "Token dissimilarity: dissim = ‖v̂1 − v̂2‖ (eq. 1, used for every "
              "result of the paper); one_minus_cos = 1 − cos, the alternative the paper allows with a fixed K.",
              choices=("dissim", "one_minus_cos"), ref="SharpV eq. 1 and the paragraph after it"),
        Param("k", "float", 1.6, "Manual mode: keep tokens whose importance I exceeds K (I is in [0, 2+2w]).",
              min=0.0, max=22.0, step=0.05, ref="SharpV Table 3, Fig. 5c"),
        _TARGET,
        Param("min_per_frame", "int", 0, "Tokens every frame keeps at least. 0 (the paper): a static frame "
              "(threshold 0, eq. 5) keeps nothing and vanishes; 1 keeps a token of every frame.",
              min=0, max=100000, step=1, ref="SharpV eq. 5 (\"aggressively pruning static frames\")"),
    ),
    build=_build_visual,
    tags=("attention-free", "adaptive"),
))

register(MethodSpec(
    name="sharpv_memory",
    title="SharpV (memory)",
    node="SharpVMemory",
    kind="cache",
    summary="Withdraws visual tokens from the hidden states and KV cache from the first layer where "
            "their cosine similarity to the original visual embeddings falls below M.",
    paper=PAPER,
    category="SharpV",
    params=(
        Param("m", "float", 0.2, "Degradation threshold M on cos(V_l, V).",
              min=-1.0, max=1.0, step=0.01, ref="SharpV eq. 7, Fig. 5b"),
        Param("granularity", "choice", "layer", "layer: the mean similarity withdraws all visual tokens at "
              "once; token: each token is withdrawn when its own similarity falls below M.",
              choices=("layer", "token"), ref="SharpV eq. 7, Fig. 3"),
        Param("evict_measured_layer", "bool", False, "Also drop the visual KV entries of the layer whose "
              "output fell below M (default: only later layers lose them, as their inputs are degraded).",
              ref="SharpV eq. 7 (docs/methods/sharpv.md)"),
    ),
    build=_build_memory,
    tags=("attention-free", "kv-cache"),
))
