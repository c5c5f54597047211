"""FastV (Chen et al., ECCV 2024, "An Image is Worth 1/2 Tokens After Layer 2").

After layer K-1, rank visual tokens by the attention the last text token pays them (head
mean) and keep the top share for layers K.. onward. Scores come from one recomputed query row.
"""
from __future__ import annotations

from ..registry import MethodSpec, register, retention_param, layer_param
from ..stages import LayerContext, LayerStage, Selection, recording
from ..tokens import topk_ordered


class FastVStage(LayerStage):
    def select(self, ctx: LayerContext) -> Selection:
        k = ctx.budget(self.params["retention"])
        scores = ctx.scores()
        return Selection(topk_ordered(scores, k), scores={"attention": scores} if recording(ctx) else {})


register(MethodSpec(
    name="fastv", title="FastV", node="FastV", kind="layer",
    summary="Prune visual tokens entering layer K by the last text token's attention at layer K-1.",
    paper="FastV, Chen et al. ECCV 2024 (K=2, R=50%)",
    params=(layer_param(2, ref="FastV §4 (K)"), retention_param(0.5, ref="FastV §4 (1-R)")),
    build=lambda p, info: [FastVStage("fastv", p, p["layer"])]))
