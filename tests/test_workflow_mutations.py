"""Malformed workflows are refused in one line naming the node (or saying it is no workflow), never a traceback.

One test per class of malformed input the audit found, then a seeded, time-bounded hypothesis
run of the mutation operators of ``tools/mutate_workflows.py`` over every example workflow.
"""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from nodes.pack import NODE_CLASS_MAPPINGS
from nodes.runtime import Runtime
from nodes.workflow import WorkflowFormatError, load_json, to_api

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("mutate_workflows", REPO / "tools" / "mutate_workflows.py")
mw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mw)

EXAMPLE = json.loads((REPO / "example_workflows" / "sharp_vs_fastv.json").read_text())


@pytest.fixture(scope="module")
def rt():
    return Runtime()


def _answer_node(wf: dict) -> dict:
    return next(n for n in wf["nodes"] if n["type"] == "VideoPruneAnswer")


def _refusal(rt, data, tmp_path) -> str:
    path = tmp_path / "wf.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(WorkflowFormatError) as ei:
        rt.validate(path)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def test_nesting_deeper_than_the_recursion_limit_is_not_a_workflow(rt, tmp_path):
    assert _refusal(rt, "[" * 100_000 + "]" * 100_000, tmp_path).startswith("not a workflow")
    assert "nested deeper" in _refusal(rt, {"1": {"class_type": "X", "inputs": {"v": mw._deep(80)}}}, tmp_path)


@pytest.mark.parametrize("inputs", [{"model": None}, "model", 3, [5], ["model"]])
def test_node_inputs_that_are_not_a_list_of_slot_objects_name_the_node(rt, tmp_path, inputs):
    wf = copy.deepcopy(EXAMPLE)
    node = _answer_node(wf)
    node["inputs"] = inputs
    assert _refusal(rt, wf, tmp_path).startswith(f"node {node['id']}: ")


@pytest.mark.parametrize("link", ["abc", [1], 1.5, True, {"id": 1}])
def test_a_slot_link_that_is_not_a_link_id_names_the_node_and_input(rt, tmp_path, link):
    wf = copy.deepcopy(EXAMPLE)
    node = _answer_node(wf)
    node["inputs"][0]["link"] = link
    assert _refusal(rt, wf, tmp_path).startswith(f"node {node['id']}: input 'model': 'link'")


@pytest.mark.parametrize("values", [5, True, "abc"])
def test_widgets_values_that_are_not_a_list_or_object_name_the_node(rt, tmp_path, values):
    wf = copy.deepcopy(EXAMPLE)
    node = _answer_node(wf)
    node["widgets_values"] = values
    assert _refusal(rt, wf, tmp_path).startswith(f"node {node['id']}: 'widgets_values'")


@pytest.mark.parametrize("typ", [["VideoPruneAnswer"], 5, None, ""])
def test_a_node_type_that_is_not_a_name_names_the_node(rt, tmp_path, typ):
    wf = copy.deepcopy(EXAMPLE)
    node = _answer_node(wf)
    node["type"] = typ
    assert _refusal(rt, wf, tmp_path).startswith(f"node {node['id']}: 'type' must be a node type name")


def test_an_input_slot_without_a_name_names_the_node(rt, tmp_path):
    wf = copy.deepcopy(EXAMPLE)
    node = _answer_node(wf)
    del node["inputs"][1]["name"]
    assert _refusal(rt, wf, tmp_path) == f"node {node['id']}: input slot 1 has no name"


def test_duplicate_ui_node_ids_are_refused_not_overwritten(rt, tmp_path):
    wf = copy.deepcopy(EXAMPLE)
    wf["nodes"].append(copy.deepcopy(_answer_node(wf)))
    assert "duplicate node id" in _refusal(rt, wf, tmp_path)


def test_duplicate_api_node_ids_are_refused_not_overwritten(rt, tmp_path):
    text = '{"1": {"class_type": "VideoPruneLoadModel", "inputs": {}}, "1": {"class_type": "X", "inputs": {}}}'
    assert _refusal(rt, text, tmp_path).startswith("node 1: its id appears twice")


@pytest.mark.parametrize("ct", [["A"], 3, {"a": 1}])
def test_an_api_class_type_that_is_not_a_name_names_the_node(rt, tmp_path, ct):
    assert _refusal(rt, {"7": {"class_type": ct, "inputs": {}}}, tmp_path).startswith("node 7: 'class_type'")


@pytest.mark.parametrize("value", [[], [1], ["1", 0, 2], [None, None], ["1", "x"]])
def test_an_api_list_value_that_is_not_a_link_is_a_bad_linked_input_of_that_node(rt, value):
    prompt = to_api(EXAMPLE, NODE_CLASS_MAPPINGS)
    answer = next(k for k, n in prompt.items() if n["class_type"] == "VideoPruneAnswer")
    prompt[answer]["inputs"]["frames"] = value
    val = rt.validate(prompt)
    (err,) = val.node_errors[answer]["errors"]
    assert err["type"] == "bad_linked_input" and err["extra_info"]["input_name"] == "frames"


def test_an_undeclared_input_holding_a_broken_link_does_not_break_signatures(rt):
    prompt = to_api(EXAMPLE, NODE_CLASS_MAPPINGS)
    answer = next(k for k, n in prompt.items() if n["class_type"] == "VideoPruneAnswer")
    prompt[answer]["inputs"]["junk"] = ["999", 0]
    assert rt.validate(prompt).ok
    assert rt._signature(answer, rt.load(prompt), {}) is not None


def test_load_json_reads_a_normal_example_unchanged():
    assert load_json(REPO / "example_workflows" / "sharp_vs_fastv.json") == EXAMPLE


# ---------------------------------------------------------------- property: no mutant escapes

BASES = mw.bases()


@seed(13)
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.integers(0, len(BASES) - 1))
def test_no_mutant_of_an_example_ends_in_a_traceback_or_an_unplaced_message(rt, tmp_path, data, which):
    choose = mw.Chooser(lambda n: data.draw(st.integers(0, n - 1)))
    text = mw.mutate_text(BASES[which][1], choose)
    outcome, message = mw.check_cli(text, rt, tmp_path)
    assert outcome not in ("traceback", "bad_message"), message


@pytest.mark.parametrize("value", ["[]", "[1]", '["x"]', "[" * 5000 + "]" * 5000, "[" * 70 + "]" * 70])
def test_cli_overrides_with_list_values_are_refused_in_one_line(tmp_path, capsys, value):
    from nodes.__main__ import main
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(EXAMPLE))
    answer = str(_answer_node(EXAMPLE)["id"])
    assert main(["validate", str(path), "--set", f"{answer}.frames={value}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and (f"node {answer}" in err or "--set" in err)
