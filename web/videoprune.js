// VideoPrune frontend extension: after a run, the Answer node shows its answer with a
// timing/retention table and a per-frame retention strip, the Report node its comparison
// table, and the Overlay node its retention strip. The HTML comes from videoprune_format.js.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import {
  answerHtml, contentWidth, NODE_CHROME_PX, overlayHtml, PANEL_PADDING_PX, panelWidgetHeight, reportHtml, samplePreviewRoute,
} from "./videoprune_format.js";

const STYLE_ID = "videoprune-style";
const PANEL = "videoprune_panel";

const CSS = `
.videoprune-panel { font: 12px/1.35 sans-serif; color: var(--input-text, #ddd); overflow-x: hidden;
  overflow-y: auto; padding: 4px ${PANEL_PADDING_PX / 2}px; box-sizing: border-box; width: 100%; }
.videoprune-question { opacity: .8; margin-bottom: 2px; white-space: pre-wrap; overflow-wrap: anywhere; }
.videoprune-question span { font-weight: 600; }
.videoprune-answer { font-size: 13px; font-weight: 600; margin-bottom: 4px; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.videoprune-table { border-collapse: collapse; width: 100%; }
.videoprune-table th, .videoprune-table td { border-bottom: 1px solid rgba(128,128,128,.3);
  padding: 1px 6px 1px 0; text-align: left; vertical-align: top; white-space: nowrap; }
.videoprune-table th { font-weight: 600; }
.videoprune-table td.videoprune-wrap { white-space: normal; overflow-wrap: break-word; }
.videoprune-report .videoprune-table { font-size: 11px; }
.videoprune-report .videoprune-table th, .videoprune-report .videoprune-table td { padding-right: 4px; }
.videoprune-answer + .videoprune-table td + td { white-space: normal; overflow-wrap: anywhere; }
.videoprune-caption { opacity: .7; margin: 4px 0 2px; }
.videoprune-strip { display: block; width: 100%; }
.videoprune-chart { display: block; max-width: 100%; height: auto; margin-top: 4px; }
`;

function ensureStyle() {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  document.head.appendChild(style);
}

// The content width of the node's panel: its element's real clientWidth once laid out.
function panelWidth(node) {
  const el = node.widgets?.find((w) => w.name === PANEL)?.element;
  return contentWidth(node.size?.[0] ?? 300, el?.clientWidth ?? 0);
}

// The panel's content height at that width. Measured on a hidden copy: the frontend hides
// the DOM widgets of nodes outside the view (scrollHeight 0), and those nodes must grow too.
// Also returns the content's own minimum width (a table of numbers that never wrap can be wider
// than a narrow node): the node is widened to it rather than clipping columns.
function measure(html, width) {
  const probe = document.createElement("div");
  probe.className = "videoprune-panel";
  probe.style.cssText = "position:absolute;left:-10000px;top:0;visibility:hidden;overflow:visible;height:auto;" +
    `width:${width + PANEL_PADDING_PX}px`;
  probe.innerHTML = html;
  document.body.appendChild(probe);
  const height = probe.scrollHeight;
  const minWidth = Math.max(...[...probe.querySelectorAll("table")].map((t) => t.scrollWidth), 0);
  probe.remove();
  return { height, minWidth };
}

// One display panel per node, created on first use; never serialised into the workflow. Its widget
// asks for exactly the content's height (min = max), so no spare height is left inside it; the node
// is fitted to its content when the panel first appears and only grows afterwards (a node the user
// made bigger stays so).
function showPanel(node, render) {
  ensureStyle();
  let widget = node.widgets?.find((w) => w.name === PANEL);
  const first = !widget;
  if (!widget) {
    const el = document.createElement("div");
    el.className = "videoprune-panel";
    widget = node.addDOMWidget(PANEL, "videoprune", el, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => panelWidgetHeight(widget?.contentHeight ?? 0),
      getMaxHeight: () => panelWidgetHeight(widget?.contentHeight ?? 0),
    });
    widget.serialize = false;
  }
  widget.render = render;
  const width = panelWidth(node);
  const html = render(width);
  const { height, minWidth } = measure(html, width);
  widget.contentHeight = height;
  widget.element.innerHTML = html;
  widget.renderedWidth = width;
  // wider content (a report table) widens the node; the resize re-renders the panel at that width
  const needed = minWidth > width ? Math.ceil(minWidth) + PANEL_PADDING_PX + NODE_CHROME_PX : 0;
  requestAnimationFrame(() => {
    const size = node.computeSize();
    node.setSize([Math.max(node.size[0], size[0], needed), first ? size[1] : Math.max(node.size[1], size[1])]);
    node.setDirtyCanvas?.(true, true);
  });
}

