"""Attention each vision patch RECEIVES, recomputed for one vision-encoder layer only.

VisionZip (Yang et al., CVPR 2025) ranks "dominant" tokens by the attention they get
inside the vision encoder. CLIP has a CLS query for that; SigLIP (LLaVA-OneVision) and the
Qwen2-VL ViT have none, so we use the attention a patch receives, averaged over every query
and head of the layer whose output the model uses. Only that one layer is recomputed, from its
captured input, one frame (attention segment) at a time: the tower itself keeps running on SDPA
or FlashAttention-2, and memory stays O(heads * chunk * P) instead of O(heads * P^2 * frames).

The adapter describes that layer with a ``VisionAccess`` (``pruning_core.adapters.base``), found on
``PreContext.vision``: the layer module, its captured input and keyword arguments (Qwen:
``cu_seqlens`` and the rotary ``position_embeddings``) and ``pool_to_tokens``, which maps per-patch
values onto the LLM visual tokens in layout order.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import PlanError


def received_attention(q: torch.Tensor, k: torch.Tensor, scale: float, chunk: int = 256) -> torch.Tensor:
    """Mean over heads and queries of softmax(q k^T * scale): attention each key receives.

    ``q``, ``k``: ``[H, P, hd]`` for one attention segment (one frame). Returns ``[P]`` (sums to 1).
    Softmax rows are complete per query, so chunking the queries is exact; fp32 throughout.
    """
    heads, p, _ = q.shape
    kf = k.float()
    total = torch.zeros(p, dtype=torch.float32, device=q.device)
    for start in range(0, p, chunk):
        logits = torch.matmul(q[:, start:start + chunk].float(), kf.transpose(-1, -2)) * scale
        total += logits.softmax(dim=-1).sum(dim=(0, 1))
    return total / (heads * p)


def siglip_qk(layer: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Queries and keys ``[F, H, P, hd]`` of a SigLIP/CLIP encoder layer, from its input ``[F, P, D]``."""
    attn = layer.self_attn
    x = layer.layer_norm1(hidden)
    shape = (*x.shape[:-1], attn.num_heads, attn.head_dim)
    q = attn.q_proj(x).view(shape).transpose(1, 2)
    k = attn.k_proj(x).view(shape).transpose(1, 2)
    return q, k, float(attn.scale)


def qwen_vision_qk(block: nn.Module, hidden: torch.Tensor,
                   position_embeddings: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Rotated queries/keys ``[H, S, hd]`` of a Qwen2-VL / Qwen2.5-VL vision block, plus raw keys.

    Mirrors the block: norm1 -> fused qkv -> 2-D rotary on q and k. The raw (unrotated) keys are
    returned for content similarity (VisionZip's merge metric), where position must not count.
    """
    attn = block.attn
    s = hidden.shape[0]
    x = block.norm1(hidden)
    q, k, _ = attn.qkv(x).reshape(s, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    cos, sin = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()
    q_rot = q.float() * cos + _rotate_half(q.float()) * sin
    k_rot = k.float() * cos + _rotate_half(k.float()) * sin
    return q_rot.transpose(0, 1), k_rot.transpose(0, 1), k.transpose(0, 1), float(attn.scaling)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@torch.no_grad()
def patch_attention(vision: Any, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention received per patch ``[S]`` and head-mean keys ``[S, hd]`` for the captured layer.

    ``vision`` is a ``VisionAccess``. Attention is computed inside each segment the layer itself
    attends within: one image per frame for SigLIP, the ``cu_seqlens`` segments for the Qwen ViT
    (temporal pairs; windows for Qwen2.5-VL's windowed blocks).
    """
    layer, hidden, kwargs = vision.layer, vision.layer_input, vision.layer_kwargs or {}
    if hasattr(layer, "self_attn") and hasattr(layer.self_attn, "q_proj"):
        if hidden.dim() != 3:
            raise PlanError(f"vision attention: SigLIP layer input must be [frames, patches, dim], got {tuple(hidden.shape)}")
        q, k, scale = siglip_qk(layer, hidden)
        att = torch.stack([received_attention(q[f], k[f], scale, chunk) for f in range(q.shape[0])])
        return att.reshape(-1), k.float().mean(dim=1).reshape(-1, k.shape[-1])
    if hasattr(layer, "attn") and hasattr(layer.attn, "qkv"):
        cu, pe = kwargs.get("cu_seqlens"), kwargs.get("position_embeddings")
        if cu is None or pe is None:
            raise PlanError("vision attention: a Qwen vision block needs its cu_seqlens and position_embeddings")
        q, k_rot, k_raw, scale = qwen_vision_qk(layer, hidden, pe)
        bounds = cu.tolist()
        att = torch.cat([received_attention(q[:, a:b], k_rot[:, a:b], scale, chunk)
                         for a, b in zip(bounds[:-1], bounds[1:]) if b > a])
        return att, k_raw.float().mean(dim=0)
    raise PlanError(f"vision attention: unsupported vision layer {type(layer).__name__}")


def token_attention(vision: Any, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-LLM-visual-token attention received ``[N]`` and key metric ``[N, hd]``, in layout order."""
    att, keys = patch_attention(vision, chunk)
    return vision.pool_to_tokens(att), vision.pool_to_tokens(keys)
