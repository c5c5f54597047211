"""What ComfyUI's classic (V1) node API says about a node class, read without ComfyUI.

The runtime, the UI-to-API converter and the pack's self-check all need the same answers:
which inputs a class declares (in ``INPUT_TYPES`` order), which of them are widgets, and
whether a produced type may feed an expected one.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Types ComfyUI's frontend turns into widgets (a list type is a COMBO widget).
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
# Legacy frontends add a "control after generate" value after these INT widgets unasked.
SEED_WIDGET_NAMES = frozenset({"seed", "noise_seed"})


@dataclass(frozen=True)
class InputSpec:
    """One declared input: its name, type (a str, or the list of COMBO choices), options, section."""

    name: str
    type: Any
    options: dict
    section: str  # "required" | "optional" | "hidden"

    @functools.cached_property
    def type_name(self) -> str:
        return "COMBO" if isinstance(self.type, (list, tuple)) else str(self.type)

    @property
    def choices(self) -> list | None:
        if isinstance(self.type, (list, tuple)):
            return list(self.type)
        if self.type == "COMBO":
            return list(self.options.get("options", []))
        return None

    @functools.cached_property
    def is_widget(self) -> bool:
        return self.section != "hidden" and self.type_name in WIDGET_TYPES and not self.options.get("forceInput")

    @functools.cached_property
    def has_control_value(self) -> bool:
        """True when the frontend serialises an extra 'control_after_generate' value after this widget."""
        if not self.is_widget or self.type_name not in ("INT", "FLOAT", "COMBO"):
            return False
        flag = self.options.get("control_after_generate")
        if flag is not None:
            return bool(flag)
        return self.type_name == "INT" and self.name in SEED_WIDGET_NAMES


_memo: contextvars.ContextVar[dict | None] = contextvars.ContextVar("videoprune_spec_memo", default=None)


@contextmanager
def memoized():
    """Within this block each class's ``INPUT_TYPES()`` is read once (it may scan folders)."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def input_specs(cls: type) -> list[InputSpec]:
    """The inputs ``cls.INPUT_TYPES()`` declares, required first, in declaration order."""
    memo = _memo.get()
    if memo is not None:
        if cls not in memo:
            memo[cls] = _read_specs(cls)
        return memo[cls]
    return _read_specs(cls)


def _read_specs(cls: type) -> list[InputSpec]:
    declared = cls.INPUT_TYPES()
    out = []
    for section in ("required", "optional", "hidden"):
        for name, spec in (declared.get(section) or {}).items():
            if section == "hidden":
                out.append(InputSpec(name, spec if isinstance(spec, str) else spec[0], {}, section))
                continue
            typ = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out.append(InputSpec(name, typ, opts, section))
    return out


def widget_slots(cls: type) -> list[str | None]:
    """Names of the values in a UI node's ``widgets_values``, in order; None marks a control value."""
    memo = _memo.get()
    if memo is not None:
        key = (cls, "widget_slots")
        if key not in memo:
            memo[key] = _widget_slots(cls)
        return memo[key]
    return _widget_slots(cls)


def _widget_slots(cls: type) -> list[str | None]:
    slots: list[str | None] = []
    for spec in input_specs(cls):
        if spec.is_widget:
            slots.append(spec.name)
            if spec.has_control_value:
                slots.append(None)
    return slots


def types_compatible(received: Any, expected: Any) -> bool:
    """Whether an output of type ``received`` may feed an input of type ``expected``.

    Same rule as ComfyUI: equal, or a ``*`` wildcard on either side, or comma-separated unions
    that overlap.
    """
    if received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return "*" in got or "*" in want or bool(got & want)


def is_output_node(cls: type) -> bool:
    return getattr(cls, "OUTPUT_NODE", False) is True


@functools.lru_cache(maxsize=1024)
def _accepted(fn) -> tuple[frozenset, bool]:
    params = inspect.signature(fn).parameters
    return frozenset(params), any(p.kind is p.VAR_KEYWORD for p in params.values())


def hook_arguments(fn, inputs: dict) -> dict:
    """The widget values a class hook (``VALIDATE_INPUTS``, ``IS_CHANGED``) names (all of them when
    it takes ``**kwargs``); links are not known before running, so never passed."""
    names, takes_all = _accepted(fn)
    return {k: v for k, v in inputs.items() if not isinstance(v, list) and (takes_all or k in names)}


def call_with_widgets(fn, inputs: dict):
    return fn(**hook_arguments(fn, inputs))
