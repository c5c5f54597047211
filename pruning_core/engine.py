"""The engine: one decoder-layer loop for every backbone (DESIGN.md "The engine").

Prefill runs the model's own decoder layers one by one on SDPA / FlashAttention-2 (eager only
when the model was loaded with it). Between layers, stages shrink the sequence: kept tokens keep
their original rotary positions because cos/sin (computed once from the original position ids,
M-RoPE included) are gathered by kept index; with ``positions="compact"`` the sequence that
enters layer 0 is re-encoded instead, as if the kept tokens were the whole input (the papers'
own codebases after pre-LLM pruning). Scores a stage needs are recomputed for the last text
token only, from that layer's q and the keys already in the cache. Decoding is our own loop on
the (possibly ragged) per-layer cache.

Timing: ``vision_ms`` (encode), ``pre_llm_ms`` (pre-LLM stages), ``prefill_ms`` (layer 0 to the
first logits, layer and cache stages included) and ``ttft_ms`` = their sum, the one meaning of
TTFT everywhere (DESIGN "result").
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch
from transformers import DynamicCache


from . import context_window
from .checkpoints import Interrupted
from .adapters.base import Adapter, Encoding
from .block_mask import SegmentCausal, as_dense, blocks_attention
from .errors import PlanError
from .positions import compact_position_ids
from .prefill_state import POSITIONS, PrefillState, Prepared, question_span, side_rows
from .registry import build_stages, parse_plan
from .result import Result, StageRecord
from .stages import CacheStage, CacheView, LayerContext, LayerStage, PreContext, PreStage, Stage
from .timing import VideoTiming

ProgressFn = Callable[[str, int, int], None]


def _side_merge(st: Stage, sel, side: torch.Tensor | None):
    """The merge map a stage's values came with; a merge without one cannot be applied to DeepStack rows."""
    if side is not None and sel.values is not None and sel.merge is None:
        from .errors import PlanError
        raise PlanError(f"{st.method} merges tokens without saying how, so it cannot run on a model with "
                        f"DeepStack features (Qwen3-VL): its merged rows' DeepStack features would be wrong")
    return sel.merge


def _bool_to_layer_mask(mask: torch.Tensor, impl: str, dtype) -> torch.Tensor:
    m = mask.view(1, 1, *mask.shape[-2:])
    if impl == "eager":
        return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill_(~m, torch.finfo(dtype).min)
    return m


