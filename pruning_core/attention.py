"""One attention row recomputed from a decoder layer's own projections, with or without RoPE.

Shared by the engine (FastV-style scores for every layer method) and by baselines that rank differently.

The engine's ``ctx.scores()`` is FastV's criterion: layer k-1's query against layer k-1's cached,
rotated keys. Two baselines rank differently:

* PyramidDrop scores with layer k's own q/k projections applied to the hidden states entering
  layer k (RoPE applied) — ``scores_from_hidden``.
* Feather scores with layer k-1's q/k with the rotary embedding removed — ``derotated_cache_scores``,
  which un-rotates the keys already in layer k-1's cache instead of re-projecting every token.

Only one query row is ever computed (DESIGN rule 1); softmax is fp32 and GQA-aware.
"""
from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """The 90° pair rotation RoPE uses: (x1, x2) → (-x2, x1) over the two halves of the head dim."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE (Su et al., RoFormer eq. 34 in the half-split layout): x·cos + rotate_half(x)·sin.

    ``cos``/``sin`` broadcast against ``x`` [..., n, hd] (the plain per-token tables the model's
    ``rotary_emb`` returns; Qwen's M-RoPE sections are already recomposed there).
    """
    return x * cos + rotate_half(x) * sin


def remove_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`apply_rope`: the same per-pair rotation by the opposite angle.

    cos/sin may carry an attention scaling s (cos = s·cos θ); the pair norm c²+s² restores it.
    """
    cos, sin = cos.float(), sin.float()
    x = x.float()
    return (x * cos - rotate_half(x) * sin) / (cos * cos + sin * sin).clamp_min(1e-12)


def row_logits(q: torch.Tensor, k: torch.Tensor, scaling: float) -> torch.Tensor:
    """Pre-softmax scores q·kᵀ·scaling of one query row per head over keys, fp32, GQA-aware
    (ShaRP eq. 2's ã without the mask: the row of the last token sees every key).

    q: [H, hd] (one token), k: [KVH, n, hd]. Returns [H, n]; query heads are grouped
    consecutively per kv head as in ``repeat_kv``.
    """
    heads, hd = q.shape
    kvh = k.shape[0]
    qg = q.float().view(kvh, heads // kvh, hd)
    return (torch.einsum("kgd,knd->kgn", qg, k.float()) * scaling).reshape(heads, -1)


def row_attention(q: torch.Tensor, k: torch.Tensor, scaling: float) -> torch.Tensor:
    """Softmax attention of one query row per head over keys, fp32, GQA-aware: [H, n]."""
    return row_logits(q, k, scaling).softmax(-1)


def row_scores(q: torch.Tensor, k: torch.Tensor, scaling: float, space: str = "prob") -> torch.Tensor:
    """``row_attention`` (space ``prob``) or ``row_logits`` (space ``logit``)."""
    if space == "logit":
        return row_logits(q, k, scaling)
    if space == "prob":
        return row_attention(q, k, scaling)
    raise ValueError(f"score space must be 'prob' or 'logit', got {space!r}")


def layer_queries(layer: torch.nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """q of some rows at a decoder layer, WITHOUT RoPE: [H, Q, hd] from their input hidden [Q, d]."""
    attn = layer.self_attn
    x = layer.input_layernorm(rows.reshape(1, -1, rows.shape[-1]))
    q = attn.q_proj(x).view(1, x.shape[1], -1, attn.head_dim).transpose(1, 2)
    if hasattr(attn, "q_norm"):
        q = attn.q_norm(q)
    return q[0]


def layer_query(layer: torch.nn.Module, x_last: torch.Tensor) -> torch.Tensor:
    """q of one token at a decoder layer, WITHOUT RoPE: [H, hd] from its input hidden [d] or [1,1,d]."""
    return layer_queries(layer, x_last.reshape(1, -1))[:, 0]


def rows_attention(q: torch.Tensor, k: torch.Tensor, scaling: float, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax attention of a few query rows over keys, fp32, GQA-aware: [H, Q, n].

    q: [H, Q, hd], k: [KVH, n, hd], ``allowed`` [Q, n] bool (the causal mask of those rows).
    Query heads are grouped consecutively per kv head as in ``repeat_kv``.
    """
    heads, nq, hd = q.shape
    kvh = k.shape[0]
    qg = q.float().view(kvh, heads // kvh, nq, hd)
    logits = torch.einsum("kgqd,knd->kgqn", qg, k.float()) * scaling
    logits = logits.masked_fill(~allowed, float("-inf"))
    return logits.softmax(-1).reshape(heads, nq, -1)


def layer_keys(layer: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """k of every row of ``hidden`` [L, d] at a decoder layer, WITHOUT RoPE: [KVH, L, hd]."""
    attn = layer.self_attn
    x = layer.input_layernorm(hidden.unsqueeze(0))
    k = attn.k_proj(x).view(1, hidden.shape[0], -1, attn.head_dim).transpose(1, 2)
    if hasattr(attn, "k_norm"):
        k = attn.k_norm(k)
    return k[0]


def scores_from_hidden(layer: torch.nn.Module, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                       vis_pos: torch.Tensor, rope: bool = True, space: str = "prob") -> torch.Tensor:
    """Attention of the LAST row of ``hidden`` [L, d] over the rows ``vis_pos``, head-averaged, [n].

    PyramidDrop's ranking: project the hidden states entering ``layer`` with that layer's own
    q/k (RoPE applied with each row's own position, cos/sin [1, L, hd]), softmax over the whole
    causal row (the last token sees everything), then keep the visual columns.
    """
    attn = layer.self_attn
    q = layer_query(layer, hidden[-1])                       # [H, hd]
    k = layer_keys(layer, hidden)                            # [KVH, L, hd]
    if rope:
        q = apply_rope(q.float(), cos[0, -1:].float(), sin[0, -1:].float())
        k = apply_rope(k.float(), cos[0].float(), sin[0].float())
    probs = row_scores(q, k, attn.scaling, space)           # [H, L]
    return probs.index_select(1, vis_pos).mean(0)


def derotated_cache_scores(layer: torch.nn.Module, x_last: torch.Tensor, cached_keys: torch.Tensor,
                           cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Feather's criterion: last-token attention with RoPE removed from query and keys, [n].

    ``x_last`` is the last token's input to ``layer``; ``cached_keys`` [KVH, n, hd] are that layer's
    rotated keys of the visual tokens, ``cos``/``sin`` [n, hd] their rotary tables. The softmax runs
    over the visual keys only, head-averaged, as in Feather's ``calculate_attention_weight``.
    """
    q = layer_query(layer, x_last)
    k = remove_rope(cached_keys, cos.unsqueeze(0), sin.unsqueeze(0))
    return row_attention(q, k, layer.self_attn.scaling).mean(0)
