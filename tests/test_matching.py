"""FLOPs-matched comparisons: reference plans, the shared monotone solver, each method's knob solved
to a target equivalent retention, and unreachable targets refused with their reachable range."""
from __future__ import annotations

import pytest

from pruning_core.errors import PlanError
from pruning_core.flops import get_preset
from pruning_core.matching import (Unreachable, analytic_measure, engine_measure, knob_for, match_step,
                                   matchable_methods, reference_flops, solve_rising)

OV7B = get_preset("llava-onevision-7b")
N = 32 * 196


def test_fastv_k2_reference_is_sharp_table1_11_tflops():
    d, m, L = OV7B.hidden_size, OV7B.intermediate_size, OV7B.num_layers
    assert reference_flops("fastv", 0.25, 0, N, L, d, m) / 1e12 == pytest.approx(11.0, abs=0.01)
    assert reference_flops("fastv", 0.20, 0, N, L, d, m) / 1e12 == pytest.approx(9.31, abs=0.01)
    assert reference_flops("fastv", 1.0, 0, N, L, d, m) / 1e12 == pytest.approx(40.8, abs=0.05)


def test_constant_reference_is_r_in_every_layer():
    d, m, L = OV7B.hidden_size, OV7B.intermediate_size, OV7B.num_layers
    sharp = reference_flops("sharp", 0.3, 10, N, L, d, m)
    const = reference_flops("constant", 0.3, 10, N, L, d, m)
    assert const < sharp < reference_flops("fastv", 0.3, 10, N, L, d, m)


def test_unknown_match_is_a_plan_error():
    with pytest.raises(PlanError, match="match must be one of"):
        reference_flops("pdrop", 0.3, 0, N, 28, 8, 8)


def test_solve_rising_finds_the_largest_value_within_the_goal():
    x, status = solve_rising(lambda v: v * v, 0.25, 0.0, 1.0)
    assert status == "ok" and x == pytest.approx(0.5, abs=1e-12)
    assert solve_rising(lambda v: v, 2.0, 0.0, 1.0) == (1.0, "all")
    assert solve_rising(lambda v: v + 1, 0.5, 0.0, 1.0) == (0.0, "none")


def test_knob_is_the_retention_parameter_unless_listed():
    assert knob_for("fastv").param == "retention"
    assert knob_for("dycoke").param == "k" and not knob_for("dycoke").rising
    assert dict(knob_for("pdrop").fixed) == {"match": "constant"}
    with pytest.raises(PlanError, match="cannot be FLOPs-matched"):
        knob_for("sharpv_memory")
    assert "fastv" in matchable_methods() and "none" not in matchable_methods()


@pytest.mark.parametrize("method", ["fastv", "feather", "sharp", "pdrop", "hieravid", "divprune", "random"])
@pytest.mark.parametrize("target", [0.25, 0.15, 0.10])
def test_analytic_match_lands_on_the_target(method, target):
    got = match_step(method, target, analytic_measure(OV7B, N), tol=0.002)
    assert got.achieved == pytest.approx(target, abs=0.002)
    again = analytic_measure(OV7B, N)([got.step])
    assert again == pytest.approx(got.achieved, abs=1e-9)


def test_fastv_at_nominal_25_percent_spends_more_than_equivalent_25_percent():
    nominal = analytic_measure(OV7B, N)([{"method": "fastv", "layer": 2, "retention": 0.25}])
    matched = match_step("fastv", 0.25, analytic_measure(OV7B, N))
    assert nominal > 0.3 and matched.step["retention"] < 0.25


def test_a_direct_knob_is_measured_once():
    got = match_step("divprune", 0.15, analytic_measure(OV7B, N))
    assert got.evaluations == 1 and got.step["retention"] == 0.15


def test_unreachable_target_names_the_reachable_range():
    # FastV at K=8 keeps everything in 8 of 28 layers: 10% equivalent is out of reach
    with pytest.raises(Unreachable, match=r"out of reach.*spans 0\.3") as e:
        match_step({"method": "fastv", "layer": 8}, 0.10, analytic_measure(OV7B, N))
    assert e.value.reachable[0] > 8 / 28


def test_pdrop_refusal_is_passed_on():
    with pytest.raises(PlanError, match="pdrop.*unreachable"):
        match_step({"method": "pdrop", "first_layer": 7}, 0.10, analytic_measure(OV7B, N))


def test_data_dependent_plans_are_refused_by_the_analytic_measure():
    with pytest.raises(PlanError, match="depend on the video"):
        analytic_measure(OV7B, N)([{"method": "dycoke"}])


def test_engine_measure_solves_dycoke_merge_share(tiny_llava):
    measure = engine_measure(tiny_llava.engine, [tiny_llava.prep])
    lo = measure([{"method": "dycoke", "k": 1.0, "kv_prune": False}])
    hi = measure([{"method": "dycoke", "k": 0.0, "kv_prune": False}])
    target = 0.5 * (lo + hi)
    got = match_step({"method": "dycoke", "kv_prune": False}, target, measure, tol=0.03)
    assert got.achieved == pytest.approx(target, abs=0.03)
    assert 0.0 < got.step["k"] < 1.0


def test_target_outside_zero_one_is_a_plan_error():
    with pytest.raises(PlanError, match=r"in \(0, 1\]"):
        match_step("fastv", 0.0, analytic_measure(OV7B, N))
