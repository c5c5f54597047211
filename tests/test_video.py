"""Video decode: uniform sampling, fps cap, max side, timestamps, bad files, huge frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pruning_core import video as video_mod
from pruning_core.errors import VideoError
from pruning_core.video import frames_from_array, frames_to_image, load_video, sample_indices


def _write(path, n, size=(64, 48), fps=10.0, fourcc="mp4v", step=10):
    """A video whose frame i is a flat grey of level step*i (so a frame's index can be read back)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((h, w, 3), step * i, np.uint8))
    writer.release()
    return path


def _levels(frames):
    return np.round(frames.reshape(len(frames), -1).mean(1) / 10.0).astype(int)


@pytest.fixture
def mp4(tmp_path):
    return _write(tmp_path / "clip.mp4", 20)


@pytest.fixture
def avi(tmp_path):
    return _write(tmp_path / "clip.avi", 20, fourcc="MJPG")


def test_sample_indices_are_centred_in_equal_bins():
    assert sample_indices(20, 4).tolist() == [2, 7, 12, 17]


def test_sample_indices_without_a_count_take_every_frame():
    assert sample_indices(5, None).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(5, 0).tolist() == [0, 1, 2, 3, 4]


def test_sample_indices_fps_cap_limits_samples_per_second():
    # 20 frames at 10 fps = 2 s; at most 1.5 samples/s -> 3 samples
    assert len(sample_indices(20, 8, fps=10.0, max_fps=1.5)) == 3


@pytest.mark.parametrize("name", ["mp4", "avi"])
def test_uniform_sampling_reads_the_sampled_frames(name, request):
    v = load_video(request.getfixturevalue(name), num_frames=4)
    assert v.frames.shape == (4, 48, 64, 3) and v.frames.dtype == np.uint8
    assert v.indices.tolist() == [2, 7, 12, 17]
    assert _levels(v.frames).tolist() == [2, 7, 12, 17]
    assert v.source_frames == 20 and v.fps == pytest.approx(10.0)


def test_output_is_rgb_not_bgr(tmp_path):
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 32))
    for _ in range(2):
        writer.write(np.dstack([np.zeros((32, 32)), np.zeros((32, 32)), np.full((32, 32), 255)]).astype(np.uint8))
    writer.release()
    px = load_video(path, num_frames=1).frames[0, 16, 16]
    assert px[0] > 200 and px[2] < 50


def test_timestamps_are_seconds_of_the_sampled_frames(mp4):
    v = load_video(mp4, num_frames=4)
    assert np.allclose(v.timestamps, [0.2, 0.7, 1.2, 1.7])


def test_fps_cap_limits_frames_per_second_of_video(mp4):
    v = load_video(mp4, num_frames=16, max_fps=2.0)
    assert v.num_frames == 4
    assert np.all(np.diff(v.timestamps) >= 0.5 - 1e-9)


def test_max_side_downscales_keeping_aspect(avi):
    v = load_video(avi, num_frames=2, max_side=32)
    assert v.frames.shape == (2, 24, 32, 3)
    assert _levels(v.frames).tolist() == [5, 15]


def test_max_side_never_upscales(avi):
    assert load_video(avi, num_frames=1, max_side=1000).frames.shape[1:3] == (48, 64)


def test_more_frames_than_the_video_has_returns_every_frame(tmp_path):
    v = load_video(_write(tmp_path / "five.mp4", 5), num_frames=8)
    assert v.indices.tolist() == [0, 1, 2, 3, 4]


def test_one_frame_video_returns_that_frame_without_repeating(tmp_path):
    v = load_video(_write(tmp_path / "one.avi", 1, fourcc="MJPG"), num_frames=8)
    assert v.frames.shape == (1, 48, 64, 3) and v.source_frames == 1


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(VideoError, match="nope.mp4.*does not exist"):
        load_video(tmp_path / "nope.mp4")


def test_text_file_renamed_mp4_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match="notes.mp4"):
        load_video(path)


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.avi"
    path.write_bytes(b"")
    with pytest.raises(VideoError, match="empty.avi"):
        load_video(path)


