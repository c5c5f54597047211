"""A real browser (Debian's chromium, driven by Playwright) uses the running demo like a person:
picks a sample clip, two methods and a retention, presses Run, and sees answers, latencies,
kept-token overlays and charts appear."""
from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from demo_server import expected, shared_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
RUN_TIMEOUT_MS = 120_000
# The results table's body cells as rows of text: gradio 6 draws a virtual grid of cells with
# data-row/data-col, gradio 5 a plain <table>.
TABLE_JS = """(el => {
  const grid = [...el.querySelectorAll('[role=gridcell][data-row][data-col]')];
  if (grid.length) {
    const rows = [];
    for (const c of grid) {
      const r = +c.dataset.row, k = +c.dataset.col;
      (rows[r] = rows[r] || [])[k] = c.innerText.trim();
    }
    return rows.filter(Boolean);
  }
  // gradio 5 also keeps an invisible row of the widest values to size the columns
  const visible = tr => tr.checkVisibility({visibilityProperty: true, opacityProperty: true});
  return [...el.querySelectorAll('tbody tr')].filter(visible)
    .map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()));
})"""


# the preview <video> has decoded a frame
PLAYING_JS = ("() => { const v = document.querySelector('#video video'); "
              "return v && v.readyState >= 2 && v.videoWidth > 0; }")


# no header word split over two lines, none wider than its column (JS over the results' header cells)
HEADER_WORDS_JS = """(el => [...el.querySelectorAll('th')].flatMap(th => {
  const span = th.querySelector('.header') || th;
  const node = [...span.childNodes].find(n => n.nodeType === 3 && n.textContent.trim());
  if (!node) return [];
  const bad = [];
  const text = node.textContent;
  const re = /\\S+/g;
  let m;
  while ((m = re.exec(text))) {
    const r = document.createRange();
    r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
    const lines = new Set([...r.getClientRects()].map(q => Math.round(q.top)));
    if (lines.size > 1) bad.push(text + ': "' + m[0] + '" split');
  }
  if (span.scrollWidth > th.clientWidth + 1) bad.push(text + ': wider than its column');
  return bad;
}))"""


def shot_path(tmp_path: Path, name: str) -> Path:
    """Where a screenshot goes: ``$VIDEOPRUNE_SHOTS`` if set (to keep and look at), else the test's tmp dir."""
    folder = Path(os.environ.get("VIDEOPRUNE_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: python install.py --standalone --dev")
    if not CHROMIUM.is_file():
        found = shutil.which("chromium")
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM} (which chromium: {found}); "
                    "install it with `python install.py --browser` (apt-get install chromium)")
    return sync_playwright


@contextmanager
def demo_page(server, width: int = 1440, height: int = 900, **page_options):
    """A fresh Chromium page on the demo, loaded (its Run button shown); the browser closed afterwards."""
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, **page_options)
            page.goto(server.url, wait_until="domcontentloaded")
            page.locator("#run-compare").wait_for(timeout=60_000)
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return shared_server(request, tmp_path_factory)


def _set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _wait_done(page) -> None:
    """Wait for the run to end; a failed run fails the test with the message the page shows."""
    page.locator("#compare-status").get_by_text(re.compile("^(Done|Error)")).wait_for(timeout=RUN_TIMEOUT_MS)
    status = page.locator("#compare-status").inner_text()
    assert status.startswith("Done"), status


