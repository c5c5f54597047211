"""Spatial downsampling: average-pool each frame's token grid to a smaller grid (the honest floor).

VTC-Bench (video token compression benchmark) found that plain spatial downsampling of every
frame beats many pruning methods, so it belongs in every comparison. Each frame's H×W grid is
split into h×w cells (cell row ⌊r·h/H⌋, cell column ⌊c·w/W⌋, so cells differ in size by at most one
token when H is not a multiple of h); a cell becomes the mean of its alive tokens, stored at the
token nearest the cell centre. ``factor`` 2 is 2×2 pooling, 3 is 3×3 …; ``factor`` 0 picks the grid
whose token count is nearest the ``retention`` budget (keeping the frame's aspect ratio as well
as integers allow). The kept count is frames × h × w, the nearest grid to the budget.
"""
from __future__ import annotations

import math

import torch

from ..layout import TokenLayout
from ..registry import MethodSpec, Param, register, retention_param
from ..stages import Merge, PreContext, PreStage, Selection
from ..tokens import budget


def nearest_grid(grid_h: int, grid_w: int, per_frame: float) -> tuple[int, int]:
    """The (h, w) with h ≤ H, w ≤ W whose h·w is nearest ``per_frame`` tokens; ties: the shape closest
    to the frame's aspect ratio, then the larger grid. At least 1×1."""
    best = None
    for h in range(1, grid_h + 1):
        for w in (max(1, math.floor(per_frame / h)), min(grid_w, math.ceil(per_frame / h))):
            w = min(max(w, 1), grid_w)
            key = (abs(h * w - per_frame), abs(math.log((h / w) / (grid_h / grid_w))), -h * w)
            if best is None or key < best[0]:
                best = (key, (h, w))
    return best[1]


def pooled_grid(layout: TokenLayout, retention: float, factor: int) -> tuple[int, int]:
    """Target grid of a plan step: ⌈H/f⌉×⌈W/f⌉ for a pooling factor f, else the nearest to the budget."""
    if factor > 0:
        return max(1, math.ceil(layout.grid_h / factor)), max(1, math.ceil(layout.grid_w / factor))
    per_frame = budget(retention, layout.num_tokens) / layout.num_frames
    return nearest_grid(layout.grid_h, layout.grid_w, per_frame)


def downsample(x: torch.Tensor, ids: torch.Tensor, layout: TokenLayout, h: int, w: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the alive tokens of every frame onto an h×w grid: ``(keep, values [k, d])``."""
    keep, how = downsample_map(ids, layout, h, w)
    return keep, how.apply(x.float(), keep)


def downsample_map(ids: torch.Tensor, layout: TokenLayout, h: int, w: int) -> tuple[torch.Tensor, Merge]:
    """Cells of the h×w grid of every frame: ``(keep [k] ascending alive indices, merge map)`` — one
    token per non-empty cell, the mean of the cell's alive tokens, at the alive token nearest the
    cell centre (ties: earlier)."""
    H, W = layout.grid_h, layout.grid_w
    frame, row, col = layout.frame_of(ids), layout.row_of(ids), layout.col_of(ids)
    cr, cc = row * h // H, col * w // W
    cell = (frame * h + cr) * w + cc
    # cell centre in token coordinates: the middle of the rows/cols that fall in the cell
    r0, r1 = (cr * H + h - 1) // h, ((cr + 1) * H + h - 1) // h
    c0, c1 = (cc * W + w - 1) // w, ((cc + 1) * W + w - 1) // w
    d2 = (2 * row - (r0 + r1 - 1)).double() ** 2 + (2 * col - (c0 + c1 - 1)).double() ** 2
    n = ids.numel()
    # nearest to the centre first, then the earlier token (stable sorts), grouped by cell
    order = torch.sort(d2, stable=True).indices
    order = order[torch.sort(cell[order], stable=True).indices]
    first = torch.ones(n, dtype=torch.bool, device=ids.device)
    first[1:] = cell[order[1:]] != cell[order[:-1]]
    keep = torch.sort(order[first]).values
    return keep, Merge(torch.searchsorted(cell[keep], cell))


class DownsampleStage(PreStage):
    def expected_kept(self, n_visual: int) -> int:
        """Data-free count for analytic FLOPs (no grid known): the budget, or N/f² for a factor f."""
        f = self.params["factor"]
        return budget(self.params["retention"], n_visual) if f == 0 else max(1, round(n_visual / (f * f)))

    def select(self, ctx: PreContext) -> Selection:
        h, w = pooled_grid(ctx.layout, self.params["retention"], self.params["factor"])
        keep, how = downsample_map(ctx.ids, ctx.layout, h, w)
        return Selection(keep, how.apply(ctx.embeds, keep),
                         {"grid": [h, w], "from_grid": [ctx.layout.grid_h, ctx.layout.grid_w]}, how)


register(MethodSpec(
    name="downsample", title="Spatial downsampling", node="Downsample", kind="pre",
    summary="Average-pool every frame's token grid to a smaller grid (2×2, 3×3, … or the grid nearest the "
            "retention): the floor every method must beat.",
    paper="baseline (VTC-Bench: spatial downsampling beats many video token compression methods)",
    params=(
        retention_param(0.25, ref="2×2 pooling keeps 25%",
                        tooltip="Visual tokens kept, as a fraction of the ORIGINAL count; the grid per frame is "
                                "the one whose size is nearest this budget (used when factor = 0)."),
        Param("factor", "int", 0, "Pooling factor f: each f×f block of tokens becomes one (0 = choose the grid "
              "nearest the retention).", min=0, max=64, step=1, ref="average pooling, e.g. 2×2"),
    ),
    build=lambda p, info: [DownsampleStage("downsample", p)]))
