"""DyCoke (Tao et al., CVPR 2025, "DyCoke: Dynamic Compression of Tokens for Fast Video LLMs").

Two parts, each switchable:

* **TTM** (temporal token merging), a pre-LLM stage. Frames are taken in windows of 4.
  Inside a window, frame 1 is compared with frame 0, frame 3 with frame 2, and frame 2 with
  frame 0, token by token at the same grid position (cosine similarity of the visual
  embeddings). In every compared frame the K share most similar to their reference are merged
  into it — dropped, the reference token representing both — and ``int((1-K)·n)`` stay.
  Frame 0 of each window is kept whole. ``window=official`` compares frame 2 with frame 0 only
  in the windows the authors' loop ``range(0, F-4, 4)`` visits, so the last window's frame 2
  stays whole (3098 of 32×196 tokens kept at K 0.7, not 2960); ``window=all`` merges it too.
* **Dynamic KV pruning**, a cache stage. ``decode=official`` (default): at every decode step the
  new token's attention at layer L-1 over the visual entries is compared with the previous
  step's (cosine); when it is below 0.9 the layers L.. of this step attend only to the top
  ``int((1-P)·n)`` visual entries of the CURRENT ranking, otherwise to the whole cache —
  a per-step mask, nothing is evicted (``PrunableDynamicCache.dycoke_pruning``). The first step
  always prunes. ``decode=evict`` ranks once from the last prompt token after the prefill and
  frees the rest from layers L.. for good (the cache really shrinks: for memory benchmarks).
  L is clamped to the model's depth (``L = min(L, layers-1)``).

Definitions follow the authors' code (``llava_arch.dycole_ttm``, ``PrunableDynamicCache`` in
KD-TAO/DyCoke); defaults from their README (``dycoke_l=3, dycoke_p=0.7, dycoke_k=0.7``), the
(K, L, P) = (0.7, 3, 0.7) setting SharpV also uses (SharpV.txt, Implementation Details).
"""
from __future__ import annotations

import torch

from ..errors import PlanError
from ..layout import TokenLayout
from ..registry import MethodSpec, Param, layer_param, register
from ..stages import CacheStage, CacheView, PreContext, PreStage, Selection
from ..tokens import rowwise_cosine, topk_ordered, topk_per_group

WINDOW = 4  # DyCoke TTM works on windows of four frames (pairs 0-1, 2-3, then 0-2)


# ---------------------------------------------------------------- TTM (pre-LLM)

