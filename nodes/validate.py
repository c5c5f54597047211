"""Validate an API-format prompt before running it, answering in ComfyUI's error shape.

``{"error": {type, message, details, extra_info},
   "node_errors": {id: {"errors": [...], "dependent_outputs": [...], "class_type": ...}}}``

with ComfyUI's error type names (``missing_node_type``, ``prompt_no_outputs``,
``required_input_missing``, ``bad_linked_input``, ``return_type_mismatch``, ``invalid_input_type``,
``value_smaller_than_min``, ``value_bigger_than_max``, ``value_not_in_list``,
``custom_validation_failed``, ``exception_during_validation``, ``prompt_outputs_failed_validation``)
plus ``dependency_cycle`` for cycles, which ComfyUI only finds while executing.
Widget values are converted to their declared type in place, as ComfyUI does.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import networkx as nx

from .errors import error_entry
from .schema import is_link
from .spec import InputSpec, hook_arguments, input_specs, is_output_node, types_compatible


@dataclass
class Validation:
    """What validation found. ``graph`` has an edge origin → target for every good link."""

    error: dict | None
    node_errors: dict[str, dict]
    outputs: list[str]             # output nodes that passed
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.node_errors

    def payload(self) -> dict:
        return {"error": self.error, "node_errors": self.node_errors}


def sort_ids(ids) -> list[str]:
    return sorted(ids, key=lambda i: _order_key(str(i)))


def upstream(graph: nx.DiGraph, targets) -> set[str]:
    """``targets`` and every node they depend on (one walk for all of them)."""
    seen = set(targets)
    stack = list(seen)
    while stack:
        for p in graph.pred[stack.pop()]:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def run_order(graph: nx.DiGraph, needed: set[str]) -> list[str]:
    """``needed`` in topological order, ready nodes taken in id order (numeric ids numerically),
    so the order is deterministic. ``needed`` must be closed under predecessors and acyclic."""
    indeg = {n: len(graph.pred[n]) for n in needed}
    ready = [(_order_key(n), n) for n, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for m in graph.succ[n]:
            if m in indeg:
                indeg[m] -= 1
                if indeg[m] == 0:
                    heapq.heappush(ready, (_order_key(m), m))
    return order


def _order_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def build_graph(prompt: Mapping[str, dict]) -> nx.DiGraph:
    """Nodes of the prompt, with an edge origin → target (attr ``inputs``) for each link to an existing node."""
    g = nx.DiGraph()
    for node_id, node in prompt.items():
        g.add_node(node_id, class_type=node.get("class_type"))
    for node_id, node in prompt.items():
        for name, val in (node.get("inputs") or {}).items():
            if is_link(val) and str(val[0]) in prompt:
                src = str(val[0])
                if g.has_edge(src, node_id):
                    g.edges[src, node_id]["inputs"].append(name)
                else:
                    g.add_edge(src, node_id, inputs=[name])
    return g


def validate_prompt(prompt: dict[str, dict], classes: Mapping[str, type]) -> Validation:
    """Check every node the output nodes depend on; see the module docstring for the error shape."""
    unknown = {}
    for node_id, node in prompt.items():
        ct = node.get("class_type")
        if ct is None or ct not in classes:
            title = (node.get("_meta") or {}).get("title")
            what = f"Node '{title or ct or f'ID #{node_id}'}'"
            msg = (f"{what} has no class_type. The workflow may be corrupted." if ct is None
                   else f"{what} not found. The custom node may not be installed.")
            unknown[node_id] = error_entry("missing_node_type", msg, f"Node ID '#{node_id}'",
                                           node_id=node_id, class_type=ct, node_title=title)
    if unknown:
        first = sort_ids(unknown)[0]
        node_errors = {i: {"errors": [e], "dependent_outputs": [], "class_type": e["extra_info"]["class_type"]}
                       for i, e in unknown.items()}
        return Validation(unknown[first], node_errors, [])

    outputs = sort_ids(i for i, n in prompt.items() if is_output_node(classes[n["class_type"]]))
    if not outputs:
        return Validation(error_entry("prompt_no_outputs", "Prompt has no outputs"), {}, [])

    graph = build_graph(prompt)
    errors: dict[str, list[dict]] = {}
    for comp in nx.strongly_connected_components(graph):
        if len(comp) > 1 or any(graph.has_edge(n, n) for n in comp):
            loop = " -> ".join(sort_ids(comp))
            for n in comp:
                errors[n] = [error_entry("dependency_cycle", "Dependency cycle detected", loop,
                                         cycle=sort_ids(comp))]
    for node_id in prompt:
        if node_id not in errors:
            errors[node_id] = _node_errors(node_id, prompt, classes)

    node_errors: dict[str, dict] = {}
    if not any(errors.values()):
        return Validation(None, node_errors, outputs, graph)
    good = []
    for out in outputs:
        needed = upstream(graph, [out])
        bad = sort_ids(n for n in needed if errors[n])
        if not bad:
            good.append(out)
            continue
        for n in bad:
            entry = node_errors.setdefault(n, {"errors": errors[n], "dependent_outputs": [],
                                               "class_type": prompt[n]["class_type"]})
            entry["dependent_outputs"].append(out)

    return Validation(None if good else failed_outputs_error(node_errors), node_errors, good, graph)


def failed_outputs_error(node_errors: dict[str, dict]) -> dict:
    """ComfyUI's top-level error when output nodes fail validation; details list every reason."""
    lines = [f"{e['message']}: {e['details']}" for n in sort_ids(node_errors) for e in node_errors[n]["errors"]]
    return error_entry("prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(lines))


def _node_errors(node_id: str, prompt: dict[str, dict], classes: Mapping[str, type]) -> list[dict]:
    node = prompt[node_id]
    cls = classes[node["class_type"]]
    try:
        specs = [s for s in input_specs(cls) if s.section != "hidden"]
        inputs = node.setdefault("inputs", {})
        errs = []
        for spec in specs:
            if spec.name not in inputs:
                if spec.section == "required":
                    errs.append(error_entry("required_input_missing", "Required input is missing", spec.name,
                                            input_name=spec.name))
                continue
            err = _check_input(spec, inputs, prompt, classes)
            if err is not None:
                errs.append(err)
        if not errs and hasattr(cls, "VALIDATE_INPUTS"):
            errs.extend(_custom_validation(cls, inputs))
        return errs
    except Exception as ex:  # a node class whose declarations themselves are broken
        return [error_entry("exception_during_validation", "Exception when validating node", str(ex),
                            exception_type=type(ex).__name__)]


def _config(spec: InputSpec) -> list:
    return [spec.type, spec.options] if spec.options else [spec.type]


def _check_input(spec: InputSpec, inputs: dict, prompt: dict[str, dict], classes: Mapping[str, type]) -> dict | None:
    name, val = spec.name, inputs[spec.name]
    if isinstance(val, list):
        return _check_link(spec, val, prompt, classes)
    typ = spec.type_name
    if not spec.is_widget and typ != "*":
        if spec.options.get("forceInput") or typ not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
            return error_entry("invalid_input_type", f"Input '{name}' needs a link from a {typ} output",
                               f"{name}, got the value {str(val)[:60]!r}", input_name=name,
                               input_config=_config(spec), received_value=_short(val))
    try:
        val = _convert(typ, val)
    except (TypeError, ValueError) as ex:
        return error_entry("invalid_input_type", f"Failed to convert an input value to a {typ} value",
                           f"{name}, {_short(val)}, {ex}", input_name=name, input_config=_config(spec),
                           received_value=_short(val), exception_message=str(ex))
    inputs[name] = val
    if typ in ("INT", "FLOAT"):
        lo, hi = spec.options.get("min"), spec.options.get("max")
        if lo is not None and val < lo:
            return error_entry("value_smaller_than_min", f"Value {val} smaller than min of {lo}", name,
                               input_name=name, input_config=_config(spec), received_value=val)
        if hi is not None and val > hi:
            return error_entry("value_bigger_than_max", f"Value {val} bigger than max of {hi}", name,
                               input_name=name, input_config=_config(spec), received_value=val)
    choices = spec.choices
    if choices is not None and val not in choices:
        listed = f"(list of length {len(choices)})" if len(choices) > 20 else str(choices)
        return error_entry("value_not_in_list", "Value not in list", f"{name}: '{val}' not in {listed}",
                           input_name=name, input_config=_config(spec) if len(choices) <= 20 else None,
                           received_value=val)
    return None


def _check_link(spec: InputSpec, val: list, prompt: dict[str, dict], classes: Mapping[str, type]) -> dict | None:
    name = spec.name
    if len(val) != 2:
        return error_entry("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                           name, input_name=name, input_config=_config(spec), received_value=val)
    origin, slot = str(val[0]), val[1]
    if origin not in prompt:
        return error_entry("bad_linked_input", f"Bad linked input, node {origin} does not exist", name,
                           input_name=name, input_config=_config(spec), received_value=val)
    returns = getattr(classes[prompt[origin]["class_type"]], "RETURN_TYPES", ())
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < len(returns):
        return error_entry("bad_linked_input",
                           f"Bad linked input, node {origin} has no output slot {slot} "
                           f"(it has {len(returns)})", name,
                           input_name=name, input_config=_config(spec), received_value=val)
    received = returns[slot]
    if isinstance(received, (list, tuple)):
        received = "COMBO" if spec.type_name == "COMBO" else list(received)
    expected = spec.type_name if spec.type_name == "COMBO" else spec.type
    if not types_compatible(received, expected):
        return error_entry("return_type_mismatch", "Return type mismatch between linked nodes",
                           f"{name}, received_type({received}) mismatch input_type({expected})",
                           input_name=name, input_config=_config(spec), received_type=received, linked_node=val)
    return None


def _convert(typ: str, val: Any) -> Any:
    if typ == "INT":
        if isinstance(val, float) and not math.isfinite(val):
            raise ValueError("not a finite number")
        return int(val)
    if typ == "FLOAT":
        out = float(val)
        if not math.isfinite(out):
            raise ValueError("not a finite number")
        return out
    if typ == "STRING":
        if isinstance(val, (dict, list)):
            raise TypeError("expected text")
        return str(val)
    if typ == "BOOLEAN":
        if isinstance(val, bool):
            return val
        if isinstance(val, str) and val.lower() in ("true", "false"):
            return val.lower() == "true"
        if isinstance(val, int) and val in (0, 1):
            return bool(val)
        raise ValueError("expected true or false")
    return val


def _custom_validation(cls: type, inputs: dict) -> list[dict]:
    args = hook_arguments(cls.VALIDATE_INPUTS, inputs)
    ret = cls.VALIDATE_INPUTS(**args)
    if ret is True:
        return []
    reason = "" if ret is False else f" - {ret}"
    if not args:
        return [error_entry("custom_validation_failed", "Custom validation failed for node", reason.removeprefix(" - "))]
    # Once, under the input the hook's message names (else its first input). ComfyUI itself repeats
    # the failure under every input the hook was given, which points at inputs that are fine.
    name = _named_input(str(ret), list(args))
    return [error_entry("custom_validation_failed", "Custom validation failed for node", f"{name}{reason}",
                        input_name=name)]


def _named_input(message: str, names: list[str]) -> str:
    hits = [(message.find(f"'{n}'"), n) for n in names if f"'{n}'" in message]
    return min(hits)[1] if hits else names[0]


def _short(val: Any) -> Any:
    return val if isinstance(val, (int, float, bool)) or val is None else str(val)[:200]
