"""HoliTom (Shao et al., NeurIPS 2025, "HoliTom: Holistic Token Merging for Fast Video Large Language
Models").

* **outer-LLM**, before the LLM:
  1. *global redundancy-aware temporal segmentation*: a window [s, e] of frames saves
     (e − s)·|{p : cos(x_t,p, x_t+1,p) > τ for every t in s..e−1}| tokens if its static positions merge;
     the partition of the video into windows that saves the most is found by dynamic
     programming over the frames (``select_static_windows``);
  2. *spatio-temporal merging*: in each window the static positions merge into their mean
     (one token, at the window's first frame); the remaining budget (the target retention of
     the ORIGINAL count) is split over every window's static tokens and every frame's dynamic
     tokens; static tokens are clustered with DPC-KNN and each cluster becomes
     β·centre + (1−β)·mean(others) (β 0.6); dynamic tokens keep the ones the vision encoder
     attends to most (a share D of them may instead be contextual clusters; D = 0 by default).
* **inner-LLM merging**, entering layer K (18 of 28): the last token's attention at layer K−1
  keeps the top (1−r) = 50% of the visual tokens; each other one is averaged into its most similar
  (cosine of hidden states) kept token, one at a time in token order, as the authors' loop does.

The inner stage yields to a later plan step's own in-LLM stage, so ``holitom+sharp`` is ShaRP Table
3's "HoliTom + ShaRP" (the inner-LLM stage replaced by ShaRP). Choices: ``docs/methods/holitom.md``.
"""
from __future__ import annotations

import math

import torch

from ..clustering import cluster_map, dpc_knn
from ..errors import PlanError
from ..layout import TokenLayout
from ..registry import MethodSpec, Param, register, retention_param
from ..stages import LayerContext, LayerStage, Merge, PreContext, PreStage, Selection
from ..temporal import consecutive_similarity, dense_index, merge_lengths, merge_static, segment_bounds, \
    window_min_similarity
from ..tokens import allocate_proportional, budget, cosine_matrix, topk_ordered, topk_per_group
from ..vision_attention import token_attention

PAPER = "HoliTom, Shao et al. NeurIPS 2025 (τ 0.8, β 0.6, D 0, K 7; inner K 18 of 28, r 0.5)"


# ---------------------------------------------------------------- global temporal segmentation

def window_savings(sim: torch.Tensor, tau: float) -> torch.Tensor:
    """[F, F] tokens saved by merging window [s, e] (s ≤ e): (e − s) × the positions whose every
    consecutive similarity inside the window exceeds τ."""
    n_steps, p = sim.shape
    n_frames = n_steps + 1
    bad = torch.zeros(n_frames, p, dtype=torch.long, device=sim.device)
    bad[1:] = torch.cumsum((~(sim > tau)).long(), 0)                         # bad steps before frame t
    static = (bad.unsqueeze(0) - bad.unsqueeze(1)) == 0                        # [s, e, P]: steps s..e-1 all good
    length = (torch.arange(n_frames, device=sim.device).view(1, -1) -
              torch.arange(n_frames, device=sim.device).view(-1, 1)).clamp_min(0)
    return static.sum(-1) * length


def best_windows(savings: torch.Tensor, max_window: int) -> tuple[list[tuple[int, int]], int]:
    """Partition of the frames into windows with the most savings (HoliTom's DP):
    dp[i] = max(dp[i−1], max_{2≤w≤W} dp[i−w] + savings[i−w+1, i]). A scan over the frames with all
    window sizes of one frame at once; ties keep the frame alone, then the shortest window."""
    n = savings.shape[0]
    dp = torch.zeros(n + 1, dtype=torch.float64)                               # dp[i+1] = best up to frame i
    start = [0] * n
    sav = savings.double().cpu()
    for i in range(n):
        w = torch.arange(1, min(i + 1, max_window) + 1)                        # w = 1: the frame alone
        j = i - w + 1                                                          # window start
        val = dp[j] + torch.where(w == 1, torch.zeros(w.numel(), dtype=torch.float64), sav[j, i])
        b = int(torch.argmax(val))                                             # first max: alone, then shortest
        dp[i + 1] = val[b]
        start[i] = i - b
    out, i = [], n - 1
    while i >= 0:
        out.append((start[i], i))
        i = start[i] - 1
    return out[::-1], int(dp[n])


def segments_from_windows(windows: list[tuple[int, int]], n_frames: int, device) -> torch.Tensor:
    seg = torch.zeros(n_frames, dtype=torch.long, device=device)
    for k, (a, b) in enumerate(windows):
        seg[a:b + 1] = k
    return seg


# ---------------------------------------------------------------- spatio-temporal merging

