"""PyramidDrop (Xing et al., CVPR 2025, "PyramidDrop: Accelerating Your Large Vision-Language Models
via Pyramid Visual Redundancy Reduction").

The LLM is split into S stages; at the end of each stage the visual tokens are ranked by the
attention of the last instruction token and a fixed share is dropped, so stage j keeps λ^j of
the ORIGINAL visual tokens (λ = 0.5, boundaries [8, 16, 24] of 32 layers: 50%, 25%, 12.5%).
Boundaries scale with the model's depth. A target-FLOPs mode picks λ so the prefill FLOPs
(HieraVid eq. 12) equal those of keeping ``retention`` of the visual tokens in every layer.
Choices are written down in ``docs/methods/pdrop.md``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from ..errors import PlanError
from ..flops import layer_flops
from ..registry import MethodSpec, Param, register, retention_param
from ..stages import LayerContext, LayerStage, Selection
from ..tokens import budget, topk_ordered
from ..attention import scores_from_hidden

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
    """The geometric ratio λ whose schedule costs ``target`` FLOPs (bisection; FLOPs rise with λ).

    Returns (λ, reachable). λ = 1 when even no dropping fits; λ = 0 (one token per stage) and
    reachable = False when the full layers before the first boundary already exceed the target.
    """
    args = (boundaries, num_layers, n_text, n_visual0, n_original, d, m, before)
    if schedule_flops(1.0, *args) <= target:
        return 1.0, True
    if schedule_flops(0.0, *args) > target:
        return 0.0, False
    lo, hi = 0.0, 1.0
    for _ in range(60):     # 2^-60: well below one token at any realistic N
        mid = 0.5 * (lo + hi)
        if schedule_flops(mid, *args) <= target:
            lo = mid
        else:
            hi = mid
    return lo, True


# ---------------------------------------------------------------- stages

class _Run:
    """The ratio shared by one plan step's stages, fixed at the first boundary of a run."""

    def __init__(self, params: dict, boundaries: list[int], model_info):
        self.params = params
        self.boundaries = boundaries
        self.info = model_info
        self.lam: float | None = None
        self.reachable = True

    def flops_target(self, n_text: int, n_original: int) -> float:
        L = int(self.info.num_layers)
        return L * layer_flops(n_text + self.params["retention"] * n_original,
                               int(self.info.hidden_size), int(self.info.intermediate_size))

    def ratio(self, ctx: LayerContext) -> float:
        """λ for this run: the paper's λ, or (target-FLOPs mode) solved once at the first boundary."""
        if self.params["retention"] is None:
            return float(self.params["ratio"])
        if ctx.layer == self.boundaries[0] or self.lam is None:
            n_vis = int(ctx.ids.numel())
            n_text = int(ctx.hidden.shape[0]) - n_vis
            measured = list(ctx.state.tokens_per_layer[: ctx.layer])
            self.lam, self.reachable = ratio_for_flops(
                self.flops_target(n_text, ctx.n_original), self.boundaries, int(self.info.num_layers), n_text,
                n_vis, ctx.n_original, int(self.info.hidden_size), int(self.info.intermediate_size), measured)
        return self.lam

    def expected_ratio(self, n_visual: int) -> float:
        """λ for an analytic FLOPs report (no data): text-free, as the papers' tables count."""
        if self.params["retention"] is None:
            return float(self.params["ratio"])
        lam, _ = ratio_for_flops(self.flops_target(0, n_visual), self.boundaries, int(self.info.num_layers), 0,
                                 n_visual, n_visual, int(self.info.hidden_size), int(self.info.intermediate_size))
        return lam


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
            info["target_reachable"] = self.run.reachable
        return Selection(keep, info=info)

    def expected_kept(self, n_visual: int) -> int:
        return budget(max(self.run.expected_ratio(n_visual) ** self.stage, 1e-12), n_visual)


def build(params: dict, model_info) -> list[PDropStage]:
    L = int(model_info.num_layers)
    if params["first_layer"] is not None:
        boundaries = shifted_layers(L, int(params["stages"]), int(params["first_layer"]))
    else:
        boundaries = drop_layers(L, int(params["stages"]))
    if not boundaries:
        raise PlanError(f"pdrop: a model with {L} layers leaves no room for a drop boundary")
    run = _Run(params, boundaries, model_info)
    return [PDropStage("pdrop", params, b, j, run) for j, b in enumerate(boundaries, start=1)]


_TARGET = dataclasses.replace(
    retention_param(None, ref="ShaRP §5.2 (FLOPs-matched comparison); HieraVid eq. 12",
                    tooltip="Optional target-FLOPs mode: equivalent retention (fraction of the ORIGINAL "
                            "visual tokens that, kept in every layer, costs the same prefill FLOPs). "
                            "PDrop then picks its ratio λ to match. Empty = the paper's λ."),
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
        Param("first_layer", "int", None, "Optional first boundary; the others follow evenly with the "
              "same stage length (ShaRP runs PDrop from layer 4: [4, 12, 20] of 28). Empty = round(L/S).",
              min=1, max=1024, step=1, optional=True, ref="ShaRP §5.1; PDrop §4 (layer_list)"),
        Param("scoring", "choice", "pdrop", "pdrop: rank with the boundary layer's own q/k on its input "
              "(PyramidDrop's code); previous_layer: the layer before's cached attention (FastV-style).",
              choices=("pdrop", "previous_layer"), ref="PDrop §3.3 (rank with last instruction token)"),
    ),
    build=build,
    tags=("attention", "multi-stage"),
))
