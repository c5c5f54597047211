"""Frames → pixel values, with the kernels the transformers video processors run (no torchvision).

The processors (``TorchvisionBackend``) resize the **uint8** frames with torchvision's antialiased
kernel, then rescale and normalise in one fused step ``(x - mean/r) / (std/r)`` in float32.
``torch.nn.functional.interpolate`` on uint8 with ``antialias=True`` is the very kernel torchvision
calls on CPU (bit-identical, see tests/test_real_processors.py), so no torchvision is needed.

Memory: frames are resized one at a time, in uint8, straight into a preallocated output, so the
peak is bounded by the model input (plus one source frame), never by the source resolution.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoints import checkpoint
from .preprocessing import Preprocessing

_MODES = {3: "bicubic", 2: "bilinear", 0: "nearest"}


def _mode(resample: int) -> str:
    mode = _MODES.get(int(resample))
    if mode is None:
        warnings.warn(f"resample {resample} (PIL code) has no CPU kernel here; using bicubic", stacklevel=3)
        return "bicubic"
    return mode


def resize_u8(x: torch.Tensor, size: tuple[int, int], resample: int = 3) -> torch.Tensor:
    """Resize uint8 ``[..., C, H, W]`` to ``size`` as torchvision's ``resize(antialias=True)`` does on CPU."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    mode = _mode(resample)
    lead = x.shape[:-3]
    y = x.reshape(-1, *x.shape[-3:])
    kw = {} if mode == "nearest" else {"antialias": True, "align_corners": False}
    y = F.interpolate(y, size=size, mode=mode, **kw)
    return y.reshape(*lead, *y.shape[-3:])


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre crop ``[..., H, W]`` as torchvision's ``center_crop`` (pads with 0 when the crop is larger)."""
    ch, cw = int(size[0]), int(size[1])
    h, w = x.shape[-2:]
    if (h, w) == (ch, cw):
        return x
    if ch > h or cw > w:
        pad = [(cw - w) // 2 if cw > w else 0, (cw - w + 1) // 2 if cw > w else 0,
               (ch - h) // 2 if ch > h else 0, (ch - h + 1) // 2 if ch > h else 0]
        x = F.pad(x, pad)
        h, w = x.shape[-2:]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return x[..., top:top + ch, left:left + cw]


def frame_to_input(frame: np.ndarray, pre: Preprocessing, num_frames: int = 1) -> torch.Tensor:
    """One RGB uint8 ``[H, W, 3]`` frame → uint8 ``[3, h, w]`` at the processor's input size (resize, crop)."""
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
    if x.dtype != torch.uint8:
        raise ValueError("frames must be uint8 RGB [T,H,W,3]")
    h, w = x.shape[-2:]
    x = resize_u8(x, pre.resize_size(h, w, num_frames), pre.resample)
    if pre.do_center_crop and pre.crop_size:
        x = center_crop(x, (pre.crop_size["height"], pre.crop_size["width"]))
    return x


def decode_transform(pre: Preprocessing) -> Callable[[np.ndarray, int], np.ndarray]:
    """A per-frame transform for ``video.load_video(frame_transform=...)``: frames leave the decoder
    already at the model's input size, in uint8 and with the processor's kernel."""
    def transform(frame: np.ndarray, num_frames: int) -> np.ndarray:
        return frame_to_input(frame, pre, num_frames).permute(1, 2, 0).contiguous().numpy()
    return transform


def normalize_(x: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """Rescale and normalise float32 ``[..., 3, H, W]`` in place, fused as the processors do."""
    if pre.do_normalize:
        r = pre.rescale_factor if pre.do_rescale else 1.0
        mean = torch.tensor(pre.image_mean, dtype=torch.float32) * (1.0 / r)
        std = torch.tensor(pre.image_std, dtype=torch.float32) * (1.0 / r)
        shape = (3, 1, 1)
        x.sub_(mean.view(shape)).div_(std.view(shape))
    elif pre.do_rescale:
        x.mul_(pre.rescale_factor)
    return x


def frames_to_pixels(frames: np.ndarray, pre: Preprocessing) -> torch.Tensor:
    """RGB uint8 ``[T, H, W, 3]`` → float32 ``[T, 3, h, w]``: resize (uint8, per frame), crop, rescale, normalise."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError("frames must be uint8 RGB [T,H,W,3]")
    t, h, w = frames.shape[:3]
    oh, ow = pre.output_size(h, w, t)
    out = torch.empty((t, 3, oh, ow), dtype=torch.float32)
    for i in range(t):
        out[i] = frame_to_input(frames[i], pre, t)
        normalize_(out[i], pre)
        checkpoint("resizing frames", i + 1, t)
    return out
