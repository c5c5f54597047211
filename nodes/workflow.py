"""Workflow files: ComfyUI's UI format (what the editor saves) to its API format (what /prompt runs).

The conversion follows what ComfyUI's frontend does in ``graphToPrompt``:

* muted nodes (mode 2) and bypassed nodes (mode 4) are not emitted; an input fed by a bypassed
  node is fed by that node's own input of the same type instead (the input at the same slot is
  tried first, then every input in order); an input fed by a muted node is dropped;
* virtual nodes are not emitted: ``Reroute`` passes its one input through, ``PrimitiveNode``
  writes its value into the widget it is connected to, ``Note``/``MarkdownNote`` are ignored;
* ``widgets_values`` (a list, or a dict by name) fill the node's widget inputs in ``INPUT_TYPES``
  order, skipping the extra ``control_after_generate`` value seed-like widgets carry;
* links may be arrays ``[id, from_node, from_slot, to_node, to_slot, type]`` or objects.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .schema import WorkflowFormatError, check_depth, check_prompt, check_ui, is_link, not_a_workflow
from .spec import widget_slots

MODE_MUTED = 2
MODE_BYPASS = 4
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
VIRTUAL_TYPES = frozenset({"Reroute", "PrimitiveNode"}) | NOTE_TYPES


@dataclass(frozen=True)
class Link:
    id: int
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: Any


class _Pairs(dict):
    """A JSON object that had repeated keys; ``duplicates`` lists them (json keeps the last silently)."""
    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    dups = []
    for k, v in pairs:
        if k in out:
            dups.append(k)
        out[k] = v
    if dups:
        out = _Pairs(out)
        out.duplicates = dups
    return out


def parse_json(text: str, source: str = "the workflow") -> dict:
    """A workflow object from JSON text: one line for invalid JSON, deep nesting or a non-object."""
    try:
        data = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as e:
        raise WorkflowFormatError(f"{source} is not valid JSON, so not a workflow: {e}") from None
    except RecursionError:
        raise not_a_workflow(f"{source} nests lists/objects deeper than Python can read") from None
    if not isinstance(data, dict):
        raise not_a_workflow(f"{source} holds a JSON {type(data).__name__}; a workflow is a JSON object")
    check_depth(data)
    return data


def load_json(path: str | Path) -> dict:
    """Read a workflow or prompt file; a clear one-line error for anything unreadable."""
    p = Path(path)
    if not p.is_file():
        raise WorkflowFormatError(f"workflow file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise WorkflowFormatError(f"{p} is not UTF-8 text, so not a workflow") from None
    except OSError as e:
        raise WorkflowFormatError(f"cannot read {p}: {e.strerror or e}") from None
    return parse_json(text, str(p))


def is_ui_workflow(data: Mapping) -> bool:
    return isinstance(data.get("nodes"), list)


def to_api(data: Mapping, classes: Mapping[str, type]) -> dict[str, dict]:
    """An API-format prompt from either format (``{"prompt": ...}`` wrappers are unwrapped)."""
    if not isinstance(data, Mapping):
        raise not_a_workflow("a workflow must be a JSON object")
    check_depth(data)
    if is_ui_workflow(data):
        check_ui(data)
        return ui_to_api(data, classes)
    if "nodes" in data and not isinstance(data["nodes"], Mapping):
        raise not_a_workflow(f"'nodes' must be a list of node objects")
    prompt = data.get("prompt") if isinstance(data.get("prompt"), Mapping) else data
    check_prompt(prompt)
    return {str(node_id): {**node, "inputs": dict(node.get("inputs") or {})} for node_id, node in prompt.items()}


def _links(data: Mapping) -> dict[int, Link]:
    """Links by id; their shape was checked by ``schema.check_ui``."""
    links: dict[int, Link] = {}
    for raw in data.get("links") or []:
        if isinstance(raw, Mapping):
            link = Link(raw["id"], str(raw["origin_id"]), raw["origin_slot"], str(raw["target_id"]),
                        raw["target_slot"], raw.get("type"))
        else:
            link = Link(raw[0], str(raw[1]), raw[2], str(raw[3]), raw[4], raw[5] if len(raw) > 5 else None)
        links[link.id] = link
    return links


def _subgraph_ids(data: Mapping) -> set[str]:
    return {str(sg.get("id")) for sg in ((data.get("definitions") or {}).get("subgraphs") or [])
            if isinstance(sg, Mapping)}


def ui_to_api(data: Mapping, classes: Mapping[str, type]) -> dict[str, dict]:
    """Convert a UI-format workflow to an API prompt, as ComfyUI's frontend does before queueing."""
    nodes = {str(n["id"]): dict(n) for n in data["nodes"]}  # shape (unique ids included) checked by check_ui
    links = _links(data)
    subgraphs = _subgraph_ids(data)

    prompt: dict[str, dict] = {}
    for node_id, n in nodes.items():
        typ = n["type"]
        if typ in VIRTUAL_TYPES or n.get("mode", 0) in (MODE_MUTED, MODE_BYPASS):
            continue
        if typ in subgraphs:
            raise WorkflowFormatError(f"node {node_id} is a subgraph; unpack it in ComfyUI (right-click → "
                                      "Unpack Subgraph) before running headless")
        inputs: dict[str, Any] = {}
        cls = classes.get(typ)
        if cls is not None:
            inputs.update(_widget_inputs(n, cls))
        for slot in n.get("inputs") or []:
            if slot.get("link") is None:
                continue
            link = links.get(slot["link"])
            if link is None:
                raise WorkflowFormatError(f"node {node_id}: input {slot.get('name')!r} refers to missing link "
                                          f"{slot['link']}")
            resolved = _resolve(link, slot.get("type"), nodes, links)
            if resolved is not None:  # else a widget keeps its own value, as in the frontend
                inputs[slot["name"]] = resolved[1]
        prompt[node_id] = {"class_type": typ, "inputs": inputs,
                           "_meta": {"title": n.get("title") or typ}}

    # inputs fed by muted nodes are dropped, as the frontend does
    for node in prompt.values():
        for name in [k for k, v in node["inputs"].items() if _is_link(v) and v[0] not in prompt and v[0] in nodes
                     and nodes[v[0]].get("mode", 0) == MODE_MUTED]:
            del node["inputs"][name]
    return prompt


