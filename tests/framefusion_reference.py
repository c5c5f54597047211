"""A straightforward per-token FrameFusion merge step, for checking the batched one.

Walks the alive tokens in sequence order, remembers the last alive token seen at every grid
position, and follows the merge chains one token at a time. Slow on purpose: no shared code
with ``pruning_core.methods.framefusion``.
"""
from __future__ import annotations

import torch


def merge_step_reference(x: torch.Tensor, ids: torch.Tensor, sizes: torch.Tensor, tokens_per_frame: int,
                         threshold: float, upper: float):
    """One FrameFusion merge layer: (keep list, merged rows [k, d], merged sizes list, budget reached)."""
    n = ids.numel()
    last_at: dict[int, int] = {}
    sim = [-2.0] * n
    for i in range(n):
        pos = int(ids[i]) % tokens_per_frame
        if pos in last_at:
            a, b = x[i].double(), x[last_at[pos]].double()
            sim[i] = float(a @ b / (a.norm() * b.norm()))
        last_at[pos] = i
    cands = [i for i in range(n) if sim[i] >= threshold]
    if len(cands) < upper * n:
        merged, reached = set(cands), False
    else:
        k = int(upper * n)
        order = sorted(range(n), key=lambda i: (-sim[i], i))
        merged, reached = set(order[:k]), True
    root = list(range(n))
    last_unmerged: dict[int, int] = {}
    for i in range(n):
        pos = int(ids[i]) % tokens_per_frame
        if i in merged:
            root[i] = last_unmerged[pos]
        else:
            last_unmerged[pos] = i
    keep = [i for i in range(n) if i not in merged]
    acc = {i: torch.zeros(x.shape[1], dtype=torch.float64) for i in keep}
    tot = {i: 0.0 for i in keep}
    for i in range(n):
        w = float(sizes[i])
        acc[root[i]] += w * x[i].double()
        tot[root[i]] += w
    rows = torch.stack([acc[i] / tot[i] for i in keep]) if keep else torch.zeros(0, x.shape[1])
    return keep, rows, [tot[i] for i in keep], reached
