"""Where the Load Video node finds videos: files in the input folders, or a built-in sample clip.

The sample clips are the synthetic videos the built-in model was trained on (one question
each), so a workflow that uses them runs anywhere with no file at all.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pruning_core.errors import VideoError

from . import context
from .paths import is_inside, resolve_inside

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".m4v", ".mpg", ".mpeg")
SAMPLE_PREFIX = "sample-"
NUM_SAMPLES = 8


def sample_names() -> list[str]:
    return [f"{SAMPLE_PREFIX}{i}" for i in range(NUM_SAMPLES)]


def input_video_names(roots: list[Path] | None = None) -> list[str]:
    """Video files in the input folders (and one level of subfolders), as relative posix paths."""
    names: list[str] = []
    for root in roots if roots is not None else context.input_dirs():
        if not root.is_dir():
            continue
        for p in sorted(list(root.glob("*")) + list(root.glob("*/*"))):
            # a symlink pointing out of the folder is refused when loading, so it is not offered either
            if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and is_inside(p, [root]):
                rel = p.relative_to(root).as_posix()
                if rel not in names:
                    names.append(rel)
    return names


def video_choices() -> list[str]:
    return sample_names() + input_video_names()


def is_sample(name: str) -> bool:
    return name.startswith(SAMPLE_PREFIX) and name[len(SAMPLE_PREFIX):].isdigit()


def load(name: str, num_frames: int, max_side: int) -> tuple[np.ndarray, dict, str]:
    """RGB uint8 frames [T, H, W, 3], video info, and the sample's question ("" for files)."""
    side = max_side if max_side > 0 else None
    if is_sample(name):
        from pruning_core.synthetic import make_sample
        from pruning_core.video import resize_frames
        s = make_sample(int(name[len(SAMPLE_PREFIX):]), num_frames)
        frames = resize_frames(s.frames, side)
        info = {"path": name, "num_frames": int(frames.shape[0]), "height": int(frames.shape[1]),
                "width": int(frames.shape[2]), "fps": 4.0, "source_frames": int(frames.shape[0]),
                "sample": {"question": s.question.text, "answer": s.question.answer}}
        return frames, info, s.question.text
    path = resolve_video_path(name)
    from pruning_core.video import load_video
    v = load_video(path, num_frames=num_frames, max_side=side)
    info = v.to_dict()
    info["path"] = name
    return v.frames, info, ""


def resolve_video_path(name: str) -> Path:
    return resolve_inside(name, context.input_dirs(), "video", VideoError)


def fingerprint(name: str) -> str:
    """Changes when the named file changes (size and mtime), so a replaced video re-runs."""
    if is_sample(name):
        return name
    try:
        p = resolve_video_path(name)
        st = os.stat(p)
    except (OSError, VideoError):
        return f"missing:{name}"
    return f"{p}:{st.st_size}:{st.st_mtime_ns}"
