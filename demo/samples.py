"""The bundled sample clips: the synthetic videos the built-in model knows, written once to a cache dir.

A run on a sample never reads these files: the graph's Load Video node regenerates the exact
frames from ``sample-N`` (no codec loss). The files are what the browser previews, and what a
user can download. A clip depends on its frame count (scenes are laid out over the frames), so
each (sample, frames) pair has its own file and its own question.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from nodes.videos import NUM_SAMPLES, SAMPLE_PREFIX, is_sample, sample_names
from pruning_core.errors import VideoError
from pruning_core.synthetic import DEFAULT_FRAMES, make_sample
from pruning_core.video import WEB_CODECS as _CODECS, write_clip

PREVIEW_FPS = 4.0
# Browsers play VP8 WebM; mp4v is the fallback every OpenCV build can write (download only).


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

