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
    ["plan", row.plan || "none"],
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

export function reportTable(rows) {
  return {
    headers: REPORT_COLUMNS.map(([, title]) => title),
    rows: (rows || []).map((r) => REPORT_COLUMNS.map(([key, , fmt]) => fmt(r[key]))),
  };
}

export function tableHtml(headers, rows) {
  const head = headers.length ? `<tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr>` : "";
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`).join("");
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

export function reportHtml(rows) {
  const t = reportTable(rows);
  return tableHtml(t.headers, t.rows);
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

// Horizontal space the node's DOM widget leaves around its element (margins of the widget
// container in ComfyUI's frontend 1.35: ~35 px of a node's width), and the panel's own padding.
export const NODE_CHROME_PX = 36;
export const PANEL_PADDING_PX = 12;
export const MIN_CONTENT_PX = 120;

// The width content may use inside the panel: the element's real clientWidth (which includes its
// padding) when it is laid out, else an estimate from the node's width (a node outside the view
// has clientWidth 0).
export function contentWidth(nodeWidth, clientWidth = 0) {
  const outer = clientWidth > 0 ? clientWidth : (Number(nodeWidth) || 300) - NODE_CHROME_PX;
  return Math.max(MIN_CONTENT_PX, Math.floor(outer - PANEL_PADDING_PX));
}
