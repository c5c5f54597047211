"""The stage interface every pruning method implements.

Three kinds (DESIGN.md "Words"):

* ``PreStage``   acts on visual embeddings before layer 0.
* ``LayerStage`` prunes the hidden states entering layer ``layer``, scoring with what layer-1 computed.
* ``CacheStage`` watches the prefill layer by layer and/or the decode steps and edits the KV cache.

A stage answers with a ``Selection``: indices into the visual tokens that are alive *now*
(ascending), optionally new values for them (merging). The engine maps them back to ORIGINAL
visual ids, so every stage's result can be drawn on the frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch

from .layout import TokenLayout
from .tokens import budget, merge_into

if TYPE_CHECKING:  # pragma: no cover
    from .prefill_state import PrefillState


@dataclass
class Merge:
    """How a merging stage formed its ``Selection.values``, so per-token side features (Qwen3-VL's
    DeepStack rows) can be merged exactly alike.

    target: [n] for every alive token, the slot in ``keep`` it was merged into (-1: dropped).
    weight: [n] its weight in that slot's weighted mean (None: equal weights).
    A kept slot nothing points to keeps its own row.
    """

    target: torch.Tensor
    weight: torch.Tensor | None = None

    def apply(self, rows: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Merge per-alive-token rows [n, ...] into per-kept-token rows [len(keep), ...] (``merge_into``)."""
        n, k = rows.shape[0], keep.numel()
        target = self.target.to(rows.device)
        w = torch.ones(n, device=rows.device) if self.weight is None else self.weight.to(rows.device).float()
        m = target >= 0
        flat = rows.reshape(n, -1)
        merged, tot = merge_into(flat[m].float(), w[m], target[m], k)
        own = flat.index_select(0, keep.to(rows.device)).float()
        merged = torch.where((tot > 0).unsqueeze(1), merged, own)
        return merged.to(rows.dtype).reshape(k, *rows.shape[1:])

    def then(self, other: "Merge", k: int) -> "Merge":
        """This merge (into ``k`` slots) followed by ``other`` acting on those slots: one map from the
        original alive tokens. Each slot's weights are normalised first, so the composite weighted
        mean equals merging twice."""
        w = torch.ones(self.target.numel(), device=self.target.device) if self.weight is None \
            else self.weight.float()
        m = self.target >= 0
        tot = torch.zeros(k, device=w.device).index_add_(0, self.target[m], w[m])
        t1 = self.target.clamp_min(0)
        w2 = torch.ones(k, device=w.device) if other.weight is None else other.weight.float().to(w.device)
        target = torch.where(m, other.target.to(t1.device)[t1], torch.full_like(t1, -1))
        return Merge(target, torch.where(m, w / tot[t1].clamp_min(1e-30) * w2[t1], torch.zeros_like(w)))

    def subset(self, sel: torch.Tensor, k: int) -> "Merge":
        """The same merge after keeping only slots ``sel`` (ascending) of its ``k`` slots."""
        remap = torch.full((k + 1,), -1, dtype=torch.long, device=self.target.device)
        remap[sel.to(remap.device)] = torch.arange(sel.numel(), device=remap.device)
        return Merge(remap[self.target], self.weight)  # target -1 reads the sentinel at index k


@dataclass
class Selection:
    """What a stage keeps.

    keep:   indices into the currently alive visual tokens, ascending, unique.
    values: optional replacement rows [len(keep), d] for the kept tokens (size-weighted merges).
    info:   anything worth reporting (segments, per-frame ratios, similarity curves); JSON-able.
    merge:  with ``values``, how they were formed (which tokens went into which slot, weights);
            required on models with per-token side features (DeepStack), where the engine merges
            those the same way.
    scores: what the stage ranked by, per alive token ([n] each, NaN = not scored), by name
            ("attention", "attention after PosC", "importance", "relevance"). Filled only when the
            context's ``record_scores`` is set (the demo's heatmaps), so a normal run pays nothing.
    """

    keep: torch.Tensor
    values: torch.Tensor | None = None
    info: dict = field(default_factory=dict)
    merge: Merge | None = None
    scores: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class PreContext:
    """Inputs of a pre-LLM stage."""

    embeds: torch.Tensor            # [n, d] visual embeddings alive now (after earlier pre stages)
    ids: torch.Tensor               # [n] their original visual ids, ascending
    layout: TokenLayout             # layout of the ORIGINAL visual tokens
    query: torch.Tensor             # [d] input embedding of the question's last token
    text: torch.Tensor              # [t, d] input embeddings of all text tokens
    vision: Any = None              # adapter-provided vision access (e.g. VisionZip attention), may be None
    side_rows: bool = False         # the model has per-token side features (DeepStack): merges need a Merge map
    question: torch.Tensor | None = None  # [q, d] input embeddings of the question's own tokens
    record_scores: bool = False     # fill ``Selection.scores`` (Engine.run(record_scores=True))

    @property
    def n_original(self) -> int:
        return self.layout.num_tokens

    def budget(self, retention: float) -> int:
        return budget(retention, self.n_original, self.embeds.shape[0])


