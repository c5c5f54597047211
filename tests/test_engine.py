"""The engine with no pruning reproduces stock transformers; its score row equals eager attention."""
from __future__ import annotations

import pytest
import torch

from reference import unpruned_state
from torch.utils._python_dispatch import TorchDispatchMode

from pruning_core.engine import Engine
from tiny_models import random_video, tiny_adapter

BACKBONES = ["llava", "qwen2vl", "qwen25"]


def _stock_generate(ad, prep, frames, n):
    extra = {}
    if ad.backbone == "llava_onevision":
        extra["pixel_values_videos"] = ad.pixel_values(frames)
    else:
        pv, grid = ad.pixel_values(frames)
        extra.update(pixel_values_videos=pv, video_grid_thw=grid, mm_token_type_ids=ad.mm_token_type_ids(prep.input_ids))
        if ad.backbone == "qwen2_5_vl":  # as Qwen2_5_VLProcessor passes it
            extra["second_per_grid_ts"] = torch.tensor([ad.second_per_grid_ts(prep.encoding.timing)])
    out = ad.model.generate(input_ids=prep.input_ids, max_new_tokens=n, do_sample=False, output_scores=True,
                            return_dict_in_generate=True, **extra)
    return out.sequences[0, prep.input_ids.shape[1]:].tolist(), torch.stack(out.scores)[:, 0].float()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("kind", BACKBONES)
def test_no_pruning_reproduces_stock_generate(kind, attn):
    ad = tiny_adapter(kind, attn, seed=3)
    eng = Engine(ad)
    frames = random_video(4, 32, seed=2)
    prep = eng.prepare(frames, "what colour is the circle ?")
    res = eng.run(prep, "none", max_new_tokens=6, collect_logits=True)
    tokens, scores = _stock_generate(ad, prep, frames, 6)
    assert res.tokens == tokens
    torch.testing.assert_close(res.logits, scores, atol=1e-4, rtol=1e-4)


def test_qwen25_with_video_timing_reproduces_stock_generate():
    from pruning_core.timing import VideoTiming
    ad = tiny_adapter("qwen25", "sdpa", seed=3)
    eng = Engine(ad)
    frames = random_video(5, 32, seed=2)
    timing = VideoTiming.of(30.0, [3, 9, 15, 21, 27], 30)  # 5 fps sampled
    prep = eng.prepare(frames, "what colour is the circle ?", timing=timing)
    res = eng.run(prep, "none", max_new_tokens=4, collect_logits=True)
    tokens, scores = _stock_generate(ad, prep, frames, 4)
    assert res.tokens == tokens
    torch.testing.assert_close(res.logits, scores, atol=1e-4, rtol=1e-4)


def test_qwen25_temporal_positions_step_by_tokens_per_second_times_grid_seconds():
    from pruning_core.timing import VideoTiming
    ad = tiny_adapter("qwen25", "sdpa", seed=3)
    frames = random_video(8, 32, seed=2)
    tps = ad.model.config.vision_config.tokens_per_second
    steps = set()
    for fps, n, sampled in ((24.0, 48, 8), (25.0, 50, 4), (30.0, 60, 6), (30.0, 20, 8)):
        timing = VideoTiming.of(fps, list(range(0, n, n // sampled))[:sampled], n)
        prep = Engine(ad).prepare(frames[:sampled], "what ?", timing=timing)
        grids = prep.position_ids[0, 0, prep.vis_pos].view(prep.layout.num_frames, -1)
        assert (grids == grids[:, :1]).all()  # one temporal id per grid
        step = tps * 2 / timing.sampled_fps
        expect = (torch.arange(grids.shape[0]) * step).long() + grids[0, 0]
        assert grids[:, 0].tolist() == expect.tolist()
        steps.add(round(step, 3))
    assert len(steps) == 4  # four different spacings, fractional ones truncated as transformers does


@pytest.mark.parametrize("kind", ["llava", "qwen2vl"])
def test_last_token_scores_equal_eager_attention_row(kind):
    ad = tiny_adapter(kind, "eager", seed=4)
    eng = Engine(ad)
    frames = random_video(4, 32, seed=5)
    prep = eng.prepare(frames, "which shape appears first ?")
    st = unpruned_state(ad, prep, 3)
    ours = st.last_token_scores(2)
    with torch.no_grad():
        kw = {"inputs_embeds": prep.embeds, "output_attentions": True}
        if prep.position_ids.dim() == 3:
            kw["position_ids"] = prep.position_ids
        hf = ad.language_model(**kw)
    ref = hf.attentions[2][0, :, -1, prep.vis_pos].float().mean(0)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_pruned_prefill_memory_does_not_grow_quadratically():
    ad = tiny_adapter("llava", "sdpa", seed=6)
    eng = Engine(ad)
    sizes = {}
    for frames in (8, 16):
        prep = eng.prepare(random_video(frames, 32, seed=frames), "what colour is the circle ?")
        with _LargestTensor() as probe:
            eng.run(prep, "fastv:layer=2,retention=0.25", max_new_tokens=1)
        L = prep.input_ids.shape[1]
        sizes[frames] = (probe.largest, L)
        # no tensor as large as one head's L x L attention matrix per head is ever built
        assert probe.largest < ad.info.num_heads * L * L
    (a, la), (b, lb) = sizes[8], sizes[16]
    assert b / a < 1.5 * (lb / la)  # linear in L, not quadratic


def test_a_prompt_split_after_the_video_and_fed_through_the_decoder_gives_the_same_answer(tiny_any):
    from pruning_core.engine import split_prompt
    eng, prep = tiny_any.engine, tiny_any.prep
    full = eng.run(prep, "none", max_new_tokens=3, collect_logits=True)
    cut, tail = split_prompt(prep, int(prep.vis_pos[-1]) + 2)
    res = eng.run(cut, "none", max_new_tokens=3, collect_logits=True, feed_tokens=tail)
    assert res.tokens == full.tokens and res.answer == full.answer
    torch.testing.assert_close(res.logits, full.logits, atol=1e-4, rtol=1e-4)


def test_split_prompt_refuses_to_cut_into_the_video(tiny_llava):
    from pruning_core.engine import split_prompt
    from pruning_core.errors import VideoPruneError
    with pytest.raises(VideoPruneError, match="after the last visual token"):
        split_prompt(tiny_llava.prep, int(tiny_llava.prep.vis_pos[-1]))
