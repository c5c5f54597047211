"""Greedy MAP inference for determinantal point processes (HieraVid eq. 6–7, 10).

``greedy_map`` is the fast greedy algorithm of Chen, Zhang & Zhou (NeurIPS 2018, "Fast Greedy MAP
Inference for DPP"): instead of recomputing det(L_S ∪ {i}) for every candidate, it keeps for
every item the incremental Cholesky row c_i and the residual gain d_i² = L_ii − ‖c_i‖², so that

    log det(L_{S∪{i}}) = log det(L_S) + log d_i²            (Chen et al. eq. 3–5)

and one selection step costs O(n·t). k steps cost O(n·k²). Many independent problems (HieraVid's
segments, eq. 10) run as one padded batch; the only Python loop is over the k selection steps.

``greedy_map_reference`` is the straightforward version (re-solve L_S for every step, O(n·k³)),
kept for tests and ``bench/dpp.py``.
"""
from __future__ import annotations

from typing import Callable

import torch

RowFn = Callable[[torch.Tensor], torch.Tensor]
_MM_BLOCKS = 8


def _segment_layout(seg: torch.Tensor, n_seg: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sizes [M] and a padded map [M, n_max] from each segment's slots to item indices (pads = n)."""
    n = seg.numel()
    sizes = torch.bincount(seg, minlength=n_seg)
    order = torch.sort(seg, stable=True).indices
    starts = torch.cumsum(sizes, 0) - sizes
    local = torch.arange(n, device=seg.device) - starts[seg[order]]
    n_max = int(sizes.max()) if n_seg else 0
    pad = torch.full((n_seg, n_max), n, dtype=torch.long, device=seg.device)
    pad[seg[order], local] = order
    return sizes, pad


def _greedy(diag: torch.Tensor, seg: torch.Tensor, k: torch.Tensor, row_fn: RowFn,
            priority: torch.Tensor | None, stats: dict | None = None) -> torch.Tensor:
    """Chen et al.'s Algorithm 1 run for M independent problems at once.

    Items are flat [n]; ``seg`` [n] says which problem (block of the block-diagonal kernel, eq. 10)
    each belongs to, -1 for none. ``row_fn(j)`` with j [M] item ids returns [n]: L(i, j_{seg(i)}).
    Returns [M, k_max] selected item ids in selection order, -1 where a problem's k is smaller.
    ``stats``, when given, receives ``dpp_picks`` / ``fallback_picks``: how many picks were made by
    determinant gain and how many by priority once a block's gains had run out.
    """
    n = diag.numel()
    n_seg = k.numel()
    dev, dt = diag.device, diag.dtype
    valid = (seg >= 0) & torch.isfinite(diag)
    seg_c = seg.clamp(min=0)
    sizes, pad = _segment_layout(torch.where(valid, seg_c, torch.full_like(seg_c, n_seg)), n_seg + 1)
    sizes, pad = sizes[:n_seg], pad[:n_seg]
    k = k.to(dev).long().clamp(min=0).minimum(sizes)
    k_max = int(k.max()) if n_seg else 0
    out = torch.full((n_seg, k_max), -1, dtype=torch.long, device=dev)
    fallback = torch.zeros((), dtype=torch.long, device=dev)
    if stats is not None:
        stats.update(dpp_picks=0, fallback_picks=0)
    if k_max == 0:
        return out
    neg_inf = torch.tensor(float("-inf"), dtype=dt, device=dev)
    gain = torch.cat([torch.where(valid, diag, neg_inf), neg_inf.view(1)])       # slot n: the pad sentinel
    prio_src = diag if priority is None else priority.to(dt)
    prio = torch.cat([torch.where(valid, prio_src, neg_inf), neg_inf.view(1)])
    # gains below 100 ulp of a block's largest diagonal entry are round-off (Chen et al. stop at ε)
    tol = 100.0 * torch.finfo(dt).eps * gain[pad].clamp_min(0).amax(1).clamp_min(torch.finfo(dt).tiny)
    blocks = torch.arange(n_seg, device=dev)
    n_max = pad.shape[1]
    # many blocks: the Cholesky rows live per block, padded [M, k_max, n_max], so a step's update is one
    # batched GEMV over each block's own rows (no [t, n] gather of every item's block column); few
    # blocks, or padding that would cost more than 4x the flat rows: flat [k_max, n]
    padded = n_seg > _MM_BLOCKS and n_seg * n_max <= 4 * n
    if padded:
        real = pad < n
        local = torch.zeros(n + 1, dtype=torch.long, device=dev)               # item -> its slot in its block
        local[pad[real]] = torch.arange(n_max, device=dev).expand_as(pad)[real]
        flat_pos = torch.full((n,), n_seg * n_max, dtype=torch.long, device=dev)  # item -> padded slot (else a zero)
        flat_pos[pad[real]] = torch.arange(n_seg * n_max, device=dev).view(n_seg, n_max)[real]
        chol_p = torch.zeros(n_seg, k_max, n_max, dtype=dt, device=dev)
        zero = torch.zeros(1, dtype=dt, device=dev)
    else:
        chol = torch.zeros(k_max, n, dtype=dt, device=dev)
    for t in range(k_max):
        active = t < k
        j = pad[blocks, gain[pad].argmax(1)]
        best = gain[j]
        # once the chosen set spans every remaining item of a block, fill its budget by priority
        degenerate = best <= tol
        j = torch.where(degenerate, pad[blocks, prio[pad].argmax(1)], j)
        best = gain[j]
        out[:, t] = torch.where(active, j, torch.full_like(j, -1))
        fallback += (degenerate & active).sum()
        j_safe = torch.where(j < n, j, torch.zeros_like(j))
        row = row_fn(j_safe)                                                   # [n]
        if t and padded:
            c_j = chol_p[blocks, :t, local[j_safe]]                           # [M, t]
            upd = torch.bmm(c_j.unsqueeze(1), chol_p[:, :t]).reshape(-1)       # [M·n_max]
            row = row - torch.cat([upd, zero])[flat_pos]
        elif t:
            c_j = chol[:t, j_safe]                                             # [t, M]
            if n_seg <= _MM_BLOCKS:   # one GEMM for all blocks beats a [t, n] gather when blocks are few
                row = row - torch.mm(c_j.T, chol[:t]).gather(0, seg_c.view(1, -1)).squeeze(0)
            else:
                row = row - (chol[:t] * c_j[:, seg_c]).sum(0)
        e = row / best.clamp_min(tol).sqrt()[seg_c]
        e = torch.where((active & ~degenerate)[seg_c] & valid, e, torch.zeros_like(e))
        if padded:
            chol_p[:, t] = torch.cat([e, zero])[pad]
        else:
            chol[t] = e
        gain[:n] -= e * e
        taken = torch.where(active, j, torch.full_like(j, n))                 # finished blocks hit the sentinel
        gain[taken] = neg_inf
        prio[taken] = neg_inf
    if stats is not None:
        n_fb = int(fallback)
        stats.update(dpp_picks=int(k.sum()) - n_fb, fallback_picks=n_fb)
    return out


def greedy_map(kernel: torch.Tensor, k: int | torch.Tensor, valid: torch.Tensor | None = None,
               priority: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy MAP of eq. 7, argmax_{|S|=k} det(L_S), by the fast incremental-Cholesky algorithm.

    kernel: [n, n] or a batch [B, n, n] of PSD kernels; k: int or [B]; valid: [B, n] bool (padding);
    priority: [B, n] fills a budget once every remaining gain is zero (default L_ii).
    Returns indices in selection order: [k], or [B, k_max] with -1 where a row's k is smaller.
    """
    single = kernel.dim() == 2
    L = kernel.unsqueeze(0) if single else kernel
    bsz, n, _ = L.shape
    ks = torch.as_tensor(k, device=L.device).reshape(-1).expand(bsz)
    seg = torch.arange(bsz, device=L.device).repeat_interleave(n)
    if valid is not None:
        seg = torch.where(valid.reshape(-1), seg, torch.full_like(seg, -1))
    block = torch.arange(bsz, device=L.device).repeat_interleave(n)
    local = torch.arange(n, device=L.device).repeat(bsz)

    def row(j: torch.Tensor) -> torch.Tensor:
        # L_b(i, j_b) for every item i of block b (j_b is a flat id; its local column is j_b mod n)
        return L[block, local, (j % n)[block]]

    diag = torch.diagonal(L, dim1=-2, dim2=-1).reshape(-1)
    out = _greedy(diag, seg, ks, row, None if priority is None else priority.reshape(-1))
    out = torch.where(out >= 0, out % n, out)
    return out[0] if single else out


def _block_kernel_rows(feats: torch.Tensor, seg: torch.Tensor, n_seg: int) -> RowFn:
    """Row lookup into the diagonal blocks L_m = F_m·F_mᵀ (eq. 10), stored ragged: Σ n_m² entries.

    One GEMM per block, once; each greedy step is then a gather of n entries.
    """
    n = seg.numel()
    valid = seg >= 0
    sizes, pad = _segment_layout(torch.where(valid, seg, torch.full_like(seg, n_seg)), n_seg + 1)
    sizes, pad = sizes[:n_seg], pad[:n_seg]
    real = pad < n
    local = torch.zeros(n, dtype=torch.long, device=seg.device)
    local[pad[real]] = torch.arange(pad.shape[1], device=seg.device).expand_as(pad)[real]
    blocks = [feats[pad[b, :m]] for b, m in enumerate(sizes.tolist())]
    kernel = torch.cat([(f @ f.T).reshape(-1) for f in blocks] + [feats.new_zeros(1)])
    seg_c = seg.clamp(min=0)
    start = (torch.cumsum(sizes * sizes, 0) - sizes * sizes)[seg_c] + local      # entry (0, i) of i's block
    stride = sizes[seg_c]
    pad_entry = kernel.numel() - 1                                              # a zero, for outside items

    def row(j: torch.Tensor) -> torch.Tensor:
        # L_m(j_m, i) = block_m[local(j_m)·n_m + local(i)]
        idx = start + local[j][seg_c] * stride
        return kernel[torch.where(valid, idx, torch.full_like(idx, pad_entry))]

    return row


def greedy_map_lowrank(feats: torch.Tensor, k: int | torch.Tensor, seg: torch.Tensor | None = None,
                       priority: torch.Tensor | None = None, max_kernel_entries: int = 1 << 26,
                       stats: dict | None = None) -> torch.Tensor:
    """``greedy_map`` for L = F·Fᵀ restricted to blocks (eq. 9–10), given the features F [n, d].

    seg [n]: block id in 0..M-1, -1 for items outside every block (None: one block); k int or [M].
    The diagonal blocks are formed once by GEMM when they fit in ``max_kernel_entries`` (Σ n_m²),
    so a step costs O(n·t); otherwise each step computes its kernel rows F·f_j on demand, O(n·d),
    and memory stays O(n·(k + d)). Either way no Python loop runs over candidates.
    Returns item ids in selection order: [k] for one block, else [M, k_max] padded with -1.
    """
    n = feats.shape[0]
    single = seg is None
    if single:
        seg = torch.zeros(n, dtype=torch.long, device=feats.device)
    n_seg = 1 if single else (int(seg.max()) + 1 if n else 0)
    ks = torch.as_tensor(k, device=feats.device).reshape(-1).expand(n_seg)
    seg_c = seg.clamp(min=0)
    sizes = torch.bincount(seg[seg >= 0], minlength=n_seg)
    if int((sizes * sizes).sum()) <= max_kernel_entries:
        row = _block_kernel_rows(feats, seg, n_seg)
    else:
        def row(j: torch.Tensor) -> torch.Tensor:
            if n_seg <= _MM_BLOCKS:
                return torch.mm(feats, feats[j].T).gather(1, seg_c.view(-1, 1)).squeeze(1)
            return (feats * feats[j][seg_c]).sum(-1)
    out = _greedy((feats * feats).sum(-1), seg, ks, row, priority, stats)
    return out[0] if single else out


def greedy_map_reference(kernel: torch.Tensor, k: int) -> torch.Tensor:
    """The straightforward greedy MAP, O(n·k³): at each step re-solve L_S and score every candidate by

        det(L_{S∪{i}}) / det(L_S) = L_ii − L_{iS} L_S⁻¹ L_{Si}            (Schur complement)

    Same choices as ``greedy_map`` (ties → lowest index), without the degenerate fallback.
    """
    n = kernel.shape[0]
    chosen: list[int] = []
    avail = torch.ones(n, dtype=torch.bool, device=kernel.device)
    for _ in range(min(k, n)):
        if chosen:
            S = torch.tensor(chosen, device=kernel.device)
            L_S = kernel[S][:, S]
            L_Si = kernel[S]                                   # [t, n]
            gains = torch.diagonal(kernel) - (L_Si * torch.linalg.solve(L_S, L_Si)).sum(0)
        else:
            gains = torch.diagonal(kernel).clone()
        gains = torch.where(avail, gains, torch.full_like(gains, float("-inf")))
        j = int(gains.argmax())
        chosen.append(j)
        avail[j] = False
    return torch.tensor(chosen, dtype=torch.long)