@dataclass
class LayerContext:
    """Inputs of a layer stage (or a cache stage's per-layer hook) at decoder layer ``layer``."""

    layer: int                      # the layer about to run (stage prunes entering it)
    state: "PrefillState"           # engine state; use the helpers below rather than its fields

    @property
    def hidden(self) -> torch.Tensor:
        """[L, d] hidden states of the current sequence entering ``layer``."""
        return self.state.hidden[0]

    @property
    def vis_pos(self) -> torch.Tensor:
        """[n] positions of the alive visual tokens inside the current sequence."""
        return self.state.vis_pos

    @property
    def ids(self) -> torch.Tensor:
        """[n] original visual ids of the alive visual tokens, ascending."""
        return self.state.vis_ids

    @property
    def layout(self) -> TokenLayout:
        return self.state.layout

    @property
    def record_scores(self) -> bool:
        """Fill ``Selection.scores`` (``Engine.run(record_scores=True)``)."""
        return bool(getattr(self.state, "record_scores", False))

    @property
    def n_original(self) -> int:
        return self.state.layout.num_tokens

    def budget(self, retention: float) -> int:
        return budget(retention, self.n_original, int(self.ids.numel()))

    @property
    def visual_hidden(self) -> torch.Tensor:
        """[n, d] hidden states of the alive visual tokens."""
        return self.hidden.index_select(0, self.vis_pos)

    @property
    def visual_embeds0(self) -> torch.Tensor:
        """[n, d] the alive visual tokens' inputs to layer 0 (after pre-LLM stages)."""
        return self.state.vis_embeds0

    @property
    def query_hidden(self) -> torch.Tensor:
        """[d] hidden state of the last prompt token entering ``layer`` (the token that answers)."""
        return self.hidden[-1]

    @property
    def question_hidden(self) -> torch.Tensor:
        """[q, d] hidden states of the question's own tokens entering ``layer``."""
        return self.hidden.index_select(0, self.state.question_pos_now())

    def scores(self, layer: int | None = None) -> torch.Tensor:
        """[n] attention of the last text token over the alive visual tokens, head-averaged.

        Recomputed for that one query row from layer ``layer`` (default ``self.layer - 1``),
        RoPE applied, GQA-aware, softmax in fp32 over the whole cached row (DESIGN rule 1).
        """
        return self.state.last_token_scores(self.layer - 1 if layer is None else layer)

    def head_scores(self, layer: int | None = None) -> torch.Tensor:
        """[heads, n] per-head version of :meth:`scores`."""
        return self.state.last_token_scores(self.layer - 1 if layer is None else layer, mean_heads=False)


class Stage:
    """Base of every stage. ``method`` is the registry name; ``params`` the validated parameters."""

    kind: ClassVar[str] = ""
    method: str = ""

    def __init__(self, method: str, params: dict):
        self.method = method
        self.params = dict(params)

    @property
    def label(self) -> str:
        return self.method

    def describe(self) -> dict:
        return {"method": self.method, "kind": self.kind, **self.params}


class PreStage(Stage):
    kind = "pre"

    def select(self, ctx: PreContext) -> Selection:  # pragma: no cover - interface
        raise NotImplementedError


