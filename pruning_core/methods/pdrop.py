"""PyramidDrop (Xing et al., CVPR 2025, "PyramidDrop: Accelerating Your Large Vision-Language Models
via Pyramid Visual Redundancy Reduction").

The LLM is split into S stages; at the end of each stage the visual tokens are ranked by the
attention of the last instruction token and a fixed share is dropped, so stage j keeps λ^j of
the ORIGINAL visual tokens (λ = 0.5, boundaries [8, 16, 24] of 32 layers: 50%, 25%, 12.5%).
Boundaries scale with the model's depth. A target-FLOPs mode picks λ so the prefill FLOPs
(HieraVid eq. 12) equal those of the plan PDrop is compared with (``match``: FastV K=2 keeping
``retention``, as ShaRP Table 1 does; ShaRP at layer 1; or ``retention`` in every layer), and
refuses a target the full layers before the first drop already exceed.
Choices are written down in ``docs/methods/pdrop.md``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from ..errors import PlanError
from ..flops import layer_flops
from ..matching import MATCH_CHOICES, Unreachable, reference_flops, solve_rising
from ..registry import MethodSpec, Param, register, retention_param
from ..stages import LayerContext, LayerStage, Selection
from ..tokens import budget, topk_ordered
from ..attention import scores_from_hidden

TARGET_FIRST_LAYER = 2   # first drop in target mode: the layer FastV K=2 (the matched plan) prunes at
PAPER = "PyramidDrop, Xing et al. CVPR 2025 (layers [8,16,24] of 32, λ 0.5)"


# ---------------------------------------------------------------- schedule (pure)

def drop_layers(num_layers: int, stages: int = 4) -> list[int]:
    """The S-1 stage boundaries: PDrop's [8, 16, 24] for 32 layers and S = 4, scaled to ``num_layers``.

    Boundary j sits at round(j·L/S) (half up), kept inside 1..L-1; duplicates from a very
    shallow model collapse.
    """
    out: list[int] = []
    for j in range(1, stages):
        b = min(max(int(math.floor(j * num_layers / stages + 0.5)), 1), num_layers - 1)
        if not out or b > out[-1]:
            out.append(b)
    return out


def shifted_layers(num_layers: int, stages: int, first: int) -> list[int]:
    """Boundaries starting at ``first`` and evenly spaced after it with PDrop's stage length.

    ShaRP §5.1 runs PDrop from the 4th layer: first = 4, S = 4, L = 28 → [4, 12, 20].
    """
    if not 1 <= first < num_layers:
        raise PlanError(f"pdrop: first_layer {first} is out of range for a model with {num_layers} layers "
                        f"(valid: 1..{num_layers - 1})")
    step = (num_layers - first) / (stages - 1) if stages > 1 else 0.0
    out: list[int] = []
    for j in range(stages - 1):
        b = min(first + int(math.floor(j * step + 0.5)), num_layers - 1)
        if not out or b > out[-1]:
            out.append(b)
    return out


def schedule_flops(lam: float, boundaries: Sequence[int], num_layers: int, n_text: int, n_visual0: int,
                   n_original: int, d: int, m: int, before: Sequence[int] = ()) -> float:
    """Prefill FLOPs (HieraVid eq. 12) of the PDrop schedule with ratio λ, continuous in λ.

    Layers before the first boundary see ``n_text + n_visual0`` tokens unless ``before`` gives
    their measured totals; from boundary j on, ``min(n_visual0, λ^j·N)`` visual tokens stay.
    """
    total = 0.0
    first = boundaries[0]
    if before:
        total += sum(layer_flops(float(n), d, m) for n in before[:first])
    else:
        total += first * layer_flops(float(n_text + n_visual0), d, m)
    ends = list(boundaries[1:]) + [num_layers]
    for j, (start, end) in enumerate(zip(boundaries, ends), start=1):
        v = min(float(n_visual0), max(1.0, n_original * lam ** j))
        total += (end - start) * layer_flops(n_text + v, d, m)
    return total


def ratio_for_flops(target: float, boundaries: Sequence[int], num_layers: int, n_text: int, n_visual0: int,
                    n_original: int, d: int, m: int, before: Sequence[int] = ()) -> tuple[float, bool]:
    """The geometric ratio λ whose schedule costs ``target`` FLOPs (``matching.solve_rising``).

    Returns (λ, reachable). λ = 1 when even no dropping fits; reachable = False (λ = 0) when the
    full layers before the first boundary already exceed the target — the caller refuses then.
    """
    lam, status = solve_rising(lambda x: schedule_flops(x, boundaries, num_layers, n_text, n_visual0, n_original,
                                                        d, m, before), target, 0.0, 1.0)
    return (0.0, False) if status == "none" else (lam, True)


def lowest_reachable(boundaries: Sequence[int], num_layers: int, n_text: int, n_visual: int, d: int, m: int,
                     match: str = "constant") -> float:
    """The smallest ``retention`` whose ``match`` reference plan PDrop with these boundaries can still
    reach: below it the full layers before the first drop (plus one token per stage) cost more.
    0 when every target is reachable; above 1 (inf) when none is."""
    floor = schedule_flops(0.0, boundaries, num_layers, n_text, n_visual, n_visual, d, m)
    r, status = solve_rising(lambda x: reference_flops(match, x, n_text, n_visual, num_layers, d, m), floor, 0.0, 1.0)
    return {"none": 0.0, "all": float("inf")}.get(status, r)


# ---------------------------------------------------------------- stages

class _Run:
    """The ratio shared by one plan step's stages, fixed at the first boundary of a run."""

    def __init__(self, params: dict, boundaries: list[int], model_info):
        self.params = params
        self.boundaries = boundaries
        self.info = model_info
        self.lam: float | None = None

    def _dims(self) -> tuple[int, int, int]:
        return int(self.info.num_layers), int(self.info.hidden_size), int(self.info.intermediate_size)

    def _solve(self, n_text: int, n_visual0: int, n_original: int, before: Sequence[int] = ()) -> float:
        """λ whose schedule costs the FLOPs of the ``match`` plan at ``retention``; refuses when unreachable."""
        p = self.params
        L, d, m = self._dims()
        target = reference_flops(p["match"], p["retention"], n_text, n_original, L, d, m)
        lam, ok = ratio_for_flops(target, self.boundaries, L, n_text, n_visual0, n_original, d, m, before)
        if not ok:
            low = lowest_reachable(self.boundaries, L, n_text, n_original, d, m, p["match"])
            first = self.boundaries[0]
            raise Unreachable(
                f"pdrop: retention {p['retention']:g} (match={p['match']}) is unreachable: the {first} full "
                f"layer(s) before the first drop at layer {first} already cost more than that; the lowest reachable "
                f"retention here is {low:.4f} (lower first_layer, or raise retention)",
                (low, 1.0))
        return lam

    def ratio(self, ctx: LayerContext) -> float:
        """λ for this run: the paper's λ, or (target-FLOPs mode) solved once at the first boundary."""
        if self.params["retention"] is None:
            return float(self.params["ratio"])
        if ctx.layer == self.boundaries[0] or self.lam is None:
            n_vis = int(ctx.ids.numel())
            n_text = int(ctx.hidden.shape[0]) - n_vis
            self.lam = self._solve(n_text, n_vis, ctx.n_original, list(ctx.state.tokens_per_layer[: ctx.layer]))
        return self.lam

    def expected_ratio(self, n_visual: int) -> float:
        """λ for an analytic FLOPs report (no data): text-free, as the papers' tables count."""
        if self.params["retention"] is None:
            return float(self.params["ratio"])
        return self._solve(0, n_visual, n_visual)


