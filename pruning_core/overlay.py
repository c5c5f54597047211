"""Draw which visual tokens a stage kept, on the frames they came from (numpy; cv2 only for text).

* ``overlay_frames``: each frame with pruned cells darkened, the kept region outlined and a
  per-frame retention bar along the bottom.
* ``retention_strip``: one bar per layout frame, its height the frame's retention.
* ``contact_sheet``: tile images in a grid (a gallery row per method); ``caption`` titles one.
* ``frame_view``: ONE source frame at display size with every kept cell outlined (not only the
  kept region's border) and, optionally, per-token scores tinted over it (the frame viewer).

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


def _put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float,
              color: Sequence[int] = (255, 255, 255), halo: Sequence[int] = (0, 0, 0)) -> None:
    """White text with a dark 1-px halo, in place.

    The halo is the text's own mask grown by one pixel (a 3x3 dilation), not the text drawn again
    with a thicker stroke: OpenCV's Hershey glyph advance grows with the stroke, so a thick copy
    drifts right of the thin one, a ghost that makes captions unreadable."""
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    m = thick + 2                      # only the text's box (+ stroke and halo) is touched: wide bands stay cheap
    x0, y0 = max(0, org[0] - m), max(0, org[1] - th - m)
    x1, y1 = min(img.shape[1], org[0] + tw + m), min(img.shape[0], org[1] + base + m)
    if x1 <= x0 or y1 <= y0:
        return
    box = img[y0:y1, x0:x1]
    mask = np.zeros(box.shape[:2], np.uint8)
    cv2.putText(mask, text, (org[0] - x0, org[1] - y0), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_AA)
    ring = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    for alpha, col in ((ring, halo), (mask, color)):
        a = alpha.astype(np.float32)[..., None] / 255.0
        box[...] = (box * (1.0 - a) + np.asarray(col, np.float32) * a + 0.5).astype(np.uint8)


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


def fit_text(text: str, width: int, scale: float) -> str:
    """``text`` cut (ending in "...") so that it fits ``width`` px at ``scale``; Hershey fonts draw ASCII only."""
    text = text.encode("ascii", "replace").decode("ascii")
    thick = max(1, int(round(scale * 2)))

    def w(t: str) -> int:
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] + 2

    if w(text) <= width:
        return text
    lo, hi = 0, len(text)          # longest prefix that fits with the ellipsis
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if w(text[:mid] + "...") <= width else (lo, mid - 1)
    return text[:lo].rstrip() + "..."


def caption(image: np.ndarray, text: str, height: int = 24, background: int = 32) -> np.ndarray:
    """``image`` with a band of ``height`` px above it holding ``text`` (a gallery row's method name),
    cut with "..." when it is wider than the image."""
    band = np.full((height, image.shape[1], 3), background, np.uint8)
    scale = height / 36.0
    _put_text(band, fit_text(text, image.shape[1] - 6, scale), (4, height - max(4, height // 4)), scale)
    return np.concatenate([band, np.asarray(image, np.uint8)], axis=0)


def _cell_index(n_px: int, n_cells: int) -> np.ndarray:
    return np.arange(n_px) * n_cells // n_px


def cell_borders(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean [height, width]: the edge pixels (first/last row and column) of every True cell of
    ``cells`` [grid_h, grid_w], cells split proportionally as in ``pixel_mask``. Two kept neighbours
    show a double line, so each kept patch reads as one box."""
    rows, cols = _cell_index(height, cells.shape[0]), _cell_index(width, cells.shape[1])
    edge_r = np.r_[True, rows[1:] != rows[:-1]] | np.r_[rows[1:] != rows[:-1], True]
    edge_c = np.r_[True, cols[1:] != cols[:-1]] | np.r_[cols[1:] != cols[:-1], True]
    return cells[rows][:, cols] & (edge_r[:, None] | edge_c[None, :])


def heat_colors(values: np.ndarray) -> np.ndarray:
    """[n, 3] uint8 RGB of OpenCV's inferno map for ``values`` in [0, 1] (dark = low, yellow = high)."""
    v = np.clip(np.nan_to_num(np.asarray(values, np.float64), nan=0.0), 0.0, 1.0)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO)[:, 0, ::-1]
    return lut[np.rint(v * 255).astype(int)]


def frame_view(frame: np.ndarray, layout: TokenLayout, kept_ids, layout_frame: int, scale: int = 1,
               dim: float = 0.3, color: Sequence[int] = KEPT_COLOR, heat: np.ndarray | None = None,
               heat_alpha: float = 0.6) -> np.ndarray:
    """One frame [H, W, 3] uint8 enlarged ``scale`` times (nearest, so cells stay crisp): cells of
    layout frame ``layout_frame`` that were pruned are dimmed to ``dim``, each kept cell is outlined
    in ``color``.

    ``heat`` [grid_h, grid_w] in [0, 1] (NaN = not scored) is blended over its cells with
    ``heat_alpha`` before the outlines are drawn (pass ``dim=1`` to see the scores of pruned cells too).
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise VideoError(f"frame_view needs one uint8 frame [H, W, 3], got {frame.dtype} {tuple(frame.shape)}")
    if not 0 <= layout_frame < layout.num_frames:
        raise VideoError(f"layout frame {layout_frame} is outside 0..{layout.num_frames - 1}")
    if scale < 1:
        raise VideoError(f"scale must be >= 1, got {scale}")
    big = np.repeat(np.repeat(frame, scale, 0), scale, 1) if scale > 1 else frame.copy()
    h, w = big.shape[:2]
    cells = layout.kept_mask(_kept_ids(kept_ids, layout)).numpy()[layout_frame]
    rows, cols = _cell_index(h, layout.grid_h), _cell_index(w, layout.grid_w)
    inside = cells[rows][:, cols]
    out = big.astype(np.float32)
    if heat is not None:
        heat = np.asarray(heat, np.float64)
        if heat.shape != (layout.grid_h, layout.grid_w):
            raise VideoError(f"heat must be [{layout.grid_h}, {layout.grid_w}], got {tuple(heat.shape)}")
        tint = heat_colors(heat.reshape(-1)).reshape(*heat.shape, 3)[rows][:, cols].astype(np.float32)
        a = np.where(np.isnan(heat), 0.0, heat_alpha)[rows][:, cols][..., None]
        out = out * (1 - a) + tint * a
    out = np.where(inside[..., None], out, out * dim)
    out = out.astype(np.uint8)
    out[cell_borders(cells, h, w)] = np.asarray(color, np.uint8)
    return out