class Engine:
    """Runs plans on one loaded model. Stateless between runs apart from the model itself."""

    def __init__(self, adapter: Adapter):
        self.adapter = adapter

    @property
    def info(self):
        return self.adapter.info

    # -- preparation ------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, frames, question: str, timing: VideoTiming | None = None) -> Prepared:
        """Encode a video once for any number of runs. ``frames``: RGB uint8 [T,H,W,3] or a
        ``video.Video`` (whose timing is then used); ``timing``: when each frame was (fps, indices)."""
        if hasattr(frames, "frames") and hasattr(frames, "timing"):
            frames, timing = frames.frames, timing or frames.timing
        if not isinstance(question, str) or not question.strip():
            from .errors import VideoPruneError
            raise VideoPruneError("the question is empty")
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
            from .errors import VideoError
            raise VideoError(f"frames must be a non-empty RGB array [T,H,W,3], got shape {tuple(frames.shape)}")
        self.check_fits(frames.shape[0], frames.shape[1], frames.shape[2], question)
        enc = self.adapter.encode_video(frames, timing=timing)
        return self.prepare_encoded(enc, question, frames)

    def check_fits(self, num_frames: int, height: int, width: int, question: str, new_tokens: int = 1) -> None:
        """Refuse (``ContextLengthError``, naming the most frames that fit) a clip longer than the model's
        context, before anything is encoded; see ``context_window``."""
        if hasattr(self.adapter, "sequence_length"):
            context_window.check_fits(self.adapter, int(num_frames), int(height), int(width), question, new_tokens)

    @torch.no_grad()
    def prepare_encoded(self, enc: Encoding, question: str, frames: np.ndarray | None = None) -> Prepared:
        ad = self.adapter
        input_ids, slots = ad.prompt_ids(question, enc)
        embeds = ad.embed_tokens(input_ids)
        visual = enc.embeds if enc.extra is None else torch.cat([enc.embeds, enc.extra], 0)
        embeds[0, slots] = visual.to(embeds.dtype)
        vis_pos = slots[: enc.layout.num_tokens]
        position_ids, delta = ad.position_ids(input_ids, enc)
        q0, q1 = question_span(lambda q: ad.prompt_ids(q, enc)[0][0].tolist(), question)
        q_pos = torch.arange(q0, q1, device=input_ids.device)
        q_pos = q_pos[~torch.isin(q_pos, slots)]          # never a video slot, whatever the template
        return Prepared(input_ids, embeds, vis_pos, position_ids, delta, enc, question, frames, q_pos)

    # -- running ----------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, prep: Prepared, plan=None, max_new_tokens: int = 16, progress: ProgressFn | None = None,
            interrupt: Callable[[], bool] | None = None, collect_logits: bool = False,
            force_tokens: list[int] | None = None, feed_tokens: Sequence[int] = (),
            positions: str = "original", record_scores: bool = False) -> Result:
        """Prefill ``prep`` under ``plan``, then decode greedily.

        With ``force_tokens`` the decode is teacher-forced instead: exactly those tokens are fed
        (EOS does not stop it, ``max_new_tokens`` is ignored) and ``logits`` holds the row that
        predicts each of them, so a continuation's log-likelihood is scored on the pruned cache.
        ``feed_tokens`` are fed through the decoder first (on the pruned cache) and are not part of
        the answer: the rest of a prompt cut by :func:`split_prompt` (a question that arrives after
        the video). ``positions``: ``original`` (every kept token keeps its position, DESIGN rule 2)
        or ``compact`` (the sequence entering layer 0 is re-encoded as the new input:
        ``positions.compact_position_ids``; later layer/cache stages keep those positions).
        ``record_scores``: stages that rank tokens keep what they ranked by in each
        ``StageRecord.scores`` (ORIGINAL ids; the demo's heatmaps); off, nothing is kept or copied.
        """
        if positions not in POSITIONS:
            raise PlanError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
        feed = [int(t) for t in feed_tokens]
        if force_tokens is not None:
            force_tokens = [int(t) for t in force_tokens]
            if not force_tokens:
                raise ValueError("force_tokens must hold at least one token")
            collect_logits = True
        given = feed + (force_tokens or [])   # tokens fed, not chosen
        plan_list = parse_plan(plan)
        stages = build_stages(plan_list, self.info)
        self._check_answer_room(prep, max_new_tokens)
        records: list[StageRecord] = []
        n_orig = prep.layout.num_tokens
        dev = prep.embeds.device
        t_start = time.perf_counter()

        # pre-LLM stages on the visual embeddings
        vis_ids = torch.arange(n_orig, device=dev)
        vis_emb = prep.visual_embeds
        deepstack = prep.encoding.deepstack
        text_mask = torch.ones(prep.input_ids.shape[1], dtype=torch.bool, device=dev)
        text_mask[prep.vis_pos] = False
        if prep.encoding.extra is not None:
            text_mask[prep.vis_pos[-1] + 1: prep.vis_pos[-1] + 1 + prep.encoding.extra.shape[0]] = False
        pre_stages = [s for s in stages if isinstance(s, PreStage)]
        for k, st in enumerate(pre_stages):
            t0 = time.perf_counter()
            q_rows = prep.embeds[0, prep.question_rows()]
            ctx = PreContext(embeds=vis_emb, ids=vis_ids, layout=prep.layout, query=q_rows[-1],
                             text=prep.embeds[0, text_mask], vision=prep.encoding.vision,
                             side_rows=deepstack is not None, question=q_rows, record_scores=record_scores)
            sel = st.select(ctx)
            keep = _check_keep(sel.keep, vis_ids.numel(), st)
            alive = vis_ids
            vis_ids = vis_ids[keep]
            deepstack = side_rows(deepstack, keep, _side_merge(st, sel, deepstack))
            vis_emb = sel.values.to(vis_emb.dtype) if sel.values is not None else vis_emb[keep]
            records.append(StageRecord.of(st, vis_ids, n_orig, (time.perf_counter() - t0) * 1000, sel.info))
            if record_scores and sel.scores:
                records[-1].with_scores(sel.scores, alive, n_orig)
            if progress is not None:
                progress("stages", k + 1, len(pre_stages))

        # the sequence entering layer 0
        keep_rows = torch.ones(prep.input_ids.shape[1], dtype=torch.bool, device=dev)
        keep_rows[prep.vis_pos] = False
        keep_rows[prep.vis_pos[vis_ids]] = True
        seq_ids = keep_rows.nonzero().squeeze(1)
        hidden = prep.embeds.index_select(1, seq_ids)   # a fresh tensor: the row writes below leave prep alone
        pos0 = compact_position_ids(prep.position_ids, prep.vis_pos, seq_ids) if positions == "compact" else None
        _sync(dev)
        pre_llm_ms = (time.perf_counter() - t_start) * 1000.0
        t_prefill = time.perf_counter()
        state = PrefillState(self.adapter, prep, seq_ids, hidden, vis_ids, vis_emb, deepstack, position_ids=pos0)
        state.record_scores = record_scores
        hidden[0, state.vis_pos] = vis_emb.to(hidden.dtype)
        state.hidden = hidden

        layer_stages = [s for s in stages if isinstance(s, LayerStage)]
        cache_stages = [s for s in stages if isinstance(s, CacheStage)]
        early = None
        early_until = 0
        early_ms: dict[int, float] = {}   # mask-building time, charged to the stage that asked for it
        for st in layer_stages:
            t0 = time.perf_counter()
            m = st.early_mask(state)
            early_ms[id(st)] = (time.perf_counter() - t0) * 1000
            if m is not None:
                early = m
                early_until = st.layer
                break
        streamed = _PrefillMasks(cache_stages)
        n_layers = self.info.num_layers
        by_layer: dict[int, list[LayerStage]] = {}
        for st in layer_stages:
            by_layer.setdefault(st.layer, []).append(st)
        withdrawals: list[dict] = []

        for i in range(n_layers):
            if interrupt is not None and interrupt():
                raise Interrupted(f"interrupted before layer {i}")
            for st in by_layer.get(i, ()):
                t0 = time.perf_counter()
                sel = st.select(LayerContext(i, state))
                if sel is None:  # the stage decided to leave this layer alone
                    continue
                keep = _check_keep(sel.keep, state.vis_ids.numel(), st)
                alive = state.vis_ids
                state.keep_visual(keep, sel.values, _side_merge(st, sel, state.deepstack))
                ms = (time.perf_counter() - t0) * 1000 + early_ms.get(id(st), 0.0)
                records.append(StageRecord.of(st, state.vis_ids, n_orig, ms, sel.info, layer=i))
                if record_scores and sel.scores:
                    records[-1].with_scores(sel.scores, alive, n_orig)
            mask = early if (early is not None and i < early_until) else None
            if mask is not None and mask.shape[-1] != state.hidden.shape[1]:
                mask = None  # a stage shrank the sequence before the SegM layers ended: plain causal
            stream = streamed.mask(state)
            pairs = None
            blocks = None
            if stream is not None or self.info.attn_impl == "eager":
                mask = None if mask is None else as_dense(mask, dev)
            if stream is not None:
                # the pair count of the streamed mask alone is counted once per mask, not per layer
                # (a [L, L] sum is ~0.25 s at 6,291 tokens)
                pairs = streamed.pairs() if mask is None else None
                mask = stream if mask is None else mask & stream
                pairs = int(mask.sum()) if pairs is None else pairs
            if isinstance(mask, SegmentCausal):
                blocks, mask = mask, None   # attention runs block by block, causal in each (block_mask)
            if mask is not None:
                mask = _bool_to_layer_mask(mask, self.info.attn_impl, hidden.dtype)
            with _sdpa_for(self.adapter, mask is not None and self.info.attn_impl.startswith("flash")), \
                    blocks_attention(self.adapter, blocks):
                state.run_layer(i, mask)
            state.attention_pairs.append(pairs)
            for st in cache_stages:
                t0 = time.perf_counter()
                w = st.after_layer(LayerContext(i, state))
                if w is not None and w.drop.numel() > 0:
                    keep = torch.ones(state.vis_ids.numel(), dtype=torch.bool, device=dev)
                    keep[w.drop.to(dev)] = False
                    dropped = state.vis_ids[~keep]
                    state.keep_visual(keep.nonzero().squeeze(1))
                    for lay in w.evict_layers:
                        vids = state.slot_visual_ids(lay)
                        state.keep_cache_entries(lay, (~torch.isin(vids, dropped)).nonzero().squeeze(1))
                    withdrawals.append({"method": st.method, "after_layer": i, "dropped": int(dropped.numel()),
                                        "evicted_layers": list(w.evict_layers), **w.info})
                    records.append(StageRecord.of(st, state.vis_ids, n_orig, (time.perf_counter() - t0) * 1000,
                                                  w.info, layer=i + 1))
            if progress is not None:
                progress("prefill", i + 1, n_layers)

        view = CacheView(state)
        for st in cache_stages:
            t0 = time.perf_counter()
            info = st.after_prefill(view)
            if info is not None:
                # what a cache stage keeps is what the deepest layer's cache still holds
                in_cache = state.slot_visual_ids(n_layers - 1)
                records.append(StageRecord.of(st, torch.unique(in_cache[in_cache >= 0]), n_orig,
                                              (time.perf_counter() - t0) * 1000, info))
        last = self.adapter.norm(state.hidden[:, -1:])
        logits = self.adapter.lm_head(last)[0, -1].float()
        _sync(dev)
        prefill_ms = (time.perf_counter() - t_prefill) * 1000.0
        kv_bytes = _cache_bytes(state.cache)

        # decode on the pruned cache
        eos = self.adapter.eos_token_ids
        tokens: list[int] = []
        all_logits = [logits] if collect_logits else []
        # original: decode continues from the unpruned length (+ rope delta); compact: from the kept one
        next_pos = int(pos0.max()) + 1 if pos0 is not None else prep.input_ids.shape[1] + prep.rope_delta
        next_seq = prep.input_ids.shape[1]
        tok = given[0] if given else int(logits.argmax())
        t_dec = time.perf_counter()
        steps = 0
        while True:
            tokens.append(tok)
            made = len(tokens) - len(feed)
            if force_tokens is not None:
                if len(tokens) == len(given):
                    break
            elif made > 0 and (tok in eos or made >= max_new_tokens):
                break
            if interrupt is not None and interrupt():
                raise Interrupted("interrupted while decoding")
            for st in cache_stages:
                st.on_decode_step(view, steps)
            logits = self._decode_step(state, tok, next_pos, next_seq, cache_stages, view, steps)
            if collect_logits:
                all_logits.append(logits)
            next_pos += 1
            next_seq += 1
            steps += 1
            tok = given[len(tokens)] if len(tokens) < len(given) else int(logits.argmax())
            if progress is not None:
                progress("decode", len(tokens), max_new_tokens)
        _sync(dev)
        decode_ms = (time.perf_counter() - t_dec) * 1000.0
        tokens = tokens[len(feed):]
        if collect_logits and feed:   # keep the logits that chose (or score) the answer's tokens
            all_logits = all_logits[len(feed):]
        answer = self.adapter.tokenizer.decode([t for t in tokens if t not in eos], skip_special_tokens=True).strip()

        from . import flops as flops_mod
        info = self.info
        n_text = int(prep.input_ids.shape[1]) - n_orig
        unpruned = [int(prep.input_ids.shape[1])] * info.num_layers
        res = Result(
            answer=answer, tokens=tokens, plan=plan_list, stages=records,
            visual_tokens=n_orig, kept_tokens=int(state.vis_ids.numel()),
            layout=prep.layout, vision_ms=prep.encoding.encode_ms, prefill_ms=prefill_ms,
            pre_llm_ms=pre_llm_ms, ttft_ms=prep.encoding.encode_ms + pre_llm_ms + prefill_ms,
            decode_ms=decode_ms, decode_steps=steps, positions=positions,
            tokens_per_layer=state.tokens_per_layer, text_tokens=n_text,
            flops=flops_mod.prefill_flops(state.tokens_per_layer, info.hidden_size, info.intermediate_size,
                                          state.attention_pairs),
            flops_unpruned=flops_mod.prefill_flops(unpruned, info.hidden_size, info.intermediate_size),
            kv_cache_bytes=kv_bytes, kv_cache_bytes_final=_cache_bytes(state.cache),
            withdrawals=withdrawals, model=info.name, dims=(info.hidden_size, info.intermediate_size),
            attention_pairs=list(state.attention_pairs),
        )
        if collect_logits:
            res.logits = torch.stack(all_logits)
        return res

    def _check_answer_room(self, prep: Prepared, max_new_tokens: int) -> None:
        if prep.frames is not None and prep.frames.ndim == 4:
            t, h, w = prep.frames.shape[:3]
            self.check_fits(t, h, w, prep.question, max_new_tokens)
            return
        cap = context_window.max_positions(self.adapter)
        length = int(prep.input_ids.shape[1])
        if cap is not None and length + max_new_tokens > cap:
            raise context_window.ContextLengthError(
                f"the prompt takes {length} of the model's {cap} positions; ask for at most "
                f"{max(cap - length, 0)} new tokens, or use fewer frames")

    def _decode_step(self, state: PrefillState, tok: int, pos: int, seq_index: int,
                     cache_stages: list = (), view: CacheView | None = None, step: int = 0) -> torch.Tensor:
        ad = self.adapter
        dev = state.hidden.device
        h = ad.embed_tokens(torch.tensor([[tok]], device=dev))
        cos, sin = ad.rotary_emb(h, ad.decode_position_ids(pos))
        state.last_cos_sin = (cos, sin)
        new_slot = torch.tensor([seq_index], device=dev)
        impl = self.info.attn_impl
        for i, layer in enumerate(ad.layers):
            state.last_inputs[i] = h
            mask = None
            for st in cache_stages:
                keep = st.decode_layer_keep(view, i, step)
                if keep is not None:   # attend to these entries and to the new token itself
                    allow = torch.zeros(1, int(state.slots[i].numel()) + 1, dtype=torch.bool, device=dev)
                    allow[0, keep.to(dev)] = True
                    allow[0, -1] = True
                    mask = _bool_to_layer_mask(allow, impl, h.dtype)
            with _sdpa_for(ad, mask is not None and impl.startswith("flash")):
                out = layer(h, attention_mask=mask, position_embeddings=(cos, sin), position_ids=None,
                            past_key_values=state.cache, use_cache=True)
            h = out[0] if isinstance(out, tuple) else out
            state.slots[i] = torch.cat([state.slots[i], new_slot])
        return ad.lm_head(ad.norm(h))[0, -1].float()

    # -- convenience -------------------------------------------------------------------------
    def answer(self, frames, question: str, plan=None, timing: VideoTiming | None = None, **kw) -> Result:
        return self.run(self.prepare(frames, question, timing), plan, **kw)


