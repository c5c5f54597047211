"""The lmms-eval adapter's pure parts, without lmms-eval: model_args, plans, cache, request -> engine call, task."""
from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from pruning_core.engine import Engine
from pruning_core.errors import VideoPruneError
from pruning_core.registry import parse_plan
from pruning_core.synthetic import write_mp4
from tiny_models import random_video, tiny_adapter
from videoprune_eval import synthetic_task
from videoprune_eval.args import ModelArgs, parse_model_args
from videoprune_eval.cache import EncodingCache, nbytes
from videoprune_eval.figures import DOC_FIGURES, combine_rounds, summarize
from videoprune_eval.runner import Runner, stop_at

ROOT = Path(__file__).resolve().parents[1]


# -- model_args ---------------------------------------------------------------------------------------
def test_defaults_are_builtin_model_no_pruning_16_frames():
    a = parse_model_args()
    assert (a.pretrained, a.plan, a.frames, a.positions) == ("builtin", "none", 16, "original")


def test_harness_values_are_accepted_as_lmms_eval_passes_them():
    # lmms-eval turns numbers into int/float and passes batch_size/device itself
    a = parse_model_args(pretrained="/ckpt/llava-ov-7b", frames=32, plan="fastv:layer=2;retention=0.25",
                         attn="sdpa", dtype="bf16", batch_size=1, device=None, max_batch_size=None)
    assert a.frames == 32 and a.device == "auto" and a.dtype == "bf16" and a.attn == "sdpa"
    assert parse_plan(a.plan) == [{"method": "fastv", "layer": 2, "retention": 0.25}]


def test_quoted_plan_and_semicolon_plan_read_the_same():
    quoted = parse_model_args(plan="'visionzip:retention=0.2+sharp:retention=0.124,layer=1'")
    semi = parse_model_args(plan="visionzip:retention=0.2+sharp:retention=0.124;layer=1")
    assert quoted.plan == semi.plan
    assert [s["method"] for s in quoted.plan_list] == ["visionzip", "sharp"]


def test_plan_round_trips_through_its_canonical_string():
    for text in ("none", "sharp:retention=0.25", "hieravid:retention=0.303", "sharpv:mode=manual;k=1.6",
                 '[{"method": "fastv", "layer": 3, "retention": 0.5}]'):
        a = parse_model_args(plan=text)
        assert parse_model_args(plan=a.plan).plan == a.plan
        assert parse_plan(a.plan) == a.plan_list


def test_a_comma_split_plan_is_reported_with_the_fix():
    # what lmms-eval makes of --model_args plan=fastv:layer=2,retention=0.25 (unquoted)
    with pytest.raises(VideoPruneError, match="must be quoted"):
        parse_model_args(plan="fastv:layer=2", retention=0.25)


@pytest.mark.parametrize("given, msg", [({"frames": 0}, "frames"), ({"frames": 2.5}, "frames"),
                                        ({"positions": "relative"}, "positions"), ({"attn": "flash"}, "attn"),
                                        ({"batch_size": 4}, "batch size 1"), ({"plan": "nosuch:retention=0.2"}, "unknown method"),
                                        ({"cache_mb": -1}, "cache_mb"), ({"sharp": 1}, "unknown model_args")])
def test_bad_model_args_fail_with_one_line(given, msg):
    with pytest.raises(VideoPruneError, match=msg) as e:
        parse_model_args(**given)
    assert "\n" not in str(e.value)


# -- cache ---------------------------------------------------------------------------------------------
def test_cache_counts_hits_and_evicts_least_recently_used_by_bytes():
    c = EncodingCache(max_bytes=2 * 400)
    make = lambda: torch.zeros(100)  # 400 bytes  # noqa: E731
    assert c.get_or_create("a", make)[1] is False
    assert c.get_or_create("b", make)[1] is False
    assert c.get_or_create("a", make)[1] is True      # a is now the most recent
    c.get_or_create("c", make)                         # evicts b
    assert "a" in c and "c" in c and "b" not in c
    assert c.stats.to_dict()["hits"] == 1 and c.stats.misses == 3 and c.stats.evictions == 1
    assert c.stats.bytes <= c.max_bytes


def test_cache_of_zero_bytes_never_keeps_anything():
    c = EncodingCache(0)
    c.get_or_create("a", lambda: torch.zeros(3))
    assert len(c) == 0 and c.get_or_create("a", lambda: torch.zeros(3))[1] is False


def test_nbytes_walks_nested_tensors_once():
    t = torch.zeros(10)
    assert nbytes({"x": t, "y": [t, np.zeros(5, np.uint8)]}) == 40 + 5


# -- request -> engine call ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runner():
    return Runner(ModelArgs(frames=4), adapter=tiny_adapter("llava", seed=3))


def test_generate_is_the_engine_answer_on_the_same_frames(runner, tmp_path):
    frames = random_video(4, 32, seed=5)
    want = Engine(runner.adapter).answer(frames, "what colour is the circle ?", max_new_tokens=5)
    text, fig = runner.generate([frames], "what colour is the circle ?", {"max_new_tokens": 5})
    assert text == want.answer
    assert fig["kept_tokens"] == want.kept_tokens and fig["flops_ratio"] == 1.0 and fig["vision_cached"] is False


