"""The headless graph runtime: run a ComfyUI workflow (UI or API format) without ComfyUI.

Validate first (ComfyUI's error shape), then run only the nodes the output nodes need, in
topological order. Every node's outputs are cached under a signature — a hash of its class,
its widget values and its upstream nodes' signatures — so an unchanged re-run executes
nothing and a changed widget re-runs only the nodes downstream of it. Per-node timings, a
progress callback and interruption (checked between nodes and offered to nodes so long work
can stop between layers or tokens).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import context
from .errors import Interrupted, NodeExecutionError, WorkflowError
from .spec import call_with_widgets, input_specs
from .spec import memoized as spec_memo
from .schema import is_link
from .validate import Validation, failed_outputs_error, run_order, upstream, validate_prompt
from .workflow import apply_overrides, load_json, to_api

ProgressFn = Callable[[str, dict], None]


@dataclass
class RunResult:
    """What one run produced. ``outputs`` holds the output tuple of every node the run needed."""

    prompt: dict[str, dict]
    outputs: dict[str, tuple]
    ui: dict[str, dict]                       # output nodes' ``ui`` dicts (images, text, ...)
    timings_ms: dict[str, float]              # nodes executed this run
    executed: list[str]
    cached: list[str]
    total_ms: float
    overhead_ms: float                        # validation + scheduling + caching (wall clock)
    overhead_cpu_ms: float                    # the same, as CPU time of the runtime's thread
    node_errors: dict[str, dict] = field(default_factory=dict)  # outputs skipped (strict=False only)

    def summary(self) -> dict:
        return {"executed": self.executed, "cached": self.cached,
                "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
                "total_ms": round(self.total_ms, 3), "overhead_ms": round(self.overhead_ms, 3),
                "overhead_cpu_ms": round(self.overhead_cpu_ms, 3),
                "overhead_share": round(self.overhead_ms / self.total_ms, 6) if self.total_ms > 0 else 0.0}


@dataclass
class _Entry:
    outputs: tuple
    ui: dict | None


def _default_classes() -> dict[str, type]:
    """This pack's nodes, plus headless stand-ins for VideoHelperSuite's loaders (ComfyUI has the real ones)."""
    from .pack import NODE_CLASS_MAPPINGS
    from .vhs import HEADLESS_CLASS_MAPPINGS
    return {**HEADLESS_CLASS_MAPPINGS, **NODE_CLASS_MAPPINGS}


class Runtime:
    """Runs workflows. Keeps its output cache and node instances between runs.

    ``classes`` maps class_type → node class (default: this pack's nodes). ``input_dirs`` and
    ``model_dirs`` are the only folders paths in a workflow may name; ``output_dir`` receives
    image previews. ``allow_downloads=False`` refuses hub ids that are not already in a model
    folder (a public demo: a visitor must not fill the disk).
    """

    def __init__(self, classes: Mapping[str, type] | None = None, *, input_dirs: Iterable[str | Path] = (),
                 model_dirs: Iterable[str | Path] = (), output_dir: str | Path | None = None,
                 cache_size: int = 64, allow_downloads: bool = True):
        self.classes = dict(classes) if classes is not None else _default_classes()
        self.input_dirs = [Path(p) for p in input_dirs]
        self.model_dirs = [Path(p) for p in model_dirs]
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.cache_size = int(cache_size)
        self.allow_downloads = bool(allow_downloads)
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._instances: dict[tuple[str, str], Any] = {}
        self._interrupt = threading.Event()
        self._lock = threading.Lock()
        self._nonce = itertools.count()

    def exclusive(self) -> threading.Lock:
        """The run lock, for engine calls made outside a workflow run: holding it waits for the run in
        progress, whose stages patch the shared model's layers while it prunes."""
        return self._lock

    # -- loading and validating ------------------------------------------------------------
    def load(self, workflow: Mapping | str | Path, overrides: Iterable[str] = ()) -> dict[str, dict]:
        """An API prompt from a UI/API workflow (dict or file), with ``NODE_ID.INPUT=VALUE`` overrides."""
        if isinstance(workflow, (str, Path)):
            prompt = to_api(load_json(workflow), self.classes)  # freshly parsed: already private
        else:  # the caller's dict: work on a plain-JSON copy so validation never edits it
            prompt = json.loads(json.dumps(to_api(workflow, self.classes)))
        return apply_overrides(prompt, list(overrides))

    def validate(self, workflow: Mapping | str | Path, overrides: Iterable[str] = ()) -> Validation:
        with self._folders(), spec_memo():
            return validate_prompt(self.load(workflow, overrides), self.classes)

    def _folders(self):
        """Node declarations (e.g. the files a COMBO lists) see this runtime's folders while validating."""
        return context.running(context.ExecContext("", "", None, self._interrupt.is_set, self.input_dirs,
                                                   self.model_dirs, self.output_dir, self.allow_downloads))

    # -- control ----------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Ask the current run to stop at the next node boundary (or the next check inside a node)."""
        self._interrupt.set()

    def clear_cache(self) -> None:
        self._cache.clear()
        self._instances.clear()

    @property
    def cache_entries(self) -> int:
        return len(self._cache)

    # -- running ----------------------------------------------------------------------------
    def run(self, workflow: Mapping | str | Path, *, outputs: Iterable[str] | None = None,
            overrides: Iterable[str] = (), progress: ProgressFn | None = None, strict: bool = True) -> RunResult:
        """Validate and run. Raises ``WorkflowError`` (ComfyUI's error shape in ``.payload``),
        ``NodeExecutionError`` naming the failing node, or ``Interrupted``.

        ``strict=False`` runs the outputs that validated and reports the rest in ``node_errors``,
        as ComfyUI does; ``outputs`` restricts the run to those output node ids.
        """
        with self._lock, spec_memo():
            self._interrupt.clear()
            t0 = time.perf_counter()
            c0 = time.thread_time()
            with self._folders():
                prompt = self.load(workflow, overrides)
                val = validate_prompt(prompt, self.classes)
            if val.error is not None or (strict and val.node_errors):
                payload = val.payload()
                if payload["error"] is None:  # strict: some outputs failed, so the run as a whole fails
                    payload["error"] = failed_outputs_error(val.node_errors)
                raise WorkflowError(payload)
            targets = val.outputs
            if outputs is not None:
                wanted = [str(o) for o in outputs]
                missing = [o for o in wanted if o not in targets]
                if missing:
                    raise WorkflowError({"error": {"type": "prompt_no_outputs", "message": "Prompt has no outputs",
                                                   "details": f"not runnable output node(s): {', '.join(missing)}",
                                                   "extra_info": {}}, "node_errors": val.node_errors})
                targets = wanted
            with self._folders():
                return self._execute(prompt, val, targets, progress, t0, c0)

    def _execute(self, prompt: dict[str, dict], val: Validation, targets: list[str],
                 progress: ProgressFn | None, t0: float, c0: float) -> RunResult:
        needed = upstream(val.graph, targets)
        order = run_order(val.graph, needed)
        self._instances = {k: v for k, v in self._instances.items() if k[0] in prompt}

        sigs: dict[str, str] = {}
        results: dict[str, tuple] = {}
        ui: dict[str, dict] = {}
        timings: dict[str, float] = {}
        executed: list[str] = []
        cached: list[str] = []
        node_ms = node_cpu_ms = 0.0
        for node_id in order:
            sigs[node_id] = self._signature(node_id, prompt, sigs)
        to_run = [n for n in order if sigs[n] not in self._cache]
        _emit(progress, "start", {"nodes": order, "to_run": to_run})
        if len(to_run) < len(order):
            _emit(progress, "cached", {"nodes": [n for n in order if n not in to_run]})

        step = 0
        for node_id in order:
            ct = prompt[node_id]["class_type"]
            entry = self._cache.get(sigs[node_id])
            if entry is not None:
                self._cache.move_to_end(sigs[node_id])
                cached.append(node_id)
            else:
                if self._interrupt.is_set():
                    raise Interrupted(node_id, ct)
                step += 1
                _emit(progress, "executing", {"node": node_id, "class_type": ct, "step": step,
                                              "steps": len(to_run)})
                t_node, c_node = time.perf_counter(), time.thread_time()
                entry = self._call(node_id, prompt, results, progress)
                ms = (time.perf_counter() - t_node) * 1000.0
                node_ms += ms
                node_cpu_ms += (time.thread_time() - c_node) * 1000.0
                timings[node_id] = ms
                executed.append(node_id)
                self._cache[sigs[node_id]] = entry
                _emit(progress, "executed", {"node": node_id, "class_type": ct, "ms": ms, "ui": entry.ui})
            results[node_id] = entry.outputs
            if entry.ui is not None and node_id in targets:
                ui[node_id] = entry.ui
        self._evict(set(sigs.values()))
        total = (time.perf_counter() - t0) * 1000.0
        own_cpu = (time.thread_time() - c0) * 1000.0 - node_cpu_ms
        res = RunResult(prompt, results, ui, timings, executed, cached, total, max(total - node_ms, 0.0),
                        max(own_cpu, 0.0), dict(val.node_errors))
        _emit(progress, "done", res.summary())
        return res

    def _signature(self, node_id: str, prompt: dict[str, dict], sigs: dict[str, str]) -> str:
        node = prompt[node_id]
        cls = self.classes[node["class_type"]]
        inputs = {}
        for name, val in node["inputs"].items():
            # an input the class does not declare may hold anything: it is hashed, never followed
            inputs[name] = {"link": [sigs.get(str(val[0])), val[1]]} if is_link(val) else val
        body = {"class": node["class_type"], "inputs": inputs}
        if hasattr(cls, "IS_CHANGED"):
            body["changed"] = self._is_changed(cls, node["inputs"])
        text = json.dumps(body, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()

    def _is_changed(self, cls: type, inputs: dict) -> str:
        """``IS_CHANGED`` over the widget values; NaN or an exception means "always re-run"."""
        try:
            value = call_with_widgets(cls.IS_CHANGED, inputs)
        except Exception:
            return f"nonce-{next(self._nonce)}"
        if isinstance(value, float) and math.isnan(value):
            return f"nonce-{next(self._nonce)}"
        return repr(value)

    def _call(self, node_id: str, prompt: dict[str, dict], results: dict[str, tuple],
              progress: ProgressFn | None) -> _Entry:
        node = prompt[node_id]
        ct = node["class_type"]
        cls = self.classes[ct]
        kwargs: dict[str, Any] = {}
        for spec in input_specs(cls):
            if spec.section == "hidden":
                hidden = {"UNIQUE_ID": node_id, "PROMPT": prompt}.get(spec.type)
                if hidden is not None:
                    kwargs[spec.name] = hidden
                continue
            if spec.name not in node["inputs"]:
                continue
            val = node["inputs"][spec.name]
            kwargs[spec.name] = results[str(val[0])][val[1]] if isinstance(val, list) else val

        def node_progress(nid: str, value: int, total: int) -> None:
            _emit(progress, "progress", {"node": nid, "value": value, "max": total})

        ctx = context.ExecContext(node_id, ct, node_progress, self._interrupt.is_set, self.input_dirs,
                                  self.model_dirs, self.output_dir, self.allow_downloads)
        try:
            key = (node_id, ct)
            obj = self._instances.get(key)
            if obj is None:
                obj = self._instances[key] = cls()
            with context.running(ctx):
                ret = getattr(obj, cls.FUNCTION)(**kwargs)
        except Interrupted as ex:
            raise Interrupted(node_id, ct) from ex
        except Exception as ex:
            if self._interrupt.is_set():  # e.g. the engine's own Interrupted between layers
                raise Interrupted(node_id, ct) from ex
            raise NodeExecutionError(node_id, ct, ex) from ex
        return _unpack(node_id, ct, cls, ret)

    def _evict(self, keep: set[str]) -> None:
        for sig in list(self._cache):
            if len(self._cache) <= max(self.cache_size, len(keep)):
                break
            if sig not in keep:
                del self._cache[sig]


def _unpack(node_id: str, ct: str, cls: type, ret: Any) -> _Entry:
    ui = None
    if isinstance(ret, dict):
        ui = ret.get("ui")
        ret = ret.get("result", ())
    if ret is None:
        ret = ()
    n = len(getattr(cls, "RETURN_TYPES", ()))
    if not isinstance(ret, (tuple, list)) or len(ret) != n:
        got = f"{len(ret)} value(s)" if isinstance(ret, (tuple, list)) else type(ret).__name__
        raise NodeExecutionError(node_id, ct, TypeError(f"returned {got}, but RETURN_TYPES declares {n}"))
    return _Entry(tuple(ret), ui)


def _emit(progress: ProgressFn | None, event: str, data: dict) -> None:
    if progress is not None:
        progress(event, data)
