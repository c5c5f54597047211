"""Answer subsamples an external IMAGE batch to its frame count and says which question it asked."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nodes import models
from nodes.pack import NODE_CLASS_MAPPINGS as M, subsample_frames
from nodes.report import table
from pruning_core.video import sample_indices

QUESTION = "what colour is the circle ?"


def batch(tiny, n: int) -> torch.Tensor:
    """An external IMAGE batch of ``n`` frames (as VideoHelperSuite sends every decoded frame)."""
    reps = np.resize(np.arange(tiny.frames.shape[0]), n)
    return torch.from_numpy(tiny.frames[reps]).float() / 255.0


@pytest.fixture
def answer(tiny_llava):
    model = models.LoadedModel(tiny_llava.adapter, "tiny")
    node = M["VideoPruneAnswer"]()
    return lambda frames, **kw: node.answer(model, frames, QUESTION, 2, **kw)


def test_frame_count_widget_defaults_to_16_and_0_means_all():
    spec = M["VideoPruneAnswer"].INPUT_TYPES()["optional"]["num_frames"]
    assert spec[0] == "INT" and spec[1]["default"] == 16 and spec[1]["min"] == 0


def test_a_152_frame_batch_is_encoded_as_16_uniformly_sampled_frames(answer, tiny_llava):
    per_frame = answer(batch(tiny_llava, 4))["result"][1].layout.num_tokens / 4
    out = answer(batch(tiny_llava, 152))
    row = out["ui"]["videoprune"][0]
    assert row["frames"] == 16 and row["frames_given"] == 152
    assert out["result"][1].frames.shape[0] == 16
    assert out["result"][1].layout.num_tokens == 16 * per_frame   # not 152 frames' worth


def test_the_sampled_frames_are_the_ones_load_video_would_pick(tiny_llava):
    frames = torch.arange(152, dtype=torch.float32).view(152, 1, 1, 1).expand(152, 2, 2, 3) / 152
    out, timing, given = subsample_frames(frames, None, 16)
    assert given == 152 and timing is None
    assert (out[:, 0, 0, 0] * 152).round().long().tolist() == sample_indices(152, 16).tolist()


def test_timing_from_video_info_follows_the_sampled_frames():
    info = {"fps": 30.0, "indices": list(range(0, 304, 2)), "source_frames": 304}
    frames = np.zeros((152, 2, 2, 3), np.float32)
    _, timing, _ = subsample_frames(frames, info, 16)
    pick = sample_indices(152, 16)
    assert list(timing.indices) == [2 * int(i) for i in pick]
    assert timing.timestamps[1] == pytest.approx(2 * int(pick[1]) / 30.0)


def test_zero_or_a_short_batch_keeps_every_frame(answer, tiny_llava):
    row = answer(batch(tiny_llava, 18), num_frames=0)["ui"]["videoprune"][0]
    assert row["frames"] == row["frames_given"] == 18
    row = answer(batch(tiny_llava, 4))["ui"]["videoprune"][0]
    assert row["frames"] == row["frames_given"] == 4


def test_answer_panel_and_report_rows_name_the_question_asked(answer, tiny_llava):
    out = answer(batch(tiny_llava, 4), sample_question="is the square blue ?")
    row = out["ui"]["videoprune"][0]
    assert row["question"] == "is the square blue ?"    # the wired question wins over the widget's
    head, _, body = table([row]).splitlines()
    assert "| question | answer |" in head and "| is the square blue ? |" in body