def test_questions_about_one_video_file_share_one_encoding(runner, tmp_path):
    path = tmp_path / "v.mp4"
    write_mp4(random_video(4, 32, seed=6), path)
    before = runner.cache.stats.misses
    _, f1 = runner.generate([str(path)], "what colour is the circle ?", {"max_new_tokens": 2})
    _, f2 = runner.generate([str(path)], "what shape is the red object ?", {"max_new_tokens": 2})
    assert (f1["vision_cached"], f2["vision_cached"]) == (False, True)
    assert runner.cache.stats.misses == before + 1


def test_plan_is_applied_to_every_request():
    r = Runner(ModelArgs(frames=4, plan="random:retention=0.25"), adapter=tiny_adapter("llava", seed=3))
    _, fig = r.generate([random_video(4, 32, seed=7)], "what colour is the circle ?", {"max_new_tokens": 2})
    assert fig["retention"] == pytest.approx(0.25, abs=0.02) and fig["flops_ratio"] < 1.0


def test_loglikelihood_of_the_greedy_reply_is_its_summed_logprob_and_greedy(runner):
    frames = random_video(4, 32, seed=8)
    eng = Engine(runner.adapter)
    res = eng.answer(frames, "what colour is the circle ?", max_new_tokens=3, collect_logits=True)
    toks = [t for t in res.tokens if t not in runner.adapter.eos_token_ids]
    cont = runner.adapter.tokenizer.decode(toks)
    want = float(sum(torch.log_softmax(res.logits[i], -1)[t] for i, t in enumerate(toks)))
    ll, greedy, _ = runner.loglikelihood([frames], "what colour is the circle ?", cont)
    assert greedy is True
    assert ll == pytest.approx(want, abs=1e-4)


def test_loglikelihood_of_another_word_is_not_greedy_and_lower(runner):
    frames = random_video(4, 32, seed=8)
    words = ["red", "green", "blue", "yellow"]
    scores = {w: runner.loglikelihood([frames], "what colour is the circle ?", w)[:2] for w in words}
    assert sum(g for _, g in scores.values()) <= 1
    assert all(ll <= 0 for ll, _ in scores.values())


def test_forced_tokens_reproduce_the_greedy_logits(runner):
    frames = random_video(4, 32, seed=9)
    eng = Engine(runner.adapter)
    prep = eng.prepare(frames, "what colour is the circle ?")
    res = eng.run(prep, "none", max_new_tokens=4, collect_logits=True)
    forced = eng.run(prep, "none", force_tokens=res.tokens)
    assert forced.tokens == res.tokens
    torch.testing.assert_close(forced.logits, res.logits)


def test_until_cuts_the_reply():
    assert stop_at("red\nblue", ["\n"]) == "red" and stop_at("red", None) == "red"


def test_multi_round_calls_the_engine_once_per_round(runner):
    frames = random_video(4, 32, seed=10)
    seen = []

    def next_round(previous, round_idx, info):
        seen.append((list(previous), round_idx))
        return None, "what shape is the red object ?", round_idx >= 2, None, {"r": round_idx}
    outs, fig = runner.generate_rounds([frames], "what colour is the circle ?", {"max_new_tokens": 2}, next_round)
    assert len(outs) == 2 and [r for _, r in seen] == [1, 2] and fig["rounds"] == 2
    assert fig["vision_cached"] is True or runner.cache.stats.hits > 0


def test_a_request_without_video_is_refused(runner):
    with pytest.raises(VideoPruneError, match="no visual"):
        runner.generate([], "what colour ?", {})


# -- figures -------------------------------------------------------------------------------------------
def _fig(**kw):
    base = {"plan": "none", "visual_tokens": 100, "kept_tokens": 100, "retention": 1.0, "equivalent_retention": 1.0,
            "tflops": 2.0, "tflops_unpruned": 2.0, "flops_ratio": 1.0, "ttft_ms": 10.0, "prefill_ms": 8.0,
            "vision_ms": 2.0, "vision_cached": False, "decode_ms_per_token": 1.0, "new_tokens": 2}
    return {**base, **kw}


def test_summary_means_and_hit_rate():
    s = summarize([_fig(), _fig(kept_tokens=50, flops_ratio=0.5, ttft_ms=20.0, vision_cached=True)])
    assert s["requests"] == 2 and s["mean_kept_tokens"] == 75 and s["mean_flops_ratio"] == 0.75
    assert s["mean_ttft_ms"] == 15 and s["vision_cache_hit_rate"] == 0.5


def test_rounds_add_flops_and_times():
    c = combine_rounds([_fig(tflops=1.0, tflops_unpruned=2.0), _fig(tflops=1.0, tflops_unpruned=2.0, vision_cached=True)])
    assert c["tflops"] == 2.0 and c["flops_ratio"] == 0.5 and c["ttft_ms"] == 20.0 and c["vision_cached"] is False


