"""bench/accuracy.py: nominal rows labelled as such, matched-FLOPs rows solved per method and labelled
by their target, unreachable targets reported with the reason, tower-bound rows footnoted."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_accuracy", REPO / "bench" / "accuracy.py")
acc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(acc)


def test_nominal_rows_are_labelled_by_nominal_retention():
    labels = [p["label"] for p in acc.build_plans(["fastv"], (0.25,), [])]
    assert labels == ["none", "fastv@R=0.25"]


def test_matched_rows_are_solved_on_calibration_inputs_and_labelled_by_target(tiny_llava):
    plans = acc.build_matched_plans(tiny_llava.engine, ["random", "fastv"], (0.5, 0.2), [tiny_llava.prep],
                                    progress=False)
    by = {p["label"]: p for p in plans}
    assert list(by) == ["none", "random@eq=0.5", "random@eq=0.2", "fastv@eq=0.5", "fastv@eq=0.2"]
    assert by["random@eq=0.5"]["solved"]["calibration_equivalent_retention"] == pytest.approx(0.5, abs=0.01)
    # FastV keeps every token in its first two layers: 20% of the FLOPs is out of its reach
    assert "out of reach" in by["fastv@eq=0.2"]["error"] and not by["fastv@eq=0.2"]["plan"]


def test_matched_markdown_shows_the_solved_setting_errors_and_the_tower_footnote():
    base = {"acc": 0.9, "by_position": {"early": 0.9}, "measured_retention": 1.0, "equivalent_retention": 1.0,
            "mean_layer_retention": 1.0}
    report = {"mode": "matched_flops", "weighting": "flops", "calibration": {"seed": 5, "n": 3}, "model": "builtin",
              "questions": 10, "seed": 2, "frames": 16, "chance": 0.25, "seconds": 1.0,
              "unpruned": {"label": "none", "method": "none", **base},
              "results": [{"label": "none", "method": "none", **base},
                          {"label": "visionzip@eq=0.25", "method": "visionzip", **base,
                           "solved": {"param": "retention", "value": 0.25}},
                          {"label": "fastv@eq=0.25", "method": "fastv", "error": "fastv: out of reach"}]}
    md = acc.markdown(report, None)
    assert md.startswith(acc.MATCHED_BEGIN) and md.rstrip().endswith(acc.MATCHED_END)
    assert "| visionzip@eq=0.25† | retention=0.25 |" in md
    assert "error: fastv: out of reach" in md
    assert "† VisionZip ranks by the attention" in md


def test_bad_targets_are_a_one_line_error(capsys):
    assert acc.main(["--matched-flops", "--targets", "0,1.5", "--n", "1"]) == 2
    assert "--targets" in capsys.readouterr().err


def test_wilson_interval_matches_worked_values():
    # 5/10: centre 0.5, half-width 1.96*sqrt(2.5 + 0.9604)/13.8416 = 0.2634
    assert acc.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = acc.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)   # not degenerate at 0%
    assert acc.wilson(463, 500) == pytest.approx((0.8997, 0.9458), abs=1e-4)
    assert acc.wilson(0, 0) == (0.0, 1.0)


def test_summary_carries_intervals_overall_and_per_position():
    s = acc._summary([True] * 9 + [False], ["early"] * 5 + ["late"] * 5, ["colour"] * 10)
    assert s["ci95"] == [round(v, 4) for v in acc.wilson(9, 10)]
    assert s["by_position_ci95"]["early"] == [round(v, 4) for v in acc.wilson(5, 5)]
    assert s["by_position_ci95"]["late"] == [round(v, 4) for v in acc.wilson(4, 5)]
    assert acc._with_ci(0.9, s["ci95"], 1) == f"90.0% [{s['ci95'][0] * 100:.1f}–{s['ci95'][1] * 100:.1f}]"


def _report(labels, unpruned=0.9, **over):
    rows = [{"label": lab, "method": lab.split("@")[0], "acc": unpruned} for lab in labels]
    rep = {"model": "builtin", "questions": 10, "seed": 2, "frames": 16, "mode": "nominal", "max_new_tokens": 2,
           "seconds": 5.0, "unpruned": rows[0], "results": rows}
    rep.update(over)
    return rep


def test_reports_of_method_subsets_merge_into_one_table():
    merged = acc.merge_reports([_report(["none", "fastv@R=0.25"]), _report(["none", "random@R=0.25"])])
    assert [r["label"] for r in merged["results"]] == ["none", "fastv@R=0.25", "random@R=0.25"]
    assert merged["seconds"] == 10.0


def test_reports_of_different_questions_do_not_merge():
    with pytest.raises(acc.VideoPruneError, match="seed"):
        acc.merge_reports([_report(["none"]), _report(["none"], seed=3)])
    with pytest.raises(acc.VideoPruneError, match="same questions"):
        acc.merge_reports([_report(["none"]), _report(["none"], unpruned=0.8)])


def test_plot_lines_matched_rows_up_on_the_retention_they_were_matched_on():
    assert acc.plot_x_key({"mode": "matched_flops", "weighting": "linear"}) == "mean_layer_retention"
    assert acc.plot_x_key({"mode": "matched_flops", "weighting": "flops"}) == "equivalent_retention"
    assert acc.plot_x_key({"mode": "nominal"}) == "equivalent_retention"


def test_ablation_table_shows_both_equivalent_retentions():
    spec = importlib.util.spec_from_file_location("bench_accuracy_table", REPO / "bench" / "accuracy_table.py")
    table_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table_mod)
    row = {"label": "sharp:retention=0.15", "acc": 0.9, "ci95": [0.8, 0.95], "by_position": {"early": 0.9},
           "measured_retention": 0.15, "equivalent_retention": 0.4, "mean_layer_retention": 0.256}
    report = {"questions": 10, "seed": 2, "frames": 16, "chance": 0.25, "model": "builtin",
              "unpruned": dict(row, label="none", measured_retention=1.0, equivalent_retention=1.0,
                               mean_layer_retention=1.0),
              "results": [row, {"label": "fastv@x", "error": "out of reach"}]}
    text = table_mod.table(report)
    assert "| mean over layers |" in text.splitlines()[2]
    assert "| 0.150 | 0.400 | 0.256 |" in text
    assert all(line.count("|") == 10 for line in text.splitlines()[2:] if line)
