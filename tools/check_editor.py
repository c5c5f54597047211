"""Check the pack in ComfyUI's real editor (Chromium + Playwright) as a user sees it; print JSON.

    python tools/check_editor.py --url http://127.0.0.1:8188 --shots /tmp/editor_shots
    python tools/check_editor.py --url URL --shots DIR --examples hieravid,sharp_vs_fastv --skip-run

Needs a running ComfyUI with this pack in ``custom_nodes`` (``tools/check_comfyui.py`` starts one),
Playwright in the interpreter running this script and a Chromium (``--chromium``, default
/usr/bin/chromium). Not part of the test suite: it drives a browser for minutes.

What it checks, per example opened from Templates → Extensions (the user's path):
- the template cards' thumbnails load (no 404 on ``example_workflows/*.jpg``);
- the workflow opens at a zoom where the frontend draws text (``canvas.low_quality`` false, i.e.
  ``ds.scale`` above ``LiteGraph.Canvas.MinFontSizeForLOD / (NODE_TEXT_SIZE · √dpr)``) with every
  node inside the canvas area left free by the editor's side bar and top bar;
- it runs (the Run button), the Answer nodes' progress bars start moving before the answer and end
  at 100 %; after the run every result panel is laid out: no horizontal scroll, no vertical overflow,
  the strip inside the panel, ``Q:`` shown in Answer and Report panels, the Report's chart right
  under its table, each Overlay's caption starts with the node's title; nodes do not overlap;
- the Answer panel, its node resized to widths 240…700, re-renders: no horizontal scroll, no overflow;
- each Load Video shows the upload button and a playable preview of its entry (the built-in samples'
  from the pack's route); with ``--upload FILE``, the button's file chooser uploads FILE, the combo
  selects it and the preview plays it;
- a number typed into ShaRP's ``retention`` (0.124) and VisionZip's ``dominant_ratio`` (0.84375) is
  stored and displayed as typed (the real prompt dialog of the canvas);
- the browser console shows no error from the pack and no 404 on the pack's files or previews.
Screenshots (``--shots``) are written per example: opened, after the run, and zoomed panels.
Exit status 0 when every check passed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
from check_comfyui import overlaps  # noqa: E402  (node boxes with their title bars)

EXAMPLES = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
WIDTHS = (240, 300, 400, 550, 700)

# The canvas area a user sees: the canvas minus the side tool bar, the top bars and the floating
# Run toolbar's row. Computed in the page from the editor's own elements.
VISIBLE_JS = """() => {
  const c = app.canvas.canvas.getBoundingClientRect();
  const side = document.querySelector('.side-tool-bar-container')?.getBoundingClientRect();
  const tops = [...document.querySelectorAll('.workflow-tabs-container, .comfyui-menu, .actionbar, .comfy-menu-button-wrapper')]
    .map(e => e.getBoundingClientRect()).filter(r => r.height > 0 && r.top < 150);
  const left = Math.max(c.left, side ? side.right : 0);
  const top = Math.max(c.top, ...tops.map(r => r.bottom));
  return {left, top, right: c.right, bottom: c.bottom};
}"""
NODES_JS = """() => app.graph._nodes.map(n => {
  const [x, y] = app.canvas.ds.convertOffsetToCanvas([n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT]);
  const s = app.canvas.ds.scale, r = app.canvas.canvas.getBoundingClientRect();
  return {id: n.id, type: n.type, title: n.title, pos: [...n.pos], size: [...n.size],
          screen: [r.left + x, r.top + y, r.left + x + n.size[0] * s, r.top + y + (n.size[1] + LiteGraph.NODE_TITLE_HEIGHT) * s]};
})"""
PANELS_JS = """() => app.graph._nodes.flatMap(n => {
  const w = (n.widgets || []).find(w => w.name === 'videoprune_panel');
  if (!w) return [];
  const e = w.element, svg = e.querySelector('svg'), table = e.querySelector('table'), img = e.querySelector('img');
  return [{id: n.id, type: n.type, title: n.title, cw: e.clientWidth, sw: e.scrollWidth, ch: e.clientHeight,
    sh: e.scrollHeight, svg_w: svg ? svg.getBoundingClientRect().width : null,
    panel_w: e.getBoundingClientRect().width, text: e.innerText.slice(0, 600),
    caption: e.querySelector('.videoprune-caption')?.innerText || '',
    gap: (table && img) ? img.getBoundingClientRect().top - table.getBoundingClientRect().bottom : null,
    img_loaded: img ? img.complete && img.naturalWidth > 0 : null,
    canvas_images: (n.imgs || []).length,
    node_has_preview_widget: (n.widgets || []).some(w => w.name === '$$canvas-image-preview')}];
})"""
LOAD_VIDEO_JS = """() => app.graph._nodes.filter(n => n.type === 'VideoPruneLoadVideo').map(n => ({id: n.id,
  value: n.widgets.find(w => w.name === 'video').value,
  upload_button: (n.widgets || []).some(w => w.type === 'button' && w.name === 'upload'),
  video: n.videoContainer ? [...n.videoContainer.querySelectorAll('video')].map(v => [v.src, v.readyState, v.videoWidth]) : null}))"""
HOOK_JS = """() => { window.__vp = {progress: [], executed: {}, t0: performance.now()};
  app.api.addEventListener('progress', e => window.__vp.progress.push([String(e.detail.node), e.detail.value, e.detail.max, performance.now()]));
  app.api.addEventListener('executed', e => { window.__vp.executed[String(e.detail.node ?? e.detail.display_node)] = [e.detail.output, performance.now()]; });
}"""


class Editor:
    def __init__(self, page, url: str, shots: Path | None):
        self.page, self.url, self.shots = page, url, shots
        self.console: list[str] = []
        self.http_errors: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        page.on("response", lambda r: self.http_errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    def shot(self, name: str, clip: dict | None = None) -> str | None:
        if not self.shots:
            return None
        path = str(self.shots / f"{name}.png")
        self.page.screenshot(path=path, clip=clip) if clip else self.page.screenshot(path=path)
        return path

    def open(self) -> None:
        self.page.goto(self.url, wait_until="domcontentloaded")
        self.page.wait_for_function("window.app && window.app.graph && window.app.canvas", timeout=120_000)
        self.page.wait_for_timeout(6000)
        self.close_dialogs()

    def close_dialogs(self) -> None:
        """Close the templates dialog (which a fresh browser profile also opens by itself, late)."""
        for _ in range(20):
            if not self.page.evaluate("() => [...document.querySelectorAll('.p-dialog')].some(e => e.getBoundingClientRect().height > 0)"):
                return
            # its close button: the icon button in the dialog's top-right corner (Escape does not
            # reach it once the focus is in the canvas)
            xy = self.page.evaluate("""() => { for (const d of document.querySelectorAll('.p-dialog')) {
                const dr = d.getBoundingClientRect(); if (!dr.height) continue;
                for (const b of d.querySelectorAll('button')) { const r = b.getBoundingClientRect();
                  if (r.width && !b.innerText.trim() && r.top < dr.top + 80 && r.right > dr.right - 100)
                    return [r.left + r.width / 2, r.top + r.height / 2]; } } return null; }""")
            if xy:
                self.page.mouse.click(*xy)
            else:
                self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(600)

    def templates(self) -> dict:
        """Templates → Extensions → the pack: the cards and whether their thumbnails loaded."""
        p = self.page
        if not p.get_by_text("ComfyUI-VideoPrune").count():
            p.locator(".side-tool-bar-container").get_by_text("Templates").first.click(timeout=30_000)
        p.get_by_text("ComfyUI-VideoPrune").first.click(timeout=30_000)
        p.wait_for_timeout(2500)
        # the cards show the pack's example_workflows/<name>.jpg (fetched, then shown from blob: URLs)
        thumbs = p.evaluate("""() => [...document.querySelectorAll('.p-dialog img')]
            .map(i => ({src: i.src.slice(0, 80), loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth}))""")
        self.shot("templates")
        return {"thumbnails": thumbs}

    def load_template(self, name: str) -> None:
        self.templates()
        self.page.get_by_text(name, exact=True).first.click()
        self.page.wait_for_timeout(3000)

    def layout(self) -> dict:
        p = self.page
        vis = p.evaluate(VISIBLE_JS)
        nodes = p.evaluate(NODES_JS)
        outside = [n["id"] for n in nodes if n["screen"][0] < vis["left"] - 1 or n["screen"][1] < vis["top"] - 1
                   or n["screen"][2] > vis["right"] + 1 or n["screen"][3] > vis["bottom"] + 1]
        scale, low, threshold = p.evaluate(
            "() => [app.canvas.ds.scale, app.canvas.low_quality, app.canvas._lowQualityZoomThreshold]")
        return {"scale": scale, "low_quality": low, "text_threshold": threshold, "visible": vis,
                "outside": outside, "overlaps": overlaps(nodes), "nodes": len(nodes)}

    def run(self, timeout: float = 600) -> dict:
        p = self.page
        # a fresh run, not ComfyUI's cache of an earlier one (which sends no progress)
        p.evaluate("""async () => fetch('/api/free', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({free_memory: true})})""")
        p.wait_for_timeout(1500)
        p.evaluate(HOOK_JS)
        t0 = time.time()
        p.get_by_role("button", name="Run").first.click()
        p.wait_for_timeout(1000)
        while time.time() - t0 < timeout:
            q = p.evaluate("async () => (await (await fetch('/api/queue')).json())")
            if not q["queue_running"] and not q["queue_pending"]:
                break
            p.wait_for_timeout(1000)
        p.wait_for_timeout(2500)  # previews load, panels are measured
        vp = p.evaluate("() => window.__vp")
        return {"seconds": round(time.time() - t0, 1), "progress": vp["progress"], "executed": vp["executed"]}

    def panel_widths(self, node_id: int) -> list[dict]:
        """Re-render one Answer panel at several node widths; measure its scroll and strip."""
        out = []
        self.view_node(node_id, 1.0)  # DOM widgets of nodes outside the view are hidden (width 0)
        for w in WIDTHS:
            # as a user dragging the corner: the node's onResize re-renders the panel
            self.page.evaluate("""([id, w]) => { const n = app.graph.getNodeById(id); n.setSize([w, n.size[1]]);
                app.canvas.setDirty(true, true); }""", [node_id, w])
            self.page.wait_for_timeout(900)
            panel = next(x for x in self.page.evaluate(PANELS_JS) if x["id"] == node_id)
            out.append({"node_width": w, "client_width": panel["cw"], "scroll_width": panel["sw"],
                        "svg_width": panel["svg_w"], "panel_width": panel["panel_w"],
                        "v_overflow": panel["sh"] - panel["ch"]})
        return out

    def view_node(self, node_id: int, scale: float = 1.0) -> dict:
        """Centre one node at ``scale``; returns its screen box (for a clipped screenshot)."""
        self.page.evaluate("""([id, s]) => { const c = app.canvas, n = app.graph.getNodeById(id);
            c.ds.scale = s; c.ds.offset = [120 / s - n.pos[0], 110 / s - n.pos[1]]; c.setDirty(true, true); }""",
                           [node_id, scale])
        self.page.wait_for_timeout(600)
        n = next(x for x in self.page.evaluate(NODES_JS) if x["id"] == node_id)
        x0, y0, x1, y1 = n["screen"]
        vp = self.page.viewport_size
        return {"x": max(0, x0 - 8), "y": max(0, y0 - 8), "width": min(vp["width"], x1 + 8) - max(0, x0 - 8),
                "height": min(vp["height"], y1 + 8) - max(0, y0 - 8)}

    def type_number(self, node_type: str, widget: str, text: str) -> dict:
        """Type ``text`` into a number widget through the canvas's own prompt dialog."""
        p = self.page
        self.close_dialogs()
        node_id = p.evaluate("""(t) => { app.graph.clear(); const n = LiteGraph.createNode(t); n.pos = [200, 200]; app.graph.add(n);
            return n.id; }""", node_type)
        box = self.view_node(node_id, 1.0)
        y = p.evaluate("""([id, name]) => { const n = app.graph.getNodeById(id); const w = n.widgets.find(w => w.name === name);
            return w.y + LiteGraph.NODE_WIDGET_HEIGHT / 2; }""", [node_id, widget])
        x0, y0 = p.evaluate("""(id) => { const n = app.graph.getNodeById(id); const r = app.canvas.canvas.getBoundingClientRect();
            const [x, y] = app.canvas.ds.convertOffsetToCanvas(n.pos); return [r.left + x, r.top + y]; }""", node_id)
        width = p.evaluate("(id) => app.graph.getNodeById(id).size[0]", node_id)
        p.mouse.click(x0 + width / 2, y0 + y)
        p.wait_for_timeout(500)
        dialog = p.locator(".graphdialog input, .litegraph .graphdialog input").first
        dialog.fill(text)
        dialog.press("Enter")
        p.wait_for_timeout(400)
        got = p.evaluate("""([id, name]) => { const w = app.graph.getNodeById(id).widgets.find(w => w.name === name);
            return {value: w.value, shown: w._displayValue, precision: w.options.precision, round: w.options.round}; }""",
                         [node_id, widget])
        shot = self.shot(f"typed_{node_type}_{widget}", box)
        p.evaluate("(id) => app.graph.remove(app.graph.getNodeById(id))", node_id)
        return {"node": node_type, "widget": widget, "typed": text, **got, "screenshot": shot}


