"""Qwen3-VL (dense and MoE) under the engine: stock equivalence, DeepStack following the kept and
merged tokens, timestamps as text, every method with its invariants, FLOPs presets, loading."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from reference import kept_rows_after, recompute_logits
from pruning_core import engine as engine_mod
from pruning_core.adapters.qwen3_vl import Qwen3VLAdapter, Qwen3VLMoeAdapter, smart_resize_video, step_timestamps
from pruning_core.engine import Engine
from pruning_core.flops import get_preset
from pruning_core.registry import methods
from pruning_core.stages import Merge
from tiny_models import random_video, tiny_adapter

QUESTION = "what colour is the circle ?"


@pytest.fixture(scope="module")
def qwen3():
    ad = tiny_adapter("qwen3", "sdpa", seed=3)
    eng = Engine(ad)
    frames = random_video(8, 32, seed=2)
    return eng, frames, eng.prepare(frames, QUESTION)


def _stock(ad, prep, frames, n):
    pv, grid = ad.pixel_values(frames)
    out = ad.model.generate(input_ids=prep.input_ids, pixel_values_videos=pv, video_grid_thw=grid,
                            mm_token_type_ids=ad.mm_token_type_ids(prep.input_ids), max_new_tokens=n,
                            do_sample=False, output_scores=True, return_dict_in_generate=True)
    return out.sequences[0, prep.input_ids.shape[1]:].tolist(), torch.stack(out.scores)[:, 0].float()


@pytest.mark.parametrize("kind,attn", [("qwen3", "sdpa"), ("qwen3", "eager"), ("qwen3moe", "sdpa")])
def test_qwen3_plan_none_equals_stock_generate(kind, attn):
    ad = tiny_adapter(kind, attn, seed=3)
    eng = Engine(ad)
    frames = random_video(6, 32, seed=2)
    prep = eng.prepare(frames, QUESTION)
    assert prep.encoding.deepstack.shape == (3, prep.layout.num_tokens, ad.info.hidden_size)
    res = eng.run(prep, "none", max_new_tokens=6, collect_logits=True)
    tokens, scores = _stock(ad, prep, frames, 6)
    assert res.tokens == tokens
    torch.testing.assert_close(res.logits, scores, atol=1e-4, rtol=1e-4)


def test_qwen3_adapters_come_from_the_loader_table():
    assert type(tiny_adapter("qwen3")) is Qwen3VLAdapter
    assert type(tiny_adapter("qwen3moe")) is Qwen3VLMoeAdapter


def test_qwen3_timestamps_are_text_between_frames_and_layout_maps_every_visual_token(qwen3):
    eng, frames, prep = qwen3
    ad = eng.adapter
    lay = prep.layout
    assert (lay.num_frames, lay.frames_per_step) == (4, 2)
    toks = ad.tokenizer.convert_ids_to_tokens(prep.input_ids[0].tolist())
    vid = int(ad.model.config.video_token_id)
    # visual slots are exactly the video pads, frame-major, and every step's block is preceded by its time
    assert torch.equal(prep.vis_pos, (prep.input_ids[0] == vid).nonzero().squeeze(1))
    per_step = prep.vis_pos.view(lay.num_frames, lay.tokens_per_frame)
    assert bool((per_step[:, 1:] - per_step[:, :-1] == 1).all())
    text = " ".join(toks)
    for t in prep.encoding.timestamps:
        assert " ".join(["<", *f"{t:.1f}", "seconds", ">", "<|vision_start|>"]) in text
    gaps = per_step[1:, 0] - per_step[:-1, -1] - 1
    assert bool((gaps > 2).all())  # <|vision_end|> <t seconds> <|vision_start|> between blocks
    between = toks[int(per_step[0, -1]) + 1: int(per_step[1, 0])]
    assert between[0] == "<|vision_end|>" and between[-1] == "<|vision_start|>" and "seconds" in between
    ids = torch.arange(lay.num_tokens)
    assert lay.frame_of(ids).tolist() == sum([[f] * lay.tokens_per_frame for f in range(lay.num_frames)], [])
    assert lay.row_of(ids[:lay.grid_w + 1]).tolist() == [0] * lay.grid_w + [1]


def test_qwen3_step_timestamps_match_the_processor():
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
    for indices, fps in (([0, 3, 6, 9], 2.0), ([0, 5, 10, 15, 20], 30.0), (list(range(7)), 24.0)):
        ours = step_timestamps(indices, fps, 2)
        theirs = Qwen3VLProcessor._calculate_timestamps(None, list(indices), fps, 2)
        assert ours == pytest.approx(theirs)


def test_qwen3_timing_sets_the_prompt_timestamps(qwen3):
    eng, frames, _ = qwen3

    class Timing:
        fps, indices = 2.0, [0, 3, 6, 9, 12, 15, 18, 21]
    enc = eng.adapter.encode_video(frames, timing=Timing())
    assert enc.timestamps == pytest.approx([0.75, 3.75, 6.75, 9.75])
    ids, _ = eng.adapter.prompt_ids(QUESTION, enc)
    text = " ".join(eng.adapter.tokenizer.convert_ids_to_tokens(ids[0].tolist()))
    assert "< 9 . 8 seconds >" in text  # f"{9.75:.1f}" rounds half to even, as the processor prints it


@pytest.mark.parametrize("size", [(32, 32, 8), (33, 22, 5), (300, 200, 8), (20, 60, 3), (640, 360, 16)])
def test_qwen3_smart_resize_matches_transformers(size):
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize
    h, w, t = size
    for lo, hi in ((128 * 32 * 32, 768 * 32 * 32), (4096, 25165824), (64, 8 * 32 * 32)):
        assert smart_resize_video(t, h, w, 2, 32, lo, hi) == smart_resize(t, h, w, 2, 32, lo, hi)


def test_qwen3_black_video_encodes_as_one_tiled_step(qwen3):
    eng, frames, prep = qwen3
    ad = eng.adapter
    black = ad.encode_video(frames * 0, capture=False)
    torch.testing.assert_close(ad.encode_black(prep.layout, frames), black.embeds, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ad.encode_black_deepstack(prep.layout, frames), black.deepstack, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("plan,keep_layer", [("fastv:layer=2,retention=0.3", 2), ("uniform:retention=0.4", 0),
                                             ("fastv:layer=1,retention=0.5", 1)])
def test_qwen3_cached_decode_after_pruning_equals_no_cache_recompute(qwen3, plan, keep_layer):
    eng, _, prep = qwen3
    res = eng.run(prep, plan, max_new_tokens=5, collect_logits=True)
    rows = kept_rows_after(prep, res.stages[-1].kept_ids)
    ref = recompute_logits(eng.adapter, prep, res.tokens, {keep_layer: rows})
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


def _with_deepstack(prep, deepstack):
    enc = type(prep.encoding)(**{**prep.encoding.__dict__, "deepstack": deepstack})
    return type(prep)(**{**prep.__dict__, "encoding": enc})


@pytest.mark.parametrize("plan,layer", [("fastv:layer=2,retention=0.3", 2), ("random:retention=0.3", 0),
                                        ("sharp:retention=0.3,regd=false", 1)])
def test_qwen3_deepstack_rows_of_pruned_tokens_do_not_matter(qwen3, plan, layer):
    eng, _, prep = qwen3
    base = eng.run(prep, plan, max_new_tokens=4, collect_logits=True)
    kept = base.stages[-1].kept_ids
    pruned = torch.ones(prep.layout.num_tokens, dtype=torch.bool)
    pruned[kept] = False
    ds = prep.encoding.deepstack.clone()
    ds[layer:, pruned] = 1e3 * torch.randn_like(ds[layer:, pruned])
    res = eng.run(_with_deepstack(prep, ds), plan, max_new_tokens=4, collect_logits=True)
    assert res.tokens == base.tokens
    torch.testing.assert_close(res.logits, base.logits, atol=1e-5, rtol=1e-5)
    # ... while a kept token's rows do (the engine really adds them)
    ds2 = prep.encoding.deepstack.clone()
    ds2[2, kept] += 10.0
    other = eng.run(_with_deepstack(prep, ds2), plan, max_new_tokens=4, collect_logits=True)
    assert not torch.allclose(other.logits[0], base.logits[0], atol=1e-3)


def _capture(monkeypatch, cls_name: str):
    """Record (rows the stage saw, its Selection) for every call of a stage class's select."""
    seen = []
    import importlib
    mod_name, cls = cls_name.rsplit(".", 1)
    klass = getattr(importlib.import_module(mod_name), cls)
    orig = klass.select

    def spy(self, ctx):
        rows = ctx.embeds.clone() if hasattr(ctx, "embeds") else ctx.visual_hidden.clone()
        sel = orig(self, ctx)
        if sel is not None:
            seen.append((rows, sel))
        return sel
    monkeypatch.setattr(klass, "select", spy)
    return seen


