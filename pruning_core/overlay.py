"""Draw which visual tokens a stage kept, on the frames they came from (numpy; cv2 only for text).

* ``overlay_frames``: each frame with pruned cells darkened, the kept region outlined and a
  per-frame retention bar along the bottom.
* ``retention_strip``: one bar per layout frame, its height the frame's retention.
* ``contact_sheet``: tile images in a grid (a gallery row per method); ``caption`` titles one.

Cells map to pixels by proportional split: pixel row ``y`` of an ``H``-pixel frame lies in
grid row ``y * grid_h // H`` (same for columns), so any frame size works with any grid. A
layout frame covers ``frames_per_step`` source frames (Qwen2-VL temporal pairs): source frame
``t`` shows layout frame ``t // frames_per_step``.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from .errors import VideoError
from .layout import TokenLayout

KEPT_COLOR = (255, 196, 0)
BAR_BG = (24, 24, 24)


def _kept_ids(kept_ids, layout: TokenLayout) -> torch.Tensor:
    ids = torch.as_tensor(np.asarray(kept_ids.cpu() if hasattr(kept_ids, "cpu") else kept_ids), dtype=torch.long)
    ids = ids.reshape(-1)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= layout.num_tokens):
        raise VideoError(f"kept ids must lie in 0..{layout.num_tokens - 1} for this layout, "
                         f"got {int(ids.min())}..{int(ids.max())}")
    return ids


def frame_retention(layout: TokenLayout, kept_ids) -> np.ndarray:
    """[F] kept / tokens of each layout frame."""
    ids = _kept_ids(kept_ids, layout)
    return layout.kept_per_frame(ids).numpy() / float(layout.tokens_per_frame)


def source_to_layout_frames(num_source: int, layout: TokenLayout) -> np.ndarray:
    """[T] layout frame shown by each source frame; the last pair may be short (padded odd T)."""
    step = layout.frames_per_step
    if -(-num_source // step) != layout.num_frames:
        raise VideoError(f"{num_source} frames do not match a layout of {layout.num_frames} frames "
                         f"x {step} source frame(s) each")
    return np.arange(num_source) // step


def pixel_mask(layout: TokenLayout, kept_ids, height: int, width: int) -> np.ndarray:
    """Boolean [F, height, width]: True where a pixel lies in a kept cell."""
    cells = layout.kept_mask(_kept_ids(kept_ids, layout)).numpy()
    rows = np.arange(height) * layout.grid_h // height
    cols = np.arange(width) * layout.grid_w // width
    return cells[:, rows][:, :, cols]


def _region_border(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` [..., H, W] with a 4-neighbour outside it (frame edges do not count)."""
    out = ~mask
    nb = np.zeros_like(mask)
    nb[..., 1:, :] |= out[..., :-1, :]
    nb[..., :-1, :] |= out[..., 1:, :]
    nb[..., :, 1:] |= out[..., :, :-1]
    nb[..., :, :-1] |= out[..., :, 1:]
    return mask & nb


def _put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    thick = max(1, int(round(scale * 2)))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def overlay_frames(frames: np.ndarray, layout: TokenLayout, kept_ids, dim: float = 0.3,
                   color: Sequence[int] = KEPT_COLOR, outline: bool = True,
                   show_retention: bool = True) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 with pruned cells darkened to ``dim`` of their brightness.

    Kept cells keep their pixels; with ``outline`` the kept region's border is drawn in
    ``color``; with ``show_retention`` a bar along the bottom (width = the frame's retention)
    and, on frames at least 64 px tall, the percentage in the top-left corner.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoError(f"overlay needs uint8 frames [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    t, h, w = frames.shape[:3]
    which = source_to_layout_frames(t, layout)
    mask = pixel_mask(layout, kept_ids, h, w)[which]
    out = np.where(mask[..., None], frames, (frames.astype(np.float32) * dim).astype(np.uint8))
    col = np.asarray(color, dtype=np.uint8)
    if outline:
        out[_region_border(mask)] = col
    if show_retention:
        ret = frame_retention(layout, kept_ids)[which]
        bar = max(2, h // 24)
        filled = np.rint(ret * w).astype(int)
        xs = np.arange(w)
        out[:, h - bar:] = np.where((xs[None, :] < filled[:, None])[:, None, :, None], col,
                                    np.asarray(BAR_BG, np.uint8))
        if h >= 64:
            scale = h / 400.0
            for i in range(t):
                _put_text(out[i], f"{100 * ret[i]:.0f}%", (3, 3 + int(22 * scale) + 2), scale)
    return out


def retention_strip(layout: TokenLayout, kept_ids, width: int, height: int,
                    color: Sequence[int] = KEPT_COLOR, background: Sequence[int] = BAR_BG) -> np.ndarray:
    """[height, width, 3] uint8 bar chart: one bar per layout frame, height = its retention.

    Bars split the width evenly; a 1-px gap separates bars at least 3 px wide.
    """
    f = layout.num_frames
    if width < f or height < 1:
        raise VideoError(f"a retention strip for {f} frames needs width >= {f} and height >= 1, "
                         f"got {width}x{height}")
    ret = frame_retention(layout, kept_ids)
    xs = np.arange(width)
    frame_of = xs * f // width
    bar_w = np.bincount(frame_of, minlength=f)
    last_col = np.r_[frame_of[1:] != frame_of[:-1], True]
    gap = last_col & (bar_w[frame_of] >= 3)
    tops = height - np.rint(ret * height).astype(int)
    fill = (np.arange(height)[:, None] >= tops[frame_of][None, :]) & ~gap[None, :]
    return np.where(fill[..., None], np.asarray(color, np.uint8), np.asarray(background, np.uint8))


def contact_sheet(images: Sequence[np.ndarray] | np.ndarray, cols: int, pad: int = 2,
                  background: int = 0) -> np.ndarray:
    """Tile uint8 images [H, W, 3] left to right, ``cols`` per row, ``pad`` px apart.

    Images of different sizes sit top-left in cells of the largest size.
    """
    imgs = [np.asarray(im) for im in images]
    if not imgs:
        raise VideoError("contact sheet needs at least one image")
    if cols < 1:
        raise VideoError(f"contact sheet needs cols >= 1, got {cols}")
    imgs = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in imgs]
    if any(im.ndim != 3 or im.shape[-1] != 3 for im in imgs):
        raise VideoError("contact sheet images must be [H, W, 3] (or grey [H, W])")
    cols = min(cols, len(imgs))
    rows = -(-len(imgs) // cols)
    ch, cw = max(im.shape[0] for im in imgs), max(im.shape[1] for im in imgs)
    sheet = np.full((rows * ch + (rows - 1) * pad, cols * cw + (cols - 1) * pad, 3), background, np.uint8)
    for i, im in enumerate(imgs):
        y, x = (i // cols) * (ch + pad), (i % cols) * (cw + pad)
        sheet[y:y + im.shape[0], x:x + im.shape[1]] = im
    return sheet


def caption(image: np.ndarray, text: str, height: int = 24, background: int = 32) -> np.ndarray:
    """``image`` with a band of ``height`` px above it holding ``text`` (a gallery row's method name)."""
    band = np.full((height, image.shape[1], 3), background, np.uint8)
    _put_text(band, text, (4, height - max(4, height // 4)), height / 36.0)
    return np.concatenate([band, np.asarray(image, np.uint8)], axis=0)
