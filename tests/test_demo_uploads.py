"""Uploads in the demo: staged under their own name, previewed as WebM, warned about on the built-in model."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from demo import uploads
from demo.service import DemoError
from test_demo import _settings, svc  # noqa: F401  (the module's service fixture)


def _write(path, frames, fourcc="mp4v", fps=10.0):
    h, w = frames.shape[1:3]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert out.isOpened()
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    return path


def _noise(n=12, h=61, w=83, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_an_upload_keeps_its_own_name_in_the_input_folder(tmp_path):
    src = _write(tmp_path / "my clip.mp4", _noise())
    assert uploads.stage_upload(src, tmp_path / "input") == "my_clip.mp4"
    assert uploads.stage_upload(src, tmp_path / "input") == "my_clip.mp4"        # the same file twice: one file


def test_a_different_file_with_a_taken_name_gets_its_digest_appended(tmp_path):
    (tmp_path / "a").mkdir()
    a = _write(tmp_path / "a" / "clip.mp4", _noise(seed=1))
    b = _write(tmp_path / "clip.mp4", _noise(seed=2))
    assert uploads.stage_upload(a, tmp_path / "input") == "clip.mp4"
    name = uploads.stage_upload(b, tmp_path / "input")
    assert name == f"clip-{uploads.file_digest(b)}.mp4"
    assert (tmp_path / "input" / name).read_bytes() == b.read_bytes()
    assert (tmp_path / "input" / "clip.mp4").read_bytes() == a.read_bytes()   # the first upload untouched


@pytest.mark.parametrize("name, fourcc", [("clip_a.mp4", "mp4v"), ("camera.avi", "MJPG")])
def test_every_upload_gets_a_vp8_webm_preview_of_the_whole_clip(tmp_path, name, fourcc):
    src = _write(tmp_path / name, _noise(n=12), fourcc=fourcc, fps=10.0)
    preview = uploads.playable_preview(src, tmp_path / "previews")
    assert preview.suffix == ".webm"
    cap = cv2.VideoCapture(str(preview))
    try:
        codec = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
        n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
        ok, frame = cap.read()
    finally:
        cap.release()
    assert codec == "VP80" and ok
    assert frame.shape[0] % 2 == 0 and frame.shape[1] % 2 == 0                  # VP8 wants even sizes
    assert n == 12 and fps == pytest.approx(10.0, rel=0.01)
    assert uploads.playable_preview(src, tmp_path / "previews") == preview    # written once


def test_a_long_upload_is_previewed_at_a_lower_rate_lasting_as_long(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "PREVIEW_FRAMES", 6)
    src = _write(tmp_path / "long.mp4", _noise(n=24), fps=12.0)                 # 2 s
    cap = cv2.VideoCapture(str(uploads.playable_preview(src, tmp_path / "previews")))
    n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert n == 6 and n / fps == pytest.approx(2.0, rel=0.05)


def test_the_world_warning_names_the_built_in_models_world_and_only_for_it():
    class Builtin:
        name = "builtin"

    class Real:
        name = "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"

    from pruning_core.synthetic import make_sample
    real_looking = _noise(n=4, h=112, w=112)
    assert "only knows its synthetic world" in uploads.world_warning(Builtin(), None)
    assert "not from that world" in uploads.world_warning(Builtin(), real_looking)
    assert "look like one of its clips" in uploads.world_warning(Builtin(), make_sample(1, 4).frames)
    assert uploads.world_warning(Real(), real_looking) == ""


def test_a_non_video_upload_is_a_one_line_error(tmp_path, svc):  # noqa: F811
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    with pytest.raises(DemoError, match="not a video file"):
        svc.stage_upload(notes)


def test_the_downloaded_workflow_of_an_upload_names_the_file_not_the_demos_folders(tmp_path, svc):  # noqa: F811
    src = _write(tmp_path / "clip_b.avi", _noise(n=6, h=64, w=64), fourcc="MJPG")
    s = _settings(svc, ["uniform"], source="upload", upload=str(src))
    _, ui, path = svc.compare_workflow(s)
    (load,) = [n for n in ui["nodes"] if n["type"] == "VideoPruneLoadVideo"]
    assert load["widgets_values"][0] == "clip_b.avi" and load["widgets_values"][3] == ""
    text = path.read_text()
    assert str(svc.cache_dir) not in text and "uploads/" not in text
    assert json.loads(text) == ui
    out = svc.compare(s)                       # and the demo runs that very file from its input folder
    assert out.rows[1]["kept_tokens"] < out.rows[0]["kept_tokens"]
