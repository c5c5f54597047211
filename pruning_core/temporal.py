"""Static tokens of a video segment: the pieces PruneVid and HoliTom share.

A *segment* is a run of consecutive frames (``seg_of_frame`` [F], non-decreasing from 0). A grid
position is *static* in a segment when its token barely changes over the segment's frames; the
segment's static tokens at that position are then merged into one token (their mean), stored at
the position's token in the segment's FIRST frame. Everything works on the tokens alive now
(original ids ascending + the TokenLayout), so it runs after other stages and on every backbone:
a position counts as static only where every frame of the segment still has its token.
"""
from __future__ import annotations

import torch

from .layout import TokenLayout
from .stages import Merge
from .tokens import normalize, rowwise_cosine


def dense_index(ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """[F, P] index into the alive tokens of the token at (frame, position), -1 where none is alive."""
    grid = torch.full((layout.num_tokens,), -1, dtype=torch.long, device=ids.device)
    grid[ids] = torch.arange(ids.numel(), device=ids.device)
    return grid.view(layout.num_frames, layout.tokens_per_frame)


def consecutive_similarity(x: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """[F-1, P] cosine between the tokens at one position in frames f and f+1; -inf where either is gone."""
    both = (dense[:-1] >= 0) & (dense[1:] >= 0)
    sim = rowwise_cosine(x[dense[:-1].clamp_min(0)], x[dense[1:].clamp_min(0)])
    return torch.where(both, sim, torch.full_like(sim, float("-inf")))


def segment_bounds(seg_of_frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First frame [M] and length [M] of every segment."""
    n_seg = int(seg_of_frame.max()) + 1 if seg_of_frame.numel() else 0
    length = torch.bincount(seg_of_frame, minlength=n_seg)
    return torch.cumsum(length, 0) - length, length


def mean_pairwise_similarity(x: torch.Tensor, dense: torch.Tensor, seg_of_frame: torch.Tensor) -> torch.Tensor:
    """[M, P] mean cosine over all ordered pairs of DIFFERENT frames of a segment at each position
    (PruneVid static/dynamic separation): (‖Σ_t x̂_t‖² − W) / (W(W−1)) with x̂ unit-normalised; -inf for one-frame
    segments and where a frame has lost the token."""
    start, length = segment_bounds(seg_of_frame)
    n_seg = start.numel()
    alive = dense >= 0
    xn = normalize(x)[dense.clamp_min(0)] * alive.unsqueeze(-1)              # [F, P, C]
    s = torch.zeros(n_seg, *xn.shape[1:], device=x.device).index_add_(0, seg_of_frame, xn)
    w = length.double().view(-1, 1)
    pair = ((s.double() ** 2).sum(-1) - w) / (w * (w - 1)).clamp_min(1)
    full = torch.zeros(n_seg, dense.shape[1], dtype=torch.long, device=x.device).index_add_(
        0, seg_of_frame, alive.long()) == length.view(-1, 1)
    ok = full & (length.view(-1, 1) > 1)
    return torch.where(ok, pair, torch.full_like(pair, float("-inf"))).float()


def window_min_similarity(sim: torch.Tensor, seg_of_frame: torch.Tensor) -> torch.Tensor:
    """[M, P] smallest consecutive-frame similarity inside each segment (HoliTom: a position is
    static when every step of the window stays above τ); -inf for one-frame segments."""
    start, length = segment_bounds(seg_of_frame)
    n_seg = start.numel()
    if sim.shape[0] == 0:
        return torch.full((n_seg, sim.shape[1]), float("-inf"), device=sim.device)
    # step f (frame f -> f+1) lies inside segment s when both frames do
    inside = seg_of_frame[:-1] == seg_of_frame[1:]
    seg_step = seg_of_frame[:-1]
    val = torch.where(inside.unsqueeze(1), sim, torch.full_like(sim, float("inf")))
    out = torch.full((n_seg, sim.shape[1]), float("inf"), device=sim.device)
    out = out.scatter_reduce(0, seg_step.view(-1, 1).expand_as(val), val, reduce="amin")
    return torch.where(length.view(-1, 1) > 1, out, torch.full_like(out, float("-inf")))


def merge_lengths(static: torch.Tensor, priority: torch.Tensor, length: torch.Tensor, allowed: int | None) -> torch.Tensor:
    """[M, P] frames merged from the segment start at each position (1 = nothing merged).

    ``static`` [M, P] marks the static positions; merging one saves ``length-1`` tokens. With an
    ``allowed`` cap on the tokens saved (so a later budget can still be met exactly), positions are
    taken by descending ``priority`` (ties: earlier segment, then earlier position) and the last
    one taken merges only its first ``remaining+1`` frames. ``allowed=None``: every static position.
    """
    full = torch.where(static, length.view(-1, 1).expand_as(static), torch.ones_like(static, dtype=torch.long))
    if allowed is None:
        return full
    save = (full - 1).flatten()
    order = torch.sort(torch.where(static, priority, torch.full_like(priority, float("-inf"))).flatten(),
                       descending=True, stable=True).indices
    before = torch.cumsum(save[order], 0) - save[order]
    take = (torch.clamp(int(allowed) - before, min=0)).minimum(save[order])
    out = torch.empty_like(save)
    out[order] = take
    return (out + 1).view_as(static)


def merge_static(ids: torch.Tensor, layout: TokenLayout, seg_of_frame: torch.Tensor, mlen: torch.Tensor
                 ) -> tuple[torch.Tensor, Merge, torch.Tensor]:
    """Merge each position's first ``mlen[s, p]`` frames of segment s into one token (their mean),
    kept at the first frame's token (PruneVid and HoliTom static merging).

    Returns ``(keep [k] ascending alive indices, merge map, merged [k] bool: a static token)``.
    """
    n = ids.numel()
    frame, pos = layout.frame_of(ids), ids % layout.tokens_per_frame
    start, _ = segment_bounds(seg_of_frame)
    seg = seg_of_frame[frame]
    offset = frame - start[seg]
    dense = dense_index(ids, layout)
    joins = (offset < mlen[seg, pos]) & (mlen[seg, pos] > 1)
    head = torch.where(joins, dense[start[seg], pos], torch.arange(n, device=ids.device))
    keep = torch.unique(head)
    slot = torch.searchsorted(keep, head)
    sizes = torch.bincount(slot, minlength=keep.numel())
    return keep, Merge(slot), sizes > 1
