"""Bad input ends in one clear line, never a traceback: long clips, devices, downloads, folders, caches, worlds."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nodes import context, models, videos
from nodes.errors import NodeExecutionError
from nodes.pack import NODE_CLASS_MAPPINGS as M
from nodes.runtime import Runtime
from nodes.validate import validate_prompt
from pruning_core import world
from pruning_core.context_window import ContextLengthError, max_frames
from pruning_core.engine import Engine
from pruning_core.errors import ModelLoadError
from pruning_core.synthetic import make_sample
from tiny_models import random_video

REPO = Path(__file__).resolve().parent.parent
Q = "what colour is the circle ?"


@pytest.fixture
def small_context(monkeypatch):
    """Shrink a tiny adapter's context to ``n`` positions for one test."""
    def shrink(adapter, n: int):
        monkeypatch.setattr(adapter.text_config, "max_position_embeddings", n)
    return shrink


def _write_video(path, frames, fps=4.0):
    import cv2
    h, w = frames.shape[1:3]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        vw.write(f[:, :, ::-1])
    vw.release()


@pytest.fixture(scope="module")
def builtin():
    from pruning_core.loader import load_model
    return load_model("builtin")


# ---------------------------------------------------------------- context length

@pytest.mark.parametrize("frames, h, w", [(1, 32, 32), (3, 40, 24), (5, 17, 90)])
def test_sequence_length_is_known_before_encoding_and_matches_the_prompt(tiny_any, frames, h, w):
    ad, eng = tiny_any.adapter, tiny_any.engine
    clip = np.random.default_rng(0).integers(0, 256, (frames, h, w, 3), dtype=np.uint8)
    assert ad.sequence_length(frames, h, w, Q) == eng.prepare(clip, Q).input_ids.shape[1]


def test_a_clip_past_the_context_is_refused_before_encoding_with_the_most_frames_that_fit(
        tiny_any, small_context, monkeypatch):
    ad, eng = tiny_any.adapter, tiny_any.engine
    small_context(ad, ad.sequence_length(6, 32, 32, Q) + 1)   # 6 frames (+ 1 answer token) fit exactly
    best = max_frames(ad, 32, 32, Q, 1, 1000)
    assert best >= 6 and ad.sequence_length(best + 1, 32, 32, Q) + 1 > ad.text_config.max_position_embeddings
    monkeypatch.setattr(ad, "encode_video", lambda *a, **k: pytest.fail("encoded a clip that cannot fit"))
    with pytest.raises(ContextLengthError) as ei:
        eng.prepare(random_video(best + 2, 32), Q)
    msg = str(ei.value)
    assert f"use at most {best} frames at this resolution" in msg and "max_position_embeddings" in msg
    assert "\n" not in msg


def test_an_answer_longer_than_the_room_left_is_refused_naming_the_tokens_that_fit(tiny_llava, small_context):
    ad, eng = tiny_llava.adapter, tiny_llava.engine
    prep = eng.prepare(random_video(2, 32), Q)
    small_context(ad, prep.input_ids.shape[1] + 4)
    eng.run(prep, None, max_new_tokens=4)
    with pytest.raises(ContextLengthError, match="ask for at most 4 new tokens"):
        eng.run(prep, None, max_new_tokens=5)


def test_the_answer_node_refuses_a_clip_past_the_context(tiny_llava, small_context):
    small_context(tiny_llava.adapter, tiny_llava.adapter.sequence_length(3, 32, 32, Q) + 2)
    model = models.LoadedModel(tiny_llava.adapter, "tiny")
    frames = torch.from_numpy(random_video(8, 32)).float() / 255
    with pytest.raises(ContextLengthError, match=r"use at most 3 frames"):
        M["VideoPruneAnswer"]().answer(model, frames, Q, 2)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    _write_video(path, np.repeat(random_video(1, 48, seed=2), 200, axis=0), fps=25.0)
    return path


