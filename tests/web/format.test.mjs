// node --test tests/web/ : the extension's pure formatting functions.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  answerHtml, answerRows, escapeHtml, formatMB, formatMs, formatPercent, formatSI, reportHtml,
  reportTable, REPORT_COLUMNS, stripRects, stripSvg,
} from "../../web/videoprune_format.js";

const ROW = {
  label: "fastv:layer=2,retention=0.25", answer: "red <b>", plan: "fastv:layer=2,retention=0.25",
  visual_tokens: 64, kept_tokens: 16, retention: 0.25, equivalent_retention: 0.648347,
  flops: 10.78e6, flops_unpruned: 15.5e6, vision_ms: 15.358, ttft_ms: 14.497, decode_ms_per_token: 7.548,
  kv_cache_mb: 0.0625, stage_overhead_ms: 9.759, frame_retention: [0.5, 0, 0.125, 0.375],
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