# -- the task --------------------------------------------------------------------------------------------
def test_export_is_deterministic_three_questions_per_video(tmp_path):
    a = synthetic_task.export(tmp_path / "a", videos=3)
    b = synthetic_task.export(tmp_path / "b", videos=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert [p.name for p in files].count("test.jsonl") == 1 and len([p for p in files if p.suffix == ".mp4"]) == 3
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in files)
    rows = [json.loads(line) for line in (a / "test.jsonl").read_text().splitlines()]
    assert [r["qid"] for r in rows] == list(range(9))
    assert {r["video_id"] for r in rows} == {"v0000", "v0001", "v0002"}
    assert all(sorted(r["kind"] for r in rows if r["video_id"] == v) == ["background", "colour", "shape"]
               for v in ("v0000", "v0001", "v0002"))
    assert all(r["answer"] in r["options"] and r["question"].endswith(" , ".join(r["options"])) for r in rows)


def test_first_question_of_each_video_is_the_accuracy_benchmarks():
    from pruning_core.synthetic import make_dataset
    rows = synthetic_task.build_rows(videos=2)
    assert [r[1][0]["question"] for r in rows] == [s.question.text for s in make_dataset(2, synthetic_task.SEED)]


def test_process_results_scores_the_first_word_and_reports_figures():
    doc = {"qid": 123456, "answer": "red"}
    assert synthetic_task.process_results(doc, ["Red."]) == {"acc": 1.0}
    DOC_FIGURES[(synthetic_task.TASK, synthetic_task.SPLIT, 123456)] = _fig(flops_ratio=0.4, vision_cached=True)
    try:
        out = synthetic_task.process_results(doc, ["blue"])
    finally:
        del DOC_FIGURES[(synthetic_task.TASK, synthetic_task.SPLIT, 123456)]
    assert out["acc"] == 0.0 and out["flops_ratio"] == 0.4 and out["vision_cache_hit"] == 1.0


def test_task_yaml_metrics_are_what_process_results_returns():
    text = (ROOT / "videoprune_eval/tasks/videoprune_synthetic/videoprune_synthetic.yaml").read_text()
    listed = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("- metric:")]
    assert listed == ["acc", *synthetic_task.FIGURE_METRICS]


def test_entry_point_names_the_model_class():
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lmms_eval.models"]
    module, func = eps["videoprune"].split(":")
    assert module == "videoprune_eval.manifest" and func == "manifests"
    tree = ast.parse((ROOT / "videoprune_eval/lmms_model.py").read_text())
    cls = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "VideoPrune"]
    methods = {f.name for f in cls[0].body if isinstance(f, ast.FunctionDef)}
    assert {"generate_until", "loglikelihood", "generate_until_multi_round"} <= methods
    assert "videoprune_eval.lmms_model.VideoPrune" in (ROOT / "videoprune_eval/manifest.py").read_text()


def test_every_plan_in_the_eval_guide_is_valid():
    import re
    import shlex
    text = (ROOT / "docs/EVAL.md").read_text()
    loops = re.findall(r"for PLAN in (.*?); do", text, flags=re.S)
    plans = [p for block in loops for p in shlex.split(block.replace("\\\n", " "))]
    assert len(plans) >= 20
    for p in plans:
        parse_model_args(plan=p)


@pytest.mark.parametrize("preset, tokens, plan, tflops", [
    ("llava-onevision-7b", 6272, "sharp:retention=0.282", 11.0), ("llava-onevision-7b", 6272, "sharp:retention=0.140", 6.04),
    ("qwen2-vl-7b", 2880, "sharp:retention=0.236", 4.12), ("llava-onevision-7b", 6272, "hieravid:retention=0.303", 10.68)])
def test_eval_guide_retentions_meet_the_papers_flops(preset, tokens, plan, tflops):
    from pruning_core.flops import flops_report, get_preset
    assert flops_report(get_preset(preset), tokens, 0, plan)["tflops"] == pytest.approx(tflops, abs=0.01)


def test_a_cpu_launch_that_started_one_process_is_named():
    from videoprune_eval.args import single_cpu_launch_note
    one = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert "--multi_gpu" in single_cpu_launch_note(one, 1)
    assert single_cpu_launch_note({**one, "WORLD_SIZE": "2"}, 2) is None
    assert single_cpu_launch_note({"ACCELERATE_USE_CPU": "True"}, 1) is None  # --num_processes 1


def test_positions_compact_reaches_the_engine():
    ad = tiny_adapter("llava", seed=3)
    frames = random_video(4, 32, seed=11)
    r = Runner(ModelArgs(frames=4, plan="random:retention=0.5", positions="compact"), adapter=ad)
    assert r._run_kwargs == {"positions": "compact"}
    eng = Engine(ad)
    want = eng.run(eng.prepare(frames, "what colour is the circle ?"), "random:retention=0.5", max_new_tokens=4,
                   positions="compact", collect_logits=True)
    text, _ = r.generate([frames], "what colour is the circle ?", {"max_new_tokens": 4})
    assert text == want.answer
