"""VideoHelperSuite's loaders run headless: same frame selection, sizes and outputs as VHS."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from nodes import models
from nodes.runtime import Runtime
from nodes.vhs import (HEADLESS_CLASS_MAPPINGS, VHSLoadVideo, VHSLoadVideoFFmpeg, frame_indices,
                       output_size)
from pruning_core.errors import VideoError


def test_defaults_yield_every_frame_in_order():
    assert frame_indices(10, 25.0).tolist() == list(range(10))


def test_skip_then_every_nth_then_cap():
    # skip 2 -> 2..19, every 3rd -> 2, 5, 8, 11, ..., cap 4
    assert frame_indices(20, 25.0, skip_first_frames=2, select_every_nth=3, frame_load_cap=4).tolist() == [2, 5, 8, 11]


def test_half_the_rate_keeps_every_other_frame():
    assert frame_indices(10, 30.0, force_rate=15.0).tolist() == [0, 2, 4, 6, 8]


def test_double_the_rate_repeats_frames():
    out = frame_indices(4, 10.0, force_rate=20.0).tolist()
    assert out[:5] == [0, 1, 1, 2, 2] and len(out) == 7


def test_start_time_skips_the_source_frames_before_it():
    assert frame_indices(50, 10.0, start_time=2.0, frame_load_cap=3).tolist() == [20, 21, 22]


@pytest.mark.parametrize("size,custom,multiple,expected", [
    ((350, 350), (0, 0), 1, (350, 350)),       # format None: untouched
    ((350, 350), (0, 0), 8, (352, 352)),       # AnimateDiff rounds to multiples of 8
    ((640, 360), (320, 0), 1, (320, 180)),     # one side keeps the aspect
    ((640, 360), (0, 90), 1, (160, 90)),
    ((640, 360), (100, 100), 1, (100, 100)),   # both: that size (centre crop)
])
def test_output_size_follows_vhs_rules(size, custom, multiple, expected):
    assert output_size(*size, *custom, multiple) == expected


def _write_clip(path, frames=24, w=96, h=64, fps=12.0):
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        img = np.full((h, w, 3), (i * 10) % 255, np.uint8)
        cv2.rectangle(img, (i * 3 % w, 10), (i * 3 % w + 12, 30), (0, 0, 255), -1)
        out.write(img)
    out.release()


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    from nodes import context
    d = tmp_path / "input"
    d.mkdir()
    _write_clip(d / "clip.mp4")
    monkeypatch.setattr(context, "input_dirs", lambda: [d])
    return d


def test_load_video_gives_vhs_outputs(input_dir):
    image, count, audio, info = VHSLoadVideo().load_video("clip.mp4", frame_load_cap=5, select_every_nth=2,
                                                          format="None")
    assert tuple(image.shape) == (5, 64, 96, 3) and count == 5 and audio is None
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert info["source_frame_count"] == 24 and info["loaded_frame_count"] == 5
    assert (info["loaded_width"], info["loaded_height"]) == (96, 64)


def test_ffmpeg_variant_outputs_a_mask_per_frame(input_dir):
    image, mask, audio, info = VHSLoadVideoFFmpeg().load_video("clip.mp4", frame_load_cap=3, start_time=1.0,
                                                               custom_width=48, format="None")
    assert tuple(image.shape) == (3, 32, 48, 3) and tuple(mask.shape) == (3, 64, 64)


def test_a_frame_rule_format_cuts_the_count(input_dir):
    image, count, _, _ = VHSLoadVideo().load_video("clip.mp4", frame_load_cap=11, format="Wan")  # 4k+1
    assert count == 9 and image.shape[1] % 8 == 0 and image.shape[2] % 8 == 0


def test_a_path_outside_the_input_folder_is_refused(input_dir, tmp_path):
    _write_clip(tmp_path / "outside.mp4")
    with pytest.raises(VideoError):
        VHSLoadVideo().load_video("../outside.mp4")


def test_latent_inputs_are_refused_with_a_clear_error(input_dir):
    with pytest.raises(VideoError, match="disconnect"):
        VHSLoadVideo().load_video("clip.mp4", vae=object())


def _vhs_workflow() -> dict:
    """A UI-format workflow as ComfyUI exports it with VHS's Load Video (widgets by name)."""
    return {
        "last_node_id": 3, "last_link_id": 2, "version": 0.4,
        "nodes": [
            {"id": 1, "type": "VideoPruneLoadModel", "pos": [0, 0], "size": [300, 150], "mode": 0,
             "inputs": [], "outputs": [{"name": "model", "type": "VIDEOPRUNE_MODEL", "links": [1]}],
             "widgets_values": ["builtin", "auto", "auto", "auto", ""]},
            {"id": 2, "type": "VHS_LoadVideo", "pos": [0, 200], "size": [300, 400], "mode": 0,
             "inputs": [{"name": "meta_batch", "type": "VHS_BatchManager", "link": None},
                        {"name": "vae", "type": "VAE", "link": None}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]},
                         {"name": "frame_count", "type": "INT", "links": None},
                         {"name": "audio", "type": "AUDIO", "links": None},
                         {"name": "video_info", "type": "VHS_VIDEOINFO", "links": None}],
             "widgets_values": {"video": "clip.mp4", "force_rate": 0, "custom_width": 0, "custom_height": 0,
                                "frame_load_cap": 6, "skip_first_frames": 0, "select_every_nth": 2,
                                "format": "None", "choose video to upload": "image",
                                "videopreview": {"hidden": False, "paused": False,
                                                 "params": {"filename": "clip.mp4", "type": "input"}}}},
            {"id": 3, "type": "VideoPruneAnswer", "pos": [400, 0], "size": [400, 300], "mode": 0,
             "inputs": [{"name": "model", "type": "VIDEOPRUNE_MODEL", "link": 1},
                        {"name": "frames", "type": "IMAGE", "link": 2}],
             "outputs": [{"name": "answer", "type": "STRING", "links": []},
                         {"name": "result", "type": "VIDEOPRUNE_RESULT", "links": []}]},
        ],
        "links": [[1, 1, 0, 3, 0, "VIDEOPRUNE_MODEL"], [2, 2, 0, 3, 1, "IMAGE"]],
    }


