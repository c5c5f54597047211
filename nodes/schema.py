"""The shape of a workflow file, checked once before anything indexes into it.

Both formats ComfyUI writes are described here: the UI format (``nodes`` and ``links`` lists, what
the editor saves) and the API format (``{node_id: {"class_type", "inputs", "_meta"}}``, what
``/prompt`` runs, optionally wrapped as ``{"prompt": ...}``). A file that breaks the shape is
refused with one line that either names the node at fault (``node 5: ...``) or says the file is
not a workflow (``not a workflow: ...``); the converter and the validator can then rely on every
field they read having the type they expect. What the *values* mean (unknown node types, missing
or out-of-range inputs, links to absent nodes) is left to ``validate.py``, which answers with
ComfyUI's node errors.
"""
from __future__ import annotations

from typing import Any, Mapping

from pruning_core.errors import VideoPruneError

MAX_DEPTH = 64
"""Deepest nesting of lists/objects accepted. ComfyUI writes at most ~6 levels; anything deeper is
not a workflow (and would otherwise exhaust Python's recursion limit in json or in our walkers)."""


class WorkflowFormatError(VideoPruneError):
    """The file is not a workflow ComfyUI could have written."""


def not_a_workflow(what: str) -> WorkflowFormatError:
    return WorkflowFormatError(f"not a workflow: {what}")