class PDropStage(LayerStage):
    """Drop number ``stage`` (1-based): keep the λ^stage share of the ORIGINAL visual tokens."""

    def __init__(self, method: str, params: dict, layer: int, stage: int, run: _Run):
        super().__init__(method, params, layer)
        self.stage = stage
        self.run = run

    def scores(self, ctx: LayerContext) -> torch.Tensor:
        if self.params["scoring"] == "previous_layer":
            return ctx.scores()
        st = ctx.state
        # PyramidDrop ranks with the NEXT stage's first layer (this one) on its own input
        return scores_from_hidden(st.adapter.layers[ctx.layer], ctx.hidden, st.cos, st.sin, ctx.vis_pos)

    def select(self, ctx: LayerContext) -> Selection:
        lam = self.run.ratio(ctx)
        k = budget(max(lam ** self.stage, 1e-12), ctx.n_original, int(ctx.ids.numel()))
        keep = topk_ordered(self.scores(ctx), k)
        info = {"stage": self.stage, "ratio": round(lam, 6), "share_of_original": round(lam ** self.stage, 6)}
        if self.params["retention"] is not None and self.stage == 1:
            info["target_retention"] = self.params["retention"]
            info["match"] = self.params["match"]
        return Selection(keep, info=info)

    def expected_kept(self, n_visual: int) -> int:
        return budget(max(self.run.expected_ratio(n_visual) ** self.stage, 1e-12), n_visual)


