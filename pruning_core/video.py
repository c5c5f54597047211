"""Video decode with OpenCV: uniform frame sampling, fps cap, bounded size, RGB uint8 out.

``load_video`` reads a file; ``frames_from_array`` accepts frames that are already decoded
(ComfyUI ``IMAGE`` tensors, numpy arrays). Both return RGB ``uint8`` ``[T, H, W, 3]``.

Sampling: the video's ``n`` frames are cut into ``k`` equal bins and the frame at the centre of
each bin is taken (``floor((i + 0.5) * n / k)``), so the samples cover the whole video evenly
and never sit on its very first/last frame only. Short videos return what exists: asking for
8 frames of a 1-frame video gives 1 frame, never repeats; the caller (e.g. an adapter that
needs an even count) decides how to pad.

Memory: with ``max_side`` each frame is downscaled (``INTER_AREA``) right after it is decoded,
and with ``frame_transform`` (e.g. ``pixels.decode_transform`` of a model's preprocessing) each
frame leaves the decoder already at the model's input size, so only one full-resolution frame is
ever held. Frames above ``MAX_PIXELS`` (per frame) and
outputs above ``MAX_OUTPUT_BYTES`` are refused with a clear error instead of exhausting memory.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .checkpoints import checkpoint
from .errors import VideoError
from .timing import VideoTiming
from .tokens import uniform_ids

MAX_PIXELS = 8192 * 8192
"""Largest decoded frame accepted (width x height, ~67 MP: covers 8K and 8000x6000 stills)."""

MAX_OUTPUT_BYTES = 4 * 1024 ** 3
"""Largest returned frame array; beyond it the caller must lower ``num_frames`` or ``max_side``."""

# Sparse samples are reached by seeking; dense ones by grabbing (cheaper than a seek).
_SEEK_GAP = 48


@dataclass
class Video:
    """Sampled frames of one video.

    frames:        RGB uint8 [T, H, W, 3].
    timestamps:    [T] float seconds of each sampled frame (index / fps; container clock if fps unknown).
    fps:           the container's frame rate (0.0 when it does not say).
    source_frames: frames the video really has (counted by decoding when the container's count is wrong).
    path:          the file read ("" for in-memory frames).
    indices:       [T] source frame index of each sample.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    fps: float
    source_frames: int
    path: str = ""
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def timing(self) -> VideoTiming:
        """What the adapters need to know about when each frame was (fps, indices, timestamps)."""
        return VideoTiming.of(self.fps, self.indices, self.source_frames, self.timestamps)

    @property
    def duration(self) -> float:
        """Seconds covered by the source video (0.0 when its fps is unknown)."""
        return self.source_frames / self.fps if self.fps > 0 else 0.0

    def to_dict(self) -> dict:
        return {"path": self.path, "num_frames": self.num_frames, "height": int(self.frames.shape[1]),
                "width": int(self.frames.shape[2]), "fps": self.fps, "source_frames": self.source_frames,
                "timestamps": [round(float(t), 4) for t in self.timestamps],
                "indices": [int(i) for i in self.indices], "sampled_fps": self.timing.sampled_fps}


# ---------------------------------------------------------------- pure helpers

def sample_indices(n: int, num_frames: int | None, fps: float = 0.0, max_fps: float | None = None) -> np.ndarray:
    """Source frame indices to sample, ascending and unique.

    ``num_frames`` None or 0 means every frame. ``max_fps`` caps the samples at
    ``floor(duration * max_fps)`` (at least 1); it is ignored when the fps is unknown.
    """
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    k = n if not num_frames or num_frames <= 0 else min(int(num_frames), n)
    if max_fps is not None and max_fps > 0 and fps > 0:
        k = min(k, max(1, int(math.floor(n / fps * max_fps + 1e-9))))
    return uniform_ids(n, k).numpy().astype(np.int64)


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) with the longer side at most ``max_side``, aspect kept, never upscaled."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, int(round(width * s))), max(1, int(round(height * s)))


