"""LLaVA-PruMerge (Shang et al., 2024, "LLaVA-PruMerge: Adaptive Token Reduction for Efficient Large
Multimodal Models"), and PruMerge+.

Pre-LLM, per frame (PruMerge reduces each image on its own):

1. *Adaptive important-token selection*: the attention a visual token gets in the vision
   encoder, a; the kept tokens are the outliers above the upper inner fence of the interquartile
   range, a > Q3 + 1.5·(Q3 − Q1).
2. *Token merging* (Alg. 1): every kept token absorbs its k = 32 most similar tokens (cosine
   of the encoder's keys, kept and pruned alike, the token itself excluded), weighted by their
   attention: y_i = x_i + Σ_{j ∈ kNN(i)} a_j · x_j (the authors' ``token_prune_merge_advanced``).
3. *PruMerge+* adds spatially uniform tokens: every ``⌊⌊1/ρ⌋/3⌋``-th position of the frame
   (ρ = the share of outliers) joins the outliers (``token_prune_merge_advanced_plus``).

SigLIP (LLaVA-OneVision) and the Qwen ViT have no CLS token, whose attention row PruMerge reads on
CLIP. Its stand-in here is the attention a patch RECEIVES at the encoder layer whose output the
LLM uses, averaged over all queries and heads — the same row VisionZip and HoliTom use on SigLIP
(``pruning_core.vision_attention``), renormalised to sum to 1 over each frame as a CLS row does.

``retention`` unset keeps PruMerge's adaptive count; set, every frame keeps an equal share of the
budget exactly: the best-attended tokens (PruMerge), or the outliers and then evenly spaced
positions (PruMerge+). Choices are listed in ``docs/methods/prumerge.md``.
"""
from __future__ import annotations

import torch

from ..errors import PlanError
from ..registry import MethodSpec, Param, register
from ..stages import PreContext, PreStage, Selection
from ..temporal import dense_index
from ..tokens import allocate_proportional, normalize, topk_per_group, uniform_ids
from ..vision_attention import token_attention

PAPER = "LLaVA-PruMerge, Shang et al. 2024 (IQR outliers, k = 32 neighbours; PruMerge+ spatial supplement)"


