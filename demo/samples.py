"""The bundled sample clips: the synthetic videos the built-in model knows, written once to a cache dir.

A run on a sample never reads these files: the graph's Load Video node regenerates the exact
frames from ``sample-N`` (no codec loss). The files are what the browser previews, and what a
user can download. A clip depends on its frame count (scenes are laid out over the frames), so
each (sample, frames) pair has its own file and its own question.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nodes.videos import NUM_SAMPLES, SAMPLE_PREFIX, is_sample, sample_names
from pruning_core.errors import VideoError
from pruning_core.synthetic import DEFAULT_FRAMES, make_sample

PREVIEW_FPS = 4.0
# Browsers play VP8 WebM; mp4v is the fallback every OpenCV build can write (download only).
_CODECS = (("VP80", ".webm"), ("mp4v", ".mp4"))


@dataclass(frozen=True)
class SampleClip:
    name: str          # "sample-N", what the Load Video node takes
    frames: int
    question: str
    answer: str
    path: Path         # preview file


def sample_index(name: str) -> int:
    if not isinstance(name, str) or not is_sample(name):
        raise VideoError(f"{name!r} is not a sample clip name (sample-0 .. sample-{NUM_SAMPLES - 1})")
    return int(name[len(SAMPLE_PREFIX):])


def write_clip(path: Path, frames: np.ndarray, fps: float = PREVIEW_FPS) -> Path:
    """Write RGB uint8 frames to ``path`` with the first codec this OpenCV can encode; returns the file.

    Written to a temporary name and renamed, so a concurrent reader never sees half a file.
    """
    h, w = frames.shape[1:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    for fourcc, ext in _CODECS:
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
    raise VideoError(f"OpenCV cannot write a video file here ({path.parent}); no WebM or MP4 encoder")


def clip(name: str, frames: int, cache_dir: Path) -> SampleClip:
    """The sample ``name`` at ``frames`` frames, its preview written under ``cache_dir`` if missing."""
    idx = sample_index(name)
    if frames < 1:
        raise VideoError(f"a sample needs at least 1 frame, got {frames}")
    s = make_sample(idx, frames)
    stem = Path(cache_dir) / "samples" / f"{name}-{frames}f"
    existing = [stem.with_suffix(ext) for _, ext in _CODECS if stem.with_suffix(ext).is_file()]
    path = existing[0] if existing else write_clip(stem, s.frames)
    return SampleClip(name, frames, s.question.text, s.question.answer, path)


def ensure_samples(cache_dir: Path, frames: int = DEFAULT_FRAMES, n: int = NUM_SAMPLES) -> list[SampleClip]:
    """Every sample at ``frames`` frames, written on first start and reused afterwards."""
    return [clip(name, frames, cache_dir) for name in sample_names()[:n]]


def choice_label(c: SampleClip) -> str:
    """What the sample picker shows. Not the question: it changes with the frame count."""
    return f"{c.name} (synthetic clip)"

