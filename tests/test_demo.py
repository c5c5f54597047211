"""The functions behind the Gradio demo: registry-generated controls, the Compare graph as a
workflow, the run through the runtime, the figures, the pictures, and every bad input."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from demo import charts, compare, controls, samples
from demo.graph_picture import ERROR_EDGE, draw_workflow, layered_positions, workflow_digraph
from demo.service import DemoError, DemoService, node_errors_md
from demo.workflow_builder import REFERENCE_LABEL, CompareSettings, compare_graph, stage_widgets
from nodes import models as node_models
from nodes.pack import NODE_CLASS_MAPPINGS as M
from nodes.runtime import Runtime
from pruning_core.errors import PlanError
from pruning_core.registry import get_method, methods

MODEL = "tiny-demo-llava"
Q = "what colour is the circle ?"


@pytest.fixture(scope="module")
def svc(tiny_llava, tmp_path_factory):
    service = DemoService(MODEL, tmp_path_factory.mktemp("demo-cache"), device="cpu",
                          factory=lambda: tiny_llava.adapter)
    yield service
    node_models.MODEL_FACTORIES.pop(MODEL, None)


def _settings(svc, methods_=("fastv", "uniform"), retention=0.25, frames=2, tokens=2, source="sample-1",
              upload=None, question=Q, params=None):
    return svc.settings(source, upload, question, list(methods_), retention, frames, tokens, params)


def _strip_meta(prompt):
    return {k: {kk: vv for kk, vv in v.items() if kk != "_meta"} for k, v in prompt.items()}


# ---------------------------------------------------------------- controls from the registry

def test_every_method_but_none_is_selectable():
    names = [name for _, name in controls.method_choices()]
    assert sorted(names) == sorted(m for m in methods() if m != "none")


def test_each_method_gets_one_control_per_param_except_the_global_retention():
    for spec in controls.selectable_methods():
        got = [c.name for c in controls.controls_for(spec)]
        assert got == [p.name for p in spec.params if p.name != "retention"]


def test_control_kind_follows_the_param_type():
    kinds = {(c.method, c.name): c.kind for c in controls.all_controls()}
    assert kinds[("sharp", "segm")] == "checkbox"
    assert kinds[("pdrop", "scoring")] == "dropdown"
    assert kinds[("pdrop", "first_layer")] == "text"        # optional: "auto" leaves it unset
    assert kinds[("sharp", "tau_seg")] == "slider"          # bounded float
    assert kinds[("random", "seed")] == "number"            # unbounded int


def test_layer_controls_are_capped_at_the_models_last_layer():
    c = next(c for c in controls.controls_for(get_method("fastv"), num_layers=2) if c.name == "layer")
    assert c.kind == "slider" and c.options["maximum"] == 1 and c.value == 1


def test_global_retention_goes_to_methods_with_a_retention_and_drives_sharpvs_target():
    fastv, sharpv, memory = controls.plan_steps(["fastv", "sharpv", "sharpv_memory"], {}, 0.3)
    assert fastv["retention"] == 0.3
    assert "retention" not in sharpv and sharpv == {"method": "sharpv", **get_method("sharpv").defaults(),
                                                    "target_retention": 0.3}
    assert memory == {"method": "sharpv_memory", **get_method("sharpv_memory").defaults()}


def test_an_explicit_sharpv_target_wins_over_the_global_retention():
    (sharpv,) = controls.plan_steps(["sharpv"], {"sharpv.target_retention": "0.5"}, 0.3)
    assert sharpv["target_retention"] == 0.5


def test_control_values_reach_the_plan_step_and_auto_leaves_optional_params_unset():
    (step,) = controls.plan_steps(["pdrop"], {"pdrop.stages": 3.0, "pdrop.first_layer": "auto"}, 0.2)
    assert step["stages"] == 3 and step["first_layer"] is None and step["retention"] == 0.2


def test_no_method_selected_is_a_plan_error():
    with pytest.raises(PlanError, match="at least one"):
        controls.plan_steps([], {}, 0.25)


def test_out_of_range_control_value_is_a_one_line_plan_error():
    with pytest.raises(PlanError, match="tau_seg") as e:
        controls.plan_steps(["sharp"], {"sharp.tau_seg": 7.0}, 0.25)
    assert "\n" not in str(e.value)


def test_step_label_names_the_method_and_what_differs_from_its_defaults():
    assert controls.step_label({"method": "fastv", "layer": 3, "retention": 0.2}) == "FastV (layer=3, retention=0.2)"
    assert controls.step_label({"method": "sharpv", **get_method("sharpv").defaults()}) == "SharpV (visual)"


# ---------------------------------------------------------------- the Compare graph

def _graph(steps=None, **kw):
    steps = steps if steps is not None else controls.plan_steps(["fastv", "uniform"], {}, 0.25)
    return compare_graph(CompareSettings(question=Q, steps=steps, **kw))


def test_compare_workflow_converts_to_the_prompt_the_runtime_runs():
    cg = _graph()
    assert _strip_meta(Runtime().load(cg.ui())) == _strip_meta(cg.api())


def test_compare_workflow_passes_the_node_packs_validation():
    val = Runtime().validate(_graph().ui())
    assert val.ok, val.payload()
    assert set(val.outputs) >= {r.answer for r in _graph().runs}


def test_reference_run_comes_first_without_a_plan():
    cg = _graph()
    ref = cg.runs[0]
    assert ref.label == REFERENCE_LABEL and ref.step is None and ref.stage is None
    assert "plan" not in cg.api()[ref.answer]["inputs"]
    assert int(ref.answer) < min(int(r.answer) for r in cg.runs[1:])


def test_each_method_is_a_stage_node_feeding_its_answer_and_overlay():
    cg = _graph()
    api = cg.api()
    for run in cg.runs[1:]:
        assert api[run.stage]["class_type"] == f"VideoPrune{get_method(run.step['method']).node}"
        assert api[run.answer]["inputs"]["plan"] == [run.stage, 0]
        assert api[run.overlay]["inputs"]["result"] == [run.answer, 1]
        assert api[run.answer]["inputs"]["label"] == run.label


def test_stage_node_widgets_rebuild_the_same_plan_step():
    for name in ("pdrop", "sharp", "dycoke", "framefusion"):
        (step,) = controls.plan_steps([name], {}, 0.3)
        cls = M[f"VideoPrune{get_method(name).node}"]
        assert cls().extend(**stage_widgets(step)) == ([step],)


def test_ui_widgets_values_follow_the_node_widget_order():
    cg = _graph()
    node = next(n for n in cg.ui()["nodes"] if n["type"] == "VideoPruneLoadVideo")
    assert node["widgets_values"] == ["sample-0", 16, 0, ""]


def test_uploaded_video_is_named_in_the_video_list_as_in_comfyuis_input_folder():
    cg = _graph(video_path="clip_a.mp4")
    (video,) = [n for n in cg.api().values() if n["class_type"] == "VideoPruneLoadVideo"]
    assert video["inputs"]["video"] == "clip_a.mp4" and video["inputs"]["path"] == ""


def test_builtin_model_leaves_the_path_field_empty_and_others_fill_it():
    assert _graph().api()["1"]["inputs"]["path_or_hub_id"] == ""
    assert _graph(model="llava-hf/llava-onevision-qwen2-0.5b-ov-hf").api()["1"]["inputs"]["path_or_hub_id"] == \
        "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"


def test_the_same_method_twice_gets_distinct_labels():
    steps = controls.plan_steps(["fastv"], {}, 0.25) * 2
    labels = [r.label for r in _graph(steps).runs]
    assert len(set(labels)) == 3


def test_report_takes_at_most_eight_runs():
    steps = [{"method": "uniform", "retention": r / 20} for r in range(1, 11)]
    cg = _graph(steps)
    report = cg.api()[cg.report]["inputs"]
    assert sorted(k for k in report if k.startswith("result_")) == sorted(f"result_{i}" for i in range(1, 9))


# ---------------------------------------------------------------- runs through the runtime

@pytest.fixture(scope="module")
def outcome(svc):
    return svc.compare(_settings(svc))


def test_compare_has_the_reference_and_one_row_per_method(outcome):
    assert [r["method"] for r in outcome.rows] == ["none", "fastv", "uniform"]
    assert outcome.rows[0]["reference"] and outcome.rows[0]["speedup"] == 1.0
    assert outcome.rows[0]["kept_tokens"] == outcome.rows[0]["visual_tokens"]


def test_compare_answers_and_kept_tokens_equal_direct_engine_runs(svc, tiny_llava, outcome):
    from pruning_core.synthetic import make_sample
    eng = tiny_llava.engine
    prep = eng.prepare(make_sample(1, 2).frames, Q)
    for row, plan in zip(outcome.rows, ([], [{"method": "fastv", "retention": 0.25}],
                                        [{"method": "uniform", "retention": 0.25}])):
        res = eng.run(prep, plan, max_new_tokens=2)
        assert (row["answer"], row["kept_tokens"]) == (res.answer, res.kept_tokens)


def test_speedup_is_reference_prefill_over_run_prefill(outcome):
    ref = outcome.rows[0]["prefill_ms"]
    for r in outcome.rows:
        assert r["speedup"] == pytest.approx(ref / r["prefill_ms"])
        assert r["ttft_ms"] == pytest.approx(r["vision_ms"] + r["pre_llm_ms"] + r["prefill_ms"])


def test_table_has_a_row_per_run_in_header_order(outcome):
    assert len(outcome.table) == 3 and all(len(r) == len(compare.TABLE_HEADERS) for r in outcome.table)
    kept = compare.TABLE_HEADERS.index("kept tokens")
    assert outcome.table[1][kept] == f"{outcome.rows[1]['kept_tokens']} / {outcome.rows[1]['visual_tokens']}"


def test_overlay_sheet_has_a_row_of_frames_per_run(outcome):
    rows = outcome.overlay_rows
    assert len(rows) == 3
    h = rows[0][0].shape[0]
    assert outcome.overlays.shape[0] >= 3 * h and outcome.overlays.shape[1] >= 2 * compare.THUMB_H
    # the reference keeps every cell, so it is brighter than a run that kept a quarter
    assert rows[0][0][22:].mean() > rows[2][0][22:].mean()


def test_charts_and_workflow_file_come_with_the_run(outcome):
    assert outcome.latency.ndim == 3 and outcome.latency.shape[2] == 3
    assert outcome.scatter.ndim == 3 and outcome.scatter.shape[2] == 3
    assert json.loads(outcome.workflow_path.read_text()) == outcome.workflow
    assert "FastV" in outcome.report_md


def test_an_unchanged_rerun_is_served_from_the_runtime_cache(svc, outcome):
    again = svc.compare(_settings(svc))
    assert again.summary["executed"] == [] and [r["answer"] for r in again.rows] == [r["answer"] for r in outcome.rows]


def test_progress_reports_every_node_that_runs(svc):
    seen = []
    svc.compare(_settings(svc, ["random"], retention=0.4), lambda f, d: seen.append((f, d)))
    descs = {d for _, d in seen}
    assert any(d.startswith("Answer: Random") for d in descs)
    assert seen[-1] == (1.0, "done") and all(0.0 <= f <= 1.0 for f, _ in seen)


def test_stop_ends_the_run_with_a_message_and_the_next_run_works(svc):
    def stop_at_answer(frac, desc):
        if desc.startswith("Answer: Random"):
            svc.interrupt()

    with pytest.raises(DemoError, match="stopped"):
        svc.compare(_settings(svc, ["random"], retention=0.45), stop_at_answer)
    assert len(svc.compare(_settings(svc, ["random"], retention=0.45)).rows) == 2


def test_qwen2vl_temporal_pairs_compare_with_an_odd_frame_count(tiny_qwen2vl, tmp_path):
    name = "tiny-demo-qwen2vl"
    service = DemoService(name, tmp_path, device="cpu", factory=lambda: tiny_qwen2vl.adapter)
    try:
        out = service.compare(_settings(service, ["uniform"], frames=3))
    finally:
        node_models.MODEL_FACTORIES.pop(name, None)
    ref, uni = out.rows
    assert ref["visual_tokens"] == uni["visual_tokens"] and uni["kept_tokens"] == round(0.25 * ref["visual_tokens"])
    assert len(ref["frame_retention"]) == 2                     # 3 frames → 2 temporal pairs
    assert out.overlays.shape[1] >= 3 * compare.THUMB_H          # every source frame drawn


def test_uploaded_video_runs_from_the_input_folder(svc, tmp_path):
    from pruning_core.synthetic import sample_video
    clip = tmp_path / "my clip.mp4"
    sample_video(clip, seed=2, num_frames=4)
    s = _settings(svc, ["uniform"], source="upload", upload=str(clip))
    assert s.video_path == "my_clip.mp4" and (svc.input_dir / s.video_path).is_file()
    out = svc.compare(s)
    assert out.rows[1]["kept_tokens"] < out.rows[0]["kept_tokens"]


# ---------------------------------------------------------------- bad input: one clear line

@pytest.mark.parametrize("kwargs, message", [
    ({"question": "   "}, "question is empty"),
    ({"methods_": ()}, "at least one"),
    ({"source": "upload", "upload": None}, "no video"),
    ({"frames": 0}, "frames must be"),
    ({"retention": 0.0}, "retention must be"),
    ({"params": {"fastv.layer": 9}}, "out of range"),
])
def test_bad_compare_input_is_a_one_line_demo_error(svc, kwargs, message):
    with pytest.raises(DemoError, match=message) as e:
        _settings(svc, **kwargs)
    assert "\n" not in str(e.value)


def test_a_file_that_is_not_a_video_is_refused(svc, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(DemoError, match="not a video file"):
        _settings(svc, source="upload", upload=str(notes))


def test_an_unreadable_video_fails_naming_the_load_video_node(svc, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video" * 100)
    s = _settings(svc, ["uniform"], source="upload", upload=str(bad))
    with pytest.raises(DemoError, match="VideoPruneLoadVideo") as e:
        svc.compare(s)
    assert "\n" not in str(e.value)
    assert svc.compare(_settings(svc, ["uniform"], retention=0.6)).rows   # still serving


# ---------------------------------------------------------------- Workflow tab

def test_workflow_from_compare_settings_runs_and_shows_its_outputs(svc):
    _, ui, _ = svc.compare_workflow(_settings(svc, ["uniform"], retention=0.7))
    out = svc.run_workflow(json.dumps(ui))
    assert out.ok, out.message
    assert "Uniform" in out.answers_md and out.images and all(p.endswith(".png") for p, _ in out.images)
    assert out.picture.ndim == 3


def test_invalid_workflow_shows_node_errors_and_still_draws(svc):
    _, ui, _ = svc.compare_workflow(_settings(svc, ["uniform"]))
    stage = next(n for n in ui["nodes"] if n["type"] == "VideoPruneUniform")
    stage["widgets_values"] = [7.5]                                # retention out of range
    out = svc.run_workflow(json.dumps(ui))
    assert not out.ok and f"node {stage['id']}" in out.message
    assert "| " + str(stage["id"]) + " | VideoPruneUniform |" in out.errors_md
    assert out.picture is not None


def test_unknown_node_type_is_reported_not_raised(svc):
    prompt = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    out = svc.inspect_workflow(json.dumps(prompt))
    assert not out.ok and "NoSuchNode" in out.errors_md + out.message


@pytest.mark.parametrize("text, message", [("", "no workflow"), ("{not json", "not valid JSON"),
                                           ("[1, 2]", "JSON object")])
def test_unreadable_workflow_text_is_a_demo_error(svc, text, message):
    with pytest.raises(DemoError, match=message):
        svc.inspect_workflow(text)


@pytest.mark.parametrize("name", DemoService.example_workflows())
def test_every_example_workflow_validates(svc, name):
    out = svc.inspect_workflow(svc.read_example(name))
    assert out.ok, out.errors_md


@pytest.mark.parametrize("name", DemoService.example_workflows())
def test_every_example_workflow_runs_on_the_demos_model(svc, name):
    out = svc.run_workflow(svc.read_example(name), use_demo_model=True)
    assert out.ok, out.message
    assert out.answers_md.count("\n") >= 2 and out.images


def test_demo_model_override_targets_every_load_model_node(svc):
    _, ui, _ = svc.compare_workflow(_settings(svc, ["uniform"]))
    prompt = svc.runtime.load(ui)
    assert svc.model_overrides(prompt) == [f"1.path_or_hub_id={MODEL}"]


def test_saved_workflow_text_is_a_named_json_file(svc):
    path = svc.save_workflow_text('{"1": {"class_type": "X", "inputs": {}}}')
    assert path.suffix == ".json" and json.loads(path.read_text()) == {"1": {"class_type": "X", "inputs": {}}}


def test_node_errors_md_lists_every_error():
    md = node_errors_md({"error": {"message": "Prompt outputs failed validation", "details": ""},
                         "node_errors": {"3": {"class_type": "VideoPruneFastV",
                                               "errors": [{"type": "value_bigger_than_max", "message": "too big",
                                                           "details": "retention"}]}}})
    assert "Prompt outputs failed validation" in md and "| 3 | VideoPruneFastV | value_bigger_than_max |" in md


# ---------------------------------------------------------------- pictures, charts, samples

def test_layered_layout_puts_every_node_right_of_its_inputs():
    prompt = _graph().api()
    g = workflow_digraph(prompt)
    pos = layered_positions(g)
    assert all(pos[a][0] < pos[b][0] for a, b in g.edges)


def test_a_cyclic_workflow_still_gets_a_picture():
    prompt = {"1": {"class_type": "VideoPruneFastV", "inputs": {"plan": ["2", 0]}},
              "2": {"class_type": "VideoPruneUniform", "inputs": {"plan": ["1", 0]}}}
    assert set(layered_positions(workflow_digraph(prompt))) == {"1", "2"}
    assert draw_workflow(prompt, M).ndim == 3


def test_nodes_with_errors_are_outlined_in_red():
    prompt = _graph().api()
    red = np.array([int(ERROR_EDGE[i:i + 2], 16) for i in (1, 3, 5)])

    def reds(img):
        return int((np.abs(img.astype(int) - red).sum(-1) < 30).sum())

    assert reds(draw_workflow(prompt, M, {"5": {}})) > reds(draw_workflow(prompt, M)) + 50


def test_latency_chart_grows_with_the_number_of_runs(outcome):
    one = charts.latency_chart(outcome.rows[:1])
    three = charts.latency_chart(outcome.rows)
    assert three.shape[0] > one.shape[0]


def _rows(*points):
    """Hand-made runs: (retention, prefill ms, FLOPs share); the first is the reference."""
    return [{"label": f"run {i}", "reference": i == 0, "retention": r, "prefill_ms": ms, "vision_ms": 5.0,
             "flops": share * 1e9, "flops_unpruned": 1e9, "speedup": points[0][1] / ms}
            for i, (r, ms, share) in enumerate(points)]


def test_scatter_draws_a_point_for_every_pruned_run():
    from matplotlib.colors import to_rgb
    img = charts.retention_scatter(_rows((1.0, 10.0, 1.0), (0.5, 30.0, 0.5), (0.2, 4.0, 0.2)))
    blue = np.array([int(255 * c) for c in to_rgb(charts.PREFILL)])
    mask = (np.abs(img.astype(int) - blue).sum(-1) < 40).astype(np.uint8)
    sizes = cv2.connectedComponentsWithStats(mask)[2][1:, cv2.CC_STAT_AREA]
    assert (sizes > 20).sum() == 2 + 1             # the two pruned runs, plus the legend's marker


def test_charts_refuse_an_empty_comparison():
    with pytest.raises(ValueError):
        charts.retention_scatter([])


def test_sample_clip_is_written_once_and_decodes_to_its_frames(tmp_path):
    from pruning_core.video import load_video
    a = samples.clip("sample-3", 6, tmp_path)
    mtime = a.path.stat().st_mtime_ns
    b = samples.clip("sample-3", 6, tmp_path)
    assert b.path == a.path and b.path.stat().st_mtime_ns == mtime
    assert load_video(a.path, num_frames=None).num_frames == 6


def test_sample_question_is_the_one_the_load_video_node_gives(tmp_path):
    from nodes.videos import load
    for frames in (4, 16):
        _, _, question = load("sample-2", frames, 0)
        assert samples.clip("sample-2", frames, tmp_path).question == question


def test_not_a_sample_name_is_a_video_error():
    from pruning_core.errors import VideoError
    with pytest.raises(VideoError):
        samples.sample_index("clip-1")


# ---------------------------------------------------------------- frame viewer, timeline, Pareto view

def test_the_frame_viewer_shows_the_chosen_frame_for_every_run(outcome):
    from demo.service import frame_view
    panels, timeline = frame_view(outcome.viewer, 1)
    assert [text.split(":")[0] for _, text in panels] == [r["label"] for r in outcome.rows]
    assert all("frame 1:" in text for _, text in panels) and timeline.ndim == 3
    last = outcome.viewer.num_frames - 1
    assert all(f"frame {last}:" in text for _, text in frame_view(outcome.viewer, 99)[0])   # clamped


def test_the_frame_viewer_before_any_run_asks_for_one():
    from demo.service import frame_view
    with pytest.raises(DemoError, match="run a comparison first"):
        frame_view(None, 0)


def test_a_comparison_comes_with_its_pareto_view(outcome):
    assert outcome.pareto is not None and outcome.pareto.ndim == 3 and outcome.pareto.shape[2] == 3


def test_the_score_heatmap_tints_the_methods_that_rank_tokens(svc, outcome):
    from demo.service import frame_view
    from demo.viewer import heat_for
    scores = svc.record_scores(outcome.viewer)
    assert set(scores) == {"FastV (retention=0.25)", "Uniform (retention=0.25)"}
    assert "attention" in scores["FastV (retention=0.25)"] and scores["Uniform (retention=0.25)"] == {}
    heat = heat_for(scores)
    plain, _ = frame_view(outcome.viewer, 0)
    tinted, _ = frame_view(outcome.viewer, 0, heat)
    assert (tinted[1][0] != plain[1][0]).any()                 # FastV's panel tinted
    assert (tinted[2][0] == plain[2][0]).all()                 # Uniform ranks nothing: as before