def build(params: dict, model_info) -> list[PDropStage]:
    L = int(model_info.num_layers)
    first = params["first_layer"]
    if first is None and params["retention"] is not None:
        first = min(TARGET_FIRST_LAYER, L - 1)     # target mode: drop from where FastV K=2 prunes
    if first is not None:
        boundaries = shifted_layers(L, int(params["stages"]), int(first))
    else:
        boundaries = drop_layers(L, int(params["stages"]))
    if not boundaries:
        raise PlanError(f"pdrop: a model with {L} layers leaves no room for a drop boundary")
    run = _Run(params, boundaries, model_info)
    return [PDropStage("pdrop", params, b, j, run) for j, b in enumerate(boundaries, start=1)]


_TARGET = dataclasses.replace(
    retention_param(None, ref="ShaRP Table 1 (PDrop matched to FastV's TFLOPs); HieraVid eq. 12",
                    tooltip="Optional target-FLOPs mode: PDrop picks its ratio λ so its prefill FLOPs equal "
                            "those of the 'match' plan keeping this share of the ORIGINAL visual tokens. "
                            "Refused when the layers before the first drop already cost more. Empty = the paper's λ."),
    optional=True)

register(MethodSpec(
    name="pdrop",
    title="PyramidDrop",
    node="PDrop",
    kind="layer",
    summary="Multi-stage drop: at each stage boundary keep the visual tokens the last instruction token "
            "attends to most; stage j keeps λ^j of the original tokens.",
    paper=PAPER,
    params=(
        Param("stages", "int", 4, "Stages the LLM is split into (S); drops happen at the S-1 boundaries "
              "round(j·L/S), i.e. [8,16,24] of 32 layers.", min=2, max=64, step=1, ref="PDrop §3.2 (S = 4)"),
        Param("ratio", "float", 0.5, "λ: each stage keeps λ times the previous stage's visual tokens "
              "(50%, 25%, 12.5% of the original).", min=0.0, max=1.0, step=0.01, min_exclusive=True,
              ref="PDrop §3.2, §4 (λ = 0.5)"),
        _TARGET,
        Param("match", "choice", "fastv", "Target-FLOPs mode: the plan PDrop is matched to — fastv: FastV "
              "K=2 keeping R (ShaRP Table 1); sharp: pruning at layer 1 keeping R; constant: R in every "
              "layer (equivalent retention R).", choices=MATCH_CHOICES,
              ref="ShaRP Table 1 (PDrop 28.5% at FastV's 11.0 TFLOPs)"),
        Param("first_layer", "int", None, "Optional first boundary; the others follow evenly with the "
              "same stage length (ShaRP runs PDrop from layer 4). Empty = round(L/S), or 2 in "
              "target-FLOPs mode.",
              min=1, max=1024, step=1, optional=True, ref="ShaRP §5.1; PDrop §4 (layer_list)"),
        Param("scoring", "choice", "pdrop", "pdrop: rank with the boundary layer's own q/k on its input "
              "(PyramidDrop's code); previous_layer: the layer before's cached attention (FastV-style).",
              choices=("pdrop", "previous_layer"), ref="PDrop §3.3 (rank with last instruction token)"),
    ),
    build=build,
    tags=("attention", "multi-stage"),
))