def test_cli_refuses_too_many_frames_in_one_line_before_decoding(long_video, builtin, capsys, monkeypatch):
    from pruning_core import cli, video
    best = max_frames(builtin, 48, 48, Q, 4, 200)   # the built-in model: 4096 positions, 49 tokens a frame
    assert 0 < best < 150
    monkeypatch.setattr(video, "load_video", lambda *a, **k: pytest.fail("decoded before the context check"))
    code = cli.main(["answer", "--video", str(long_video), "--question", Q, "--frames", "150", "--quiet",
                     "--max-new-tokens", "4"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "150 frames at 48x48" in err and f"use at most {best} frames" in err


def test_cli_frames_max_takes_as_many_as_fit_and_says_so(long_video, builtin, capsys):
    from pruning_core import cli
    best = max_frames(builtin, 48, 48, Q, 2, 200)
    code = cli.main(["answer", "--video", str(long_video), "--question", Q, "--frames", "max", "--quiet", "--json",
                     "--max-new-tokens", "2"])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["visual_tokens"] == builtin.visual_token_count(best, 48, 48) - 1
    assert f"using {best} of 200 frames" in err


# ---------------------------------------------------------------- devices and option names

@pytest.mark.parametrize("device", ["bogus", "cuda:x", "meta"])
def test_cli_unknown_device_is_one_line_and_exit_2(long_video, capsys, device):
    from pruning_core import cli
    assert cli.main(["answer", "--video", str(long_video), "--question", Q, "--device", device, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "cpu" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_names_the_flag_on_the_cli_and_the_widget_in_a_node():
    from pruning_core.loader import resolve_device
    with pytest.raises(ModelLoadError, match="use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ModelLoadError) as ei:
        models.load("builtin", device="cuda")
    assert "set the 'device' widget of Load Video LLM to cpu" in str(ei.value) and "--" not in str(ei.value)


# ---------------------------------------------------------------- validation messages

@pytest.mark.parametrize("bad", ["retention", "first_layer"])
def test_a_custom_validation_failure_is_reported_once_under_the_wrong_input(bad):
    declared = M["VideoPrunePDrop"].INPUT_TYPES()["required"]
    inputs = {k: v[1].get("default", v[0][0] if isinstance(v[0], list) else None) for k, v in declared.items()}
    prompt = {"1": {"class_type": "VideoPrunePDrop", "inputs": {**inputs, bad: "abc"}}}
    prompt["2"] = {"class_type": "VideoPruneAnswer", "inputs": {"model": ["9", 0], "frames": ["9", 0],
                                                                "question": "q", "max_new_tokens": 1,
                                                                "plan": ["1", 0]}}
    val = validate_prompt(prompt, M)
    custom = [e for e in val.node_errors["1"]["errors"] if e["type"] == "custom_validation_failed"]
    assert [e["extra_info"]["input_name"] for e in custom] == [bad]


# ---------------------------------------------------------------- folders and downloads

def test_dropdowns_do_not_list_symlinks_pointing_outside_the_allowed_folders(tmp_path):
    inside, outside = tmp_path / "input", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (inside / "real.mp4").write_bytes(b"x")
    (outside / "secret.mp4").write_bytes(b"x")
    os.symlink(outside / "secret.mp4", inside / "escape.mp4")
    os.symlink(inside / "real.mp4", inside / "alias.mp4")
    assert videos.input_video_names([inside]) == ["alias.mp4", "real.mp4"]
    mroot, mout = tmp_path / "LLM", tmp_path / "outside-model"
    (mroot / "ok").mkdir(parents=True)
    (mroot / "ok" / "config.json").write_text("{}")
    mout.mkdir()
    (mout / "config.json").write_text("{}")
    os.symlink(mout, mroot / "escape")
    assert models.local_model_names([mroot]) == ["ok"]


def test_a_runtime_without_downloads_names_the_folder_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "download", lambda *a, **k: pytest.fail("downloaded"))
    rt = Runtime(model_dirs=[tmp_path], allow_downloads=False)
    prompt = {"1": {"class_type": "VideoPruneLoadModel",
                    "inputs": {"model": "builtin", "device": "cpu", "dtype": "fp32", "attention": "auto",
                               "path_or_hub_id": "some-org/huge-model"}},
              "2": {"class_type": "VideoPruneAnswer", "inputs": {"model": ["1", 0], "frames": ["3", 0],
                                                                 "question": "q", "max_new_tokens": 1}},
              "3": {"class_type": "VideoPruneLoadVideo", "inputs": {"video": "sample-0", "num_frames": 1,
                                                                    "max_side": 0}}}
    with pytest.raises(NodeExecutionError) as ei:
        rt.run(prompt)
    msg = str(ei.value)
    assert ei.value.node_id == "1" and "--allow-downloads" in msg and str(tmp_path / "huge-model") in msg


def test_the_demo_refuses_downloads_unless_the_operator_allows_them(tmp_path):
    from demo.service import DemoService
    name = "test-bad-input-model"   # its own name: the service registers it for the Load Video LLM node
    try:
        assert DemoService(name, tmp_path / "a", factory=lambda: None).runtime.allow_downloads is False
        assert DemoService(name, tmp_path / "b", factory=lambda: None, allow_downloads=True).runtime.allow_downloads
    finally:
        models.MODEL_FACTORIES.pop(name, None)


def test_deep_nesting_in_the_demo_workflow_box_is_one_line(tmp_path):
    from demo.service import DemoError, DemoService
    with pytest.raises(DemoError, match="^not a workflow"):
        DemoService.parse_workflow("[" * 100_000 + "]" * 100_000)


# ---------------------------------------------------------------- ShaRP bias cache on disk

def test_the_sharp_bias_disk_cache_is_bounded_least_recently_used_first(tmp_path, monkeypatch):
    from pruning_core.methods import sharp_bias
    monkeypatch.setenv("VIDEOPRUNE_CACHE", str(tmp_path))
    monkeypatch.setenv("VIDEOPRUNE_SHARP_BIAS_MAX_FILES", "3")
    sharp_bias.clear_memory()
    t = 1_000_000_000
    for k in "abc":
        sharp_bias.cached_bias(k, 4, lambda: torch.ones(4))
        os.utime(sharp_bias.cache_dir() / f"{k}.safetensors", ns=(t, t))  # distinct, old mtimes
        t += 10 ** 9
    sharp_bias.clear_memory()
    _, info = sharp_bias.cached_bias("a", 4, lambda: pytest.fail("'a' was on disk"))  # a read refreshes 'a'
    assert info["bias_source"] == "disk"
    sharp_bias.cached_bias("d", 4, lambda: torch.ones(4))
    left = sorted(p.stem for p in sharp_bias.cache_dir().glob("*.safetensors"))
    assert left == ["a", "c", "d"]  # 'b' was the least recently used
    sharp_bias.clear_memory()


# ---------------------------------------------------------------- the built-in model's world

def test_no_warning_for_the_built_in_models_own_clips_and_questions(builtin):
    for seed in range(6):
        s = make_sample(seed, 16)
        assert world.builtin_warning(builtin, s.frames, s.question.text) is None


def test_a_video_outside_the_synthetic_world_is_flagged(builtin):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160]
    scene = np.stack([np.stack([(xx * 1.6 + 9 * i) % 256, yy * 2.1, (xx + yy) % 256], -1) for i in range(8)])
    scene = np.clip(scene + rng.normal(0, 12, scene.shape), 0, 255).astype(np.uint8)
    msg = world.builtin_warning(builtin, scene, make_sample(0, 8).question.text)
    assert msg and "not one of its synthetic clips" in msg and "\n" not in msg


def test_a_question_outside_the_vocabulary_names_the_unknown_words(builtin):
    msg = world.builtin_warning(builtin, make_sample(1, 8).frames, "is the dog running ?")
    assert "'dog'" in msg and "'running'" in msg and "synthetic clips" not in msg


def test_other_models_get_no_world_warning(tiny_llava):
    assert world.builtin_warning(tiny_llava.adapter, random_video(2, 32), "anything goes") is None


def test_the_answer_node_shows_the_world_warning(builtin):
    model = models.LoadedModel(builtin, "builtin")
    frames = torch.rand(2, 64, 64, 3)
    out = M["VideoPruneAnswer"]().answer(model, frames, "is the dog running ?", 1)
    assert out["ui"]["warnings"] and out["ui"]["videoprune"][0]["warning"] == out["ui"]["warnings"][0]


def test_demo_status_carries_the_warnings_of_its_answer_nodes():
    from demo.service import warnings_md, warnings_of

    class Res:
        ui = {"5": {"warnings": ["w1"]}, "6": {"warnings": ["w1", "w2"]}, "7": {"text": ["x"]}}
    assert warnings_of(Res()) == ["w1", "w2"] and warnings_md(["w1"]) == "\n\n**Warning:** w1"


# ---------------------------------------------------------------- the Answer node's question

def test_a_sample_question_wins_and_a_file_falls_back_to_the_question_widget(tiny_llava, monkeypatch):
    model = models.LoadedModel(tiny_llava.adapter, "tiny")
    asked = []
    real = model.prepare
    monkeypatch.setattr(model, "prepare", lambda frames, q, *a, **k: asked.append(q) or real(frames, q, *a, **k))
    frames = torch.from_numpy(random_video(2, 32)).float() / 255
    node = M["VideoPruneAnswer"]()
    node.answer(model, frames, "widget question ?", 1, sample_question="what colour is the circle ?")
    node.answer(model, frames, "widget question ?", 1, sample_question="")   # a video file sends ""
    assert asked == ["what colour is the circle ?", "widget question ?"]


def test_an_example_workflow_runs_on_a_real_video_file(tmp_path):
    _write_video(tmp_path / "clip.mp4", random_video(6, 64, seed=5))
    wf = json.loads((REPO / "example_workflows" / "hieravid.json").read_text())
    rt = Runtime(input_dirs=[tmp_path], output_dir=tmp_path / "out")
    prompt = rt.load(wf)
    video = next(k for k, n in prompt.items() if n["class_type"] == "VideoPruneLoadVideo")
    answer = next(k for k, n in prompt.items() if n["class_type"] == "VideoPruneAnswer")
    res = rt.run(wf, outputs=[answer], overrides=[f"{video}.path=clip.mp4", f"{video}.num_frames=4"])
    assert res.ui[answer]["text"][0] is not None and "warnings" in res.ui[answer]  # built-in on a real file


def test_the_demo_refuses_a_clip_past_the_context_before_running(tiny_llava, small_context, tmp_path):
    from demo.service import DemoError, DemoService
    name = "test-bad-input-context"
    svc = DemoService(name, tmp_path, device="cpu", factory=lambda: tiny_llava.adapter)
    try:
        small_context(tiny_llava.adapter, tiny_llava.adapter.sequence_length(4, 112, 112, Q) + 2)
        svc.settings("sample-1", None, Q, ["fastv"], 0.25, 4, 2)         # fits
        with pytest.raises(DemoError, match=r"use at most 4 frames .*Frames slider"):
            svc.settings("sample-1", None, Q, ["fastv"], 0.25, 9, 2)
    finally:
        models.MODEL_FACTORIES.pop(name, None)
