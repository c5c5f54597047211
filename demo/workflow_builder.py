"""Build the Compare tab's run as a ComfyUI workflow: one graph, two formats.

The demo never calls the engine directly: it builds this graph (Load Video LLM, Load Video,
an unpruned reference Answer, and per method a stage node → Answer → Kept-Token Overlay,
all feeding one Report) with the node pack's ``GraphBuilder``, saves it in ComfyUI's UI format
and hands that very file to the headless runtime. So the JSON a user downloads is exactly what
ran, and it opens in ComfyUI. A test checks that the runtime's UI→API conversion of the file
gives the API prompt the builder describes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from nodes.pack import NODE_CLASS_MAPPINGS, stage_class_for
from nodes.uiformat import GraphBuilder
from pruning_core.errors import PlanError
from pruning_core.registry import get_method

from .controls import step_label

MAX_REPORT_RUNS = 8            # inputs of VideoPruneReport (result_1 .. result_8)
REFERENCE_LABEL = "unpruned (reference)"
WORKFLOW_TITLE = "VideoPrune demo comparison"


# ---------------------------------------------------------------- the Compare graph

@dataclass
class CompareSettings:
    """Everything the Compare tab's run depends on (the workflow JSON is a pure function of it)."""

    question: str
    steps: list[dict]                  # validated plan steps, one per compared method
    video: str = "sample-0"            # a Load Video choice (sample-N)
    video_path: str = ""               # or a file in the input folder (an upload; overrides ``video``)
    frames: int = 16
    max_side: int = 0
    max_new_tokens: int = 8
    model: str = "builtin"             # "builtin", a folder name under models/LLM, or a hub id
    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    positions: str = "original"        # engine option for every run: original | compact
    repeats: int = 3                   # timing repeats per run: timings are medians (Answer's timing_repeats)
    labels: list[str] = field(default_factory=list)   # run names; default: method + changed params
    notes: list[str] = field(default_factory=list)    # shown with the results (e.g. methods matched-budget left out)

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
    graph: GraphBuilder
    runs: list[RunNodes]
    report: str | None
    model: str
    video: str

    def ui(self) -> dict:
        return self.graph.to_ui(WORKFLOW_TITLE)

    def api(self) -> dict:
        return self.graph.to_api()


def compare_graph(s: CompareSettings, classes: Mapping[str, type] | None = None) -> CompareGraph:
    """The Compare run as a graph: reference first (lowest ids, so it runs first), then each method."""
    if not isinstance(s.question, str) or not s.question.strip():
        raise PlanError("the question is empty; type a question about the video")
    g = GraphBuilder(dict(classes) if classes is not None else NODE_CLASS_MAPPINGS)
    builtin = s.model.strip().lower() in ("", "builtin", "built-in")
    model = g.add("VideoPruneLoadModel", "Load Video LLM", model="builtin", device=s.device, dtype=s.dtype,
                  attention=s.attention, path_or_hub_id="" if builtin else s.model.strip())
    # an upload is named in the video list, as a file in ComfyUI's input folder (path stays free)
    video = g.add("VideoPruneLoadVideo", "Load Video", video=s.video_path or s.video, num_frames=int(s.frames),
                  max_side=int(s.max_side), path="")
    runs: list[RunNodes] = []
    plan_runs: list[tuple[str, dict | None]] = [(REFERENCE_LABEL, None)]
    plan_runs += list(zip(s.run_labels(), s.steps))
    for label, step in plan_runs:
        stage = None
        plan = {}
        if step is not None:
            stage = g.add(stage_class_for(step["method"]), label, **stage_widgets(step))
            plan = {"plan": (stage, 0)}
        ans = g.add("VideoPruneAnswer", f"Answer: {label}", model=(model, 0), frames=(video, 0),
                    question=s.question, max_new_tokens=int(s.max_new_tokens), label=label,
                    positions=s.positions, num_frames=int(s.frames), timing_repeats=int(s.repeats), **plan)
        ov = g.add("VideoPruneOverlay", f"Kept tokens: {label}", result=(ans, 1), stage=-1, dim=0.3)
        runs.append(RunNodes(label, step, str(ans), str(ov), None if stage is None else str(stage)))
    results = {f"result_{i + 1}": (int(r.answer), 1) for i, r in enumerate(runs[:MAX_REPORT_RUNS])}
    report = g.add("VideoPruneReport", "Compare", **results)
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
