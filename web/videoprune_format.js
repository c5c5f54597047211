// Pure formatting for the VideoPrune frontend extension: numbers, tables, the retention strip.
// No DOM and no ComfyUI imports, so it runs (and is tested) under plain Node.

const KEPT_COLOR = "#ffc400"; // the overlay's kept-token colour
const BAR_BG = "#181818";

export function escapeHtml(value) {
  return String(value ?? "")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

function isNumber(x) {
  return typeof x === "number" && Number.isFinite(x);
}

export function formatPercent(x, digits = 1) {
  return isNumber(x) ? `${(100 * x).toFixed(digits)}%` : "–";
}

export function formatMs(ms) {
  if (!isNumber(ms)) return "–";
  if (Math.abs(ms) >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

// Three significant digits and an SI prefix, like the Python report: 40.8 T, 11 G, 10.8 M.
export function formatSI(x) {
  if (!isNumber(x)) return "–";
  const scales = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [scale, prefix] of scales) {
    if (Math.abs(x) >= scale) return `${Number((x / scale).toPrecision(3))} ${prefix}`;
  }
  return `${Number(x.toPrecision(3))}`;
}

export function formatMB(mb) {
  if (!isNumber(mb)) return "–";
  return mb >= 1024 ? `${(mb / 1024).toFixed(2)} GB` : `${mb.toFixed(mb < 10 ? 2 : 1)} MB`;
}

// [label, value] pairs shown under an Answer node, from the summary row the node sends.
export function answerRows(row) {
  const flops = isNumber(row.flops) && isNumber(row.flops_unpruned) && row.flops_unpruned > 0
    ? `${formatSI(row.flops)} (${formatPercent(row.flops / row.flops_unpruned, 0)} of unpruned)`
    : formatSI(row.flops);
  return [
    ["frames", framesText(row)],
    ["plan", { text: planSummary(row.plan), title: row.plan || "" }],
    ["visual tokens kept", `${row.kept_tokens ?? "–"} / ${row.visual_tokens ?? "–"} (${formatPercent(row.retention)})`],
    ["equivalent retention", formatPercent(row.equivalent_retention)],
    ["prefill FLOPs", flops],
    ["vision encode", formatMs(row.vision_ms)],
    ["time to first token", formatMs(row.ttft_ms)],
    ["decode per token", formatMs(row.decode_ms_per_token)],
    ["KV cache", formatMB(row.kv_cache_mb)],
    ["pruning overhead", formatMs(row.stage_overhead_ms)],
  ];
}

// A plan as its stages and what each keeps, e.g. "visionzip 20% → sharp 12.4%"; the full plan
// (every parameter) is the cell's tooltip. The full string wraps to 8+ lines in a 300 px panel.
export function planSummary(plan) {
  if (!plan) return "none";
  return String(plan).split("+").map((step) => {
    const [name, params = ""] = step.split(":");
    const kv = Object.fromEntries(params.split(",").filter(Boolean).map((p) => p.split("=")));
    const r = Number(kv.retention);
    return kv.retention !== undefined && Number.isFinite(r) ? `${name} ${Number((100 * r).toFixed(2))}%` : name;
  }).join(" → ");
}

// "16" or "16 of 152 (uniform)": the frames the model saw, and how many came in when Answer subsampled.
export function framesText(row) {
  const used = row.frames, given = row.frames_given;
  if (!isNumber(used)) return "–";
  return isNumber(given) && given > used ? `${used} of ${given} (uniform)` : `${used}`;
}

// The Report's columns, in the same order as the Python table (nodes/report.py COLUMNS).
export const REPORT_COLUMNS = [
  ["label", "run", (v) => String(v ?? "")],
  ["retention", "kept", formatPercent],
  ["equivalent_retention", "eq. kept", formatPercent],
  ["flops", "prefill FLOPs", formatSI],
  ["ttft_ms", "TTFT", formatMs],
  ["decode_ms_per_token", "ms/token", formatMs],
  ["kv_cache_mb", "KV", formatMB],
  ["stage_overhead_ms", "prune", formatMs],
  ["question", "question", (v) => String(v ?? "")],
  ["answer", "answer", (v) => String(v ?? "")],
];

// Columns whose cells are free text (they may wrap anywhere); the others are numbers that never wrap.
const TEXT_COLUMNS = new Set(["label", "question", "answer"]);

// The question every row asked, when they all asked the same one (shown once above the table
// instead of repeating it in a column); "" when the rows differ.
export function sharedQuestion(rows) {
  const qs = new Set((rows || []).map((r) => r.question ?? ""));
  return qs.size === 1 ? [...qs][0] : "";
}

export function reportTable(rows, { dropQuestion = false } = {}) {
  const cols = REPORT_COLUMNS.filter(([key]) => !(dropQuestion && key === "question"));
  return {
    headers: cols.map(([, title]) => title),
    rows: (rows || []).map((r) => cols.map(([key, , fmt]) => fmt(r[key]))),
    wrap: cols.map(([key]) => TEXT_COLUMNS.has(key)),
  };
}

// A cell is a string, or {text, title, wrap}: title = hover text, wrap = free text that may wrap
// (between words; inside a word only when the word alone is wider than the column).
function cellHtml(c, wrap = false) {
  const cell = typeof c === "object" && c !== null ? c : { text: c, wrap };
  const title = cell.title ? ` title="${escapeHtml(cell.title)}"` : "";
  const cls = cell.wrap ? ` class="videoprune-wrap"` : "";
  return `<td${cls}${title}>${escapeHtml(cell.text)}</td>`;
}

export function tableHtml(headers, rows, wrap = []) {
  const head = headers.length ? `<tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr>` : "";
  const body = rows.map((r) => `<tr>${r.map((c, i) => cellHtml(c, Boolean(wrap[i]))).join("")}</tr>`).join("");
  return `<table class="videoprune-table">${head}${body}</table>`;
}

// One bar per frame, height = that frame's retention; bars split the width evenly and a 1 px
// gap separates bars at least 3 px wide (the same rule as pruning_core.overlay.retention_strip).
export function stripRects(ratios, width, height) {
  const n = (ratios || []).length;
  if (!n || width <= 0 || height <= 0) return [];
  const rects = [];
  for (let i = 0; i < n; i++) {
    const x0 = Math.ceil((i * width) / n);
    const x1 = Math.ceil(((i + 1) * width) / n);
    let w = x1 - x0;
    if (w >= 3) w -= 1;
    const r = Math.min(Math.max(Number(ratios[i]) || 0, 0), 1);
    const h = Math.round(r * height);
    rects.push({ x: x0, y: height - h, w, h });
  }
  return rects;
}

// The strip is drawn in a viewBox of the panel's content width and shown at 100% of it, so it
// never overflows: at the measured width one viewBox unit is one pixel, elsewhere it scales.
export function stripSvg(ratios, width = 240, height = 32) {
  const w = Math.max(1, Math.floor(width));
  const bars = stripRects(ratios, w, height)
    .map((r, i) => `<rect x="${r.x}" y="${r.y}" width="${r.w}" height="${r.h}" fill="${KEPT_COLOR}">` +
      `<title>frame ${i}: ${formatPercent(ratios[i], 0)} kept</title></rect>`)
    .join("");
  return `<svg class="videoprune-strip" width="100%" height="${height}" viewBox="0 0 ${w} ${height}" ` +
    `preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">` +
    `<rect width="${w}" height="${height}" fill="${BAR_BG}"/>${bars}</svg>`;
}

export function questionHtml(question) {
  return question ? `<div class="videoprune-question"><span>Q:</span> ${escapeHtml(question)}</div>` : "";
}

export function answerHtml(row, width = 240) {
  return questionHtml(row.question) +
    `<div class="videoprune-answer">${escapeHtml(row.answer)}</div>` +
    tableHtml([], answerRows(row)) +
    `<div class="videoprune-caption">kept tokens per frame</div>` +
    stripSvg(row.frame_retention || [], width, 32);
}

// The Report's panel: the question (once, when every run asked it), the table, then the chart
// right under it. The chart is an <img> with its natural size as attributes, so its height is
// known before it loads; it is shown at most at natural size and never wider than the panel.
export function reportHtml(rows, chart = null) {
  const shared = sharedQuestion(rows);
  const t = reportTable(rows, { dropQuestion: Boolean(shared) });
  const img = chart?.src
    ? `<img class="videoprune-chart" src="${escapeHtml(chart.src)}" alt="report chart"` +
      (chart.width > 0 && chart.height > 0 ? ` width="${Math.round(chart.width)}" height="${Math.round(chart.height)}"` : "") +
      ">"
    : "";
  return `<div class="videoprune-report">${questionHtml(shared)}${tableHtml(t.headers, t.rows, t.wrap)}${img}</div>`;
}

// The overlay's caption: the node's own title when the user (or the example) gave it one, else the
// run's label; then the stage drawn and what it kept. Never another stage's name alone.
export function overlayCaption(strip, title = "") {
  const head = title || strip.label || "";
  const stage = strip.stage ? `${strip.stage}` : "";
  const kept = isNumber(strip.retention) ? `${formatPercent(strip.retention)} kept` : "";
  const tail = [stage, kept].filter(Boolean).join(", ");
  return [head, tail].filter(Boolean).join(" · ");
}

export function overlayHtml(strip, width = 240, title = "") {
  const caption = overlayCaption(strip, title);
  const label = caption ? `<div class="videoprune-caption">${escapeHtml(caption)}</div>` : "";
  return label + stripSvg(strip.frame_retention || [], width, 32);
}

// Space a DOM widget leaves around its element: ComfyUI frontend 1.35 places it at the widget's
// margin (BaseDOMWidget.DEFAULT_MARGIN = 10 px) on every side, so the element is the node's width
// minus 20 px (measured in the editor: node 340 → clientWidth 320) and the widget's height minus 20.
export const WIDGET_MARGIN_PX = 10;
export const NODE_CHROME_PX = 2 * WIDGET_MARGIN_PX;
export const PANEL_PADDING_PX = 12;
export const MIN_CONTENT_PX = 120;

// The width content may use inside the panel: the element's real clientWidth (which includes its
// padding) when it is laid out, else an estimate from the node's width (a node outside the view
// has clientWidth 0).
export function contentWidth(nodeWidth, clientWidth = 0) {
  const outer = clientWidth > 0 ? clientWidth : (Number(nodeWidth) || 300) - NODE_CHROME_PX;
  return Math.max(MIN_CONTENT_PX, Math.floor(outer - PANEL_PADDING_PX));
}

// The height the panel's widget asks the node for: the content plus the widget's margins, capped
// (a taller panel scrolls vertically). Used as both its minimum and maximum, so the panel never
// takes more than it needs and any spare height goes to the node's other widgets.
export function panelWidgetHeight(contentHeight, cap = 640) {
  return Math.min(Math.ceil(Number(contentHeight) || 0) + 2 * WIDGET_MARGIN_PX + 2, cap);
}

// The pack's route for a built-in sample's preview when ``route`` is the editor's /view request for
// one (an input-folder entry named sample-N, no subfolder), else null.
export const SAMPLE_PREVIEW_ROUTE = "/videoprune/sample/";
export function samplePreviewRoute(route) {
  const text = String(route ?? "");
  if (!text.startsWith("/view?")) return null;
  const q = new URLSearchParams(text.slice("/view?".length));
  const name = q.get("filename") ?? "";
  if (!/^sample-\d+$/.test(name) || (q.get("type") ?? "input") !== "input" || (q.get("subfolder") ?? "") !== "") return null;
  return `${SAMPLE_PREVIEW_ROUTE}${name}.webm`;
}
