"""A checkpoint's video preprocessing, read the way transformers reads it.

transformers 5.23 loads ONE dict for a checkpoint's video processor, in this order
(``BaseVideoProcessor.get_video_processor_dict``):

1. ``processor_config.json`` → its nested ``"video_processor"`` object (what 5.x ``save_pretrained`` writes);
2. ``video_preprocessor_config.json`` (4.5x video processors);
3. ``preprocessor_config.json`` (legacy: the image processor's file, which older checkpoints also use for video).

Keys absent from that dict take the video-processor class's defaults (``CLASS_DEFAULTS``). For
Qwen processors, ``min_pixels`` / ``max_pixels`` override ``size`` (``shortest_edge`` / ``longest_edge``),
as ``Qwen2VLVideoProcessor.__init__`` does. Where a key is absent and the class default would
not fit the model (a vision tower of another input size, another patch size), the model's vision
config fills it: transformers would break there, we stay consistent with the weights.

``read_preprocessing`` returns a frozen ``Preprocessing``; ``Preprocessing.to_dict`` is what the
CLI's ``--json`` output reports under ``checkpoint.preprocessing``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

PROCESSOR_FILES = ("processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json")
"""Files read, in transformers' priority order (the first that holds a video-processor dict wins)."""

# PIL resample codes, as processor configs store them
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}

_COMMON = dict(do_resize=True, do_rescale=True, do_normalize=True, do_convert_rgb=True, rescale_factor=1 / 255,
               resample=3, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD, do_center_crop=False,
               crop_size=None)
_QWEN2 = dict(_COMMON, size={"shortest_edge": 128 * 28 * 28, "longest_edge": 768 * 28 * 28}, patch_size=14,
              temporal_patch_size=2, merge_size=2, cap_pixels_per_frame=False, max_video_tokens=128000)

_QWEN3 = dict(_COMMON, size={"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32}, patch_size=16,
              temporal_patch_size=2, merge_size=2, cap_pixels_per_frame=False, max_video_tokens=768,
              image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5), pixel_budget="video")

CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    # LlavaOnevisionVideoProcessor
    "llava_onevision": dict(_COMMON, size={"height": 384, "width": 384}),
    # Qwen2VLVideoProcessor (Qwen2.5-VL uses the same class)
    "qwen2_vl": _QWEN2,
    "qwen2_5_vl": _QWEN2,
    # Qwen3VLVideoProcessor (dense and MoE): the pixel budget covers the whole clip
    "qwen3_vl": _QWEN3,
    "qwen3_vl_moe": _QWEN3,
}
"""Class attributes of each backbone's transformers video processor (5.23), used for absent keys."""

_KEYS = ("do_resize", "do_rescale", "do_normalize", "do_convert_rgb", "rescale_factor", "resample", "image_mean",
         "image_std", "do_center_crop", "crop_size", "size", "patch_size", "temporal_patch_size", "merge_size",
         "cap_pixels_per_frame", "max_video_tokens")


