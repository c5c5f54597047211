// VideoPrune frontend extension: after a run, the Answer node shows its answer with a
// timing/retention table and a per-frame retention strip, the Report node its comparison
// table, and the Overlay node its retention strip. The HTML comes from videoprune_format.js.
import { app } from "../../scripts/app.js";
import { answerHtml, overlayHtml, reportHtml } from "./videoprune_format.js";

const STYLE_ID = "videoprune-style";
const PANEL = "videoprune_panel";

const CSS = `
.videoprune-panel { font: 12px/1.35 sans-serif; color: var(--input-text, #ddd); overflow: auto;
  padding: 4px 6px; box-sizing: border-box; }
.videoprune-answer { font-size: 13px; font-weight: 600; margin-bottom: 4px; white-space: pre-wrap; }
.videoprune-table { border-collapse: collapse; width: 100%; }
.videoprune-table th, .videoprune-table td { border-bottom: 1px solid rgba(128,128,128,.3);
  padding: 1px 6px 1px 0; text-align: left; vertical-align: top; }
.videoprune-table th { font-weight: 600; }
.videoprune-answer + .videoprune-table td { overflow-wrap: anywhere; }
.videoprune-answer + .videoprune-table td:first-child { white-space: nowrap; }
.videoprune-caption { opacity: .7; margin: 4px 0 2px; }
.videoprune-strip { display: block; }
`;

function ensureStyle() {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  document.head.appendChild(style);
}

function panelWidth(node) {
  return Math.max(160, Math.floor((node.size?.[0] ?? 300) - 24));
}

// The panel's content height at the node's width. Measured on a hidden copy: the frontend hides
// the DOM widgets of nodes outside the view (scrollHeight 0), and those nodes must grow too.
function measureHeight(node, html) {
  const probe = document.createElement("div");
  probe.className = "videoprune-panel";
  probe.style.cssText = "position:absolute;left:-10000px;top:0;visibility:hidden;overflow:visible;height:auto;" +
    `width:${Math.max(160, Math.floor((node.size?.[0] ?? 300) - 20))}px`;
  probe.innerHTML = html;
  document.body.appendChild(probe);
  const height = probe.scrollHeight;
  probe.remove();
  return height;
}

// One display panel per node, created on first use; never serialised into the workflow.
function showPanel(node, html) {
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
  widget.contentHeight = measureHeight(node, html);
  widget.element.innerHTML = html;
  requestAnimationFrame(() => {
    const size = node.computeSize();
    node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1])]);
    node.setDirtyCanvas?.(true, true);
  });
}

const HANDLERS = {
  VideoPruneAnswer(node, message) {
    const row = message?.videoprune?.[0];
    if (row) showPanel(node, answerHtml(row, panelWidth(node)));
  },
  VideoPruneReport(node, message) {
    const rows = message?.videoprune_report;
    if (rows?.length) showPanel(node, reportHtml(rows));
  },
  VideoPruneOverlay(node, message) {
    const strip = message?.videoprune_strip?.[0];
    if (strip) showPanel(node, overlayHtml(strip, panelWidth(node)));
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
