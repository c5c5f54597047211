"""The Compare tab's method controls, generated from the method registry (one registry, three faces).

``controls_for`` turns each registered ``Param`` into a description of one input control (kind,
label, default, range, tooltip); ``demo_app`` only maps kinds to gradio components. The global
retention slider stands in for every method's own ``retention`` parameter, so that parameter
gets no control of its own. ``plan_step`` turns control values back into a validated plan step,
exactly as the method's ComfyUI node would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from nodes.pack import AUTO
from nodes.pack import plan_step as node_plan_step
from pruning_core.errors import PlanError
from pruning_core.registry import MethodSpec, Param, get_method, methods

GLOBAL_PARAMS = ("retention",)
DEFAULT_METHODS = ("fastv", "sharp")


@dataclass(frozen=True)
class Control:
    """One generated input: ``kind`` is checkbox | dropdown | slider | number | text."""

    method: str
    name: str
    kind: str
    label: str
    value: Any
    info: str
    options: dict = field(default_factory=dict)   # minimum/maximum/step/precision/choices

    @property
    def key(self) -> str:
        return f"{self.method}.{self.name}"


def selectable_methods() -> list[MethodSpec]:
    """Every registered method except ``none`` (the unpruned reference is always run)."""
    return [m for m in methods().values() if m.name != "none"]


def method_choices() -> list[tuple[str, str]]:
    """(label, name) pairs for the method multi-select."""
    kinds = {"pre": "pre-LLM", "layer": "layer", "cache": "KV cache", "mixed": "mixed"}
    return [(f"{m.title} ({kinds.get(m.kind, m.kind)})", m.name) for m in selectable_methods()]


def default_methods() -> list[str]:
    names = {m.name for m in selectable_methods()}
    chosen = [n for n in DEFAULT_METHODS if n in names]
    return chosen or sorted(names)[:2]


def has_retention(spec: MethodSpec) -> bool:
    return any(p.name == "retention" for p in spec.params)


LAYER_PARAMS = ("layer",)


def control_for(method: str, p: Param, num_layers: int | None = None) -> Control:
    """The control for one parameter. A bounded number becomes a slider, an unbounded one a number
    box; a parameter that may stay unset is a text box where ``auto`` leaves it to the method.
    With ``num_layers``, a layer index is capped at the loaded model's last layer."""
    info = f"{p.tooltip} [{p.ref}]" if p.ref else p.tooltip
    if p.optional:
        value = AUTO if p.default is None else str(p.default)
        return Control(method, p.name, "text", f"{p.name} (number or auto)", value, info)
    if p.type == "bool":
        return Control(method, p.name, "checkbox", p.name, bool(p.default), info)
    if p.type == "choice":
        return Control(method, p.name, "dropdown", p.name, p.default, info, {"choices": list(p.choices)})
    if p.type == "str":
        return Control(method, p.name, "text", p.name, str(p.default), info)
    step = p.step or (1 if p.type == "int" else 0.01)
    lo, hi = p.min, p.max
    if num_layers and p.name in LAYER_PARAMS and p.type == "int" and (hi is None or hi >= num_layers):
        hi = max(num_layers - 1, lo or 1)
    if p.min_exclusive and lo is not None:
        lo = lo + step
    bounded = lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) and (hi - lo) / step <= 1000
    opts: dict = {"step": step}
    if lo is not None:
        opts["minimum"] = lo
    if hi is not None:
        opts["maximum"] = hi
    if p.type == "int":
        opts["precision"] = 0
    value = int(p.default) if p.type == "int" else float(p.default)
    if hi is not None and value > hi:  # e.g. FastV's layer 2 on a 2-layer model: show what can run
        value = type(value)(hi)
    return Control(method, p.name, "slider" if bounded else "number", p.name, value, info, opts)


def controls_for(spec: MethodSpec, num_layers: int | None = None) -> list[Control]:
    """Controls of one method in declaration order, without the globally set parameters."""
    return [control_for(spec.name, p, num_layers) for p in spec.params if p.name not in GLOBAL_PARAMS]


def all_controls(num_layers: int | None = None) -> list[Control]:
    return [c for spec in selectable_methods() for c in controls_for(spec, num_layers)]


TARGET_PARAM = "target_retention"   # SharpV's optional budget: the global retention drives it unless set


def plan_step(method: str, values: Mapping[str, Any], retention: float | None) -> dict:
    """A validated plan step for ``method`` from control values (``auto`` → unset); the global
    ``retention`` replaces the method's own when it has one, and fills an optional
    ``target_retention`` the user left at ``auto`` (so SharpV runs at the same kept share as
    the others). Raises ``PlanError`` with one line."""
    spec = get_method(method)
    given = dict(values)
    if retention is not None:
        if has_retention(spec):
            given["retention"] = retention
        elif any(p.name == TARGET_PARAM for p in spec.params) and \
                str(given.get(TARGET_PARAM, AUTO)).strip().lower() in (AUTO, "", "none"):
            given[TARGET_PARAM] = retention
    return node_plan_step(spec, given)


def plan_steps(selected: Iterable[str], values: Mapping[str, Any], retention: float | None) -> list[dict]:
    """One plan step per selected method, from flat ``{"method.param": value}`` control values."""
    chosen = [m for m in dict.fromkeys(selected or [])]
    if not chosen:
        raise PlanError("pick at least one pruning method to compare with the unpruned run")
    steps = []
    for name in chosen:
        own = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"{name}.")}
        steps.append(plan_step(name, own, retention))
    return steps


def step_label(step: Mapping[str, Any]) -> str:
    """A short run name: the method's title and the parameters that differ from its defaults
    (retention always shown), e.g. ``FastV (retention=0.25)``."""
    spec = get_method(step["method"])
    shown = []
    for p in spec.params:
        v = step.get(p.name, p.default)
        if (p.name in GLOBAL_PARAMS and v is not None) or v != p.default:
            shown.append(f"{p.name}={_fmt(v)}")
    return f"{spec.title} ({', '.join(shown)})" if shown else spec.title


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