def test_compare_in_a_real_browser_shows_answers_latencies_and_overlays(server, tmp_path):
    from demo.compare import TABLE_HEADERS
    from pruning_core.synthetic import first_word, make_sample
    sample, frames, retention, tokens = "sample-1", 4, 0.3, 8
    question = make_sample(1, frames).question.text
    shot, top_shot = shot_path(tmp_path, "demo_compare.png"), shot_path(tmp_path, "demo_compare_1440x900.png")
    with demo_page(server) as page:
        run_box = page.locator("#run-compare").bounding_box()     # before any scrolling

        # a sample clip: the question follows the clip and its frame count
        page.locator("#video-source input").click()
        page.get_by_role("option", name=re.compile(rf"^{sample} ")).click()
        _set_number(page, "frames", frames)
        page.wait_for_function(
            "q => document.querySelector('#question textarea').value === q", arg=question, timeout=30_000)

        # two methods: FastV and Uniform (ShaRP, preselected, off)
        page.locator("#methods label", has_text="ShaRP (layer)").click()
        page.locator("#methods label", has_text="Uniform (pre-LLM)").click()
        checked = page.locator("#methods input:checked").evaluate_all("els => els.map(e => e.name)")
        assert sorted(checked) == ["fastv", "uniform"]
        _set_number(page, "retention", retention)
        _set_number(page, "answer-length", tokens)
        # still the 4-frame clip's question when Run is pressed (every preview update has landed)
        page.wait_for_function(
            "q => document.querySelector('#question textarea').value === q", arg=question, timeout=30_000)
        sent_question = page.locator("#question textarea").input_value()

        page.locator("#run-compare").click()
        _wait_done(page)

        page.wait_for_function(TABLE_JS + "(document.querySelector('#results')).length >= 3", timeout=30_000)
        cells = page.locator("#results").evaluate(TABLE_JS)
        overlays = page.locator("#overlays img")
        overlays.wait_for(timeout=30_000)
        page.wait_for_function("() => document.querySelector('#overlays img').complete", timeout=30_000)
        overlay_size = overlays.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        loaded = "id => { const i = document.querySelector(id + ' img'); return !!i && i.complete && i.naturalWidth > 0; }"
        latency_ok = page.wait_for_function(loaded, arg="#latency-chart", timeout=30_000).json_value()
        scatter_ok = page.wait_for_function(loaded, arg="#scatter-chart", timeout=30_000).json_value()
        workflow_link = page.locator("#compare-workflow a").first.get_attribute("href")
        banner = page.locator("#speed-banner").inner_text()
        split_headers = page.locator("#results").evaluate(HEADER_WORDS_JS)
        # the answer columns are in view without scrolling the table sideways
        view = page.locator("#results .table-wrap, #results [role=grid]").first.bounding_box()
        answer_cols = [page.locator(f"#results th[title='{h}']").first.bounding_box() for h in ("answer", "correct")]
        status_box = page.locator("#compare-status").bounding_box()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(top_shot))
        page.screenshot(path=str(shot), full_page=True)

        # the same settings as a workflow: its graph, then a headless run of it (served from cache)
        page.get_by_role("tab", name="Workflow").click()
        page.locator("#workflow-from-compare").click()
        page.locator("#workflow-status").get_by_text(re.compile("^Valid")).wait_for(timeout=60_000)
        graph_ok = page.locator("#workflow-graph img").evaluate("i => i.complete && i.naturalWidth > 0")
        page.locator("#workflow-run").click()
        page.locator("#workflow-status").get_by_text(re.compile("^Ran")).wait_for(timeout=RUN_TIMEOUT_MS)
        wf_answers = page.locator("#workflow-answers").inner_text()
        wf_shot = shot_path(tmp_path, "demo_workflow.png")
        page.screenshot(path=str(wf_shot), full_page=True)
    print(f"\nscreenshots: {top_shot} {shot} {wf_shot}")
    print("results table:", *cells, sep="\n  ")
    # readable at 1440x900: Run above the fold, its status right below it, answers in view, headers whole
    assert run_box["y"] + run_box["height"] <= 900
    assert 0 <= status_box["y"] - (run_box["y"] + run_box["height"]) < 60
    assert all(b["x"] + b["width"] <= view["x"] + view["width"] + 1 for b in answer_cols), (answer_cols, view)
    assert split_headers == []

    assert [c[0] for c in cells] == ["unpruned (reference)", "FastV (retention=0.3)", "Uniform (retention=0.3)"]
    plans = [[], [{"method": "fastv", "retention": retention}], [{"method": "uniform", "retention": retention}]]
    want = expected(server.model, sample, frames, question, plans, tokens)
    col = {h: i for i, h in enumerate(TABLE_HEADERS)}
    assert [c[col["answer"]] for c in cells] == [w["answer"] for w in want]
    assert [c[col["kept tokens"]].split("/")[0].strip() for c in cells] == [str(w["kept_tokens"]) for w in want]
    ttft, prefill = [float(c[col["TTFT ms"]]) for c in cells], [float(c[col["prefill ms"]]) for c in cells]
    assert all(t > 0 for t in ttft) and all(0 < p <= t for p, t in zip(prefill, ttft))
    assert float(cells[0][col["speedup ×"]]) == 1.0          # the reference's speedup against itself
    # the sample asked its own question: every run is right or wrong, pruned ones same/changed
    gold = make_sample(1, frames).question.answer
    marks = [c[col["correct"]] for c in cells]
    assert sent_question == question, (sent_question, question)
    assert all(m.startswith("✓ right" if first_word(w["answer"]) == gold else "✗ wrong") for m, w in zip(marks, want))
    assert all(m.endswith(("same as unpruned", "changed vs unpruned")) for m in marks[1:])
    projected = [float(c[col["projected 7B speedup"]].split()[0]) for c in cells]
    assert projected[0] == pytest.approx(1.0) and all(p > 1.5 for p in projected[1:])
    assert "projected 7B speedup" in banner
    # one row per run: 3 rows of a caption band over frames of the sample's 112 px
    assert overlay_size[0] >= frames * 112 and overlay_size[1] >= 3 * 112
    assert latency_ok and scatter_ok
    assert workflow_link and workflow_link.split("?")[0].endswith(".json")
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert graph_ok
    assert "FastV (retention=0.3)" in wf_answers and "Uniform (retention=0.3)" in wf_answers


