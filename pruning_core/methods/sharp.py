"""ShaRP (ShaRP.txt): shallow-layer attention pruning with segment-aware masking (SegM, §4.1),
positional-bias calibration (PosC, §4.2) and register-token deduplication (RegD, §4.3).

One layer stage at ``layer`` (default 1, the paper's "first decoder layer"):

* before layer 0 it hands the engine the SegM mask for layers ``0..layer-1`` (``early_mask``);
* entering ``layer`` it ranks the alive visual tokens by the last text token's attention at
  ``layer-1`` minus λ·(the same attention for an all-black video), keeps the top K across the
  whole video and refines them segment by segment with RegD (merges become ``Selection.values``).

The math is in ``sharp_ops``, the bias cache in ``sharp_bias``; choices where the paper is
ambiguous are written down in ``docs/methods/sharp.md``.
"""
from __future__ import annotations

import time

import torch

from ..block_mask import segment_causal
from ..errors import VideoError
from ..registry import MethodSpec, Param, layer_param, register, retention_param
from ..stages import LayerContext, LayerStage, Merge, Selection, recording
from ..tokens import topk_ordered
from . import sharp_bias
from . import sharp_ops as ops

PAPER = "ShaRP: SHAllow-LayeR Pruning for Video Large Language Models Acceleration"


def _ms(t0: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) * 1000.0


