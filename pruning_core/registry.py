"""One registry, three faces: every method declares its parameters once, here.

ComfyUI nodes, CLI flags/plan steps and the demo's controls are generated from these specs.
A plan is a list of ``{"method": name, **params}`` dicts, the same in a workflow, on the CLI
and in a result; ``parse_plan`` also reads the CLI form ``fastv:layer=2,retention=0.25+random``.
"""
from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import PlanError
from .stages import Stage

_TYPES = ("int", "float", "bool", "choice", "str")


@dataclass(frozen=True)
class Param:
    """One parameter of a method: name, type, default, range, tooltip, paper reference."""

    name: str
    type: str
    default: Any
    tooltip: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple = ()
    ref: str = ""
    min_exclusive: bool = False   # e.g. retention in (0, 1]
    optional: bool = False        # None allowed (means "not set")

    def __post_init__(self):
        if self.type not in _TYPES:
            raise ValueError(f"bad param type {self.type}")

    def coerce(self, value: Any, method: str) -> Any:
        """Convert a CLI string or JSON value to this type and check its range."""
        where = f"{method}: parameter '{self.name}'"
        if value is None or (isinstance(value, str) and value.lower() in ("none", "")):
            if self.optional:
                return None
            raise PlanError(f"{where} needs a value")
        try:
            if self.type == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                v: Any = int(value)
            elif self.type == "float":
                if isinstance(value, bool):
                    raise ValueError
                v = float(value)
            elif self.type == "bool":
                if isinstance(value, str):
                    low = value.lower()
                    if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                        raise ValueError
                    v = low in ("true", "1", "yes", "on")
                elif isinstance(value, (bool, int)):
                    v = bool(value)
                else:
                    raise ValueError
            else:
                v = str(value)
        except (TypeError, ValueError):
            raise PlanError(f"{where} must be {self.type}, got {value!r}") from None
        if self.type == "choice" and v not in self.choices:
            raise PlanError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {v!r}")
        if self.type in ("int", "float"):
            if v != v:  # NaN
                raise PlanError(f"{where} must be a number, got {value!r}")
            lo_bad = self.min is not None and (v <= self.min if self.min_exclusive else v < self.min)
            hi_bad = self.max is not None and v > self.max
            if lo_bad or hi_bad:
                raise PlanError(f"{where} = {v} is outside {self.range_text()}")
        return v

    def range_text(self) -> str:
        """The interval the validator enforces, e.g. ``(0.0, 1.0]`` for a retention."""
        lo = "(" if self.min_exclusive else "["
        return f"{lo}{self.min}, {self.max}]"

    def to_dict(self) -> dict:
        d = {"name": self.name, "type": self.type, "default": self.default, "tooltip": self.tooltip}
        for k in ("min", "max", "step", "ref"):
            if getattr(self, k) not in (None, ""):
                d[k] = getattr(self, k)
        if self.min is not None or self.max is not None:
            d["range"] = self.range_text()
        if self.min_exclusive:
            d["min_exclusive"] = True
        if self.choices:
            d["choices"] = list(self.choices)
        if self.optional:
            d["optional"] = True
        return d


def retention_param(default: float, ref: str = "", tooltip: str | None = None) -> Param:
    """The standard retention parameter: kept / ORIGINAL visual tokens, in (0, 1]."""
    return Param("retention", "float", default,
                 tooltip or "Visual tokens kept, as a fraction of the ORIGINAL visual token count.",
                 min=0.0, max=1.0, step=0.01, ref=ref, min_exclusive=True)


def layer_param(default: int, tooltip: str = "Decoder layer whose input is pruned (scores come from the layer before).",
                ref: str = "") -> Param:
    return Param("layer", "int", default, tooltip, min=1, max=1024, step=1, ref=ref)


@dataclass(frozen=True)
class MethodSpec:
    """A pruning method: how it is named on each face, its params, and how to build its stages.

    ``build(params, model_info)`` returns the method's stages (one or several: PDrop adds one
    per boundary). ``model_info`` is a ``ModelInfo`` (layers, dims) so schedules scale with depth.
    """

    name: str                       # CLI / plan key, e.g. "fastv"
    title: str                      # display name, e.g. "FastV"
    node: str                       # ComfyUI id suffix: VideoPrune<node>
    kind: str                       # "pre", "layer", "cache" or "mixed"
    summary: str
    paper: str
    params: tuple[Param, ...]
    build: Callable[[dict, Any], list[Stage]]
    category: str = "baselines"     # ComfyUI sub-category
    tags: tuple[str, ...] = field(default_factory=tuple)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def validate(self, given: dict) -> dict:
        """Typed, range-checked parameters with defaults filled in."""
        names = {p.name for p in self.params}
        unknown = sorted(set(given) - names)
        if unknown:
            raise PlanError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(names)) or 'none'}")
        out = {}
        for p in self.params:
            out[p.name] = p.coerce(given[p.name], self.name) if p.name in given else p.default
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "node": f"VideoPrune{self.node}", "kind": self.kind,
                "summary": self.summary, "paper": self.paper, "category": self.category,
                "params": [p.to_dict() for p in self.params]}


