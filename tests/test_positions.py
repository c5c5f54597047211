"""positions=original|compact: compact re-encodes the kept tokens as the new input (the papers' own
codebases after pre-LLM pruning); both decode correctly on LLaVA-OV and Qwen2-VL."""
from __future__ import annotations

import pytest
import torch

from reference import kept_rows_after, recompute_logits
from test_engine import _stock_generate

from pruning_core import registry
from pruning_core.errors import PlanError
from pruning_core.positions import compact_position_ids
from pruning_core.registry import MethodSpec
from pruning_core.stages import PreStage, Selection


class _LastFrames(PreStage):
    """Keeps every token of the second half of the layout's frames (Qwen2-VL: temporal steps)."""

    def select(self, ctx):
        frame = ctx.layout.frame_of(ctx.ids)
        return Selection((frame >= ctx.layout.num_frames // 2).nonzero().squeeze(1))


@pytest.fixture
def last_frames(monkeypatch):
    spec = MethodSpec(name="test_last_frames", title="t", node="T", kind="pre", summary="", paper="",
                      params=(), build=lambda p, info: [_LastFrames("test_last_frames", p)])
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    return spec.name


def test_compact_ids_of_the_full_sequence_are_the_original_ids(tiny_any):
    prep = tiny_any.prep
    seq = torch.arange(prep.input_ids.shape[1])
    assert torch.equal(compact_position_ids(prep.position_ids, prep.vis_pos, seq), prep.position_ids)


def test_compact_mrope_text_after_the_video_starts_after_the_largest_kept_id(tiny_qwen2vl):
    prep = tiny_qwen2vl.prep
    L = prep.input_ids.shape[1]
    keep_vis = prep.vis_pos[::3]
    seq = kept_rows_after(prep, torch.arange(0, prep.layout.num_tokens, 3))
    pos = compact_position_ids(prep.position_ids, prep.vis_pos, seq)[:, 0]
    after = seq > prep.vis_pos[-1]
    vis = torch.isin(seq, keep_vis)
    assert int(pos[:, after].min()) == int(pos[:, vis].max()) + 1
    assert torch.equal(pos[:, after][:, 1:] - pos[:, after][:, :-1], torch.ones(3, int(after.sum()) - 1, dtype=pos.dtype))
    assert seq.numel() < L


@pytest.mark.parametrize("kind", ["llava", "qwen2vl"])
def test_compact_run_equals_stock_generate_on_the_kept_frames_alone(kind, request, last_frames):
    """Keeping the last half of the frames with compact positions is exactly the model asked about
    those frames alone: same tokens, same logits as stock ``generate`` on the shorter video."""
    setup = request.getfixturevalue(f"tiny_{'llava' if kind == 'llava' else 'qwen2vl'}")
    eng, frames = setup.engine, setup.frames
    q = "what colour is the circle ?"
    prep = eng.prepare(frames, q)
    res = eng.run(prep, last_frames, max_new_tokens=5, collect_logits=True, positions="compact")
    short = frames[frames.shape[0] // 2:]
    tokens, scores = _stock_generate(setup.adapter, eng.prepare(short, q), short, 5)
    assert res.positions == "compact"
    assert res.tokens == tokens
    torch.testing.assert_close(res.logits, scores, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("positions", ["original", "compact"])
def test_pruned_decode_matches_a_no_cache_forward_with_the_same_positions(tiny_any, positions):
    prep = tiny_any.prep
    res = tiny_any.engine.run(prep, "random:retention=0.4,seed=3", max_new_tokens=5, collect_logits=True,
                              positions=positions)
    rows = kept_rows_after(prep, res.kept_ids[-1])
    pos, nxt = None, None
    if positions == "compact":
        pos = prep.position_ids.clone()
        pos[..., rows] = compact_position_ids(prep.position_ids, prep.vis_pos, rows)
        nxt = int(pos[..., rows].max()) + 1
    ref = recompute_logits(tiny_any.adapter, prep, res.tokens, {0: rows}, prompt_pos=pos, next_pos=nxt)
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


def test_compact_and_original_differ_once_tokens_are_dropped(tiny_llava):
    prep = tiny_llava.prep
    a = tiny_llava.engine.run(prep, "random:retention=0.3", max_new_tokens=1, collect_logits=True)
    b = tiny_llava.engine.run(prep, "random:retention=0.3", max_new_tokens=1, collect_logits=True,
                              positions="compact")
    assert not torch.allclose(a.logits, b.logits)


def test_unknown_positions_mode_is_a_plan_error(tiny_llava):
    with pytest.raises(PlanError, match="positions"):
        tiny_llava.engine.run(tiny_llava.prep, "none", positions="shifted")


@pytest.mark.parametrize("mode", ["original", "compact"])
def test_the_demo_workflow_carries_the_positions_option_to_every_answer_node(mode):
    from demo.workflow_builder import CompareSettings, compare_graph
    cg = compare_graph(CompareSettings(question="what colour is the circle ?", steps=[{"method": "random"}],
                                       positions=mode))
    api = cg.api()
    answers = [n for n in api.values() if n["class_type"] == "VideoPruneAnswer"]
    assert len(answers) == 2 and all(n["inputs"]["positions"] == mode for n in answers)


def test_the_answer_node_offers_both_positions_modes():
    from nodes.pack import VideoPruneAnswer
    import inspect
    assert "positions" in inspect.signature(VideoPruneAnswer.answer).parameters
    assert VideoPruneAnswer.INPUT_TYPES()["optional"]["positions"][0] == ["original", "compact"]
