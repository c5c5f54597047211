"""VisionZip (Yang et al., CVPR 2025, "VisionZip: Longer is Better but Not Necessary in VLMs").

Pre-LLM. Per frame (VisionZip encodes every image/frame on its own), the budget is split into
*dominant* tokens — those the vision encoder attends to most — and *contextual* tokens: the rest
are bucketed onto a few evenly strided targets by key similarity and averaged into them.
Authors' default split 54 dominant : 10 contextual (README ``visionzip(model, dominant=54,
contextual=10)``, 64 of 576 CLIP tokens). SigLIP and the Qwen ViT have no CLS, so "attention to
a token" is the attention it RECEIVES at the encoder layer whose output the LLM uses
(``pruning_core.vision_attention``), recomputed for that one layer only.
"""
from __future__ import annotations

import torch

from ..errors import PlanError
from ..registry import MethodSpec, Param, register, retention_param
from ..stages import Merge, PreContext, PreStage, Selection
from ..tokens import allocate_proportional, cosine_matrix, topk_per_group
from ..vision_attention import token_attention


def split_dominant(k_per_group: torch.Tensor, dominant_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(dominant, contextual) counts per group: dominant = round(k·ratio) (54:10 → ratio 54/64)."""
    dom = torch.floor(k_per_group.double() * dominant_ratio + 0.5).long().clamp(min=0)
    dom = torch.minimum(dom, k_per_group)
    return dom, k_per_group - dom


def contextual_targets(groups_rest: torch.Tensor, ctx_per_group: torch.Tensor) -> torch.Tensor:
    """Boolean mask over the non-dominant tokens (ascending, grouped) marking the merge targets.

    VisionZip contextual tokens: inside each group, targets are every ``step``-th remaining token, ``step =
    max(1, n_rest // contextual)``, the first ``contextual`` of them.
    """
    n_groups = ctx_per_group.numel()
    counts = torch.bincount(groups_rest, minlength=n_groups)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(groups_rest.numel(), device=groups_rest.device) - starts[groups_rest]
    step = (counts // ctx_per_group.clamp_min(1)).clamp_min(1)[groups_rest]
    c = ctx_per_group[groups_rest]
    return (c > 0) & (rank % step == 0) & (rank // step < c)


def assign_to_targets(metric_src: torch.Tensor, groups_src: torch.Tensor,
                      metric_tgt: torch.Tensor, groups_tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Most similar target (cosine of the key metric) inside the same group, and whether one exists."""
    same = groups_src.unsqueeze(1) == groups_tgt.unsqueeze(0)
    if metric_tgt.shape[0] == 0:
        return torch.zeros_like(groups_src), same.any(dim=1)
    sim = cosine_matrix(metric_src, metric_tgt)
    sim = sim.masked_fill(~same, float("-inf"))
    return sim.argmax(dim=1), same.any(dim=1)


def visionzip_select(embeds: torch.Tensor, attention: torch.Tensor, metric: torch.Tensor, groups: torch.Tensor,
                     k_per_group: torch.Tensor, dominant_ratio: float) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(keep, values, info) of :func:`visionzip_merge`, the values merged as its map says."""
    keep, how, info = visionzip_merge(attention, metric, groups, k_per_group, dominant_ratio)
    return keep, how.apply(embeds, keep), info


def visionzip_merge(attention: torch.Tensor, metric: torch.Tensor, groups: torch.Tensor,
                    k_per_group: torch.Tensor, dominant_ratio: float) -> tuple[torch.Tensor, Merge, dict]:
    """Dominant + contextual selection (VisionZip, ``CLIPVisionTower_VisionZip.forward``) on the alive tokens.

    attention [n] (received), metric [n, c] (head-mean keys), groups [n] (frame or 0,
    non-decreasing), k_per_group [G]. Returns (keep ascending, merge map, info). Kept tokens
    stay at their own positions; a contextual token sits at its target's position and becomes the
    mean of the target and everything assigned to it.
    """
    n_groups = k_per_group.numel()
    dom_k, ctx_k = split_dominant(k_per_group, dominant_ratio)
    dom_idx = topk_per_group(attention, groups, dom_k)
    is_dom = torch.zeros(attention.shape[0], dtype=torch.bool, device=attention.device)
    is_dom[dom_idx] = True
    rest = (~is_dom).nonzero().squeeze(1)
    is_tgt = contextual_targets(groups[rest], ctx_k.to(groups.device))
    tgt, src = rest[is_tgt], rest[~is_tgt]
    to, has = assign_to_targets(metric[src], groups[src], metric[tgt], groups[tgt])
    src, to = src[has], to[has]
    keep = torch.sort(torch.cat([dom_idx, tgt])).values
    # every kept token is its own slot; a contextual source joins its target's slot (equal weights)
    target = torch.full((attention.shape[0],), -1, dtype=torch.long, device=attention.device)
    target[keep] = torch.arange(keep.numel(), device=attention.device)
    target[src] = target[tgt[to]]
    info = {"dominant": int(dom_idx.numel()), "contextual": int(tgt.numel()), "merged": int(src.numel()),
            "groups": n_groups}
    return keep, Merge(target), info


class VisionZipStage(PreStage):
    def select(self, ctx: PreContext) -> Selection:
        if ctx.vision is None:
            raise PlanError("visionzip needs the vision encoder's attention, and this model adapter does not expose it")
        att, metric = token_attention(ctx.vision)
        n = ctx.layout.num_tokens
        if att.shape[0] != n:
            raise PlanError(f"visionzip: vision attention covers {att.shape[0]} tokens, the layout has {n}")
        ids = ctx.ids
        att, metric = att.to(ids.device)[ids], metric.to(ids.device)[ids]
        if self.params["scope"] == "frame":
            groups = ctx.layout.frame_of(ids)
            n_groups = ctx.layout.num_frames
        else:
            groups = torch.zeros_like(ids)
            n_groups = 1
        caps = torch.bincount(groups, minlength=n_groups)
        k_per_group = allocate_proportional(torch.ones(n_groups), caps, ctx.budget(self.params["retention"]))
        keep, how, info = visionzip_merge(att, metric, groups, k_per_group.to(ids.device),
                                          self.params["dominant_ratio"])
        return Selection(keep, how.apply(ctx.embeds, keep), info, how)


register(MethodSpec(
    name="visionzip", title="VisionZip", node="VisionZip", kind="pre",
    summary="Keep the tokens the vision encoder attends to most, merge the rest into a few contextual tokens.",
    paper="VisionZip, Yang et al. CVPR 2025 (54 dominant + 10 contextual of 576)",
    params=(
        retention_param(0.111, ref="VisionZip README: 64 of 576 tokens"),
        Param("dominant_ratio", "float", 54 / 64, "Share of the budget kept as dominant tokens; the rest are "
              "contextual (merged) tokens.", min=0.0, max=1.0, step=0.01, ref="VisionZip README: dominant=54, contextual=10"),
        Param("scope", "choice", "frame", "frame: every frame gets an equal share and is processed on its own, as "
              "VisionZip encodes each frame as an image; video: one selection over all frames.",
              choices=("frame", "video"), ref="VisionZip: one selection per image"),
    ),
    build=lambda p, info: [VisionZipStage("visionzip", p)]))