def split_prompt(prep: Prepared, keep: int) -> tuple[Prepared, list[int]]:
    """``prep`` cut to its first ``keep`` sequence entries (which must hold every visual token), and
    the cut-off token ids, to feed through the decoder with ``Engine.run(..., feed_tokens=ids)``: the
    video is prefilled (and pruned) before the rest of the prompt — the question — arrives."""
    from .errors import VideoPruneError
    n = int(prep.input_ids.shape[1])
    last_visual = int(prep.vis_pos[-1]) + (0 if prep.encoding.extra is None else int(prep.encoding.extra.shape[0]))
    if not last_visual < keep < n:
        raise VideoPruneError(f"split_prompt: keep must lie after the last visual token ({last_visual}) and "
                              f"before the prompt end ({n}), got {keep}")
    tail = prep.input_ids[0, keep:].tolist()
    cut = Prepared(prep.input_ids[:, :keep], prep.embeds[:, :keep], prep.vis_pos, prep.position_ids[..., :keep],
                   prep.rope_delta, prep.encoding, prep.question, prep.frames)
    return cut, tail


def _check_keep(keep: torch.Tensor, n: int, st: Stage) -> torch.Tensor:
    keep = keep.long().flatten()
    if keep.numel() == 0:
        return keep
    if int(keep.min()) < 0 or int(keep.max()) >= n or bool((keep[1:] <= keep[:-1]).any()):
        raise RuntimeError(f"{st.method}: stage returned ids that are not unique, ascending and in range")
    return keep


