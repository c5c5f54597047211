"""A segment-aware causal mask held as its blocks, so attention under it keeps SDPA's causal fast path.

ShaRP's SegM (eq. 4) lets a visual token see the prompt before the video and the earlier tokens of
its own segment; every other token attends causally. Given to SDPA as a dense [L, L] mask it costs
the full L² attention (an explicit mask turns off the kernels' causal skipping) plus the mask itself.
Held as blocks it is a few causal SDPA calls instead: the prompt and the first segment, then each
later segment with the prompt's keys in front of it, then the rows after the video with a
[rows, L] mask. Same attention as the dense mask (up to floating-point summation order).

``SegmentCausal.dense()`` builds the dense mask (eager attention, or combining with another mask);
``blocks_attention(adapter, mask)`` routes the model's attention through the blocks for one layer
call.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

IMPL = "videoprune_segment_causal"
_ACTIVE: contextvars.ContextVar["SegmentCausal | None"] = contextvars.ContextVar("segment_causal", default=None)


@dataclass(frozen=True)
class SegmentCausal:
    """Eq. 4's mask over a sequence of ``length`` whose video is the contiguous block
    ``[bounds[0], bounds[-1])``, cut into segments at ``bounds`` (ascending, segment starts, then the end)."""

    length: int
    bounds: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.length, self.length)

    def dense(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The mask as bool [L, L] (True = may attend)."""
        mask = torch.ones(self.length, self.length, dtype=torch.bool, device=device).tril_()
        lo = self.bounds[0]
        for a, b in zip(self.bounds[1:-1], self.bounds[2:]):
            mask[a:b, lo:a] = False
        return mask

    def attend(self, module, query, key, value, **kwargs) -> torch.Tensor:
        """SDPA under this mask, block by block; query/key/value [B, heads, L, D] (keys may be GQA-narrow).
        Returns [B, L, heads, D] as transformers' attention functions do."""
        kwargs.pop("is_causal", None)
        b, lo, hi, n = self.bounds, self.bounds[0], self.bounds[-1], self.length

        def causal(q, k, v):
            return sdpa_attention_forward(module, q, k, v, None, is_causal=True, **kwargs)[0]

        outs = [causal(query[:, :, :b[1]], key[:, :, :b[1]], value[:, :, :b[1]])]   # prompt + first segment
        for a, e in zip(b[1:-1], b[2:]):
            # the prompt's rows go in front so the block is square and causal; their outputs are dropped
            q, k, v = (torch.cat([t[:, :, :lo], t[:, :, a:e]], 2) for t in (query, key, value))
            outs.append(causal(q, k, v)[:, lo:])
        if hi < n:   # the rows after the video: plain causal over everything
            m = torch.ones(n - hi, n, dtype=torch.bool, device=query.device).tril_(hi)
            outs.append(sdpa_attention_forward(module, query[:, :, hi:], key, value, m.view(1, 1, n - hi, n),
                                               **kwargs)[0])
        return torch.cat(outs, 1)


def segment_causal(length: int, lo: int, seg: torch.Tensor) -> SegmentCausal:
    """The mask for a video block starting at ``lo`` whose i-th token is in segment ``seg[i]`` (non-decreasing)."""
    n = int(seg.numel())
    starts = (seg[1:] != seg[:-1]).nonzero().squeeze(1) + 1 if n > 1 else seg.new_zeros(0)
    return SegmentCausal(int(length), (lo, *(int(s) + lo for s in starts.tolist()), lo + n))


def as_dense(mask: "SegmentCausal | torch.Tensor", device: torch.device | str = "cpu") -> torch.Tensor:
    """A bool [L, L] mask, whether given dense or as blocks."""
    return mask.dense(device) if isinstance(mask, SegmentCausal) else mask


def _attention(module, query, key, value, attention_mask, **kwargs):
    blocks = _ACTIVE.get()
    if blocks is None or attention_mask is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if query.shape[2] != blocks.length or key.shape[2] != blocks.length:
        raise ValueError(f"a segment-causal mask over {blocks.length} rows met {query.shape[2]} queries and "
                         f"{key.shape[2]} keys: it masks a layer's first pass over the whole sequence only")
    return blocks.attend(module, query, key, value, **kwargs), None


AttentionInterface.register(IMPL, _attention)


@contextlib.contextmanager
def blocks_attention(adapter, mask: SegmentCausal | None):
    """While active (``mask`` not None), the model's attention runs under ``mask``'s blocks."""
    if mask is None:
        yield
        return
    cfg = adapter.model.config.get_text_config()
    prev = cfg._attn_implementation
    token = _ACTIVE.set(mask)
    cfg._attn_implementation = IMPL
    try:
        yield
    finally:
        cfg._attn_implementation = prev
        _ACTIVE.reset(token)
