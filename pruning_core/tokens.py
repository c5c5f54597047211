"""Shared token math used by every method: similarity, budgets, ordered top-k, grouped top-k, merging.

Each function is a pure tensor function; methods compose them instead of re-writing them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Unit-normalise the last dim in fp32 (cosine similarity is computed in fp32 everywhere)."""
    return F.normalize(x.float(), dim=-1, eps=1e-12)


def cosine_matrix(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise cosine similarity [..., n, m] between rows of ``a`` and ``b`` (``b`` defaults to ``a``)."""
    an = normalize(a)
    bn = an if b is None else normalize(b)
    return an @ bn.transpose(-1, -2)


def rowwise_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of matching rows, [...]."""
    return (normalize(a) * normalize(b)).sum(-1)


def budget(retention: float, n_original: int, n_current: int | None = None) -> int:
    """Tokens to keep for a retention relative to the ORIGINAL visual count.

    Rounded to nearest, at least 1, at most the tokens still alive.
    """
    k = max(1, int(math.floor(retention * n_original + 0.5)))
    return min(k, n_original if n_current is None else n_current)


def topk_ordered(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores, returned in ascending (sequence) order.

    Ties break towards the earlier index, so the result is deterministic.
    """
    n = scores.shape[-1]
    k = max(0, min(k, n))
    # a stable descending sort keeps equal scores in index order
    order = torch.sort(scores.float(), dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.sort(order, dim=-1).values


def topk_per_group(scores: torch.Tensor, groups: torch.Tensor, k_per_group: torch.Tensor) -> torch.Tensor:
    """Ascending indices of the ``k_per_group[g]`` best scores inside each group ``g``.

    ``groups`` [n] holds a group id in ``0..G-1`` for every token; one sort does all groups.
    """
    n = scores.shape[0]
    order = torch.sort(scores.float(), descending=True, stable=True).indices
    g_sorted = groups[order]
    # rank of each sorted entry within its group: stable sort by group keeps score order
    by_group = torch.sort(g_sorted, stable=True)
    g_of = by_group.values
    starts = torch.searchsorted(g_of, torch.arange(int(k_per_group.numel()), device=groups.device))
    rank = torch.arange(n, device=groups.device) - starts[g_of]
    chosen = order[by_group.indices[rank < k_per_group.to(groups.device)[g_of]]]
    return torch.sort(chosen).values


def uniform_ids(n: int, k: int, device=None) -> torch.Tensor:
    """k indices spread evenly over range(n), ascending and unique."""
    k = max(0, min(k, n))
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.floor((torch.arange(k, device=device, dtype=torch.float64) + 0.5) * n / k).long().clamp_(max=n - 1)


def merge_into(values: torch.Tensor, sizes: torch.Tensor, target: torch.Tensor, n_targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted mean of ``values`` [n, d] grouped by ``target`` [n] (ids in 0..n_targets-1).

    Returns (merged [n_targets, d], merged sizes [n_targets]). This is ToMe's merge: a kept
    token that absorbs others becomes the size-weighted mean, its position unchanged.
    """
    d = values.shape[-1]
    w = sizes.to(values.dtype).unsqueeze(-1)
    acc = torch.zeros(n_targets, d, dtype=values.dtype, device=values.device).index_add_(0, target, values * w)
    tot = torch.zeros(n_targets, dtype=values.dtype, device=values.device).index_add_(0, target, sizes.to(values.dtype))
    return acc / tot.clamp_min(1e-12).unsqueeze(-1), tot


def allocate_proportional(weights: torch.Tensor, caps: torch.Tensor, total: int, minimum: int = 0) -> torch.Tensor:
    """Split ``total`` tokens over groups in proportion to ``weights`` [G], each within [min(minimum, cap), cap].

    Adams' divisor method: group g gets ⌈s·w_g⌉ (clamped) for the one scale s that makes the
    counts sum to ``min(total, caps.sum())`` exactly. So weights that are already target counts
    w_g = r_g·f_g reproduce ⌈r_g·f_g⌉ when ``total`` is their ceil-sum. The ``minimum`` slots come
    first; ties go to the larger weight, then to the lower group index. One sort over all slots.
    """
    caps = caps.long().clamp_min(0)
    device = caps.device
    n_groups = caps.numel()
    total = max(0, min(int(total), int(caps.sum())))
    if total == 0 or n_groups == 0:
        return torch.zeros(n_groups, dtype=torch.long, device=device)
    w = weights.double().to(device).clamp_min(0.0)
    group = torch.repeat_interleave(torch.arange(n_groups, device=device), caps)
    starts = torch.cumsum(caps, 0) - caps
    slot = torch.arange(group.numel(), device=device) - starts[group]
    wg = w[group]
    # slot j of group g is filled once the scale passes j / w_g (Adams: ceil rounding)
    key = torch.where(wg > 0, slot.double() / wg.clamp_min(1e-300), torch.full_like(wg, float("inf")))
    order = torch.sort(-wg, stable=True).indices
    order = order[torch.sort(key[order], stable=True).indices]
    mandatory = (slot < int(minimum))[order]
    order = order[torch.sort((~mandatory).long(), stable=True).indices]
    return torch.bincount(group[order[:total]], minlength=n_groups)
