"""FrameFusion (Fu et al., ICCV 2025, "FrameFusion: Combining Similarity and Importance for Video
Token Reduction on Large Visual Language Models").

Shallow layers merge every visual token whose cosine similarity with the token at the SAME
grid position in the previous frame reaches a threshold (0.6; 0.5 for Qwen2-VL) into that
counterpart (size-weighted mean, the counterpart keeps its position). Merging goes on layer by
layer while it still removes at least ``ratio_lower_bound`` of the tokens; the next layer then
prunes to the budget by last-text-token attention (FastV's criterion). The budget is a compute
cost: the mean, over ALL layers of the model, of the fraction of the original visual tokens
alive in that layer — which is exactly the "equivalent retention" ShaRP §5.1 uses for it.
The layer count comes from the model (their code hard-codes 28). See ``docs/methods/framefusion.md``.
"""
from __future__ import annotations

import torch

from ..registry import MethodSpec, Param, register, retention_param
from ..stages import LayerContext, LayerStage, Merge, PreContext, PreStage, Selection
from ..tokens import merge_into, normalize, topk_ordered

PAPER = "FrameFusion, Fu et al. ICCV 2025 (cost 0.3, S_th 0.6 / 0.5 Qwen2-VL, ratio lower bound 0.1)"
_NO_PREDECESSOR = -2.0   # the code's IGNORE value: a token with no earlier frame can never merge


# ---------------------------------------------------------------- pure functions

