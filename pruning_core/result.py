"""The result of one run: answer, kept ids after every stage, timings, FLOPs, KV bytes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .layout import TokenLayout
from .registry import format_plan


def _jsonable(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return round(x, 6)
    return x


@dataclass
class StageRecord:
    """One stage's effect: which ORIGINAL visual ids were alive after it and what it cost."""

    name: str
    kind: str
    kept_ids: torch.Tensor
    kept: int
    retention: float
    overhead_ms: float
    layer: int | None = None
    info: dict = field(default_factory=dict)
    scores: dict[str, torch.Tensor] = field(default_factory=dict)   # name -> [n_orig] float, NaN = not scored

    @classmethod
    def of(cls, stage, kept_ids: torch.Tensor, n_orig: int, ms: float, info: dict | None, layer: int | None = None):
        ids = kept_ids.detach().cpu().clone()
        return cls(stage.label, stage.kind, ids, int(ids.numel()), ids.numel() / max(n_orig, 1), ms,
                   layer if layer is not None else getattr(stage, "layer", None), dict(info or {}))

    def with_scores(self, scores: dict[str, torch.Tensor], alive_ids: torch.Tensor, n_orig: int) -> "StageRecord":
        """Keeps a stage's recorded scores (over the tokens alive when it ran, ``alive_ids``) as
        [n_orig] rows over ORIGINAL ids, NaN for tokens it did not see (pruned earlier)."""
        ids = alive_ids.detach().cpu()
        for name, v in scores.items():
            row = torch.full((n_orig,), float("nan"))
            row[ids] = v.detach().float().cpu().reshape(-1)
            self.scores[name] = row
        return self

    def to_dict(self, with_ids: bool = False) -> dict:
        d = {"name": self.name, "kind": self.kind, "kept": self.kept, "retention": round(self.retention, 6),
             "overhead_ms": round(self.overhead_ms, 3), "layer": self.layer, "info": _jsonable(self.info)}
        if with_ids:
            d["kept_ids"] = self.kept_ids.tolist()
        return d


@dataclass
class Result:
    """One run. TTFT has one meaning: ``ttft_ms = vision_ms + pre_llm_ms + prefill_ms`` (vision
    encode, pre-LLM stages, then layer 0 to the first logits with layer/cache stages inside)."""

    answer: str
    tokens: list[int]
    plan: list[dict]
    stages: list[StageRecord]
    visual_tokens: int
    kept_tokens: int
    layout: TokenLayout
    vision_ms: float
    prefill_ms: float
    ttft_ms: float
    decode_ms: float
    decode_steps: int
    tokens_per_layer: list[int]
    text_tokens: int
    flops: float
    flops_unpruned: float
    kv_cache_bytes: int
    kv_cache_bytes_final: int
    withdrawals: list[dict] = field(default_factory=list)
    model: str = ""
    pre_llm_ms: float = 0.0               # pre-LLM stages; ttft_ms = vision_ms + pre_llm_ms + prefill_ms
    positions: str = "original"           # engine option: original | compact
    dims: tuple[int, int] | None = None   # (hidden, intermediate) for FLOPs-weighted retention
    logits: torch.Tensor | None = None
    timing_spread: dict = field(default_factory=dict)   # repeated timings (pruning_core.repeats); {} = one run
    attention_pairs: list[int | None] = field(default_factory=list)   # per layer: pairs a mask allowed (None: causal)

    @property
    def retention(self) -> float:
        """Visual tokens alive after the last stage / original visual tokens."""
        return self.kept_tokens / max(self.visual_tokens, 1)

    @property
    def equivalent_retention(self) -> float:
        """FLOPs-weighted retention: the constant visual share with the same prefill FLOPs."""
        from .flops import equivalent_retention
        d, m = self.dims or (None, None)
        return equivalent_retention(self.tokens_per_layer, self.text_tokens, self.visual_tokens, d, m,
                                    flops=self.flops if d is not None else None)

    @property
    def kept_ids(self) -> list[torch.Tensor]:
        """Kept ORIGINAL visual ids after every stage (the full set when there is no stage)."""
        if not self.stages:
            return [torch.arange(self.visual_tokens)]
        return [s.kept_ids for s in self.stages]

    @property
    def decode_ms_per_token(self) -> float:
        return self.decode_ms / self.decode_steps if self.decode_steps else 0.0

    def to_json(self, with_ids: bool = False) -> dict:
        return {
            "answer": self.answer,
            "model": self.model,
            "plan": _jsonable(self.plan),
            "plan_str": format_plan(self.plan),
            "visual_tokens": self.visual_tokens,
            "kept_tokens": self.kept_tokens,
            "retention": round(self.retention, 6),
            "equivalent_retention": round(self.equivalent_retention, 6),
            "vision_ms": round(self.vision_ms, 3),
            "pre_llm_ms": round(self.pre_llm_ms, 3),
            "prefill_ms": round(self.prefill_ms, 3),
            "ttft_ms": round(self.ttft_ms, 3),
            "positions": self.positions,
            "decode_ms_per_token": round(self.decode_ms_per_token, 3),
            "new_tokens": len(self.tokens),
            "tokens": [int(t) for t in self.tokens],
            "flops": self.flops,
            "flops_unpruned": self.flops_unpruned,
            "kv_cache_bytes": self.kv_cache_bytes,
            "kv_cache_bytes_final": self.kv_cache_bytes_final,
            "tokens_per_layer": self.tokens_per_layer,
            "layout": self.layout.to_dict(),
            "stages": [s.to_dict(with_ids) for s in self.stages],
            "withdrawals": _jsonable(self.withdrawals),
            **({"timing_spread": _jsonable(self.timing_spread)} if self.timing_spread else {}),
        }