def outer_merge(x: torch.Tensor, ids: torch.Tensor, layout: TokenLayout, att: torch.Tensor, k_total: int,
                p: dict) -> tuple[torch.Tensor, Merge, dict]:
    """HoliTom outer-LLM pruning on the alive tokens to exactly ``k_total`` tokens (or all, if fewer).

    Returns (keep ascending alive indices, merge map from the alive tokens, info).
    """
    n = ids.numel()
    dense = dense_index(ids, layout)
    sim = consecutive_similarity(x, dense)
    if sim.shape[0] and p["temporal"]:
        windows, saved = best_windows(window_savings(sim, p["tau"]), p["max_window"])
    else:
        windows, saved = [(f, f) for f in range(layout.num_frames)], 0
    seg_of_frame = segments_from_windows(windows, layout.num_frames, x.device)
    start, length = segment_bounds(seg_of_frame)
    n_seg = start.numel()
    wmin = window_min_similarity(sim, seg_of_frame)
    mlen = merge_lengths(wmin > p["tau"], wmin, length, max(0, n - k_total))
    keep0, how0, is_static = merge_static(ids, layout, seg_of_frame, mlen)
    k0 = keep0.numel()
    frame0 = layout.frame_of(ids[keep0])
    groups = torch.where(is_static, seg_of_frame[frame0], n_seg + frame0)
    sizes = torch.bincount(groups, minlength=n_seg + layout.num_frames)
    k_g = allocate_proportional(sizes.double(), sizes, min(k_total, k0))
    # dynamic groups: dominant tokens by vision attention, the rest (share D) as contextual clusters
    dyn_group = torch.arange(k_g.numel(), device=x.device) >= n_seg
    dom_g = torch.where(dyn_group, torch.floor(k_g.double() * (1.0 - p["d"]) + 0.5).long(), torch.zeros_like(k_g))
    a0 = att[keep0].float()
    dominant = torch.zeros(k0, dtype=torch.bool, device=x.device)
    dominant[topk_per_group(torch.where(is_static, torch.full_like(a0, -1.0), a0), groups, dom_g)] = True
    # a dominant token is a cluster of its own; the others join DPC-KNN clusters (or are dropped)
    centre = torch.where(dominant, torch.arange(k0, device=x.device), torch.full((k0,), -1, device=x.device))
    rest = (~dominant).nonzero().squeeze(1)
    n_centres = k_g - dom_g
    if rest.numel() and bool((n_centres > 0).any()):
        kk = torch.minimum(torch.full_like(n_centres, p["k"]), n_centres).clamp_min(1)
        _, c_rest = dpc_knn(how0.apply(x.float(), keep0)[rest], groups[rest], n_centres, k=kk)
        centre[rest] = torch.where(c_rest >= 0, rest[c_rest.clamp_min(0)], c_rest)
    sel, how1 = cluster_map(centre, beta=p["beta"])
    info = {"windows": [[a, b] for a, b in windows], "static_saving": saved,
            "merged_static": int(n - k0), "static_tokens": int(is_static.sum()), "dominant": int(dominant.sum())}
    return keep0[sel], how0.then(how1, k0), info


class HoliTomOuter(PreStage):
    def expected_kept(self, n_visual: int) -> int:
        return budget(self.params["retention"], n_visual)

    def select(self, ctx: PreContext) -> Selection:
        if ctx.vision is None:
            raise PlanError("holitom needs the vision encoder's attention, and this model adapter does not expose it")
        att, _ = token_attention(ctx.vision)
        if att.shape[0] != ctx.layout.num_tokens:
            raise PlanError(f"holitom: vision attention covers {att.shape[0]} tokens, the layout has "
                            f"{ctx.layout.num_tokens}")
        keep, how, info = outer_merge(ctx.embeds, ctx.ids, ctx.layout, att.to(ctx.ids.device)[ctx.ids],
                                      ctx.budget(self.params["retention"]), self.params)
        return Selection(keep, how.apply(ctx.embeds, keep), info, how)


# ---------------------------------------------------------------- inner-LLM merging

