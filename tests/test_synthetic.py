"""The synthetic video-QA world: deterministic, evidence recorded, questions answerable from pixels."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from pruning_core.errors import VideoError
from pruning_core.synthetic import (BACKGROUNDS, CELL, COLOURS, GRID, IMAGE_SIZE, SHAPES, make_dataset, make_sample,
                                    position_of, sample_video)

SEEDS = range(16)


def _cell(frames: np.ndarray, f: int, r: int, c: int) -> np.ndarray:
    return frames[f, r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL].reshape(-1, 3).astype(int)


def test_same_seed_gives_identical_video_and_question():
    a, b = make_sample(123), make_sample(123)
    assert np.array_equal(a.frames, b.frames)
    assert a.question == b.question and a.objects == b.objects and a.scenes == b.scenes


def test_different_seeds_give_different_videos():
    assert not np.array_equal(make_sample(1).frames, make_sample(2).frames)


def test_frames_are_uint8_rgb_at_the_vision_tower_size():
    s = make_sample(5)
    assert s.frames.dtype == np.uint8 and s.frames.shape == (16, IMAGE_SIZE, IMAGE_SIZE, 3)


def test_video_has_two_to_five_scenes_with_distinct_backgrounds_covering_all_frames():
    for seed in SEEDS:
        s = make_sample(seed)
        assert 2 <= len(s.scenes) <= 5
        assert len({b for _, _, b in s.scenes}) == len(s.scenes)
        assert s.scenes[0][0] == 0 and s.scenes[-1][1] == 16
        assert all(a[1] == b[0] for a, b in zip(s.scenes, s.scenes[1:]))


def test_evidence_cells_lie_inside_the_video_and_map_to_token_ids():
    for seed in SEEDS:
        s = make_sample(seed)
        q = s.question
        assert q.evidence
        for f, r, c in q.evidence:
            assert 0 <= f < s.num_frames and 0 <= r < GRID and 0 <= c < GRID
        ids = q.evidence_token_ids()
        assert all(0 <= i < s.num_frames * GRID * GRID for i in ids)
        assert ids == sorted(f * 49 + r * 7 + c for f, r, c in q.evidence)


def test_answer_is_one_of_four_distinct_options_listed_in_the_question():
    for seed in SEEDS:
        q = make_sample(seed).question
        assert len(set(q.options)) == 4 and q.answer in q.options
        assert all(o in q.text.split() for o in q.options)


def test_colour_question_object_is_drawn_in_its_colour_in_every_evidence_cell():
    for seed in SEEDS:
        s = make_sample(seed, kind="colour")
        rgb = np.array(COLOURS[s.question.answer])
        shape = s.question.text.split()[4]
        for f, r, c in s.question.evidence:
            close = np.abs(_cell(s.frames, f, r, c) - rgb).max(1) <= 8
            assert close.sum() >= 20, (seed, f, r, c)
            assert s.cell_shape[f, r, c] == SHAPES.index(shape) + 1


def test_asked_shape_occurs_exactly_once_per_evidence_frame_and_nowhere_else():
    for seed in SEEDS:
        s = make_sample(seed, kind="colour")
        shape_id = SHAPES.index(s.question.text.split()[4]) + 1
        where = {tuple(x) for x in np.argwhere(s.cell_shape == shape_id).tolist()}
        assert where == set(s.question.evidence)


def test_shape_question_answer_is_the_shape_of_the_asked_colour():
    for seed in SEEDS:
        s = make_sample(seed, kind="shape")
        colour = s.question.text.split()[4]
        for f, r, c in s.question.evidence:
            assert s.cell_colour[f, r, c] == list(COLOURS).index(colour) + 1
            assert s.cell_shape[f, r, c] == SHAPES.index(s.question.answer) + 1


def test_background_answer_is_the_background_pixels_of_the_evidence_frames():
    for seed in SEEDS:
        s = make_sample(seed, kind="background")
        rgb = np.array(BACKGROUNDS[s.question.answer])
        for f in s.question.evidence_frames:
            counts = np.abs(s.frames[f].reshape(-1, 3).astype(int) - rgb).max(1) <= 6
            assert counts.mean() > 0.8


def test_position_label_matches_where_the_evidence_frames_are():
    for pos, allowed in (("early", range(0, 5)), ("middle", range(5, 11)), ("late", range(11, 16))):
        for seed in range(8):
            q = make_sample(seed, kind="colour", position=pos).question
            assert q.position == pos
            assert all(f in allowed for f in q.evidence_frames)


def test_spread_evidence_has_an_early_and_a_late_part():
    for seed in range(8):
        q = make_sample(seed, kind="shape", position="spread").question
        assert q.position == "spread"
        assert min(q.evidence_frames) < 5 and max(q.evidence_frames) >= 11
        assert position_of(q.evidence_frames, 16) == "spread"


def test_dataset_balances_kinds_and_positions():
    ds = make_dataset(22, seed=9)
    combos = {(s.question.kind, s.question.position) for s in ds}
    assert len(combos) == 11
    assert len({s.seed for s in ds}) == 22


def test_short_videos_are_supported_for_the_curriculum():
    s = make_sample(3, num_frames=1)
    assert s.frames.shape[0] == 1 and all(f == 0 for f, _, _ in s.question.evidence)


def test_zero_frames_is_a_clear_error():
    with pytest.raises(VideoError):
        make_sample(0, num_frames=0)


def test_sample_video_writes_a_readable_mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    s = sample_video(path, seed=4)
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        n += 1
    cap.release()
    assert n == s.num_frames
