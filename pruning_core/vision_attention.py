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

The adapters also record that layer's query/key projections while the tower runs
(``ProjectionRecorder``, ``VisionAccess.qk``): the projections are most of a one-layer recompute
(2·P·D² per patch for q and k against P·D per patch for the attention row sums at D = 1152, P = 729),
and the tower computes exactly them anyway, so only the softmax statistic itself is left to do.
"""
from __future__ import annotations

from typing import Any, Callable

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


QK = tuple[torch.Tensor, torch.Tensor]


def _is_siglip(layer: nn.Module) -> bool:
    return hasattr(layer, "self_attn") and hasattr(layer.self_attn, "q_proj")


def _is_qwen(layer: nn.Module) -> bool:
    return hasattr(layer, "attn") and hasattr(layer.attn, "qkv")


class ProjectionRecorder:
    """Records a vision layer's query/key projection outputs while the tower runs (forward hooks).

    SigLIP/CLIP: the ``q_proj`` and ``k_proj`` outputs ``[F, P, D]``; Qwen ViT: the q and k thirds of
    the fused ``qkv`` output ``[S, D]`` (v is not kept). Calls are concatenated along dim 0, so a
    tower run a chunk of frames at a time records the whole clip. A layer of another kind records
    nothing (``qk()`` is None) and the attention is recomputed from the layer input instead.
    """

    def __init__(self, layer: nn.Module):
        self.layer = layer
        self._q: list[torch.Tensor] = []
        self._k: list[torch.Tensor] = []
        self._handles: list[Any] = []

    def _keep(self, into: list[torch.Tensor], part: Callable[[torch.Tensor], torch.Tensor]):
        def hook(_mod, _args, out):
            into.append(part(out.detach()))
        return hook

    def __enter__(self) -> "ProjectionRecorder":
        if _is_siglip(self.layer):
            attn = self.layer.self_attn
            self._handles = [attn.q_proj.register_forward_hook(self._keep(self._q, lambda o: o)),
                             attn.k_proj.register_forward_hook(self._keep(self._k, lambda o: o))]
        elif _is_qwen(self.layer):
            def split(out: torch.Tensor) -> None:
                d = out.shape[-1] // 3   # fused layout [q | k | v]; copies so v's storage is freed
                self._q.append(out[..., :d].contiguous())
                self._k.append(out[..., d:2 * d].contiguous())
            self._handles = [self.layer.attn.qkv.register_forward_hook(lambda _m, _a, o: split(o.detach()))]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def qk(self) -> QK | None:
        if not self._q or len(self._q) != len(self._k):
            return None
        return torch.cat(self._q, 0), torch.cat(self._k, 0)


def siglip_qk(layer: nn.Module, hidden: torch.Tensor, qk: QK | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Queries and keys ``[F, H, P, hd]`` of a SigLIP/CLIP encoder layer, from its input ``[F, P, D]``
    or, when given, from its recorded projections ``qk`` (no recompute)."""
    attn = layer.self_attn
    if qk is None:
        x = layer.layer_norm1(hidden)
        qk = attn.q_proj(x), attn.k_proj(x)
    shape = (*qk[0].shape[:-1], attn.num_heads, attn.head_dim)
    q = qk[0].view(shape).transpose(1, 2)
    k = qk[1].view(shape).transpose(1, 2)
    return q, k, float(attn.scale)


def qwen_vision_qk(block: nn.Module, hidden: torch.Tensor,
                   position_embeddings: tuple[torch.Tensor, torch.Tensor],
                   qk: QK | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Rotated queries/keys ``[H, S, hd]`` of a Qwen2-VL / Qwen2.5-VL vision block, plus raw keys.

    Mirrors the block: norm1 -> fused qkv -> 2-D rotary on q and k (from the recorded q/k
    projections ``qk`` when given). The raw (unrotated) keys are returned for content similarity
    (VisionZip's merge metric), where position must not count.
    """
    attn = block.attn
    s = hidden.shape[0]
    if qk is None:
        q, k, _ = attn.qkv(block.norm1(hidden)).reshape(s, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    else:
        q, k = (t.reshape(s, attn.num_heads, -1) for t in qk)
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
    qk = getattr(vision, "qk", None)
    if _is_siglip(layer):
        if hidden.dim() != 3:
            raise PlanError(f"vision attention: SigLIP layer input must be [frames, patches, dim], got {tuple(hidden.shape)}")
        q, k, scale = siglip_qk(layer, hidden, qk)
        att = torch.stack([received_attention(q[f], k[f], scale, chunk) for f in range(q.shape[0])])
        return att.reshape(-1), k.float().mean(dim=1).reshape(-1, k.shape[-1])
    if _is_qwen(layer):
        cu, pe = kwargs.get("cu_seqlens"), kwargs.get("position_embeddings")
        if cu is None or pe is None:
            raise PlanError("vision attention: a Qwen vision block needs its cu_seqlens and position_embeddings")
        q, k_rot, k_raw, scale = qwen_vision_qk(layer, hidden, pe, qk)
        bounds = cu.tolist()
        att = torch.cat([received_attention(q[:, a:b], k_rot[:, a:b], scale, chunk)
                         for a, b in zip(bounds[:-1], bounds[1:]) if b > a])
        return att, k_raw.float().mean(dim=0)
    raise PlanError(f"vision attention: unsupported vision layer {type(layer).__name__}")


def token_attention(vision: Any, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-LLM-visual-token attention received ``[N]`` and key metric ``[N, hd]``, in layout order."""
    att, keys = patch_attention(vision, chunk)
    return vision.pool_to_tokens(att), vision.pool_to_tokens(keys)
