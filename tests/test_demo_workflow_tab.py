"""The Workflow tab shows what a workflow says and did: its notes, captioned images, titled reports."""
from __future__ import annotations

import json

from demo.service import image_part, notes_of, report_title
from test_demo import _settings, svc  # noqa: F401  (the module's service fixture)


def test_an_examples_note_text_is_shown_with_its_graph(svc):  # noqa: F811
    text = svc.read_example("sharp_vs_fastv.json")
    (note,) = [n["widgets_values"][0] for n in json.loads(text)["nodes"] if n["type"] == "Note"]
    out = svc.inspect_workflow(text)
    assert out.ok and note.splitlines()[0] in out.notes_md and out.notes_md.startswith("> **Note:**")


def test_notes_are_read_top_to_bottom_and_an_api_prompt_has_none():
    ui = {"nodes": [{"type": "Note", "pos": [0, 300], "widgets_values": ["second"]},
                    {"type": "MarkdownNote", "pos": [500, 10], "widgets_values": ["first"]},
                    {"type": "Note", "pos": [0, 0], "widgets_values": ["  "]}]}
    assert notes_of(ui) == ["first", "second"]
    assert notes_of({"1": {"class_type": "VideoPruneLoadVideo", "inputs": {}}}) == []


def test_overlay_images_are_captioned_with_their_frame_and_the_strip():
    ui = {"images": [{}, {}, {}], "videoprune_strip": [{}]}
    assert [image_part(ui, i, 3) for i in range(3)] == ["frame 0 of 2 · ", "frame 1 of 2 · ", "retention per frame · "]
    assert image_part({"images": [{}]}, 0, 1) == ""


def test_a_report_is_titled_by_the_runs_it_compares():
    rows = [{"label": "unpruned", "frames": 16}, {"label": "FastV", "frames": 16}]
    assert report_title(rows) == "Report: unpruned vs FastV, 16 frames"
    assert report_title([{"label": "a", "frames": 4}, {"label": "b", "frames": 8}]) == "Report: a vs b"


def test_a_run_workflow_shows_titled_reports_and_frame_captions(svc):  # noqa: F811
    _, ui, _ = svc.compare_workflow(_settings(svc, ["uniform"], retention=0.5, frames=2))
    out = svc.run_workflow(json.dumps(ui))
    assert out.ok, out.message
    assert out.report_md.startswith("**Report: unpruned (reference) vs Uniform (retention=0.5), 2 frames**")
    captions = [c for _, c in out.images]
    assert any(c.startswith("frame 0 of 2 · Kept tokens: Uniform") for c in captions)
    assert any(c.startswith("retention per frame · Kept tokens: Uniform") for c in captions)
    assert any(c.startswith("Report: unpruned (reference) vs Uniform") for c in captions)
