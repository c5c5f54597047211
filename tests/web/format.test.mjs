// node --test tests/web/ : the extension's pure formatting functions.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  answerHtml, answerRows, contentWidth, escapeHtml, formatMB, formatMs, formatPercent, formatSI, framesText,
  MIN_CONTENT_PX, NODE_CHROME_PX, overlayCaption, overlayHtml, PANEL_PADDING_PX, panelWidgetHeight, planSummary,
  reportHtml, reportTable, REPORT_COLUMNS, samplePreviewRoute, sharedQuestion, stripRects, stripSvg, WIDGET_MARGIN_PX,
} from "../../web/videoprune_format.js";

const ROW = {
  label: "fastv:layer=2,retention=0.25", answer: "red <b>", plan: "fastv:layer=2,retention=0.25",
  visual_tokens: 64, kept_tokens: 16, retention: 0.25, equivalent_retention: 0.648347,
  flops: 10.78e6, flops_unpruned: 15.5e6, vision_ms: 15.358, ttft_ms: 14.497, decode_ms_per_token: 7.548,
  kv_cache_mb: 0.0625, stage_overhead_ms: 9.759, frame_retention: [0.5, 0, 0.125, 0.375],
  question: "what colour is the <circle> ?", frames: 4, frames_given: 4,
};

test("escapeHtml neutralises markup in answers", () => {
  assert.equal(escapeHtml(`<img src=x onerror="a">&'`), "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;");
});

test("percentages, times and sizes are formatted with units", () => {
  assert.equal(formatPercent(0.2354), "23.5%");
  assert.equal(formatPercent(undefined), "–");
  assert.equal(formatMs(14.497), "14.5 ms");
  assert.equal(formatMs(3.2), "3.20 ms");
  assert.equal(formatMs(2500), "2.50 s");
  assert.equal(formatMB(0.0625), "0.06 MB");
  assert.equal(formatMB(2048), "2.00 GB");
});

test("formatSI matches the Python report's prefixes", () => {
  assert.equal(formatSI(40.8e12), "40.8 T");
  assert.equal(formatSI(11.0e12), "11 T");
  assert.equal(formatSI(10.78e6), "10.8 M");
  assert.equal(formatSI(512), "512");
  assert.equal(formatSI(NaN), "–");
});

test("answer rows show kept tokens, FLOPs share and timings", () => {
  const rows = Object.fromEntries(answerRows(ROW));
  assert.equal(rows["visual tokens kept"], "16 / 64 (25.0%)");
  assert.equal(rows["prefill FLOPs"], "10.8 M (70% of unpruned)");
  assert.equal(rows["time to first token"], "14.5 ms");
  assert.equal(rows["equivalent retention"], "64.8%");
});

test("answer html escapes the answer and carries the strip", () => {
  const html = answerHtml(ROW, 120);
  assert.ok(html.includes("red &lt;b&gt;") && !html.includes("<b>"));
  assert.equal((html.match(/<rect /g) || []).length, 1 + 4);
});

test("report table has one row per run in the Python column order", () => {
  const t = reportTable([ROW, { ...ROW, label: "none", retention: 1 }]);
  assert.equal(t.headers.length, REPORT_COLUMNS.length);
  assert.deepEqual(t.headers.slice(0, 3), ["run", "kept", "eq. kept"]);
  assert.equal(t.rows.length, 2);
  assert.equal(t.rows[1][0], "none");
  assert.equal(t.rows[1][1], "100.0%");
  assert.ok(reportHtml([ROW]).includes("<th>prefill FLOPs</th>"));
});

test("strip bars split the width evenly with a gap and scale with retention", () => {
  const rects = stripRects([1, 0.5, 0, 0.25], 40, 20);
  assert.deepEqual(rects.map((r) => r.x), [0, 10, 20, 30]);
  assert.ok(rects.every((r) => r.w === 9));
  assert.deepEqual(rects.map((r) => r.h), [20, 10, 0, 5]);
  assert.deepEqual(rects.map((r) => r.y), [0, 10, 20, 15]);
});

