"""Uploaded videos: staged into the runtime's input folder under their own name, previewed in a
format every browser plays, and flagged when the built-in model cannot know what they show.

* Staging: the file goes to the input folder's top level under its (sanitised) name, where a
  ComfyUI user drops it into ``ComfyUI/input``, so the workflow the demo offers for download names
  the file and nothing of this server. A *different* file already holding that name gets the
  content digest appended (``clip-1a2b3c4d5e6f7a8b.mp4``); the same upload twice is one file.
* Preview: browsers play VP8 WebM, not the MPEG-4 Part 2 (``mp4v``) or MJPG that OpenCV and many
  cameras write, so every upload is re-encoded like the sample clips (``pruning_core.video.write_clip``): at
  most ``PREVIEW_FRAMES`` frames sampled evenly over the whole clip, the frame rate lowered to keep
  its duration, the longer side at most ``PREVIEW_SIDE`` px.
* Warning: the built-in model was trained on a synthetic world only; on any other video its
  answer means nothing (``pruning_core.world``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

from nodes.videos import VIDEO_EXTENSIONS
from pruning_core.errors import VideoPruneError
from pruning_core.video import write_clip

from .samples import PREVIEW_FPS

PREVIEW_FRAMES = 240
PREVIEW_SIDE = 360
_STAGE_LOCK = threading.Lock()   # name check + copy as one step: two uploads never share a name


class UploadError(VideoPruneError):
    """An upload the demo cannot use; one line for the user."""


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_stem(name: str) -> str:
    """The file name's stem with anything but letters, digits, ``-`` and ``_`` replaced (at most 60 chars)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem)[:60].strip("_") or "video"


def stage_upload(src: str | os.PathLike, input_dir: Path) -> str:
    """Copy ``src`` into ``input_dir`` (top level); returns its file name there."""
    src = Path(src)
    if not src.is_file():
        raise UploadError("the uploaded video is gone from the server; upload it again")
    ext = src.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise UploadError(f"'{src.name}' is not a video file this demo reads ({', '.join(VIDEO_EXTENSIONS)})")
    digest, stem = file_digest(src), safe_stem(src.name)
    input_dir.mkdir(parents=True, exist_ok=True)
    with _STAGE_LOCK:
        for name in (f"{stem}{ext}", f"{stem}-{digest}{ext}"):
            dst = input_dir / name
            if not dst.is_file():
                tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
                return name
            if file_digest(dst) == digest:
                return name
    raise UploadError(f"cannot stage '{src.name}': both {stem}{ext} and {stem}-{digest}{ext} hold other files")


def playable_preview(video: Path, preview_dir: Path) -> Path:
    """A WebM (VP8) preview of ``video`` under ``preview_dir``, named by the video's content and
    written once; raises ``VideoError`` (one line) when the video does not decode."""
    from pruning_core.video import load_video
    digest = file_digest(video)
    existing = [p for p in preview_dir.glob(f"{digest}.*") if p.suffix in (".webm", ".mp4")]
    if existing:
        return existing[0]
    v = load_video(video, num_frames=PREVIEW_FRAMES, max_side=PREVIEW_SIDE)
    kept = v.frames.shape[0]
    # fewer frames than the source: slow the rate down so the preview lasts as long as the video
    rate = v.fps * kept / v.source_frames if v.fps > 0 and v.source_frames > 0 else PREVIEW_FPS
    return write_clip(preview_dir / digest, _even_size(v.frames), fps=max(0.5, min(rate, 60.0)))


def _even_size(frames):
    """VP8 wants even width and height: drop a last odd row/column."""
    h, w = frames.shape[1:3]
    return frames[:, : h - h % 2 or h, : w - w % 2 or w]


def world_warning(adapter, frames) -> str:
    """The warning shown beside an upload when the demo runs the built-in model, else "".
    ``frames``: a few decoded frames of the upload, or None before anything is uploaded."""
    if getattr(adapter, "name", "") != "builtin":
        return ""
    from pruning_core.world import video_looks_synthetic
    if frames is None or len(frames) == 0:
        tail = ("On your own video its answers mean nothing: compare the methods by speed, kept tokens and "
                "\"changed vs unpruned\", or start the demo with a real Video LLM (--model).")
    elif video_looks_synthetic(frames):
        tail = ("This upload does look like one of its clips, but it has no known answer: runs are marked only "
                "\"same as\" or \"changed vs unpruned\".")
    else:
        tail = ("This video is not from that world, so every answer means nothing: compare the methods by "
                "speed, kept tokens and \"changed vs unpruned\", or start the demo with a real Video LLM (--model).")
    return "**Warning: the built-in model only knows its synthetic world** (coloured shapes on plain backgrounds). " + tail
