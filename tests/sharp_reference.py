"""Straightforward per-token implementations of ShaRP's steps, read off the paper's text.

They are the oracle the vectorised ``pruning_core.methods.sharp_ops`` is tested against, and the
baseline ``bench/sharp_regd.py`` times. Plain Python loops over tokens, one cosine at a time.
"""
from __future__ import annotations

import torch

from pruning_core.tokens import normalize


def segments_reference(x: torch.Tensor, frame: list[int], tau_seg: float) -> list[int]:
    """Eq. 3: segment index of every token; a boundary where consecutive frame means have sim < τ_seg."""
    frames = sorted(set(frame))
    means = {f: x[[i for i, g in enumerate(frame) if g == f]].float().mean(0) for f in frames}
    seg_of = {frames[0]: 0}
    for a, b in zip(frames[:-1], frames[1:]):
        sim = float(torch.nn.functional.cosine_similarity(means[a], means[b], dim=0))
        seg_of[b] = seg_of[a] + (1 if sim < tau_seg else 0)
    return [seg_of[f] for f in frame]


def mask_reference(length: int, vis_pos: list[int], seg: list[int]) -> torch.Tensor:
    """Eq. 4 entry by entry: causal, and a visual token sees visual tokens of its own segment only."""
    seg_at = dict(zip(vis_pos, seg))
    m = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        for j in range(i + 1):
            m[i, j] = not (i in seg_at and j in seg_at and seg_at[i] != seg_at[j])
    return m


def regd_reference(x: torch.Tensor, seg: list[int], registers: list[int], score: list[float],
                   tau_filter: float, tau_merge: float, tau_cluster: float, beta: float) -> tuple[list[int], list[int]]:
    """RegD (§4.3) token by token inside each segment. Returns (kept indices, owner of every token or -1).

    owner[t] is the kept token t is merged into (itself when kept), -1 when t is dropped.
    """
    xn = normalize(x)

    def cos(i: int, j: int) -> float:
        return float(xn[i] @ xn[j])

    n = x.shape[0]
    reg_set = set(registers)
    owner = [-1] * n
    for s in sorted(set(seg)):
        toks = [i for i in range(n) if seg[i] == s]
        regs = [i for i in toks if i in reg_set]
        # (1) pre-filtering: absorb into the most similar register when above τ_filter
        absorbed_into, rest = {}, []
        for t in toks:
            if t in reg_set:
                continue
            best, arg = -2.0, None
            for r in regs:
                c = cos(t, r)
                if c > best:
                    best, arg = c, r
            if arg is not None and best > tau_filter:
                absorbed_into[t] = arg
            else:
                rest.append(t)
        # (2) deduplication: sequential pivot scan
        pivot_of, p = {}, None
        for r in regs:
            if p is not None and cos(p, r) > tau_merge:
                pivot_of[r] = p
            else:
                p = r
                pivot_of[r] = r
        pivots = [r for r in regs if pivot_of[r] == r]
        dropped = [r for r in regs if pivot_of[r] != r]
        # (3) post-filling: sequential clustering, then eq. 6 on the cluster centers
        clusters: list[list[int]] = []
        for t in rest:
            if clusters and cos(clusters[-1][0], t) > tau_cluster:
                clusters[-1].append(t)
            else:
                clusters.append([t])

        def div(c: int, size: int) -> float:
            return 1.0 - sum(cos(c, h) for h in pivots) / len(pivots) + beta * size

        cands = []
        for cl in clusters:
            for j, t in enumerate(cl):
                cands.append((0 if j == 0 else 1, -div(t, len(cl)) if pivots else 0.0, t))
        cands += [(2, -score[r], r) for r in dropped]
        chosen = [t for _, _, t in sorted(cands)[:len(dropped)]]
        for r in regs:
            owner[r] = pivot_of[r]
        for t in chosen:
            owner[t] = t
        for t, r in absorbed_into.items():
            owner[t] = owner[r]
    kept = sorted({o for o in owner if o >= 0})
    return kept, owner
