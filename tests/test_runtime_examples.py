"""Every shipped example workflow runs headless; the CLI writes outputs and reports bad workflows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodes import models
from nodes.__main__ import main
from nodes.examples import EXAMPLES, build, missing_methods
from nodes.pack import NODE_CLASS_MAPPINGS
from nodes.runtime import Runtime
from nodes.workflow import is_ui_workflow

REPO = Path(__file__).resolve().parent.parent
FILES = sorted((REPO / "example_workflows").glob("*.json"))


@pytest.fixture(scope="module", autouse=True)
def builtin_is_tiny(tiny_llava):
    """The tiny random test model stands in for the built-in one (keeps the CPU cost small)."""
    previous = models.MODEL_FACTORIES.get("builtin")
    models.register_model("builtin", lambda: tiny_llava.adapter)
    yield
    if previous is None:
        models.MODEL_FACTORIES.pop("builtin", None)
    else:
        models.MODEL_FACTORIES["builtin"] = previous


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    return Runtime(output_dir=tmp_path_factory.mktemp("out"))


def _skip_unregistered(name: str) -> None:
    if name in EXAMPLES and missing_methods(name):
        pytest.skip(f"{name}: method(s) {', '.join(missing_methods(name))} not registered yet")


def test_every_listed_example_is_shipped():
    shipped = {f.stem for f in FILES}
    for name in EXAMPLES:
        if not missing_methods(name):
            assert name in shipped, f"run `python -m nodes examples` to write {name}.json"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_is_a_ui_workflow_matching_its_definition(path):
    data = json.loads(path.read_text())
    assert is_ui_workflow(data)
    if path.stem in EXAMPLES and not missing_methods(path.stem):
        assert data == build(path.stem, NODE_CLASS_MAPPINGS), "regenerate with `python -m nodes examples`"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_nodes_do_not_overlap_and_output_nodes_leave_room_for_results(path):
    nodes = json.loads(path.read_text())["nodes"]
    boxes = [(n["id"], n["pos"][0], n["pos"][1] - 30, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in nodes]  # 30 px: the title bar sits above pos
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]), f"nodes {a[0]} and {b[0]} overlap"
    for n in nodes:
        area = getattr(NODE_CLASS_MAPPINGS.get(n["type"]), "RESULT_AREA", None)
        if area is not None:
            assert n["size"][0] >= area[0] and n["size"][1] > area[1]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_runs_headless(path, rt):
    _skip_unregistered(path.stem)
    res = rt.run(path)
    prompt = res.prompt
    answers = [i for i, n in prompt.items() if n["class_type"] == "VideoPruneAnswer"]
    assert answers and all(isinstance(res.ui[a]["text"][0], str) for a in answers)
    for nid, node in prompt.items():
        if node["class_type"] in ("VideoPruneOverlay", "VideoPruneReport"):
            assert res.ui[nid]["images"]
    rows = [res.ui[a]["videoprune"][0] for a in answers]
    assert all(0 < r["retention"] <= 1 for r in rows)


def test_unchanged_rerun_of_an_example_is_served_from_cache(rt):
    path = REPO / "example_workflows" / "sharp_vs_fastv.json"
    _skip_unregistered(path.stem)
    rt.run(path)
    again = rt.run(path)
    assert again.executed == [] and len(again.cached) == len(again.prompt)


def test_cli_runs_a_workflow_and_writes_its_outputs(tmp_path, capsys):
    path = REPO / "example_workflows" / "sharp_vs_fastv.json"
    _skip_unregistered(path.stem)
    code = main(["run", str(path), "--out", str(tmp_path), "--set", "3.num_frames=4", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    answers = json.loads((tmp_path / "answers.json").read_text())
    assert len(answers) == 3 and all("summary" in a for a in answers.values())
    assert list(tmp_path.glob("report_*.md")) and list(tmp_path.glob("videoprune_overlay_*.png"))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["summary"]["executed"]
    assert "answer:" in out


def test_cli_bad_workflow_prints_node_errors_and_exits_nonzero(tmp_path, capsys):
    path = REPO / "example_workflows" / "sharp_vs_fastv.json"
    _skip_unregistered(path.stem)
    code = main(["run", str(path), "--out", str(tmp_path), "--set", "5.retention=7"])
    err = capsys.readouterr().err
    assert code == 2
    assert "node 5 (VideoPruneFastV)" in err and "bigger than max" in err


def test_cli_validate_accepts_a_good_workflow(capsys):
    path = REPO / "example_workflows" / "sharp_vs_fastv.json"
    _skip_unregistered(path.stem)
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith("ok:")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_opens_inside_the_editors_canvas_at_a_zoom_where_text_is_drawn(path):
    from nodes.uiformat import CANVAS_INSET, TEXT_ZOOM, VIEWPORT
    data = json.loads(path.read_text())
    nodes = {n["id"]: n for n in data["nodes"]}
    ds = data["extra"]["ds"]
    scale, (ox, oy) = ds["scale"], ds["offset"]
    # LiteGraph draws graph point p at (p + offset) * scale; title bars (30) sit above pos
    left = min((n["pos"][0] + ox) * scale for n in nodes.values())
    top = min((n["pos"][1] - 30 + oy) * scale for n in nodes.values())
    right = max((n["pos"][0] + n["size"][0] + ox) * scale for n in nodes.values())
    bottom = max((n["pos"][1] + n["size"][1] + oy) * scale for n in nodes.values())
    assert left >= CANVAS_INSET[0] and top >= CANVAS_INSET[1]    # clear of the side bar and the top bars
    assert right <= VIEWPORT[0] and bottom <= VIEWPORT[1]
    # frontend 1.35 draws no text below MinFontSizeForLOD / NODE_TEXT_SIZE = 8 / 14 (dpr 1)
    assert scale > TEXT_ZOOM
    for _, src, _, dst, _, _ in data["links"]:
        assert nodes[src]["pos"][0] + nodes[src]["size"][0] < nodes[dst]["pos"][0]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_ships_a_template_thumbnail(path):
    from PIL import Image
    thumb = path.with_suffix(".jpg")
    assert thumb.is_file(), "render with `python -m nodes examples --thumbnails`"
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and im.size == (640, 400)


def test_thumbnail_is_drawn_from_the_runs_overlay_and_report(rt):
    import numpy as np

    from nodes.thumbnails import BG, compose
    path = next(p for p in FILES if p.stem == "hieravid")
    _skip_unregistered(path.stem)
    img = np.asarray(compose(rt.run(path), rt.output_dir))
    assert img.shape == (400, 640, 3)
    top, bottom = img[:190], img[210:]
    assert (top != BG).any(axis=2).mean() > 0.2 and (bottom != BG).any(axis=2).mean() > 0.2