// A node the user resizes re-renders its panel at the new width (text wraps differently, so the
// height changes), once the element has its new clientWidth: after the resizing stops for a moment.
function rerenderOnResize(node) {
  clearTimeout(node.videopruneResizeTimer);
  node.videopruneResizeTimer = setTimeout(() => {
    const widget = node.widgets?.find((w) => w.name === PANEL);
    if (widget?.render && panelWidth(node) !== widget.renderedWidth) showPanel(node, widget.render);
  }, 120);
}

// The Report's chart arrives as an ordinary image output (so the history, the CLI and the demo see
// it); the editor would draw it centred in the node's leftover height, far below the table. Move it
// into the panel, right under the table, and drop the canvas preview.
const CANVAS_PREVIEW = "$$canvas-image-preview";

function takeChart(node) {
  const img = node.imgs?.[0];
  if (!img) return null;
  node.imgs = null;
  const i = node.widgets?.findIndex((w) => w.name === CANVAS_PREVIEW) ?? -1;
  if (i >= 0) {
    node.widgets[i].onRemove?.();
    node.widgets.splice(i, 1);
  }
  return { src: img.src, width: img.naturalWidth, height: img.naturalHeight };
}

// The title the user or the workflow gave the node; none when it still shows its type's display name.
function customTitle(node) {
  const title = node.title ?? "";
  const fallback = node.constructor?.title ?? node.type ?? "";
  return title && title !== fallback && title !== node.type ? title : "";
}

const HANDLERS = {
  VideoPruneAnswer(node, message) {
    const row = message?.videoprune?.[0];
    if (row) showPanel(node, (width) => answerHtml(row, width));
  },
  VideoPruneReport(node, message) {
    const rows = message?.videoprune_report;
    if (!rows?.length) return;
    node.videopruneRows = rows;
    showPanel(node, () => reportHtml(rows, node.videopruneChart));
  },
  VideoPruneOverlay(node, message) {
    const strip = message?.videoprune_strip?.[0];
    if (strip) showPanel(node, (width) => overlayHtml(strip, width, customTitle(node)));
  },
};

// Load Video's built-in sample entries (sample-N) are no files in the input folder: the editor's
// preview of the selected entry (/view?filename=sample-N&type=input) is sent to the pack's route,
// which serves the clip as WebM (nodes/routes.py). Every other URL is left alone.
const apiURL = api.apiURL.bind(api);
api.apiURL = (route) => apiURL(samplePreviewRoute(route) ?? route);

app.registerExtension({
  name: "VideoPrune.Display",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const handler = HANDLERS[nodeData.name];
    if (!handler) return;
    if (nodeData.name === "VideoPruneReport") {
      // The frontend loads output images while drawing the node's background: take the chart then.
      const onDrawBackground = nodeType.prototype.onDrawBackground;
      nodeType.prototype.onDrawBackground = function () {
        const r = onDrawBackground?.apply(this, arguments);
        const chart = takeChart(this);
        if (chart) {
          this.videopruneChart = chart;
          if (this.videopruneRows) showPanel(this, () => reportHtml(this.videopruneRows, chart));
        }
        return r;
      };
    }
    const onResize = nodeType.prototype.onResize;
    nodeType.prototype.onResize = function () {
      const r = onResize?.apply(this, arguments);
      rerenderOnResize(this);
      return r;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const r = onExecuted?.apply(this, arguments);
      handler(this, message);
      return r;
    };
  },
});