_REGISTRY: dict[str, MethodSpec] = {}
_LOADED = False


def register(spec: MethodSpec) -> MethodSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"method {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_methods() -> None:
    """Import every module of ``pruning_core.methods`` so each registers itself."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from . import methods
    for info in sorted(pkgutil.iter_modules(methods.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{methods.__name__}.{info.name}")


def methods() -> dict[str, MethodSpec]:
    """All registered methods by name, in registration-stable (alphabetical module) order."""
    _load_methods()
    return dict(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    _load_methods()
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise PlanError(f"unknown method {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


# ---------------------------------------------------------------- plans

def parse_plan(plan: str | list | None) -> list[dict]:
    """A plan from any of its forms: CLI string, JSON string, or list of dicts. Validated per method."""
    if plan is None:
        return []
    if isinstance(plan, str):
        text = plan.strip()
        if not text or text.lower() == "none":
            return []
        if text.startswith("["):
            try:
                plan = json.loads(text)
            except json.JSONDecodeError as e:
                raise PlanError(f"plan is not valid JSON: {e}") from None
        else:
            plan = [_parse_step(s) for s in text.split("+")]
    if not isinstance(plan, list):
        raise PlanError("a plan is a list of {\"method\": ..., params} objects")
    out = []
    for step in plan:
        if not isinstance(step, dict) or "method" not in step:
            raise PlanError(f"each plan step needs a 'method': {step!r}")
        params = {k: v for k, v in step.items() if k != "method"}
        spec = get_method(str(step["method"]))
        if spec.name == "none":
            continue
        out.append({"method": spec.name, **spec.validate(params)})
    return out


def _parse_step(text: str) -> dict:
    text = text.strip()
    name, _, rest = text.partition(":")
    step: dict = {"method": name.strip()}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise PlanError(f"plan step {text!r}: expected key=value, got {item!r}")
        step[key.strip()] = value.strip()
    return step


def format_plan(plan: list[dict]) -> str:
    """The CLI form of a plan (inverse of parse_plan for validated plans)."""
    if not plan:
        return "none"
    parts = []
    for step in plan:
        args = ",".join(f"{k}={v}" for k, v in step.items() if k != "method" and v is not None)
        parts.append(step["method"] + (":" + args if args else ""))
    return "+".join(parts)


def build_stages(plan: list[dict], model_info: Any) -> list[Stage]:
    """Stages for a validated plan, checked against the model (DESIGN: plan validation).

    Pre-LLM stages must come before any layer stage; layer stages must have ascending layers
    inside ``1..num_layers-1``. A stage marked ``yields_to_later_layer_stage`` is left out when a
    later plan step has a layer stage of its own.
    """
    built: list[list[Stage]] = []
    for step in plan:
        spec = get_method(step["method"])
        params = {k: v for k, v in step.items() if k != "method"}
        built.append(spec.build(params, model_info))
    stages: list[Stage] = []
    for i, group in enumerate(built):
        # a method's own in-LLM stage may yield to a later step's (HoliTom's inner merging, replaced
        # by ShaRP in ShaRP Table 3): it is dropped when a later plan step brings a layer stage
        later = any(s.kind == "layer" for g in built[i + 1:] for s in g)
        stages.extend(s for s in group if not (later and getattr(s, "yields_to_later_layer_stage", False)))
    n_layers = int(model_info.num_layers)
    seen_layer = False
    last_layer = 0
    for st in stages:
        if st.kind == "pre" and seen_layer:
            raise PlanError(f"{st.method}: a pre-LLM stage cannot follow a layer stage")
        if st.kind == "layer":
            seen_layer = True
            layer = getattr(st, "layer")
            if not 1 <= layer < n_layers:
                raise PlanError(f"{st.method}: layer {layer} is out of range for a model with {n_layers} "
                                f"layers (valid: 1..{n_layers - 1})")
            if layer < last_layer:
                raise PlanError(f"{st.method}: layer {layer} comes after layer {last_layer}; "
                                "layer stages must be in ascending layer order")
            last_layer = layer
    return stages
