"""Position ids for the engine's ``positions=compact`` option (DESIGN rule 2, second sentence).

``original`` keeps every kept token at its position in the unpruned prompt. ``compact`` re-encodes
the sequence that enters layer 0 as if the kept tokens were the whole input, which is what the
papers' own codebases do after pre-LLM pruning (the kept embeddings are simply the new
``inputs_embeds``):

* 1-D RoPE (LLaVA-OneVision): positions 0..L'-1.
* 3-row M-RoPE (Qwen2-VL / Qwen2.5-VL): the rope index recomputed over the kept grid, with the
  rule of ``get_rope_index``: text tokens advance all three rows by one from the largest id so
  far; a video block starts at that largest id + 1 and its tokens keep their (t, h, w) offsets
  inside the block, the temporal offsets compacted over the temporal steps that still hold a
  token (a step with no kept token leaves no gap; the kept steps take the first offsets of the
  full block, so Qwen2.5-VL's seconds-scaled steps keep their spacing). Keeping every token
  gives back the original ids exactly.
"""
from __future__ import annotations

import torch


def compact_position_ids(position_ids: torch.Tensor, vis_pos: torch.Tensor, seq_ids: torch.Tensor) -> torch.Tensor:
    """Positions of the rows ``seq_ids`` (ascending original indices) re-encoded as a new input.

    position_ids: the original ids, [1, L] or [3, 1, L]; vis_pos: [N] original rows of the visual
    tokens (ascending). Returns [1, L'] or [3, 1, L'] on the same device and dtype.
    """
    if position_ids.dim() == 2:
        return torch.arange(seq_ids.numel(), device=position_ids.device, dtype=position_ids.dtype).unsqueeze(0)
    return _compact_mrope(position_ids[:, 0], vis_pos, seq_ids).unsqueeze(1)


def _runs(key: torch.Tensor) -> list[tuple[int, int, int]]:
    """(start, end, value) of the constant runs of an integer vector."""
    if key.numel() == 0:
        return []
    change = (key[1:] != key[:-1]).nonzero().squeeze(1) + 1
    bounds = [0] + change.tolist() + [key.numel()]
    vals = key[torch.tensor(bounds[:-1], device=key.device)].tolist()
    return [(a, b, v) for a, b, v in zip(bounds[:-1], bounds[1:], vals)]


def _compact_mrope(orig: torch.Tensor, vis_pos: torch.Tensor, seq_ids: torch.Tensor) -> torch.Tensor:
    """[3, L'] compact M-RoPE ids; ``orig`` [3, L] the original ids. One Python step per run of
    text or video rows (a handful), never per token."""
    L = orig.shape[1]
    is_vis = torch.zeros(L, dtype=torch.bool, device=orig.device)
    is_vis[vis_pos] = True
    # original video blocks: each block's start row and the first rows of its temporal steps
    block_of = torch.cumsum(torch.cat([is_vis[:1], is_vis[1:] & ~is_vis[:-1]]).long(), 0) - 1
    out = torch.empty(3, seq_ids.numel(), dtype=orig.dtype, device=orig.device)
    run_key = torch.where(is_vis[seq_ids], block_of[seq_ids], torch.full_like(seq_ids, -1))
    cur = -1                                   # largest id so far
    for a, b, blk in _runs(run_key):
        rows = seq_ids[a:b]
        if blk < 0:
            out[:, a:b] = cur + 1 + torch.arange(b - a, device=orig.device, dtype=orig.dtype)
            cur = int(out[0, b - 1])
            continue
        blk_rows = (is_vis & (block_of == blk)).nonzero().squeeze(1)
        start0 = int(orig[:, blk_rows[0] - 1].max()) + 1 if int(blk_rows[0]) > 0 else 0
        off = orig[:, rows] - start0                                       # (t, h, w) offsets in the block
        full_t = torch.unique(orig[0, blk_rows] - start0)                  # the block's temporal offsets
        kept_t = torch.unique(off[0])
        off[0] = full_t[torch.searchsorted(kept_t, off[0])]
        out[:, a:b] = off + cur + 1
        cur = int(out[:, a:b].max())
    return out