def check_upload(ed: Editor, clip: Path, problems: list[str]) -> dict:
    """Load Video's upload button as a user clicks it: a file chooser, the file goes to ComfyUI's
    input folder, the combo selects it and the preview plays it."""
    p = ed.page
    ed.close_dialogs()
    node_id = p.evaluate("""() => { app.graph.clear(); const n = LiteGraph.createNode('VideoPruneLoadVideo');
        n.pos = [200, 200]; app.graph.add(n); return n.id; }""")
    ed.view_node(node_id, 1.0)
    p.wait_for_timeout(800)
    x0, y0, width, y = p.evaluate("""(id) => { const n = app.graph.getNodeById(id), r = app.canvas.canvas.getBoundingClientRect();
        const [x, y] = app.canvas.ds.convertOffsetToCanvas(n.pos); const w = n.widgets.find(w => w.name === 'upload');
        return [r.left + x, r.top + y, n.size[0], w.y + LiteGraph.NODE_WIDGET_HEIGHT / 2]; }""", node_id)
    chooser = None
    for _ in range(3):  # a click that only selects the node (or lands while the canvas redraws) opens nothing
        try:
            with p.expect_file_chooser(timeout=5_000) as fc:
                p.mouse.click(x0 + width / 2, y0 + y)
            chooser = fc.value
            break
        except Exception:  # playwright's TimeoutError
            p.wait_for_timeout(500)
    if chooser is None:
        ed.shot("load_video_upload_failed")
        problems.append("Load Video's upload button opened no file chooser")
        return {}
    chooser.set_files(str(clip))
    p.wait_for_timeout(3000)
    lv = next(x for x in p.evaluate(LOAD_VIDEO_JS) if x["id"] == node_id)
    box = ed.view_node(node_id, 1.0)
    shot = ed.shot("load_video_uploaded", box)
    ok = lv["value"] == clip.name and lv["video"] and lv["video"][0][1] >= 2 and "/view?" in lv["video"][0][0]
    if not ok:
        problems.append(f"upload of {clip.name} through Load Video's button: {lv}")
    p.evaluate("(id) => app.graph.remove(app.graph.getNodeById(id))", node_id)
    return {**lv, "screenshot": shot}