def iqr_outliers(att: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """Bool [n]: a > Q3 + 1.5·IQR inside each frame (PruMerge adaptive selection; linear-interpolated quartiles,
    as ``np.percentile``). ``dense`` [F, P] is the alive index of each (frame, position), -1 if gone."""
    grid = torch.where(dense >= 0, att[dense.clamp_min(0)].double(), torch.full(dense.shape, float("nan"),
                                                                                   dtype=torch.float64, device=att.device))
    q = torch.nanquantile(grid, torch.tensor([0.25, 0.75], dtype=torch.float64, device=att.device), dim=1)
    fence = q[1] + 1.5 * (q[1] - q[0])                                       # [F]
    alive = dense >= 0
    out = torch.zeros(att.numel(), dtype=torch.bool, device=att.device)
    out[dense[alive]] = (grid > fence.unsqueeze(1))[alive]
    return out


def frame_normalised(att: torch.Tensor, frame: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Attention rescaled to sum to 1 over each frame's alive tokens (a CLS attention row does)."""
    tot = torch.zeros(n_frames, dtype=torch.float64, device=att.device).index_add_(0, frame, att.double())
    return (att.double() / tot[frame].clamp_min(1e-300)).float()


def spatial_supplement(frame: torch.Tensor, pos: torch.Tensor, n_outliers: torch.Tensor, tokens_per_frame: int
                       ) -> torch.Tensor:
    """Bool [n]: PruMerge+'s evenly spaced positions, every ``max(1, ⌊⌊1/ρ⌋/3⌋)``-th of the frame with
    ρ = outliers / tokens per frame (a frame without outliers takes ρ = 1/P)."""
    rho = n_outliers.double().clamp_min(1.0) / tokens_per_frame
    stride = torch.clamp(torch.floor(torch.floor(1.0 / rho) / 3.0), min=1).long()
    return pos % stride[frame] == 0


def uniform_fill(free: torch.Tensor, frame: torch.Tensor, need: torch.Tensor) -> torch.Tensor:
    """Bool [n]: ``need[f]`` of the ``free`` tokens of each frame, evenly spaced over the frame's free tokens."""
    n_frames = need.numel()
    cand = free.nonzero().squeeze(1)                       # ascending = frame-major
    counts = torch.bincount(frame[cand], minlength=n_frames)
    starts = torch.cumsum(counts, 0) - counts
    need = torch.minimum(need, counts)
    g = torch.repeat_interleave(torch.arange(n_frames, device=frame.device), need)
    j = torch.arange(g.numel(), device=frame.device) - (torch.cumsum(need, 0) - need)[g]
    rank = torch.floor((j.double() + 0.5) * counts[g].double() / need[g].clamp_min(1).double()).long()
    out = torch.zeros_like(free)
    out[cand[starts[g] + rank]] = True
    return out


def knn_merge(x: torch.Tensor, keys: torch.Tensor, att: torch.Tensor, keep: torch.Tensor, dense: torch.Tensor,
              k: int) -> torch.Tensor:
    """PruMerge Alg. 1, batched over frames: y_i = x_i + Σ_{j ∈ kNN(i)} a_j·x_j for each kept token i.

    kNN(i): the k tokens of i's frame (kept or not, i excluded) whose keys are most cosine-similar
    to i's. Returns the new values [len(keep), d].
    """
    n_frames, p = dense.shape
    alive = dense >= 0
    kn = normalize(keys)[dense.clamp_min(0)] * alive.unsqueeze(-1)          # [F, P, c]
    sim = kn @ kn.transpose(1, 2)                                           # [F, P, P]
    eye = torch.eye(p, dtype=torch.bool, device=x.device)
    sim = sim.masked_fill(~alive.unsqueeze(1) | eye, float("-inf"))
    kk = max(0, min(int(k), p - 1))
    top = sim.topk(kk, dim=-1)                                              # [F, P, kk]
    fr = torch.arange(n_frames, device=x.device).view(-1, 1, 1)
    a_grid = att.float()[dense.clamp_min(0)] * alive                        # [F, P]
    w = torch.where(torch.isfinite(top.values), a_grid[fr, top.indices], torch.zeros_like(top.values))
    # the neighbour weights as a [F, P, P] matrix: one batched matmul instead of gathering k rows each
    wmat = torch.zeros(n_frames, p, p, device=x.device).scatter_(2, top.indices, w)
    xd = x.float()[dense.clamp_min(0)] * alive.unsqueeze(-1)                # [F, P, d]
    upd = xd + torch.bmm(wmat, xd)
    # row of each kept token in the dense grid
    flat = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    flat[dense[alive]] = alive.flatten().nonzero().squeeze(1)
    return upd.reshape(n_frames * p, -1)[flat[keep]]


def prumerge_select(x: torch.Tensor, ids: torch.Tensor, layout, att: torch.Tensor, keys: torch.Tensor,
                    retention: float | None, n_original: int, plus: bool, merge: bool, k: int
                    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """PruMerge / PruMerge+ on the alive tokens. Returns (keep ascending, values, info)."""
    from ..tokens import budget
    frame = layout.frame_of(ids)
    pos = ids % layout.tokens_per_frame
    n_frames = layout.num_frames
    dense = dense_index(ids, layout)
    a = frame_normalised(att, frame, n_frames)
    out = iqr_outliers(a, dense)
    n_out = torch.bincount(frame[out], minlength=n_frames)
    alive_f = torch.bincount(frame, minlength=n_frames)
    if retention is None:
        chosen = out.clone()
        if plus:
            chosen |= spatial_supplement(frame, pos, n_out, layout.tokens_per_frame)
        # a frame without outliers keeps its best-attended token rather than vanishing
        best = topk_per_group(a, frame, (alive_f > 0).long())
        chosen[best[n_out[frame[best]] == 0]] = True
    else:
        k_f = allocate_proportional(torch.ones(n_frames), alive_f, budget(retention, n_original, ids.numel()))
        if plus:
            o_f = torch.minimum(n_out, k_f)
            chosen = torch.zeros_like(out)
            chosen[topk_per_group(a, frame, o_f)] = True
            chosen |= uniform_fill(~chosen, frame, k_f - o_f)
        else:
            chosen = torch.zeros_like(out)
            chosen[topk_per_group(a, frame, k_f)] = True
    keep = chosen.nonzero().squeeze(1)
    values = knn_merge(x, keys, a, keep, dense, k).to(x.dtype) if merge else None
    info = {"outliers": int(out.sum()), "outliers_per_frame": n_out.tolist(),
            "kept_per_frame": torch.bincount(frame[keep], minlength=n_frames).tolist()}
    return keep, values, info


class PruMergeStage(PreStage):
    plus = False

    def expected_kept(self, n_visual: int) -> int:
        """Data-free count for analytic FLOPs: the budget; adaptive mode keeps everything (unknown)."""
        from ..tokens import budget
        r = self.params["retention"]
        return n_visual if r is None else budget(r, n_visual)

    def select(self, ctx: PreContext) -> Selection:
        if ctx.vision is None:
            raise PlanError(f"{self.method} needs the vision encoder's attention, and this model adapter does not expose it")
        att, keys = token_attention(ctx.vision)
        if att.shape[0] != ctx.layout.num_tokens:
            raise PlanError(f"{self.method}: vision attention covers {att.shape[0]} tokens, the layout has "
                            f"{ctx.layout.num_tokens}")
        ids = ctx.ids
        p = self.params
        # y_i = x_i + Σ a_j x_j is no weighted mean (neighbours are shared, weights do not sum to 1), so no
        # Merge map describes it: on a model with DeepStack rows the kept tokens stay unmerged (reported)
        merge = p["merge"] and not ctx.side_rows
        keep, values, info = prumerge_select(ctx.embeds, ids, ctx.layout, att.to(ids.device)[ids],
                                             keys.to(ids.device)[ids], p["retention"], ctx.n_original,
                                             self.plus, merge, p["neighbours"])
        if p["merge"] and not merge:
            info["merge"] = "off: this model adds DeepStack features per token, which PruMerge's update cannot carry"
        return Selection(keep, values, info)


class PruMergePlusStage(PruMergeStage):
    plus = True


def _params(plus: bool) -> tuple:
    return (
        Param("retention", "float", None, "Visual tokens kept, as a fraction of the ORIGINAL count, an equal share "
              "per frame. Empty = PruMerge's adaptive count (the IQR outliers" + (" plus the spatial supplement" if plus
                                                                                  else "") + ").",
              min=0.0, max=1.0, step=0.01, min_exclusive=True, optional=True, ref="PruMerge adaptive selection (IQR)"),
        Param("merge", "bool", True, "Merge each kept token with its most similar tokens (off: prune only).",
              ref="PruMerge token merging"),
        Param("neighbours", "int", 32, "k: neighbours (by key similarity) each kept token absorbs.", min=0, max=4096,
              step=1, ref="PruMerge code: topk(cos_sim, k=32)"),
    )


register(MethodSpec(
    name="prumerge", title="PruMerge", node="PruMerge", kind="pre",
    summary="Keep the tokens whose vision-encoder attention is an IQR outlier and merge their nearest "
            "neighbours into them (adaptive, per frame).",
    paper=PAPER, params=_params(False), build=lambda p, info: [PruMergeStage("prumerge", p)]))

register(MethodSpec(
    name="prumerge_plus", title="PruMerge+", node="PruMergePlus", kind="pre",
    summary="PruMerge plus evenly spaced tokens of every frame, so the layout is covered.",
    paper=PAPER, params=_params(True), build=lambda p, info: [PruMergePlusStage("prumerge_plus", p)]))
