"""Write graphs as ComfyUI UI-format workflows (what the editor saves and loads).

``GraphBuilder`` collects nodes with their widget values and links, then ``to_ui`` lays them
out in columns by depth and serialises them the way ComfyUI's editor does: ``inputs`` hold
the link sockets (plus widgets fed by a link), ``outputs`` every return slot, and
``widgets_values`` the widget values in ``INPUT_TYPES`` order (with the ``control_after_generate``
value seed widgets carry). The demo and the shipped example workflows are built with it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import networkx as nx

from .spec import input_specs


@dataclass
class _Node:
    id: int
    type: str
    values: dict[str, Any]
    links: dict[str, tuple[int, int]]
    title: str | None = None
    mode: int = 0
    note: str | None = None


@dataclass
class GraphBuilder:
    classes: Mapping[str, type]
    nodes: list[_Node] = field(default_factory=list)

    def add(self, class_type: str, title: str | None = None, **inputs) -> int:
        """Add a node; an input given as ``(node_id, slot)`` is a link, anything else a widget value.
        Widgets left out take their declared defaults."""
        if class_type not in self.classes:
            raise KeyError(f"unknown node type {class_type}")
        values, links = {}, {}
        for name, v in inputs.items():
            (links if isinstance(v, tuple) else values)[name] = v
        for spec in input_specs(self.classes[class_type]):
            if spec.is_widget and spec.name not in values and spec.name not in links:
                default = spec.options.get("default")
                if default is None:
                    choices = spec.choices
                    default = choices[0] if choices else {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[
                        spec.type_name]
                values[spec.name] = default
        node = _Node(len(self.nodes) + 1, class_type, values, links, title)
        self.nodes.append(node)
        return node.id

    def note(self, text: str, title: str = "Note") -> int:
        node = _Node(len(self.nodes) + 1, "Note", {}, {}, title, note=text)
        self.nodes.append(node)
        return node.id

    def to_api(self) -> dict[str, dict]:
        out = {}
        for n in self.nodes:
            if n.note is not None:
                continue
            inputs = dict(n.values)
            inputs.update({k: [str(a), b] for k, (a, b) in n.links.items()})
            out[str(n.id)] = {"class_type": n.type, "inputs": inputs, "_meta": {"title": n.title or n.type}}
        return out

    def to_ui(self, title: str = "") -> dict:
        g = nx.DiGraph()
        g.add_nodes_from(n.id for n in self.nodes)
        for n in self.nodes:
            for src, _ in n.links.values():
                g.add_edge(src, n.id)
        depth = {}
        for nid in nx.topological_sort(g):
            depth[nid] = max((depth[p] + 1 for p in g.predecessors(nid)), default=0)
        notes = [n for n in self.nodes if n.note is not None]
        for n in notes:  # notes sit in the first column, above the loaders
            depth[n.id] = 0

        links: list[list] = []
        ui_nodes = []
        out_links: dict[tuple[int, int], list[int]] = {}
        col_y: dict[int, int] = {}
        col_x: dict[int, int] = {}
        col_w: dict[int, int] = {}
        order = sorted(self.nodes, key=lambda n: (depth[n.id], n.note is None, n.id))
        for k, n in enumerate(order):
            if n.note is not None:
                size = [360, 140]
                ui_nodes.append({"id": n.id, "type": "Note", "pos": [40, 40], "size": size, "flags": {},
                                 "order": k, "mode": 0, "inputs": [], "outputs": [],
                                 "properties": {"text": ""}, "widgets_values": [n.note],
                                 "color": "#432", "bgcolor": "#653", **({"title": n.title} if n.title else {})})
                col_y[0] = 40 + size[1] + 40
                col_x[0] = 40
                col_w[0] = max(col_w.get(0, 0), 340)
                continue
            cls = self.classes[n.type]
            specs = [s for s in input_specs(cls) if s.section != "hidden"]
            inputs = []
            for s in specs:
                linked = s.name in n.links
                if s.is_widget and not linked:
                    continue
                entry = {"name": s.name, "type": s.type_name, "link": None}
                if s.is_widget:
                    entry["widget"] = {"name": s.name}
                if linked:
                    src, slot = n.links[s.name]
                    lid = len(links) + 1
                    links.append([lid, src, slot, n.id, len(inputs), self._return_type(src, slot)])
                    out_links.setdefault((src, slot), []).append(lid)
                    entry["link"] = lid
                inputs.append(entry)
            widgets = []
            for s in specs:
                if s.is_widget:
                    widgets.append(n.values.get(s.name) if s.name not in n.links else self._widget_default(s))
                    if s.has_control_value:
                        widgets.append("fixed")
            rets = cls.RETURN_TYPES
            names = getattr(cls, "RETURN_NAMES", rets)
            outputs = [{"name": names[i], "type": rets[i], "links": [], "slot_index": i} for i in range(len(rets))]
            n_widgets = sum(1 for s in specs if s.is_widget)
            size = [340, 46 + 24 * (max(len(inputs), len(outputs)) + n_widgets)]
            area = getattr(cls, "RESULT_AREA", None)
            if area is not None:  # the editor grows the node to show results: leave room, so nothing overlaps
                size = [max(size[0], area[0]), size[1] + area[1]]
            elif getattr(cls, "OUTPUT_NODE", False):
                size[1] += 120
            d = depth[n.id]
            if d not in col_x:  # nodes come column by column, so the previous column's width is known
                col_x[d] = col_x[d - 1] + col_w[d - 1] + 60 if d > 0 else 40
            col_w[d] = max(col_w.get(d, 0), size[0])
            x = col_x[d]
            y = col_y.get(d, 40)
            col_y[d] = y + size[1] + 50
            node = {"id": n.id, "type": n.type, "pos": [x, y], "size": size, "flags": {}, "order": k,
                    "mode": n.mode, "inputs": inputs, "outputs": outputs,
                    "properties": {"Node name for S&R": n.type}, "widgets_values": widgets}
            if n.title:
                node["title"] = n.title
            ui_nodes.append(node)
        by_id = {u["id"]: u for u in ui_nodes}
        for (src, slot), lids in out_links.items():
            by_id[src]["outputs"][slot]["links"] = lids
        ui_nodes.sort(key=lambda u: u["id"])
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "videoprune/" + title)), "revision": 0,
                "last_node_id": max((n.id for n in self.nodes), default=0), "last_link_id": len(links),
                "nodes": ui_nodes, "links": links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}, "videoprune": {"title": title}},
                "version": 0.4}

    def _return_type(self, node_id: int, slot: int) -> str:
        n = self.nodes[node_id - 1]
        return self.classes[n.type].RETURN_TYPES[slot]

    @staticmethod
    def _widget_default(spec) -> Any:
        return spec.options.get("default", "")