VHS_GRAPH_JS = """([clip, question]) => {
  app.graph.clear();
  const add = (type, pos, values = {}, title = null) => { const n = LiteGraph.createNode(type); n.pos = pos;
    app.graph.add(n); for (const [k, v] of Object.entries(values)) { const w = n.widgets.find(w => w.name === k);
    w.value = v; w.callback?.(v); } if (title) n.title = title; return n; };
  const vhs = add('VHS_LoadVideo', [0, 0], {video: clip});
  const model = add('VideoPruneLoadModel', [0, 700]);
  const sharp = add('VideoPruneShaRP', [360, 0]);
  const a0 = add('VideoPruneAnswer', [720, 0], {question, label: 'unpruned'}, 'Answer: unpruned');
  const a1 = add('VideoPruneAnswer', [720, 680], {question, label: 'ShaRP'}, 'Answer: ShaRP');
  const rep = add('VideoPruneReport', [1160, 0]);
  const slot = (n, name) => n.inputs.findIndex(i => i.name === name);
  for (const a of [a0, a1]) { model.connect(0, a, slot(a, 'model')); vhs.connect(0, a, slot(a, 'frames')); }
  sharp.connect(0, a1, slot(a1, 'plan'));
  a0.connect(1, rep, slot(rep, 'result_1')); a1.connect(1, rep, slot(rep, 'result_2'));
  app.canvas.ds.scale = 0.62; app.canvas.ds.offset = [110, 170]; app.canvas.setDirty(true, true);
  return {answers: [a0.id, a1.id], report: rep.id, vhs: vhs.id};
}"""


