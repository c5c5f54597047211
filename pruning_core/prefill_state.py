"""What one prefill holds: the prepared prompt (``Prepared``) and the mutable sequence/cache state
(``PrefillState``) the engine edits between decoder layers and stages read through their contexts.

Kept in its own module so ``stages`` (which types its contexts against ``PrefillState``) and
``engine`` (which drives it) do not import each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from transformers import DynamicCache

from . import attention
from .adapters.base import Adapter, Encoding
from .layout import TokenLayout

POSITIONS = ("original", "compact")


@dataclass
class Prepared:
    """A video and question ready to run under any plan (vision encoded once)."""

    input_ids: torch.Tensor          # [1, L]
    embeds: torch.Tensor             # [1, L, d] prompt embeddings with visual rows filled in
    vis_pos: torch.Tensor            # [N] sequence positions of the layout's visual tokens
    position_ids: torch.Tensor       # [1, L] or [3, 1, L]
    rope_delta: int
    encoding: Encoding
    question: str
    frames: np.ndarray | None = None
    question_pos: torch.Tensor | None = None   # [q] sequence positions of the question's own tokens

    @property
    def layout(self) -> TokenLayout:
        return self.encoding.layout

    @property
    def visual_embeds(self) -> torch.Tensor:
        return self.encoding.embeds

    def question_rows(self) -> torch.Tensor:
        """Positions of the question's tokens (the last prompt token when they are unknown)."""
        if self.question_pos is None or self.question_pos.numel() == 0:
            return torch.tensor([self.input_ids.shape[1] - 1], device=self.embeds.device)
        return self.question_pos


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def question_span(prompt_ids: Callable[[str], list[int]], question: str) -> tuple[int, int]:
    """[start, end) of the question's tokens inside ``prompt_ids(question)``, whatever the template.

    The template is what the prompt shares with the prompts of other questions: a common prefix
    and suffix. Two sentinel questions whose tokens differ make sure a question that begins or
    ends like one of them is not cut short (the smaller shared prefix / suffix is the template's).
    """
    ids = prompt_ids(question)
    refs = [prompt_ids(s) for s in ("a", "an")]
    start = min(_common_prefix(ids, r) for r in refs)
    tail = min(_common_prefix(ids[::-1], r[::-1]) for r in refs)
    end = max(start, len(ids) - tail)
    return start, end