test("narrow strip bars get no gap and never overlap", () => {
  const rects = stripRects([1, 1, 1], 5, 4);
  assert.deepEqual(rects.map((r) => [r.x, r.w]), [[0, 2], [2, 2], [4, 1]]);
});

test("strip clamps bad ratios and handles no frames", () => {
  assert.deepEqual(stripRects([2, -1], 10, 10).map((r) => r.h), [10, 0]);
  assert.deepEqual(stripRects([], 10, 10), []);
  assert.ok(stripSvg([], 10, 10).startsWith("<svg"));
});

test("the question asked is shown above the answer, escaped", () => {
  const html = answerHtml(ROW, 200);
  assert.ok(html.includes("what colour is the &lt;circle&gt; ?"));
  assert.ok(html.indexOf("videoprune-question") < html.indexOf("videoprune-answer"));
  assert.ok(!answerHtml({ ...ROW, question: "" }, 200).includes("videoprune-question"));
});

test("report rows carry the question before the answer", () => {
  const t = reportTable([ROW]);
  const q = t.headers.indexOf("question");
  assert.ok(q >= 0 && q === t.headers.indexOf("answer") - 1);
  assert.equal(t.rows[0][q], ROW.question);
});

test("frames row says when Answer subsampled an incoming batch", () => {
  assert.equal(framesText({ frames: 16, frames_given: 152 }), "16 of 152 (uniform)");
  assert.equal(framesText({ frames: 16, frames_given: 16 }), "16");
  assert.equal(framesText({}), "–");
  assert.equal(Object.fromEntries(answerRows({ ...ROW, frames: 16, frames_given: 152 })).frames, "16 of 152 (uniform)");
});

test("the strip is drawn at 100% width in a viewBox of the content width", () => {
  const svg = stripSvg([1, 0.5], 180.7, 32);
  assert.match(svg, /^<svg [^>]*width="100%" height="32" viewBox="0 0 180 32"/);
});

test("content width comes from the element's real clientWidth, else the node's width minus its chrome", () => {
  assert.equal(contentWidth(400, 365), 365 - PANEL_PADDING_PX);
  assert.equal(contentWidth(400, 0), 400 - NODE_CHROME_PX - PANEL_PADDING_PX);
  assert.equal(contentWidth(50, 0), MIN_CONTENT_PX);
});

