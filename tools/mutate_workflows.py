"""Mutation campaign against the graph runtime: malformed workflows must be refused, never crash.

    python tools/mutate_workflows.py [--count 400] [--seed 0] [--run 20] [--demo] [--json]

Every shipped example workflow, in UI format and converted to API format, is mutated (one or two
edits: a value anywhere replaced by a hostile one, a key deleted, a node duplicated, the text
truncated or nested 100 levels deep, a key repeated) and fed to what a user calls:
``python -m nodes validate`` (file → ``Runtime.validate``) and, with ``--demo``, the demo's
Workflow tab (``DemoService.inspect_workflow``, graph picture included). Each outcome is one of

* ``ok`` — still a valid workflow;
* ``node_errors`` — refused with ComfyUI's node errors, every one under a node id of the file;
* ``node_format`` — refused in one line that starts ``node <id>:``, an id of the file;
* ``not_a_workflow`` — refused in one line that says the file is not a workflow;
* ``no_outputs`` — refused because no output node is left (ComfyUI's ``prompt_no_outputs``);
* ``bad_message`` — refused, but the message names neither a node nor the file's nature;
* ``traceback`` — any other exception escaped: a bug.

``--run N`` also runs up to N of the mutants that validated (headless, built-in model), so a
mutation that slips through validation must fail as a node error, not a traceback.
Prints a JSON summary with the counts; exits 1 if any mutant gave a traceback or a bad message.
The same mutation operators drive the hypothesis test in ``tests/test_workflow_mutations.py``.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

HOSTILE: tuple = (None, True, False, 0, -1, 1, 2 ** 70, 1.5, float("nan"), float("inf"), "", "abc", "1",
                  "VideoPruneAnswer", "../../../etc/passwd", "x" * 5000, [], [1], ["1", 0], ["999", 0], [1, 2, 3],
                  ["VideoPruneAnswer"], [[["deep"]]], {}, {"a": 1}, {"id": 1, "type": "X"}, [None] * 6)
OUTCOMES = ("ok", "node_errors", "node_format", "not_a_workflow", "no_outputs", "bad_message", "traceback")


class Chooser:
    """Where the mutation's choices come from: a seeded ``random.Random`` or hypothesis' ``data.draw``."""

    def __init__(self, index: Callable[[int], int]):
        self.index = index  # n -> an int in [0, n)

    @classmethod
    def from_random(cls, rng: random.Random) -> "Chooser":
        return cls(lambda n: rng.randrange(n))

    def pick(self, options: Sequence) -> Any:
        return options[self.index(len(options))]


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return out
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


def _parent(data: Any, path: tuple) -> Any:
    for k in path[:-1]:
        data = data[k]
    return data


def _deep(levels: int = 100) -> list:
    x: list = []
    for _ in range(levels):
        x = [x]
    return x


def mutate_data(data: Any, choose: Chooser) -> Any:
    """One structural edit of a parsed workflow (returns a new object)."""
    data = copy.deepcopy(data)
    paths = _paths(data)
    op = choose.pick(("replace", "replace", "replace", "delete", "duplicate_node", "deep_value", "append"))
    if op == "duplicate_node":
        if isinstance(data.get("nodes"), list) and data["nodes"]:
            data["nodes"].append(copy.deepcopy(choose.pick(data["nodes"])))
        else:  # API format: a second id pointing to the same node is harmless; change a key to a clash
            keys = list(data)
            if len(keys) >= 2:
                a, b = choose.pick(keys), choose.pick(keys)
                data[a] = copy.deepcopy(data[b])
        return data
    if not paths:
        return HOSTILE[choose.index(len(HOSTILE))]
    path = choose.pick(paths)
    parent = _parent(data, path)
    if op == "delete":
        del parent[path[-1]]
    elif op == "deep_value":
        parent[path[-1]] = _deep(choose.pick((10, 70, 100)))
    elif op == "append" and isinstance(parent[path[-1]], list):
        parent[path[-1]].append(copy.deepcopy(choose.pick(HOSTILE)))
    else:
        parent[path[-1]] = copy.deepcopy(choose.pick(HOSTILE))
    return data


def mutate_text(data: Any, choose: Chooser) -> str:
    """A workflow file's text after one or two edits, some at the text level (truncation, repeated keys, deep nesting)."""
    op = choose.pick(("data", "data", "data", "data2", "truncate", "dup_key", "deep_file", "not_object"))
    if op == "data":
        return json.dumps(mutate_data(data, choose))
    if op == "data2":
        return json.dumps(mutate_data(mutate_data(data, choose), choose))
    text = json.dumps(data)
    if op == "truncate":
        return text[: choose.index(len(text))]
    if op == "dup_key":  # repeat the first top-level entry: json keeps the last copy silently
        first = next(iter(data))
        return "{" + json.dumps(first) + ": " + json.dumps(data[first]) + ", " + text[1:]
    if op == "deep_file":
        return "[" * 70000 + "]" * 70000
    return json.dumps(choose.pick(([], "workflow", 5, None, [data])))


