"""HieraVid (HieraVid.txt §3): hierarchical video token pruning.

* segment level (pre-LLM): merge-ratio segmentation and static-token merging (eq. 1–3),
  segment budget allocation (eq. 4–5);
* frame level: relevance-weighted DPP per segment by fast greedy MAP (eq. 6–10);
* layer level: the LLM split into stages (4 for 28 layers), DPP pruning again entering every
  stage with relevance from the hidden states there; one target retention sets all stage ratios
  so the prefill FLOPs (eq. 12) match that budget (eq. 11).

Registered as ``hieravid`` (each level switchable: Table 4) and ``hieravid_merge`` (the pre-LLM
segment merge alone, for chains). The math is in ``hieravid_ops``; choices where the paper is
ambiguous are in ``docs/methods/hieravid.md``.
"""
from __future__ import annotations

import torch

from ..flops import equivalent_retention, tokens_per_layer_for
from ..registry import MethodSpec, Param, register, retention_param
from ..stages import LayerContext, LayerStage, Merge, PreContext, PreStage, Selection, recording
from ..tokens import budget
from . import hieravid_ops as ops

PAPER = "HieraVid: Hierarchical Token Pruning for Fast Video Large Language Models"


def _floats(x, nd: int = 4) -> list[float]:
    return [round(float(v), nd) for v in (x.tolist() if isinstance(x, torch.Tensor) else x)]


class Schedule:
    """The stage layout of one built plan and what its pre stage hands to its layer stages."""

    def __init__(self, params: dict, model_info):
        self.params = params
        self.num_layers = int(model_info.num_layers)
        self.d = int(model_info.hidden_size)
        self.m = int(model_info.intermediate_size)
        n = (params["stages"] or ops.auto_stages(self.num_layers)) if params["schedule"] else 1
        self.starts = ops.stage_starts(self.num_layers, max(1, min(n, self.num_layers)))
        self.seg_of_frame: torch.Tensor | None = None   # set by the pre stage on every run
        self._retentions: dict[int, tuple[float, ...]] = {}

    def retentions(self, n_visual: int) -> tuple[float, ...]:
        """Retention entering each stage (eq. 11), FLOPs-matched to the target (eq. 12)."""
        if n_visual not in self._retentions:
            p = self.params
            self._retentions[n_visual] = tuple(ops.stage_retentions(
                p["retention"], self.starts, self.num_layers, p["stage_keep"], n_visual, self.d, self.m))
        return self._retentions[n_visual]

    def kept(self, n_visual: int) -> list[int]:
        """Visual tokens entering each stage (budgets can only shrink)."""
        out, alive = [], n_visual
        for r in self.retentions(n_visual):
            alive = budget(r, n_visual, alive)
            out.append(alive)
        return out

    def report(self, n_visual: int) -> dict:
        kept = self.kept(n_visual)
        tpl = tokens_per_layer_for(0, n_visual, dict(zip(self.starts, kept)), self.num_layers)
        return {"stage_layers": self.starts, "stage_kept": kept,
                "stage_retentions": _floats([k / n_visual for k in kept]),
                "equivalent_retention": round(equivalent_retention(tpl, 0, n_visual, self.d, self.m), 4),
                "mean_retention": round(equivalent_retention(tpl, 0, n_visual), 4)}


def _prune(p: dict, vis: torch.Tensor, seg: torch.Tensor, k_total: int, query: torch.Tensor,
           attention: torch.Tensor | None, record: dict | None = None) -> tuple[torch.Tensor, dict]:
    """Keep ``k_total`` of ``vis`` [n, d]: segment budgets (eq. 4–5), then DPP per segment (eq. 8–10)
    or, with ``dpp`` off, top-k of the attention scores (or eq. 8 relevance before the LLM).
    ``record`` (a dict) receives the eq. 8 relevance of every row of ``vis`` as ``relevance``."""
    n = vis.shape[0]
    if k_total >= n:
        return torch.arange(n, device=vis.device), {}
    uniq, seg_c = torch.unique(seg, return_inverse=True)
    n_seg = uniq.numel()
    sizes = torch.bincount(seg_c, minlength=n_seg)
    if p["segment"] and n_seg > 1:
        b = ops.segment_scores(ops.segment_means(vis, seg_c, n_seg), p["lam"])
        ratios = ops.segment_keep_ratios(b, k_total / n, p["r_var"])
    else:
        b, ratios = None, torch.full((n_seg,), k_total / n, dtype=torch.float64)
    k_seg = ops.segment_budgets(ratios.to(vis.device), sizes, k_total)
    r = ops.relevance(query, vis, p["features"])
    if record is not None:
        record["relevance"] = r
    info: dict = {"segment_budgets": k_seg.tolist()}
    if p["dpp"]:
        stats: dict = {}
        keep = ops.dpp_select(vis, r, seg_c, k_seg, p["features"], stats)
        info.update(stats)
        # what DPP did: with eq. 8 on raw hidden states r can be so peaked that the picks are top-k(r)
        top_r = ops.topk_select(r, seg_c, k_seg)
        info["same_as_topk_relevance"] = int(torch.isin(keep, top_r).sum())
    else:
        keep = ops.topk_select(attention if attention is not None else r, seg_c, k_seg)
    if b is not None:
        info["segment_scores"] = _floats(b)
    return keep, info