for (const nodeWidth of [160, 240, 340, 500, 900]) {
  test(`answer panel fits a ${nodeWidth} px node: nothing wider than the content box`, () => {
    const width = contentWidth(nodeWidth, 0);
    const frames = Array.from({ length: 152 }, (_, i) => (i % 7) / 6);
    const html = answerHtml({ ...ROW, frame_retention: frames, frames: 152 }, width);
    const box = html.match(/viewBox="0 0 (\d+) 32"/);
    assert.ok(box && Number(box[1]) === width && width <= nodeWidth - NODE_CHROME_PX - PANEL_PADDING_PX + 1e-9 ||
      width === MIN_CONTENT_PX);
    for (const m of html.matchAll(/<rect x="(\d+)" y="\d+" width="(\d+)"/g)) {
      assert.ok(Number(m[1]) + Number(m[2]) <= width, `bar at ${m[1]}+${m[2]} past ${width}`);
    }
    // the only absolute widths are the SVG's own: 100% of the panel, and viewBox units inside it
    const pxWidths = [...html.matchAll(/width[:=]"?(\d+)px/g)];
    assert.equal(pxWidths.length, 0);
    assert.equal((html.match(/<svg [^>]*width="100%"/g) || []).length, 1);
  });
}

test("overlay caption carries the node's title and the stage drawn, not just the run's label", () => {
  const strip = { label: "VisionZip 20% -> ShaRP 12.4%", stage: "visionzip", retention: 0.2, frame_retention: [0.2] };
  assert.equal(overlayCaption(strip, "After VisionZip"), "After VisionZip · visionzip, 20.0% kept");
  assert.equal(overlayCaption(strip, ""), "VisionZip 20% -> ShaRP 12.4% · visionzip, 20.0% kept");
  assert.ok(overlayHtml(strip, 200, "After <VZ>").includes("After &lt;VZ&gt;"));
  assert.equal(overlayCaption({ label: "run" }), "run");
});

test("the plan row names each stage and what it keeps; the full plan is its tooltip", () => {
  const plan = "visionzip:retention=0.2,dominant_ratio=0.84375,scope=frame+sharp:layer=1,retention=0.124,segm=True";
  assert.equal(planSummary(plan), "visionzip 20% → sharp 12.4%");
  assert.equal(planSummary("hieravid:target=0.3+pdrop:stages=4"), "hieravid → pdrop");
  assert.equal(planSummary(""), "none");
  const html = answerHtml({ ...ROW, plan }, 240);
  assert.ok(html.includes(">visionzip 20% → sharp 12.4%<") && html.includes(`title="${plan}"`));
});

test("the report shows a question all runs share once, above the table, instead of a column", () => {
  const rows = [ROW, { ...ROW, label: "none" }];
  assert.equal(sharedQuestion(rows), ROW.question);
  const html = reportHtml(rows);
  assert.ok(html.indexOf("<span>Q:</span> what colour is the &lt;circle&gt; ?") < html.indexOf("<table"));
  assert.ok(!html.includes("<th>question</th>"));
  const mixed = [ROW, { ...ROW, question: "how many?" }];
  assert.equal(sharedQuestion(mixed), "");
  assert.ok(reportHtml(mixed).includes("<th>question</th>") && !reportHtml(mixed).includes("Q:</span>"));
});

test("the report's chart follows the table directly, sized by its natural dimensions", () => {
  const html = reportHtml([ROW], { src: "/api/view?filename=a.png&type=temp", width: 720, height: 100 });
  assert.match(html, /<\/table><img class="videoprune-chart" src="\/api\/view\?filename=a.png&amp;type=temp" alt="report chart" width="720" height="100">/);
  assert.ok(!reportHtml([ROW]).includes("<img"));
});

test("report numbers never wrap; run labels, questions and answers may", () => {
  const t = reportTable([ROW]);
  assert.deepEqual(t.headers.filter((_, i) => t.wrap[i]), ["run", "question", "answer"]);
  assert.ok(reportHtml([ROW, { ...ROW, question: "x" }]).includes(`<td class="videoprune-wrap">fastv:layer=2,retention=0.25</td><td>25.0%</td>`));
});

test("the panel widget asks for its content height plus the DOM widget's margins, capped", () => {
  assert.equal(NODE_CHROME_PX, 2 * WIDGET_MARGIN_PX);
  assert.equal(panelWidgetHeight(300.2), 301 + 2 * WIDGET_MARGIN_PX + 2);
  assert.equal(panelWidgetHeight(5000, 640), 640);
  assert.equal(panelWidgetHeight(undefined), 2 * WIDGET_MARGIN_PX + 2);
});

test("a built-in sample's preview goes to the pack's route; real files and other URLs do not", () => {
  assert.equal(samplePreviewRoute("/view?filename=sample-3&type=input&subfolder=&rand=0.5"), "/videoprune/sample/sample-3.webm");
  assert.equal(samplePreviewRoute("/view?filename=sample-3&type=input"), "/videoprune/sample/sample-3.webm");
  assert.equal(samplePreviewRoute("/view?filename=sample-3.mp4&type=input&subfolder="), null);
  assert.equal(samplePreviewRoute("/view?filename=sample-3&type=output&subfolder="), null);
  assert.equal(samplePreviewRoute("/view?filename=sample-3&type=input&subfolder=clips"), null);
  assert.equal(samplePreviewRoute("/object_info"), null);
  assert.equal(samplePreviewRoute(undefined), null);
});
