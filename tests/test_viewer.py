"""Demo v2 overlays: the frame viewer, the retention timeline, the Pareto view, the sheet size cap,
and the caption text without a ghost."""
from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from demo import viewer
from pruning_core.layout import TokenLayout
from pruning_core.overlay import KEPT_COLOR, caption, cell_borders

LAYOUT = TokenLayout(num_frames=3, grid_h=2, grid_w=2)       # 12 tokens, 4 per frame
KEPT = np.asarray(KEPT_COLOR, np.uint8)


def _result(kept, stages=(), plan=None, eq=1.0, layout=LAYOUT):
    """The parts of ``pruning_core.result.Result`` the viewer reads."""
    ids = torch.as_tensor(kept)
    return SimpleNamespace(kept_ids=[ids], layout=layout, plan=plan if plan is not None else [],
                           stages=list(stages), equivalent_retention=eq, positions="original")


def _stage(name, **info):
    return SimpleNamespace(name=name, info=info)


def _frames(t=3, h=8, w=8, value=200):
    return np.full((t, h, w, 3), value, np.uint8)


def _viewer(frames=None):
    return viewer.from_results(_frames() if frames is None else frames, [
        ("unpruned", _result(range(12))),
        ("FastV", _result([0, 5, 6, 11], plan=[{"method": "fastv"}], eq=0.8)),
        ("ShaRP", _result([1, 2, 3, 4], plan=[{"method": "sharp"}], eq=0.5,
                          stages=[_stage("sharp", segment_of_frame=[0, 1, 1])])),
    ])


# ---------------------------------------------------------------- caption text