def _pre_query(ctx: PreContext, how: str) -> torch.Tensor:
    """H_t of eq. 8 before the LLM: the question's last token ("the last instruction token") or the
    mean of its tokens (Table 7's alternative). The template's closing tokens carry no instruction."""
    q = ctx.question if ctx.question is not None and ctx.question.shape[0] else ctx.query.unsqueeze(0)
    return q[-1] if how == "last" else q.mean(0)


class HieraVidPre(PreStage):
    """Before the LLM: segmentation + static merging (eq. 1–3), then prune to the first stage's budget."""

    def __init__(self, method: str, params: dict, schedule: Schedule):
        super().__init__(method, params)
        self.schedule = schedule

    def expected_kept(self, n_visual: int) -> int:
        return self.schedule.kept(n_visual)[0]

    def select(self, ctx: PreContext) -> Selection:
        p, sch = self.params, self.schedule
        layout, x, ids = ctx.layout, ctx.embeds, ctx.ids
        n, n_frames = x.shape[0], layout.num_frames
        k_total = min(sch.kept(ctx.n_original)[0], n)
        frame = layout.frame_of(ids)
        info: dict = {}
        values = how = None
        keep = torch.arange(n, device=x.device)
        if p["segment"]:
            pred = ops.position_predecessors(ids, layout)
            sim = ops.temporal_similarity(x, pred)
            k_seg = round(p["merge_ratio"] * n)
            overlap = ops.overlap_ratios(ops.static_set(sim, k_seg), frame, n_frames)
            seg_of_frame = ops.segment_of_frame(overlap, p["beta"])
            # the Top-K for merging is a prefix of the segmentation Top-K: never merge below the budget
            n_merge = max(0, min(k_seg, n - k_total))
            if n_merge:
                keep, target = ops.static_run_targets(pred, ops.static_set(sim, n_merge))
                how = Merge(target)
                values = how.apply(x.float(), keep)
            starts = torch.nonzero(torch.diff(seg_of_frame, prepend=seg_of_frame[:1] - 1)).flatten()
            info.update(segments=starts.tolist(), overlap=_floats(overlap[1:]), merged=n_merge,
                        merge_ratio=round(n_merge / max(n, 1), 4))
        else:
            seg_of_frame = torch.zeros(n_frames, dtype=torch.long, device=x.device)
        sch.seg_of_frame = seg_of_frame
        vis = x[keep] if values is None else values
        rec = {} if recording(ctx) else None
        sel, prune_info = _prune(p, vis, seg_of_frame[frame[keep]], k_total, _pre_query(ctx, p["query"]), None, rec)
        info.update(prune_info)
        info.update(sch.report(ctx.n_original))
        scores = {}
        if rec:   # relevance of the merge's survivors; tokens merged into them were not scored
            scores["relevance"] = torch.full((n,), float("nan"), device=x.device).index_copy_(
                0, keep, rec["relevance"].float())
        return Selection(keep[sel], None if values is None else values[sel], info,
                         None if how is None else how.subset(sel, keep.numel()), scores=scores)


class HieraVidLayer(LayerStage):
    """Entering stage i ≥ 2 (eq. 11): DPP per segment with relevance from the hidden states there."""

    def __init__(self, method: str, params: dict, layer: int, schedule: Schedule, index: int):
        super().__init__(method, params, layer)
        self.schedule = schedule
        self.index = index

    def expected_kept(self, n_visual: int) -> int:
        return self.schedule.kept(n_visual)[self.index]

    def select(self, ctx: LayerContext) -> Selection:
        p, sch = self.params, self.schedule
        k_total = min(sch.kept(ctx.n_original)[self.index], int(ctx.ids.numel()))
        frame = ctx.layout.frame_of(ctx.ids)
        seg_of_frame = sch.seg_of_frame
        seg = seg_of_frame[frame] if seg_of_frame is not None else torch.zeros_like(frame)
        attention = None if p["dpp"] else ctx.scores()
        query = ctx.query_hidden if p["query"] == "last" else ctx.question_hidden.mean(0)
        rec = {} if recording(ctx) else None
        keep, info = _prune(p, ctx.visual_hidden, seg, k_total, query, attention, rec)
        info["stage"] = self.index + 1
        return Selection(keep, None, info, scores=rec or {})