def test_directory_is_not_a_video(tmp_path):
    with pytest.raises(VideoError, match="not a file"):
        load_video(tmp_path)


def test_video_with_zero_frames_is_a_clear_error(tmp_path):
    path = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 32))
    writer.release()
    with pytest.raises(VideoError, match="zero.avi"):
        load_video(path)


_RealCapture = cv2.VideoCapture


class _LyingCapture:
    """A capture whose container reports a wrong frame count (wraps the real one: OpenCV's
    types crash at garbage collection when subclassed in Python)."""

    def __init__(self, path, reported):
        self._cap = _RealCapture(path)
        self._reported = reported

    def get(self, prop):
        return self._reported if prop == cv2.CAP_PROP_FRAME_COUNT else self._cap.get(prop)

    def __getattr__(self, name):
        return getattr(self._cap, name)


@pytest.mark.parametrize("reported", [0.0, -1.0, 35.0])
def test_missing_or_wrong_frame_count_falls_back_to_counting(mp4, monkeypatch, reported):
    monkeypatch.setattr(video_mod.cv2, "VideoCapture", lambda path: _LyingCapture(path, reported))
    v = load_video(mp4, num_frames=4)
    assert v.source_frames == 20
    assert _levels(v.frames).tolist() == [2, 7, 12, 17]


def test_sparse_samples_seek_to_the_right_frames(tmp_path):
    v = load_video(_write(tmp_path / "long.avi", 200, size=(16, 16), fourcc="MJPG", step=1), num_frames=2)
    assert v.indices.tolist() == [50, 150]
    # green carries luma, so JPEG keeps it exact; red/blue drift by chroma rounding
    assert np.abs(v.frames[..., 1].reshape(2, -1).mean(1) - [50, 150]).max() < 0.5


def test_frames_above_the_pixel_cap_are_refused(avi):
    with pytest.raises(VideoError, match=r"64x48.*limit"):
        load_video(avi, max_pixels=1000)


def test_output_above_the_byte_cap_is_refused(avi):
    with pytest.raises(VideoError, match="max side"):
        load_video(avi, num_frames=20, max_bytes=64 * 48 * 3 * 10)


def test_huge_resolution_decodes_downscaled(tmp_path):
    path = tmp_path / "huge.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 1, (8000, 6000))
    frame = np.zeros((6000, 8000, 3), np.uint8)
    frame[:, 4000:] = 255
    writer.write(frame)
    writer.release()
    del frame
    v = load_video(path, num_frames=4, max_side=400)
    assert v.frames.shape == (1, 300, 400, 3)
    assert v.frames[0, :, :190].max() < 30 and v.frames[0, :, 210:].min() > 225


def test_frames_from_comfy_image_tensor():
    x = torch.zeros(2, 4, 5, 3)
    x[1] = 1.0
    x[0, 0, 0] = torch.tensor([0.5, 2.0, -1.0])
    out = frames_from_array(x)
    assert out.dtype == np.uint8 and out.shape == (2, 4, 5, 3)
    assert out[0, 0, 0].tolist() == [128, 255, 0] and out[1].min() == 255


def test_frames_from_uint8_array_is_unchanged():
    x = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    assert np.array_equal(frames_from_array(x), x)


def test_frames_from_single_rgba_image():
    out = frames_from_array(np.full((4, 5, 4), 7, np.uint8))
    assert out.shape == (1, 4, 5, 3)


def test_frames_from_array_rejects_wrong_shape():
    with pytest.raises(VideoError, match="shape"):
        frames_from_array(np.zeros((2, 4, 5, 2), np.uint8))
    with pytest.raises(VideoError, match="shape"):
        frames_from_array(np.zeros((0, 4, 5, 3), np.uint8))


def test_frames_round_trip_through_comfy_image():
    x = np.random.default_rng(1).integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)
    img = frames_to_image(x)
    assert img.dtype == torch.float32 and float(img.max()) <= 1.0
    assert np.array_equal(frames_from_array(img), x)