def test_caption_halo_stays_around_the_text_with_no_offset_ghost():
    out = caption(np.full((4, 320, 3), 90, np.uint8), "FastV (retention=0.1): 10% kept", height=22)[:22, :, 0]
    text = out > 150                                    # the white glyphs
    halo = out < 20                                     # darker than the band (32): the outline
    near_text = cv2.dilate(text.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert halo.sum() > 0 and not (halo & ~near_text).any()
    # the outline ends where the text ends (a thick second copy drifted ~1 px per glyph to the right)
    assert np.nonzero(halo.any(0))[0].max() <= np.nonzero(text.any(0))[0].max() + 2


def test_caption_too_long_for_the_image_is_cut_with_an_ellipsis():
    out = caption(np.zeros((4, 60, 3), np.uint8), "a very long method label that cannot fit", height=22)
    assert out.shape == (26, 60, 3)
    assert (out[:22, -2:] == 32).all()                  # nothing drawn into the right margin


# ---------------------------------------------------------------- frame viewer

def test_viewer_shows_every_run_side_by_side_at_full_frame_size():
    v = _viewer(_frames(h=112, w=112))
    panels = viewer.frame_panels(v, 1, min_side=336)
    assert len(panels) == 3
    assert all(img.shape[1] == 336 and img.shape[0] == 336 + 2 * 22 for img, _ in panels)   # 3x, two bands
    sheet = viewer.frame_view(v, 1, min_side=336, pad=6)
    assert sheet.shape == (336 + 44, 3 * 336 + 2 * 6, 3)


def test_viewer_never_shrinks_a_large_frame():
    v = _viewer(_frames(h=400, w=600))
    img, _ = viewer.frame_panels(v, 0, min_side=336)[0]
    assert img.shape[1] == 600 and viewer.display_scale(400, 600, 336) == 1


def test_kept_patches_are_outlined_exactly_where_the_kept_ids_are():
    v = _viewer(_frames(h=16, w=16))
    img, _ = viewer.frame_panels(v, 1, min_side=16)[1]   # FastV keeps ids 5, 6: cells (0,1), (1,0) of frame 1
    body = img[-16:]                                    # below the two caption bands
    outlined = (body == KEPT).all(-1)
    expect = cell_borders(np.array([[False, True], [True, False]]), 16, 16)
    assert np.array_equal(outlined, expect)
    assert (body[2:6, 10:14] == 200).all()             # a kept cell keeps its pixels
    assert body[2:6, 2:6].max() < 100                  # a pruned cell is dimmed


def test_caption_names_the_run_and_the_frames_kept_share_and_segment():
    _, text = viewer.frame_panels(_viewer(), 1)[2]        # ShaRP keeps ids 1..4: one of frame 1's four
    assert text == "ShaRP: frame 1: 1/4 kept (25%), seg 2"


def test_scores_tint_the_frame_by_rank_and_leave_pruned_cells_undimmed():
    v = _viewer(_frames(h=16, w=16, value=128))
    scores = np.full(12, np.nan)
    scores[4:8] = [0.1, 0.9, 0.5, 0.2]                 # frame 1
    plain, _ = viewer.frame_panels(v, 1, min_side=16)[1]
    tinted, _ = viewer.frame_panels(v, 1, min_side=16, heat={"FastV": scores})[1]
    assert not np.array_equal(plain, tinted)
    assert tinted[-14:-10, 2:6].max() > plain[-14:-10, 2:6].max()   # pruned cell (id 4) not dimmed
    assert viewer.rank_heat(scores[4:8]).tolist() == [0.0, 1.0, 2 / 3, 1 / 3]


def test_frame_index_outside_the_clip_is_refused():
    with pytest.raises(viewer.ViewerError, match="outside 0..2"):
        viewer.frame_view(_viewer(), 3)


def test_qwen2_vl_pairs_show_the_layout_frame_of_their_pair():
    layout = TokenLayout(num_frames=2, grid_h=1, grid_w=1, frames_per_step=2)
    v = viewer.from_results(_frames(t=4), [("a", _result([0, 1], layout=layout)),
                                           ("b", _result([1], plan=[{"method": "x"}], layout=layout))])
    assert [v.layout_frame(i) for i in range(4)] == [0, 0, 1, 1]
    assert viewer.frame_panels(v, 1)[1][1].startswith("b: frame 1: 0/1 kept")


# ---------------------------------------------------------------- segments and the timeline

def test_segment_starts_are_read_from_what_sharp_and_hieravid_recorded():
    r = _result([0], stages=[_stage("sharp", segment_of_frame=[0, 0, 1, -1, 2, 2]),
                             _stage("hieravid", segments=[0, 3, 5]), _stage("hieravid", segments=[0, 1])])
    assert viewer.segment_starts(r) == {"ShaRP SegM": [0, 2, 4], "HieraVid": [0, 3, 5]}


def test_timeline_has_one_line_per_method_and_boundaries_at_the_recorded_segment_starts():
    v = viewer.from_results(_frames(), [
        ("unpruned", _result(range(12))),
        ("FastV", _result([0, 5], plan=[{"method": "fastv"}])),
        ("HieraVid", _result([0, 4, 8], plan=[{"method": "hieravid"}], stages=[_stage("hieravid", segments=[0, 2])])),
    ])
    ax = viewer.timeline_figure(v, index=1).axes[0]
    lines = {ln.get_label(): ln for ln in ax.lines if not ln.get_label().startswith("_")}
    assert {"FastV", "HieraVid"} <= set(lines) and "unpruned" not in lines
    assert lines["FastV"].get_ydata().tolist() == [25.0, 25.0, 0.0]
    bounds = [ln.get_xdata()[0] for ln in ax.lines if str(ln.get_gid()).startswith("segment:HieraVid")]
    assert bounds == [1.5]                                # before frame 2, the second segment's start
    assert [ln.get_xdata()[0] for ln in ax.lines if ln.get_gid() == "cursor"] == [1]
    assert viewer.timeline_chart(v).ndim == 3


# ---------------------------------------------------------------- Pareto view

def _bench(tmp_path, name="acc.json", mode=None):
    results = [{"label": "none", "method": "none", "acc": 0.9, "n": 10, "equivalent_retention": 1.0},
               {"label": "fastv@0.5", "method": "fastv", "acc": 0.8, "n": 10, "equivalent_retention": 0.8},
               {"label": "fastv@0.25", "method": "fastv", "acc": 0.6, "n": 10, "equivalent_retention": 0.6},
               {"label": "random@0.5", "method": "random", "acc": 0.5, "n": 10, "equivalent_retention": 0.5},
               {"label": "sharp@eq=0.1", "method": "sharp", "error": "out of reach"}]
    p = tmp_path / name
    p.write_text(json.dumps({"benchmark": "accuracy", "model": "builtin", "frames": 16, "questions": 10,
                             "mode": mode, "results": results}))
    return p


def test_pareto_reads_the_benchmark_rows_with_an_accuracy(tmp_path):
    points, sources = viewer.load_benchmarks([_bench(tmp_path)])
    assert [(p.method, p.equivalent_retention, p.acc) for p in points] == [
        ("none", 1.0, 0.9), ("fastv", 0.8, 0.8), ("fastv", 0.6, 0.6), ("random", 0.5, 0.5)]
    assert sources == ["acc.json: builtin, 16 frames, 10 questions, same kept share"]
    assert [p.label for p in viewer.frontier(points)] == ["random@0.5", "fastv@0.25", "fastv@0.5", "none"]


def test_pareto_reads_the_accuracy_bench_files_in_docs():
    points, sources = viewer.load_benchmarks()
    assert len(sources) == 2 and {"fastv", "sharp", "hieravid", "sharpv", "none"} <= {p.method for p in points}
    data = json.loads(viewer.BENCHMARKS[0].read_text())
    assert sum(p.source == "accuracy.json" for p in points) == sum(r.get("acc") is not None for r in data["results"])


def test_pareto_places_the_runs_points_on_their_methods_benchmark_curve(tmp_path):
    rows = [{"label": "unpruned", "method": "none", "equivalent_retention": 1.0, "right": True},
            {"label": "FastV 0.3", "method": "fastv", "equivalent_retention": 0.7, "right": False},
            {"label": "Odd", "method": "notbenchmarked", "equivalent_retention": 0.2, "right": None}]
    points, _ = viewer.load_benchmarks([_bench(tmp_path)])
    got = viewer.run_points(rows, points)
    assert [p.expected_acc for p in got] == [0.9, pytest.approx(0.7), None]
    ax = viewer.pareto_figure(rows, [_bench(tmp_path)]).axes[0]
    stars = {c.get_gid(): c.get_offsets().tolist() for c in ax.collections if str(c.get_gid()).startswith("run:")}
    assert stars == {"run:unpruned": [[100.0, 90.0]], "run:FastV 0.3": [[70.0, pytest.approx(70.0)]]}


def test_a_missing_benchmark_file_is_one_line(tmp_path):
    with pytest.raises(viewer.ViewerError, match="cannot read the benchmark file nope.json"):
        viewer.load_benchmarks([tmp_path / "nope.json"])


def test_the_pareto_chart_of_a_finished_run_survives_a_missing_benchmark_file(tmp_path):
    rows = [{"label": "unpruned", "method": "none", "equivalent_retention": 1.0, "right": True}]
    ax = viewer.pareto_figure(rows, [tmp_path / "nope.json", _bench(tmp_path)]).axes[0]
    assert "nope.json: skipped" in ax.get_title(loc="left") and "acc.json: builtin" in ax.get_title(loc="left")
    alone = viewer.pareto_figure(rows, [tmp_path / "nope.json"]).axes[0]
    assert [c.get_offsets().tolist() for c in alone.collections if c.get_gid() == "run:unpruned"] == [[[100.0, 100.0]]]


# ---------------------------------------------------------------- the all-frames sheet

def test_sheet_height_caps_the_sheets_pixels_and_keeps_small_runs_at_full_thumbnails():
    assert viewer.sheet_height(3, 16) == viewer.SHEET_MAX_H
    h = viewer.sheet_height(7, 64)
    assert viewer.SHEET_MIN_H <= h < viewer.SHEET_MAX_H and 7 * 64 * h * h <= viewer.SHEET_PIXELS
    assert viewer.sheet_height(20, 64) == viewer.SHEET_MIN_H


# ---------------------------------------------------------------- recorded scores (heatmaps)

def test_scores_are_recorded_only_when_asked(tiny_llava, monkeypatch):
    from pruning_core.result import StageRecord
    plan = [{"method": "sharp", "retention": 0.25, "regd": False}]
    on = tiny_llava.engine.run(tiny_llava.prep, plan, max_new_tokens=1, record_scores=True)

    def refuse(*a, **k):
        raise AssertionError("scores kept although nobody asked")
    monkeypatch.setattr(StageRecord, "with_scores", refuse)
    off = tiny_llava.engine.run(tiny_llava.prep, plan, max_new_tokens=1)
    assert all(st.scores == {} for st in off.stages)
    assert set(on.stages[0].scores) == {"attention", "attention after PosC"}
    assert torch.equal(on.kept_ids[-1], off.kept_ids[-1]) and on.answer == off.answer


@pytest.mark.parametrize("plan, name", [
    ([{"method": "fastv", "layer": 1, "retention": 0.25}], "attention"),
    ([{"method": "sharp", "retention": 0.25, "regd": False}], "attention after PosC"),
])
def test_recorded_attention_is_what_the_layer_stage_ranked_by(tiny_llava, plan, name):
    from pruning_core.tokens import topk_ordered
    res = tiny_llava.engine.run(tiny_llava.prep, plan, max_new_tokens=1, record_scores=True)
    scores = res.stages[0].scores[name]
    assert not scores.isnan().any()                       # the first stage sees every token
    assert torch.equal(topk_ordered(scores, res.stages[0].kept), res.kept_ids[-1])


def test_recorded_sharpv_importance_picks_each_frames_kept_tokens(tiny_llava):
    res = tiny_llava.engine.run(tiny_llava.prep, [{"method": "sharpv"}], max_new_tokens=1, record_scores=True)
    imp = res.stages[0].scores["importance"].reshape(res.layout.num_frames, -1)
    kept = res.layout.kept_mask(res.kept_ids[-1]).reshape(res.layout.num_frames, -1)
    mixed = [f for f in range(res.layout.num_frames) if kept[f].any() and (~kept[f]).any()]
    assert mixed
    for f in mixed:                                       # every kept token outranks every pruned one
        assert imp[f][kept[f]].min() >= imp[f][~kept[f]].max()


def test_hieravid_relevance_is_recorded_per_stage_over_the_tokens_it_saw(tiny_llava):
    res = tiny_llava.engine.run(tiny_llava.prep, [{"method": "hieravid", "retention": 0.3}], max_new_tokens=1,
                                record_scores=True)
    named = viewer.scores_of(res)
    assert "relevance (pre-LLM)" in named and any(k.startswith("relevance (layer") for k in named)
    later = next(v for k, v in named.items() if k.startswith("relevance (layer"))
    seen = ~np.isnan(later)
    assert set(np.nonzero(seen)[0]) <= set(res.stages[0].kept_ids.tolist())   # only what survived the pre stage


def test_heat_for_prefers_sharps_attention_after_posc():
    sc = {"ShaRP": {"attention": np.zeros(4), "attention after PosC": np.ones(4)},
          "HieraVid": {"relevance (pre-LLM)": np.full(4, 2.0), "relevance (layer 2)": np.full(4, 3.0)},
          "Uniform": {}}
    assert {k: v[0] for k, v in viewer.heat_for(sc).items()} == {"ShaRP": 1.0, "HieraVid": 2.0}
    assert viewer.heat_for(sc, after_posc=False)["ShaRP"][0] == 0.0


# ---------------------------------------------------------------- on a real Compare run

def test_collect_reads_a_real_compare_run(svc):
    from demo.service import DemoService  # noqa: F401  (svc is a DemoService on the tiny model)
    s = svc.settings("sample-1", None, "what colour is the circle ?", ["sharp", "fastv"], 0.25, 4, 2, repeats=1)
    cg, ui, _ = svc.compare_workflow(s)
    res = svc._run(ui, None)
    v = viewer.collect(cg, res.outputs)
    assert [r.label for r in v.runs] == [run.label for run in cg.runs] and v.num_frames == 4
    sharp = v.runs[1]
    assert "ShaRP SegM" in sharp.segments and sharp.segments["ShaRP SegM"][0] == 0
    kept = res.outputs[cg.runs[1].answer][1].result.kept_ids[-1].numpy()
    assert np.array_equal(sharp.kept_ids, kept)
    assert viewer.frame_view(v, 3).shape[1] >= 3 * viewer.MIN_SIDE
    scores = viewer.record_scores(svc.adapter, v)         # asked for: one re-run per pruned run
    assert set(scores) == {r.label for r in v.runs if not r.reference}
    assert set(scores[sharp.label]) == {"attention", "attention after PosC"}
    heat = viewer.heat_for(scores)
    assert viewer.frame_view(v, 3, heat=heat).shape == viewer.frame_view(v, 3).shape


from test_demo import svc  # noqa: E402,F401  (the demo service on the tiny model, one per module)
