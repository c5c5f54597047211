"""The simplest stages: none (reference), random and uniform (evenly strided) pre-LLM selection."""
from __future__ import annotations

import torch

from ..registry import MethodSpec, Param, register, retention_param
from ..stages import PreContext, PreStage, Selection
from ..tokens import uniform_ids


class RandomStage(PreStage):
    """Keeps a seeded random subset of the budget (a floor any method should beat)."""

    def select(self, ctx: PreContext) -> Selection:
        k = ctx.budget(self.params["retention"])
        g = torch.Generator().manual_seed(int(self.params["seed"]))
        pick = torch.randperm(ctx.embeds.shape[0], generator=g)[:k]
        return Selection(torch.sort(pick).values.to(ctx.ids.device))


class UniformStage(PreStage):
    """Keeps tokens evenly strided over the alive sequence (spatial-temporal uniform sampling)."""

    def select(self, ctx: PreContext) -> Selection:
        k = ctx.budget(self.params["retention"])
        return Selection(uniform_ids(ctx.embeds.shape[0], k, device=ctx.ids.device))


register(MethodSpec(
    name="none", title="No pruning", node="NoPruning", kind="pre",
    summary="The unpruned reference: every visual token reaches every layer.",
    paper="—", params=(), build=lambda p, info: [], category="baselines"))

register(MethodSpec(
    name="random", title="Random", node="Random", kind="pre",
    summary="Keep a seeded random subset of visual tokens before the LLM.",
    paper="baseline", params=(retention_param(0.25), Param("seed", "int", 0, "Random seed.", min=0, max=2**31 - 1)),
    build=lambda p, info: [RandomStage("random", p)]))

register(MethodSpec(
    name="uniform", title="Uniform", node="Uniform", kind="pre",
    summary="Keep visual tokens at an even stride over the video before the LLM.",
    paper="baseline", params=(retention_param(0.25),),
    build=lambda p, info: [UniformStage("uniform", p)]))