@pytest.mark.parametrize("plan,cls", [
    ("visionzip:retention=0.3", "pruning_core.methods.visionzip.VisionZipStage"),
    ("hieravid_merge:retention=0.4", "pruning_core.methods.hieravid.HieraVidMerge"),
    ("hieravid:retention=0.3", "pruning_core.methods.hieravid.HieraVidPre"),
    ("sharp:retention=0.3,posc=false", "pruning_core.methods.sharp.SharpStage"),
    ("framefusion:retention=0.3,threshold=0.0", "pruning_core.methods.framefusion.FrameFusionLayer"),
    ("downsample:retention=0.3", "pruning_core.methods.downsample.DownsampleStage"),
    ("prunevid:retention=0.3,llm_prune=false,tau=0.0", "pruning_core.methods.prunevid.PruneVidPre"),
    ("holitom:retention=0.3,tau=0.0", "pruning_core.methods.holitom.HoliTomOuter"),
    ("holitom:retention=0.3", "pruning_core.methods.holitom.HoliTomInner"),
])
def test_qwen3_merging_stages_report_the_merge_their_values_are(qwen3, monkeypatch, plan, cls):
    eng, _, prep = qwen3
    seen = _capture(monkeypatch, cls)
    eng.run(prep, plan, max_new_tokens=1)
    merged = [(rows, sel) for rows, sel in seen if sel.values is not None]
    assert merged, "the plan merged nothing; the test needs a merge"
    for rows, sel in merged:
        assert sel.merge is not None
        torch.testing.assert_close(sel.merge.apply(rows.float(), sel.keep), sel.values.float(), atol=1e-5, rtol=1e-5)


