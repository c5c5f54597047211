"""Demo v2: answers marked right/wrong and same/changed, and the projected real-scale speedup."""
from __future__ import annotations

import pytest

from demo import compare, projection
from pruning_core.flops import get_preset
from pruning_core.synthetic import make_sample
from test_demo import svc  # noqa: F401  (the demo service on the tiny model, one per module)


def _rows(*answers):
    return [{"label": "ref", "reference": True, "answer": answers[0]},
            *({"label": f"m{i}", "reference": False, "answer": a} for i, a in enumerate(answers[1:]))]


# ---------------------------------------------------------------- correctness marks

def test_with_a_known_answer_every_run_is_right_or_wrong_and_pruned_runs_same_or_changed():
    rows = compare.with_correctness(_rows("red", "red", "blue square"), "red")
    assert [r["right"] for r in rows] == [True, True, False]
    assert [r["correct"] for r in rows] == ["✓ right", "✓ right · same as unpruned", "✗ wrong · changed vs unpruned"]


def test_without_a_known_answer_pruned_runs_are_only_compared_with_the_unpruned_one():
    rows = compare.with_correctness(_rows("red", "red ", "blue"), None)
    assert [r["right"] for r in rows] == [None, None, None]
    assert [r["correct"] for r in rows] == ["reference", "same as unpruned", "changed vs unpruned"]


def test_right_is_judged_on_the_first_word_as_the_accuracy_benchmark_does():
    rows = compare.with_correctness(_rows("Red, I think", "red circle"), "red")
    assert [r["right"] for r in rows] == [True, True]
    assert rows[1]["correct"].endswith("changed vs unpruned")   # same word, different text


def test_known_answer_only_for_a_sample_asked_its_own_question(svc):
    q = make_sample(1, 2).question
    own = svc.settings("sample-1", None, q.text, ["fastv"], 0.25, 2, 2)
    other = svc.settings("sample-1", None, "what colour is the circle ?", ["fastv"], 0.25, 2, 2)
    assert svc.known_answer(own) == q.answer
    assert svc.known_answer(other) is None


def test_a_sample_run_carries_marks_and_the_projection_in_its_table(svc):
    q = make_sample(1, 2).question
    out = svc.compare(svc.settings("sample-1", None, q.text, ["fastv", "uniform"], 0.25, 2, 2))
    h = compare.TABLE_HEADERS
    assert h[:3] == ["run", "answer", "correct"] and "projected 7B speedup" in h
    for row, cells in zip(out.rows, out.table):
        assert row["right"] == (compare.first_word(row["answer"]) == q.answer)
        assert cells[h.index("correct")] == row["correct"]
        assert cells[h.index("answer")] == row["answer"]
    assert out.rows[0]["projected_speedup"] == pytest.approx(1.0)
    assert all(r["projected_speedup"] > 1.5 for r in out.rows[1:])      # 25% kept on a 7B: far above 1×


# ---------------------------------------------------------------- projection

def test_fastv_projection_reproduces_sharp_table_1_on_llava_onevision_7b():
    # 32 frames × 196 (+1 newline), no text: 40.8 TFLOPs unpruned, FastV K=2 keeping 25%: 11.0 (ShaRP Table 1)
    dims = get_preset("llava-onevision-7b")
    p = projection.project([{"method": "fastv", "layer": 2, "retention": 0.25}], 32, 0, [], 0, dims)
    assert p["basis"] == "plan" and p["visual_tokens"] == 6273
    assert p["speedup"] == pytest.approx(40.8 / 11.0, rel=0.02)


def test_unpruned_projects_to_one():
    p = projection.project([], 16, 20, [], 0, get_preset("llava-onevision-7b"))
    assert p["speedup"] == pytest.approx(1.0)


def test_measured_schedule_maps_each_run_layer_and_holds_the_last_share():
    # a 3-layer run, 10 text + 100 visual tokens: all, all, then 25 kept
    sched = projection.measured_schedule([110, 110, 35], 10, 100, 6, 1000)
    assert sched == [1000, 1000, 250, 250, 250, 250]