def test_an_exported_vhs_workflow_runs_headless(input_dir, tmp_path, tiny_llava):
    from nodes.pack import NODE_CLASS_MAPPINGS
    answer = NODE_CLASS_MAPPINGS["VideoPruneAnswer"].INPUT_TYPES()
    wf = _vhs_workflow()
    # the Answer node's widgets, in its INPUT_TYPES order, at their defaults but for the question
    widgets = []
    for section in ("required", "optional"):
        for name, spec in answer.get(section, {}).items():
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if opts.get("forceInput"):   # a socket, not a widget: no widgets_values slot
                continue
            if isinstance(spec[0], list):
                widgets.append(opts.get("default", spec[0][0]))
            elif spec[0] in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                widgets.append("what colour is the circle ?" if name == "question" else opts.get("default"))
    wf["nodes"][2]["widgets_values"] = widgets
    previous = models.MODEL_FACTORIES.get("builtin")
    models.register_model("builtin", lambda: tiny_llava.adapter)
    try:
        rt = Runtime(input_dirs=[input_dir], output_dir=tmp_path / "out")
        path = tmp_path / "vhs.json"
        path.write_text(json.dumps(wf))
        res = rt.run(str(path))
    finally:
        if previous is None:
            models.MODEL_FACTORIES.pop("builtin", None)
        else:
            models.MODEL_FACTORIES["builtin"] = previous
    frames = res.outputs["2"][0]
    assert tuple(frames.shape[:1]) == (6,)
    assert isinstance(res.outputs["3"][0], str)


def test_vhs_stand_ins_are_not_exported_to_comfyui():
    from nodes.pack import NODE_CLASS_MAPPINGS
    assert not set(HEADLESS_CLASS_MAPPINGS) & set(NODE_CLASS_MAPPINGS)


def test_a_workflow_exported_from_comfyuis_editor_with_vhs_runs_headless(tmp_path):
    """tests/data/editor_export_vhs.json: built by hand in ComfyUI 0.8.0's editor (frontend 1.35.9)
    with VideoHelperSuite installed — VHS_LoadVideo → Answer (unpruned, ShaRP 23.5%) → Report — run
    there, then exported with Workflow → Export. In the editor both answers saw 16 of 152 frames and
    ShaRP kept 184 of 784 visual tokens; headless, the same file gives the same."""
    from nodes import context
    from pruning_core.synthetic import make_sample
    d = tmp_path / "input"
    d.mkdir()
    frames = make_sample(3, 152).frames  # the clip the export names: sample-3's 152 frames, 2× upscaled, 24 fps
    frames = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)
    out = cv2.VideoWriter(str(d / "vhs_clip.webm"), cv2.VideoWriter_fourcc(*"VP80"), 24.0, frames.shape[2:0:-1])
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    export = Path(__file__).parent / "data" / "editor_export_vhs.json"
    wf = json.loads(export.read_text())
    assert {n["type"] for n in wf["nodes"]} >= {"VHS_LoadVideo", "VideoPruneAnswer", "VideoPruneReport"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(context, "input_dirs", lambda: [d])
        res = Runtime(input_dirs=[d], output_dir=tmp_path / "out").run(str(export))
    rows = {nid: ui["videoprune"][0] for nid, ui in res.ui.items() if "videoprune" in ui}
    assert sorted(r["label"] for r in rows.values()) == ["ShaRP", "unpruned"]
    for r in rows.values():
        assert r["frames"] == 16 and r["frames_given"] == 152 and r["answer"]
        assert r["question"].startswith("what is the background when the diamond appears")
    sharp = next(r for r in rows.values() if r["label"] == "ShaRP")
    assert (sharp["kept_tokens"], sharp["visual_tokens"]) == (184, 784)
    report = next(ui for ui in res.ui.values() if "videoprune_report" in ui)
    assert len(report["videoprune_report"]) == 2