class LayerStage(Stage):
    """Prunes the hidden states entering ``self.layer``."""

    kind = "layer"

    def __init__(self, method: str, params: dict, layer: int):
        super().__init__(method, params)
        self.layer = int(layer)

    def select(self, ctx: LayerContext) -> Selection | None:  # pragma: no cover - interface
        """What to keep entering ``self.layer``; None leaves the layer alone (and records nothing)."""
        raise NotImplementedError

    def early_mask(self, state: "PrefillState"):
        """Optional attention mask for layers < ``self.layer``: boolean [L, L] (True = may attend), or
        a ``block_mask.SegmentCausal`` (the same mask held as causal blocks, which keeps SDPA's causal
        fast path). ShaRP's SegM uses it. Returned once before layer 0; None means plain causal attention.
        """
        return None


@dataclass
class Withdrawal:
    """A cache stage's decision after a prefill layer: drop these alive visual tokens.

    drop:          indices into the alive visual tokens to withdraw from the hidden states
                   for all later layers.
    evict_layers:  already-computed layers whose KV cache must also lose those entries.
    """

    drop: torch.Tensor
    evict_layers: list[int] = field(default_factory=list)
    info: dict = field(default_factory=dict)


class CacheStage(Stage):
    """Hooks into prefill (after each layer) and decoding (each step). All hooks are optional."""

    kind = "cache"

    def after_layer(self, ctx: LayerContext) -> Withdrawal | None:
        """Called after layer ``ctx.layer`` ran, ``ctx.hidden`` being its output."""
        return None

    def after_prefill(self, cache: "CacheView") -> dict | None:
        """Called once the prefill is done; may evict cache entries. Returns info to report."""
        return None

    def on_decode_step(self, cache: "CacheView", step: int) -> None:
        """Called before each decode step ``step`` (0-based); may evict cache entries."""
        return None

    def prefill_mask(self, state: "PrefillState") -> torch.Tensor | None:
        """Optional boolean attention mask [L', L'] (True = may attend) for EVERY prefill layer, built
        for the current sequence (called again whenever its length changes). Its allowed pairs are
        counted in the FLOPs (``flops.layer_flops(pairs=...)``). StreamingLLM's streamed prefill."""
        return None

    def decode_layer_keep(self, cache: "CacheView", layer: int, step: int) -> torch.Tensor | None:
        """Called in decode step ``step`` before ``layer`` runs (so ``layer - 1`` has seen the new
        token): ascending indices of ``layer``'s cache entries the new token may attend to, or None
        for all. A mask only: nothing is evicted (DyCoke's official per-step pruning)."""
        return None


class CacheView:
    """What a cache stage may see and change of the KV cache.

    ``slot_ids(l)`` gives, for each entry of layer ``l``'s cache, its original sequence index
    (visual tokens map to ``visual_base + visual id``... see ``is_visual``).
    """

    def __init__(self, state: "PrefillState"):
        self._s = state

    @property
    def num_layers(self) -> int:
        return len(self._s.slots)

    def slots(self, layer: int) -> torch.Tensor:
        """[len] original sequence index of every cache entry of ``layer`` (generated tokens continue it)."""
        return self._s.slots[layer]

    def visual_ids(self, layer: int) -> torch.Tensor:
        """[len] original visual id of every entry, -1 for non-visual entries."""
        return self._s.slot_visual_ids(layer)

    def keys(self, layer: int) -> torch.Tensor:
        return self._s.cache.layers[layer].keys

    def values(self, layer: int) -> torch.Tensor:
        return self._s.cache.layers[layer].values

    def keep(self, layer: int, keep: torch.Tensor) -> None:
        """Keep only entries ``keep`` (ascending indices) of ``layer``'s cache; frees the rest."""
        self._s.keep_cache_entries(layer, keep)

    def last_query_scores(self, layer: int) -> torch.Tensor:
        """[len] head-averaged attention of the most recent token's query over ``layer``'s cache."""
        return self._s.cache_row_scores(layer)

    @property
    def layout(self) -> TokenLayout:
        return self._s.layout


def recording(ctx: Any) -> bool:
    """Whether the run asked stages to fill ``Selection.scores`` (any context; duck-typed ones too)."""
    return bool(getattr(ctx, "record_scores", False))


StageFactory = Callable[[dict, Any], list[Stage]]