def ttm_reference_frame(frame: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
    """Frame each frame is compared with inside its window of 4 (-1: not compared).

    With ``num_frames`` (the official window) frame 2 of a window starting at w is compared with
    frame w only when the authors' ``range(0, F-4, 4)`` visits w, i.e. w < F-4.
    """
    r = frame % WINDOW
    ref = torch.where(r == 3, frame - 1, frame - r)
    none = r == 0
    if num_frames is not None:
        none = none | ((r == 2) & (frame - 2 >= num_frames - WINDOW))
    return torch.where(none, torch.full_like(frame, -1), ref)


def ttm_similarity(embeds: torch.Tensor, ids: torch.Tensor, layout: TokenLayout, chunk: int = 256,
                   official_window: bool = False) -> torch.Tensor:
    """Cosine similarity of each alive token to the token at its grid position in its reference frame.

    -inf where there is no reference (window's first frame, or the reference token is not alive).
    DyCoke compares with the reference frame's INPUT tokens, so a reference pruned by TTM itself
    still counts; all similarities are therefore computed at once.
    """
    p = layout.tokens_per_frame
    ref_frame = ttm_reference_frame(ids // p, layout.num_frames if official_window else None)
    ref_id = ref_frame * p + ids % p
    pos = torch.searchsorted(ids, ref_id.clamp_min(0)).clamp_(max=ids.numel() - 1)
    src = ((ref_frame >= 0) & (ids[pos] == ref_id)).nonzero().squeeze(1)
    ref = pos[src]
    sim = torch.full((ids.numel(),), float("-inf"), device=embeds.device)
    # row blocks keep the working set in cache: on CPU one pass over all rows is ~5x slower
    for start in range(0, src.numel(), chunk):
        s, r = src[start:start + chunk], ref[start:start + chunk]
        sim[s] = rowwise_cosine(embeds.index_select(0, s), embeds.index_select(0, r))
    return sim


def ttm_select(embeds: torch.Tensor, ids: torch.Tensor, layout: TokenLayout, k: float,
               official_window: bool = False) -> tuple[torch.Tensor, dict]:
    """Alive indices kept by TTM (ascending). In each compared frame the ``n - int((1-K)·n)`` tokens
    most similar to their reference are merged away (DyCoke TTM; ``n`` = alive tokens of the frame);
    ties break towards the earlier token."""
    frame = layout.frame_of(ids)
    sim = ttm_similarity(embeds, ids, layout, official_window=official_window)
    n_f = torch.bincount(frame, minlength=layout.num_frames)
    has_ref = torch.isfinite(sim)
    cand_f = torch.bincount(frame[has_ref], minlength=layout.num_frames)
    stay_f = torch.floor(n_f.double() * (1.0 - k)).long()
    merge_f = torch.minimum(n_f - stay_f, cand_f)
    merged = topk_per_group(sim, frame, merge_f)
    drop = torch.zeros(ids.numel(), dtype=torch.bool, device=ids.device)
    drop[merged] = True
    keep = (~drop).nonzero().squeeze(1)
    return keep, {"merged": int(merged.numel()), "merged_per_frame": merge_f.tolist()}


class DyCokeTTMStage(PreStage):
    def select(self, ctx: PreContext) -> Selection:
        keep, info = ttm_select(ctx.embeds, ctx.ids, ctx.layout, self.params["k"],
                                official_window=self.params.get("window", "official") == "official")
        return Selection(keep, info=info)

    @property
    def label(self) -> str:
        return "dycoke-ttm"


# ---------------------------------------------------------------- dynamic KV pruning (decode)

def kv_keep_visual_ids(scores: torch.Tensor, visual_ids: torch.Tensor, p: float) -> torch.Tensor:
    """Original visual ids kept for decoding: the top ``int((1-P)·n)`` visual entries by attention.

    ``scores`` [len] newest-token attention over one layer's cache, ``visual_ids`` [len] (-1 = text).
    Returned ascending (DyCoke dynamic KV pruning, ``update_cache`` in the authors' code).
    """
    vis = (visual_ids >= 0).nonzero().squeeze(1)
    n_keep = int(float(vis.numel()) * (1.0 - p))
    top = topk_ordered(scores[vis], n_keep)
    return visual_ids[vis[top]]


def cache_entries_to_keep(visual_ids: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Indices of a layer's cache entries that stay: every non-visual entry and the kept visual ids."""
    return ((visual_ids < 0) | torch.isin(visual_ids, kept)).nonzero().squeeze(1)


class DyCokeKVStage(CacheStage):
    """Decode-time visual KV pruning of layers L.. (``decode`` = official per-step mask, or evict)."""

    def __init__(self, method: str, params: dict, layer: int):
        super().__init__(method, params)
        self.layer = int(layer)
        self._prev: torch.Tensor | None = None      # previous step's visual attention at layer L-1
        self._keep_ids: torch.Tensor | None = None  # this step's kept visual ids (None: full cache)
        self._steps: list = []

    @property
    def label(self) -> str:
        return "dycoke-kv"

    def after_prefill(self, cache: CacheView) -> dict | None:
        src = self.layer - 1
        before = int((cache.visual_ids(src) >= 0).sum())
        layers = list(range(self.layer, cache.num_layers))
        info = {"layer": self.layer, "decode": self.params["decode"], "visual_entries": before}
        if self.params["layer"] != self.layer:
            info["layer_clamped_from"] = int(self.params["layer"])
        if self.params["decode"] == "official":
            self._prev, self._keep_ids, self._steps = None, None, []
            # filled while decoding: one [step, cosine, pruned] row per step (the record holds this list)
            info.update(masked_layers=layers, steps=self._steps)
            return info
        kept = kv_keep_visual_ids(cache.last_query_scores(src), cache.visual_ids(src), self.params["p"])
        for lay in layers:
            cache.keep(lay, cache_entries_to_keep(cache.visual_ids(lay), kept))
        info.update(kv_kept=int(kept.numel()), evicted_layers=layers)
        return info

    def decode_layer_keep(self, cache: CacheView, layer: int, step: int) -> torch.Tensor | None:
        if self.params["decode"] != "official" or layer < self.layer:
            return None
        if layer == self.layer:
            src = layer - 1
            vids = cache.visual_ids(src)
            scores = cache.last_query_scores(src)[:vids.numel()]
            att = scores[vids >= 0]
            cos = 0.0 if self._prev is None or self._prev.shape != att.shape else \
                float(torch.nn.functional.cosine_similarity(att, self._prev, dim=0))
            self._prev = att
            prune = cos < float(self.params["threshold"])
            self._keep_ids = kv_keep_visual_ids(scores, vids, self.params["p"]) if prune else None
            self._steps.append([step, round(cos, 6), bool(prune)])
        if self._keep_ids is None:
            return None
        return cache_entries_to_keep(cache.visual_ids(layer), self._keep_ids)


def _build(params: dict, info) -> list:
    stages: list = []
    if params["ttm"]:
        stages.append(DyCokeTTMStage("dycoke", params))
    if params["kv_prune"]:
        n_layers = int(info.num_layers)
        if n_layers < 2:
            raise PlanError(f"dycoke: KV pruning needs a layer before layer L; the model has {n_layers} layer(s)")
        # L is clamped to the model's depth: the default L = 3 on a 3-layer model prunes layer 2
        stages.append(DyCokeKVStage("dycoke", params, min(int(params["layer"]), n_layers - 1)))
    return stages


register(MethodSpec(
    name="dycoke", title="DyCoke", node="DyCoke", kind="mixed",
    summary="Merge tokens repeated across frames (TTM) before the LLM, then prune the visual KV cache for decoding.",
    paper="DyCoke, Tao et al. CVPR 2025 (K=0.7, L=3, P=0.7)",
    params=(
        Param("ttm", "bool", True, "Temporal token merging before the LLM.", ref="DyCoke TTM"),
        Param("k", "float", 0.7, "TTM: share of each compared frame's tokens merged into the reference frame "
              "(the most similar ones).", min=0.0, max=1.0, step=0.05, ref="DyCoke TTM (K), README dycoke_k=0.7"),
        Param("window", "choice", "official", "TTM windows: official compares frame 2 with frame 0 only where the "
              "authors' loop range(0, F-4, 4) does (the last window's frame 2 stays whole); all: in every window.",
              choices=("official", "all"), ref="DyCoke llava_arch.dycole_ttm"),
        Param("kv_prune", "bool", True, "Prune the visual KV cache of layers L.. for decoding.", ref="DyCoke KV pruning"),
        layer_param(3, tooltip="L: layers from L on attend only to the top visual entries; attention comes from "
                    "layer L-1. Clamped to the model's last layer.",
                    ref="DyCoke KV pruning (L), README dycoke_l=3"),
        Param("p", "float", 0.7, "KV pruning: share of visual cache entries dropped in layers L.. .",
              min=0.0, max=1.0, step=0.05, ref="DyCoke KV pruning (P), README dycoke_p=0.7"),
        Param("decode", "choice", "official", "official: every decode step re-ranks from the new token's attention "
              "and masks layers L.. only when it changed (cosine < threshold), nothing evicted; evict: rank "
              "once after the prefill and free the rest for good (memory benchmarks).",
              choices=("official", "evict"), ref="DyCoke PrunableDynamicCache.dycoke_pruning"),
        Param("threshold", "float", 0.9, "official decode: re-select and prune when the cosine between this and "
              "the previous step's layer-(L-1) visual attention is below this.", min=-1.0, max=1.0, step=0.01,
              ref="DyCoke code (similarity < 0.9)"),
    ),
    build=_build))