def test_qwen3_deepstack_is_merged_with_the_same_weights_as_the_tokens(qwen3, monkeypatch):
    """DeepStack rows set to c·embedding: after a merging pre-LLM stage they must still be c·(merged
    embedding) for every kept token, whatever the merge weights are (the mean is linear)."""
    eng, _, prep = qwen3
    c = torch.tensor([2.0, -1.0, 0.5]).view(3, 1, 1)
    p2 = _with_deepstack(prep, c * prep.visual_embeds.unsqueeze(0))
    got = {}
    orig = engine_mod.PrefillState.run_layer

    def spy(self, i, mask):
        if i == 0:
            got["ds"], got["emb"] = self.deepstack.clone(), self.vis_embeds0.clone()
        return orig(self, i, mask)
    monkeypatch.setattr(engine_mod.PrefillState, "run_layer", spy)
    res = eng.run(p2, "visionzip:retention=0.3", max_new_tokens=1)
    assert res.stages[0].info["merged"] > 0
    torch.testing.assert_close(got["ds"], c * got["emb"].unsqueeze(0), atol=1e-5, rtol=1e-5)


def test_qwen3_merge_map_subset_and_uncovered_slots():
    rows = torch.tensor([[1.0], [3.0], [5.0], [7.0]])
    m = Merge(torch.tensor([0, 0, 1, -1]), torch.tensor([1.0, 3.0, 1.0, 1.0]))
    assert m.apply(rows, torch.tensor([0, 2])).flatten().tolist() == [2.5, 5.0]
    sub = m.subset(torch.tensor([1]), 2)
    assert sub.target.tolist() == [-1, -1, 0, -1]
    # a kept slot nothing points to keeps its own row
    assert Merge(torch.tensor([-1, -1, 1, -1])).apply(rows, torch.tensor([0, 2])).flatten().tolist() == [1.0, 5.0]


