"""The vision towers of LLaVA-OneVision (SigLIP) and Qwen2-VL / Qwen2.5-VL, run lean on the model's own weights.

Same modules, same weights and the same arithmetic as the transformers towers, minus what a pruned
video answer does not need:

- SigLIP runs only the layers whose output the model uses (``vision_feature_layer``; LLaVA-OV's is the
  last of its 26, but a ``-2`` config skips a layer) and no ``post_layernorm``: the stock encoder runs
  every layer whatever hidden state is asked for. q, k and v are freed before the MLP runs.
- Attention is always ``scaled_dot_product_attention``, whatever the model was loaded with: an
  ``--attn eager`` LLM (whose masks a method may want) does not drag the tower onto eager attention,
  which materialises ``[F, 16, 729, 729]`` per layer.
- Qwen's packed attention runs all segments of one length (the temporal steps; Qwen2.5-VL's windows,
  a handful of sizes) as one batched SDPA call, where stock code loops over ``cu_seqlens`` segments
  with a split and a concatenation in every block.
- Qwen's patch embedding is a ``Conv3d`` whose kernel equals its stride: one matmul with the
  flattened kernel does the same sums without the convolution's per-patch dispatch (4x faster here).

All frames go through the tower as one batch; interruption and progress are checked between layers.
``tests/test_vision_tower.py`` checks the features against the stock towers on tiny configs of the
real architectures; ``bench/ttft.py`` times both at real size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import checkpoint

Progress = Callable[[int, int], None]  # (layers done, layers in all)


@dataclass
class TowerOutput:
    """Features of one video and what VisionZip-style methods read from the tower."""

    features: torch.Tensor               # SigLIP: [F, P, D] output of the feature layer; Qwen: merged [N, d]
    layer_input: torch.Tensor | None     # input of the feature layer / last block (``capture``)
    layer_kwargs: dict


def _report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _siglip_attention(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    shape = (*x.shape[:-1], attn.num_heads, attn.head_dim)
    q, k, v = (proj(x).view(shape).transpose(1, 2) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    return attn.out_proj(F.scaled_dot_product_attention(q, k, v, scale=attn.scale).transpose(1, 2).reshape(x.shape))


def siglip_layer(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """One SigLIP/CLIP encoder layer (pre-norm attention, pre-norm MLP) on ``[F, P, D]`` with SDPA.

    Calls the layer's own submodules, so forward hooks on ``q_proj``/``k_proj`` (``ProjectionRecorder``) fire.
    The attention lives in its own function so q, k and v are freed before the MLP runs."""
    hidden = hidden + _siglip_attention(layer.self_attn, layer.layer_norm1(hidden))
    return hidden + layer.mlp(layer.layer_norm2(hidden))


def siglip_layers_used(vision_tower: nn.Module, feature_layer: int) -> int:
    """How many encoder layers produce ``hidden_states[feature_layer]`` (index 0: the embeddings)."""
    n = len(getattr(vision_tower, "vision_model", vision_tower).encoder.layers)
    return feature_layer % (n + 1)


@torch.no_grad()
def siglip_tower(vision_tower: nn.Module, pixels: torch.Tensor, feature_layer: int, capture: bool = False,
                 progress: Progress | None = None) -> TowerOutput:
    """``hidden_states[feature_layer]`` of a ``SiglipVisionModel`` for frames ``[F, 3, H, W]``, as ``[F, P, D]``.

    ``capture``: also the input of the last layer run (``layer_input``), for the vision-attention methods."""
    vm = getattr(vision_tower, "vision_model", vision_tower)
    used = siglip_layers_used(vision_tower, feature_layer)
    hidden = vm.embeddings(pixels)
    layer_input = hidden if capture else None
    for i, layer in enumerate(vm.encoder.layers[:used]):
        if capture and i == used - 1:
            layer_input = hidden
        hidden = siglip_layer(layer, hidden)
        _report(progress, i + 1, used)
    return TowerOutput(hidden, layer_input, {})


def segment_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor,
                      scale: float) -> torch.Tensor:
    """Attention within each packed segment ``[cu[i], cu[i+1])`` of ``q, k, v`` ``[S, H, hd]``; returns ``[S, H, hd]``.

    Segments of one length are stacked into one batched SDPA call (a video's temporal steps are all one
    length; Qwen2.5-VL's windows take at most four lengths per grid: inner, right, bottom, corner)."""
    bounds = cu_seqlens.tolist()
    lengths = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    s, heads, hd = q.shape

    def batched(rows: torch.Tensor | None, count: int, length: int) -> torch.Tensor:
        parts = [t if rows is None else t.index_select(0, rows) for t in (q, k, v)]
        qb, kb, vb = (t.view(count, length, heads, hd).transpose(1, 2) for t in parts)
        return F.scaled_dot_product_attention(qb, kb, vb, scale=scale).transpose(1, 2).reshape(count * length, heads, hd)

    distinct = sorted(set(lengths) - {0})
    if len(distinct) == 1 and 0 not in lengths:
        return batched(None, len(lengths), distinct[0])
    out = torch.empty_like(q)
    starts = torch.tensor(bounds[:-1], device=q.device)
    lens = torch.tensor(lengths, device=q.device)
    for length in distinct:
        first = starts[lens == length]
        rows = (first[:, None] + torch.arange(length, device=q.device)).reshape(-1)
        out.index_copy_(0, rows, batched(rows, first.numel(), length))
    return out


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _qwen_attention(attn: nn.Module, x: torch.Tensor, cu_seqlens: torch.Tensor,
                    position_embeddings: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    s = x.shape[0]
    q, k, v = attn.qkv(x).reshape(s, 3, attn.num_heads, -1).unbind(1)
    cos, sin = (t.unsqueeze(-2).float() for t in position_embeddings)
    q = (q.float() * cos + _rotate_half(q.float()) * sin).to(v.dtype)
    k = (k.float() * cos + _rotate_half(k.float()) * sin).to(v.dtype)
    return attn.proj(segment_attention(q, k, v, cu_seqlens, attn.scaling).reshape(s, -1))


def qwen_block(block: nn.Module, hidden: torch.Tensor, cu_seqlens: torch.Tensor,
               position_embeddings: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """One Qwen2-VL / Qwen2.5-VL vision block on packed patches ``[S, D]``: norm1 → fused qkv → 2-D rotary
    (in fp32, as the model does) → segment attention → proj, then norm2 → MLP; residuals around both."""
    hidden = hidden + _qwen_attention(block.attn, block.norm1(hidden), cu_seqlens, position_embeddings)
    return hidden + block.mlp(block.norm2(hidden))


def patch_embed_matmul(patch_embed: nn.Module, patches: torch.Tensor) -> torch.Tensor:
    """The Qwen ViT's ``Conv3d`` patch embedding (kernel = stride = the patch) as one matmul on flattened patches."""
    proj = patch_embed.proj
    w = proj.weight.reshape(proj.out_channels, -1)
    out = patches.to(w.dtype) @ w.T
    return out if proj.bias is None else out + proj.bias


def is_lean_qwen(visual: nn.Module) -> bool:
    """Qwen2-VL / Qwen2.5-VL vision towers (Qwen3-VL's, with DeepStack and learned positions, stays stock)."""
    name = type(visual).__name__
    return name in ("Qwen2VisionTransformerPretrainedModel", "Qwen2_5_VisionTransformerPretrainedModel")


@torch.no_grad()
def qwen_tower(visual: nn.Module, patches: torch.Tensor, grid_thw: torch.Tensor, capture: bool = False,
               progress: Progress | None = None) -> TowerOutput:
    """Merged visual tokens ``[N, d]`` (the model's order) of a Qwen2-VL / Qwen2.5-VL vision tower.

    ``patches``: the processor's flattened patches ``[S, C·tp·p·p]``. Position ids, ``cu_seqlens`` and
    Qwen2.5-VL's window order come from transformers' own helpers, so the geometry is the model's.
    ``capture``: the last block's input and keyword arguments (``cu_seqlens``, ``position_embeddings``)."""
    from transformers.vision_utils import get_vision_attention_seqlens, get_vision_position_ids
    merge = visual.spatial_merge_size
    position_ids = get_vision_position_ids(grid_thw, merge)
    cu_full, _ = get_vision_attention_seqlens(grid_thw, visual.config)
    hidden = patch_embed_matmul(visual.patch_embed, patches)
    windowed = hasattr(visual, "fullatt_block_indexes")
    window_index = None
    if windowed:
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import get_vision_window_index
        window_index, cu_window = get_vision_window_index(grid_thw, spatial_merge_size=merge,
                                                          window_size=visual.window_size, patch_size=visual.patch_size)
        s = hidden.shape[0]
        hidden = visual.permute_input_for_window_attn(hidden, window_index, seq_len=s)
        pe = tuple(visual.permute_input_for_window_attn(t, window_index, seq_len=s)
                   for t in visual.rotary_pos_emb(hidden, position_ids))
    else:
        pe = visual.rotary_pos_emb(hidden, position_ids)
    blocks = visual.blocks
    layer_input, layer_kwargs = None, {}
    for i, blk in enumerate(blocks):
        cu = cu_window if windowed and i not in visual.fullatt_block_indexes else cu_full
        if capture and i == len(blocks) - 1:
            layer_input, layer_kwargs = hidden, {"cu_seqlens": cu, "position_embeddings": pe}
        hidden = qwen_block(blk, hidden, cu, pe)
        _report(progress, i + 1, len(blocks))
    merged = visual.merger(hidden)
    if window_index is not None:
        merged = merged[torch.argsort(window_index)]
    return TowerOutput(merged, layer_input, layer_kwargs)


def frame_progress(phase: str, start: int, count: int, total: int) -> Progress:
    """A tower progress callback that reports frames-equivalent progress of ``count`` frames from ``start``
    to ``checkpoint`` (so a UI's per-frame bar moves, and an interrupt stops the tower between layers)."""
    def report(done: int, layers: int) -> None:
        checkpoint(phase, start + (count * done) // max(layers, 1), total)
    return report
