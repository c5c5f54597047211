"""The headless graph runtime: validation in ComfyUI's error shape, execution, caching, interruption."""
from __future__ import annotations

import json

import pytest

import runtime_fakes as F
from nodes.errors import Interrupted, NodeExecutionError, WorkflowError
from nodes.runtime import Runtime


@pytest.fixture(autouse=True)
def _reset():
    F.CALLS.clear()
    F.HOOKS.clear()


@pytest.fixture
def rt():
    return Runtime(F.CLASSES)


def chain(value=3, b=4, extra=None):
    """Number(1) → Add(2) → Show(3)."""
    p = {"1": {"class_type": "Number", "inputs": {"value": value}},
         "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": b}},
         "3": {"class_type": "Show", "inputs": {"value": ["2", 0], "label": "sum="}}}
    p.update(extra or {})
    return p


def errors_of(exc_info, node_id):
    return [e["type"] for e in exc_info.value.payload["node_errors"][node_id]["errors"]]


# ---------------------------------------------------------------- execution

def test_runs_the_chain_and_returns_the_output_nodes_ui(rt):
    res = rt.run(chain())
    assert res.ui == {"3": {"text": ["sum=7"]}}
    assert res.outputs["3"] == (7,)


def test_nodes_run_in_topological_order(rt):
    rt.run(chain())
    assert F.CALLS == ["Number", "Add", "Show3"]


def test_nodes_no_output_needs_are_not_executed(rt):
    res = rt.run(chain(extra={"9": {"class_type": "Number", "inputs": {"value": 50}}}))
    assert "9" not in res.executed and F.CALLS.count("Number") == 1


def test_only_the_requested_outputs_run(rt):
    p = chain(extra={"4": {"class_type": "Show", "inputs": {"value": ["1", 0]}}})
    res = rt.run(p, outputs=["4"])
    assert set(res.executed) == {"1", "4"} and "Add" not in F.CALLS


def test_hidden_unique_id_is_passed(rt):
    rt.run(chain())
    assert "Show3" in F.CALLS


def test_every_executed_node_has_a_timing(rt):
    res = rt.run(chain())
    assert set(res.timings_ms) == {"1", "2", "3"} and all(v >= 0 for v in res.timings_ms.values())
    assert 0 <= res.overhead_ms <= res.total_ms


def test_unchanged_rerun_executes_nothing(rt):
    rt.run(chain())
    F.CALLS.clear()
    res = rt.run(chain())
    assert res.executed == [] and sorted(res.cached) == ["1", "2", "3"] and F.CALLS == []
    assert res.ui == {"3": {"text": ["sum=7"]}}


def test_changed_widget_reruns_only_downstream_nodes(rt):
    rt.run(chain(b=4))
    F.CALLS.clear()
    res = rt.run(chain(b=5))
    assert res.executed == ["2", "3"] and res.cached == ["1"]
    assert res.ui["3"] == {"text": ["sum=8"]}


def test_renumbered_but_identical_node_is_served_from_cache(rt):
    rt.run(chain())
    p = chain()
    p["7"] = p.pop("1")
    p["2"]["inputs"]["a"] = ["7", 0]
    res = rt.run(p)
    assert "7" in res.cached


def test_is_changed_nan_forces_a_rerun(rt):
    class Volatile(F.Number):
        @classmethod
        def IS_CHANGED(cls, value):
            return float("nan")
    rt.classes["Volatile"] = Volatile
    p = chain()
    p["1"]["class_type"] = "Volatile"
    rt.run(p)
    res = rt.run(p)
    assert res.executed == ["1", "2", "3"]


def test_progress_reports_each_node_and_in_node_progress(rt):
    events = []
    p = chain(extra={"4": {"class_type": "Long", "inputs": {"a": ["1", 0], "steps": 3}},
                     "5": {"class_type": "Show", "inputs": {"value": ["4", 0]}}})
    rt.run(p, progress=lambda ev, data: events.append((ev, data)))
    executing = [d["node"] for ev, d in events if ev == "executing"]
    assert executing == ["1", "2", "3", "4", "5"]
    assert [(d["value"], d["max"]) for ev, d in events if ev == "progress"] == [(1, 3), (2, 3), (3, 3)]
    assert events[-1][0] == "done"


def test_progress_reports_cached_nodes(rt):
    rt.run(chain())
    events = []
    rt.run(chain(), progress=lambda ev, data: events.append((ev, data)))
    assert ("cached", {"nodes": ["1", "2", "3"]}) in events


def test_node_that_raises_is_named_and_runtime_stays_usable(rt):
    p = chain(extra={"4": {"class_type": "Boom", "inputs": {"a": ["1", 0]}},
                     "5": {"class_type": "Show", "inputs": {"value": ["4", 0]}}})
    with pytest.raises(NodeExecutionError) as ei:
        rt.run(p)
    assert ei.value.node_id == "4" and ei.value.class_type == "Boom"
    assert "node 4 (Boom)" in str(ei.value) and "blew up" in str(ei.value)
    F.HOOKS["boom"] = False
    F.CALLS.clear()
    res = rt.run(p)
    assert res.ui["5"] == {"text": ["3"]} and "Number" not in F.CALLS  # upstream served from cache


