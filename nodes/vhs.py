"""Headless stand-ins for VideoHelperSuite's video loaders, so shared VHS workflows run in our runtime.

Inside ComfyUI the real VideoHelperSuite provides ``VHS_LoadVideo`` and friends; these classes are
registered only in the headless runtime (``python -m nodes run``, the demo), never exported to
ComfyUI. They take the same inputs and give the same outputs, with the same frame-selection rules
(rate conversion, then ``skip_first_frames``, then ``select_every_nth``, then ``frame_load_cap``),
the same output size rules (``custom_width``/``custom_height``, the load format's size multiple,
centre crop when both are set) and the same ``video_info`` keys. What differs, and why:

* decoding is OpenCV's (as VHS's default loaders); the resize is OpenCV's Lanczos where VHS uses
  ComfyUI's Lanczos upscale, so resized pixels may differ by a grey level;
* ``audio`` is ``None`` (no audio decode here; no VideoPrune node takes audio);
* the FFmpeg variants seek with ``start_time`` by skipping the source frames before it;
* ``meta_batch`` and ``vae`` are refused with a clear error (batched/latent loading is a ComfyUI feature).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from pruning_core.errors import VideoError

from . import videos

# Load formats: size multiple of the output and, where set, the frame-count rule (div, mod):
# counts are cut to the largest div*k + mod. Names and numbers as VHS lists them.
LOAD_FORMATS: dict[str, dict] = {
    "None": {"multiple": 1},
    "AnimateDiff": {"multiple": 8},
    "Mochi": {"multiple": 16, "frames": (6, 1)},
    "LTXV": {"multiple": 32, "frames": (8, 1)},
    "Hunyuan": {"multiple": 16, "frames": (4, 1)},
    "Cosmos": {"multiple": 16, "frames": (8, 1)},
    "Wan": {"multiple": 8, "frames": (4, 1)},
}
DEFAULT_FORMAT = "AnimateDiff"
BIG = 2 ** 31 - 1
CATEGORY = "Video Helper Suite (headless)"


def frame_indices(n: int, fps: float, force_rate: float = 0.0, skip_first_frames: int = 0,
                  select_every_nth: int = 1, frame_load_cap: int = 0, start_time: float = 0.0) -> np.ndarray:
    """Source frame indices VHS's loader yields, in order.

    Rate conversion walks the video on a clock: each output slot of ``1/force_rate`` seconds takes
    the latest source frame (``1/fps`` each) reached by then, so a rate below the video's drops
    frames and one above it repeats them. Then the first ``skip_first_frames`` slots are dropped, every
    ``select_every_nth`` one is kept, and at most ``frame_load_cap`` (0 = all) are returned.
    """
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    fps = fps if fps > 0 else 1.0
    base = 1.0 / fps
    target = base if force_rate <= 0 else 1.0 / force_rate
    first = min(n, int(math.floor(max(0.0, start_time) * fps + 1e-9)))
    out: list[int] = []
    current, slot, evaluated = first, 0, -1
    clock = target  # time banked since the last output slot; the first frame is already grabbed
    while current < n:
        if clock < target:
            current += 1
            if current >= n:
                break
            clock += base
            if clock < target:
                continue
        clock -= target
        slot += 1
        if slot <= skip_first_frames:
            continue
        evaluated += 1
        if evaluated % max(1, select_every_nth):
            continue
        out.append(current)
        if 0 < frame_load_cap <= len(out):
            break
    return np.asarray(out, dtype=np.int64)


def output_size(width: int, height: int, custom_width: int, custom_height: int, multiple: int) -> tuple[int, int]:
    """(width, height) of the loaded frames: one custom side keeps the aspect, both set both; then
    each side is rounded to the format's multiple."""
    w, h = float(width), float(height)
    if custom_width and custom_height:
        w, h = float(custom_width), float(custom_height)
    elif custom_width:
        h, w = h * custom_width / w, float(custom_width)
    elif custom_height:
        w, h = w * custom_height / h, float(custom_height)
    return (max(multiple, int(w / multiple + 0.5) * multiple), max(multiple, int(h / multiple + 0.5) * multiple))


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop to the target aspect, then Lanczos-resize to ``size`` (RGB uint8)."""
    h, w = frame.shape[:2]
    tw, th = size
    if (w, h) == (tw, th):
        return frame
    if w * th > tw * h:        # too wide: crop the sides
        cw = max(1, round(h * tw / th))
        x = (w - cw) // 2
        frame = frame[:, x:x + cw]
    elif w * th < tw * h:      # too tall: crop top and bottom
        ch = max(1, round(w * th / tw))
        y = (h - ch) // 2
        frame = frame[y:y + ch]
    return cv2.resize(frame, (tw, th), interpolation=cv2.INTER_LANCZOS4)


def _frame_rule(count: int, fmt: dict) -> int:
    div, mod = fmt.get("frames", (1, 0))
    if count % div == mod:
        return count
    return max(0, (count - mod) // div * div + mod)


def load(path: str, force_rate: float, custom_width: int, custom_height: int, frame_load_cap: int,
         skip_first_frames: int = 0, select_every_nth: int = 1, start_time: float = 0.0,
         format: str = DEFAULT_FORMAT) -> tuple[np.ndarray, dict]:
    """RGB uint8 frames and VHS's ``video_info`` for a file already confined to the input folders."""
    from pruning_core.video import load_video, probe_video
    if format not in LOAD_FORMATS:
        raise VideoError(f"unknown load format {format!r}; one of {', '.join(LOAD_FORMATS)}")
    fmt = LOAD_FORMATS[format]
    width, height, n_reported, fps = probe_video(path)
    size = output_size(width, height, custom_width, custom_height, fmt["multiple"])
    picked: dict = {}

    def select(n: int, src_fps: float) -> np.ndarray:
        picked["n"], picked["fps"] = n, src_fps
        return frame_indices(n, src_fps, force_rate, skip_first_frames, select_every_nth, frame_load_cap,
                             start_time)

    video = load_video(path, select=select, frame_transform=lambda f, _count: _fit(f, size))
    frames = video.frames[:_frame_rule(video.frames.shape[0], fmt)]
    if frames.shape[0] == 0:
        raise VideoError(f"video '{path}': the {format} format keeps none of the {video.frames.shape[0]} frames")
    src_fps = picked.get("fps") or fps or 1.0
    n = picked.get("n") or n_reported
    frame_time = 1.0 / force_rate if force_rate > 0 else 1.0 / src_fps
    info = {"source_fps": src_fps, "source_frame_count": n, "source_duration": n / src_fps,
            "source_width": width, "source_height": height,
            "loaded_fps": 1.0 / frame_time, "loaded_frame_count": int(frames.shape[0]),
            "loaded_duration": frames.shape[0] * frame_time * max(1, select_every_nth),
            "loaded_width": size[0], "loaded_height": size[1]}
    return frames, info


