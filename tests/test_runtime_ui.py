"""UI-format workflows convert to API prompts the way ComfyUI's frontend does; paths stay in their folders."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import runtime_fakes as F
from nodes.errors import WorkflowError
from nodes.paths import resolve_inside
from nodes.runtime import Runtime
from nodes.workflow import WorkflowFormatError, to_api
from pruning_core.errors import VideoError

INT_OUT = [{"name": "INT", "type": "INT", "links": []}]


def node(id_, type_, widgets=(), inputs=(), mode=0, outputs=INT_OUT):
    return {"id": id_, "type": type_, "widgets_values": list(widgets), "mode": mode,
            "inputs": [{"name": n, "type": t, "link": None, **({"widget": {"name": n}} if w else {})}
                       for n, t, w in inputs], "outputs": outputs}


def number(id_, value, mode=0):
    return node(id_, "Number", [value], mode=mode)


def add(id_, b, mode=0):
    return node(id_, "Add", [b], [("a", "INT", False)], mode=mode)


def show(id_, label=""):
    return node(id_, "Show", [label], [("value", "INT", False)])


@pytest.fixture(autouse=True)
def _reset():
    F.CALLS.clear()
    F.HOOKS.clear()


@pytest.fixture
def rt():
    return Runtime(F.CLASSES)


def base_ui(objects=False):
    return F.ui_workflow([number(1, 3), add(2, 4), show(3, "s=")],
                         [(1, 1, 0, 2, 0, "INT"), (2, 2, 0, 3, 0, "INT")], objects=objects)


def test_array_links_convert_to_api_links():
    p = to_api(base_ui(), F.CLASSES)
    assert p["2"]["inputs"] == {"b": 4, "a": ["1", 0]}
    assert p["3"]["inputs"] == {"label": "s=", "value": ["2", 0]}


def test_object_links_convert_like_array_links():
    assert to_api(base_ui(objects=True), F.CLASSES) == to_api(base_ui(), F.CLASSES)


def test_ui_workflow_runs(rt):
    assert rt.run(base_ui()).ui == {"3": {"text": ["s=7"]}}


def test_node_title_goes_to_meta():
    wf = base_ui()
    wf["nodes"][1]["title"] = "my adder"
    assert to_api(wf, F.CLASSES)["2"]["_meta"] == {"title": "my adder"}


def test_bypassed_node_passes_its_matching_input_through(rt):
    wf = F.ui_workflow([number(1, 3), add(2, 4, mode=4), show(3)],
                       [(1, 1, 0, 2, 0, "INT"), (2, 2, 0, 3, 0, "INT")])
    p = to_api(wf, F.CLASSES)
    assert "2" not in p and p["3"]["inputs"]["value"] == ["1", 0]
    assert rt.run(wf).ui["3"] == {"text": ["3"]}


def test_bypass_picks_the_first_input_of_the_wanted_type():
    # the bypassed node's slot-0 input is IMAGE; the INT input behind it is slot 1
    class Mixed(F.Add):
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"img": ("IMAGE",), "a": ("INT", {"forceInput": True})}}
    classes = {**F.CLASSES, "Mixed": Mixed}
    wf = F.ui_workflow([node(5, "Image", outputs=[{"name": "IMAGE", "type": "IMAGE"}]), number(1, 9),
                        node(2, "Mixed", inputs=[("img", "IMAGE", False), ("a", "INT", False)], mode=4), show(3)],
                       [(1, 5, 0, 2, 0, "IMAGE"), (2, 1, 0, 2, 1, "INT"), (3, 2, 0, 3, 0, "INT")])
    assert to_api(wf, classes)["3"]["inputs"]["value"] == ["1", 0]


def test_bypassed_node_without_matching_input_leaves_the_input_missing(rt):
    wf = F.ui_workflow([node(5, "Image", outputs=[{"name": "IMAGE", "type": "IMAGE"}]),
                        node(2, "Boom", inputs=[("a", "IMAGE", False)], mode=4), show(3)],
                       [(1, 5, 0, 2, 0, "IMAGE"), (2, 2, 0, 3, 0, "INT")])
    with pytest.raises(WorkflowError) as ei:
        rt.run(wf)
    assert ei.value.payload["node_errors"]["3"]["errors"][0]["type"] == "required_input_missing"


def test_muted_node_is_dropped_with_the_inputs_it_fed(rt):
    wf = F.ui_workflow([number(1, 3), add(2, 4, mode=2), show(3)],
                       [(1, 1, 0, 2, 0, "INT"), (2, 2, 0, 3, 0, "INT")])
    p = to_api(wf, F.CLASSES)
    assert "2" not in p and "value" not in p["3"]["inputs"]
    with pytest.raises(WorkflowError) as ei:
        rt.run(wf)
    assert ei.value.payload["node_errors"]["3"]["errors"][0]["type"] == "required_input_missing"


def test_muted_output_node_does_not_run(rt):
    wf = F.ui_workflow([number(1, 3), show(3), show(4)], [(1, 1, 0, 3, 0, "INT"), (2, 1, 0, 4, 0, "INT")])
    wf["nodes"][2]["mode"] = 2
    assert set(rt.run(wf).ui) == {"3"}


def test_reroutes_pass_links_through(rt):
    reroute = lambda i: node(i, "Reroute", inputs=[("", "*", False)], outputs=[{"name": "", "type": "INT"}])
    wf = F.ui_workflow([number(1, 5), reroute(10), reroute(11), show(3)],
                       [(1, 1, 0, 10, 0, "*"), (2, 10, 0, 11, 0, "*"), (3, 11, 0, 3, 0, "INT")])
    assert to_api(wf, F.CLASSES)["3"]["inputs"]["value"] == ["1", 0]
    assert rt.run(wf).ui["3"] == {"text": ["5"]}


def test_primitive_node_sets_the_widget_it_feeds(rt):
    prim = node(20, "PrimitiveNode", [7, "fixed"], outputs=[{"name": "INT", "type": "INT", "widget": {"name": "b"}}])
    wf = F.ui_workflow([number(1, 3), prim, node(2, "Add", [0], [("a", "INT", False), ("b", "INT", True)]), show(3)],
                       [(1, 1, 0, 2, 0, "INT"), (2, 20, 0, 2, 1, "INT"), (3, 2, 0, 3, 0, "INT")])
    p = to_api(wf, F.CLASSES)
    assert "20" not in p and p["2"]["inputs"]["b"] == 7
    assert rt.run(wf).ui["3"] == {"text": ["10"]}


def test_notes_are_ignored():
    wf = base_ui()
    wf["nodes"].append({"id": 30, "type": "Note", "mode": 0, "widgets_values": ["read me"], "inputs": [],
                        "outputs": []})
    wf["nodes"].append({"id": 31, "type": "MarkdownNote", "mode": 0, "widgets_values": ["# hi"]})
    assert set(to_api(wf, F.CLASSES)) == {"1", "2", "3"}


def test_seed_widgets_skip_their_control_after_generate_value():
    wf = F.ui_workflow([node(1, "Seeded", [11, "randomize", 2, 3, "fixed", 4])], [])
    assert to_api(wf, F.CLASSES)["1"]["inputs"] == {"seed": 11, "offset": 2, "jitter": 3, "last": 4}


def test_widget_values_may_be_a_dict_by_name():
    wf = F.ui_workflow([node(1, "Pick")], [])
    wf["nodes"][0]["widgets_values"] = {"scale": 0.2, "mode": "slow", "flag": False}
    assert to_api(wf, F.CLASSES)["1"]["inputs"] == {"mode": "slow", "flag": False, "scale": 0.2}


def test_linked_widget_input_takes_the_link_over_its_widget_value():
    wf = F.ui_workflow([number(1, 3), number(4, 9), node(2, "Add", [5], [("a", "INT", False), ("b", "INT", True)]),
                        show(3)], [(1, 1, 0, 2, 0, "INT"), (2, 4, 0, 2, 1, "INT"), (3, 2, 0, 3, 0, "INT")])
    assert to_api(wf, F.CLASSES)["2"]["inputs"]["b"] == ["4", 0]


def test_unknown_ui_node_type_is_reported_not_crashed(rt):
    wf = base_ui()
    wf["nodes"].append(node(9, "SomebodyElsesNode", [1]))
    with pytest.raises(WorkflowError) as ei:
        rt.run(wf)
    assert ei.value.payload["error"]["type"] == "missing_node_type"


def test_malformed_link_is_a_format_error():
    wf = base_ui()
    wf["links"].append([99, 1])
    with pytest.raises(WorkflowFormatError, match=r"not a workflow: links\[\d+\] is \[99, 1\]"):
        to_api(wf, F.CLASSES)


def test_api_prompt_wrapper_is_unwrapped():
    p = {"1": {"class_type": "Number", "inputs": {"value": 1}}}
    assert to_api({"prompt": p, "client_id": "x"}, F.CLASSES) == p


def test_workflow_file_runs_with_overrides(rt, tmp_path):
    f = tmp_path / "wf.json"
    f.write_text(json.dumps(base_ui()))
    assert rt.run(f, overrides=["2.b=10", '3.label="n="']).ui["3"] == {"text": ["n=13"]}


def test_override_of_a_missing_node_is_a_clear_error(rt):
    with pytest.raises(WorkflowFormatError, match="no node '8'"):
        rt.run(base_ui(), overrides=["8.value=1"])


def test_unreadable_workflow_file_is_a_clear_error(rt, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{nope")
    with pytest.raises(WorkflowFormatError, match="not valid JSON"):
        rt.run(f)


# ---------------------------------------------------------------- paths

def test_path_inside_the_folder_resolves(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"x")
    assert resolve_inside("clips/a.mp4", [tmp_path], "video", VideoError) == (tmp_path / "clips" / "a.mp4").resolve()


def test_dotdot_escape_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    with pytest.raises(VideoError, match="outside the allowed folder"):
        resolve_inside("../secret.mp4", [tmp_path / "in"], "video", VideoError)


def test_absolute_path_outside_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(VideoError, match="outside the allowed folder"):
        resolve_inside("/etc/passwd", [tmp_path / "in"], "video", VideoError)


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    os.symlink(tmp_path / "secret.mp4", tmp_path / "in" / "link.mp4")
    with pytest.raises(VideoError, match="outside the allowed folder"):
        resolve_inside("link.mp4", [tmp_path / "in"], "video", VideoError)


def test_missing_file_names_the_folder(tmp_path):
    with pytest.raises(VideoError, match=str(tmp_path)):
        resolve_inside("nope.mp4", [tmp_path], "video", VideoError)


def test_runtime_sources_use_no_eval_exec_or_pickle():
    src = "\n".join(p.read_text() for p in (Path(__file__).parent.parent / "nodes").glob("*.py"))
    for banned in ("eval(", "exec(", "pickle", "torch.load("):
        assert banned not in src, banned


def test_subgraph_node_asks_to_unpack_it_first():
    wf = base_ui()
    sg_id = "f2fdebf6-dfaf-43b6-9eb2-7f70613cfdc1"
    wf["nodes"].append(node(9, sg_id))
    wf["definitions"] = {"subgraphs": [{"id": sg_id, "nodes": [], "links": []}]}
    with pytest.raises(WorkflowFormatError, match="subgraph"):
        to_api(wf, F.CLASSES)
