"""ShaRP's math as pure tensor functions (ShaRP.txt §4.1–4.3).

* SegM  (§4.1, eqs. 3–4): ``frame_means``, ``frame_segments``, ``segment_mask``.
* PosC  (§4.2, eq. 5):    ``debias``.
* RegD  (§4.3, eq. 6):    ``prefilter``, ``pivot_scan`` (dedup and clustering), ``diversity``,
  ``postfill``, ``assemble``.

Every sequential scan of the paper (dedup, clustering) is ``pivot_scan``: the similarities it
needs are computed up front in batched blocks, and only a pointer chase over the pivots runs in
Python (DESIGN rule 4). Features are compared with cosine similarity in fp32 (``tokens.normalize``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..tokens import merge_into, normalize, rowwise_cosine, topk_per_group

# ---------------------------------------------------------------- SegM (§4.1)


def frame_means(x: torch.Tensor, frame: torch.Tensor, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-wise average pooling of visual tokens, the set H_f of §4.1.

    x [n, d], frame [n] frame index of each token. Returns (means [F, d] fp32, present [F] bool):
    frames whose tokens were all removed by an earlier stage are marked absent.
    """
    sums = torch.zeros(n_frames, x.shape[-1], dtype=torch.float32, device=x.device).index_add_(0, frame, x.float())
    counts = torch.bincount(frame, minlength=n_frames)
    return sums / counts.clamp_min(1).unsqueeze(-1).to(sums.dtype), counts > 0