def _is_link(v: Any) -> bool:
    return is_link(v) and isinstance(v[0], str)


def _widget_inputs(n: Mapping, cls: type) -> dict[str, Any]:
    values = n.get("widgets_values")
    if values is None:
        return {}
    slots = widget_slots(cls)
    if isinstance(values, Mapping):
        return {name: values[name] for name in slots if name is not None and name in values}
    out = {}
    for name, value in zip(slots, list(values)):
        if name is not None:
            out[name] = value
    return out


def _resolve(link: Link, want_type: Any, nodes: Mapping[str, dict], links: Mapping[int, Link]):
    """Follow a link upstream through Reroutes, Primitives and bypassed nodes.

    Returns ("link", [origin_id, slot]) or ("value", literal), or None when nothing feeds it.
    """
    seen: set[int] = set()
    while True:
        if link.id in seen:  # a reroute loop: nothing real feeds this input
            return None
        seen.add(link.id)
        parent = nodes.get(link.origin_id)
        if parent is None:
            # keep the dangling reference so validation reports it as a bad link
            return "link", [link.origin_id, link.origin_slot]
        ptype = parent["type"]
        if ptype == "PrimitiveNode":
            values = parent.get("widgets_values") or []
            if isinstance(values, Mapping):
                values = list(values.values())
            return ("value", values[0]) if values else None
        if ptype == "Reroute":
            nxt = _input_link(parent, 0, links)
            if nxt is None:
                return None
            link = nxt
            continue
        if ptype in NOTE_TYPES:
            return None
        if parent.get("mode", 0) == MODE_BYPASS:
            p_inputs = parent.get("inputs") or []
            order = [link.origin_slot] + list(range(len(p_inputs)))
            match = next((i for i in order if 0 <= i < len(p_inputs) and p_inputs[i].get("type") == want_type), None)
            if match is None:
                return None
            nxt = _input_link(parent, match, links)
            if nxt is None:
                return None
            link = nxt
            continue
        return "link", [link.origin_id, link.origin_slot]


def _input_link(node: Mapping, slot: int, links: Mapping[int, Link]) -> Link | None:
    inputs = node.get("inputs") or []
    if not 0 <= slot < len(inputs) or inputs[slot].get("link") is None:
        return None
    return links.get(inputs[slot]["link"])


def apply_overrides(prompt: dict[str, dict], overrides: list[str]) -> dict[str, dict]:
    """Apply CLI ``NODE_ID.INPUT=VALUE`` settings; VALUE is JSON when it parses, else a string."""
    for item in overrides:
        target, eq, raw = item.partition("=")
        node_id, dot, name = target.partition(".")
        if not eq or not dot or not node_id or not name:
            raise WorkflowFormatError(f"--set expects NODE_ID.INPUT=VALUE, got {item!r}")
        if node_id not in prompt:
            raise WorkflowFormatError(f"--set {item!r}: no node {node_id!r} in the workflow "
                                      f"(nodes: {', '.join(sorted(prompt, key=_id_key))})")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        except RecursionError:
            raise WorkflowFormatError(f"--set {target}: the value nests deeper than Python can read") from None
        try:
            check_depth(value)
        except WorkflowFormatError:
            raise WorkflowFormatError(f"--set {target}: the value nests lists/objects too deeply") from None
        prompt[node_id]["inputs"][name] = value
    return prompt


def _id_key(node_id: str):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
