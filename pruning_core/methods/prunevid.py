"""PruneVid (Huang et al., ACL 2025, "PruneVid: Visual Token Pruning for Efficient Video Large Language
Models").

Two stages, each switchable:

* **pre-LLM merging**:
  1. temporal segmentation: the frames' mean tokens are clustered with DPC-KNN into
     ⌊F·γ⌋ clusters (γ = 0.25, k = 7); clusters are made contiguous in time (each keeps its longest
     run; the other runs join the neighbouring run that is longer) and every run is a segment;
  2. static/dynamic separation: a grid position is static in a segment when the mean cosine over
     all pairs of the segment's frames exceeds τ = 0.8; its tokens merge into their mean, one
     token per position and segment;
  3. spatial clustering: DPC-KNN on each segment's static tokens and on each frame's dynamic
     tokens (groups of more than 14 tokens) into ⌊n·0.5⌋ clusters, each becoming its mean.
* **in-LLM pruning**: after layer M (10 of 32), the attention of the question tokens (all
  tokens after the video) to the video tokens, max over heads and over question tokens, ranks
  the visual tokens; each static group and each frame's dynamic tokens keep their top α = 0.4;
  the others leave the hidden states AND the KV cache of layers 0..M, so decoding sees one
  consistent, smaller cache (the authors' ``VTPWindowCache``).

``retention`` unset reproduces the paper's data-dependent count; set, the clustering budget is
split over the groups in proportion to their size so the pre-LLM stage keeps exactly that share
of the original tokens. Choices where the paper or code is ambiguous: ``docs/methods/prunevid.md``.
"""
from __future__ import annotations

import math

import torch

from .. import attention
from ..clustering import cluster_map, dpc_knn
from ..errors import PlanError
from ..layout import TokenLayout
from ..registry import MethodSpec, Param, register
from ..stages import CacheStage, LayerContext, Merge, PreContext, PreStage, Selection, Withdrawal
from ..temporal import dense_index, mean_pairwise_similarity, merge_lengths, merge_static, segment_bounds
from ..tokens import allocate_proportional, budget, merge_into, topk_per_group

PAPER = "PruneVid, Huang et al. ACL 2025 (τ 0.8, γ 0.25, cluster ratio 0.5, layer 10 of 32, α 0.4)"
MIN_CLUSTERED = 14   # the code clusters a group only when it holds more than 14 tokens


# ---------------------------------------------------------------- temporal segmentation

def contiguous_runs(labels: list[int]) -> list[int]:
    """PruneVid's ``refine_clusters``: each cluster label keeps only its longest run(s) of
    consecutive frames (a label whose runs are all one frame long is dissolved); every other run
    takes the label of its left or right neighbouring run, whichever is longer (ties: left), scanning
    left to right. A sequential scan over at most F frames, on plain ints."""
    n = len(labels)
    runs: list[list[int]] = []                       # [label, start, end]
    for i, lab in enumerate(labels):
        if runs and runs[-1][0] == lab:
            runs[-1][2] = i
        else:
            runs.append([lab, i, i])
    longest: dict[int, int] = {}
    for lab, a, b in runs:
        longest[lab] = max(longest.get(lab, 0), b - a + 1)
    out = list(labels)
    for lab, a, b in runs:
        if longest[lab] == 1 or b - a + 1 != longest[lab]:
            out[a:b + 1] = [-1] * (b - a + 1)
    i = 0
    while i < n:
        if out[i] != -1:
            i += 1
            continue
        a = i
        while i < n and out[i] == -1:
            i += 1
        b = i - 1
        left_len = right_len = 0
        left = right = None
        if a > 0:
            left, j = out[a - 1], a - 1
            while j >= 0 and out[j] == left:
                j -= 1
            left_len = a - 1 - j
        if b < n - 1:
            right, j = out[b + 1], b + 1
            while j < n and out[j] == right:
                j += 1
            right_len = j - b - 1
        new = left if left_len > right_len else right if right_len > left_len else (left if left is not None else right)
        out[a:b + 1] = [0 if new is None else new] * (b - a + 1)
    return out


