"""The demo's back end: one shared model, one graph runtime, and the two actions the tabs offer.

``DemoService.compare`` builds the Compare graph (``workflow_builder``), runs that UI-format
workflow through the headless runtime and turns the outputs into rows, a gallery and charts.
``DemoService.run_workflow`` runs any workflow the user picks or uploads. Every problem a user
can cause comes back as a ``DemoError`` with one line to show; the server keeps serving.

The model is loaded once per process and shared: the Load Video LLM node finds it through
``nodes.models.register_model``, so both tabs, every request and every re-run use the same
weights. The runtime serialises runs (its lock), so concurrent requests queue instead of
competing for the CPU, and an unchanged re-run is served from its cache.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nodes import models as node_models
from nodes.errors import Interrupted, NodeExecutionError, WorkflowError
from nodes.runtime import RunResult, Runtime
from nodes.validate import validate_prompt
from nodes.videos import VIDEO_EXTENSIONS
from nodes.workflow import WorkflowFormatError, parse_json
from pruning_core.errors import ModelLoadError, PlanError, VideoError, VideoPruneError
from pruning_core.registry import build_stages, get_method

from . import charts, compare, projection, samples, uploads, viewer
from .controls import plan_steps
from .graph_picture import draw_workflow
from .workflow_builder import CompareGraph, CompareSettings, compare_graph, workflow_json

log = logging.getLogger("videoprune.demo")
REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "example_workflows"
UPLOAD = "upload"
MAX_FRAMES = 64
DEFAULT_REPEATS = 3          # timings are the median of this many runs (the answer is the first run's)
MAX_REPEATS = 20
MAX_WORKFLOW_BYTES = 8 * 2 ** 20
UPLOAD_MAX_SIDE = 448        # uploads are downscaled while decoding; the processor resizes again anyway
Progress = Callable[[float, str], None]


class DemoError(VideoPruneError):
    """Something the user can fix; the message is one line for the UI."""


def default_cache_dir() -> Path:
    env = os.environ.get("VIDEOPRUNE_DEMO_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "videoprune" / "demo"


# ---------------------------------------------------------------- the shared model

_ADAPTERS: dict[tuple, Any] = {}
_ADAPTER_LOCK = threading.Lock()


def shared_adapter(name: str, device: str = "auto", dtype: str = "auto", attention: str = "auto",
                   factory: Callable[[], Any] | None = None) -> Any:
    """The adapter for ``name``, loaded on first use and kept for the life of the process."""
    key = (name, device, dtype, attention)
    with _ADAPTER_LOCK:
        if key not in _ADAPTERS:
            _ADAPTERS[key] = factory() if factory is not None else _load(name, device, dtype, attention)
        return _ADAPTERS[key]


def _load(name: str, device: str, dtype: str, attention: str) -> Any:
    """``builtin``, a model folder anywhere on disk (``--model`` is the operator's choice), or a hub id."""
    from pruning_core.loader import load_model
    from pruning_core.model_store import is_hub_id
    source = name
    if is_hub_id(name):
        source = node_models.resolve_source(name)   # downloaded once into models/LLM/<name>
    return load_model(source, device=device, dtype=dtype, attn=attention)


def model_key(name: str) -> str:
    """The name the graph's Load Video LLM node uses for the demo's model."""
    n = (name or "").strip()
    return "builtin" if n.lower() in ("", "builtin", "built-in") else n


# ---------------------------------------------------------------- results

@dataclass
class CompareOutcome:
    """A finished comparison. The pictures are drawn on first use (``cached_property``), so the page
    can show the table the moment the runs end and draw the pictures in a second step."""

    rows: list[dict]
    table: list[list[Any]]
    overlay_rows: list[tuple[np.ndarray, str]]
    workflow: dict
    workflow_path: Path
    report_md: str
    summary: dict
    warnings: list[str] = field(default_factory=list)
    viewer: "viewer.Viewer | None" = None    # what the frame viewer and the timeline redraw from

    @functools.cached_property
    def overlays(self) -> np.ndarray:
        """The all-frames sheet: one row of frames per run, reference on top."""
        return compare.overlay_sheet(self.overlay_rows)

    @functools.cached_property
    def latency(self) -> np.ndarray:
        return charts.latency_chart(self.rows)

    @functools.cached_property
    def scatter(self) -> np.ndarray:
        return charts.retention_scatter(self.rows)

    @functools.cached_property
    def pareto(self) -> np.ndarray:
        """The benchmark's accuracy vs equivalent retention, this run's points on it."""
        return viewer.pareto_chart(self.rows)

    def status(self) -> str:
        s = self.summary
        fastest = max((r for r in self.rows if not r["reference"]), key=lambda r: r["speedup"], default=None)
        best = f"; fastest: {fastest['label']} at {fastest['speedup']:.2f}× prefill" if fastest else ""
        return (f"Done: {len(self.rows)} runs (unpruned reference + {len(self.rows) - 1}); "
                f"{len(s['executed'])} nodes executed, {len(s['cached'])} from cache, "
                f"{s['total_ms'] / 1000:.1f} s{best}." + warnings_md(self.warnings))

    def to_json(self) -> dict:
        return {"rows": self.rows, "workflow": self.workflow, "summary": self.summary}


@dataclass
class WorkflowOutcome:
    picture: np.ndarray | None
    ok: bool
    message: str
    errors_md: str = ""
    answers_md: str = ""
    report_md: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)   # (file path, caption)
    summary: dict = field(default_factory=dict)
    notes_md: str = ""                        # the workflow's Note nodes, for the reader