def check_vhs(ed: Editor, clip: str, question: str, export: Path, problems: list[str]) -> dict:
    """A graph built by hand with VideoHelperSuite's Load Video feeding our nodes: run it in the
    editor, then export it (Workflow → Export, the file a user shares) to ``export``."""
    p = ed.page
    ed.close_dialogs()
    ids = p.evaluate(VHS_GRAPH_JS, [clip, question])
    p.wait_for_timeout(1500)
    r = ed.run()
    ed.shot("vhs_after_run")
    rows = {}
    for nid in ids["answers"]:
        out = (r["executed"].get(str(nid)) or [{}])[0] or {}
        rows[nid] = (out.get("videoprune") or [{}])[0]
    if not all(row.get("answer") for row in rows.values()):
        problems.append(f"VHS graph: an Answer gave no answer: {rows}")
    box = ed.view_node(ids["answers"][1], 1.0)
    ed.shot("vhs_answer", box)
    with p.expect_download(timeout=30_000) as dl:
        # not awaited: the command waits for the file-name dialog below
        p.evaluate("() => { app.extensionManager.command.execute('Comfy.ExportWorkflow'); }")
        p.wait_for_timeout(1200)
        # the frontend asks for a file name first (Comfy.PromptFilename)
        if p.locator(".p-dialog input").count():
            p.locator(".p-dialog input").first.fill(export.stem)
            p.keyboard.press("Enter")
    dl.value.save_as(str(export))
    return {"answers": {str(k): {key: v.get(key) for key in ("answer", "frames", "frames_given", "visual_tokens",
                                                              "kept_tokens", "retention")} for k, v in rows.items()},
            "export": str(export), "seconds": r["seconds"]}