def _ids_in(text: str) -> set[str]:
    """Node ids a refusal may name: those of the file (UI ``nodes[].id`` or API keys), as text."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return set()
    if not isinstance(data, dict):
        return set()
    if isinstance(data.get("nodes"), list):
        return {str(n.get("id")) for n in data["nodes"] if isinstance(n, dict)}
    prompt = data.get("prompt") if isinstance(data.get("prompt"), dict) else data
    return {str(k) for k in prompt}


def classify_message(message: str, ids: set[str]) -> str:
    m = re.match(r"node (\S+?)[: ]", message)
    if m and m.group(1) in ids:
        return "node_format"
    if "not a workflow" in message:
        return "not_a_workflow"
    return "bad_message"


def classify_validation(val, ids: set[str]) -> str:
    if val.ok:
        return "ok"
    if val.node_errors:
        return "node_errors" if all(str(k) in ids for k in val.node_errors) else "bad_message"
    return "no_outputs" if (val.error or {}).get("type") == "prompt_no_outputs" else "bad_message"


def check_cli(text: str, runtime, tmp: Path) -> tuple[str, str]:
    """What ``python -m nodes validate FILE`` does with this text: (outcome, message)."""
    from nodes.workflow import WorkflowFormatError
    path = tmp / "mutant.json"
    path.write_text(text, encoding="utf-8")
    ids = _ids_in(text)
    try:
        val = runtime.validate(path)
    except WorkflowFormatError as e:
        return classify_message(str(e), ids), str(e)
    except Exception as e:  # noqa: BLE001 - the point of the campaign
        return "traceback", "".join(traceback.format_exception_only(type(e), e)).strip()
    kind = classify_validation(val, ids)
    return kind, "" if val.ok else json.dumps(val.payload())[:300]


def check_demo(text: str, service) -> tuple[str, str]:
    """What the demo's Workflow tab does with this text ("Show graph / validate")."""
    from demo.service import DemoError
    ids = _ids_in(text)
    try:
        out = service.inspect_workflow(text)
    except DemoError as e:
        return classify_message(str(e), ids), str(e)
    except Exception as e:  # noqa: BLE001
        return "traceback", "".join(traceback.format_exception_only(type(e), e)).strip()
    if out.ok:
        return "ok", out.message
    m = re.search(r"node (\S+?) \(", out.message)
    return ("node_errors" if m and m.group(1) in ids else
            "no_outputs" if "no outputs" in out.message.lower() else "bad_message"), out.message


def bases() -> list[tuple[str, dict]]:
    """Every example workflow in UI format and as an API prompt."""
    from nodes.pack import NODE_CLASS_MAPPINGS
    from nodes.workflow import to_api
    out = []
    for p in sorted((REPO / "example_workflows").glob("*.json")):
        ui = json.loads(p.read_text())
        out.append((f"{p.stem}:ui", ui))
        out.append((f"{p.stem}:api", to_api(ui, NODE_CLASS_MAPPINGS)))
    return out


def campaign(count: int, seed: int, run: int = 0, demo: bool = False) -> dict:
    from nodes.runtime import Runtime
    rng = random.Random(seed)
    choose = Chooser.from_random(rng)
    rt = Runtime()
    service = None
    if demo:
        from demo.service import DemoService
        service = DemoService(cache_dir=tempfile.mkdtemp(prefix="vp-mutants-demo-"))
    counts = {k: 0 for k in OUTCOMES}
    demo_counts = {k: 0 for k in OUTCOMES}
    failures: list[dict] = []
    valid: list[str] = []
    all_bases = bases()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for i in range(count):
            name, base = all_bases[i % len(all_bases)]
            text = mutate_text(base, choose)
            kind, msg = check_cli(text, rt, tmp)
            counts[kind] += 1
            if kind in ("traceback", "bad_message"):
                failures.append({"i": i, "base": name, "where": "cli", "outcome": kind, "message": msg[:300]})
            if kind == "ok":
                valid.append(text)
            if service is not None:
                dk, dmsg = check_demo(text, service)
                demo_counts[dk] += 1
                if dk in ("traceback", "bad_message"):
                    failures.append({"i": i, "base": name, "where": "demo", "outcome": dk, "message": dmsg[:300]})
        ran = {"ran": 0, "ok": 0, "node_failed": 0, "traceback": 0}
        for text in valid[:run]:
            ran["ran"] += 1
            ran[_run_one(text, rt, tmp, failures)] += 1
    out = {"mutants": count, "seed": seed, "bases": len(all_bases), "validate": counts,
           "seconds": round(time.perf_counter() - t0, 1), "failures": failures[:20], "failure_count": len(failures)}
    if service is not None:
        out["demo"] = demo_counts
    if run:
        out["run"] = ran
    return out


def _run_one(text: str, rt, tmp: Path, failures: list) -> str:
    from nodes.errors import Interrupted, NodeExecutionError, WorkflowError
    from pruning_core.errors import VideoPruneError
    path = tmp / "run.json"
    path.write_text(text)
    try:
        rt.run(path)
        return "ok"
    except (NodeExecutionError, WorkflowError, Interrupted, VideoPruneError):
        return "node_failed"
    except Exception as e:  # noqa: BLE001
        failures.append({"where": "run", "outcome": "traceback", "message": repr(e)[:300]})
        return "traceback"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=400, help="mutants to try (default 400)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run", type=int, default=0, help="also run up to N mutants that validated")
    ap.add_argument("--demo", action="store_true", help="also feed every mutant to the demo's Workflow tab")
    args = ap.parse_args(argv)
    out = campaign(args.count, args.seed, args.run, args.demo)
    print(json.dumps(out, indent=1))
    return 1 if out["failure_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