def _gather_pos(position_ids: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return position_ids.index_select(-1, idx)


class PrefillState:
    """Mutable state of one prefill: the current sequence, its provenance, the cache.

    ``position_ids``, when given, are the positions of the rows ``seq_ids`` (the engine's
    ``positions=compact``); otherwise every row keeps its ORIGINAL position (DESIGN rule 2).
    """

    def __init__(self, adapter: Adapter, prep: Prepared, seq_ids: torch.Tensor, hidden: torch.Tensor,
                 vis_ids: torch.Tensor, vis_embeds0: torch.Tensor, deepstack: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None):
        self.adapter = adapter
        self.prep = prep
        self.layout = prep.layout
        self.seq_ids = seq_ids                  # [L'] original sequence index of each current row
        self.seq_ids0 = seq_ids                 # the rows that entered layer 0 (for reference passes)
        self.hidden = hidden                    # [1, L', d]
        self.vis_ids = vis_ids                  # [n] original visual ids alive, ascending
        self.record_scores = False              # stages fill Selection.scores (Engine.run(record_scores=True))
        self.vis_embeds0 = vis_embeds0          # [n, d] their layer-0 inputs
        self.deepstack = deepstack              # [K, n, d] added to their rows after layers 0..K-1, or None
        self._refresh_vis_pos()
        self.position_ids0 = _gather_pos(prep.position_ids, seq_ids) if position_ids is None else position_ids
        self.compact = position_ids is not None
        self.cos, self.sin = adapter.rotary_emb(hidden, self.position_ids0)
        self.cache = DynamicCache(config=adapter.model.config.get_text_config())
        self.slots: list[torch.Tensor] = []     # per layer: original sequence index of each cache entry
        self.last_inputs: dict[int, torch.Tensor] = {}  # layer → input hidden of the newest token [1,1,d]
        self.last_cos_sin: tuple[torch.Tensor, torch.Tensor] | None = None
        self.tokens_per_layer: list[int] = []
        self.attention_pairs: list[int | None] = []   # per layer: pairs a counted mask allowed (None: causal)

    # -- provenance --------------------------------------------------------------------
    def _refresh_vis_pos(self) -> None:
        vis_seq = self.prep.vis_pos[self.vis_ids]
        self.vis_pos = torch.searchsorted(self.seq_ids, vis_seq)

    def slot_visual_ids(self, layer: int) -> torch.Tensor:
        """Original visual id of every cache entry of ``layer`` (-1 where not visual)."""
        slots = self.slots[layer]
        vis_seq = self.prep.vis_pos
        j = torch.searchsorted(vis_seq, slots).clamp_(max=vis_seq.numel() - 1)
        return torch.where(vis_seq[j] == slots, j, torch.full_like(j, -1))

    def question_pos_now(self) -> torch.Tensor:
        """Positions of the question's tokens inside the current sequence (text rows never leave)."""
        return torch.searchsorted(self.seq_ids, self.prep.question_rows().to(self.seq_ids.device))

    # -- editing the sequence ------------------------------------------------------------
    def keep_visual(self, keep: torch.Tensor, values: torch.Tensor | None = None, merge: Any = None) -> None:
        """Keep alive visual tokens ``keep`` (indices into the alive set); text rows always stay.

        ``merge`` (a ``stages.Merge``) says how ``values`` were formed; DeepStack rows are merged the same way.
        """
        keep = keep.to(self.vis_pos.device)
        drop = torch.ones(self.vis_ids.numel(), dtype=torch.bool, device=keep.device)
        drop[keep] = False
        if values is not None:
            self.hidden[0, self.vis_pos[keep]] = values.to(self.hidden.dtype)
        rows = torch.ones(self.seq_ids.numel(), dtype=torch.bool, device=keep.device)
        rows[self.vis_pos[drop]] = False
        row_idx = rows.nonzero().squeeze(1)
        self.hidden = self.hidden.index_select(1, row_idx)
        self.cos = self.cos.index_select(1, row_idx)
        self.sin = self.sin.index_select(1, row_idx)
        self.seq_ids = self.seq_ids[row_idx]
        self.vis_ids = self.vis_ids[keep]
        self.vis_embeds0 = self.vis_embeds0[keep]
        self.deepstack = side_rows(self.deepstack, keep, merge)
        self._refresh_vis_pos()

    def keep_cache_entries(self, layer: int, keep: torch.Tensor) -> None:
        lay = self.cache.layers[layer]
        keep = keep.to(lay.keys.device)
        lay.keys = lay.keys.index_select(-2, keep).contiguous()
        lay.values = lay.values.index_select(-2, keep).contiguous()
        self.slots[layer] = self.slots[layer][keep]

    # -- scores (DESIGN rule 1) ------------------------------------------------------------
    def cache_row_scores(self, layer: int, mean_heads: bool = True, space: str = "prob") -> torch.Tensor:
        """Attention (fp32) of the newest token over ``layer``'s whole cache, [len] or [H, len].

        q is recomputed from that token's input to ``layer`` (input norm, q_proj, RoPE at its own
        position); keys are the cached, rotated ones. One row only (DESIGN rule 1). ``space``
        ``prob``: softmax probabilities; ``logit``: the pre-softmax scores q·kᵀ/√d (ShaRP eq. 2).
        """
        dec = self.adapter.layers[layer]
        cos, sin = self.last_cos_sin
        q = attention.apply_rope(attention.layer_query(dec, self.last_inputs[layer]).float(),
                                 cos[0].float(), sin[0].float())
        probs = attention.row_scores(q, self.cache.layers[layer].keys[0], dec.self_attn.scaling, space)
        return probs.mean(0) if mean_heads else probs

    def _alive_cache_columns(self, layer: int) -> torch.Tensor:
        vis = self.slot_visual_ids(layer)
        # visual entries of a layer's cache are ascending in visual id; locate each alive id
        order = (vis >= 0).nonzero().squeeze(1)
        return order[torch.searchsorted(vis[order], self.vis_ids)]

    def last_token_scores(self, layer: int, mean_heads: bool = True, space: str = "prob") -> torch.Tensor:
        """Attention of the last text token over the alive visual tokens at ``layer`` ([n] or [H, n])."""
        out = self.cache_row_scores(layer, mean_heads=False, space=space)[:, self._alive_cache_columns(layer)]
        return out.mean(0) if mean_heads else out

    def entering_scores(self, layer: int, space: str = "prob") -> torch.Tensor:
        """[n] last-token scores over the alive visual tokens from the hidden states ENTERING
        ``layer``, with that layer's own q and k (one query row; keys of the current rows)."""
        return attention.scores_from_hidden(self.adapter.layers[layer], self.hidden[0], self.cos, self.sin,
                                            self.vis_pos, space=space)

    # -- reference passes for stages ------------------------------------------------------
    def encode_black_video(self) -> torch.Tensor:
        """Visual embeddings [N, d] of an all-black video with this layout (one step encoded, tiled)."""
        like = self.prep.frames if self.prep.frames is not None else np.zeros((1, 64, 64, 3), np.uint8)
        return self.adapter.encode_black(self.layout, like)

    def encode_black_deepstack(self) -> torch.Tensor | None:
        """DeepStack rows [K, N, d] of that all-black video (None on models without DeepStack)."""
        like = self.prep.frames if self.prep.frames is not None else np.zeros((1, 64, 64, 3), np.uint8)
        return self.adapter.encode_black_deepstack(self.layout, like)

    @torch.no_grad()
    def reference_scores(self, visual_embeds: torch.Tensor, layer: int, space: str = "prob",
                         scoring: str = "cache", survivors: bool = False,
                         deepstack: torch.Tensor | None = None) -> torch.Tensor:
        """Last-token scores at ``layer`` with the prompt unchanged but its visual rows replaced by
        ``visual_embeds`` [N, d] (ShaRP PosC's bias run), no pruning inside the run.

        ``survivors`` False: over ALL original visual tokens, returns [N]. True: over the same rows
        that entered layer 0 of this prefill (the visual tokens a pre-LLM stage left, at the
        positions this prefill gave them), returns [n0] in the order of those ids.
        ``scoring`` ``cache``: the layer's cached keys (as ``last_token_scores``); ``entering``:
        run up to ``layer`` and score with layer ``layer + 1``'s q/k on its input.
        On a DeepStack model ``deepstack`` [K, N, d] are those inputs' DeepStack rows (default
        zeros: content-free, like the all-zero embeddings fallback).
        """
        prep = self.prep
        if deepstack is None and prep.encoding.deepstack is not None:
            deepstack = torch.zeros_like(prep.encoding.deepstack)
        emb = prep.embeds.clone()
        emb[0, prep.vis_pos] = visual_embeds.to(emb.dtype)
        if survivors:
            seq, pos = self.seq_ids0, self.position_ids0
        else:
            seq, pos = torch.arange(emb.shape[1], device=emb.device), None
            if self.compact:   # the full sequence compacts to itself: original positions
                pos = prep.position_ids
        vis_alive = torch.isin(prep.vis_pos, seq).nonzero().squeeze(1)
        st = PrefillState(self.adapter, prep, seq, emb.index_select(1, seq), vis_alive,
                          visual_embeds.index_select(0, vis_alive),
                          None if deepstack is None else deepstack.index_select(1, vis_alive), position_ids=pos)
        for i in range(layer + 1):
            st.run_layer(i, None)
        if scoring == "entering":
            return st.entering_scores(layer + 1, space)
        return st.last_token_scores(layer, space=space)

    # -- running -------------------------------------------------------------------------
    def causal_mask(self):
        if self.adapter.info.attn_impl == "eager":
            n = self.hidden.shape[1]
            m = torch.full((n, n), torch.finfo(self.hidden.dtype).min, dtype=self.hidden.dtype,
                           device=self.hidden.device).triu_(1)
            return m.view(1, 1, n, n)
        return None

    def run_layer(self, i: int, mask) -> None:
        self.last_inputs[i] = self.hidden[:, -1:].detach()
        self.last_cos_sin = (self.cos[:, -1:], self.sin[:, -1:])
        if mask is None:
            mask = self.causal_mask()
        self.tokens_per_layer.append(int(self.hidden.shape[1]))
        out = self.adapter.layers[i](self.hidden, attention_mask=mask, position_embeddings=(self.cos, self.sin),
                                     position_ids=None, past_key_values=self.cache, use_cache=True)
        self.hidden = out[0] if isinstance(out, tuple) else out
        if self.deepstack is not None and i < self.deepstack.shape[0]:
            # DeepStack: the vision tower's intermediate features join the visual rows layer by layer
            self.hidden[0, self.vis_pos] += self.deepstack[i].to(self.hidden.dtype)
        self.slots.append(self.seq_ids.clone())


def side_rows(side: torch.Tensor | None, keep: torch.Tensor, merge: Any) -> torch.Tensor | None:
    """Per-visual-token side features [K, n, d] after a stage kept ``keep`` (merged as the
    ``stages.Merge`` ``merge`` says, or just selected when it is None)."""
    if side is None:
        return None
    if merge is None:
        return side.index_select(1, keep.to(side.device))
    return merge.apply(side.transpose(0, 1), keep).transpose(0, 1)
