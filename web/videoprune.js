// VideoPrune frontend extension: after a run, the Answer node shows its answer with a
// timing/retention table and a per-frame retention strip, the Report node its comparison
// table, and the Overlay node its retention strip. The HTML comes from videoprune_format.js.
import { app } from "../../scripts/app.js";
import { answerHtml, contentWidth, overlayHtml, PANEL_PADDING_PX, reportHtml } from "./videoprune_format.js";

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
  padding: 1px 6px 1px 0; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
.videoprune-table th { font-weight: 600; }
.videoprune-answer + .videoprune-table td { overflow-wrap: anywhere; }
.videoprune-answer + .videoprune-table td:first-child { white-space: nowrap; }
.videoprune-caption { opacity: .7; margin: 4px 0 2px; }
.videoprune-strip { display: block; width: 100%; }
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
function measureHeight(html, width) {
  const probe = document.createElement("div");
  probe.className = "videoprune-panel";
  probe.style.cssText = "position:absolute;left:-10000px;top:0;visibility:hidden;overflow:visible;height:auto;" +
    `width:${width + PANEL_PADDING_PX}px`;
  probe.innerHTML = html;
  document.body.appendChild(probe);
  const height = probe.scrollHeight;
  probe.remove();
  return height;
}

// One display panel per node, created on first use; never serialised into the workflow.
function showPanel(node, render) {
  ensureStyle();
  let widget = node.widgets?.find((w) => w.name === PANEL);
  if (!widget) {
    const el = document.createElement("div");
    el.className = "videoprune-panel";
    widget = node.addDOMWidget(PANEL, "videoprune", el, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => Math.min((widget?.contentHeight ?? 0) + 8, 480),
    });
    widget.serialize = false;
  }
  const width = panelWidth(node);
  const html = render(width);
  widget.contentHeight = measureHeight(html, width);
  widget.element.innerHTML = html;
  requestAnimationFrame(() => {
    const size = node.computeSize();
    node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1])]);
    node.setDirtyCanvas?.(true, true);
  });
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
    if (rows?.length) showPanel(node, () => reportHtml(rows));
  },
  VideoPruneOverlay(node, message) {
    const strip = message?.videoprune_strip?.[0];
    if (strip) showPanel(node, (width) => overlayHtml(strip, width, customTitle(node)));
  },
};

app.registerExtension({
  name: "VideoPrune.Display",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const handler = HANDLERS[nodeData.name];
    if (!handler) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const r = onExecuted?.apply(this, arguments);
      handler(this, message);
      return r;
    };
  },
});