def test_an_upload_gets_a_playable_preview_the_warning_and_an_empty_question_then_runs(server, tmp_path):
    """clip_a.mp4 in MPEG-4 Part 2 (mp4v), which Chromium cannot play: the preview is the demo's WebM."""
    import cv2
    import numpy as np
    clip = tmp_path / "clip_a.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (96, 64))
    for i in range(12):   # a moving square on noise: nothing from the built-in model's world
        f = np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        f[20:40, 4 * i:4 * i + 20] = (0, 255, 255)
        writer.write(f)
    writer.release()
    shot = shot_path(tmp_path, "demo_upload.png")
    with demo_page(server) as page:
        sample_question = page.locator("#question textarea").input_value()
        page.locator("#video-upload input[type=file]").set_input_files(str(clip))
        page.wait_for_function("() => document.querySelector('#video-source input').value === 'uploaded video'",
                               timeout=60_000)
        page.wait_for_function(PLAYING_JS, timeout=60_000)
        size = page.locator("#video video").evaluate("v => [v.videoWidth, v.videoHeight, v.error && v.error.code]")
        warning = page.locator("#upload-warning").inner_text()
        question_after = page.locator("#question textarea").input_value()
        toasts = page.locator(".toast-body").all_inner_texts()
        page.screenshot(path=str(shot))
        page.locator("#question textarea").fill("what shape appears first ?")
        page.locator("#methods label", has_text="ShaRP (layer)").click()   # FastV alone
        _set_number(page, "frames", 2)
        _set_number(page, "answer-length", 2)
        _set_number(page, "repeats", 1)
        page.locator("#run-compare").click()
        _wait_done(page)
        cells = page.locator("#results").evaluate(TABLE_JS)
        status = page.locator("#compare-status").inner_text()
        # the upload box's cross: the upload and its preview go, the general warning stays
        page.locator("#video-upload button[aria-label='Clear']").click()
        page.wait_for_function("() => !document.querySelector('#video video')", timeout=30_000)
        warning_after = page.locator("#upload-warning").inner_text()
    print(f"\nscreenshot: {shot}\nwarning: {warning}\nstatus: {status}")
    assert "only knows its synthetic world" in warning_after and "not from that world" not in warning_after
    assert sample_question and question_after == ""            # the sample's question went with the sample
    assert size[0] > 0 and size[1] > 0 and size[2] is None      # the preview decodes in the browser
    assert not any("not playable" in t for t in toasts), toasts
    assert "only knows its synthetic world" in warning and "not from that world" in warning
    assert [c[0] for c in cells] == ["unpruned (reference)", "FastV (retention=0.25)"]
    from demo.compare import TABLE_HEADERS
    marks = [c[TABLE_HEADERS.index("correct")] for c in cells]
    assert marks[0] == "reference" and marks[1] in ("same as unpruned", "changed vs unpruned")


