"""DivPrune (Alvar et al., CVPR 2025, "DivPrune: Diversity-based Visual Token Pruning for LMMs").

Pre-LLM. Token pruning as a Max-Min Diversity Problem (MMDP): choose the k visual
embeddings whose smallest pairwise cosine distance d(x, y) = 1 - cos(x, y) is as large as
possible, solved greedily as in the authors' code (``DivPrune`` in vbdi/divprune
LLaVA/llava/model/llava_arch.py): start from the token farthest from its nearest
neighbour, then repeatedly add the token whose distance to the chosen set is largest.

The authors' code indexes an n x n distance matrix with the whole chosen set at every step
(O(n·k) work per step). Here one running minimum-distance vector is updated with one
matrix-vector product per step: O(n·d) time and O(n) extra memory per step, no n x n matrix.
"""
from __future__ import annotations

import torch

from ..registry import MethodSpec, register, retention_param
from ..stages import PreContext, PreStage, Selection
from ..tokens import normalize


def nearest_neighbour_distance(xn: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Cosine distance of every (unit-norm) row to its nearest OTHER row, [n]; O(chunk·n) memory."""
    n = xn.shape[0]
    out = torch.empty(n, dtype=xn.dtype, device=xn.device)
    for start in range(0, n, chunk):
        sim = xn[start:start + chunk] @ xn.T
        rows = torch.arange(sim.shape[0], device=xn.device)
        sim[rows, rows + start] = float("-inf")   # a token is not its own neighbour
        out[start:start + chunk] = 1.0 - sim.max(dim=1).values
    return out


def mmdp_greedy(x: torch.Tensor, k: int, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy max-min diverse subset (DivPrune's greedy MMDP) in selection order, and each pick's gain.

    Step 1 picks argmax_i min_{j≠i} d(x_i, x_j); step t picks argmax_{i∉S} min_{s∈S} d(x_i, x_s),
    with ``min_{s∈S}`` kept as a running vector (one mat-vec per step). Ties go to the lowest
    index (``argmax``), so the result is deterministic. Returns (order [k], gain [k]): gain[t] is
    the distance of pick t to the picks before it (inf for the first), so ``gain[1:].min()`` is the
    MMDP objective of the chosen set.
    """
    n = x.shape[0]
    k = max(0, min(int(k), n))
    xn = normalize(x)
    order = torch.empty(k, dtype=torch.long, device=x.device)
    min_dist = torch.full((n,), float("inf"), device=x.device)
    gain = torch.full((k,), float("inf"), device=x.device)
    chosen = torch.zeros(n, dtype=torch.bool, device=x.device)
    if k == 0:
        return order, gain
    pick = nearest_neighbour_distance(xn, chunk).argmax() if n > 1 else torch.zeros((), dtype=torch.long, device=x.device)
    for t in range(k):
        order[t] = pick
        chosen[pick] = True
        if t + 1 == k:
            break
        min_dist = torch.minimum(min_dist, 1.0 - xn @ xn[pick])
        # already-chosen tokens are excluded explicitly: with duplicate embeddings every distance
        # can reach 0 and a bare argmax would pick a chosen token again
        score = min_dist.masked_fill(chosen, float("-inf"))
        pick = score.argmax()
        gain[t + 1] = score[pick]
    return order, gain


class DivPruneStage(PreStage):
    def select(self, ctx: PreContext) -> Selection:
        k = ctx.budget(self.params["retention"])
        order, gain = mmdp_greedy(ctx.embeds, k)
        keep = torch.sort(order).values
        spread = float(gain[1:].min()) if order.numel() > 1 else 0.0
        return Selection(keep, info={"first": int(ctx.ids[order[0]]), "min_pairwise_distance": spread})


register(MethodSpec(
    name="divprune", title="DivPrune", node="DivPrune", kind="pre",
    summary="Keep the most diverse visual tokens: greedy max-min cosine distance over all frames.",
    paper="DivPrune, Alvar et al. CVPR 2025 (retained ratio 0.098)",
    params=(retention_param(0.098, ref="DivPrune run_Divprune.sh SUBSET_RATIO=0.098"),),
    build=lambda p, info: [DivPruneStage("divprune", p)]))