def check_example(ed: Editor, name: str, problems: list[str], run: bool) -> dict:
    ed.load_template(name)
    out: dict = {"layout": ed.layout()}
    lay = out["layout"]
    ed.shot(f"{name}_opened")
    if lay["low_quality"]:
        problems.append(f"{name}: opens at zoom {lay['scale']:.2f}, below the text threshold {lay['text_threshold']:.3f}")
    if lay["outside"]:
        problems.append(f"{name}: nodes {lay['outside']} are outside the visible canvas when it opens")
    if lay["overlaps"]:
        problems.append(f"{name}: nodes overlap when opened: {lay['overlaps']}")
    for _ in range(30):  # a sample's preview is rendered on its first request (~1 s): wait for it to play
        out["load_video"] = ed.page.evaluate(LOAD_VIDEO_JS)
        if all(lv["video"] and lv["video"][0][1] >= 2 for lv in out["load_video"]):
            break
        ed.page.wait_for_timeout(500)
    for lv in out["load_video"]:
        if not lv["upload_button"] or not lv["video"] or lv["video"][0][1] < 2:
            problems.append(f"{name}: Load Video {lv['id']} has no upload button or no playable preview: {lv}")
    if not run:
        return out
    r = ed.run()
    ed.shot(f"{name}_after_run")
    nodes = ed.page.evaluate(NODES_JS)
    types = {str(n["id"]): n["type"] for n in nodes}
    out["seconds"] = r["seconds"]
    out["overlaps_after_run"] = overlaps(nodes)
    if out["overlaps_after_run"]:
        problems.append(f"{name}: nodes overlap after the run: {out['overlaps_after_run']}")
    # Progress of each Answer: first tick long before its answer arrived, last tick = max.
    prog = {}
    for nid, typ in types.items():
        if typ != "VideoPruneAnswer":
            continue
        ticks = [t for t in r["progress"] if t[0] == nid]
        done_at = r["executed"].get(nid, [None, None])[1]
        if not ticks:
            problems.append(f"{name}: Answer {nid} sent no progress")
            continue
        first, last = ticks[0], ticks[-1]
        prog[nid] = {"ticks": len(ticks), "first": f"{first[1]}/{first[2]}", "last": f"{last[1]}/{last[2]}",
                     "first_tick_ms_before_answer": round(done_at - first[3]) if done_at else None,
                     "values": sorted({round(100 * t[1] / t[2]) for t in ticks})[:6]}
        if last[1] != last[2]:
            problems.append(f"{name}: Answer {nid} progress ends at {last[1]}/{last[2]}")
        if any(b[1] < a[1] for a, b in zip(ticks, ticks[1:])):
            problems.append(f"{name}: Answer {nid} progress moves back")
    out["progress"] = prog
    panels = ed.page.evaluate(PANELS_JS)
    out["panels"] = panels
    for pn in panels:
        where = f"{name}: {pn['type']} {pn['id']}"
        if pn["sw"] > pn["cw"]:
            problems.append(f"{where}: scrolls horizontally ({pn['sw']} > {pn['cw']})")
        if pn["sh"] > pn["ch"] + 1 and pn["ch"] < 600:
            problems.append(f"{where}: content {pn['sh']} px taller than the panel ({pn['ch']})")
        if pn["svg_w"] is not None and pn["svg_w"] > pn["panel_w"] + 0.5:
            problems.append(f"{where}: strip wider than its panel")
        if pn["type"] in ("VideoPruneAnswer", "VideoPruneReport") and "Q:" not in pn["text"] and "question" not in pn["text"]:
            problems.append(f"{where}: the question is not shown")
        if pn["type"] == "VideoPruneReport":
            if pn["gap"] is None or pn["gap"] > 8 or not pn["img_loaded"]:
                problems.append(f"{where}: chart not right under the table (gap {pn['gap']}, loaded {pn['img_loaded']})")
            if pn["node_has_preview_widget"]:
                problems.append(f"{where}: the chart is also drawn as a canvas preview")
        if pn["type"] == "VideoPruneOverlay" and not pn["caption"].startswith(pn["title"]):
            problems.append(f"{where}: caption {pn['caption']!r} does not carry the title {pn['title']!r}")
    for pn in panels:  # zoomed look at each kind of panel once
        if pn["type"] in ("VideoPruneAnswer", "VideoPruneReport", "VideoPruneOverlay"):
            box = ed.view_node(pn["id"], 1.0)
            ed.shot(f"{name}_{pn['type'][10:].lower()}_{pn['id']}", box)
    answer = next((pn["id"] for pn in panels if pn["type"] == "VideoPruneAnswer"), None)
    if answer is not None:
        out["answer_widths"] = ed.panel_widths(answer)
        for w in out["answer_widths"]:
            if (w["scroll_width"] > w["client_width"] or (w["svg_width"] or 0) > w["panel_width"] + 0.5
                    or w["v_overflow"] > 1):
                problems.append(f"{name}: Answer panel at node width {w['node_width']} scrolls or overflows: {w}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8188")
    ap.add_argument("--shots", type=Path, default=None, help="folder for screenshots")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--examples", default=",".join(EXAMPLES), help="comma-separated example names")
    ap.add_argument("--skip-run", action="store_true", help="only open the examples (layout, thumbnails, typing)")
    ap.add_argument("--viewport", default="1600x1000")
    ap.add_argument("--upload", type=Path, default=None,
                    help="a video file to upload through Load Video's button (it lands in ComfyUI's input folder)")
    ap.add_argument("--vhs-clip", default="", help="a video in ComfyUI's input folder: build VHS_LoadVideo → "
                    "Answer (unpruned, ShaRP) → Report by hand, run it, export it to SHOTS/vhs_workflow.json")
    ap.add_argument("--vhs-question", default="What happens in the video?")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    urllib.request.urlopen(args.url + "/object_info/VideoPruneAnswer", timeout=30).read()
    vw, vh = (int(v) for v in args.viewport.split("x"))
    problems: list[str] = []
    summary: dict = {"url": args.url, "viewport": [vw, vh], "examples": {}}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium)
        page = browser.new_page(viewport={"width": vw, "height": vh})
        ed = Editor(page, args.url, args.shots)
        ed.open()
        summary["templates"] = ed.templates()
        thumbs = summary["templates"]["thumbnails"]
        if len(thumbs) < len(EXAMPLES) or not all(t["loaded"] for t in thumbs):
            problems.append(f"template thumbnails: {sum(t['loaded'] for t in thumbs)} of {len(EXAMPLES)} loaded")
        ed.close_dialogs()
        typed = [ed.type_number("VideoPruneShaRP", "retention", "0.124"),
                 ed.type_number("VideoPruneVisionZip", "dominant_ratio", "0.84375"),
                 ed.type_number("VideoPruneShaRP", "beta", "0.008")]
        summary["typed"] = typed
        for t in typed:
            if abs(t["value"] - float(t["typed"])) > 1e-12 or t["shown"] != t["typed"]:
                problems.append(f"typed {t['typed']} into {t['node']}.{t['widget']}: stored {t['value']}, shown {t['shown']}")
        if args.upload:
            summary["upload"] = check_upload(ed, args.upload, problems)
        if args.vhs_clip:
            export = (args.shots or Path(".")) / "vhs_workflow.json"
            summary["vhs"] = check_vhs(ed, args.vhs_clip, args.vhs_question, export, problems)
        for name in [e for e in args.examples.split(",") if e]:
            summary["examples"][name] = check_example(ed, name, problems, run=not args.skip_run)
        pack_errors = [e for e in ed.console if "videoprune" in e.lower()]
        pack_404 = [e for e in ed.http_errors if any(k in e.lower() for k in ("videoprune", "example_workflows", "/view?"))]
        summary["console_errors"] = ed.console
        summary["http_errors"] = ed.http_errors
        if pack_errors or pack_404:
            problems.append(f"pack errors in the console: {pack_errors[:5]} {pack_404[:5]}")
        browser.close()
    summary["problems"] = problems
    summary["ok"] = not problems
    print(json.dumps(summary, indent=1, default=str))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