def frame_segments(means: torch.Tensor, present: torch.Tensor, tau_seg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment index of every frame from eq. 3: a boundary before frame i when sim(h̄_{i-1}, h̄_i) < τ_seg.

    Only frames still holding tokens take part (an absent frame neither splits nor joins).
    Returns (segment [F] long, 0-based, non-decreasing; similarity [F'-1] between consecutive
    present frames, the curve eq. 3 thresholds).
    """
    idx = present.nonzero().squeeze(1)
    seg = torch.zeros(means.shape[0], dtype=torch.long, device=means.device)
    if idx.numel() == 0:
        return seg, means.new_zeros(0)
    m = means.index_select(0, idx)
    sim = rowwise_cosine(m[:-1], m[1:])
    boundary = torch.cat([sim.new_zeros(1, dtype=torch.bool), sim < tau_seg])
    seg[idx] = torch.cumsum(boundary.long(), 0)
    # absent frames inherit the segment before them (segment ids never decrease)
    return torch.cummax(seg, 0).values, sim


def token_segments(x: torch.Tensor, frame: torch.Tensor, n_frames: int, tau_seg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment index [n] of every visual token (eq. 3 on the frame means of ``x``) and the similarity curve."""
    means, present = frame_means(x, frame, n_frames)
    seg_f, sim = frame_segments(means, present, tau_seg)
    return seg_f[frame], sim


def segment_mask(length: int, vis_pos: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """Segment-aware causal mask of eq. 4, bool [L, L] (True = may attend).

    A visual token at position ``vis_pos[i]`` sees the visual tokens of its own segment ``seg[i]``
    that precede it and every non-visual token before it (the prompt before the video); every
    other token keeps plain causal attention. ``vis_pos`` ascending, ``seg`` non-decreasing.
    """
    dev = vis_pos.device
    mask = torch.ones(length, length, dtype=torch.bool, device=dev).tril_()
    if vis_pos.numel() == 0:
        return mask
    n = vis_pos.numel()
    lo, hi = int(vis_pos[0]), int(vis_pos[-1]) + 1
    if hi - lo == n:
        # the usual layout: one contiguous video block, segments are sub-blocks. Only the
        # forbidden rectangles (a segment's rows × earlier segments' columns) are written.
        starts = torch.cat([seg.new_zeros(1), (seg[1:] != seg[:-1]).nonzero().squeeze(1) + 1, seg.new_tensor([n])])
        bounds = (starts + lo).tolist()
        for a, b in zip(bounds[1:-1], bounds[2:]):
            mask[a:b, lo:a] = False
        return mask
    # text inside the video block: compare segment ids inside the block (-1 = not visual)
    seg_row = torch.full((hi - lo,), -1, dtype=torch.long, device=dev)
    seg_row[vis_pos - lo] = seg
    both_vis = (seg_row.unsqueeze(1) >= 0) & (seg_row.unsqueeze(0) >= 0)
    mask[lo:hi, lo:hi] &= ~both_vis | (seg_row.unsqueeze(1) == seg_row.unsqueeze(0))
    return mask


# ---------------------------------------------------------------- PosC (§4.2)


def debias(scores: torch.Tensor, bias: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 5: â = ã − λ·b, for ranking only (token values are untouched)."""
    return scores.float() - lam * bias.float().to(scores.device)


# ---------------------------------------------------------------- RegD (§4.3)


def prefilter(xn: torch.Tensor, seg: torch.Tensor, reg: torch.Tensor, nonreg: torch.Tensor,
              tau_filter: float) -> torch.Tensor:
    """RegD step (1), token pre-filtering.

    xn [n, d] unit rows, seg [n] segment of each token, reg / nonreg ascending indices of the
    register (top-K) and non-register tokens. A non-register token whose best similarity to a
    register token of its own segment exceeds τ_filter is absorbed into that register (first
    one on ties). Returns [len(nonreg)]: the position in ``reg`` it is absorbed into, or -1.
    Computed per segment block, so the cost is Σ_s |nonreg_s|·|reg_s|·d rather than n·K·d.
    """
    out = torch.full((nonreg.numel(),), -1, dtype=torch.long, device=xn.device)
    if reg.numel() == 0 or nonreg.numel() == 0:
        return out
    n_seg = int(seg.max()) + 1
    seg_r, seg_n = seg[reg], seg[nonreg]
    # both index lists are ascending and segments are contiguous, so each segment is a slice
    r_bounds = torch.searchsorted(seg_r, torch.arange(n_seg + 1, device=xn.device)).tolist()
    n_bounds = torch.searchsorted(seg_n, torch.arange(n_seg + 1, device=xn.device)).tolist()
    xr, xq = xn.index_select(0, reg), xn.index_select(0, nonreg)
    for s in range(n_seg):
        r0, r1, q0, q1 = r_bounds[s], r_bounds[s + 1], n_bounds[s], n_bounds[s + 1]
        if r1 == r0 or q1 == q0:
            continue
        best, arg = (xq[q0:q1] @ xr[r0:r1].T).max(dim=1)
        out[q0:q1] = torch.where(best > tau_filter, arg + r0, out[q0:q1])
    return out


def _first_stop(sims: torch.Tensor, same: torch.Tensor, valid: torch.Tensor, tau: float) -> torch.Tensor:
    """Offset (0-based column) of the first column that ends a pivot's run, or -1 if none does."""
    stop = valid & (~same | (sims <= tau))
    has = stop.any(dim=1)
    first = stop.to(torch.uint8).argmax(dim=1)
    return torch.where(has, first, torch.full_like(first, -1))


def pivot_scan(xn: torch.Tensor, group: torch.Tensor, tau: float, band: int = 64, block: int = 64) -> torch.Tensor:
    """The sequential pivot scan of RegD steps (2) and (3), exactly, on precomputed similarities.

    Within each group (contiguous, in sequence order) the first token is a pivot; each following
    token joins the current pivot if sim(pivot, token) > τ, otherwise it becomes the new pivot.
    Returns pivot_of [m]: the index of the pivot each token belongs to (pivot_of[p] == p).

    The run of pivot p ends at nxt[p] = the first later token with sim ≤ τ or in another group,
    so the scan is the pointer chase 0 → nxt[0] → … . nxt is found for every token at once from
    a band of similarities to the next ``band`` tokens (block matmuls); only runs longer than the
    band extend lazily, and only for tokens the chase actually visits.
    """
    m = xn.shape[0]
    dev = xn.device
    if m == 0:
        return torch.zeros(0, dtype=torch.long, device=dev)
    nxt = torch.full((m,), -1, dtype=torch.long, device=dev)
    offs = torch.arange(1, band + 1, device=dev)
    for b0 in range(0, m, block):
        b1 = min(b0 + block, m)
        c1 = min(b1 + band, m)
        if c1 <= b0 + 1:
            nxt[b0:b1] = m
            break
        sims = xn[b0:b1] @ xn[b0 + 1:c1].T                        # [B, C]: column c is token b0+1+c
        rows = torch.arange(b0, b1, device=dev)
        tgt = rows.unsqueeze(1) + offs.unsqueeze(0)               # [B, band] token index p+o
        valid = tgt < m
        col = (tgt - b0 - 1).clamp_(0, sims.shape[1] - 1)
        band_sims = sims.gather(1, col)
        same = group[tgt.clamp(max=m - 1)] == group[rows].unsqueeze(1)
        first = _first_stop(band_sims, same, valid, tau)
        # a run reaching the end of the sequence inside the band stops at m
        ends = (rows + band >= m - 1) & (first < 0)
        nxt[b0:b1] = torch.where(first >= 0, rows + 1 + first, torch.where(ends, torch.full_like(rows, m), nxt[b0:b1]))
    nxt_l = nxt.tolist()
    is_pivot = torch.zeros(m, dtype=torch.bool, device=dev)
    pivots = []
    p = 0
    while p < m:
        pivots.append(p)
        q = nxt_l[p]
        if q < 0:
            q = _extend_run(xn, group, p, tau, start=p + 1 + band)
        p = q
    is_pivot[torch.tensor(pivots, dtype=torch.long, device=dev)] = True
    idx = torch.arange(m, device=dev)
    return torch.cummax(torch.where(is_pivot, idx, torch.zeros_like(idx)), 0).values


def adjacent_scan(xn: torch.Tensor, group: torch.Tensor, tau: float) -> torch.Tensor:
    """RegD step (2) read literally: "sequentially comparing adjacent tokens … a token is absorbed
    into its preceding token if their similarity exceeds τ_merge, otherwise it becomes the new pivot".

    Token i joins the run of token i-1 when both are in one group and sim(i-1, i) > τ; a run is
    one kept token (its first, the pivot) and everything chained to it. Returns pivot_of [m] like
    ``pivot_scan``. One batched row-wise product, no scan.
    """
    m = xn.shape[0]
    idx = torch.arange(m, device=xn.device)
    if m == 0:
        return idx
    joins = torch.zeros(m, dtype=torch.bool, device=xn.device)
    if m > 1:
        joins[1:] = (group[1:] == group[:-1]) & ((xn[1:] * xn[:-1]).sum(-1) > tau)
    return torch.cummax(torch.where(joins, torch.zeros_like(idx), idx), 0).values


def dedup_scan(xn: torch.Tensor, group: torch.Tensor, tau: float, compare: str = "adjacent") -> torch.Tensor:
    """RegD step (2) under either reading: ``adjacent`` (``adjacent_scan``) or ``pivot`` (``pivot_scan``:
    each token is compared with the current run's first token)."""
    if compare == "adjacent":
        return adjacent_scan(xn, group, tau)
    if compare == "pivot":
        return pivot_scan(xn, group, tau)
    raise ValueError(f"dedup_compare must be 'adjacent' or 'pivot', got {compare!r}")


def _extend_run(xn: torch.Tensor, group: torch.Tensor, p: int, tau: float, start: int, chunk: int = 1024) -> int:
    """End of pivot p's run beyond the precomputed band (chunked; ends at the group's end at the latest)."""
    m = xn.shape[0]
    g = group[p]
    while start < m:
        stop = min(start + chunk, m)
        sims = xn[start:stop] @ xn[p]
        end = (sims <= tau) | (group[start:stop] != g)
        if bool(end.any()):
            return start + int(end.to(torch.uint8).argmax())
        start = stop
    return m


def diversity(xn_cand: torch.Tensor, seg_cand: torch.Tensor, xn_reg: torch.Tensor, seg_reg: torch.Tensor,
              cluster_size: torch.Tensor, beta: float, n_seg: int) -> torch.Tensor:
    """Eq. 6: Div_k = [1 − mean_{h ∈ H'_reg} sim(c_k, h)] + β·|C_k|, each candidate against its segment's H'_reg.

    The mean of cosines equals the cosine numerator against the mean of the unit register
    vectors, so this is one [n, d] product, not an [n, |H'_reg|] matrix.
    """
    sums = torch.zeros(n_seg, xn_reg.shape[-1], dtype=xn_reg.dtype, device=xn_reg.device).index_add_(0, seg_reg, xn_reg)
    cnt = torch.bincount(seg_reg, minlength=n_seg).clamp_min(1).unsqueeze(-1).to(sums.dtype)
    mean_sim = (xn_cand * (sums / cnt)[seg_cand]).sum(-1)
    return (1.0 - mean_sim) + beta * cluster_size.to(mean_sim.dtype)


def _rank_score(tier: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """A score whose descending order is (tier ascending, key descending): lower tier always first."""
    order = torch.sort(key.float(), descending=True, stable=True).indices
    order = order[torch.sort(tier[order], stable=True).indices]
    score = torch.empty(tier.numel(), dtype=torch.float32, device=tier.device)
    score[order] = -torch.arange(tier.numel(), dtype=torch.float32, device=tier.device)
    return score


@dataclass
class PostFill:
    """RegD step (3): which tokens refill each segment's budget, and from which tier."""

    chosen: torch.Tensor     # ascending token indices added back (centers first, then fallbacks)
    centers: int             # how many are cluster centers ranked by eq. 6 (the paper's rule)
    members: int             # fallback: non-centers of H'_nreg (when a segment has too few clusters)
    restored: int            # fallback: registers absorbed by dedup, restored by score (H'_nreg exhausted)
    clusters: int            # clusters formed over H'_nreg, all segments


def postfill(xn: torch.Tensor, seg: torch.Tensor, score: torch.Tensor, reg: torch.Tensor, reg_pivot: torch.Tensor,
             rest: torch.Tensor, tau_cluster: float, beta: float, n_seg: int) -> PostFill:
    """RegD step (3), post-filling: restore each segment's register count after dedup.

    ``reg`` ascending register indices, ``reg_pivot`` [len(reg)] the dedup pivot (position in
    ``reg``) of each, ``rest`` ascending indices of H'_nreg (non-registers not pre-filtered).
    H'_nreg is clustered per segment by ``pivot_scan`` with τ_cluster; centers (the tokens that
    open a cluster) are ranked by eq. 6 against the segment's deduplicated registers H'_reg and
    the best fill the deficit. Where a segment has fewer clusters than its deficit, the other
    members of H'_nreg follow (ranked by the same eq. 6 value), then the dedup-absorbed
    registers by debiased score — so every segment keeps exactly its top-K count.
    """
    dev = xn.device
    pos_in_reg = torch.arange(reg.numel(), device=dev)
    absorbed = reg[reg_pivot != pos_in_reg]
    pivots = reg[reg_pivot == pos_in_reg]
    deficit = torch.bincount(seg[absorbed], minlength=n_seg)
    if absorbed.numel() == 0:
        z = torch.zeros(0, dtype=torch.long, device=dev)
        return PostFill(z, 0, 0, 0, 0)
    cl = pivot_scan(xn.index_select(0, rest), seg[rest], tau_cluster)
    size = torch.bincount(cl, minlength=rest.numel())
    is_center = cl == torch.arange(rest.numel(), device=dev)
    div = diversity(xn.index_select(0, rest), seg[rest], xn.index_select(0, pivots), seg[pivots],
                    size[cl], beta, n_seg)
    cand = torch.cat([rest, absorbed])
    tier = torch.cat([torch.where(is_center, 0, 1), torch.full((absorbed.numel(),), 2, device=dev)])
    key = torch.cat([div, score[absorbed].float()])
    pick = topk_per_group(_rank_score(tier, key), seg[cand], deficit)
    tiers = tier[pick]
    chosen = torch.sort(cand[pick]).values
    return PostFill(chosen, int((tiers == 0).sum()), int((tiers == 1).sum()), int((tiers == 2).sum()),
                    int(is_center.sum()))


def assemble(n: int, reg: torch.Tensor, reg_pivot: torch.Tensor, nonreg: torch.Tensor, absorbed_into: torch.Tensor,
             chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept tokens and merge targets after RegD.

    Kept = dedup pivots ∪ post-filled tokens. A register absorbed by dedup merges into its pivot
    unless post-fill restored it; a pre-filtered token follows the register it was absorbed into.
    Returns (keep [K] ascending, target [n] = position in ``keep`` each token merges into, -1 = dropped).
    """
    dev = reg.device
    owner = torch.full((n,), -1, dtype=torch.long, device=dev)   # token index each token merges into
    owner[reg] = reg[reg_pivot]
    owner[chosen] = chosen                                       # restored registers keep their own group
    hit = absorbed_into >= 0
    owner[nonreg[hit]] = owner[reg[absorbed_into[hit]]]
    keep = torch.unique(owner[owner >= 0])                       # sorted
    target = torch.where(owner >= 0, torch.searchsorted(keep, owner.clamp_min(0)), owner)
    return keep, target


@dataclass
class RegD:
    """Outcome of RegD over all segments."""

    keep: torch.Tensor        # [K] ascending indices into the alive tokens
    target: torch.Tensor      # [n] position in ``keep`` each token is merged into, -1 = dropped
    values: torch.Tensor      # [K, d] size-weighted means of each kept token's group (fp32)
    info: dict = field(default_factory=dict)


def _tick(times: dict | None, name: str, t0: float, device: torch.device) -> float:
    if times is not None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        times[name] = (now - t0) * 1000.0
        return now
    return t0


def regd(x: torch.Tensor, seg: torch.Tensor, registers: torch.Tensor, score: torch.Tensor, tau_filter: float,
         tau_merge: float, tau_cluster: float, beta: float, times: dict | None = None,
         dedup_compare: str = "adjacent") -> RegD:
    """Register Token Deduplication (§4.3) on every segment at once.

    x [n, d] features of the alive visual tokens (sequence order), seg [n] their segment
    (non-decreasing), registers ascending indices of the top-K tokens, score [n] the (debiased)
    ranking scores. Steps (1) ``prefilter``, (2) ``dedup_scan`` with τ_merge (``dedup_compare``:
    adjacent tokens or the run's pivot), (3) ``postfill``; then
    every group is merged into its kept token (size-weighted mean, ``tokens.merge_into``).
    ``times``, when given, receives the milliseconds of each step (Table 4's Fltr./Dedpl./Fil.).
    """
    n = x.shape[0]
    dev = x.device
    n_seg = int(seg.max()) + 1 if n else 0
    t = time.perf_counter() if times is not None else 0.0
    xn = normalize(x)
    nonreg_mask = torch.ones(n, dtype=torch.bool, device=dev)
    nonreg_mask[registers] = False
    nonreg = nonreg_mask.nonzero().squeeze(1)
    absorbed_into = prefilter(xn, seg, registers, nonreg, tau_filter)
    t = _tick(times, "filter_ms", t, dev)
    reg_pivot = dedup_scan(xn.index_select(0, registers), seg[registers], tau_merge, dedup_compare)
    t = _tick(times, "dedup_ms", t, dev)
    fill = postfill(xn, seg, score, registers, reg_pivot, nonreg[absorbed_into < 0], tau_cluster, beta, n_seg)
    keep, target = assemble(n, registers, reg_pivot, nonreg, absorbed_into, fill.chosen)
    merged = (target >= 0).nonzero().squeeze(1)
    values, _ = merge_into(x.index_select(0, merged).float(), torch.ones(merged.numel(), device=dev),
                           target[merged], int(keep.numel()))
    _tick(times, "fill_ms", t, dev)
    info = {"prefiltered": int((absorbed_into >= 0).sum()),
            "deduplicated": int((reg_pivot != torch.arange(registers.numel(), device=dev)).sum()),
            "clusters": fill.clusters, "filled_centers": fill.centers,
            "filled_members": fill.members, "restored_registers": fill.restored}
    return RegD(keep, target, values, info)