def resize_frames(frames: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale [T, H, W, 3] uint8 frames so the longer side is at most ``max_side`` (INTER_AREA)."""
    t, h, w = frames.shape[:3]
    nw, nh = scaled_size(w, h, max_side)
    if (nw, nh) == (w, h):
        return frames
    out = np.empty((t, nh, nw, 3), dtype=np.uint8)
    for i in range(t):
        out[i] = cv2.resize(frames[i], (nw, nh), interpolation=cv2.INTER_AREA)
    return out


# ---------------------------------------------------------------- decoding

def _name(path: str) -> str:
    return os.path.basename(path) or path


def _open(path: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"video '{_name(path)}' cannot be opened: not a video OpenCV can decode, or corrupt")
    return cap


def _count_frames(path: str) -> int:
    """Frames that really decode, counted by grabbing (no pixel conversion, nothing kept)."""
    cap = _open(path)
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def _check_pixels(path: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoError(f"video '{_name(path)}' is {width}x{height} ({width * height / 1e6:.0f} MP per frame), "
                         f"above the {max_pixels / 1e6:.0f} MP limit")


FrameTransform = Callable[[np.ndarray, int], np.ndarray]
"""(RGB uint8 frame [H, W, 3], number of frames sampled) → RGB uint8 frame, applied as each frame is decoded."""


def _read_indices(cap: cv2.VideoCapture, path: str, indices: np.ndarray, max_side: int | None,
                  max_pixels: int, max_bytes: int,
                  transform: FrameTransform | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    """Decode the frames at ``indices`` (ascending) from an open capture.

    Returns (frames, container timestamps in s); frames is None if the video ended before the
    last index (its frame count was wrong), so the caller can count and sample again.
    """
    out: np.ndarray | None = None
    stamps = np.zeros(len(indices), dtype=np.float64)
    pos = 0  # index of the frame the next grab() returns
    for j, idx in enumerate(indices.tolist()):
        if idx - pos > _SEEK_GAP and cap.set(cv2.CAP_PROP_POS_FRAMES, idx):
            pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
            if pos != idx:  # seek landed elsewhere: restart and walk there frame by frame
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                pos = 0
        while pos < idx:
            if not cap.grab():
                return None, stamps
            pos += 1
        if not cap.grab():
            return None, stamps
        pos += 1
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            return None, stamps
        stamps[j] = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        h, w = frame.shape[:2]
        _check_pixels(path, w, h, max_pixels)
        nw, nh = scaled_size(w, h, max_side)
        if (nw, nh) != (w, h):
            frame = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
        if transform is not None:
            frame = transform(cv2.cvtColor(frame[..., :3], cv2.COLOR_BGR2RGB), len(indices))
            nh, nw = frame.shape[:2]
        if out is None:
            need = len(indices) * nh * nw * 3
            if need > max_bytes:
                raise VideoError(f"video '{_name(path)}': {len(indices)} frames of {nw}x{nh} need "
                                 f"{need / 1024 ** 3:.1f} GiB; lower the frame count or set a max side")
            out = np.empty((len(indices), nh, nw, 3), dtype=np.uint8)
        elif out.shape[1:3] != (nh, nw):  # resolution changed mid-stream: fit it to the first
            frame = cv2.resize(frame, (out.shape[2], out.shape[1]), interpolation=cv2.INTER_AREA)
        if transform is not None:
            out[j] = frame
        else:
            cv2.cvtColor(frame[..., :3], cv2.COLOR_BGR2RGB, dst=out[j])
        checkpoint("decoding frames", j + 1, len(indices))
    return out, stamps


def load_video(path: str | os.PathLike, num_frames: int | None = 8, max_fps: float | None = None,
               max_side: int | None = None, max_pixels: int = MAX_PIXELS,
               max_bytes: int = MAX_OUTPUT_BYTES, frame_transform: FrameTransform | None = None,
               select: Callable[[int, float], np.ndarray] | None = None) -> Video:
    """Decode ``num_frames`` frames sampled uniformly across the whole video (centred in equal bins).

    ``num_frames`` None/0: every frame. ``max_fps``: at most that many samples per second of
    video. ``max_side``: downscale each frame as it is read so its longer side is at most this.
    ``frame_transform``: applied to each RGB frame as it is decoded (after ``max_side``), e.g. the
    model's own resize so that the clip is held at the model's input size only.
    ``select``: ``(frame count, fps) -> ascending frame indices`` instead of the uniform sampling
    (e.g. VideoHelperSuite's rate / skip / every-nth / cap rules).
    When the container reports no frame count, or a wrong one, the frames are counted by
    decoding and the samples drawn from the true count.
    Raises ``VideoError`` (one line naming the file) for a missing, unreadable or empty video,
    and for frames above ``max_pixels`` or an output above ``max_bytes``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoError(f"video '{path}' does not exist")
    if not os.path.isfile(path):
        raise VideoError(f"video '{path}' is not a file")
    if num_frames is not None and num_frames < 0:
        raise VideoError(f"video '{_name(path)}': num_frames must be >= 0, got {num_frames}")
    if max_side is not None and max_side < 1:
        raise VideoError(f"video '{_name(path)}': max_side must be >= 1, got {max_side}")
    def _pick(n: int, fps: float) -> np.ndarray:
        idx = select(n, fps) if select is not None else sample_indices(n, num_frames, fps, max_fps)
        if len(idx) == 0:
            raise VideoError(f"video '{_name(path)}': the frame selection keeps no frame of its {n}")
        return np.asarray(idx, dtype=np.int64)

    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = 0.0
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        _check_pixels(path, w, h, max_pixels)
        reported = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        n = int(reported) if math.isfinite(reported) and reported > 0 else 0
        frames = None
        if n > 0:
            idx = _pick(n, fps)
            frames, stamps = _read_indices(cap, path, idx, max_side, max_pixels, max_bytes, frame_transform)
    finally:
        cap.release()
    if frames is None:  # count missing or wrong: count what decodes, then sample again
        n = _count_frames(path)
        if n == 0:
            raise VideoError(f"video '{_name(path)}' has no decodable frames (empty or corrupt)")
        idx = _pick(n, fps)
        cap = _open(path)
        try:
            frames, stamps = _read_indices(cap, path, idx, max_side, max_pixels, max_bytes, frame_transform)
        finally:
            cap.release()
        if frames is None:
            raise VideoError(f"video '{_name(path)}' stops decoding part-way (corrupt stream)")
    timestamps = idx / fps if fps > 0 else stamps
    return Video(frames=frames, timestamps=np.asarray(timestamps, dtype=np.float64), fps=fps,
                 source_frames=n, path=path, indices=idx)


def probe_video(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[int, int, int, float]:
    """(width, height, frame count, fps) from the container header, decoding nothing (count and
    fps are 0 when the container does not say). Raises ``VideoError`` like ``load_video``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"video '{path}' does not exist" if not os.path.exists(path) else
                         f"video '{path}' is not a file")
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        reported = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    _check_pixels(path, w, h, max_pixels)
    fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else 0.0
    return w, h, int(reported) if math.isfinite(reported) and reported > 0 else 0, fps


# ---------------------------------------------------------------- in-memory frames

def frames_from_array(x, max_side: int | None = None) -> np.ndarray:
    """RGB uint8 [T, H, W, 3] from a ComfyUI IMAGE ([T,H,W,3] float 0..1 torch) or a numpy array.

    Accepts float (0..1, clipped) or uint8 arrays, torch or numpy, a single image [H, W, C],
    and RGBA (alpha dropped) or grey (repeated to RGB) channels.
    """
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3, 4) or 0 in a.shape:
        raise VideoError(f"frames must be an image batch [T, H, W, 3], got shape {tuple(a.shape)}")
    if a.dtype == np.uint8:
        out = a
    elif a.dtype.kind == "f":  # frame by frame: no clip-sized float temporaries, and stoppable between frames
        out = np.empty(a.shape, dtype=np.uint8)
        for i in range(a.shape[0]):
            out[i] = np.clip(np.nan_to_num(a[i], nan=0.0), 0.0, 1.0) * 255.0 + 0.5
            checkpoint("converting frames", i + 1, a.shape[0])
    elif a.dtype.kind in "iu" or a.dtype == np.bool_:
        out = np.clip(a, 0, 255).astype(np.uint8)
    else:
        raise VideoError(f"frames have an unsupported dtype {a.dtype}")
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    elif out.shape[-1] == 4:
        out = out[..., :3]
    return resize_frames(np.ascontiguousarray(out), max_side)


def frames_to_image(frames: np.ndarray):
    """ComfyUI IMAGE (float32 torch [T, H, W, 3] in 0..1) from RGB uint8 frames (frame by frame: stoppable)."""
    import torch
    src = torch.from_numpy(np.ascontiguousarray(frames))
    out = torch.empty(src.shape, dtype=torch.float32)
    for i in range(src.shape[0]):
        torch.div(src[i], 255.0, out=out[i])
        checkpoint("converting frames", i + 1, src.shape[0])
    return out


# browser-playable first; the demo and the ComfyUI preview route write their clips through here
WEB_CODECS = (("VP80", ".webm"), ("mp4v", ".mp4"))


def write_clip(path: os.PathLike | str, frames: np.ndarray, fps: float = 4.0,
               codecs: tuple[tuple[str, str], ...] = WEB_CODECS) -> Path:
    """Write RGB uint8 frames to ``path`` with the first of ``codecs`` (fourcc, suffix) this OpenCV can
    encode; returns the file (``path`` with that suffix).

    Written to a temporary name and renamed, so a concurrent reader never sees half a file.
    """
    path = Path(path)
    h, w = frames.shape[1:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    for fourcc, ext in codecs:
        target = path.with_suffix(ext)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{ext}")
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
        if not writer.isOpened():
            writer.release()
            tmp.unlink(missing_ok=True)
            continue
        try:
            for f in frames:
                writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        if tmp.is_file() and tmp.stat().st_size > 0:
            os.replace(tmp, target)
            return target
        tmp.unlink(missing_ok=True)
    names = " or ".join(f"{c} ({e})" for c, e in codecs)
    raise VideoError(f"OpenCV cannot write a video file here ({path.parent}); no {names} encoder")