def test_real_scale_preset_follows_the_backbone():
    assert projection.real_scale_preset("qwen2_vl").name == "qwen2-vl-7b"
    assert projection.real_scale_preset("llava_onevision").name == "llava-onevision-7b"
    assert projection.real_scale_preset("unknown").name == "llava-onevision-7b"


# ---------------------------------------------------------------- timings: median of repeats

def test_timings_are_the_median_of_the_repeats_and_ttft_is_built_from_them():
    import dataclasses
    from pruning_core.repeats import median_of_repeats
    from pruning_core.result import Result
    base = Result("red", [1], [], [], 10, 10, None, vision_ms=5.0, prefill_ms=30.0, ttft_ms=36.0, decode_ms=0.0,
                  decode_steps=0, tokens_per_layer=[10], text_tokens=0, flops=1.0, flops_unpruned=1.0,
                  kv_cache_bytes=0, kv_cache_bytes_final=0, pre_llm_ms=1.0)
    more = iter([dataclasses.replace(base, prefill_ms=10.0, pre_llm_ms=3.0),
                 dataclasses.replace(base, prefill_ms=20.0, pre_llm_ms=2.0)])
    res = median_of_repeats(base, lambda: next(more), 3)
    assert (res.prefill_ms, res.pre_llm_ms, res.ttft_ms) == (20.0, 2.0, 27.0)
    assert res.timing_spread["prefill_ms"]["min"] == 10.0 and res.timing_spread["prefill_ms"]["max"] == 30.0
    assert res.answer == "red" and res.timing_spread["repeats"] == 3


def test_one_repeat_is_the_run_itself_and_a_bad_count_is_refused():
    from pruning_core.errors import PlanError
    from pruning_core.repeats import median_of_repeats
    sentinel = object()
    assert median_of_repeats(sentinel, lambda: pytest.fail("no rerun"), 1) is sentinel
    with pytest.raises(PlanError, match="timing repeats"):
        median_of_repeats(sentinel, lambda: sentinel, 0)


def test_compare_reports_the_median_and_spread_of_its_repeats(svc):
    out = svc.compare(svc.settings("sample-0", None, "what colour is the circle ?", ["uniform"], 0.5, 2, 2,
                                   repeats=3))
    h = compare.TABLE_HEADERS
    for row, cells in zip(out.rows, out.table):
        lo, hi = row["prefill_spread_ms"]
        assert row["repeats"] == 3 and lo <= row["prefill_ms"] <= hi
        assert row["ttft_ms"] == pytest.approx(row["vision_ms"] + row["pre_llm_ms"] + row["prefill_ms"])
        assert cells[h.index("prefill spread ms")].endswith("(median of 3)")


def test_timing_repeats_out_of_range_is_a_demo_error(svc):
    from demo.service import DemoError
    with pytest.raises(DemoError, match="timing repeats"):
        svc.settings("sample-0", None, "what colour is the circle ?", ["uniform"], 0.5, 2, 2, repeats=0)


# ---------------------------------------------------------------- the /compare API's inputs

@pytest.mark.parametrize("kwargs, message", [
    ({"retention": "abc"}, "retention must be a number, got 'abc'"),
    ({"retention": True}, "retention must be a number"),
    ({"frames": 2.5}, "frames must be a whole number"),
    ({"methods": 3}, "methods must be a list of method names"),
    ({"methods": ["fastv", 1]}, "methods must be a list of method names"),
    ({"methods": "nosuch"}, "nosuch"),
    ({"matched": "yes"}, "matched must be true or false"),
])
def test_api_inputs_of_the_wrong_type_are_one_line_demo_errors(svc, kwargs, message):
    from demo.service import DemoError
    args = {"video": "sample-0", "question": "what colour is the circle ?", "methods": ["fastv"], "retention": 0.25,
            "frames": 2, "max_new_tokens": 2, **kwargs}
    with pytest.raises(DemoError, match=message) as e:
        svc.api_settings(**args)
    assert "\n" not in str(e.value)


