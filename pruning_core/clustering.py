"""Density-peak clustering with k nearest neighbours (DPC-KNN), batched over groups.

Used by PruneVid (temporal segmentation of frames, spatial clustering of static and dynamic
tokens) and HoliTom (clustering of static tokens). DPC-KNN (Du et al., 2016, as used in TCFormer
and both methods' code):

* distance      d_ij = ‖x_i − x_j‖ / √C  (through one matmul, :func:`distances`)
* local density ρ_i  = exp(−mean_{j ∈ kNN(i)} d_ij²)       (the k nearest include i itself)
* peak distance δ_i  = min_{j: ρ_j > ρ_i} d_ij, or the largest distance when i is the densest
* centers: the ``c`` tokens with the highest score δ_i · ρ_i; every other token joins its
  nearest center.

Both codebases add 1e-6 uniform noise to ρ to break ties; here ties break deterministically
(equal density: the earlier token counts as denser), so a run is reproducible.

All groups are padded to the largest one and solved in one batch: no loop over groups or tokens.
"""
from __future__ import annotations

import math

import torch

from .stages import Merge


def _padded(groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[G, S] index of each group's members (ascending), -1 where padded, and the group sizes [G]."""
    counts = torch.bincount(groups, minlength=n_groups)
    order = torch.sort(groups, stable=True).indices
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(groups.numel(), device=groups.device) - starts[groups[order]]
    s = int(counts.max()) if counts.numel() else 0
    idx = torch.full((n_groups, max(s, 1)), -1, dtype=torch.long, device=groups.device)
    idx[groups[order], rank] = order
    return idx, counts


def distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [..., n, m] / √C through one matmul (‖a‖² + ‖b‖² − 2ab, clamped at 0), in fp32."""
    a, b = a.float(), b.float()
    sq = (a * a).sum(-1).unsqueeze(-1) + (b * b).sum(-1).unsqueeze(-2) - 2.0 * (a @ b.transpose(-1, -2))
    return sq.clamp_min_(0.0).sqrt_() / math.sqrt(a.shape[-1])


def dpc_knn(x: torch.Tensor, groups: torch.Tensor, n_centers: torch.Tensor, k: int | torch.Tensor = 7
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster the rows of ``x`` [n, C] inside each group; ``n_centers[g]`` centers in group g.

    ``groups`` [n] holds ids in 0..G-1; ``k`` is the neighbour count for the density (an int or a
    per-group tensor; capped at the group size). Returns ``(is_center [n] bool, center [n])`` where
    ``center[i]`` is the row index of the center token i belongs to (a center belongs to itself);
    -1 for the tokens of a group given no center (the group is dropped).
    """
    n_groups = int(n_centers.numel())
    n = x.shape[0]
    dev = x.device
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=dev), torch.zeros(0, dtype=torch.long, device=dev)
    idx, counts = _padded(groups, n_groups)
    valid = idx >= 0
    xp = x.float()[idx.clamp_min(0)]                                          # [G, S, C]
    dist = distances(xp, xp)                                                  # [G, S, S]
    pair = valid.unsqueeze(2) & valid.unsqueeze(1)
    inf = torch.tensor(float("inf"), device=dev)
    # local density from the k nearest valid neighbours (self included, as in both codebases)
    kk = torch.as_tensor(k, device=dev).expand(n_groups) if not torch.is_tensor(k) or k.dim() == 0 else k.to(dev)
    kk = torch.minimum(kk.long().clamp_min(1), counts.clamp_min(1))
    near = torch.topk(torch.where(pair, dist, inf), int(kk.max()), dim=-1, largest=False).values
    take = torch.arange(near.shape[-1], device=dev) < kk.view(-1, 1, 1)
    msq = torch.where(take, near.clamp(max=torch.finfo(torch.float32).max) ** 2, torch.zeros_like(near)).sum(-1)
    density = torch.exp(-msq / kk.view(-1, 1).float())                        # [G, S]
    # j is denser than i: higher density, or equal density and earlier (deterministic tie-break)
    pos = torch.arange(idx.shape[1], device=dev)
    denser = (density.unsqueeze(1) > density.unsqueeze(2)) | \
             ((density.unsqueeze(1) == density.unsqueeze(2)) & (pos.view(1, 1, -1) < pos.view(1, -1, 1)))
    denser &= pair
    dmax = torch.where(pair, dist, torch.zeros_like(dist)).flatten(1).max(-1).values   # [G]
    delta = torch.where(denser, dist, inf).min(-1).values
    delta = torch.where(torch.isfinite(delta), delta, dmax.unsqueeze(1).expand_as(delta))
    score = torch.where(valid, delta * density, torch.full_like(delta, -inf))
    # the n_centers[g] best scores of each group (ties: earlier token)
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, pos.expand_as(order))
    cen = valid & (rank < torch.minimum(n_centers.to(dev).long(), counts).view(-1, 1))
    # every token joins its nearest center of the same group
    to_c = torch.where(cen.unsqueeze(1) & valid.unsqueeze(2), dist, inf)
    nearest = to_c.argmin(-1)                                                 # [G, S] slot of the center
    nearest = torch.where(cen, pos.expand_as(nearest), nearest)
    has_c = cen.any(-1, keepdim=True).expand_as(nearest)
    center_rows = torch.where(has_c, torch.gather(idx, 1, nearest), torch.full_like(idx, -1))
    is_center = torch.zeros(n, dtype=torch.bool, device=dev)
    is_center[idx[cen]] = True
    center = torch.empty(n, dtype=torch.long, device=dev)
    center[idx[valid]] = center_rows[valid]
    return is_center, center


def cluster_map(center: torch.Tensor, beta: float | None = None) -> tuple[torch.Tensor, Merge]:
    """One token per cluster, at its center's place: ``(keep [c] ascending, merge map)``.

    ``beta=None``: the mean of all members, center included (PruneVid's ``compute_cluster_vectors``).
    ``beta``: β·center + (1−β)·mean of the other members, or the center alone when it has none
    (HoliTom's ``merge_tokens_by_clustering``). ``center`` [n] as :func:`dpc_knn` returns it (-1: dropped).
    """
    n = center.numel()
    dev = center.device
    member = center >= 0
    keep = torch.unique(center[member])                                       # ascending
    slot = torch.where(member, torch.searchsorted(keep, center.clamp_min(0)), torch.full_like(center, -1))
    if beta is None:
        return keep, Merge(slot)
    is_c = center == torch.arange(n, device=dev)
    others = member & ~is_c
    n_o = torch.bincount(slot[others], minlength=keep.numel()).float()
    w = torch.where(others, (1.0 - beta) / n_o[slot.clamp_min(0)].clamp_min(1.0), torch.zeros(n, device=dev))
    w = torch.where(is_c, torch.where(n_o[slot.clamp_min(0)] > 0, torch.full((n,), beta, device=dev),
                                      torch.ones(n, device=dev)), w)
    return keep, Merge(slot, w)


def merge_clusters(x: torch.Tensor, center: torch.Tensor, beta: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keep, values [c, C])`` of :func:`cluster_map` applied to ``x`` [n, C]."""
    keep, how = cluster_map(center, beta)
    return keep, how.apply(x.float(), keep)