def test_wrong_number_of_returned_values_is_a_node_error(rt):
    with pytest.raises(NodeExecutionError, match="RETURN_TYPES declares 2"):
        rt.run({"1": {"class_type": "WrongArity", "inputs": {}}})


# ---------------------------------------------------------------- interruption

def test_interrupt_between_nodes_stops_before_the_next_node(rt):
    class Stopper(F.Number):
        def make(self, value):
            rt.interrupt()
            return super().make(value)
    rt.classes["Stopper"] = Stopper
    p = chain()
    p["1"]["class_type"] = "Stopper"
    with pytest.raises(Interrupted) as ei:
        rt.run(p)
    assert ei.value.node_id == "2" and "Add" not in F.CALLS


def test_interrupt_inside_a_node_stops_its_long_work(rt):
    F.HOOKS.update(runtime=rt, interrupt_at=1)
    p = {"1": {"class_type": "Number", "inputs": {"value": 1}},
         "2": {"class_type": "Long", "inputs": {"a": ["1", 0], "steps": 10}},
         "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    with pytest.raises(Interrupted) as ei:
        rt.run(p)
    assert ei.value.node_id == "2" and F.CALLS == ["Number", "Long0", "Long1"]


def test_runtime_runs_again_after_an_interruption(rt):
    F.HOOKS.update(runtime=rt, interrupt_at=0)
    p = {"1": {"class_type": "Number", "inputs": {"value": 1}},
         "2": {"class_type": "Long", "inputs": {"a": ["1", 0], "steps": 2}},
         "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    with pytest.raises(Interrupted):
        rt.run(p)
    F.HOOKS.clear()
    res = rt.run(p)
    assert res.ui["3"] == {"text": ["1"]} and res.cached == ["1"]


# ---------------------------------------------------------------- validation errors

def test_unknown_node_type_is_missing_node_type(rt):
    p = chain(extra={"4": {"class_type": "NoSuchNode", "inputs": {}}})
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    err = ei.value.payload["error"]
    assert err["type"] == "missing_node_type" and err["extra_info"]["node_id"] == "4"
    assert "NoSuchNode" in err["message"]
    assert errors_of(ei, "4") == ["missing_node_type"]


def test_node_without_class_type_is_missing_node_type(rt):
    with pytest.raises(WorkflowError) as ei:
        rt.run(chain(extra={"4": {"inputs": {}}}))
    assert ei.value.payload["error"]["type"] == "missing_node_type"


def test_no_output_node_is_prompt_no_outputs(rt):
    with pytest.raises(WorkflowError) as ei:
        rt.run({"1": {"class_type": "Number", "inputs": {"value": 1}}})
    assert ei.value.payload["error"]["type"] == "prompt_no_outputs"
    assert ei.value.payload["node_errors"] == {}


def test_missing_required_input(rt):
    p = chain()
    del p["2"]["inputs"]["b"]
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    entry = ei.value.payload["node_errors"]["2"]
    assert entry["errors"][0]["type"] == "required_input_missing"
    assert entry["errors"][0]["extra_info"]["input_name"] == "b"
    assert entry["class_type"] == "Add" and entry["dependent_outputs"] == ["3"]
    assert ei.value.payload["error"]["type"] == "prompt_outputs_failed_validation"


def test_missing_optional_input_is_fine(rt):
    p = chain()
    del p["3"]["inputs"]["label"]
    assert rt.run(p).ui["3"] == {"text": ["7"]}


def test_link_to_a_missing_node_is_bad_linked_input(rt):
    p = chain()
    p["2"]["inputs"]["a"] = ["42", 0]
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    assert errors_of(ei, "2") == ["bad_linked_input"]
    assert "42" in ei.value.payload["node_errors"]["2"]["errors"][0]["message"]


def test_link_to_a_slot_out_of_range_is_bad_linked_input(rt):
    p = chain()
    p["2"]["inputs"]["a"] = ["1", 3]
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    assert errors_of(ei, "2") == ["bad_linked_input"]


def test_link_of_wrong_length_is_bad_linked_input(rt):
    p = chain()
    p["2"]["inputs"]["a"] = ["1", 0, 0]
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    assert errors_of(ei, "2") == ["bad_linked_input"]


def test_linked_type_mismatch_is_return_type_mismatch(rt):
    p = chain(extra={"5": {"class_type": "Image", "inputs": {}}})
    p["2"]["inputs"]["a"] = ["5", 0]
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    err = ei.value.payload["node_errors"]["2"]["errors"][0]
    assert err["type"] == "return_type_mismatch" and err["extra_info"]["received_type"] == "IMAGE"


def test_value_below_min(rt):
    with pytest.raises(WorkflowError) as ei:
        rt.run(chain(b=-11))
    err = ei.value.payload["node_errors"]["2"]["errors"][0]
    assert err["type"] == "value_smaller_than_min" and err["message"] == "Value -11 smaller than min of -10"


def test_value_above_max(rt):
    with pytest.raises(WorkflowError) as ei:
        rt.run(chain(value=101))
    assert errors_of(ei, "1") == ["value_bigger_than_max"]


def test_value_not_in_list(rt):
    p = {"1": {"class_type": "Pick", "inputs": {"mode": "medium", "flag": True, "scale": 0.5}},
         "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    err = ei.value.payload["node_errors"]["1"]["errors"][0]
    assert err["type"] == "value_not_in_list" and "'medium' not in ['fast', 'slow']" in err["details"]


def test_unconvertible_value_is_invalid_input_type(rt):
    with pytest.raises(WorkflowError) as ei:
        rt.run(chain(value="many"))
    assert errors_of(ei, "1") == ["invalid_input_type"]


def test_boolean_widget_rejects_non_booleans(rt):
    p = {"1": {"class_type": "Pick", "inputs": {"mode": "fast", "flag": "maybe", "scale": 0.5}},
         "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    assert errors_of(ei, "1") == ["invalid_input_type"]


def test_literal_for_a_link_only_input_is_invalid_input_type(rt):
    p = chain()
    p["2"]["inputs"]["a"] = 5
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    assert errors_of(ei, "2") == ["invalid_input_type"]


def test_widget_values_are_converted_to_their_declared_type(rt):
    p = {"1": {"class_type": "Pick", "inputs": {"mode": "slow", "flag": "false", "scale": "0.3"}},
         "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    assert rt.run(p).outputs["1"] == (103,)


def test_cycle_is_dependency_cycle_on_every_node_in_it(rt):
    p = {"1": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 1}},
         "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
         "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    assert errors_of(ei, "1") == ["dependency_cycle"] and errors_of(ei, "2") == ["dependency_cycle"]
    assert "3" not in ei.value.payload["node_errors"]


def test_custom_validation_failure(rt):
    p = {"1": {"class_type": "Strict", "inputs": {"value": 3}},
         "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    err = ei.value.payload["node_errors"]["1"]["errors"][0]
    assert err["type"] == "custom_validation_failed" and "even" in err["details"]


def test_broken_declarations_are_exception_during_validation(rt):
    p = {"1": {"class_type": "Broken", "inputs": {}},
         "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    assert errors_of(ei, "1") == ["exception_during_validation"]


def test_error_names_every_dependent_output(rt):
    p = chain(value=200, extra={"4": {"class_type": "Show", "inputs": {"value": ["1", 0]}}})
    with pytest.raises(WorkflowError) as ei:
        rt.run(p)
    assert ei.value.payload["node_errors"]["1"]["dependent_outputs"] == ["3", "4"]


def test_error_message_is_one_line_naming_the_node(rt):
    with pytest.raises(WorkflowError) as ei:
        rt.run(chain(value=200))
    assert str(ei.value) == "node 1 (Number): Value 200 bigger than max of 100 (value)"


def test_non_strict_runs_the_outputs_that_validated(rt):
    p = chain(extra={"4": {"class_type": "Boom", "inputs": {}},
                     "5": {"class_type": "Show", "inputs": {"value": ["4", 0]}}})
    res = rt.run(p, strict=False)
    assert res.ui == {"3": {"text": ["sum=7"]}}
    assert res.node_errors["4"]["dependent_outputs"] == ["5"]


def test_validation_does_not_execute_anything(rt):
    val = rt.validate(chain(value=200))
    assert not val.ok and F.CALLS == []


def test_running_never_edits_the_callers_prompt(rt):
    p = chain(value="3")
    before = json.dumps(p, sort_keys=True)
    rt.run(p)
    assert json.dumps(p, sort_keys=True) == before


def test_is_changed_value_change_reruns_the_node(rt):
    class Watched(F.Number):
        @classmethod
        def IS_CHANGED(cls, value):
            return F.HOOKS.get("version", 0)
    rt.classes["Watched"] = Watched
    p = chain()
    p["1"]["class_type"] = "Watched"
    rt.run(p)
    assert rt.run(p).executed == []
    F.HOOKS["version"] = 1
    assert rt.run(p).executed == ["1", "2", "3"]


def test_independent_nodes_run_in_numeric_id_order(rt):
    p = {"10": {"class_type": "Number", "inputs": {"value": 1}},
         "9": {"class_type": "Number", "inputs": {"value": 2}},
         "11": {"class_type": "Show", "inputs": {"value": ["10", 0]}},
         "2": {"class_type": "Show", "inputs": {"value": ["9", 0]}}}
    assert rt.run(p).executed == ["9", "2", "10", "11"]
