"""FLOAT widgets keep the paper values under ComfyUI's frontend rule.

The frontend (1.35) ignores ``precision``: it shows ``decimals(step)`` decimals and rounds every
typed value to ``10 ** -decimals(step)``. These tests apply that rule to the widget specs the pack
generates for every registry parameter.
"""
from __future__ import annotations

import math
import re

import pytest

from nodes.pack import param_input
from pruning_core.registry import methods


def frontend_precision(step: float) -> int:
    """The frontend's display precision for a step (``Math.max(-Math.floor(Math.log10(step)), 0)``)."""
    return max(-math.floor(math.log10(step)), 0)


def frontend_edit(opts: dict, typed: float) -> tuple[float, str]:
    """What the frontend stores and shows after a user types ``typed`` into a FLOAT widget."""
    quantum = 10.0 ** -frontend_precision(opts["step"])
    stored = min(max(round(typed / quantum) * quantum, opts["min"]), opts["max"])
    return stored, f"{stored:.{frontend_precision(opts['step'])}f}"


def float_params():
    for spec in methods().values():
        for p in spec.params:
            if p.type == "float" and not p.optional:
                yield pytest.param(spec.name, p, id=f"{spec.name}.{p.name}")


def quoted_values(p) -> list[float]:
    """Numbers the tooltip and paper reference quote for this parameter, inside its range."""
    text = f"{p.tooltip} {p.ref}"
    found = [float(m) / 100 for m in re.findall(r"(\d+(?:\.\d+)?)\s*%", text)]
    found += [float(m) for m in re.findall(r"(?<![\d.])(\d*\.\d+)(?![\d.%])", text)]
    return [v for v in found if (p.min is None or v >= p.min) and (p.max is None or v <= p.max)]


@pytest.mark.parametrize("method,p", list(float_params()))
def test_paper_default_is_shown_and_kept_exactly(method, p):
    typ, opts = param_input(p)
    assert typ == "FLOAT"
    stored, shown = frontend_edit(opts, p.default)
    assert stored == pytest.approx(p.default, abs=1e-12)
    assert float(shown) == pytest.approx(p.default, abs=1e-12), f"{method}.{p.name} shows {shown}"


@pytest.mark.parametrize("method,p", list(float_params()))
def test_values_quoted_in_tooltip_and_reference_survive_typing(method, p):
    _, opts = param_input(p)
    for v in quoted_values(p):
        stored, _ = frontend_edit(opts, v)
        assert stored == pytest.approx(v, abs=1e-12), f"{method}.{p.name}: typed {v} becomes {stored}"


@pytest.mark.parametrize("method,p", list(float_params()))
def test_step_is_a_power_of_ten_that_precision_and_round_agree_with(method, p):
    _, opts = param_input(p)
    d = frontend_precision(opts["step"])
    assert opts["step"] == pytest.approx(10.0 ** -d, rel=1e-12)
    assert opts["precision"] == d and opts["round"] == opts["step"]
    assert frontend_edit(opts, opts["min"])[0] >= opts["min"]


@pytest.mark.parametrize("method,name,typed,shown", [
    ("sharp", "retention", 0.235, "0.235"),
    ("sharp", "retention", 0.124, "0.124"),
    ("visionzip", "dominant_ratio", 0.84375, "0.84375"),
    ("divprune", "retention", 0.098, "0.098"),
    ("sharp", "beta", 0.008, "0.008"),
])
def test_issue_values_type_and_show_exactly(method, name, typed, shown):
    p = next(q for q in methods()[method].params if q.name == name)
    stored, text = frontend_edit(param_input(p)[1], typed)
    assert text == shown and stored == pytest.approx(typed, abs=1e-12)


def test_open_minimum_stays_excluded_at_the_widget_resolution():
    p = next(q for q in methods()["sharp"].params if q.name == "retention")
    opts = param_input(p)[1]
    assert 0.0 < opts["min"] == opts["step"]
    assert frontend_edit(opts, 0.0)[0] > 0.0