def test_bad_input_in_the_browser_gives_a_message_and_the_page_keeps_working(server, tmp_path):
    with demo_page(server, 1400, 1200) as page:
        page.locator("#question textarea").fill("")
        page.locator("#run-compare").click()
        page.locator("#compare-status").get_by_text("Error: the question is empty").wait_for(timeout=60_000)
        empty_question = page.locator("#compare-status").inner_text()

        # the next run starts with a clean status line, and ends well
        page.locator("#question textarea").fill("what shape appears first ?")
        _set_number(page, "frames", 2)
        _set_number(page, "repeats", 1)
        page.locator("#methods label", has_text="ShaRP (layer)").click()
        page.locator("#run-compare").click()
        page.wait_for_function("() => !document.querySelector('#compare-status').innerText.includes('Error')",
                               timeout=10_000)
        _wait_done(page)

        page.get_by_role("tab", name="Workflow").click()
        page.locator("#workflow-json textarea, #workflow-json [contenteditable=true]").first.fill("{not json")
        page.locator("#workflow-check").click()
        page.locator("#workflow-status").get_by_text(re.compile("Error: .*not valid JSON")).wait_for(
            timeout=60_000)
        bad_json = page.locator("#workflow-status").inner_text()
        page.screenshot(path=str(shot_path(tmp_path, "demo_bad_input.png")), full_page=True)
    print(f"\nmessages: {empty_question!r} {bad_json!r}")
    assert "Traceback" not in empty_question + bad_json


def test_matched_budget_mode_in_a_real_browser_labels_runs_by_their_equivalent_retention(server, tmp_path):
    with demo_page(server) as page:
        _set_number(page, "frames", 2)
        page.locator("#methods label", has_text="ShaRP (layer)").click()
        page.locator("#methods label", has_text="Uniform (pre-LLM)").click()
        _set_number(page, "retention", 0.8)
        _set_number(page, "repeats", 1)
        page.locator("#matched label").click()
        page.locator("#run-compare").click()
        _wait_done(page)
        page.wait_for_function(TABLE_JS + "(document.querySelector('#results')).length >= 3", timeout=30_000)
        cells = page.locator("#results").evaluate(TABLE_JS)
        page.screenshot(path=str(shot_path(tmp_path, "demo_matched.png")), full_page=True)
    print("matched table:", *cells, sep="\n  ")
    labels = [c[0] for c in cells]
    assert labels[0] == "unpruned (reference)"
    assert [lab.startswith(("FastV", "Uniform")) and lab.endswith("@eq=0.8") for lab in labels[1:]] == [True, True]


def _run_sample(page, sample: str, frames: int, extra_methods: tuple[str, ...] = ()) -> None:
    page.locator("#video-source input").click()
    page.get_by_role("option", name=re.compile(rf"^{sample} ")).click()
    _set_number(page, "frames", frames)
    for m in extra_methods:
        page.locator("#methods label", has_text=m).click()
    _set_number(page, "repeats", 1)
    page.locator("#run-compare").click()
    _wait_done(page)


FRAME_IMGS_JS = "() => [...document.querySelectorAll('#frame-view img')].map(i => i.src)"
IMGS_LOADED_JS = "() => [...document.querySelectorAll('#frame-view img')].every(i => i.complete && i.naturalWidth > 0)"