class _PrefillMasks:
    """The cache stages' whole-prefill masks (StreamingLLM streamed), rebuilt when the sequence changes."""

    def __init__(self, cache_stages: list):
        self.stages = cache_stages
        self._len = -1
        self._mask: torch.Tensor | None = None
        self._pairs: int | None = None

    def pairs(self) -> int:
        """(query, key) pairs the current mask allows."""
        if self._pairs is None:
            self._pairs = int(self._mask.sum())
        return self._pairs

    def mask(self, state: PrefillState) -> torch.Tensor | None:
        n = int(state.hidden.shape[1])
        if n != self._len:
            self._len, self._mask, self._pairs = n, None, None
            for st in self.stages:
                m = st.prefill_mask(state)
                if m is not None:
                    self._mask = m if self._mask is None else self._mask & m
        return self._mask


class _sdpa_for:
    """Route layers to SDPA while a boolean mask is needed on a FlashAttention-2 model (ShaRP SegM)."""

    def __init__(self, adapter: Adapter, active: bool):
        self.cfg = adapter.model.config.get_text_config()
        self.active = active

    def __enter__(self):
        if self.active:
            self.prev = self.cfg._attn_implementation
            self.cfg._attn_implementation = "sdpa"

    def __exit__(self, *exc):
        if self.active:
            self.cfg._attn_implementation = self.prev


def _cache_bytes(cache: DynamicCache) -> int:
    return int(sum(l.keys.numel() * l.keys.element_size() + l.values.numel() * l.values.element_size()
                   for l in cache.layers if getattr(l, "keys", None) is not None))


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