class SharpStage(LayerStage):
    """ShaRP at one layer; ``segm`` / ``posc`` / ``regd`` switch its three components (Table 5)."""

    def __init__(self, method: str, params: dict, layer: int):
        super().__init__(method, params, layer)
        self._segm_ms = 0.0

    # -- SegM (§4.1) ------------------------------------------------------------------------
    def _segments(self, vis_embeds0: torch.Tensor, vis_ids: torch.Tensor, layout) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment of every alive visual token (eq. 3 on the layer-0 inputs) and the frame-similarity curve."""
        return ops.token_segments(vis_embeds0, layout.frame_of(vis_ids), layout.num_frames, self.params["tau_seg"])

    def early_mask(self, state):
        if not self.params["segm"]:
            return None
        t0 = time.perf_counter()
        seg, _ = self._segments(state.vis_embeds0, state.vis_ids, state.layout)
        length, vis_pos = int(state.hidden.shape[1]), state.vis_pos
        if vis_pos.numel() and int(vis_pos[-1]) + 1 - int(vis_pos[0]) == vis_pos.numel():
            # one contiguous video block: held as causal blocks (SDPA keeps its causal fast path)
            mask = segment_causal(length, int(vis_pos[0]), seg)
        else:
            mask = ops.segment_mask(length, vis_pos, seg)
        self._segm_ms = _ms(t0, state.hidden.device)
        return mask

    # -- scores --------------------------------------------------------------------------------
    def _scores(self, ctx: LayerContext) -> torch.Tensor:
        """ã of eq. 5 over the alive visual tokens: the last text token's attention, as a logit
        (eq. 2) or a probability, from the layer before (``cache``) or from this layer's own q/k on
        the SegM-masked output of the layer before (``entering``)."""
        p = self.params
        space = self._space()
        if p["scoring"] == "entering":
            return ctx.state.entering_scores(self.layer, space)
        return ctx.state.last_token_scores(self.layer - 1, space=space)

    def _space(self) -> str:
        # without PosC the ranking is FastV's (head-mean probabilities): posc_space says where eq. 5 subtracts
        return self.params["posc_space"] if self.params["posc"] else "prob"

    # -- PosC (§4.2) ------------------------------------------------------------------------
    def _bias(self, ctx: LayerContext) -> tuple[torch.Tensor, dict]:
        """b for the alive visual tokens, from an all-black video of the same layout and prompt run
        through the same scoring path (cached per model/layout/prompt/path/survivors).

        When a pre-LLM stage pruned, the black run sees the same surviving rows at the same
        positions, so b and ã are softmaxes (or logits) over the same sequence (ShaRP Table 3's
        chains); otherwise it runs over every original visual token."""
        p = self.params
        st = ctx.state
        ad = st.adapter
        prep = st.prep
        score_layer = self.layer - 1
        survivors = int(st.seq_ids0.numel()) < int(prep.input_ids.shape[1])
        frame_hw = tuple(int(v) for v in prep.frames.shape[1:3]) if prep.frames is not None else None
        path = f"{self._space()}/{p['scoring']}/{'compact' if st.compact else 'original'}"
        rows = st.seq_ids0 if survivors else None
        key = sharp_bias.bias_key(ad.info.name, sharp_bias.model_fingerprint(ad.model), st.layout.to_dict(),
                                  frame_hw, prep.input_ids, score_layer, str(ad.dtype), path=path, rows=rows)
        vis0 = torch.isin(prep.vis_pos, st.seq_ids0).nonzero().squeeze(1)    # visual ids entering layer 0
        used: dict = {"bias_over": "survivors" if survivors else "all"}

        def compute() -> torch.Tensor:
            black, used["bias_input"] = _black_embeddings(st)
            deepstack = st.encode_black_deepstack() if used["bias_input"] == "black_video" else None
            return st.reference_scores(black, score_layer, space=self._space(), scoring=p["scoring"],
                                       survivors=survivors, deepstack=deepstack)

        n_bias = int(vis0.numel()) if survivors else st.layout.num_tokens
        bias, info = sharp_bias.cached_bias(key, n_bias, compute,
                                            meta={"model": ad.info.name, "layer": score_layer,
                                                  "layout": st.layout.to_dict(), "path": path})
        info.update(used)
        ids = ctx.ids.to(vis0.device)
        return bias.to(ids.device)[torch.searchsorted(vis0, ids) if survivors else ids], info

    # -- pruning + RegD (§4.3) ----------------------------------------------------------------
    def select(self, ctx: LayerContext) -> Selection:
        p = self.params
        t0 = time.perf_counter()
        ids = ctx.ids
        dev = ids.device
        n = int(ids.numel())
        seg, sim = self._segments(ctx.visual_embeds0, ids, ctx.layout)
        n_seg = int(seg.max()) + 1 if n else 0
        scores = self._scores(ctx)
        info: dict = {"components": [c for c in ("segm", "posc", "regd") if p[c]],
                      "segments": n_seg, "segment_of_frame": self._frame_segments(seg, ids, ctx.layout),
                      "frame_similarity": [round(float(v), 4) for v in sim.tolist()],
                      "segm_ms": self._segm_ms}
        bias_ms = 0.0
        recorded = {"attention": scores} if recording(ctx) else {}
        if p["posc"]:
            bias, binfo = self._bias(ctx)
            bias_ms = binfo["bias_ms"]
            info.update(binfo)
            scores = ops.debias(scores, bias.to(dev), p["lam"])
            if recording(ctx):
                recorded["attention after PosC"] = scores
        k = ctx.budget(p["retention"])
        top = topk_ordered(scores, k)
        info["attn_ms"] = _ms(t0, dev) - bias_ms          # Table 4 "Attn.": scoring, debiasing, top-K
        info["registers"] = int(top.numel())
        if not p["regd"] or n == 0:
            return Selection(top, info=info, scores=recorded)

        x = ctx.visual_hidden
        times: dict = {}
        out = ops.regd(x, seg, top, scores, p["tau_filter"], p["tau_merge"], p["tau_cluster"], p["beta"], times,
                       p["dedup_compare"])
        info.update(times)
        info.update(out.info)
        return Selection(out.keep, out.values.to(x.dtype), info, Merge(out.target), scores=recorded)

    @staticmethod
    def _frame_segments(seg: torch.Tensor, ids: torch.Tensor, layout) -> list[int]:
        """Segment index of every frame (-1 for frames with no alive token), for reports and overlays."""
        out = torch.full((layout.num_frames,), -1, dtype=torch.long, device=seg.device)
        out[layout.frame_of(ids)] = seg
        return out.tolist()


def _black_embeddings(state) -> tuple[torch.Tensor, str]:
    """Visual embeddings of an all-black video with the run's layout, and what they are.

    When the run was prepared from embeddings rather than frames (benchmarks feed visual
    embeddings directly), the vision tower's black frame need not match the layout; the
    content-free input is then all-zero embeddings: every token identical, so only position
    differs, which is what PosC measures.
    """
    n = state.layout.num_tokens
    black = state.encode_black_video()
    if black.shape[0] == n:
        return black, "black_video"
    if state.prep.frames is None:
        return torch.zeros(n, black.shape[-1], dtype=black.dtype, device=black.device), "zero_embeddings"
    raise VideoError(f"ShaRP PosC: the all-black video encodes to {black.shape[0]} visual tokens, "
                     f"but this video's layout has {n}")


def _build(params: dict, model_info) -> list:
    return [SharpStage("sharp", params, params["layer"])]


def _tau(name: str, default: float, tip: str, ref: str) -> Param:
    return Param(name, "float", default, tip, min=-1.0, max=1.0, step=0.01, ref=ref)


register(MethodSpec(
    name="sharp",
    title="ShaRP",
    node="ShaRP",
    kind="layer",
    summary="Shallow-layer attention pruning: segment-aware causal mask before pruning, attention "
            "debiased by an all-black video, top-K, then per-segment register-token deduplication.",
    paper=PAPER,
    category="ShaRP",
    params=(
        layer_param(1, ref="ShaRP §5.1 (pruning at the first decoder layer)"),
        retention_param(0.235, ref="ShaRP Tables 1 and 5 (R = 23.5%, the ablation setting)"),
        Param("segm", "bool", True, "Segment-aware causal masking in the layers before pruning.", ref="ShaRP §4.1"),
        Param("posc", "bool", True, "Subtract the all-black-video attention (positional bias) before ranking.",
              ref="ShaRP §4.2"),
        Param("regd", "bool", True, "Register-token deduplication (pre-filter, dedup, post-fill) per segment.",
              ref="ShaRP §4.3"),
        _tau("tau_seg", 0.9, "New segment where consecutive frame means have cosine similarity below this.",
             "ShaRP eq. 3, §5.1"),
        Param("lam", "float", 0.6, "λ: strength of the positional-bias compensation â = ã − λ·b.",
              min=0.0, max=10.0, step=0.05, ref="ShaRP eq. 5, §5.1"),
        Param("posc_space", "choice", "logit", "Where eq. 5 subtracts: logit = the pre-softmax score ã of eq. 2 "
              "(the paper); prob = head-averaged softmax probabilities.", choices=("logit", "prob"),
              ref="ShaRP eq. 2, eq. 5"),
        Param("scoring", "choice", "cache", "Scores for pruning entering layer k: cache = the last token's "
              "attention at layer k-1 (FastV); entering = layer k's own q/k on the SegM-masked output of "
              "layer k-1 (lets SegM change the selection).", choices=("cache", "entering"),
              ref="ShaRP §4.1, §4.3 (docs/methods/sharp.md)"),
        Param("dedup_compare", "choice", "adjacent", "RegD dedup: adjacent = each register compared with the "
              "one before it (the paper's words); pivot = compared with the current run's first token.",
              choices=("adjacent", "pivot"), ref="ShaRP §4.3 step 2"),
        _tau("tau_filter", 0.7, "Pre-filter: a non-kept token more similar than this to a kept token of its "
             "segment is merged into it.", "ShaRP §4.3 step 1, §5.1"),
        _tau("tau_merge", 0.8, "Dedup: a kept token more similar than this to the current pivot is merged into it.",
             "ShaRP §4.3 step 2, §5.1"),
        _tau("tau_cluster", 0.4, "Post-fill: a token joins the current cluster when its similarity to the "
             "cluster's first token exceeds this.", "ShaRP §4.3 step 3, §5.1"),
        Param("beta", "float", 0.008, "β: weight of cluster size in the diversity score (eq. 6).",
              min=0.0, max=1.0, step=0.001, ref="ShaRP eq. 6, §5.1"),
    ),
    build=_build,
    tags=("attention", "merging", "segments"),
))