def test_qwen3_a_merge_without_its_map_is_refused_on_deepstack(qwen3, monkeypatch):
    from pruning_core.errors import PlanError
    from pruning_core.methods import hieravid
    eng, _, prep = qwen3
    orig = hieravid.HieraVidMerge.select

    def no_map(self, ctx):
        sel = orig(self, ctx)
        sel.merge = None
        return sel
    monkeypatch.setattr(hieravid.HieraVidMerge, "select", no_map)
    with pytest.raises(PlanError, match="DeepStack"):
        eng.run(prep, "hieravid_merge:retention=0.4", max_new_tokens=1)


@pytest.mark.parametrize("method", sorted(m for m in methods() if m != "none"))
def test_qwen3_every_method_runs_with_its_invariants(qwen3, method):
    eng, _, prep = qwen3
    res = eng.run(prep, method, max_new_tokens=3)
    again = eng.run(prep, method, max_new_tokens=3)
    n = prep.layout.num_tokens
    assert res.tokens == again.tokens  # deterministic
    for st, st2 in zip(res.stages, again.stages):
        ids = st.kept_ids
        assert torch.equal(ids, st2.kept_ids)
        assert ids.numel() == 0 or (int(ids.min()) >= 0 and int(ids.max()) < n)
        assert bool((ids[1:] > ids[:-1]).all())  # unique and in original order
    spec = methods()[method].defaults()
    if spec.get("retention") is not None and methods()[method].kind in ("pre", "layer"):
        assert res.kept_tokens <= max(1, round(spec["retention"] * n))
    # text (prompt and timestamps) is never dropped: every layer holds all text tokens
    assert res.text_tokens == prep.input_ids.shape[1] - n
    assert all(t >= res.text_tokens for t in res.tokens_per_layer)
    assert res.tokens_per_layer[-1] - res.text_tokens <= n


def test_qwen3_moe_counts_the_active_experts():
    ad = tiny_adapter("qwen3moe")
    tc = ad.text_config
    assert ad.info.intermediate_size == tc.num_experts_per_tok * tc.moe_intermediate_size
    p = get_preset("qwen3-vl-30b-a3b")
    assert (p.hidden_size, p.intermediate_size, p.num_layers) == (2048, 8 * 768, 48)


@pytest.mark.parametrize("name,d,m,layers,heads,kv", [
    ("qwen3-vl-2b", 2048, 6144, 28, 16, 8), ("qwen3-vl-4b", 2560, 9728, 36, 32, 8),
    ("qwen3-vl-8b", 4096, 12288, 36, 32, 8), ("qwen3-vl-30b-a3b", 2048, 6144, 48, 32, 4)])
def test_qwen3_presets_hold_the_checkpoints_text_config(name, d, m, layers, heads, kv):
    p = get_preset(name)
    assert (p.hidden_size, p.intermediate_size, p.num_layers, p.num_heads, p.num_kv_heads, p.head_dim) == \
        (d, m, layers, heads, kv, 128)