def frame_segments(x: torch.Tensor, ids: torch.Tensor, layout: TokenLayout, ratio: float, k: int) -> torch.Tensor:
    """Segment of every frame [F] (PruneVid temporal segmentation): DPC-KNN of the frame means
    into ⌊F·γ⌋ clusters (at least 1), made contiguous by :func:`contiguous_runs`."""
    n_frames = layout.num_frames
    frame = layout.frame_of(ids)
    means, _ = merge_into(x.float(), torch.ones(ids.numel(), device=x.device), frame, n_frames)
    n_clusters = max(1, int(n_frames * ratio))
    _, center = dpc_knn(means, torch.zeros(n_frames, dtype=torch.long, device=x.device),
                        torch.tensor([n_clusters], device=x.device), k=k)
    labels = torch.unique(center, return_inverse=True)[1].tolist()
    runs = torch.tensor(contiguous_runs(labels), device=x.device)
    change = torch.zeros(n_frames, dtype=torch.long, device=x.device)
    change[1:] = (runs[1:] != runs[:-1]).long()
    return torch.cumsum(change, 0)


# ---------------------------------------------------------------- pre-LLM stage

def cluster_counts(sizes: torch.Tensor, ratio: float, total: int | None) -> torch.Tensor:
    """Clusters per group: ⌊n·ratio⌋ (at least 1) for groups of more than 14 tokens, all of a smaller
    group (paper); or, with a ``total``, that many split in proportion to the group sizes (exact)."""
    if total is None:
        return torch.where(sizes > MIN_CLUSTERED, torch.floor(sizes.double() * ratio).long().clamp_min(1), sizes)
    return allocate_proportional(sizes.double(), sizes, total)


def prunevid_merge(x: torch.Tensor, ids: torch.Tensor, layout: TokenLayout, p: dict, k_total: int | None
                   ) -> tuple[torch.Tensor, Merge, torch.Tensor, dict]:
    """Segmentation, static merging and spatial clustering on the alive tokens.

    Returns (keep ascending, merge map from the alive tokens, group of each kept token, info); groups
    are the static tokens of segment s (id s) and the dynamic tokens of frame f (id M + f), as the
    in-LLM stage needs them.
    """
    n = ids.numel()
    seg_of_frame = frame_segments(x, ids, layout, p["segment_ratio"], p["k"])
    start, length = segment_bounds(seg_of_frame)
    n_seg = start.numel()
    dense = dense_index(ids, layout)
    sim = mean_pairwise_similarity(x, dense, seg_of_frame)
    static = sim > p["tau"]
    allowed = None if k_total is None else max(0, n - k_total)
    mlen = merge_lengths(static, sim, length, allowed)
    keep0, how0, is_static = merge_static(ids, layout, seg_of_frame, mlen)
    frame0 = layout.frame_of(ids[keep0])
    groups = torch.where(is_static, seg_of_frame[frame0], n_seg + frame0)
    sizes = torch.bincount(groups, minlength=n_seg + layout.num_frames)
    counts = cluster_counts(sizes, p["cluster_ratio"], k_total)
    info = {"segments": start.tolist(), "static_tokens": int(is_static.sum()),
            "merged_static": int(n - keep0.numel())}
    if bool((counts < sizes).any()):
        _, center = dpc_knn(how0.apply(x.float(), keep0), groups, counts, k=p["k"])
        sel, how1 = cluster_map(center)
        keep, groups, how = keep0[sel], groups[sel], how0.then(how1, keep0.numel())
    else:
        keep, how = keep0, how0
    info["clusters"] = int(keep.numel())
    return keep, how, groups, info


class _Run:
    """What one plan step's stages share during one run: each kept original id's group."""

    def __init__(self):
        self.group_of_id: torch.Tensor | None = None


