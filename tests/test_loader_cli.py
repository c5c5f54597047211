"""Loading real checkpoints from folders, and the CLI's answers and errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pruning_core.errors import ModelLoadError
from pruning_core.loader import load_model
from tiny_models import random_video, tiny_llava, tiny_qwen2vl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def saved_llava(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llava")
    model, tok = tiny_llava()
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path)


def _cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "pruning_core", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def test_loader_reads_a_saved_checkpoint_folder_with_safetensors(saved_llava):
    ad = load_model(saved_llava, device="cpu")
    assert ad.backbone == "llava_onevision"
    assert ad.dtype == torch.float32 and ad.info.attn_impl == "sdpa"
    assert os.path.isfile(os.path.join(saved_llava, "model.safetensors"))


def test_loader_reads_a_saved_qwen2vl_folder(tmp_path):
    model, tok = tiny_qwen2vl()
    model.save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    assert load_model(str(tmp_path), device="cpu").backbone == "qwen2_vl"


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nope"))


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError):
        load_model(str(tmp_path))


def test_unreachable_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not a local folder"):
        load_model("no-such-org/no-such-model-xyz")


def test_unknown_dtype_and_attention_are_clear_errors(saved_llava):
    with pytest.raises(ModelLoadError, match="dtype"):
        load_model(saved_llava, dtype="fp7")
    with pytest.raises(ModelLoadError, match="attention"):
        load_model(saved_llava, attn="magic")


def _write_video(path, frames):
    import cv2
    h, w = frames.shape[1:3]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 4.0, (w, h))
    for f in frames:
        vw.write(f[:, :, ::-1])
    vw.release()


def test_cli_answer_prints_the_json_fields(saved_llava, tmp_path):
    vid = tmp_path / "v.mp4"
    _write_video(vid, random_video(6, 32, seed=9))
    r = _cli("answer", "--model", saved_llava, "--video", str(vid), "--question", "what colour is the circle ?",
             "--frames", "4", "--plan", "fastv:layer=2,retention=0.25", "--json", "--quiet", "--max-new-tokens", "3")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("answer", "plan", "visual_tokens", "kept_tokens", "retention", "ttft_ms", "prefill_ms",
                "decode_ms_per_token", "flops", "flops_unpruned", "kv_cache_bytes", "stages"):
        assert key in out
    assert out["visual_tokens"] == 4 * 16 and out["kept_tokens"] == 16
    assert out["stages"][0]["name"] == "fastv" and "overhead_ms" in out["stages"][0]
    assert out["flops"] < out["flops_unpruned"]
    pre = out["checkpoint"]["preprocessing"]  # what the checkpoint gave, reported
    assert pre["backbone"] == "llava_onevision" and pre["size"] == {"height": 32, "width": 32}
    assert out["checkpoint"]["prompt"]["chat_template"] is False  # tiny tokenizer: hard-coded fallback
    assert out["video"]["sampled_fps"] == pytest.approx(4 / 6 * 4.0)
    assert "no chat template" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--video", "/no/such.mp4"], "error:"),
    (["--plan", "fastv:layer=99"], "out of range"),
    (["--plan", "fastv:retention=2"], "outside"),
    (["--plan", "warp:speed=9"], "unknown method"),
])
def test_cli_errors_are_one_line_and_nonzero(saved_llava, tmp_path, capsys, args, needle):
    from pruning_core.cli import main
    vid = tmp_path / "v.mp4"
    _write_video(vid, random_video(4, 32, seed=3))
    base = ["answer", "--model", saved_llava, "--video", str(vid), "--question", "what ?", "--quiet"]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_cli_missing_model_is_one_line_error(tmp_path, capsys):
    from pruning_core.cli import main
    vid = tmp_path / "v.mp4"
    _write_video(vid, random_video(4, 32, seed=3))
    assert main(["answer", "--model", str(tmp_path / "missing"), "--video", str(vid), "--question", "what ?"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_cli_flops_reproduces_sharp_table1(capsys):
    from pruning_core.cli import main
    assert main(["flops", "--preset", "llava-onevision-7b", "--visual-tokens", "6272", "--plan",
                 "fastv:layer=2,retention=0.25", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tflops_unpruned"] == pytest.approx(40.8, rel=0.01)
    assert out["tflops"] == pytest.approx(11.0, rel=0.01)


def test_llava_pixels_follow_the_processor_transform(tiny_llava):
    ad = tiny_llava.adapter
    frames = np.full((2, 32, 32, 3), 255, np.uint8)
    pv = ad.pixel_values(frames)
    mean, std = torch.tensor(ad.image_mean), torch.tensor(ad.image_std)
    torch.testing.assert_close(pv[0, 0, :, 0, 0], (1 - mean) / std)
    assert pv.shape == (1, 2, 3, ad.image_size, ad.image_size)


def test_qwen_patches_follow_the_processor_layout(tiny_qwen2vl):
    ad = tiny_qwen2vl.adapter
    frames = random_video(3, 32, seed=4)  # odd count: padded by repeating the last frame
    pv, grid = ad.pixel_values(frames)
    t, gh, gw = grid[0].tolist()
    assert t == 2 and pv.shape == (t * gh * gw, 3 * 2 * ad.patch * ad.patch)
    # first patch = top-left patch of frames 0 and 1, channel-major then temporal
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    m = torch.tensor(ad.image_mean).view(1, 3, 1, 1)
    s = torch.tensor(ad.image_std).view(1, 3, 1, 1)
    x = (x - m) / s
    p = ad.patch
    expect = x[0:2, :, :p, :p].permute(1, 0, 2, 3).reshape(-1)
    torch.testing.assert_close(pv[0], expect, atol=1e-5, rtol=1e-5)


def test_cli_sample_video_writes_a_readable_video_and_names_its_question(tmp_path, capsys):
    from pruning_core.cli import main
    from pruning_core.video import load_video
    out = tmp_path / "sample.mp4"
    assert main(["sample-video", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["answer"] in info["question"] and load_video(str(out), num_frames=4).frames.shape[0] == 4