# ---------------------------------------------------------------- the service

class DemoService:
    """Holds the runtime, the cache folders and the model name; safe to call from several threads."""

    def __init__(self, model: str = "builtin", cache_dir: str | Path | None = None, device: str = "auto",
                 dtype: str = "auto", attention: str = "auto", factory: Callable[[], Any] | None = None,
                 allow_downloads: bool = False):
        self.model = model_key(model)
        self.device, self.dtype, self.attention = device, dtype, attention
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.input_dir = self.cache_dir / "input"
        self.output_dir = self.cache_dir / "output"
        self.workflow_dir = self.cache_dir / "workflows"
        for d in (self.input_dir, self.output_dir, self.workflow_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._factory = factory
        # the graph's Load Video LLM node asks for the model by name; this makes it the shared one
        node_models.register_model(self.model, lambda: shared_adapter(self.model, device, dtype, attention, factory))
        # a workflow a visitor sends may name any hub id: only the operator may let it download
        self.runtime = Runtime(input_dirs=[self.input_dir, REPO_ROOT / "input"], output_dir=self.output_dir,
                               allow_downloads=allow_downloads)

    # -- model -------------------------------------------------------------------------------
    @property
    def adapter(self):
        return shared_adapter(self.model, self.device, self.dtype, self.attention, self._factory)

    def load_model(self) -> str:
        """Load the model now (so a bad ``--model`` fails at start-up), return a one-line description."""
        info = self.adapter.info
        return (f"{self.model}: {info.backbone}, {info.num_layers} layers, hidden {info.hidden_size}, "
                f"{info.attn_impl} attention")

    def warm_up(self) -> None:
        """One tiny unpruned run, so the first compared run is not charged with first-call costs."""
        from pruning_core.engine import Engine
        from pruning_core.synthetic import make_sample
        s = make_sample(0, 2)
        eng = Engine(self.adapter)
        eng.run(eng.prepare(s.frames, s.question.text), [], max_new_tokens=2)

    # -- inputs --------------------------------------------------------------------------------
    def sample_clips(self, frames: int = 16) -> list[samples.SampleClip]:
        return samples.ensure_samples(self.cache_dir, frames)

    def sample_clip(self, name: str, frames: int) -> samples.SampleClip:
        return samples.clip(name, int(frames), self.cache_dir)

    def stage_upload(self, path: str | Path) -> str:
        """Copy an uploaded video into the runtime's input folder; returns its file name there
        (its own name, as in ComfyUI's input folder: ``uploads.stage_upload``)."""
        try:
            return uploads.stage_upload(path, self.input_dir)
        except uploads.UploadError as e:
            raise DemoError(str(e)) from None

    def upload_preview(self, name: str) -> tuple[Path, str]:
        """(a preview every browser plays, the warning to show beside it) for a staged upload."""
        video = self.input_dir / name
        try:
            preview = uploads.playable_preview(video, self.cache_dir / "previews")
            from pruning_core.video import load_video
            probe = load_video(video, num_frames=8, max_side=112).frames
        except VideoPruneError as e:
            raise DemoError(str(e)) from None
        return preview, uploads.world_warning(self.adapter, probe)

    def upload_warning(self) -> str:
        """The warning shown while the source is "uploaded video" and nothing is uploaded yet."""
        return uploads.world_warning(self.adapter, None)

    def settings(self, source: str, upload: str | None, question: str, selected: Sequence[str],
                 retention: float | None, frames: int, max_new_tokens: int,
                 params: Mapping[str, Any] | None = None, positions: str = "original",
                 repeats: int = DEFAULT_REPEATS, matched: bool = False) -> CompareSettings:
        """Check the Compare tab's inputs and turn them into ``CompareSettings`` (or a ``DemoError``)."""
        if not isinstance(question, str) or not question.strip():
            raise DemoError("the question is empty; type a question about the video")
        try:
            frames = int(frames)
            max_new_tokens = int(max_new_tokens)
            repeats = int(repeats)
        except (TypeError, ValueError):
            raise DemoError("frames, answer length and timing repeats must be whole numbers") from None
        if not 1 <= repeats <= MAX_REPEATS:
            raise DemoError(f"timing repeats must be between 1 and {MAX_REPEATS}, got {repeats}")
        if not 1 <= frames <= MAX_FRAMES:
            raise DemoError(f"frames must be between 1 and {MAX_FRAMES}, got {frames}")
        if not 1 <= max_new_tokens <= 256:
            raise DemoError(f"answer length must be between 1 and 256 tokens, got {max_new_tokens}")
        if retention is not None and not 0.0 < float(retention) <= 1.0:
            raise DemoError(f"retention must be in (0, 1], got {retention}")
        if positions not in ("original", "compact"):
            raise DemoError(f"positions must be original or compact, got {positions!r}")
        try:
            steps = plan_steps(selected, params or {}, None if retention is None else float(retention))
        except PlanError as e:
            raise DemoError(str(e)) from None
        info = self.adapter.info
        for step in steps:  # a layer the model does not have fails here, not halfway through a run
            try:
                build_stages([step], info)
            except PlanError as e:
                raise DemoError(f"{e} (model: {self.model})") from None
        if source == UPLOAD or not samples.is_sample(str(source or "")):
            if not upload:
                raise DemoError("no video: upload one, or pick a sample clip")
            video, path, max_side = "sample-0", self.stage_upload(upload), UPLOAD_MAX_SIDE
        else:
            video, path, max_side = str(source), "", 0
        self._check_context(path, frames, max_side, question.strip(), max_new_tokens)
        s = CompareSettings(question=question.strip(), steps=steps, video=video, video_path=path,
                            frames=frames, max_side=max_side, max_new_tokens=max_new_tokens,
                            model=self.model, device=self.device, dtype=self.dtype, attention=self.attention,
                            positions=positions, repeats=repeats)
        if matched:
            if retention is None:
                raise DemoError("matched budget needs a retention target")
            s = self.matched(s, float(retention))
        return s

    def matched(self, s: CompareSettings, target: float) -> CompareSettings:
        """Matched-budget mode: each method's compute knob (``matching.knob_for``) solved so that its
        equivalent retention on this very input equals ``target`` (``matching.match_step`` with the
        engine measuring one-token runs). Weighting ``linear``, the mean visual share over layers:
        what FLOPs weighting reduces to on a real 7B checkpoint; on the built-in model the attention
        term would dominate eq. 12 and make low targets unreachable for every layer method. A method
        that cannot reach the target (or has no knob, e.g. SharpV memory) is left out with a note
        naming its reachable range; none left is a ``DemoError``."""
        from pruning_core.engine import Engine
        from pruning_core.matching import engine_measure, match_step
        from pruning_core.synthetic import make_sample
        from pruning_core.video import load_video
        if s.video_path:
            frames = load_video(self.input_dir / s.video_path, num_frames=s.frames,
                                max_side=s.max_side or None).frames
        else:
            frames = make_sample(samples.sample_index(s.video), s.frames).frames
        eng = Engine(self.adapter)
        with self._engine_turn():
            measure = engine_measure(eng, [eng.prepare(frames, s.question)], weighting="linear")
        steps, labels, notes = [], [], []
        for step in s.steps:
            try:
                with self._engine_turn():
                    m = match_step(step, target, measure)
            except PlanError as e:   # Unreachable, or a method without a compute knob
                notes.append(f"matched budget: {e}; left out")
                continue
            steps.append(m.step)
            # the solved knob at 3 digits: the plan in the workflow keeps the exact value
            labels.append(f"{get_method(m.step['method']).title} ({m.param}={m.value:.3g}) @eq={target:g}")
        if not steps:
            raise DemoError(" / ".join(notes) or "no method to match")
        return dataclasses.replace(s, steps=steps, labels=labels, notes=notes)

    def api_settings(self, video: Any, question: Any, methods: Any, retention: Any = 0.25, frames: Any = 16,
                     max_new_tokens: Any = 8, repeats: Any = DEFAULT_REPEATS, matched: Any = False) -> CompareSettings:
        """``settings`` for the ``/compare`` API, whose callers send JSON, not widget values: ``methods``
        is a list of names or one string ("fastv" or "fastv,sharp"), numbers may come as numeric
        strings; anything else is a one-line ``DemoError`` naming the field. Every method runs with
        its registry defaults, already valid on the loaded model (depth-dependent ones scale to it)."""
        if isinstance(methods, str):
            names = [m.strip() for m in methods.split(",") if m.strip()]
        elif isinstance(methods, (list, tuple)) and all(isinstance(m, str) for m in methods):
            names = [m.strip() for m in methods]
        else:
            raise DemoError(f"methods must be a list of method names (or one comma-separated string), "
                            f"got {type(methods).__name__}: {methods!r}")
        return self.settings(video, None, question if isinstance(question, str) else "", names,
                             _number("retention", retention, float), _number("frames", frames, int),
                             _number("max_new_tokens", max_new_tokens, int), repeats=_number("repeats", repeats, int),
                             matched=_flag("matched", matched))

    def _check_context(self, upload: str, frames: int, max_side: int, question: str, new_tokens: int) -> None:
        """Refuse, before any run, a clip longer than the model's context (naming the most frames that fit)."""
        from pruning_core.context_window import ContextLengthError, check_fits
        from pruning_core.synthetic import IMAGE_SIZE
        from pruning_core.video import probe_video, sample_indices, scaled_size
        if not hasattr(self.adapter, "sequence_length"):
            return
        w = h = IMAGE_SIZE  # the sample clips' size
        if upload:
            try:
                pw, ph, n, fps = probe_video(self.input_dir / upload)
            except VideoPruneError:
                return  # an unreadable upload is reported by the run, naming its Load Video node
            w, h = scaled_size(pw, ph, max_side)
            frames = len(sample_indices(n, frames, fps)) if n > 0 else frames
        try:
            check_fits(self.adapter, frames, h, w, question, new_tokens)
        except ContextLengthError as e:
            raise DemoError(f"{e}; lower the Frames slider (model: {self.model})") from None

    # -- Compare ---------------------------------------------------------------------------------
    @staticmethod
    def known_answer(s: CompareSettings) -> str | None:
        """The right answer when the run is a sample clip asked its own question, else None
        (an upload, or a question the user changed: nothing to check against)."""
        if s.video_path or not samples.is_sample(s.video):
            return None
        from pruning_core.synthetic import make_sample
        q = make_sample(samples.sample_index(s.video), int(s.frames)).question
        return q.answer if s.question.strip() == q.text.strip() else None

    def compare_workflow(self, s: CompareSettings) -> tuple[CompareGraph, dict, Path]:
        """The Compare graph, its UI workflow and the file it is saved in (named by content)."""
        try:
            cg = compare_graph(s)
        except PlanError as e:
            raise DemoError(str(e)) from None
        ui = cg.ui()
        return cg, ui, self.save_workflow_text(workflow_json(ui))

    def compare(self, s: CompareSettings, progress: Progress | None = None) -> CompareOutcome:
        cg, ui, path = self.compare_workflow(s)
        titles = {nid: n["_meta"]["title"] for nid, n in cg.api().items()}
        res = self._run(ui, _progress_adapter(progress, titles))
        rows = compare.run_rows(cg, res.outputs, self.known_answer(s),
                                projection.real_scale_preset(self.adapter.info.backbone))
        report_md = res.outputs[cg.report][0] if cg.report in res.outputs else ""
        vw = viewer.collect(cg, res.outputs)
        # the all-frames sheet is the overview (capped so it encodes fast); the viewer shows any frame whole
        items = compare.overlay_rows(cg, res.outputs, rows, height=viewer.sheet_height(len(rows), vw.num_frames))
        return CompareOutcome(rows=rows, table=compare.table(rows), overlay_rows=items, workflow=ui,
                              workflow_path=path, report_md=report_md, summary=res.summary(),
                              warnings=[*s.notes, *warnings_of(res)], viewer=vw)

    def record_scores(self, vw: "viewer.Viewer") -> dict[str, dict[str, np.ndarray]]:
        """The scores each pruned run ranked its tokens by (``viewer.record_scores``: one 1-token run
        per method, only when the heatmap is asked for), taking the runtime's turn."""
        if vw is None:
            raise DemoError("run a comparison first: the heatmap shows its methods' scores")
        with self._engine_turn():
            try:
                return viewer.record_scores(self.adapter, vw)
            except (PlanError, VideoPruneError) as e:
                raise DemoError(str(e)) from None

    def _engine_turn(self):
        """Engine calls made outside a workflow run (matched-budget measuring, score recording) wait
        for the run in progress: they share the model, whose layers a run patches while it prunes."""
        return self.runtime.exclusive()

    # -- Workflow tab ------------------------------------------------------------------------------
    @staticmethod
    def example_workflows() -> list[str]:
        return sorted(p.name for p in EXAMPLES_DIR.glob("*.json")) if EXAMPLES_DIR.is_dir() else []

    def read_example(self, name: str) -> str:
        names = self.example_workflows()
        if name not in names:
            raise DemoError(f"no example workflow {name!r}; examples: {', '.join(names) or 'none yet'}")
        return (EXAMPLES_DIR / name).read_text(encoding="utf-8")

    def read_workflow_file(self, path: str | Path) -> str:
        p = Path(path)
        if not p.is_file():
            raise DemoError("the uploaded workflow is gone from the server; upload it again")
        if p.stat().st_size > MAX_WORKFLOW_BYTES:
            raise DemoError(f"the workflow file is larger than {MAX_WORKFLOW_BYTES // 2 ** 20} MB")
        raw = p.read_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DemoError("the workflow file is not UTF-8 text") from None

    def save_workflow_text(self, text: str) -> Path:
        """The workflow as a file to download, named by content (pretty-printed when it parses)."""
        try:
            text = json.dumps(json.loads(text), indent=2)
        except (TypeError, ValueError, RecursionError):
            pass
        digest = hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
        path = self.workflow_dir / f"videoprune-workflow-{digest}.json"
        if not path.is_file():
            tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        return path

    @staticmethod
    def parse_workflow(text: str | bytes | Mapping) -> dict:
        if isinstance(text, Mapping):
            return dict(text)
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise DemoError("the workflow file is not UTF-8 text") from None
        if not isinstance(text, str) or not text.strip():
            raise DemoError("no workflow: pick an example, upload a .json file or paste one")
        try:
            return parse_json(text, "the workflow")
        except WorkflowFormatError as e:
            raise DemoError(str(e)) from None

    def inspect_workflow(self, text: str | Mapping) -> WorkflowOutcome:
        """Picture and validation of a workflow, without running it."""
        data = self.parse_workflow(text)
        try:
            prompt = self.runtime.load(data)
        except (WorkflowFormatError, VideoPruneError) as e:
            raise DemoError(str(e)) from None  # one line naming the node, or saying it is no workflow
        val = validate_prompt(prompt, self.runtime.classes)
        picture = draw_workflow(prompt, self.runtime.classes, val.node_errors)
        notes = notes_md(notes_of(data))
        if val.error is not None or val.node_errors:
            payload = val.payload()
            return WorkflowOutcome(picture, False, "The workflow is invalid: " + WorkflowError(payload).args[0],
                                   errors_md=node_errors_md(payload), notes_md=notes)
        return WorkflowOutcome(picture, True, f"Valid: {len(prompt)} nodes, outputs {', '.join(val.outputs)}.",
                               notes_md=notes)

    def model_overrides(self, prompt: Mapping[str, Mapping]) -> list[str]:
        """``NODE.path_or_hub_id=<the demo's model>`` for every Load Video LLM node, so a workflow
        written for the built-in model runs on the model this demo was started with."""
        value = "" if self.model == "builtin" else self.model
        return [f"{nid}.path_or_hub_id={value}" for nid, n in prompt.items()
                if n.get("class_type") == "VideoPruneLoadModel"]

    def run_workflow(self, text: str | Mapping, progress: Progress | None = None,
                     use_demo_model: bool = False) -> WorkflowOutcome:
        """Validate and run a workflow; with ``use_demo_model`` its models are the demo's."""
        checked = self.inspect_workflow(text)
        if not checked.ok:
            return checked
        data = self.parse_workflow(text)
        prompt = self.runtime.load(data)
        titles = {nid: (n.get("_meta") or {}).get("title") or n["class_type"] for nid, n in prompt.items()}
        overrides = self.model_overrides(prompt) if use_demo_model else []
        try:
            res = self._run(data, _progress_adapter(progress, titles), overrides)
        except DemoError as e:
            return WorkflowOutcome(checked.picture, False, str(e), notes_md=checked.notes_md)
        answers, images, reports = outputs_of(res, self.output_dir, titles)
        return WorkflowOutcome(checked.picture, True,
                               f"Ran {len(res.executed)} nodes ({len(res.cached)} from cache) in "
                               f"{res.total_ms / 1000:.1f} s; runtime overhead {res.overhead_ms:.1f} ms."
                               + warnings_md(warnings_of(res)),
                               answers_md=answers, report_md=reports, images=images, summary=res.summary(),
                               notes_md=checked.notes_md)

    # -- running ------------------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Stop the run in progress at its next node, layer or decode step. When idle this is
        harmless: the runtime clears the flag when the next run starts."""
        self.runtime.interrupt()

    def _run(self, workflow: Mapping, progress, overrides: Sequence[str] = ()) -> RunResult:
        try:
            return self.runtime.run(workflow, progress=progress, overrides=overrides)
        except WorkflowError as e:
            raise DemoError(f"the workflow is invalid: {e}") from None
        except NodeExecutionError as e:
            raise DemoError(str(e)) from None
        except Interrupted as e:
            raise DemoError(f"stopped: {e}") from None
        except (ModelLoadError, VideoError, PlanError, WorkflowFormatError) as e:
            raise DemoError(str(e)) from None


def frame_view(vw: "viewer.Viewer", index: int, heat: Mapping[str, np.ndarray] | None = None
               ) -> tuple[list[tuple[np.ndarray, str]], np.ndarray]:
    """The frame viewer at source frame ``index`` (clamped to the run's frames): a panel per run
    (tinted by its scores where ``heat`` has them), and the retention timeline with its cursor there."""
    if vw is None:
        raise DemoError("run a comparison first: the viewer shows its frames")
    index = max(0, min(int(index), vw.num_frames - 1))
    return viewer.frame_panels(vw, index, heat=heat), viewer.timeline_chart(vw, index)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise DemoError(f"{name} must be true or false, got {value!r}")
    return value


def _number(name: str, value: Any, kind: type) -> Any:
    """A JSON number (or numeric string) as ``kind``; a bool, a non-number or a fraction for an int is refused."""
    given, shown = value, ("a whole number" if kind is int else "a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or \
            (kind is int and float(value) != int(value)):
        raise DemoError(f"{name} must be {shown}, got {given!r}")
    return kind(value)


def _progress_adapter(progress: Progress | None, titles: Mapping[str, str]):
    """Runtime events → (fraction done, "what is running") for a progress bar, per node/stage."""
    if progress is None:
        return None
    state = {"steps": 1, "step": 0}

    def on_event(event: str, data: dict) -> None:
        if event == "start":
            state["steps"] = max(1, len(data.get("to_run", [])))
            progress(0.0, "starting")
        elif event == "executing":
            state["step"] = int(data.get("step", 1)) - 1
            progress(state["step"] / state["steps"], titles.get(data["node"], data["class_type"]))
        elif event == "progress":
            frac = float(data.get("value", 0)) / max(1.0, float(data.get("max", 1)))
            progress((state["step"] + min(frac, 1.0)) / state["steps"], titles.get(data["node"], data["node"]))
        elif event == "done":
            progress(1.0, "done")

    return on_event


def warnings_of(res: RunResult) -> list[str]:
    """The distinct warnings output nodes raised (e.g. the built-in model on a video outside its world)."""
    out: list[str] = []
    for ui in res.ui.values():
        for w in ui.get("warnings", []):
            if w not in out:
                out.append(w)
    return out


def warnings_md(warnings: Sequence[str]) -> str:
    return "".join(f"\n\n**Warning:** {_md(w)}" for w in warnings)


def node_errors_md(payload: Mapping) -> str:
    """ComfyUI's error payload as a Markdown table: node, type, problem."""
    lines = []
    err = payload.get("error") or {}
    if err:
        details = f" ({err['details']})" if err.get("details") else ""
        lines.append(f"**{err.get('message', 'invalid workflow')}**{details}\n")
    rows = []
    for node_id, entry in (payload.get("node_errors") or {}).items():
        for e in entry.get("errors", []):
            msg = e.get("message", "")
            if e.get("details"):
                msg += f": {e['details']}"
            rows.append(f"| {node_id} | {entry.get('class_type', '?')} | {e.get('type', '')} | {_md(msg)} |")
    if rows:
        lines += ["| node | type | error | message |", "|---|---|---|---|", *rows]
    return "\n".join(lines)


def outputs_of(res: RunResult, output_dir: Path, titles: Mapping[str, str]) -> tuple[str, list[tuple[str, str]], str]:
    """What the output nodes showed: answers (Markdown), preview images (paths, each captioned with
    its node and, for an overlay, its frame), report tables titled by what they compare."""
    answers, images, reports = [], [], []
    for node_id, ui in res.ui.items():
        title = titles.get(node_id, node_id)
        for row in ui.get("videoprune", []):
            answers.append(f"| {node_id} | {_md(title)} | {_md(row.get('answer', ''))} | {row.get('ttft_ms', 0):.1f} | "
                           f"{row.get('prefill_ms', 0):.1f} | {100 * row.get('retention', 0):.1f}% |")
        if "videoprune_report" in ui:
            title = report_title(ui["videoprune_report"])
        if "videoprune" not in ui:
            for text in ui.get("text", []):
                reports.append(f"**{_md(title)}** (node {node_id})\n\n{text}")
        shown = ui.get("images", [])
        for i, img in enumerate(shown):
            path = output_dir / img.get("subfolder", "") / img["filename"]
            if path.is_file():
                images.append((str(path), f"{image_part(ui, i, len(shown))}{title} (node {node_id})"))
    answers_md = ("| node | title | answer | TTFT ms | prefill ms | kept |\n|---|---|---|---|---|---|\n" + "\n".join(answers)
                  if answers else "")
    return answers_md, images, "\n\n".join(reports)


def image_part(ui: Mapping, i: int, n: int) -> str:
    """Which part of a node's output image ``i`` of ``n`` is, as a caption prefix (first: a gallery
    cuts long captions at the end): an Overlay node shows its frames, then its per-frame retention
    strip (``videoprune_strip``)."""
    if "videoprune_strip" not in ui or n < 2:
        return ""
    return f"frame {i} of {n - 1} · " if i < n - 1 else "retention per frame · "   # 0-based, as the viewer


def report_title(rows: Sequence[Mapping]) -> str:
    """A Report node's heading from its rows: the runs it compares and on how many frames."""
    labels = [str(r.get("label") or f"run {i + 1}") for i, r in enumerate(rows)]
    if not labels:
        return "Report"
    frames = sorted({int(r["frames"]) for r in rows if r.get("frames")})
    on = f", {frames[0]} frames" if len(frames) == 1 else ""
    return (f"Report: {labels[0]}{on}" if len(labels) == 1 else
            f"Report: {' vs '.join(labels)}{on}")


def notes_of(data: Mapping) -> list[str]:
    """The text of a UI workflow's Note / MarkdownNote nodes (the runtime skips them; the user should
    read them), in the order they sit on the canvas: top to bottom, left to right."""
    nodes = data.get("nodes")
    notes = [n for n in nodes if isinstance(n, Mapping) and n.get("type") in ("Note", "MarkdownNote")] \
        if isinstance(nodes, list) else []
    notes.sort(key=_canvas_order)
    out = []
    for n in notes:
        values = n.get("widgets_values") or []
        if values and isinstance(values[0], str) and values[0].strip():
            out.append(values[0].strip())
    return out


def notes_md(notes: Sequence[str]) -> str:
    """Notes as Markdown quotes, each line kept."""
    return "\n\n".join("> **Note:** " + "\n> ".join(n.splitlines()) for n in notes)


def _canvas_order(node: Mapping) -> tuple[float, float]:
    pos = node.get("pos")
    if isinstance(pos, Mapping):
        pos = [pos.get("0", 0), pos.get("1", 0)]
    try:
        return float(pos[1]), float(pos[0])
    except (TypeError, ValueError, IndexError, KeyError):
        return 0.0, 0.0


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
