"""Small fake node classes (classic V1 API) for the runtime tests, and a UI-workflow builder."""
from __future__ import annotations

from nodes import context

CALLS: list[str] = []
HOOKS: dict = {}


class Number:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1, "min": 0, "max": 100, "tooltip": "a number"})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "make"
    CATEGORY = "test"

    def make(self, value):
        CALLS.append("Number")
        return (value,)


class Add:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"forceInput": True}),
                             "b": ("INT", {"default": 0, "min": -10, "max": 10})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add"

    def add(self, a, b):
        CALLS.append("Add")
        return (a + b,)


class Show:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})},
                "optional": {"label": ("STRING", {"default": ""})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "show"
    OUTPUT_NODE = True

    def show(self, value, label="", unique_id=None):
        CALLS.append(f"Show{unique_id}")
        return {"ui": {"text": [f"{label}{value}"]}, "result": (value,)}


class Pick:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mode": (["fast", "slow"], {"default": "fast"}),
                             "flag": ("BOOLEAN", {"default": True}),
                             "scale": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "pick"

    def pick(self, mode, flag, scale):
        CALLS.append("Pick")
        return (int(scale * 10) + (100 if mode == "slow" else 0) + (1000 if flag else 0),)


class Seeded:
    """A seed widget (the frontend adds a control value after it) followed by another widget."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2 ** 32}),
                             "offset": ("INT", {"default": 0, "min": 0, "max": 100}),
                             "jitter": ("INT", {"default": 0, "min": 0, "max": 100, "control_after_generate": True}),
                             "last": ("INT", {"default": 0, "min": 0, "max": 100})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"

    def go(self, seed, offset, jitter, last):
        CALLS.append("Seeded")
        return (seed + offset + jitter + last,)


class Image:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"

    def make(self):
        CALLS.append("Image")
        return ("pixels",)


class Boom:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"

    def go(self, a):
        CALLS.append("Boom")
        if HOOKS.get("boom", True):
            raise ValueError("the fake node blew up")
        return (a,)


class Long:
    """Long work that checks for interruption between its steps, like the engine between layers."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"forceInput": True}), "steps": ("INT", {"default": 5, "min": 1})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"

    def go(self, a, steps):
        bar = context.Progress(steps)
        for i in range(steps):
            context.check_interrupt()
            CALLS.append(f"Long{i}")
            bar.update(i + 1)
            if i == HOOKS.get("interrupt_at"):
                HOOKS["runtime"].interrupt()
        return (a,)


class Strict:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 2})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"

    @classmethod
    def VALIDATE_INPUTS(cls, value):
        return True if value % 2 == 0 else "value must be even"

    def go(self, value):
        return (value,)


class Broken:
    @classmethod
    def INPUT_TYPES(cls):
        raise RuntimeError("declarations are broken")

    RETURN_TYPES = ("INT",)
    FUNCTION = "go"


class WrongArity:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("INT", "INT")
    FUNCTION = "go"
    OUTPUT_NODE = True

    def go(self):
        return (1,)


CLASSES = {c.__name__: c for c in (Number, Add, Show, Pick, Seeded, Image, Boom, Long, Strict, Broken, WrongArity)}


def ui_workflow(nodes: list[dict], links: list[tuple], objects: bool = False) -> dict:
    """A UI-format workflow. ``nodes``: dicts with id, type, optional mode/widgets_values/inputs;
    ``links``: (id, from_node, from_slot, to_node, to_slot, type). Input slots get their link ids."""
    full = []
    for n in nodes:
        node = {"id": n["id"], "type": n["type"], "pos": [0, 0], "size": [200, 100], "flags": {}, "order": 0,
                "mode": n.get("mode", 0), "inputs": [dict(i) for i in n.get("inputs", [])],
                "outputs": [dict(o) for o in n.get("outputs", [])], "properties": {},
                "widgets_values": n.get("widgets_values", [])}
        full.append(node)
    by_id = {n["id"]: n for n in full}
    for lid, o_id, o_slot, t_id, t_slot, typ in links:
        by_id[t_id]["inputs"][t_slot]["link"] = lid
    raw_links = [list(l) for l in links]
    if objects:
        raw_links = [{"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3], "target_slot": l[4],
                      "type": l[5]} for l in links]
    return {"last_node_id": max(by_id), "last_link_id": max((l[0] for l in links), default=0), "nodes": full,
            "links": raw_links, "groups": [], "config": {}, "extra": {}, "version": 0.4}