def predecessor_similarity(x: torch.Tensor, ids: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """For each alive token [n]: cosine similarity with the nearest EARLIER alive token at the same
    grid position (FrameFusion's ``compute_similarity_and_token_index_by_patch``); -2 if none.

    ``ids`` are ascending original ids (frame-major), so a stable sort by grid position lists each
    position's tokens frame by frame.
    """
    n = ids.numel()
    patch = ids % tokens_per_frame
    order = torch.sort(patch, stable=True).indices
    same = torch.zeros(n, dtype=torch.bool, device=ids.device)
    same[1:] = patch[order[1:]] == patch[order[:-1]]
    sim_sorted = torch.full((n,), _NO_PREDECESSOR, dtype=torch.float32, device=ids.device)
    if n > 1:
        xs = normalize(x).index_select(0, order)      # normalise once, then pair neighbours
        sim_sorted[1:] = (xs[1:] * xs[:-1]).sum(-1)
    sim_sorted = torch.where(same, sim_sorted, torch.full_like(sim_sorted, _NO_PREDECESSOR))
    return torch.empty_like(sim_sorted).scatter_(0, order, sim_sorted)


def merge_roots(merge: torch.Tensor, ids: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """Index of the token each alive token ends up in: itself, or — for a run of consecutive merged
    tokens at one grid position — the last unmerged token before the run (FrameFusion's
    ``find_contigious_latter_index``: a chain t1←t2←t3 all lands in t1)."""
    n = ids.numel()
    patch = ids % tokens_per_frame
    order = torch.sort(patch, stable=True).indices
    pos = torch.arange(n, device=ids.device)
    # within the position-sorted list, a merged token points to the latest unmerged one before it;
    # the first token of every position never merges (no predecessor), so the run stays in its position
    anchor = torch.where(merge[order], torch.full_like(pos, -1), pos)
    anchor = torch.cummax(anchor, 0).values
    root_sorted = order[anchor]
    return torch.empty_like(root_sorted).scatter_(0, order, root_sorted)


def merge_targets(merge: torch.Tensor, ids: torch.Tensor, tokens_per_frame: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep [k] ascending, target [n]: the slot in ``keep`` every alive token merges into)."""
    keep = (~merge).nonzero().squeeze(1)
    roots = merge_roots(merge, ids, tokens_per_frame)
    slot = torch.full((ids.numel(),), -1, dtype=torch.long, device=ids.device)
    slot[keep] = torch.arange(keep.numel(), device=ids.device)
    return keep, slot[roots]


def merge_selection(x: torch.Tensor, sizes: torch.Tensor, merge: torch.Tensor, ids: torch.Tensor, tokens_per_frame: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply a merge decision: (keep [k] ascending, merged values [k, d], merged sizes [k]).

    Each kept token becomes the size-weighted mean of itself and everything merged into it (ToMe).
    """
    keep, target = merge_targets(merge, ids, tokens_per_frame)
    values, new_sizes = merge_into(x, sizes, target, int(keep.numel()))
    return keep, values.to(x.dtype), new_sizes


def pruning_ratio(alive_fractions: list[float], current: float, cost: float, num_layers: int) -> float:
    """FrameFusion's ``_compute_pruning_ratio``, generalised to any depth and any history.

    ``alive_fractions`` are the visual fractions (of the ORIGINAL count) the layers before this one
    ran with; ``current`` the fraction alive now. Returns the share of the current tokens that
    must go so that keeping the rest in every remaining layer makes the mean over all
    ``num_layers`` layers equal ``cost`` — 0 when no pruning is needed, 1 when the budget is spent.
    """
    done = len(alive_fractions)
    remaining = num_layers * cost - sum(alive_fractions)
    if remaining <= 0 or current <= 0:
        return 1.0
    per_layer = remaining / (num_layers - done)
    return min(1.0, max(0.0, 1.0 - per_layer / current))


def median_similarity(x: torch.Tensor, ids: torch.Tensor, tokens_per_frame: int) -> float:
    """Median over the tokens that have one of the similarity with their previous-frame counterpart
    (``predecessor_similarity``) — one video's term of FrameFusion's threshold calibration."""
    sim = predecessor_similarity(x, ids, tokens_per_frame)
    sim = sim[sim > _NO_PREDECESSOR]
    if sim.numel() == 0:
        raise ValueError("framefusion calibration needs videos of at least 2 frames")
    return float(sim.median())


def calibrate_threshold(medians: list[float]) -> float:
    """S_th for a model: the mean of the per-video median first-layer similarities (FrameFusion's
    per-model calibration; ``tools/calibrate_framefusion.py`` runs it on videos)."""
    if not medians:
        raise ValueError("framefusion calibration needs at least one video")
    return float(sum(medians) / len(medians))


def merge_decision(sim: torch.Tensor, threshold: float, upper: float) -> tuple[torch.Tensor, bool]:
    """Which tokens merge at this layer, and whether merging alone reached the budget.

    Candidates are the tokens with sim ≥ threshold. Fewer than ``upper`` of the tokens: all merge.
    Otherwise only the int(upper·n) most similar merge and the budget is met (no pruning needed).
    """
    n = sim.numel()
    cand = sim >= threshold
    if int(cand.sum()) < upper * n:
        return cand, False
    k = int(upper * n)
    merge = torch.zeros(n, dtype=torch.bool, device=sim.device)
    merge[torch.sort(sim, descending=True, stable=True).indices[:k]] = True
    return merge, True


# ---------------------------------------------------------------- stages

class _Run:
    """State shared by one FrameFusion plan step's stages during one prefill."""

    def __init__(self, params: dict, num_layers: int, threshold: float):
        self.params = params
        self.num_layers = num_layers
        self.threshold = threshold
        self.reset(1, None)

    def reset(self, n_original: int, device) -> None:
        self.phase = "merge"          # merge → prune → done
        self.sizes = torch.ones(n_original, dtype=torch.float32, device=device)
        self.history: list[float] = []
        self.info: dict = {}

    def mean_retention(self, fraction_now: float, layer: int) -> float:
        """ShaRP §5.1: mean alive fraction over all layers, the later ones keeping ``fraction_now``."""
        return (sum(self.history) + fraction_now * (self.num_layers - layer)) / self.num_layers

    def step(self, x: torch.Tensor, ids: torch.Tensor, n_original: int, tokens_per_frame: int, layer: int,
             scores=None) -> Selection:
        n = int(ids.numel())
        history = self.history
        cost = self.params["retention"]
        if self.phase == "prune":
            upper = pruning_ratio(history, n / n_original, cost, self.num_layers)
            k = min(n, max(1, int(round(n * (1.0 - upper)))))
            keep = topk_ordered(scores(), k)
            self.phase = "done"
            return Selection(keep, info={"action": "prune", "pruning_ratio": round(upper, 6),
                                         "mean_retention": round(self.mean_retention(k / n_original, layer), 6)})
        if self.phase == "done" or n == 0:
            return Selection(torch.arange(n, device=ids.device), info={"action": "none"})
        upper = pruning_ratio(history, n / n_original, cost, self.num_layers)
        sim = predecessor_similarity(x, ids, tokens_per_frame)
        merge, reached = merge_decision(sim, self.threshold, upper)
        merged_share = float(merge.sum()) / max(n, 1)
        if reached:
            self.phase = "done"
        elif merged_share < self.params["ratio_lower_bound"]:
            self.phase = "prune"
        how = None
        if not bool(merge.any()):
            keep = torch.arange(n, device=ids.device)
            values = None
        else:
            # size: a token that already absorbed others weighs by its size; layer: every token weighs 1
            # in each layer's merge, as the authors' code averages (it keeps no sizes)
            sizes = self.sizes[ids] if self.params["weighting"] == "size" else torch.ones(n, device=x.device)
            keep, target = merge_targets(merge, ids, tokens_per_frame)
            values, new_sizes = merge_into(x, sizes, target, int(keep.numel()))
            values = values.to(x.dtype)
            how = Merge(target, sizes)
            self.sizes[ids[keep]] = new_sizes
        info = {"action": "merge", "merged": int(merge.sum()), "merged_share": round(merged_share, 6),
                "pruning_ratio_bound": round(upper, 6), "threshold": self.threshold,
                "mean_retention": round(self.mean_retention(int(keep.numel()) / n_original, layer), 6)}
        return Selection(keep, values, info, how)


class FrameFusionMerge0(PreStage):
    """Layer 0's merge, on the embeddings themselves (the code merges before layer 0's attention)."""

    def __init__(self, method: str, params: dict, run: _Run):
        super().__init__(method, params)
        self.run = run

    def expected_kept(self, n_visual: int) -> int:
        """Data-free schedule (analytic FLOPs): a video with no temporal redundancy merges nothing."""
        return n_visual

    def select(self, ctx: PreContext) -> Selection:
        self.run.reset(ctx.n_original, ctx.embeds.device)
        return self.run.step(ctx.embeds, ctx.ids, ctx.n_original, ctx.layout.tokens_per_frame, 0)


class FrameFusionLayer(LayerStage):
    """Layer ``layer``: merge again, prune to the budget, or pass through once done."""

    def __init__(self, method: str, params: dict, layer: int, run: _Run):
        super().__init__(method, params, layer)
        self.run = run

    def expected_kept(self, n_visual: int) -> int:
        """Data-free schedule: nothing merges, so layer 1 prunes to the share that makes the mean over
        all layers equal the cost, (L·cost - 1)/(L - 1), and later layers keep it."""
        L = self.run.num_layers
        share = 1.0 - pruning_ratio([1.0], 1.0, self.params["retention"], L)
        return min(n_visual, max(1, int(round(share * n_visual))))

    def select(self, ctx: LayerContext) -> Selection | None:
        n_text = int(ctx.hidden.shape[0]) - int(ctx.ids.numel())
        # FrameFusion's sparsity list: the visual share every earlier layer really ran with
        # (measured, so other stages of the plan are accounted for too)
        self.run.history = [(t - n_text) / ctx.n_original for t in ctx.state.tokens_per_layer[: ctx.layer]]
        sel = self.run.step(ctx.visual_hidden, ctx.ids, ctx.n_original, ctx.layout.tokens_per_frame, ctx.layer,
                            scores=ctx.scores)
        return None if sel.info.get("action") == "none" else sel  # merging/pruning is over: no record


def build(params: dict, model_info) -> list:
    L = int(model_info.num_layers)
    threshold = params["threshold"]
    if threshold is None:
        threshold = 0.5 if str(model_info.backbone).startswith("qwen2") else 0.6
    run = _Run(params, L, float(threshold))
    return [FrameFusionMerge0("framefusion", params, run)] + \
        [FrameFusionLayer("framefusion", params, i, run) for i in range(1, L)]


register(MethodSpec(
    name="framefusion",
    title="FrameFusion",
    node="FrameFusion",
    kind="mixed",
    summary="Shallow layers merge tokens into their same-position counterpart in the previous frame when "
            "similar; then the rest is pruned by attention so the mean kept share over all layers meets the cost.",
    paper=PAPER,
    params=(
        retention_param(0.3, ref="FrameFusion README (cost = 0.3); ShaRP §5.1 equivalent retention",
                        tooltip="Cost: mean over ALL LLM layers of the visual tokens alive, as a fraction of "
                                "the ORIGINAL count (ShaRP's equivalent retention for FrameFusion)."),
        Param("threshold", "float", None, "Cosine similarity with the previous frame's same-position token "
              "at or above which a token merges. Empty = 0.6 (0.5 for Qwen2-VL / Qwen2.5-VL).",
              min=-1.0, max=1.0, step=0.01, optional=True, ref="FrameFusion §4.1 (S_th)"),
        Param("ratio_lower_bound", "float", 0.1, "Merging stops after a layer that merges less than this "
              "share of the tokens; the next layer prunes by attention.", min=0.0, max=1.0, step=0.01,
              ref="FrameFusion README (ratio_lower_bound = 0.1)"),
        Param("weighting", "choice", "size", "size: merges are size-weighted across layers (a token that absorbed "
              "others counts as that many); layer: equal weights in every layer's merge, as the authors' code.",
              choices=("size", "layer"), ref="FrameFusion code (merge by mean per layer); docs/methods/framefusion.md"),
    ),
    build=build,
    tags=("similarity", "attention", "merge"),
))
