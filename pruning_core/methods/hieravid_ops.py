"""HieraVid math (HieraVid.txt §3, eq. 1–12) as pure tensor functions.

Tokens are the visual tokens alive now, in sequence order, described by their ORIGINAL ids and a
TokenLayout (frame, row, col), so every function works after earlier stages and on every backbone.
Interpretations of ambiguous equations are written down in ``docs/methods/hieravid.md``.
"""
from __future__ import annotations

import math

import torch

from ..dpp import greedy_map_lowrank
from ..flops import layer_flops
from ..layout import TokenLayout
from ..matching import reference_flops, solve_rising
from ..tokens import allocate_proportional, cosine_matrix, merge_into, rowwise_cosine, topk_ordered, topk_per_group


# ---------------------------------------------------------------- §3.1.1 merge-ratio segmentation

def position_predecessors(ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """For each alive token, the alive index of the token at the same (row, col) in the nearest
    earlier frame that still has one; -1 if none. With a full grid that is frame t-1 (eq. 1)."""
    n = ids.numel()
    pos = ids % layout.tokens_per_frame
    # ids are frame-major, so a stable sort by position orders each position's tokens by frame
    order = torch.sort(pos, stable=True).indices
    same = torch.zeros(n, dtype=torch.bool, device=ids.device)
    if n > 1:
        same[1:] = pos[order[1:]] == pos[order[:-1]]
    prev_sorted = torch.where(same, torch.roll(order, 1), torch.full_like(order, -1))
    pred = torch.empty_like(order)
    pred[order] = prev_sorted
    return pred


def temporal_similarity(x: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """S_t(i, j) of eq. 1 for every alive token: cosine to its same-position predecessor, -inf if none."""
    s = rowwise_cosine(x, x[pred.clamp(min=0)])
    return torch.where(pred >= 0, s, torch.full_like(s, float("-inf")))


def static_set(sim: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [n]: the Top-K of eq. 2–3 over the whole video (K = R_merge·N; ties → earlier token).
    Tokens without a predecessor (-inf) are never in it."""
    k = max(0, min(int(k), int(torch.isfinite(sim).sum())))
    mask = torch.zeros(sim.shape, dtype=torch.bool, device=sim.device)
    mask[topk_ordered(sim, k)] = True
    return mask


def overlap_ratios(static: torch.Tensor, frame: torch.Tensor, n_frames: int) -> torch.Tensor:
    """O_t of eq. 2 [F]: share of frame t's alive tokens in the Top-K set. Frame 0 and frames with
    no alive tokens have nothing to compare with and get 1 (never a boundary)."""
    alive = torch.bincount(frame, minlength=n_frames).double()
    hits = torch.bincount(frame, weights=static.double(), minlength=n_frames)
    o = torch.where(alive > 0, hits / alive.clamp_min(1), torch.ones_like(alive))
    o[0] = 1.0
    return o


def segment_of_frame(overlap: torch.Tensor, beta: float) -> torch.Tensor:
    """Segment index of every frame [F]: a new segment starts at frame t when O_t < β (§3.1.1)."""
    return torch.cumsum((overlap < beta).long(), 0)


def merge_static_runs(x: torch.Tensor, pred: torch.Tensor, merged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3: every run of same-position tokens whose later members are in the Top-K set becomes the
    mean of the run, stored at the run's first occurrence; the other members are dropped.

    Returns (keep: ascending alive indices of the run heads, values: their merged rows).
    """
    keep, target = static_run_targets(pred, merged)
    values, _ = merge_into(x, torch.ones(x.shape[0], dtype=x.dtype, device=x.device), target, keep.numel())
    return keep, values


def static_run_targets(pred: torch.Tensor, merged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep: the run heads of eq. 3, target [n]: the slot in ``keep`` of every token's run head)."""
    n = pred.shape[0]
    idx = torch.arange(n, device=pred.device)
    # follow predecessor links to the head with pointer doubling (runs are chains; log2(F) rounds)
    head = torch.where(merged, pred, idx)
    for _ in range(max(1, math.ceil(math.log2(max(n, 2))))):
        nxt = head[head]
        if torch.equal(nxt, head):
            break
        head = nxt
    keep = (~merged).nonzero().squeeze(1)
    slot = torch.full((n,), -1, dtype=torch.long, device=pred.device)
    slot[keep] = torch.arange(keep.numel(), device=pred.device)
    return keep, slot[head]


# ---------------------------------------------------------------- §3.1.2 segment budget allocation

def segment_means(x: torch.Tensor, seg: torch.Tensor, n_seg: int) -> torch.Tensor:
    """g_m [M, d]: average pooling of each segment's tokens (empty segments: zeros)."""
    g, _ = merge_into(x.float(), torch.ones(x.shape[0], device=x.device), seg, n_seg)
    return g


def segment_scores(g: torch.Tensor, lam: float) -> torch.Tensor:
    """b_m of eq. 4: λ·s(g_m, ḡ_r) + (1-λ)·(1 - s(g_m, ḡ_l)), with ḡ_l, ḡ_r the sums of the segments
    before and after m. The first segment has no ḡ_l and the last no ḡ_r: that term takes the mean
    of the same term over the segments where it exists (neutral, neither favoured nor penalised)."""
    m = g.shape[0]
    g = g.double()
    csum = torch.cumsum(g, 0)
    left = torch.cat([torch.zeros_like(g[:1]), csum[:-1]], 0)
    right = csum[-1:] - csum
    rep = rowwise_cosine(g, right).double()
    div = 1.0 - rowwise_cosine(g, left).double()
    has_l = torch.arange(m, device=g.device) > 0
    has_r = torch.arange(m, device=g.device) < m - 1
    if m > 1:
        rep = torch.where(has_r, rep, rep[has_r].mean())
        div = torch.where(has_l, div, div[has_l].mean())
    else:
        rep, div = torch.zeros_like(rep), torch.zeros_like(div)
    return lam * rep + (1.0 - lam) * div


def segment_keep_ratios(b: torch.Tensor, base: float, r_var: float) -> torch.Tensor:
    """R^{i,m} of eq. 5: base ratio + R_var·(b_m − mean b)/std b, clipped to [0, 1].

    Used as the share of segment m kept (k = R^{i,m}·N_m, §3.2), so segments with a higher b
    keep more. Population std; a constant b (or one segment) gives every segment the base ratio.
    """
    b = b.double()
    std = b.std(correction=0) if b.numel() > 1 else b.new_zeros(())
    z = torch.where(std > 1e-12, (b - b.mean()) / std.clamp_min(1e-12), torch.zeros_like(b))
    return (base + r_var * z).clamp(0.0, 1.0)


def segment_budgets(ratios: torch.Tensor, sizes: torch.Tensor, total: int) -> torch.Tensor:
    """Integer budgets [M] ≈ R^{i,m}·N_m that sum to ``total`` exactly, each within [1, N_m]
    (every non-empty segment keeps a token when the total allows)."""
    return allocate_proportional(ratios.double() * sizes.double(), sizes, total, minimum=1)


# ---------------------------------------------------------------- §3.2 frame-level DPP

def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.double(), dim=-1)


def relevance(query: torch.Tensor, vis: torch.Tensor, features: str = "raw") -> torch.Tensor:
    """r of eq. 8: min-max(softmax(H_t·H_vᵀ/√d)), in float64; all ones when every score is equal.

    ``features`` ``raw``: the hidden states as they are (eq. 8 literally); ``cosine``: H_t and H_v
    scaled to unit length first (the softmax then sees cosines/√d, so r is not dominated by a few
    large-norm tokens).
    """
    d = vis.shape[-1]
    q, v = (query.double(), vis.double()) if features == "raw" else (_unit(query), _unit(vis))
    p = torch.softmax((v @ q) / math.sqrt(d), dim=-1)
    lo, hi = p.min(), p.max()
    if float(hi - lo) <= 0.0:
        return torch.ones_like(p)
    return (p - lo) / (hi - lo)


def dpp_features(vis: torch.Tensor, r: torch.Tensor, features: str = "raw") -> torch.Tensor:
    """F with F·Fᵀ = L̃ = diag(r)·L·diag(r) (eq. 9), in float64.

    ``raw``: L = H_v·H_vᵀ/d (eq. 9 on the hidden states); ``cosine``: L = the cosine-similarity
    kernel of H_v (unit rows, L_ii = 1).
    """
    v = vis.double() / math.sqrt(vis.shape[-1]) if features == "raw" else _unit(vis)
    return v * r.double().unsqueeze(-1)


def dpp_select(vis: torch.Tensor, r: torch.Tensor, seg: torch.Tensor, k_per_seg: torch.Tensor,
               features: str = "raw", stats: dict | None = None) -> torch.Tensor:
    """Eq. 9–10: greedy MAP of L̃ restricted to each segment's block, k_m tokens from block m.

    All blocks run as one batch (``dpp.greedy_map_lowrank``) in float64: in float32 the round-off
    of the incremental Cholesky gains reaches real gains after a few picks and the selection
    drifts from the exact greedy. When a block's kernel is exhausted (more picks than its rank)
    the rest of its budget goes to the most relevant tokens. ``stats`` receives ``dpp_picks``
    (picks by determinant gain) and ``fallback_picks`` (by relevance). Returns ascending alive indices.
    """
    picks = greedy_map_lowrank(dpp_features(vis, r, features), k_per_seg, seg, priority=r.double(), stats=stats)
    picks = picks[picks >= 0]
    return torch.sort(picks).values


def topk_select(scores: torch.Tensor, seg: torch.Tensor, k_per_seg: torch.Tensor) -> torch.Tensor:
    """The Table 4 ablation "- Frame-level DPP": FastV-style top-k of ``scores`` inside each segment."""
    return topk_per_group(scores, seg, k_per_seg)


# ---------------------------------------------------------------- §3.3 layer-level schedule

def auto_stages(num_layers: int) -> int:
    """Number of stages n: 4 for 28 layers (§4.1), scaled with depth, at least 2 when the model has
    a layer to prune at, never more than the layers."""
    if num_layers < 2:
        return 1
    return min(num_layers, max(2, round(4 * num_layers / 28)))


def stage_starts(num_layers: int, n_stages: int) -> list[int]:
    """First layer of every stage: stage i covers layers [round(i·L/n), round((i+1)·L/n))."""
    return [round(i * num_layers / n_stages) for i in range(n_stages)]


def stage_retentions(target: float, starts: list[int], num_layers: int, keep_ratio: float,
                     n_visual: int, d: int, m: int) -> list[float]:
    """Visual retention entering each stage, ρ_i = ρ_1·γ^(i-1) (eq. 11, γ = ``keep_ratio``), with ρ_1
    chosen so the eq. 12 prefill FLOPs of the visual tokens equal those of keeping ``target`` at
    every layer (the papers' "relative token budget"). ρ_1 is capped at 1."""
    widths = [b - a for a, b in zip(starts, starts[1:] + [num_layers])]
    goal = reference_flops("constant", target, 0, n_visual, num_layers, d, m)

    def cost(rho1: float) -> float:
        return sum(w * layer_flops(rho1 * keep_ratio ** i * n_visual, d, m) for i, w in enumerate(widths))

    rho1, _ = solve_rising(cost, goal, target, 1.0)   # ρ_1 ≥ target: later stages keep less
    return [rho1 * keep_ratio ** i for i in range(len(widths))]