def test_qwen3_flops_cli_preset():
    out = subprocess.run([sys.executable, "-m", "pruning_core", "flops", "--preset", "qwen3-vl-8b", "--visual-tokens",
                          "4096", "--plan", "fastv:layer=2,retention=0.25", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    d, m, L = 4096, 12288, 36
    f0 = L * (4 * 4096 * d * d + 2 * 4096 ** 2 * d + 2 * 4096 * d * m)
    assert rep["preset"] == "qwen3-vl-8b" and rep["flops_unpruned"] == pytest.approx(f0)


def test_qwen3_loads_from_a_saved_folder(tmp_path, qwen3):
    from pruning_core.loader import load_model
    eng, frames, prep = qwen3
    eng.adapter.model.save_pretrained(tmp_path)
    eng.adapter.tokenizer.save_pretrained(tmp_path)
    ad = load_model(str(tmp_path), device="cpu", attn="sdpa")
    assert isinstance(ad, Qwen3VLAdapter) and ad.info.num_layers == eng.info.num_layers
    ad.min_pixels, ad.max_pixels = eng.adapter.min_pixels, eng.adapter.max_pixels
    a = Engine(ad).answer(frames, QUESTION, "fastv", max_new_tokens=3)
    assert a.tokens == eng.run(prep, "fastv", max_new_tokens=3).tokens


def test_qwen3_folder_runs_through_the_nodes_with_a_stage(tmp_path, qwen3):
    """A saved Qwen3-VL folder under models/LLM (with its own pixel budget) answers through the node graph."""
    from nodes.runtime import Runtime
    eng, _, _ = qwen3
    folder = tmp_path / "models" / "qwen3-tiny"
    eng.adapter.model.save_pretrained(folder)
    eng.adapter.tokenizer.save_pretrained(folder)
    (folder / "video_preprocessor_config.json").write_text(json.dumps(
        {"size": {"shortest_edge": 64, "longest_edge": 8 * 32 * 32}, "patch_size": 4, "temporal_patch_size": 2,
         "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}))
    (tmp_path / "input").mkdir()
    rt = Runtime(input_dirs=[tmp_path / "input"], model_dirs=[tmp_path / "models"], output_dir=tmp_path / "out")
    prompt = {
        "1": {"class_type": "VideoPruneLoadModel", "inputs": {"model": "qwen3-tiny", "device": "cpu", "dtype": "fp32",
                                                              "attention": "sdpa"}},
        "2": {"class_type": "VideoPruneLoadVideo", "inputs": {"video": "sample-0", "num_frames": 6, "max_side": 0}},
        "3": {"class_type": "VideoPruneShaRP", "inputs": {"layer": 1, "retention": 0.3}},
        "10": {"class_type": "VideoPruneAnswer", "inputs": {"model": ["1", 0], "frames": ["2", 0], "question": ["2", 2],
                                                            "plan": ["3", 0], "max_new_tokens": 3}}}
    from nodes.pack import NODE_CLASS_MAPPINGS as M
    spec = M["VideoPruneShaRP"].INPUT_TYPES()["required"]
    prompt["3"]["inputs"] = {k: prompt["3"]["inputs"].get(k, v[1].get("default")) for k, v in spec.items()}
    out = rt.run(prompt)
    assert out.outputs["1"][0].info.backbone == "qwen3_vl"
    (rep,) = out.ui["10"]["videoprune"]
    # 6 frames → 3 temporal steps; the folder's own pixel budget (8·32·32 for the clip) gives 4×4 tokens each
    assert rep["visual_tokens"] == 3 * 16 and 1 <= rep["kept_tokens"] <= round(0.3 * 48)
    assert [s["name"] for s in rep["stages"]] == ["sharp"]


def test_qwen3_compares_in_the_demo_with_an_odd_frame_count(qwen3, tmp_path):
    from demo.service import DemoService
    from nodes import models as node_models
    eng, _, _ = qwen3
    name = "tiny-demo-qwen3"
    service = DemoService(name, tmp_path, device="cpu", factory=lambda: eng.adapter)
    try:
        out = service.compare(service.settings("sample-1", None, QUESTION, ["sharp", "uniform"], 0.25, 5, 2, None))
    finally:
        node_models.MODEL_FACTORIES.pop(name, None)
    ref, sharp, uni = out.rows
    assert ref["visual_tokens"] == sharp["visual_tokens"] == uni["visual_tokens"]
    assert uni["kept_tokens"] == round(0.25 * ref["visual_tokens"]) and sharp["kept_tokens"] <= uni["kept_tokens"]
    assert len(ref["frame_retention"]) == 3                     # 5 frames → 3 temporal steps (last one padded)


def test_qwen3_load_video_info_sets_the_timestamps_in_the_nodes(qwen3):
    from nodes import models as node_models
    from pruning_core.timing import VideoTiming
    timing_of = VideoTiming.from_info
    eng, frames, _ = qwen3
    loaded = node_models.LoadedModel(eng.adapter, "tiny-qwen3")
    info = {"num_frames": 8, "fps": 2.0, "source_frames": 30, "indices": [0, 4, 8, 12, 16, 20, 24, 29]}
    timed = loaded.prepare(frames, QUESTION, timing_of(info, 8))
    plain = loaded.prepare(frames, QUESTION, timing_of(None, 8))
    assert timed.encoding.timestamps == pytest.approx([1.0, 5.0, 9.0, 13.25])
    assert plain.encoding.timestamps == pytest.approx([i / 24 + 1 / 48 for i in range(0, 8, 2)])
    assert timed.input_ids.shape != plain.input_ids.shape or not torch.equal(timed.input_ids, plain.input_ids)
    assert timing_of({**info, "indices": info["indices"][:7]}, 8) is None  # info about other frames is not used


def test_qwen3_prefill_bench_feeds_deepstack_rows_and_renders_its_table(capsys):
    import os
    bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
    sys.path.insert(0, bench)
    import prefill
    import prefill_table
    prefill.main(["--dims", "qwen3-tiny", "--frames", "3", "--grid", "4", "--threads", "1", "--repeats", "1",
                  "--plan", "fastv:layer=2,retention=0.25"])
    rep = json.loads(capsys.readouterr().out)
    assert rep["visual_tokens"] == 3 * 16
    none, fastv = rep["plans"]
    assert fastv["kept_tokens"] == 12 and fastv["speedup_cpu"] > 0 and fastv["speedup_flops"] > 1
    rendered = prefill_table.table(rep)
    assert "CPU" in rendered and f"{fastv['speedup_cpu']:.2f}×" in rendered


def test_qwen3_compact_ids_of_the_whole_prompt_are_the_original_ids(qwen3):
    from pruning_core.positions import compact_position_ids
    _, _, prep = qwen3
    seq = torch.arange(prep.input_ids.shape[1])
    assert torch.equal(compact_position_ids(prep.position_ids, prep.vis_pos, seq), prep.position_ids)


@pytest.mark.parametrize("plan", ["random:retention=0.4,seed=3", "uniform:retention=0.3"])
def test_qwen3_compact_positions_decode_equals_a_no_cache_forward(qwen3, plan):
    from pruning_core.positions import compact_position_ids
    eng, _, prep = qwen3
    res = eng.run(prep, plan, max_new_tokens=4, collect_logits=True, positions="compact")
    rows = kept_rows_after(prep, res.kept_ids[-1])
    pos = prep.position_ids.clone()
    pos[..., rows] = compact_position_ids(prep.position_ids, prep.vis_pos, rows)
    ref = recompute_logits(eng.adapter, prep, res.tokens, {0: rows}, prompt_pos=pos,
                           next_pos=int(pos[..., rows].max()) + 1)
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


def test_qwen3_sequence_length_counts_every_steps_timestamp(qwen3):
    eng, frames, prep = qwen3
    n = eng.adapter.sequence_length(frames.shape[0], frames.shape[1], frames.shape[2], QUESTION)
    assert n == prep.input_ids.shape[1]