@dataclass(frozen=True)
class Preprocessing:
    """Everything that turns decoded uint8 frames into a backbone's pixel values.

    ``size`` is the processor's size dict: ``{"height", "width"}`` (fixed), ``{"shortest_edge"}``
    (aspect kept) or, for Qwen, ``{"shortest_edge": min_pixels, "longest_edge": max_pixels}``.
    ``from_checkpoint`` names the keys the checkpoint set; every other key is a class default
    (or, where ``filled_from_model`` says so, the model's vision config).
    """

    backbone: str
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    size: dict
    rescale_factor: float = 1 / 255
    resample: int = 3
    do_resize: bool = True
    do_rescale: bool = True
    do_normalize: bool = True
    do_convert_rgb: bool = True
    do_center_crop: bool = False
    crop_size: dict | None = None
    patch_size: int | None = None
    temporal_patch_size: int | None = None
    merge_size: int | None = None
    cap_pixels_per_frame: bool = False
    max_video_tokens: int | None = None
    pixel_budget: str = "frame"           # Qwen size budget per "frame" (Qwen2/2.5-VL) or per "video" (Qwen3-VL)
    source: str = ""                      # file (and key) the dict came from; "" = class defaults only
    from_checkpoint: tuple[str, ...] = ()
    filled_from_model: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # other keys of the checkpoint's dict (fps, num_frames …), reported

    # -- sizes -------------------------------------------------------------------------------
    @property
    def min_pixels(self) -> int | None:
        return self.size.get("shortest_edge") if self.is_pixel_budget else None

    @property
    def max_pixels(self) -> int | None:
        return self.size.get("longest_edge") if self.is_pixel_budget else None

    @property
    def is_pixel_budget(self) -> bool:
        """Qwen-style size: a pixel-count range, resized by ``smart_resize``."""
        return self.patch_size is not None and "longest_edge" in self.size and "shortest_edge" in self.size

    def with_pixels(self, min_pixels: int | None = None, max_pixels: int | None = None) -> "Preprocessing":
        size = dict(self.size)
        if min_pixels is not None:
            size["shortest_edge"] = int(min_pixels)
        if max_pixels is not None:
            size["longest_edge"] = int(max_pixels)
        return replace(self, size=size)

    def output_size(self, height: int, width: int, num_frames: int = 1) -> tuple[int, int]:
        """(height, width) of a frame after resize and crop, as the processor computes it."""
        if self.do_center_crop and self.crop_size:
            return int(self.crop_size["height"]), int(self.crop_size["width"])
        return self.resize_size(height, width, num_frames)

    def resize_size(self, height: int, width: int, num_frames: int = 1) -> tuple[int, int]:
        """(height, width) a ``height``×``width`` frame is resized to (before any crop)."""
        if not self.do_resize:
            return height, width
        s = self.size
        if self.is_pixel_budget and self.pixel_budget == "video":
            factor, tp = self.patch_size * self.merge_size, self.temporal_patch_size
            max_pixels = s["longest_edge"]
            if self.cap_pixels_per_frame:
                # Qwen3VLVideoProcessor.resize: per-frame cap, floored, times the frame count
                per_frame = max(min(self.max_video_tokens * factor * factor, s["longest_edge"] // max(num_frames, 1)),
                                int(s["shortest_edge"] * 1.05))
                max_pixels = per_frame * num_frames
            return smart_resize_video(max(num_frames, tp), height, width, tp, factor, s["shortest_edge"], max_pixels)
        if self.is_pixel_budget:
            factor = self.patch_size * self.merge_size
            max_pixels = s["longest_edge"]
            if self.cap_pixels_per_frame:
                # Qwen2VLVideoProcessor.resize: an even share of the whole video's pixel budget
                total = int(self.max_video_tokens * factor * factor * 0.9)
                max_pixels = max(min(max_pixels, total * self.temporal_patch_size // max(num_frames, 1)),
                                 int(s["shortest_edge"] * 1.05))
            return smart_resize(height, width, factor, s["shortest_edge"], max_pixels)
        if s.get("shortest_edge") and s.get("longest_edge"):
            return _aspect_size(height, width, s["shortest_edge"], s["longest_edge"])
        if s.get("shortest_edge"):
            return _aspect_size(height, width, s["shortest_edge"], None)
        if s.get("max_height") and s.get("max_width"):
            r = min(s["max_height"] / height, s["max_width"] / width)
            return max(1, int(height * r)), max(1, int(width * r))
        if s.get("height") and s.get("width"):
            return int(s["height"]), int(s["width"])
        raise ValueError(f"processor size {s} has none of height/width, shortest_edge, max_height/max_width")

    @property
    def resample_name(self) -> str:
        return RESAMPLE_NAMES.get(int(self.resample), str(self.resample))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["resample"] = self.resample_name
        d["image_mean"], d["image_std"] = list(self.image_mean), list(self.image_std)
        d["from_checkpoint"], d["filled_from_model"] = list(self.from_checkpoint), list(self.filled_from_model)
        if self.is_pixel_budget:
            d["min_pixels"], d["max_pixels"] = self.min_pixels, self.max_pixels
        return d


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resize rule: multiples of ``factor``, pixel count within [min_pixels, max_pixels]."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is above 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_video(num_frames: int, height: int, width: int, temporal: int, factor: int,
                       min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen3-VL's video resize rule (``video_processing_qwen3_vl.smart_resize``).

    Multiples of ``factor``; the clip's pixel count ``t̄·h·w`` (t̄ = frames rounded to the temporal
    patch) within [min_pixels, max_pixels]. Frames below ``factor`` on a side are scaled up first.
    """
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is above 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal) * temporal
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _aspect_size(height: int, width: int, shortest: int, longest: int | None) -> tuple[int, int]:
    """Short side to ``shortest``, aspect kept, long side capped at ``longest`` (transformers' rule)."""
    short, long = (height, width) if height <= width else (width, height)
    new_short, new_long = int(shortest), int(shortest * long / short)
    if longest is not None and new_long > longest:
        new_short, new_long = int(longest * new_short / new_long), int(longest)
    return (new_short, new_long) if height <= width else (new_long, new_short)


def _load_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def processor_dict(folder: str | os.PathLike | None) -> tuple[dict, str]:
    """The video-processor dict transformers would load from ``folder``, and where it came from.

    Returns ``({}, "")`` when the folder holds none of ``PROCESSOR_FILES`` (or is not a folder).
    """
    if not folder or not os.path.isdir(folder):
        return {}, ""
    nested = _load_json(os.path.join(folder, PROCESSOR_FILES[0]))
    if nested is not None and isinstance(nested.get("video_processor"), dict):
        return dict(nested["video_processor"]), f"{PROCESSOR_FILES[0]}:video_processor"
    for name in PROCESSOR_FILES[1:]:
        d = _load_json(os.path.join(folder, name))
        if d is not None:
            return d, name
    return {}, ""


def _triple(v) -> tuple[float, ...]:
    if isinstance(v, (int, float)):
        return (float(v),) * 3
    return tuple(float(x) for x in v)


def read_preprocessing(folder: str | os.PathLike | None, backbone: str, vision_config=None) -> Preprocessing:
    """The preprocessing of the checkpoint in ``folder`` for ``backbone`` (see module docstring).

    ``vision_config`` (the model's, a config object or its dict) fills keys the checkpoint does not set where the class
    default would contradict the weights: LLaVA-OV's square size (the tower's ``image_size``)
    and Qwen's patch / merge / temporal patch sizes.
    """
    if backbone not in CLASS_DEFAULTS:
        raise ValueError(f"no preprocessing defaults for backbone {backbone!r}; known: {', '.join(CLASS_DEFAULTS)}")
    raw, source = processor_dict(folder)
    vals = dict(CLASS_DEFAULTS[backbone])
    ckpt = [k for k in _KEYS if raw.get(k) is not None]
    vals.update({k: raw[k] for k in ckpt})
    size = dict(vals["size"])
    if "size" in ckpt:
        # legacy Qwen files may spell the budget inside size
        for old, new in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
            if old in size:
                size.setdefault(new, size.pop(old))
    for key, edge in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
        # only Qwen2VLVideoProcessor.__init__ maps these onto size (Qwen3-VL's ignores them)
        if raw.get(key) is not None and backbone in ("qwen2_vl", "qwen2_5_vl"):
            size[edge] = int(raw[key])
            ckpt.append(key)
    filled: list[str] = []
    if vision_config is not None:
        def vc(key):
            return vision_config.get(key) if isinstance(vision_config, dict) else getattr(vision_config, key, None)
        if backbone == "llava_onevision" and "size" not in ckpt and vc("image_size"):
            s = int(vc("image_size"))
            size = {"height": s, "width": s}
            filled.append("size")
        model_geom = {"patch_size": vc("patch_size"), "temporal_patch_size": vc("temporal_patch_size"),
                      "merge_size": vc("spatial_merge_size")}
        for key, v in model_geom.items():
            if key in vals and v is not None and key not in ckpt:
                vals[key] = int(v)
                filled.append(key)
    crop = vals.get("crop_size")
    if isinstance(crop, (int, float)):
        crop = {"height": int(crop), "width": int(crop)}
    extra = {k: v for k, v in raw.items() if k not in _KEYS and k not in ("min_pixels", "max_pixels")
             and isinstance(v, (int, float, str, bool)) and not k.endswith("_type") and k != "processor_class"}
    return Preprocessing(
        backbone=backbone, image_mean=_triple(vals["image_mean"]), image_std=_triple(vals["image_std"]),
        size=size, rescale_factor=float(vals["rescale_factor"]), resample=int(vals["resample"]),
        do_resize=bool(vals["do_resize"]), do_rescale=bool(vals["do_rescale"]),
        do_normalize=bool(vals["do_normalize"]), do_convert_rgb=bool(vals["do_convert_rgb"]),
        do_center_crop=bool(vals.get("do_center_crop")), crop_size=crop,
        patch_size=vals.get("patch_size"), temporal_patch_size=vals.get("temporal_patch_size"),
        merge_size=vals.get("merge_size"), cap_pixels_per_frame=bool(vals.get("cap_pixels_per_frame")),
        max_video_tokens=vals.get("max_video_tokens"), pixel_budget=vals.get("pixel_budget", "frame"), source=source, from_checkpoint=tuple(dict.fromkeys(ckpt)),
        filled_from_model=tuple(filled), extra=extra)
