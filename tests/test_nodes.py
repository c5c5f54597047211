"""The node pack: stage nodes generated from the registry, loaders, Answer/Overlay/Report through the runtime."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nodes import models, videos
from nodes.errors import Interrupted, NodeExecutionError, WorkflowError
from nodes.pack import NODE_CLASS_MAPPINGS as M, PLAN, param_input, plan_step, stage_class_for
from nodes.runtime import Runtime
from pruning_core.errors import ModelLoadError, PlanError, VideoError
from pruning_core.registry import Param, methods


@pytest.fixture(scope="module")
def tiny_model(tiny_llava):
    models.register_model("tiny", lambda: tiny_llava.adapter)
    yield "tiny"
    models.MODEL_FACTORIES.pop("tiny", None)


@pytest.fixture
def rt(tmp_path, tiny_model):
    (tmp_path / "input").mkdir()
    (tmp_path / "models").mkdir()
    return Runtime(input_dirs=[tmp_path / "input"], model_dirs=[tmp_path / "models"], output_dir=tmp_path / "out")


def graph(plan_nodes=None, answer_extra=None, frames=4, tokens=3):
    """LoadModel(1) LoadVideo(2) [stage nodes] Answer(10)."""
    p = {"1": {"class_type": "VideoPruneLoadModel",
               "inputs": {"model": "builtin", "device": "cpu", "dtype": "fp32", "attention": "auto",
                          "path_or_hub_id": "tiny"}},
         "2": {"class_type": "VideoPruneLoadVideo", "inputs": {"video": "sample-0", "num_frames": frames,
                                                               "max_side": 0}},
         "10": {"class_type": "VideoPruneAnswer",
                "inputs": {"model": ["1", 0], "frames": ["2", 0], "question": ["2", 2], "max_new_tokens": tokens}}}
    last = None
    for nid, node in (plan_nodes or {}).items():
        node = json.loads(json.dumps(node))
        if last is not None:
            node["inputs"]["plan"] = [last, 0]
        p[nid] = node
        last = nid
    if last is not None:
        p["10"]["inputs"]["plan"] = [last, 0]
    p["10"]["inputs"].update(answer_extra or {})
    return p


FASTV = {"class_type": "VideoPruneFastV", "inputs": {"layer": 2, "retention": 0.25}}
UNIFORM = {"class_type": "VideoPruneUniform", "inputs": {"retention": 0.5}}


# ---------------------------------------------------------------- stage nodes from the registry

def test_every_registered_method_has_a_stage_node():
    for spec in methods().values():
        if spec.name != "none":
            assert f"VideoPrune{spec.node}" in M and M[f"VideoPrune{spec.node}"].METHOD == spec.name


def test_stage_node_widgets_are_the_method_params_in_order():
    spec = methods()["fastv"]
    req = M["VideoPruneFastV"].INPUT_TYPES()["required"]
    assert list(req) == [p.name for p in spec.params]
    assert M["VideoPruneFastV"].INPUT_TYPES()["optional"]["plan"][0] == PLAN


def test_stage_node_appends_its_step_without_touching_the_incoming_plan():
    node = M["VideoPruneFastV"]()
    upstream = [{"method": "uniform", "retention": 0.5}]
    (plan,) = node.extend(plan=upstream, layer=3, retention=0.2)
    assert plan == [{"method": "uniform", "retention": 0.5}, {"method": "fastv", "layer": 3, "retention": 0.2}]
    assert upstream == [{"method": "uniform", "retention": 0.5}]


def test_stage_node_without_plan_starts_one():
    assert M["VideoPruneUniform"]().extend(retention=0.5) == ([{"method": "uniform", "retention": 0.5}],)


def test_stage_node_rejects_a_bad_value_with_the_registry_message():
    with pytest.raises(PlanError, match="retention"):
        M["VideoPruneFastV"]().extend(layer=2, retention=0.0)


def test_stage_node_with_only_typed_widgets_leaves_validation_to_comfyui_ranges():
    # a VALIDATE_INPUTS hook would switch off ComfyUI's own min/max checks for the inputs it takes
    assert not hasattr(M["VideoPruneFastV"], "VALIDATE_INPUTS")


def test_auto_text_widgets_are_checked_by_a_hook_naming_only_them():
    hook = M["VideoPruneSharpV"].VALIDATE_INPUTS
    assert inspect.getfullargspec(hook).args == ["cls", "target_retention"]  # what ComfyUI reads
    assert "target_retention" in hook(target_retention="abc")
    assert "outside" in hook(target_retention="3")
    assert hook(target_retention="auto") is True and hook(target_retention="0.3") is True


def test_unsettable_param_is_a_text_widget_where_auto_means_unset():
    p = Param("threshold", "float", None, "tip", min=-1.0, max=1.0, optional=True)
    typ, opts = param_input(p)
    assert typ == "STRING" and opts["default"] == "auto"
    spec = methods()["sharpv"]
    assert plan_step(spec, {"target_retention": "auto"})["target_retention"] is None
    assert plan_step(spec, {"target_retention": "0.3"})["target_retention"] == pytest.approx(0.3)


def test_float_widget_keeps_its_exact_default_and_excludes_an_open_minimum():
    typ, opts = param_input(Param("retention", "float", 0.235, "tip", min=0.0, max=1.0, step=0.01, min_exclusive=True))
    assert typ == "FLOAT" and opts["default"] == 0.235 and opts["round"] == opts["step"] == 0.001
    assert 0.0 < opts["min"] <= 0.001 and opts["precision"] >= 3


def test_choice_and_bool_params_become_combo_and_boolean_widgets():
    assert param_input(Param("mode", "choice", "a", "tip", choices=("a", "b")))[0] == ["a", "b"]
    assert param_input(Param("flag", "bool", True, "tip"))[0] == "BOOLEAN"


def test_stage_class_for_maps_method_names_to_node_ids():
    assert stage_class_for("fastv") == "VideoPruneFastV"


# ---------------------------------------------------------------- loaders

def test_load_video_sample_gives_comfy_image_frames_and_its_question():
    frames, info, question = M["VideoPruneLoadVideo"]().load("sample-1", 4, 0)
    assert isinstance(frames, torch.Tensor) and frames.dtype == torch.float32
    assert frames.shape[0] == 4 and frames.shape[-1] == 3 and 0.0 <= float(frames.min()) <= float(frames.max()) <= 1.0
    assert question.startswith("what") and info["num_frames"] == 4


def test_load_video_reads_a_file_in_the_input_folder(rt, tmp_path):
    from pruning_core.synthetic import sample_video
    sample_video(tmp_path / "input" / "clip.mp4", seed=3, num_frames=6)
    p = graph()
    p["2"]["inputs"].update(video="clip.mp4", num_frames=3)
    p["10"]["inputs"]["question"] = "what colour is the circle ?"
    res = rt.run(p)
    assert res.outputs["2"][1]["num_frames"] == 3 and res.outputs["2"][2] == ""
    assert res.outputs["10"][1].frames.shape[0] == 3


def test_load_video_path_overrides_the_listed_video(rt, tmp_path):
    from pruning_core.synthetic import sample_video
    (tmp_path / "input" / "sub").mkdir()
    sample_video(tmp_path / "input" / "sub" / "clip.mp4", seed=3, num_frames=6)
    p = graph(answer_extra={"question": "what colour is the circle ?"})
    p["2"]["inputs"]["path"] = "sub/clip.mp4"
    p["2"]["inputs"]["num_frames"] = 5
    frames, info, _ = rt.run(p).outputs["2"]
    assert frames.shape[0] == 5 and info["path"] == "sub/clip.mp4"


def test_load_video_refuses_paths_outside_the_input_folder(rt):
    p = graph()
    p["2"]["inputs"]["path"] = "../../etc/passwd"
    with pytest.raises(NodeExecutionError, match="outside the allowed folder"):
        rt.run(p)


def test_load_video_lists_input_folder_videos(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.webm").write_bytes(b"x")
    assert videos.input_video_names([tmp_path]) == ["a.mp4", "sub/b.webm"]


def test_model_folders_with_a_config_are_listed(tmp_path):
    for rel in ("one", "org/two", "empty"):
        (tmp_path / rel).mkdir(parents=True)
    (tmp_path / "one" / "config.json").write_text("{}")
    (tmp_path / "org" / "two" / "config.json").write_text("{}")
    assert models.local_model_names([tmp_path]) == ["one", "org/two"]


def test_model_folder_outside_the_model_folders_is_refused(rt):
    p = graph()
    p["1"]["inputs"]["path_or_hub_id"] = "../../somewhere"
    with pytest.raises(NodeExecutionError, match="outside the allowed folder"):
        rt.run(p)


def test_hub_id_downloads_into_models_llm_name(tmp_path, monkeypatch):
    import huggingface_hub
    seen = {}

    def fake_download(repo_id, local_dir, **kw):
        seen.update(repo_id=repo_id, local_dir=local_dir, **kw)
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / "config.json").write_text("{}")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    from nodes import context
    with context.running(context.ExecContext("1", "VideoPruneLoadModel", model_dirs=[tmp_path])):
        src = models.resolve_source("org/some-model-hf", context.Progress(1))
        again = models.resolve_source("org/some-model-hf")
    assert src == str(tmp_path / "some-model-hf") and seen["repo_id"] == "org/some-model-hf"
    assert not any(p.endswith(".bin") or p == "*" for p in seen["allow_patterns"])
    assert again == src  # found on disk the second time


def test_offline_hub_download_names_the_folder(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*a, **kw):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    from nodes import context
    with context.running(context.ExecContext("1", "VideoPruneLoadModel", model_dirs=[tmp_path])):
        with pytest.raises(ModelLoadError) as ei:
            models.resolve_source("Qwen/Qwen2-VL-2B-Instruct")
    assert str(tmp_path / "Qwen2-VL-2B-Instruct") in str(ei.value) and "offline" in str(ei.value)
    assert "\n" not in str(ei.value)


# ---------------------------------------------------------------- running through the runtime

def test_answer_shows_the_answer_and_its_summary(rt):
    res = rt.run(graph({"3": FASTV}))
    ui = res.ui["10"]
    row = ui["videoprune"][0]
    assert ui["text"] == [res.outputs["10"][0]] and row["answer"] == ui["text"][0]
    assert row["plan"] == "fastv:layer=2,retention=0.25" and row["retention"] == pytest.approx(0.25, abs=0.02)
    assert len(row["frame_retention"]) == res.outputs["10"][1].layout.num_frames
    assert row["flops"] < row["flops_unpruned"]


def test_chained_stage_nodes_run_in_wiring_order(rt):
    res = rt.run(graph({"3": UNIFORM, "4": FASTV}))
    assert [s["name"] for s in res.ui["10"]["videoprune"][0]["stages"]] == ["uniform", "fastv"]


def test_label_names_the_run(rt):
    res = rt.run(graph(answer_extra={"label": "baseline"}))
    assert res.ui["10"]["videoprune"][0]["label"] == "baseline"


def test_changing_a_stage_widget_reruns_only_the_plan_and_answer(rt):
    rt.run(graph({"3": FASTV}))
    p = graph({"3": FASTV})
    p["3"]["inputs"]["retention"] = 0.5
    res = rt.run(p)
    assert sorted(res.executed) == ["10", "3"] and sorted(res.cached) == ["1", "2"]


def test_unchanged_rerun_of_a_real_graph_is_served_from_cache(rt):
    first = rt.run(graph({"3": FASTV}))
    again = rt.run(graph({"3": FASTV}))
    assert again.executed == [] and again.ui == first.ui


def test_answer_reports_progress_from_the_first_frame_over_frames_layers_and_tokens(rt, tiny_llava):
    events = []
    rt.run(graph(frames=4, tokens=3), progress=lambda ev, d: events.append(d) if ev == "progress" else None)
    answer = [d for d in events if d["node"] == "10"]
    n = tiny_llava.adapter.info.num_layers
    steps = 4 * 4 + 1 + n + 3   # converting, hashing, resizing, encoding 4 frames, prepare, n layers, 3 tokens
    values = [d["value"] for d in answer]
    assert answer and all(d["max"] == steps for d in answer)
    assert values[0] == 1 and values == sorted(values) and 4 * 4 + 1 + n in values and values[-1] == steps


def test_answer_stops_between_frames_before_encoding_when_interrupted(rt, monkeypatch, tiny_llava):
    encoded = []
    monkeypatch.setattr(tiny_llava.adapter, "encode_video", lambda *a, **k: encoded.append(1))

    def progress(ev, d):
        if ev == "progress" and d["node"] == "10" and d["value"] == 1:  # the first frame converted
            rt.interrupt()
    with pytest.raises(Interrupted) as ei:
        rt.run(graph(frames=5, tokens=2), progress=progress)  # a graph no other test ran: nothing cached
    assert ei.value.node_id == "10" and encoded == []


def test_answer_stops_between_layers_when_interrupted(rt):
    def progress(ev, d):
        if ev == "progress" and d["node"] == "10" and d["value"] == 1:
            rt.interrupt()
    with pytest.raises(Interrupted) as ei:
        rt.run(graph(), progress=progress)
    assert ei.value.node_id == "10"
    assert rt.run(graph()).ui["10"]["text"]  # usable again


def test_pre_stage_after_a_layer_stage_is_a_node_error_naming_the_answer(rt):
    with pytest.raises(NodeExecutionError) as ei:
        rt.run(graph({"3": FASTV, "4": UNIFORM}))
    assert ei.value.node_id == "10" and "pre-LLM stage cannot follow" in str(ei.value)


def test_out_of_range_stage_value_fails_validation(rt):
    bad = {"class_type": "VideoPruneFastV", "inputs": {"layer": 2, "retention": 1.5}}
    with pytest.raises(WorkflowError) as ei:
        rt.run(graph({"3": bad}))
    errors = ei.value.payload["node_errors"]["3"]["errors"]
    assert [(e["type"], e["extra_info"]["input_name"]) for e in errors] == [("value_bigger_than_max", "retention")]


def test_overlay_shows_previews_and_returns_images(rt, tmp_path):
    p = graph({"3": FASTV})
    p["20"] = {"class_type": "VideoPruneOverlay", "inputs": {"result": ["10", 1], "stage": 0, "dim": 0.2}}
    res = rt.run(p)
    ui = res.ui["20"]
    assert len(ui["images"]) == 4 + 1 and all((tmp_path / "out" / im["filename"]).is_file() for im in ui["images"])
    overlay, strip = res.outputs["20"]
    assert overlay.shape[0] == 4 and overlay.shape[-1] == 3 and strip.shape[0] == 1
    rec = res.outputs["10"][1]
    kept = np.asarray(ui["videoprune_strip"][0]["frame_retention"]) * rec.layout.tokens_per_frame
    assert kept.sum() == pytest.approx(rec.result.kept_tokens)
    info = ui["videoprune_strip"][0]
    assert info["stage"] == rec.result.stages[0].name    # the stage drawn, for the panel's caption
    assert info["retention"] == pytest.approx(rec.result.stages[0].retention, abs=1e-4)


def test_overlay_stage_out_of_range_is_a_clear_error(rt):
    p = graph({"3": FASTV})
    p["20"] = {"class_type": "VideoPruneOverlay", "inputs": {"result": ["10", 1], "stage": 5, "dim": 0.2}}
    with pytest.raises(NodeExecutionError, match="stage 5 does not exist"):
        rt.run(p)


def test_report_tables_every_connected_result(rt):
    p = graph({"3": FASTV})
    p["11"] = {"class_type": "VideoPruneAnswer",
               "inputs": {"model": ["1", 0], "frames": ["2", 0], "question": ["2", 2], "max_new_tokens": 3,
                          "label": "full"}}
    p["30"] = {"class_type": "VideoPruneReport", "inputs": {"result_1": ["10", 1], "result_2": ["11", 1]}}
    res = rt.run(p)
    ui = res.ui["30"]
    lines = ui["text"][0].splitlines()
    assert len(lines) == 2 + 2 and "| full |" in lines[3]
    assert [r["label"] for r in ui["videoprune_report"]] == ["fastv:layer=2,retention=0.25", "full"]
    table, chart = res.outputs["30"]
    assert chart.shape[0] == 1 and chart.shape[-1] == 3 and len(ui["images"]) == 1


def test_model_input_from_elsewhere_is_refused():
    with pytest.raises(Exception, match="Load Video LLM"):
        M["VideoPruneAnswer"]().answer("not a model", torch.zeros(1, 8, 8, 3), "q", 2)


def test_replacing_a_video_file_reruns_load_video(rt, tmp_path):
    import os
    from pruning_core.synthetic import sample_video
    clip = tmp_path / "input" / "clip.mp4"
    sample_video(clip, seed=3, num_frames=6)
    p = graph(answer_extra={"question": "what colour is the circle ?"})
    p["2"]["inputs"]["video"] = "clip.mp4"
    rt.run(p)
    assert rt.run(p).executed == []
    sample_video(clip, seed=4, num_frames=8)
    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10 ** 9))
    assert "2" in rt.run(p).executed


def test_seed_params_declare_their_control_after_generate_value():
    opts = M["VideoPruneRandom"].INPUT_TYPES()["required"]["seed"][1]
    assert opts["control_after_generate"] is True


def test_qwen2vl_run_overlays_every_source_frame(rt, tiny_qwen2vl):
    models.register_model("tiny-qwen", lambda: tiny_qwen2vl.adapter)
    try:
        p = graph({"3": FASTV}, frames=4)
        p["1"]["inputs"]["path_or_hub_id"] = "tiny-qwen"
        p["20"] = {"class_type": "VideoPruneOverlay", "inputs": {"result": ["10", 1], "stage": -1, "dim": 0.3}}
        res = rt.run(p)
    finally:
        models.MODEL_FACTORIES.pop("tiny-qwen", None)
    rec = res.outputs["10"][1]
    assert rec.layout.frames_per_step == 2 and rec.layout.num_frames == 2
    assert res.outputs["20"][0].shape[0] == 4 and len(res.ui["10"]["videoprune"][0]["frame_retention"]) == 2


def test_answer_node_passes_load_videos_timing_to_the_model():
    from pruning_core.timing import VideoTiming
    from pruning_core.video import frames_to_image
    from tiny_models import random_video, tiny_adapter
    lm = models.LoadedModel(tiny_adapter("qwen25"), "tiny-qwen25")
    frames = random_video(6, 32, seed=1)
    info = {"fps": 30.0, "source_frames": 60, "indices": [5, 15, 25, 35, 45, 55], "num_frames": 6}
    timed = lm.prepare(frames, "what ?", VideoTiming.from_info(info, 6))
    untimed = lm.prepare(frames, "what ?")  # same frames, no timing: not the cached timed encoding
    assert not torch.equal(timed.position_ids, untimed.position_ids)
    seen = []
    prepare = lm.prepare
    lm.prepare = lambda f, q, timing=None: seen.append(timing) or prepare(f, q, timing)
    M["VideoPruneAnswer"]().answer(lm, frames_to_image(frames), "what ?", 1, video_info=info)
    assert seen == [VideoTiming.of(30.0, info["indices"], 60)] and seen[0].sampled_fps == 3.0


def test_video_info_of_another_frame_count_gives_no_timing():
    from pruning_core.timing import VideoTiming
    assert VideoTiming.from_info({"fps": 30.0, "indices": [0, 1, 2]}, 4) is None
    assert VideoTiming.from_info("nonsense", 4) is None
    assert VideoTiming.from_info({"fps": 4.0, "num_frames": 4}, 4).sampled_fps == 4.0