class HieraVidMerge(PreStage):
    """Segment-level merging alone (eq. 1–3): merge the most static same-position runs down to the budget."""

    def expected_kept(self, n_visual: int) -> int:
        return budget(self.params["retention"], n_visual)

    def select(self, ctx: PreContext) -> Selection:
        x, ids, layout = ctx.embeds, ctx.ids, ctx.layout
        n = x.shape[0]
        k_total = ctx.budget(self.params["retention"])
        pred = ops.position_predecessors(ids, layout)
        sim = ops.temporal_similarity(x, pred)
        static = ops.static_set(sim, n - k_total)
        overlap = ops.overlap_ratios(static, layout.frame_of(ids), layout.num_frames)
        seg_of_frame = ops.segment_of_frame(overlap, self.params["beta"])
        keep, target = ops.static_run_targets(pred, static)
        how = Merge(target)
        values = how.apply(x.float(), keep)
        starts = torch.nonzero(torch.diff(seg_of_frame, prepend=seg_of_frame[:1] - 1)).flatten()
        # without enough same-position predecessors the merge stops short of the budget
        return Selection(keep, values, {"segments": starts.tolist(), "overlap": _floats(overlap[1:]),
                                        "merged": int(n - keep.numel())}, how)


def _build(params: dict, model_info) -> list:
    sch = Schedule(params, model_info)
    stages: list = [HieraVidPre("hieravid", params, sch)]
    stages += [HieraVidLayer("hieravid", params, layer, sch, i) for i, layer in enumerate(sch.starts) if i > 0]
    return stages


_BETA = Param("beta", "float", 0.4, "Segment threshold β: a new segment starts at a frame whose overlap ratio "
              "with the previous frame is below β.", min=0.0, max=1.0, step=0.05, ref="HieraVid §3.1.1, §4.1, Fig. 4")

register(MethodSpec(
    name="hieravid", title="HieraVid", node="HieraVid", kind="mixed",
    summary="Segment-level merging and budgets, relevance-weighted DPP per segment, and a multi-stage "
            "layer schedule whose FLOPs match the target retention.",
    paper=PAPER, category="methods",
    params=(
        retention_param(0.3, ref="HieraVid Tables 1-2 (30/20/10% relative token budget)",
                        tooltip="Target retention: the stage ratios are set so the prefill FLOPs equal keeping "
                                "this share of the ORIGINAL visual tokens at every layer."),
        _BETA,
        Param("lam", "float", 0.5, "λ balancing representativeness (similar to later segments) and diversity "
              "(unlike earlier segments) in the segment budgets.", min=0.0, max=1.0, step=0.05,
              ref="HieraVid eq. 4, Table 6"),
        Param("r_var", "float", 0.05, "R_var: how far a segment's keep ratio moves per standard deviation of "
              "its budget score (not given in the paper).", min=0.0, max=1.0, step=0.01, ref="HieraVid eq. 5"),
        Param("merge_ratio", "float", 0.5, "R_merge: share of the alive tokens ranked for static merging (K = "
              "R_merge·N of eq. 2-3); merging never goes below the first stage's budget (not given in the paper).",
              min=0.0, max=1.0, step=0.05, ref="HieraVid eq. 2-3, eq. 11"),
        Param("stage_keep", "float", 0.5, "Share of visual tokens each later stage keeps of the previous one "
              "(not given in the paper; PyramidDrop's 0.5).", min=0.05, max=1.0, step=0.05,
              ref="HieraVid eq. 11 (R_prune)"),
        Param("stages", "int", 0, "Number of LLM stages; 0 = auto (4 for 28 layers, scaled with depth).",
              min=0, max=64, step=1, ref="HieraVid §3.3, §4.1 (n = 4)"),
        Param("segment", "bool", True, "Segment-level merging and budgets (off: one segment, no merging).",
              ref="HieraVid Table 4"),
        Param("dpp", "bool", True, "Frame-level DPP (off: top-k by attention, FastV-style).", ref="HieraVid Table 4"),
        Param("query", "choice", "last", "H_t of eq. 8. last: the question's last token before the LLM, the "
              "last prompt token's hidden state at layer stages; mean: the mean over the question's tokens.",
              choices=("last", "mean"), ref="HieraVid eq. 8, §3.2 (\"the last instruction token\"), Table 7"),
        Param("features", "choice", "raw", "Features of eq. 8-9. raw: hidden states as they are (the paper); "
              "cosine: unit-length rows, so the kernel is cosine similarity and r is not set by a few "
              "large-norm tokens.", choices=("raw", "cosine"), ref="HieraVid eq. 8-9 (docs/methods/hieravid.md)"),
        Param("schedule", "bool", True, "Layer-level schedule (off: everything before the LLM).",
              ref="HieraVid Table 4"),
    ),
    build=_build))

register(MethodSpec(
    name="hieravid_merge", title="HieraVid merge", node="HieraVidMerge", kind="pre",
    summary="HieraVid's segment-level merging alone: runs of static same-position tokens merged into "
            "their first occurrence, down to the retention.",
    paper=PAPER, category="methods",
    params=(retention_param(0.5, ref="HieraVid eq. 3 (1 - R_merge)"), _BETA),
    build=lambda p, info: [HieraVidMerge("hieravid_merge", p)]))
