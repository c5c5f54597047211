"""DyCoke (Tao et al., CVPR 2025, "DyCoke: Dynamic Compression of Tokens for Fast Video LLMs").

Two parts, each switchable:

* **TTM** (temporal token merging), a pre-LLM stage. Frames are taken in windows of 4.
  Inside a window, frame 1 is compared with frame 0, frame 3 with frame 2, and frame 2 with
  frame 0, token by token at the same grid position (cosine similarity of the visual
  embeddings). In every compared frame the K share most similar to their reference are merged
  into it — dropped, the reference token representing both — and ``int((1-K)·n)`` stay.
  Frame 0 of each window is kept whole.
* **Dynamic KV pruning**, a cache stage. After the prefill, the newest token's attention
  at layer L-1 ranks the visual entries; layers L.. keep the top ``int((1-P)·n)`` of them and the
  rest are evicted from those layers' KV cache, so the cache really shrinks.

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

def ttm_reference_frame(frame: torch.Tensor) -> torch.Tensor:
    """Frame each frame is compared with inside its window of 4 (-1 for the window's first frame)."""
    r = frame % WINDOW
    ref = torch.where(r == 3, frame - 1, frame - r)
    return torch.where(r == 0, torch.full_like(frame, -1), ref)


def ttm_similarity(embeds: torch.Tensor, ids: torch.Tensor, layout: TokenLayout, chunk: int = 256) -> torch.Tensor:
    """Cosine similarity of each alive token to the token at its grid position in its reference frame.

    -inf where there is no reference (window's first frame, or the reference token is not alive).
    DyCoke compares with the reference frame's INPUT tokens, so a reference pruned by TTM itself
    still counts; all similarities are therefore computed at once.
    """
    p = layout.tokens_per_frame
    ref_frame = ttm_reference_frame(ids // p)
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


def ttm_select(embeds: torch.Tensor, ids: torch.Tensor, layout: TokenLayout, k: float) -> tuple[torch.Tensor, dict]:
    """Alive indices kept by TTM (ascending). In each compared frame the ``n - int((1-K)·n)`` tokens
    most similar to their reference are merged away (DyCoke TTM; ``n`` = alive tokens of the frame);
    ties break towards the earlier token."""
    frame = layout.frame_of(ids)
    sim = ttm_similarity(embeds, ids, layout)
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
        keep, info = ttm_select(ctx.embeds, ctx.ids, ctx.layout, self.params["k"])
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
    """Evicts the pruned visual entries of layers L.. once, right after the prefill.

    DyCoke re-selects at every decode step from the full cache (a pruned token may come back);
    here the pruned entries are freed, so later steps cannot bring them back (see docs).
    """

    def __init__(self, method: str, params: dict):
        super().__init__(method, params)
        self.layer = int(params["layer"])

    @property
    def label(self) -> str:
        return "dycoke-kv"

    def after_prefill(self, cache: CacheView) -> dict | None:
        src = self.layer - 1
        kept = kv_keep_visual_ids(cache.last_query_scores(src), cache.visual_ids(src), self.params["p"])
        before = int((cache.visual_ids(src) >= 0).sum())
        layers = list(range(self.layer, cache.num_layers))
        for lay in layers:
            cache.keep(lay, cache_entries_to_keep(cache.visual_ids(lay), kept))
        return {"layer": self.layer, "visual_entries": before, "kv_kept": int(kept.numel()),
                "evicted_layers": layers}


def _build(params: dict, info) -> list:
    stages: list = []
    if params["ttm"]:
        stages.append(DyCokeTTMStage("dycoke", params))
    if params["kv_prune"]:
        if not 1 <= params["layer"] < int(info.num_layers):
            raise PlanError(f"dycoke: layer {params['layer']} is out of range for a model with {info.num_layers} "
                            f"layers (valid: 1..{int(info.num_layers) - 1})")
        stages.append(DyCokeKVStage("dycoke", params))
    return stages


register(MethodSpec(
    name="dycoke", title="DyCoke", node="DyCoke", kind="mixed",
    summary="Merge tokens repeated across frames (TTM) before the LLM, then prune the visual KV cache for decoding.",
    paper="DyCoke, Tao et al. CVPR 2025 (K=0.7, L=3, P=0.7)",
    params=(
        Param("ttm", "bool", True, "Temporal token merging before the LLM.", ref="DyCoke TTM"),
        Param("k", "float", 0.7, "TTM: share of each compared frame's tokens merged into the reference frame "
              "(the most similar ones).", min=0.0, max=1.0, step=0.05, ref="DyCoke TTM (K), README dycoke_k=0.7"),
        Param("kv_prune", "bool", True, "Prune the visual KV cache of layers L.. for decoding.", ref="DyCoke KV pruning"),
        layer_param(3, tooltip="L: layers from L on keep only the top visual entries; attention comes from layer L-1.",
                    ref="DyCoke KV pruning (L), README dycoke_l=3"),
        Param("p", "float", 0.7, "KV pruning: share of visual cache entries dropped in layers L.. .",
              min=0.0, max=1.0, step=0.05, ref="DyCoke KV pruning (P), README dycoke_p=0.7"),
    ),
    build=_build))