def node_error(node_id: Any, what: str) -> WorkflowFormatError:
    return WorkflowFormatError(f"node {node_id}: {what}")


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, Mapping):
        return "object"
    return type(v).__name__


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def is_int(v: Any) -> bool:
    """A JSON integer (``true`` is not one, although Python's bool is an int)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_node_id(v: Any) -> bool:
    return is_int(v) or (isinstance(v, str) and bool(v.strip()))


def check_depth(data: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than ``limit`` (iteratively, so the check itself cannot overflow)."""
    stack = [(data, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, Mapping):
            children = v.values()
        elif isinstance(v, (list, tuple)):
            children = v
        else:
            continue
        if d > limit:
            raise not_a_workflow(f"lists/objects nested deeper than {limit} levels")
        stack.extend((c, d + 1) for c in children)


# ---------------------------------------------------------------- UI format

def check_ui(data: Mapping) -> None:
    """The UI format's shape: node objects with unique ids, input/output slots, widget values, links."""
    seen: set[str] = set()
    for i, n in enumerate(data["nodes"]):
        if not isinstance(n, Mapping):
            raise not_a_workflow(f"nodes[{i}] is a {_kind(n)}, not a node object")
        nid = n.get("id")
        if not is_node_id(nid):
            raise not_a_workflow(f"nodes[{i}] has no usable id (got {_show(nid)}; ids are numbers)")
        if str(nid) in seen:
            raise node_error(nid, "its id appears twice in the workflow (duplicate node id); "
                                  "each node needs its own id")
        seen.add(str(nid))
        _check_ui_node(nid, n)
    _check_links(data.get("links"))
    defs = data.get("definitions")
    if defs is not None:
        if not isinstance(defs, Mapping):
            raise not_a_workflow(f"'definitions' is a {_kind(defs)}, not an object")
        subgraphs = defs.get("subgraphs")
        if subgraphs is not None and (not isinstance(subgraphs, list)
                                      or not all(isinstance(s, Mapping) for s in subgraphs)):
            raise not_a_workflow("'definitions.subgraphs' must be a list of subgraph objects")


def _check_ui_node(nid: Any, n: Mapping) -> None:
    typ = n.get("type")
    if not isinstance(typ, str) or not typ.strip():
        raise node_error(nid, f"'type' must be a node type name, got {_show(typ)}")
    mode = n.get("mode", 0)
    if mode is not None and not is_int(mode):
        raise node_error(nid, f"'mode' must be a number (0 = on, 2 = muted, 4 = bypassed), got {_show(mode)}")
    title = n.get("title")
    if title is not None and not isinstance(title, str):
        raise node_error(nid, f"'title' must be text, got {_show(title)}")
    values = n.get("widgets_values")
    if values is not None and not isinstance(values, (list, Mapping)):
        raise node_error(nid, f"'widgets_values' must be a list (or an object by widget name), got {_show(values)}")
    for k, slot in enumerate(_slots(nid, n, "inputs", "input")):
        name = slot.get("name")
        if not isinstance(name, str):  # "" is fine: a Reroute's slot has no name
            raise node_error(nid, f"input slot {k} has no name")
        link = slot.get("link")
        if link is not None and not is_int(link):
            raise node_error(nid, f"input {name!r}: 'link' must be a link id (a number) or null, got {_show(link)}")
        widget = slot.get("widget")
        if widget is not None and not isinstance(widget, Mapping):
            raise node_error(nid, f"input {name!r}: 'widget' must be an object")
    for k, slot in enumerate(_slots(nid, n, "outputs", "output")):
        links = slot.get("links")
        if links is not None and (not isinstance(links, list) or not all(is_int(x) for x in links)):
            raise node_error(nid, f"output slot {k}: 'links' must be a list of link ids")
    props = n.get("properties")
    if props is not None and not isinstance(props, Mapping):
        raise node_error(nid, f"'properties' must be an object, got {_show(props)}")


def _slots(nid: Any, n: Mapping, key: str, what: str) -> list:
    """A node's ``inputs`` or ``outputs``: absent, or a list of slot objects."""
    slots = n.get(key)
    if slots is None:
        return []
    if not isinstance(slots, list):
        raise node_error(nid, f"'{key}' must be a list of {what} slots, got a {_kind(slots)}")
    for k, slot in enumerate(slots):
        if not isinstance(slot, Mapping):
            raise node_error(nid, f"{what} slot {k} is a {_kind(slot)}, not a slot object")
    return slots


LINK_FIELDS = ("id", "origin_id", "origin_slot", "target_id", "target_slot")


def _check_links(links: Any) -> None:
    if links is None:
        return
    if not isinstance(links, list):
        raise not_a_workflow(f"'links' is a {_kind(links)}, not a list")
    seen: set[int] = set()
    for i, raw in enumerate(links):
        if isinstance(raw, Mapping):
            missing = [f for f in LINK_FIELDS if f not in raw]
            if missing:
                raise not_a_workflow(f"links[{i}] lacks {', '.join(missing)}")
            fields = [raw[f] for f in LINK_FIELDS]
        elif isinstance(raw, list) and len(raw) >= 5:
            fields = raw[:5]
        else:
            raise not_a_workflow(f"links[{i}] is {_show(raw)}; a link is [id, origin_id, origin_slot, "
                                 "target_id, target_slot, type]")
        lid, o_id, o_slot, t_id, t_slot = fields
        if not (is_int(lid) and is_node_id(o_id) and is_int(o_slot) and is_node_id(t_id) and is_int(t_slot)):
            raise not_a_workflow(f"links[{i}] is {_show(raw)}: ids and slots must be numbers")
        if lid in seen:
            raise not_a_workflow(f"link id {lid} appears twice in 'links'")
        seen.add(lid)


# ---------------------------------------------------------------- API format

def check_prompt(prompt: Any) -> None:
    """The API format's shape: ``{node_id: {"class_type": str, "inputs": {...}, "_meta": {...}}}``.

    A list input value is a link; one that is not ``[node_id, slot]`` is left to validation,
    which reports it as ComfyUI does (``bad_linked_input`` under that node and input).
    """
    if not isinstance(prompt, Mapping):
        raise not_a_workflow(f"a workflow is a JSON object, got a {_kind(prompt)}")
    dups = getattr(prompt, "duplicates", ())
    if dups:
        raise node_error(dups[0], "its id appears twice in the prompt (duplicate node id); "
                                  "each node needs its own id")
    for nid, node in prompt.items():
        if not isinstance(node, Mapping):
            raise not_a_workflow(f"entry {_show(nid)} is a {_kind(node)}, not a node object")
        ct = node.get("class_type")
        if ct is not None and (not isinstance(ct, str) or not ct.strip()):
            raise node_error(nid, f"'class_type' must be a node type name, got {_show(ct)}")
        inputs = node.get("inputs")
        if inputs is not None and not isinstance(inputs, Mapping):
            raise node_error(nid, f"'inputs' must be an object of input values, got a {_kind(inputs)}")
        meta = node.get("_meta")
        if meta is not None and (not isinstance(meta, Mapping) or not isinstance(meta.get("title", ""), (str, type(None)))):
            raise node_error(nid, "'_meta' must be an object with a text 'title'")


def is_link(v: Any) -> bool:
    """An API-format link ``[node_id, output_slot]``."""
    return isinstance(v, list) and len(v) == 2 and is_node_id(v[0]) and is_int(v[1])