def test_api_reads_one_method_string_as_names_not_characters(svc):
    s = svc.api_settings("sample-0", "what colour is the circle ?", "fastv", "0.3", "2", 2)
    assert [st["method"] for st in s.steps] == ["fastv"] and s.steps[0]["retention"] == 0.3
    s = svc.api_settings("sample-0", "what colour is the circle ?", "fastv, uniform", 0.3, 2, 2)
    assert [st["method"] for st in s.steps] == ["fastv", "uniform"]


# ---------------------------------------------------------------- matched budget

def test_matched_budget_solves_each_method_to_the_same_equivalent_retention(svc):
    from pruning_core.matching import result_retention
    s = svc.settings("sample-0", None, "what colour is the circle ?", ["uniform", "random"], 0.4, 2, 2,
                     repeats=1, matched=True)
    assert all(lab.endswith("@eq=0.4") for lab in s.run_labels())
    out = svc.compare(s)
    assert [r["method"] for r in out.rows] == ["none", "uniform", "random"]
    for r in out.rows[1:]:   # pre-LLM methods: the mean share over layers is the kept share
        assert r["retention"] == pytest.approx(0.4, abs=0.01)


def test_matched_budget_gives_a_layer_method_a_lower_kept_share_for_the_same_budget(svc, tiny_llava):
    from pruning_core.matching import result_retention
    target = 0.8
    s = svc.settings("sample-0", None, "what colour is the circle ?", ["fastv", "uniform"], target, 2, 2,
                     repeats=1, matched=True)
    eng = tiny_llava.engine
    prep = eng.prepare(make_sample(0, 2).frames, s.question)
    got = {st["method"]: result_retention(eng.run(prep, [st], max_new_tokens=1), "linear") for st in s.steps}
    assert got == {"fastv": pytest.approx(target, abs=0.02), "uniform": pytest.approx(target, abs=0.02)}
    fastv = next(st for st in s.steps if st["method"] == "fastv")
    assert fastv["retention"] < target     # it keeps everything before its layer, so it prunes harder after


def test_matched_budget_leaves_out_a_method_without_a_knob_with_a_note(svc):
    s = svc.settings("sample-0", None, "what colour is the circle ?", ["uniform", "sharpv_memory"], 0.4, 2, 2,
                     repeats=1, matched=True)
    assert [st["method"] for st in s.steps] == ["uniform"]
    assert any("sharpv_memory" in n or "SharpV" in n for n in s.notes)


# ---------------------------------------------------------------- TTFT: one meaning in every table

def test_workflow_tab_and_report_show_the_same_ttft_as_the_compare_table(svc):
    s = svc.settings("sample-0", None, "what colour is the circle ?", ["uniform"], 0.5, 2, 2, repeats=1)
    out = svc.compare(s)
    _, ui, _ = svc.compare_workflow(s)
    from demo.workflow_builder import workflow_json
    wf = svc.run_workflow(workflow_json(ui), use_demo_model=True)
    assert wf.ok, wf.message
    for r in out.rows:
        assert r["ttft_ms"] == pytest.approx(r["vision_ms"] + r["pre_llm_ms"] + r["prefill_ms"])
        assert f"| {r['ttft_ms']:.1f} |" in wf.answers_md          # same cached Result, same TTFT
        assert f"{r['ttft_ms']:.1f}" in out.report_md


def test_a_cache_stage_shows_the_kv_cache_it_saves_not_a_prefill_gain(svc):
    out = svc.compare(svc.settings("sample-0", None, "what colour is the circle ?", ["sharpv_memory", "uniform"],
                                   0.3, 2, 4, repeats=1))
    ref, memory, uniform = out.rows
    assert ref["saves"] == "" and "prefill FLOPs" in uniform["saves"]
    assert "prefill FLOPs" not in memory["saves"]
    assert "KV cache −" in uniform["saves"]
    assert ("KV cache −" in memory["saves"]) == (memory["kv_cache_bytes_final"] < ref["kv_cache_bytes_final"])
    assert out.table[1][compare.TABLE_HEADERS.index("saves")] == memory["saves"]