class PruneVidPre(PreStage):
    def __init__(self, method: str, params: dict, run: _Run):
        super().__init__(method, params)
        self.run = run

    def expected_kept(self, n_visual: int) -> int:
        """Data-free count for analytic FLOPs: the budget; the paper's count depends on the video."""
        r = self.params["retention"]
        return n_visual if r is None else budget(r, n_visual)

    def select(self, ctx: PreContext) -> Selection:
        r = self.params["retention"]
        k_total = None if r is None else ctx.budget(r)
        keep, how, groups, info = prunevid_merge(ctx.embeds, ctx.ids, ctx.layout, self.params, k_total)
        gid = torch.full((ctx.n_original,), -1, dtype=torch.long, device=ctx.ids.device)
        gid[ctx.ids[keep]] = groups
        self.run.group_of_id = gid
        return Selection(keep, how.apply(ctx.embeds, keep), info, how)


# ---------------------------------------------------------------- in-LLM stage

def question_rows(state) -> torch.Tensor:
    """Rows of the current sequence after the video (question and answer prompt), ascending."""
    prep = state.prep
    last = int(prep.vis_pos.max())
    if prep.encoding.extra is not None:
        last += int(prep.encoding.extra.shape[0])
    return (state.seq_ids > last).nonzero().squeeze(1)


def question_video_scores(probs: torch.Tensor, slot_vis: torch.Tensor, vis_ids: torch.Tensor) -> torch.Tensor:
    """[n] score of each alive visual token: max over heads and question rows of ``probs`` [H, Q, len]
    (PruneVid ``process_attention``), read at the cache column holding that token."""
    best = probs.amax(dim=(0, 1))
    is_vis = (slot_vis >= 0).nonzero().squeeze(1)
    cols = is_vis[torch.searchsorted(slot_vis[is_vis], vis_ids)]
    return best[cols]