def _common_inputs() -> dict:
    return {
        "force_rate": ("FLOAT", {"default": 0, "min": 0, "max": 60, "step": 1,
                                 "tooltip": "Resample to this many frames per second (0 = the video's own)."}),
        "custom_width": ("INT", {"default": 0, "min": 0, "max": 8192, "tooltip": "0 = from the height/aspect."}),
        "custom_height": ("INT", {"default": 0, "min": 0, "max": 8192, "tooltip": "0 = from the width/aspect."}),
        "frame_load_cap": ("INT", {"default": 0, "min": 0, "max": BIG, "step": 1, "tooltip": "0 = every frame."}),
    }


def _optional() -> dict:
    return {"meta_batch": ("VHS_BatchManager",), "vae": ("VAE",),
            "format": (list(LOAD_FORMATS), {"default": DEFAULT_FORMAT})}


def _refuse_latent_inputs(meta_batch, vae) -> None:
    if meta_batch is not None or vae is not None:
        raise VideoError("meta_batch and vae inputs of VideoHelperSuite's loaders need ComfyUI; "
                         "disconnect them to run this workflow headless")


def _image(frames: np.ndarray):
    from pruning_core.video import frames_to_image
    return frames_to_image(frames)


class _LoadVideoBase:
    CATEGORY = CATEGORY
    FUNCTION = "load_video"
    RETURN_TYPES = ("IMAGE", "INT", "AUDIO", "VHS_VIDEOINFO")
    RETURN_NAMES = ("IMAGE", "frame_count", "audio", "video_info")
    path_is_text = False

    @classmethod
    def _video_input(cls):
        if cls.path_is_text:
            return ("STRING", {"default": "", "tooltip": "A path inside the input folder."})
        return (videos.input_video_names(), {"tooltip": "A video file in the input folder."})

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": cls._video_input(), **_common_inputs(), **cls._extra_inputs()},
                "optional": _optional()}

    @classmethod
    def _extra_inputs(cls) -> dict:
        return {"skip_first_frames": ("INT", {"default": 0, "min": 0, "max": BIG, "step": 1}),
                "select_every_nth": ("INT", {"default": 1, "min": 1, "max": BIG, "step": 1})}

    @classmethod
    def IS_CHANGED(cls, video, **_):
        return videos.fingerprint(str(video).strip().strip('"'))

    def _load(self, video, force_rate, custom_width, custom_height, frame_load_cap, meta_batch, vae, format,
              **select):
        _refuse_latent_inputs(meta_batch, vae)
        path = videos.resolve_video_path(str(video).strip().strip('"'))
        return load(str(path), float(force_rate), int(custom_width), int(custom_height), int(frame_load_cap),
                    format=format, **select)

    def load_video(self, video, force_rate=0, custom_width=0, custom_height=0, frame_load_cap=0,
                   skip_first_frames=0, select_every_nth=1, meta_batch=None, vae=None, format=DEFAULT_FORMAT):
        frames, info = self._load(video, force_rate, custom_width, custom_height, frame_load_cap, meta_batch,
                                  vae, format, skip_first_frames=int(skip_first_frames),
                                  select_every_nth=int(select_every_nth))
        return (_image(frames), int(frames.shape[0]), None, info)