def sequential_average_weights(target: torch.Tensor, n_targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed form of HoliTom's loop ``h_t ← (h_t + h_j)/2`` over the merged tokens j in index order:
    with c tokens merged into t, t keeps weight 2^−c and its i-th merged token (1-based) 2^−(c−i+1)
    (the weights sum to 1). Returns (weight of each merged token [m], weight of each target [T])."""
    m = target.numel()
    counts = torch.bincount(target, minlength=n_targets)
    order = torch.sort(target, stable=True).indices                             # index order inside a target
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(m, dtype=torch.long, device=target.device)
    rank[order] = torch.arange(m, device=target.device) - starts[target[order]] + 1
    w = torch.pow(2.0, -(counts[target] - rank + 1).double())
    return w, torch.pow(2.0, -counts.double())


def inner_merge(hidden: torch.Tensor, scores: torch.Tensor, n_keep: int) -> tuple[torch.Tensor, Merge]:
    """HoliTom inner-LLM merging: keep the ``n_keep`` best-scored tokens; every other one is averaged
    into its most similar kept token (cosine), sequentially. Returns (keep ascending, merge map)."""
    n = hidden.shape[0]
    keep = topk_ordered(scores, n_keep)
    slot = torch.full((n,), -1, dtype=torch.long, device=hidden.device)
    slot[keep] = torch.arange(keep.numel(), device=hidden.device)
    src = (slot < 0).nonzero().squeeze(1)
    weight = torch.ones(n, dtype=torch.float64, device=hidden.device)
    if src.numel():
        to = cosine_matrix(hidden[src], hidden[keep]).argmax(dim=1)
        w_src, w_tgt = sequential_average_weights(to, keep.numel())
        slot[src] = to
        weight[src] = w_src
        weight[keep] = w_tgt
    return keep, Merge(slot, weight)


class HoliTomInner(LayerStage):
    yields_to_later_layer_stage = True

    @property
    def label(self) -> str:
        return "holitom-inner"

    def expected_kept(self, n_visual: int) -> int:
        k0 = budget(self.params["retention"], n_visual)
        return max(1, int(math.floor(k0 * (1.0 - self.params["inner_ratio"]) + 0.5)))

    def select(self, ctx: LayerContext) -> Selection:
        n = int(ctx.ids.numel())
        n_keep = max(1, int(math.floor(n * (1.0 - self.params["inner_ratio"]) + 0.5)))
        keep, how = inner_merge(ctx.visual_hidden, ctx.scores(), min(n, n_keep))
        return Selection(keep, how.apply(ctx.visual_hidden, keep), {"merged": n - int(keep.numel())}, how)


def default_inner_layer(num_layers: int) -> int:
    """K: 18 of LLaVA-OneVision-7B's 28 layers, scaled to the model's depth, within 1..L-1."""
    return max(1, min(num_layers - 1, round(18 * num_layers / 28)))


def _build(params: dict, info) -> list:
    stages: list = [HoliTomOuter("holitom", params)]
    if params["inner"]:
        n_layers = int(info.num_layers)
        k = params["inner_layer"] if params["inner_layer"] is not None else default_inner_layer(n_layers)
        stages.append(HoliTomInner("holitom", params, k))
    return stages


register(MethodSpec(
    name="holitom", title="HoliTom", node="HoliTom", kind="mixed",
    summary="Globally optimal temporal windows merge static tokens, then clustering and attention keep the "
            "budget before the LLM; inside it, low-attention tokens merge into similar kept ones.",
    paper=PAPER,
    params=(
        retention_param(0.15, ref="HoliTom README (RETAIN_RATIO 0.15); Tables: 25/15/10%",
                        tooltip="Visual tokens kept by the outer-LLM stage, as a fraction of the ORIGINAL count."),
        Param("tau", "float", 0.8, "τ: a position is static in a window when every consecutive-frame cosine "
              "exceeds τ.", min=-1.0, max=1.0, step=0.05, ref="HoliTom README (T = 0.80)"),
        Param("temporal", "bool", True, "Global temporal segmentation and static merging (off: every frame its own "
              "window).", ref="HoliTom Table 4"),
        Param("max_window", "int", 1024, "Longest window (frames) the segmentation may use.", min=2, max=4096,
              step=1, ref="HoliTom code (MAX_WINDOW_SIZE 1024)"),
        Param("beta", "float", 0.6, "β: a cluster becomes β·centre + (1−β)·mean of its other tokens.", min=0.0,
              max=1.0, step=0.05, ref="HoliTom code (BETA 0.6)"),
        Param("d", "float", 0.0, "D: share of each frame's dynamic budget given to contextual clusters instead of "
              "the most attended tokens.", min=0.0, max=1.0, step=0.05, ref="HoliTom code (D 0)"),
        Param("k", "int", 7, "Neighbours for the DPC-KNN density (capped at the cluster count).", min=1, max=64,
              step=1, ref="HoliTom code (K 7)"),
        Param("inner", "bool", True, "Inner-LLM merging at layer K. A later plan step with its own in-LLM stage "
              "replaces it (ShaRP Table 3: HoliTom + ShaRP).", ref="HoliTom inner-LLM merging; ShaRP Table 3"),
        Param("inner_layer", "int", None, "K: the layer the inner merging acts on (attention from K−1). Empty = 18 "
              "of 28, scaled to the model's depth.", min=1, max=1024, step=1, optional=True,
              ref="HoliTom README (HOLITOM_k 18)"),
        Param("inner_ratio", "float", 0.5, "r: share of the visual tokens merged away at layer K.", min=0.0,
              max=0.99, step=0.05, ref="HoliTom README (HOLITOM_r 0.5)"),
    ),
    build=_build))