def group_budgets(groups: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(compact group id [n], kept per group [G]): ⌊α·n + ½⌋ tokens in all, split over the groups in
    proportion to their size (the paper keeps ⌊α·n_g⌋ of each)."""
    uniq, g = torch.unique(groups, return_inverse=True)
    sizes = torch.bincount(g, minlength=uniq.numel())
    total = max(1, int(math.floor(alpha * groups.numel() + 0.5)))
    return g, allocate_proportional(sizes.double(), sizes, total)


class PruneVidLLM(CacheStage):
    """After layer M: keep the top α of every group by question-to-video attention; free the rest
    from the hidden states and from the KV cache of layers 0..M."""

    def __init__(self, method: str, params: dict, run: _Run, layer: int):
        super().__init__(method, params)
        self.run = run
        self.layer = layer
        self._q = None

    @property
    def label(self) -> str:
        return "prunevid-llm"

    def after_layer(self, ctx: LayerContext) -> Withdrawal | None:
        st = ctx.state
        m = self.layer
        if ctx.layer == m - 1:
            # ctx.hidden is layer M's input: its question rows give layer M's queries (RoPE at their positions)
            rows = question_rows(st)
            dec = st.adapter.layers[m]
            q = attention.layer_queries(dec, ctx.hidden.index_select(0, rows)).float()
            self._q = (attention.apply_rope(q, st.cos[0, rows].float(), st.sin[0, rows].float()), st.seq_ids[rows])
            return None
        if ctx.layer != m or self._q is None:
            return None
        q, qpos = self._q
        self._q = None
        if qpos.numel() == 0 or ctx.ids.numel() == 0:
            return None
        keys = st.cache.layers[m].keys[0]
        slots = st.slots[m]
        probs = attention.rows_attention(q, keys, st.adapter.layers[m].self_attn.scaling,
                                         slots.unsqueeze(0) <= qpos.unsqueeze(1))
        scores = question_video_scores(probs, st.slot_visual_ids(m), ctx.ids)
        gid = self.run.group_of_id
        groups = gid[ctx.ids] if gid is not None else torch.full_like(ctx.ids, -1)
        # tokens no PruneVid merge grouped (stage off, or added by another step): one group per frame
        groups = torch.where(groups >= 0, groups, ctx.layout.num_tokens + ctx.layout.frame_of(ctx.ids))
        g, k_g = group_budgets(groups, self.params["alpha"])
        keep = topk_per_group(scores, g, k_g)
        drop = torch.ones(ctx.ids.numel(), dtype=torch.bool, device=ctx.ids.device)
        drop[keep] = False
        evict = list(range(m + 1)) if self.params["prune_cache"] else []
        return Withdrawal(drop.nonzero().squeeze(1), evict_layers=evict,
                          info={"layer": m, "kept": int(keep.numel()), "groups": int(k_g.numel()),
                                "question_tokens": int(qpos.numel())})


def default_layer(num_layers: int) -> int:
    """Layer M: 10 of PLLaVA-7B's 32, scaled to the model's depth, within 1..L-2."""
    return max(1, min(num_layers - 2, round(10 * num_layers / 32)))


def _build(params: dict, info) -> list:
    n_layers = int(info.num_layers)
    run = _Run()
    stages: list = []
    if params["merge"]:
        stages.append(PruneVidPre("prunevid", params, run))
    if params["llm_prune"]:
        m = params["layer"] if params["layer"] is not None else default_layer(n_layers)
        if not 1 <= m <= n_layers - 2:
            raise PlanError(f"prunevid: layer {m} is out of range for a model with {n_layers} layers "
                            f"(valid: 1..{n_layers - 2}; the pruning acts after layer M)")
        stages.append(PruneVidLLM("prunevid", params, run, m))
    return stages


register(MethodSpec(
    name="prunevid", title="PruneVid", node="PruneVid", kind="mixed",
    summary="Merge static tokens of temporal segments and cluster the rest before the LLM; inside it, keep "
            "the tokens the question attends to, in the hidden states and the KV cache.",
    paper=PAPER,
    params=(
        Param("merge", "bool", True, "Pre-LLM stage: segmentation, static merging, spatial clustering.",
              ref="PruneVid pre-LLM merging"),
        Param("retention", "float", None, "Visual tokens kept by the pre-LLM stage, as a fraction of the ORIGINAL "
              "count. Empty = the paper's data-dependent count (cluster ratio).", min=0.0, max=1.0, step=0.01,
              min_exclusive=True, optional=True, ref="PruneVid pre-LLM merging"),
        Param("tau", "float", 0.8, "τ: a position is static in a segment when its mean pairwise cosine over the "
              "segment's frames exceeds τ.", min=-1.0, max=1.0, step=0.05, ref="PruneVid scripts/eval.sh (τ = 0.8)"),
        Param("segment_ratio", "float", 0.25, "γ: frames are clustered into ⌊F·γ⌋ temporal segments.",
              min=0.0, max=1.0, step=0.05, ref="PruneVid scripts/eval.sh (temporal_segment_ratio 0.25)"),
        Param("cluster_ratio", "float", 0.5, "Share of a group's tokens kept as cluster centres (paper mode; "
              "at least one per group).", min=0.0, max=1.0, step=0.05, min_exclusive=True, ref="PruneVid scripts/eval.sh (cluster_ratio 0.5)"),
        Param("k", "int", 7, "Neighbours for the DPC-KNN density.", min=1, max=64, step=1, ref="PruneVid code (k = 7)"),
        Param("llm_prune", "bool", True, "In-LLM stage: prune by question-to-video attention after layer M.",
              ref="PruneVid in-LLM pruning"),
        Param("layer", "int", None, "M: the layer whose attention ranks the tokens; they leave every later layer. "
              "Empty = 10 of 32, scaled to the model's depth.", min=1, max=1024, step=1, optional=True,
              ref="PruneVid scripts/eval.sh (selected_layer 10)"),
        Param("alpha", "float", 0.4, "α: share of the visual tokens alive at layer M that stay.", min=0.0, max=1.0,
              step=0.05, min_exclusive=True, ref="PruneVid scripts/eval.sh (α = 0.4)"),
        Param("prune_cache", "bool", True, "Also remove the pruned tokens from the KV cache of layers 0..M, so "
              "decoding attends to the same tokens everywhere.", ref="PruneVid code (VTPWindowCache)"),
    ),
    build=_build))
