"""SharpV math as pure tensor functions (SharpV.txt, "Methodology").

Everything here is O(n·d) in the number of alive visual tokens n (plus an O(n log n) sort for the
grouping), has no per-token Python loop and never looks at attention scores, which is the
paper's point (Table 1). The stage wiring lives in ``sharpv.py``.

Tokens are described by their frame index and their spatial position inside the frame
(row*W + col), so every function works on an incomplete grid: a token removed by an earlier
stage is simply absent.
"""
from __future__ import annotations

import torch

from ..tokens import normalize, rowwise_cosine

# ceil(r·f) of a product that is an integer up to float rounding must not round up a whole token
_CEIL_EPS = 1e-6


def dissim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SharpV Dissimilarity, eq. 1: ‖â − b̂‖₂ = √(2 − 2cos θ), per matching row, in fp32.

    Taken as the norm of the difference of unit vectors rather than √(2−2cos): for nearly
    aligned vectors 2−2cos cancels catastrophically in fp32, the difference does not.
    """
    return (normalize(a) - normalize(b)).norm(dim=-1)


def _unit_distance(xn: torch.Tensor, other: torch.Tensor, rows: torch.Tensor, buf: torch.Tensor | None) -> torch.Tensor:
    """‖xn − other[rows]‖₂ per row for unit rows, through one scratch buffer (the cost here is
    memory traffic, so the [n, d] temporaries are kept to one)."""
    buf = torch.index_select(other, 0, rows, out=buf) if buf is not None else other.index_select(0, rows)
    return torch.linalg.vector_norm(buf.sub_(xn), dim=-1)


def frame_means(x: torch.Tensor, frame: torch.Tensor, num_frames: int) -> torch.Tensor:
    """F̄_t of eq. 2: mean of the alive tokens of every frame, [num_frames, d] (zero if none alive)."""
    xf = x.float()
    acc = torch.zeros(num_frames, x.shape[-1], dtype=xf.dtype, device=x.device).index_add_(0, frame, xf)
    cnt = torch.bincount(frame, minlength=num_frames).to(xf.dtype).clamp_min(1.0)
    return acc / cnt.unsqueeze(-1)


def spatial_importance(x: torch.Tensor, frame: torch.Tensor, num_frames: int,
                       xn: torch.Tensor | None = None, buf: torch.Tensor | None = None) -> torch.Tensor:
    """Spatial importance S, eq. 2: Dissim(token, mean of its frame's raw tokens), [n].

    ``xn`` (the unit-normalised ``x``) and ``buf`` (an [n, d] fp32 scratch) may be passed to reuse them.
    """
    xn = normalize(x) if xn is None else xn
    return _unit_distance(xn, normalize(frame_means(x, frame, num_frames)), frame, buf)


def temporal_reference(frame: torch.Tensor, pos: torch.Tensor, num_frames: int) -> torch.Tensor:
    """For every token, the index of the token it is compared with in eq. 3, or -1.

    The reference is the token at the same spatial position in the latest EARLIER frame where
    that position is still alive: with a full grid this is exactly F_{t-1} of eq. 3; on a grid
    thinned by an earlier stage it is the last time this position was seen. -1 means no earlier
    frame holds the position (the first frame, or a position alive for the first time).
    """
    n = frame.numel()
    ref = torch.full((n,), -1, dtype=torch.long, device=frame.device)
    if n < 2:
        return ref
    # one sort groups tokens by position and orders each group by frame
    order = torch.argsort(pos.long() * num_frames + frame.long())
    same = pos[order[1:]] == pos[order[:-1]]
    ref[order[1:][same]] = order[:-1][same]
    return ref


def temporal_importance(x: torch.Tensor, ref: torch.Tensor, spatial: torch.Tensor,
                        xn: torch.Tensor | None = None, buf: torch.Tensor | None = None) -> torch.Tensor:
    """Temporal importance T, eq. 3: Dissim(token, its reference token), [n].

    Tokens without a reference (first frame, eq. 6) follow the paper's "virtual reference frame
    where all tokens are the frame's representation": T = Dissim(F_1, F̄_1) = S, which makes
    eq. 6 the same formula as eq. 5.
    """
    xn = normalize(x) if xn is None else xn
    t = _unit_distance(xn, xn, ref.clamp_min(0), buf)
    return torch.where(ref >= 0, t, spatial)


def as_metric(dissim_values: torch.Tensor, metric: str = "dissim") -> torch.Tensor:
    """Dissim values (eq. 1) in the chosen metric: ``dissim`` unchanged, ``one_minus_cos`` = 1 − cos θ
    = Dissim²/2 (the alternative the paper names: "replacing Dissim with (1 − cosine similarity)").
    Both lie in [0, 2], so eq. 5's bound 2√f holds for either."""
    if metric == "dissim":
        return dissim_values
    if metric == "one_minus_cos":
        return dissim_values.square() * 0.5
    raise ValueError(f"metric must be 'dissim' or 'one_minus_cos', got {metric!r}")


def importance(temporal: torch.Tensor, spatial: torch.Tensor, w: float = 1.0) -> torch.Tensor:
    """Token importance, eq. 4: I = T + w·S."""
    return temporal + w * spatial


def frame_ratios(temporal: torch.Tensor, frame: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Adaptive per-frame ratio, eqs. 5–6: r_t = ‖T_t‖₂ / (2√f_t) ∈ [0, 1], [num_frames].

    f_t is the number of alive tokens of frame t (f of the paper on a full grid). With
    T_1 = S_1 (see :func:`temporal_importance`) the first frame gets eq. 6. Empty frames get 0.
    """
    sq = torch.zeros(num_frames, dtype=torch.float64, device=temporal.device)
    sq.index_add_(0, frame, temporal.double().square())
    f = torch.bincount(frame, minlength=num_frames).double()
    r = sq.sqrt() / (2.0 * f.sqrt()).clamp_min(1e-12)
    return r.clamp_(0.0, 1.0)


def adaptive_counts(ratios: torch.Tensor, alive: torch.Tensor, min_per_frame: int = 1) -> torch.Tensor:
    """Tokens kept per frame in adaptive mode: ⌈r_t·f_t⌉ clamped to [min(min_per_frame, f_t), f_t]."""
    alive = alive.long()
    k = torch.ceil(ratios.double() * alive.double() - _CEIL_EPS).long()
    lo = torch.clamp(alive, max=int(min_per_frame))
    return torch.maximum(torch.minimum(k, alive), lo)


def threshold_counts(imp: torch.Tensor, frame: torch.Tensor, num_frames: int, k_threshold: float,
                     min_per_frame: int = 1) -> torch.Tensor:
    """Tokens kept per frame in manual mode: how many have I > K, at least min(min_per_frame, f_t)."""
    above = torch.bincount(frame[imp > k_threshold], minlength=num_frames)
    alive = torch.bincount(frame, minlength=num_frames)
    return torch.maximum(above, torch.clamp(alive, max=int(min_per_frame)))


def ensure_nonempty(counts: torch.Tensor, imp: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """If every frame would keep nothing, keep the single most important token (a plan never empties)."""
    if int(counts.sum()) > 0 or imp.numel() == 0:
        return counts
    counts = counts.clone()
    counts[frame[torch.argmax(imp)]] = 1
    return counts


def visual_similarity(hidden: torch.Tensor, embeds0: torch.Tensor) -> torch.Tensor:
    """cos(V_l, V) of eq. 7 for every alive visual token, [n]: layer-l visual hidden states vs the
    visual embeddings the LLM received."""
    return rowwise_cosine(hidden, embeds0)


def degraded(sim: torch.Tensor, m: float, granularity: str = "layer") -> torch.Tensor:
    """Discard(l) of eq. 7 as a bool mask over the alive visual tokens.

    ``layer``: the mean similarity decides for all tokens at once (the paper's Fig. 3 averages);
    ``token``: each token is withdrawn when its own similarity falls below M.
    """
    if sim.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=sim.device)
    if granularity == "layer":
        return (sim.mean() < m).expand(sim.shape).clone()
    if granularity == "token":
        return sim < m
    raise ValueError(f"granularity must be 'layer' or 'token', got {granularity!r}")