@pytest.mark.slow
def test_the_frame_viewer_steps_through_the_frames_with_its_timeline_and_the_pareto_view(server, tmp_path):
    frames = 8
    with demo_page(server) as page:
        _run_sample(page, "sample-2", frames, ("HieraVid (mixed)",))
        page.wait_for_function("() => document.querySelectorAll('#frame-view img').length >= 4", timeout=30_000)
        first = page.evaluate(FRAME_IMGS_JS)
        caption0 = page.locator("#frame-caption").inner_text()
        slider_max = page.locator("#frame-slider input[type=range]").get_attribute("max")
        timeline0 = page.locator("#timeline img").get_attribute("src")
        _set_number(page, "frame-slider", 5)
        page.wait_for_function(f"s => ({FRAME_IMGS_JS})()[0] !== s", arg=first[0], timeout=30_000)
        page.wait_for_function("t => document.querySelector('#timeline img').src !== t", arg=timeline0,
                               timeout=30_000)
        caption5 = page.locator("#frame-caption").inner_text()
        page.wait_for_function(IMGS_LOADED_JS, timeout=30_000)
        sizes = page.locator("#frame-view img").evaluate_all(
            "els => els.map(i => [i.complete && i.naturalWidth, i.naturalHeight])")
        pareto_ok = page.locator("#pareto-chart img").evaluate("i => i.complete && i.naturalWidth > 0")
        page.locator("#frame-view").scroll_into_view_if_needed()
        shot = shot_path(tmp_path, "demo_viewer_frame5.png")
        page.screenshot(path=str(shot))
        # the score heatmap: the scoring methods' panels re-drawn tinted, the reference's unchanged
        plain = page.evaluate(FRAME_IMGS_JS)
        page.locator("#score-heat label").click()
        page.wait_for_function(f"s => ({FRAME_IMGS_JS})()[1] !== s", arg=plain[1], timeout=60_000)
        page.wait_for_timeout(500)
        tinted = page.evaluate(FRAME_IMGS_JS)
        page.locator("#frame-view").scroll_into_view_if_needed()
        page.screenshot(path=str(shot_path(tmp_path, "demo_viewer_heat.png")))
        page.locator("#pareto-chart").scroll_into_view_if_needed()
        page.screenshot(path=str(shot_path(tmp_path, "demo_pareto.png")))
    print(f"\nscreenshot: {shot}\nframe 0: {caption0}\nframe 5: {caption5}")
    labels = ["unpruned (reference)", "FastV (retention=0.25)", "ShaRP (retention=0.25)", "HieraVid (retention=0.25)"]
    assert slider_max == str(frames - 1)
    assert [line.split(":")[0] for line in caption0.splitlines()] == labels
    assert all("frame 0:" in line for line in caption0.splitlines())
    assert all("frame 5:" in line for line in caption5.splitlines())
    assert "seg " in caption5.splitlines()[2] and "seg " in caption5.splitlines()[3]   # ShaRP, HieraVid segments
    # every panel at full size: the 112 px sample frames enlarged to 336 px, plus the caption bands
    assert len(sizes) == 4 and all(w >= 336 and h >= 336 for w, h in sizes), sizes
    assert pareto_ok
    assert tinted[0] == plain[0] and tinted[1] != plain[1]


@pytest.mark.slow
def test_a_390_px_wide_screen_runs_without_sideways_scrolling(server, tmp_path):
    with demo_page(server, 390, 844, device_scale_factor=2, is_mobile=True, has_touch=True) as page:
        _run_sample(page, "sample-1", 4)
        page.wait_for_function("() => document.querySelectorAll('#frame-view img').length >= 3", timeout=30_000)
        page.wait_for_timeout(500)
        page_width = page.evaluate("() => document.documentElement.scrollWidth")
        cells = page.locator("#results").evaluate(TABLE_JS)
        boxes = [page.locator("#frame-view img").nth(i).bounding_box() for i in range(2)]
        run_box = page.locator("#run-compare").bounding_box()
        status_box = page.locator("#compare-status").bounding_box()
        shot = shot_path(tmp_path, "demo_390.png")
        page.screenshot(path=str(shot), full_page=True)
        third = page.locator("#frame-view img").nth(2)
        third.scroll_into_view_if_needed()
        third.evaluate("i => i.complete && i.naturalWidth > 0 || new Promise(r => i.addEventListener('load', r))")
        page.screenshot(path=str(shot_path(tmp_path, "demo_390_viewer.png")))
    print(f"\nscreenshot: {shot}; page width {page_width}; panels {boxes}")
    assert page_width <= 390 + 1
    assert [c[0] for c in cells][:1] == ["unpruned (reference)"] and len(cells) == 3
    assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"] - 1       # the viewer's panels one under the other
    assert boxes[0]["width"] >= 300                                        # each about the screen's width
    assert 0 <= status_box["y"] - (run_box["y"] + run_box["height"]) < 120
