"""Kept-token overlays: kept cells keep pixels, pruned ones darken, strips show per-frame retention."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pruning_core.errors import VideoError
from pruning_core.layout import TokenLayout
from pruning_core.overlay import (KEPT_COLOR, caption, contact_sheet, frame_retention, overlay_frames,
                                  pixel_mask, retention_strip)

# 2 frames of a 2x2 grid, 8x8-pixel frames: each cell is 4x4 pixels
LAYOUT = TokenLayout(num_frames=2, grid_h=2, grid_w=2)


def _frames(t=2, h=8, w=8, value=200):
    return np.full((t, h, w, 3), value, np.uint8)


def test_kept_cell_keeps_its_pixels():
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    out = overlay_frames(frames, LAYOUT, [0], outline=False, show_retention=False)
    assert np.array_equal(out[0, :4, :4], frames[0, :4, :4])


def test_pruned_cell_is_darker():
    out = overlay_frames(_frames(), LAYOUT, [0], outline=False, show_retention=False)
    assert out[0, 4:, 4:].max() < 200 * 0.5
    assert out[1].max() < 200 * 0.5  # frame 1 lost every token


def test_kept_region_is_outlined_inside_its_border():
    out = overlay_frames(_frames(h=16, w=16), LAYOUT, [0], show_retention=False)
    color = np.asarray(KEPT_COLOR, np.uint8)
    assert (out[0, 7, :8] == color).all() and (out[0, :8, 7] == color).all()  # edges facing pruned cells
    assert (out[0, 3, 3] == 200).all()                                         # interior untouched


def test_retention_bar_width_follows_frame_retention():
    out = overlay_frames(_frames(h=24, w=40), LAYOUT, [0, 1, 2, 3, 4], outline=False)
    color = np.asarray(KEPT_COLOR, np.uint8)
    bottom = out[:, -1]
    assert (bottom[0] == color).all(axis=-1).sum() == 40        # frame 0: 100%
    assert (bottom[1] == color).all(axis=-1).sum() == 10        # frame 1: 25%


def test_layout_frame_covers_frames_per_step_source_frames():
    layout = TokenLayout(num_frames=2, grid_h=1, grid_w=1, frames_per_step=2)
    out = overlay_frames(_frames(t=3), layout, [1], outline=False, show_retention=False)
    assert out[0].max() < 100 and out[1].max() < 100    # pair 0 pruned
    assert (out[2] == 200).all()                         # odd last source frame shows pair 1


def test_frame_count_must_match_the_layout():
    with pytest.raises(VideoError, match="do not match"):
        overlay_frames(_frames(t=3), LAYOUT, [0])


def test_kept_ids_outside_the_layout_are_refused():
    with pytest.raises(VideoError, match="0..7"):
        overlay_frames(_frames(), LAYOUT, [8])


def test_kept_ids_accept_tensors_lists_and_arrays():
    a = frame_retention(LAYOUT, torch.tensor([0, 5]))
    assert np.allclose(a, [0.25, 0.25])
    assert np.allclose(frame_retention(LAYOUT, [0, 5]), a)
    assert np.allclose(frame_retention(LAYOUT, np.array([0, 5])), a)


def test_pixel_mask_splits_cells_proportionally_for_any_size():
    m = pixel_mask(TokenLayout(1, 3, 3), [4], 9, 6)  # centre cell of 3x3 on a 9x6 frame
    assert m[0].sum() == 3 * 2 and m[0, 3:6, 2:4].all()


def test_strip_bar_heights_are_proportional_to_frame_retention():
    layout = TokenLayout(num_frames=4, grid_h=2, grid_w=2)
    strip = retention_strip(layout, [0, 1, 2, 3, 4, 5, 8], width=40, height=20)
    assert strip.shape == (20, 40, 3) and strip.dtype == np.uint8
    filled = (strip == np.asarray(KEPT_COLOR, np.uint8)).all(-1).sum(0)
    assert filled[[0, 10, 20, 30]].tolist() == [20, 10, 5, 0]


def test_strip_separates_wide_bars_by_a_gap():
    strip = retention_strip(TokenLayout(2, 1, 1), [0, 1], width=10, height=4)
    filled = (strip == np.asarray(KEPT_COLOR, np.uint8)).all(-1).sum(0)
    assert filled.tolist() == [4, 4, 4, 4, 0, 4, 4, 4, 4, 0]


def test_strip_narrower_than_the_frame_count_is_refused():
    with pytest.raises(VideoError, match="width >= 4"):
        retention_strip(TokenLayout(4, 1, 1), [0], width=3, height=5)


def test_contact_sheet_tiles_in_rows_of_cols():
    imgs = [np.full((2, 3, 3), i * 10, np.uint8) for i in range(1, 6)]
    sheet = contact_sheet(imgs, cols=2, pad=1, background=0)
    assert sheet.shape == (3 * 2 + 2, 2 * 3 + 1, 3)
    assert sheet[0, 0, 0] == 10 and sheet[0, 4, 0] == 20 and sheet[3, 0, 0] == 30 and sheet[6, 0, 0] == 50
    assert sheet[6, 4, 0] == 0  # no sixth image


def test_contact_sheet_places_smaller_images_top_left():
    sheet = contact_sheet([np.full((4, 4, 3), 9, np.uint8), np.full((2, 2, 3), 7, np.uint8)], cols=2, pad=0)
    assert sheet.shape == (4, 8, 3) and sheet[1, 5, 0] == 7 and sheet[3, 7, 0] == 0


def test_contact_sheet_needs_images():
    with pytest.raises(VideoError, match="at least one"):
        contact_sheet([], cols=2)


def test_caption_adds_a_titled_band_above():
    img = np.full((10, 80, 3), 100, np.uint8)
    out = caption(img, "FastV 25%", height=20)
    assert out.shape == (30, 80, 3) and np.array_equal(out[20:], img)
    assert out[:20].max() == 255  # white text was drawn
