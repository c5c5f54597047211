"""Build the Compare tab's run as a ComfyUI workflow: one graph, two formats.

The demo never calls the engine directly: it builds this graph (Load Video LLM, Load Video,
an unpruned reference Answer, and per method a stage node → Answer → Kept-Token Overlay,
all feeding one Report), saves it in ComfyUI's UI format and hands that very file to the
headless runtime. So the JSON a user downloads is exactly what ran, and it opens in ComfyUI.

``Graph.to_ui`` writes what ComfyUI's editor saves (nodes with positions, socket inputs and
outputs, ``widgets_values`` in widget order, links as arrays); ``Graph.to_api`` writes the
API prompt that ComfyUI's frontend would queue for it. A test checks that the runtime's own
UI→API conversion of the first gives the second.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from nodes.pack import NODE_CLASS_MAPPINGS, stage_class_for
from nodes.spec import input_specs, widget_slots
from pruning_core.errors import PlanError
from pruning_core.registry import get_method

from .controls import step_label

MAX_REPORT_RUNS = 8            # inputs of VideoPruneReport (result_1 .. result_8)
REFERENCE_LABEL = "unpruned (reference)"
COL_X = (40, 440, 840, 1240, 1640)
ROW_H = 300
NODE_W = 360
_DEFAULTS = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}


@dataclass
class GNode:
    id: int
    class_type: str
    widgets: dict[str, Any]
    title: str
    pos: tuple[float, float]


@dataclass(frozen=True)
class GLink:
    id: int
    src: int
    src_slot: int
    dst: int
    dst_input: str
    type: str


class Graph:
    """A small graph of node-pack nodes with widget values and links."""

    def __init__(self, classes: Mapping[str, type] | None = None):
        self.classes = dict(classes) if classes is not None else NODE_CLASS_MAPPINGS
        self.nodes: dict[int, GNode] = {}
        self.links: list[GLink] = []

    def add(self, class_type: str, widgets: Mapping[str, Any] | None = None, title: str | None = None,
            pos: tuple[float, float] = (0.0, 0.0)) -> int:
        if class_type not in self.classes:
            raise PlanError(f"no node class {class_type!r} in the node pack")
        cls = self.classes[class_type]
        known = {s.name for s in input_specs(cls) if s.is_widget}
        unknown = sorted(set(widgets or {}) - known)
        if unknown:
            raise PlanError(f"{class_type} has no widget(s) {', '.join(unknown)}")
        node_id = len(self.nodes) + 1
        self.nodes[node_id] = GNode(node_id, class_type, dict(widgets or {}), title or class_type, pos)
        return node_id

    def connect(self, src: int, src_slot: int, dst: int, dst_input: str) -> None:
        out_types = self.classes[self.nodes[src].class_type].RETURN_TYPES
        sockets = [s.name for s in self._sockets(dst)]
        if dst_input not in sockets:
            raise PlanError(f"{self.nodes[dst].class_type} has no input socket {dst_input!r}")
        self.links.append(GLink(len(self.links) + 1, src, src_slot, dst, dst_input, out_types[src_slot]))

    # -- the two formats ----------------------------------------------------------------------
    def widget_values(self, node_id: int) -> dict[str, Any]:
        """Every widget of the node: the given value, else the widget's declared default."""
        n = self.nodes[node_id]
        out = {}
        for s in input_specs(self.classes[n.class_type]):
            if s.is_widget:
                out[s.name] = n.widgets[s.name] if s.name in n.widgets else _default(s)
        return out

    def to_api(self) -> dict[str, dict]:
        prompt: dict[str, dict] = {}
        for n in self.nodes.values():
            inputs = self.widget_values(n.id)
            for ln in self.links:
                if ln.dst == n.id:
                    inputs[ln.dst_input] = [str(ln.src), ln.src_slot]
            prompt[str(n.id)] = {"class_type": n.class_type, "inputs": inputs, "_meta": {"title": n.title}}
        return prompt

    def to_ui(self) -> dict:
        nodes = []
        for order, n in enumerate(self.nodes.values()):
            cls = self.classes[n.class_type]
            values = self.widget_values(n.id)
            inputs = []
            for s in self._sockets(n.id):
                link = next((ln.id for ln in self.links if ln.dst == n.id and ln.dst_input == s.name), None)
                inputs.append({"name": s.name, "type": s.type_name, "link": link})
            outputs = []
            names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
            for slot, (typ, name) in enumerate(zip(cls.RETURN_TYPES, names)):
                outputs.append({"name": name, "type": typ, "slot_index": slot,
                                "links": [ln.id for ln in self.links if ln.src == n.id and ln.src_slot == slot]})
            widgets_values = []
            for name in widget_slots(cls):
                widgets_values.append("fixed" if name is None else values[name])
            nodes.append({"id": n.id, "type": n.class_type, "title": n.title, "pos": list(n.pos),
                          "size": [NODE_W, 60 + 26 * (len(widgets_values) + max(len(inputs), len(outputs)))],
                          "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                          "properties": {"Node name for S&R": n.class_type}, "widgets_values": widgets_values})
        links = [[ln.id, ln.src, ln.src_slot, ln.dst, self._slot_index(ln.dst, ln.dst_input), ln.type]
                 for ln in self.links]
        return {"last_node_id": max(self.nodes, default=0), "last_link_id": len(self.links), "nodes": nodes,
                "links": links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
                "version": 0.4}

    def _sockets(self, node_id: int):
        cls = self.classes[self.nodes[node_id].class_type]
        return [s for s in input_specs(cls) if not s.is_widget and s.section != "hidden"]

    def _slot_index(self, node_id: int, name: str) -> int:
        return [s.name for s in self._sockets(node_id)].index(name)


def _default(spec) -> Any:
    if "default" in spec.options:
        return spec.options["default"]
    choices = spec.choices
    if choices:
        return choices[0]
    return _DEFAULTS.get(spec.type_name)


# ---------------------------------------------------------------- the Compare graph

@dataclass
class CompareSettings:
    """Everything the Compare tab's run depends on (the workflow JSON is a pure function of it)."""

    question: str
    steps: list[dict]                  # validated plan steps, one per compared method
    video: str = "sample-0"            # a Load Video choice (sample-N)
    video_path: str = ""               # or a file relative to the input folder (overrides ``video``)
    frames: int = 16
    max_side: int = 0
    max_new_tokens: int = 8
    model: str = "builtin"             # "builtin", a folder name under models/LLM, or a hub id
    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    labels: list[str] = field(default_factory=list)   # run names; default: method + changed params

    def run_labels(self) -> list[str]:
        labels = list(self.labels) if self.labels else [step_label(s) for s in self.steps]
        if len(labels) != len(self.steps):
            raise PlanError(f"{len(labels)} labels for {len(self.steps)} methods")
        seen: dict[str, int] = {}
        out = []
        for lab in labels:  # two runs of one method must stay apart in the report
            seen[lab] = seen.get(lab, 0) + 1
            out.append(lab if seen[lab] == 1 else f"{lab} #{seen[lab]}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunNodes:
    """The node ids of one compared run."""

    label: str
    step: dict | None       # None for the unpruned reference
    answer: str
    overlay: str
    stage: str | None


@dataclass
class CompareGraph:
    graph: Graph
    runs: list[RunNodes]
    report: str | None
    model: str
    video: str

    def ui(self) -> dict:
        return self.graph.to_ui()

    def api(self) -> dict:
        return self.graph.to_api()


def compare_graph(s: CompareSettings, classes: Mapping[str, type] | None = None) -> CompareGraph:
    """The Compare run as a graph: reference first (lowest ids, so it runs first), then each method."""
    if not isinstance(s.question, str) or not s.question.strip():
        raise PlanError("the question is empty; type a question about the video")
    g = Graph(classes)
    builtin = s.model.strip().lower() in ("", "builtin", "built-in")
    model = g.add("VideoPruneLoadModel", {"model": "builtin", "device": s.device, "dtype": s.dtype,
                                          "attention": s.attention,
                                          "path_or_hub_id": "" if builtin else s.model.strip()},
                  "Load Video LLM", (COL_X[0], 40))
    video = g.add("VideoPruneLoadVideo", {"video": s.video, "num_frames": int(s.frames), "max_side": int(s.max_side),
                                          "path": s.video_path}, "Load Video", (COL_X[0], 40 + ROW_H))
    runs: list[RunNodes] = []
    plan_runs: list[tuple[str, dict | None]] = [(REFERENCE_LABEL, None)]
    plan_runs += list(zip(s.run_labels(), s.steps))
    for row, (label, step) in enumerate(plan_runs):
        y = 40 + row * ROW_H
        stage = None
        if step is not None:
            stage = g.add(stage_class_for(step["method"]), stage_widgets(step), f"{label}", (COL_X[1], y))
        ans = g.add("VideoPruneAnswer", {"question": s.question, "max_new_tokens": int(s.max_new_tokens),
                                         "label": label}, f"Answer: {label}", (COL_X[2], y))
        g.connect(model, 0, ans, "model")
        g.connect(video, 0, ans, "frames")
        if stage is not None:
            g.connect(stage, 0, ans, "plan")
        ov = g.add("VideoPruneOverlay", {"stage": -1, "dim": 0.3}, f"Kept tokens: {label}", (COL_X[3], y))
        g.connect(ans, 1, ov, "result")
        runs.append(RunNodes(label, step, str(ans), str(ov), None if stage is None else str(stage)))
    report = g.add("VideoPruneReport", {}, "Compare", (COL_X[4], 40))
    for i, r in enumerate(runs[:MAX_REPORT_RUNS]):
        g.connect(int(r.answer), 1, report, f"result_{i + 1}")
    return CompareGraph(g, runs, str(report), s.model, s.video_path or s.video)


def stage_widgets(step: Mapping[str, Any]) -> dict[str, Any]:
    """A stage node's widget values for a validated plan step (unset optional values → ``auto``)."""
    spec = get_method(step["method"])
    out = {}
    for p in spec.params:
        v = step.get(p.name, p.default)
        out[p.name] = ("auto" if v is None else str(v)) if p.optional else v
    return out


def workflow_json(ui: Mapping) -> str:
    """The UI workflow as the text ComfyUI saves (indented, stable key order)."""
    return json.dumps(ui, indent=2)