class VHSLoadVideo(_LoadVideoBase):
    """``VHS_LoadVideo``: a video chosen from the input folder."""


class VHSLoadVideoPath(_LoadVideoBase):
    """``VHS_LoadVideoPath``: a video named by a path inside the input folder."""
    path_is_text = True


class VHSLoadVideoFFmpeg(_LoadVideoBase):
    """``VHS_LoadVideoFFmpeg``: starts at ``start_time`` seconds; outputs a mask instead of a count."""
    RETURN_TYPES = ("IMAGE", "MASK", "AUDIO", "VHS_VIDEOINFO")
    RETURN_NAMES = ("IMAGE", "mask", "audio", "video_info")

    @classmethod
    def _extra_inputs(cls) -> dict:
        return {"start_time": ("FLOAT", {"default": 0, "min": 0, "max": BIG, "step": 0.001})}

    def load_video(self, video, force_rate=0, custom_width=0, custom_height=0, frame_load_cap=0,
                   start_time=0.0, meta_batch=None, vae=None, format=DEFAULT_FORMAT):
        import torch
        frames, info = self._load(video, force_rate, custom_width, custom_height, frame_load_cap, meta_batch,
                                  vae, format, start_time=float(start_time))
        # an opaque video: VHS gives an all-zero 64x64 mask per frame
        mask = torch.zeros(frames.shape[0], 64, 64)
        return (_image(frames), mask, None, info)


class VHSLoadVideoFFmpegPath(VHSLoadVideoFFmpeg):
    """``VHS_LoadVideoFFmpegPath``."""
    path_is_text = True


HEADLESS_CLASS_MAPPINGS: dict[str, type] = {
    "VHS_LoadVideo": VHSLoadVideo,
    "VHS_LoadVideoPath": VHSLoadVideoPath,
    "VHS_LoadVideoFFmpeg": VHSLoadVideoFFmpeg,
    "VHS_LoadVideoFFmpegPath": VHSLoadVideoFFmpegPath,
}
