"""Feather (Endo et al., ICCV 2025, "Feather the Throttle: Revisiting Visual Token Pruning for
Vision-Language Model Acceleration"), in the single-stage form ShaRP compares against (ShaRP §5.1:
"removes positional embeddings at the 2nd layer and applies uniform token sampling").

Entering layer K the visual tokens are ranked by the last text token's attention at layer K-1
computed WITHOUT the rotary embedding (FastV's criterion minus RoPE, which otherwise favours the
tokens nearest the text, i.e. the bottom of the last frames). The kept set is the union of a
uniform stride lattice over every frame's grid (Feather's ``grid[::s, ::s]``, s = 3) and the
top-scored tokens, sized so the total is exactly the budget. See ``docs/methods/feather.md``.
"""
from __future__ import annotations

import torch

from ..layout import TokenLayout
from ..registry import MethodSpec, Param, layer_param, register, retention_param
from ..stages import LayerContext, LayerStage, Selection
from ..tokens import topk_ordered, uniform_ids
from ..attention import derotated_cache_scores

PAPER = "Feather the Throttle, Endo et al. ICCV 2025 (as ShaRP's baseline: de-RoPE scores at layer 2 + uniform)"


# ---------------------------------------------------------------- pure functions

def lattice_mask(ids: torch.Tensor, layout: TokenLayout, stride: int) -> torch.Tensor:
    """True for tokens on every frame's ``grid[::stride, ::stride]`` lattice (Feather's uniform sampling)."""
    return (layout.row_of(ids) % stride == 0) & (layout.col_of(ids) % stride == 0)


def fitting_stride(ids: torch.Tensor, layout: TokenLayout, stride: int, cap: int) -> int:
    """The smallest stride ≥ ``stride`` whose lattice over the alive ``ids`` has at most ``cap`` tokens.

    All candidate strides are counted in one broadcast; when even one token per frame is too
    many, the coarsest stride is returned (the caller thins it evenly).
    """
    coarsest = max(layout.grid_h, layout.grid_w)
    stride = max(1, min(int(stride), coarsest))
    cand = torch.arange(stride, coarsest + 1, device=ids.device)
    rows = layout.row_of(ids).unsqueeze(0)
    cols = layout.col_of(ids).unsqueeze(0)
    counts = ((rows % cand[:, None] == 0) & (cols % cand[:, None] == 0)).sum(1)
    fits = (counts <= cap).nonzero()
    return int(cand[fits[0, 0]]) if fits.numel() else coarsest


def uniform_plus_top(scores: torch.Tensor, lattice: torch.Tensor, k: int, cap: int) -> tuple[torch.Tensor, int]:
    """Feather's union: the lattice tokens (thinned evenly to at most ``cap``) plus the best-scored
    of the rest, ``k`` in total. Returns (ascending indices, number taken from the lattice)."""
    uni = lattice.nonzero().squeeze(1)
    cap = max(0, min(int(cap), k))
    if uni.numel() > cap:
        uni = uni[uniform_ids(int(uni.numel()), cap, device=uni.device)]
    rest = k - int(uni.numel())
    masked = scores.float().clone()
    masked[uni] = float("-inf")
    top = topk_ordered(masked, rest)
    return torch.sort(torch.cat([uni, top])).values, int(uni.numel())


# ---------------------------------------------------------------- stage

def _visual_cache_columns(state, layer: int, vis_ids: torch.Tensor) -> torch.Tensor:
    """Where each alive visual id sits in ``layer``'s cache (entries are in sequence order)."""
    vis = state.slot_visual_ids(layer)
    where = (vis >= 0).nonzero().squeeze(1)
    return where[torch.searchsorted(vis[where], vis_ids)]


def derope_scores(ctx: LayerContext) -> torch.Tensor:
    """[n] last-text-token attention at layer K-1 over the alive visual tokens, RoPE removed.

    The query is re-projected from the last token's input to layer K-1; the keys are the ones
    already in layer K-1's cache, un-rotated with each token's own cos/sin (no re-projection).
    """
    st = ctx.state
    src = ctx.layer - 1
    cols = _visual_cache_columns(st, src, ctx.ids)
    keys = st.cache.layers[src].keys[0].index_select(1, cols)              # [KVH, n, hd]
    cos = st.cos[0].index_select(0, ctx.vis_pos)
    sin = st.sin[0].index_select(0, ctx.vis_pos)
    return derotated_cache_scores(st.adapter.layers[src], st.last_inputs[src], keys, cos, sin)


class FeatherStage(LayerStage):
    def select(self, ctx: LayerContext) -> Selection:
        p = self.params
        k = ctx.budget(p["retention"])
        cap = int(p["uniform_share"] * k)
        stride = fitting_stride(ctx.ids, ctx.layout, p["stride"], cap)
        lattice = lattice_mask(ctx.ids, ctx.layout, stride)
        keep, n_uniform = uniform_plus_top(derope_scores(ctx), lattice, k, cap)
        return Selection(keep, info={"stride": stride, "uniform": n_uniform, "top": int(keep.numel()) - n_uniform})


register(MethodSpec(
    name="feather",
    title="Feather",
    node="Feather",
    kind="layer",
    summary="Entering layer K, keep a uniform stride lattice over every frame plus the tokens the last text "
            "token attends to most at layer K-1 with RoPE removed from query and keys.",
    paper=PAPER,
    params=(
        layer_param(2, ref="ShaRP §5.1 (Feather at the 2nd layer); Feather uses K = 8"),
        retention_param(0.25, ref="ShaRP Table 1 (25/20/15/10%)"),
        Param("stride", "int", 3, "Stride s of the uniform lattice grid[::s, ::s] in every frame; coarsened "
              "until the lattice fits in uniform_share of the budget.", min=1, max=64, step=1,
              ref="Feather §5 (s = 3, eval_feather.sh)"),
        Param("uniform_share", "float", 0.5, "At most this share of the kept tokens comes from the lattice; "
              "the rest are the top de-RoPE-scored tokens.", min=0.0, max=1.0, step=0.05,
              ref="implementation choice (docs/methods/feather.md)"),
    ),
    build=lambda p, info: [FeatherStage("feather", p, p["layer"])],
    tags=("attention", "uniform"),
))
