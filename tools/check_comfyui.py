"""Check the node pack inside a real ComfyUI and print a JSON summary.

    python tools/check_comfyui.py --comfy /path/to/ComfyUI --python /path/to/comfy-venv/bin/python
    python tools/check_comfyui.py --comfy DIR --python PY --url http://127.0.0.1:8188   # server already up
    python tools/check_comfyui.py --comfy DIR --python PY --screenshots /tmp/comfy_shots  # + a browser look

What it does:
1. links this checkout into ``custom_nodes/ComfyUI-VideoPrune``, starts ComfyUI on CPU (a free
   port, log in ``--log``) and reads the log: the pack imported, no traceback through the pack;
2. ``/object_info``: every node class of the pack is there with its display name, a
   ``VideoPrune/...`` category, a tooltip on every input and sane widget ranges, next to ComfyUI's
   own core nodes (so the pack did not shadow ComfyUI's ``nodes`` module); ``/extensions`` lists
   the pack's JS files and each one is served;
3. converts every ``example_workflows/*.json`` with the pack's own converter, queues it on
   ``/prompt``, polls ``/history`` and checks the outputs (answers, overlay and report images
   fetched through ``/view``, report rows); queues one prompt that feeds a core ComfyUI node;
   queues invalid prompts and checks that ComfyUI's own validation answers with the expected
   ``node_errors`` (one error, on the right input).
With ``--screenshots DIR`` it also opens the editor in headless Chromium (Playwright), loads an
example, checks that the frontend's own ``graphToPrompt`` gives the prompt our converter gave, runs
it and saves screenshots; the summary says whether the result panels and images appeared and
whether any nodes overlap.

The model is the built-in one when it is installed, else a tiny random LLaVA-OneVision saved
from ``tests/tiny_models.py`` into ComfyUI's ``models/LLM/tiny-llava`` (``--model`` overrides).
Only the standard library is needed here; everything that imports the pack or torch runs in
ComfyUI's interpreter (``--python``). Exit status 0 when every check passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK_DIR_NAME = "ComfyUI-VideoPrune"
PREFIX = "VideoPrune"
CORE_NODES = ("KSampler", "CheckpointLoaderSimple", "PreviewImage", "SaveImage", "LoadImage")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_MODEL = "tiny-llava"


class Problems(list):
    def add(self, where: str, what: str) -> None:
        self.append(f"{where}: {what}")


# ---------------------------------------------------------------- HTTP

class Server:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get(self, path: str, timeout: float = 60) -> tuple[int, bytes, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def get_json(self, path: str, timeout: float = 60):
        status, body, _ = self.get(path, timeout)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        return json.loads(body)

    def post_json(self, path: str, payload: dict, timeout: float = 60) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except ValueError:
                return e.code, {"raw": body.decode(errors="replace")[:500]}

    def up(self) -> bool:
        try:
            return self.get("/", timeout=5)[0] == 200
        except (OSError, urllib.error.URLError):
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the pack, seen from ComfyUI's interpreter

PACK_INFO_CODE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from nodes.pack import NODE_CLASS_MAPPINGS as M, NODE_DISPLAY_NAME_MAPPINGS as D
from nodes.workflow import load_json, to_api
out = {"classes": {k: {"display_name": D.get(k), "category": c.CATEGORY,
                       "output_node": bool(getattr(c, "OUTPUT_NODE", False)), "return_types": list(c.RETURN_TYPES)}
                   for k, c in M.items()},
       "workflows": {}}
for path in sys.argv[2:]:
    out["workflows"][path] = to_api(load_json(path), M)
print(json.dumps(out))
"""

TINY_MODEL_CODE = r"""
import sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/tests")
from tiny_models import tiny_llava
model, tok = tiny_llava()
model.save_pretrained(sys.argv[2], safe_serialization=True)
tok.save_pretrained(sys.argv[2])
"""


def run_py(python: str, code: str, *args: str, timeout: float = 600) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    r = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=str(REPO),
                       env=env)
    if r.returncode != 0:
        last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit status {r.returncode}"
        raise RuntimeError(f"{python} failed: {last}")
    return r.stdout


def choose_model(args, problems: Problems) -> str:
    if args.model:
        return args.model
    if (REPO / "pruning_core" / "builtin" / "tiny-llava-ov" / "config.json").is_file():
        return "builtin"
    folder = Path(args.comfy) / "models" / "LLM" / TINY_MODEL
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            run_py(args.python, TINY_MODEL_CODE, str(REPO), str(folder))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            problems.add("model", f"could not save the tiny test model: {e}")
    return TINY_MODEL


# ---------------------------------------------------------------- step 1: link, start, read the log

def link_pack(comfy: Path, problems: Problems) -> dict:
    link = comfy / "custom_nodes" / PACK_DIR_NAME
    if link.is_symlink() or not link.exists():
        if link.is_symlink() and Path(os.readlink(link)).resolve() != REPO:
            link.unlink()
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
    elif link.resolve() != REPO:
        problems.add("link", f"{link} is a real folder, not this checkout; checking that copy instead")
    return {"path": str(link), "target": str(link.resolve())}


def start_comfy(args, port: int) -> subprocess.Popen:
    log = open(args.log, "w")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([args.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port)],
                            cwd=args.comfy, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_up(server: Server, proc: subprocess.Popen | None, timeout: float) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if server.up():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(2)
    return False


def _tracebacks(text: str) -> list[str]:
    """Each Python traceback in the log: the header, its indented frame lines and the exception line."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("Traceback (most recent call last):"):
            j = i + 1
            while j < len(lines) and lines[j].startswith(" "):
                j += 1
            out.append("\n".join(lines[i:j + 1]))
            i = j
        i += 1
    return out


def read_log(text: str, problems: Problems) -> dict:
    """What ComfyUI's log says about the pack: its import-time line, failures, tracebacks through it."""
    import_line = next((ln.strip() for ln in text.splitlines()
                        if re.match(r"\s*[\d.]+ seconds( \(IMPORT FAILED\))?:", ln) and PACK_DIR_NAME in ln), None)
    failed = [ln.strip() for ln in text.splitlines() if PACK_DIR_NAME in ln
              and ("IMPORT FAILED" in ln or "Cannot import" in ln)]
    tracebacks = [tb for tb in _tracebacks(text) if str(REPO) in tb or f"/{PACK_DIR_NAME}/" in tb]
    if import_line is None:
        problems.add("log", "no import-time line for the pack (was it loaded?)")
    if failed:
        problems.add("log", "; ".join(failed))
    for tb in tracebacks:
        problems.add("log", "traceback through the pack: " + tb.strip().splitlines()[-1])
    return {"import_line": import_line, "import_failed": failed, "pack_tracebacks": len(tracebacks),
            "other_import_failures": sorted({m for m in re.findall(r"IMPORT FAILED: (\S+)", text)})}


# ---------------------------------------------------------------- step 2: object_info, extensions

def check_inputs(name: str, info: dict, problems: Problems) -> int:
    n = 0
    for section in ("required", "optional"):
        for inp, spec in (info.get("input", {}).get(section) or {}).items():
            n += 1
            where = f"object_info {name}.{inp}"
            typ = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if not opts.get("tooltip"):
                problems.add(where, "no tooltip")
            if typ in ("INT", "FLOAT"):
                lo, hi, default = opts.get("min"), opts.get("max"), opts.get("default")
                if lo is None or hi is None or default is None or not lo <= default <= hi:
                    problems.add(where, f"range/default not sane: min={lo} default={default} max={hi}")
                if not opts.get("step"):
                    problems.add(where, "no step")
            elif isinstance(typ, list):
                if not typ:
                    problems.add(where, "empty choice list")
                elif opts.get("default") is not None and opts["default"] not in typ:
                    problems.add(where, f"default {opts['default']!r} not among the choices")
    return n


def check_object_info(server: Server, pack: dict, problems: Problems) -> dict:
    oi = server.get_json("/object_info", timeout=120)
    ours = {k: v for k, v in oi.items() if k.startswith(PREFIX)}
    expected = pack["classes"]
    missing = sorted(set(expected) - set(ours))
    extra = sorted(set(ours) - set(expected))
    if missing:
        problems.add("object_info", f"missing node classes: {', '.join(missing)}")
    if extra:
        problems.add("object_info", f"unexpected {PREFIX} classes: {', '.join(extra)}")
    core_missing = [c for c in CORE_NODES if c not in oi]
    if core_missing:
        problems.add("object_info", f"ComfyUI core nodes missing (shadowed `nodes`?): {', '.join(core_missing)}")
    n_inputs = 0
    categories = set()
    for name, info in ours.items():
        exp = expected.get(name, {})
        categories.add(info.get("category"))
        if not str(info.get("category", "")).startswith(PREFIX + "/"):
            problems.add(f"object_info {name}", f"category {info.get('category')!r} is not under {PREFIX}/")
        if exp and info.get("display_name") != exp["display_name"]:
            problems.add(f"object_info {name}", f"display name {info.get('display_name')!r} != {exp['display_name']!r}")
        if exp and bool(info.get("output_node")) != exp["output_node"]:
            problems.add(f"object_info {name}", "OUTPUT_NODE differs from the pack")
        if not info.get("description"):
            problems.add(f"object_info {name}", "no description")
        if PACK_DIR_NAME not in str(info.get("python_module", "")):
            problems.add(f"object_info {name}", f"python_module {info.get('python_module')!r}")
        n_inputs += check_inputs(name, info, problems)
    return {"classes_total": len(oi), "videoprune_classes": len(ours), "expected": len(expected),
            "missing": missing, "inputs_checked": n_inputs, "categories": sorted(c for c in categories if c),
            "core_nodes_present": [c for c in CORE_NODES if c in oi]}


def check_extensions(server: Server, problems: Problems) -> dict:
    listed = [p for p in server.get_json("/extensions") if f"/{PACK_DIR_NAME}/" in p]
    shipped = sorted(p.name for p in (REPO / "web").glob("*.js"))
    served = {}
    for path in listed:
        status, body, ctype = server.get(urllib.parse.quote(path))
        served[path] = status
        if status != 200 or "javascript" not in ctype or not body.strip():
            problems.add("extensions", f"{path} answered {status} ({ctype}, {len(body)} bytes)")
    names = sorted(p.rsplit("/", 1)[-1] for p in listed)
    if names != shipped:
        problems.add("extensions", f"listed {names}, shipped {shipped}")
    return {"listed": listed, "served": served}


# ---------------------------------------------------------------- step 3: run workflows, validation

def use_model(prompt: dict, model: str) -> dict:
    for node in prompt.values():
        if node.get("class_type") == f"{PREFIX}LoadModel":
            node["inputs"]["model"] = model
            node["inputs"]["path_or_hub_id"] = ""
    return prompt


def queue(server: Server, prompt: dict) -> tuple[int, dict]:
    return server.post_json("/prompt", {"prompt": prompt, "client_id": "videoprune-check"})


def wait_history(server: Server, prompt_id: str, timeout: float) -> dict | None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        hist = server.get_json(f"/history/{prompt_id}")
        entry = hist.get(prompt_id)
        if entry and (entry.get("status") or {}).get("completed") is not None \
                and entry["status"].get("status_str") in ("success", "error"):
            return entry
        time.sleep(1.5)
    return None


def fetch_image(server: Server, im: dict) -> bool:
    q = urllib.parse.urlencode({"filename": im["filename"], "subfolder": im.get("subfolder", ""),
                                "type": im.get("type", "output")})
    status, body, _ = server.get(f"/view?{q}")
    return status == 200 and body.startswith(PNG_MAGIC)


def run_prompt(server: Server, name: str, prompt: dict, timeout: float, problems: Problems) -> dict:
    t0 = time.time()
    status, resp = queue(server, prompt)
    if status != 200 or resp.get("node_errors"):
        problems.add(name, f"queue answered {status}: {json.dumps(resp)[:300]}")
        return {"ok": False, "queued": status}
    entry = wait_history(server, resp["prompt_id"], timeout)
    out = {"prompt_id": resp["prompt_id"], "seconds": round(time.time() - t0, 1)}
    if entry is None:
        problems.add(name, f"not finished after {timeout:.0f} s")
        return {**out, "ok": False}
    out["status"] = entry["status"]["status_str"]
    if out["status"] != "success":
        err = next((m[1] for m in entry["status"].get("messages", []) if m[0] == "execution_error"), {})
        problems.add(name, f"execution failed in node {err.get('node_id')} ({err.get('node_type')}): "
                           f"{err.get('exception_message', '').strip()[:300]}")
        return {**out, "ok": False}
    outputs = entry.get("outputs", {})
    answers, images, reports = {}, {}, {}
    n_problems = len(problems)
    for node_id, node in prompt.items():
        ct = node["class_type"]
        ui = outputs.get(node_id)
        if ct in (f"{PREFIX}Answer", f"{PREFIX}Overlay", f"{PREFIX}Report") and ui is None:
            problems.add(name, f"no output from node {node_id} ({ct})")
            continue
        if ct == f"{PREFIX}Answer":
            text = (ui.get("text") or [None])[0]
            row = (ui.get("videoprune") or [{}])[0]
            answers[node_id] = text
            if not isinstance(text, str) or not text.strip():
                problems.add(name, f"Answer {node_id} has no answer text")
            if not 0 < float(row.get("retention", 0)) <= 1 or float(row.get("ttft_ms", 0)) <= 0:
                problems.add(name, f"Answer {node_id} summary looks wrong: {json.dumps(row)[:200]}")
        elif ct in (f"{PREFIX}Overlay", f"{PREFIX}Report", "PreviewImage"):
            ims = (ui.get("images") or []) if ui else []
            bad = [im["filename"] for im in ims if not fetch_image(server, im)]
            images[node_id] = {"count": len(ims), "unreadable": bad}
            if not ims or bad:
                problems.add(name, f"{ct} {node_id}: {len(ims)} image(s), unreadable: {bad[:3]}")
            if ct == f"{PREFIX}Report":
                table = (ui.get("text") or [""])[0]
                runs = sum(1 for k in node["inputs"] if k.startswith("result_"))
                rows = [ln for ln in table.splitlines() if ln.startswith("|")][2:]
                reports[node_id] = {"rows": len(rows), "runs": runs}
                if len(rows) != runs:
                    problems.add(name, f"Report {node_id} has {len(rows)} rows for {runs} runs")
    return {**out, "ok": len(problems) == n_problems, "answers": answers, "images": images, "reports": reports}


def _small_graph(model: str) -> dict:
    return {"1": {"class_type": f"{PREFIX}LoadModel",
                  "inputs": {"model": model, "device": "cpu", "dtype": "auto", "attention": "auto",
                             "path_or_hub_id": ""}},
            "2": {"class_type": f"{PREFIX}LoadVideo", "inputs": {"video": "sample-0", "num_frames": 4, "max_side": 0}},
            "3": {"class_type": f"{PREFIX}Uniform", "inputs": {"retention": 0.5}},
            "4": {"class_type": f"{PREFIX}Answer",
                  "inputs": {"model": ["1", 0], "frames": ["2", 0], "question": ["2", 2], "max_new_tokens": 4,
                             "plan": ["3", 0]}}}


def core_interop_prompt(model: str) -> dict:
    """Our Overlay's IMAGE into ComfyUI's own PreviewImage: the pack's wires work with core nodes."""
    g = _small_graph(model)
    g["5"] = {"class_type": f"{PREFIX}Overlay", "inputs": {"result": ["4", 1], "stage": -1, "dim": 0.3}}
    g["6"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    return g


def invalid_cases(model: str, object_info: dict) -> list[tuple[str, dict, str, str, str]]:
    """(name, prompt, node id, expected error type, expected input name); every output depends on the bad node."""
    cases = []

    def case(name, edit, node, typ, inp):
        g = _small_graph(model)
        edit(g)
        cases.append((name, g, node, typ, inp))

    case("retention above max", lambda g: g["3"]["inputs"].update(retention=1.5), "3", "value_bigger_than_max",
         "retention")
    case("max_new_tokens below min", lambda g: g["4"]["inputs"].update(max_new_tokens=0), "4",
         "value_smaller_than_min", "max_new_tokens")
    case("video not in list", lambda g: g["2"]["inputs"].update(video="no-such-clip"), "2", "value_not_in_list",
         "video")
    case("plan fed by an IMAGE", lambda g: g["4"]["inputs"].update(plan=["2", 0]), "4", "return_type_mismatch", "plan")
    # a stage with a text widget where "auto" stands for a number: its own VALIDATE_INPUTS checks it
    auto = next(((cls, inp) for cls, info in sorted(object_info.items()) if cls.startswith(PREFIX)
                 for inp, spec in (info["input"].get("required") or {}).items()
                 if spec[0] == "STRING" and len(spec) > 1 and spec[1].get("default") == "auto"
                 and "plan" in (info["input"].get("optional") or {})), None)
    if auto is not None:
        cls, inp = auto

        def bad_auto(g):
            req = object_info[cls]["input"]["required"]
            g["3"] = {"class_type": cls, "inputs": {k: v[1].get("default", v[0][0] if isinstance(v[0], list) else None)
                                                    for k, v in req.items()}}
            g["3"]["inputs"][inp] = "lots"
        case(f"{cls}.{inp} is neither auto nor a number", bad_auto, "3", "custom_validation_failed", inp)
    return cases


def check_invalid(server: Server, model: str, object_info: dict, problems: Problems) -> list[dict]:
    out = []
    for name, prompt, node, typ, inp in invalid_cases(model, object_info):
        status, resp = queue(server, prompt)
        errors = ((resp.get("node_errors") or {}).get(node) or {}).get("errors", [])
        got = [(e.get("type"), (e.get("extra_info") or {}).get("input_name")) for e in errors]
        ok = status == 400 and got == [(typ, inp)] and set(resp.get("node_errors") or {}) == {node}
        if not ok:
            problems.add(f"validation: {name}",
                         f"HTTP {status}, node_errors {json.dumps(resp.get('node_errors'))[:400]}")
        out.append({"case": name, "http": status, "node": node, "errors": [
            {"type": e.get("type"), "input": (e.get("extra_info") or {}).get("input_name"), "details": e.get("details")}
            for e in errors], "ok": ok})
    return out


# ---------------------------------------------------------------- optional: a look in the browser

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
FIT_VIEW_JS = """() => { const c = window.app.canvas; const ns = window.app.graph._nodes;
  let x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
  for (const n of ns) { x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 30);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]); }
  const W = c.canvas.width / devicePixelRatio, H = c.canvas.height / devicePixelRatio;
  const s = Math.min((W - 80) / (x1 - x0), (H - 80) / (y1 - y0), 1.2);
  c.ds.scale = s; c.ds.offset = [40 / s - x0, 40 / s - y0]; c.setDirty(true, true); }"""
NODE_VIEW_JS = """(id) => { const c = window.app.canvas; const n = window.app.graph.getNodeById(id);
  c.ds.scale = 1.2; c.ds.offset = [60 / 1.2 - n.pos[0], 80 / 1.2 - n.pos[1]]; c.setDirty(true, true); }"""
NODES_JS = """() => window.app.graph._nodes.map(n => ({id: n.id, type: n.type, pos: [...n.pos], size: [...n.size],
  panel: ((n.widgets || []).find(w => w.name === "videoprune_panel")?.element?.innerText || "").slice(0, 400),
  images: (n.imgs || []).length}))"""


def overlaps(nodes: list[dict]) -> list[list[int]]:
    boxes = [(n["id"], n["pos"][0], n["pos"][1] - 30, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in nodes]
    return [[a[0], b[0]] for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]


def _core(prompt: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in prompt.items()}


def browser_look(server: Server, workflow_path: Path, converted: dict, model: str, shots: Path, chromium: str,
                 timeout: float, problems: Problems) -> dict:
    """Open the editor, load the workflow, compare the frontend's own prompt with ``converted`` (our
    converter's), run it, and look at what the nodes show."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problems.add("browser", "playwright is not installed in this interpreter")
        return {}
    shots.mkdir(parents=True, exist_ok=True)
    wf = json.loads(workflow_path.read_text())
    for n in wf["nodes"]:
        if n["type"] == f"{PREFIX}LoadModel":
            n["widgets_values"][0] = model
    stem, errors, saved = workflow_path.stem, [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1900, "height": 1300})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_function("window.app && window.app.graph", timeout=120_000)
        page.wait_for_timeout(3000)
        page.keyboard.press("Escape")  # the first-run templates dialog
        extension = page.evaluate("() => (window.app.extensions || []).some(e => e.name === 'VideoPrune.Display')")
        page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", wf)
        page.wait_for_timeout(1500)
        frontend_prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
        page.keyboard.press("Escape")
        page.evaluate(FIT_VIEW_JS)
        page.wait_for_timeout(800)
        saved.append(str(shots / f"{stem}_loaded.png"))
        page.screenshot(path=saved[-1])
        before = len(server.get_json("/history"))
        page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
        t0 = time.time()
        while time.time() - t0 < timeout:
            q = server.get_json("/queue")
            if len(server.get_json("/history")) > before and not q["queue_running"] and not q["queue_pending"]:
                break
            time.sleep(2)
        page.wait_for_timeout(2500)
        page.evaluate(FIT_VIEW_JS)
        page.wait_for_timeout(1000)
        saved.append(str(shots / f"{stem}_done.png"))
        page.screenshot(path=saved[-1])
        nodes = page.evaluate(NODES_JS)
        for n in nodes:
            if n["type"] in (f"{PREFIX}Answer", f"{PREFIX}Report", f"{PREFIX}Overlay"):
                page.evaluate(NODE_VIEW_JS, n["id"])
                page.wait_for_timeout(600)
                saved.append(str(shots / f"{stem}_node{n['id']}.png"))
                page.screenshot(path=saved[-1])
        browser.close()
    answers = [n for n in nodes if n["type"] == f"{PREFIX}Answer"]
    overlay = [n for n in nodes if n["type"] == f"{PREFIX}Overlay"]
    no_panel = [n["id"] for n in answers if "time to first token" not in n["panel"]]
    no_images = [n["id"] for n in overlay if not n["images"]]
    crossed = overlaps(nodes)
    same_prompt = _core(frontend_prompt) == _core(converted)
    if not same_prompt:
        problems.add("browser", "the frontend's graphToPrompt differs from the pack's converter for "
                                f"{stem}: {json.dumps(_core(frontend_prompt))[:300]}")
    if not extension:
        problems.add("browser", "the VideoPrune.Display extension is not registered in the page")
    if no_panel:
        problems.add("browser", f"Answer node(s) {no_panel} show no answer/timing panel")
    if no_images:
        problems.add("browser", f"Overlay node(s) {no_images} show no images")
    if crossed:
        problems.add("browser", f"nodes overlap after the run: {crossed}")
    for e in errors:
        problems.add("browser", f"page error: {e[:200]}")
    return {"workflow": stem, "extension_registered": extension, "converter_matches_frontend": same_prompt,
            "screenshots": saved,
            "answer_panels": {n["id"]: n["panel"].splitlines()[0] if n["panel"] else "" for n in answers},
            "overlay_images": {n["id"]: n["images"] for n in overlay}, "overlapping_nodes": crossed,
            "page_errors": errors}


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfy", required=True, help="ComfyUI checkout (holds main.py and custom_nodes/)")
    ap.add_argument("--python", required=True, help="ComfyUI's Python interpreter (its venv)")
    ap.add_argument("--url", help="use this running ComfyUI instead of starting one (the pack must be loaded)")
    ap.add_argument("--port", type=int, default=0, help="port for the ComfyUI started here (default: a free one)")
    ap.add_argument("--log", default="/tmp/check_comfyui.log", help="ComfyUI's log file (when started here)")
    ap.add_argument("--model", help="model name for the Load Video LLM nodes (default: builtin, else a tiny model)")
    ap.add_argument("--workflows", nargs="*", help="workflow files (default: example_workflows/*.json)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed per workflow run")
    ap.add_argument("--screenshots", help="also look at it in headless Chromium and save screenshots here")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium binary for --screenshots")
    ap.add_argument("--browser-workflow", default="sharp_vs_fastv",
                    help="which workflow (file stem) to open in the browser (default: sharp_vs_fastv, else the first)")
    ap.add_argument("--keep-running", action="store_true", help="leave the ComfyUI started here running")
    args = ap.parse_args(argv)
    args.comfy = str(Path(args.comfy).resolve())
    problems = Problems()
    summary: dict = {"comfy": args.comfy, "repo": str(REPO)}
    if not (Path(args.comfy) / "main.py").is_file():
        print(json.dumps({**summary, "ok": False, "problems": [f"{args.comfy} has no main.py"]}, indent=2))
        return 1

    summary["link"] = link_pack(Path(args.comfy), problems)
    workflows = ([Path(w).resolve() for w in args.workflows] if args.workflows
                 else sorted((REPO / "example_workflows").glob("*.json")))
    try:
        pack = json.loads(run_py(args.python, PACK_INFO_CODE, str(REPO), *map(str, workflows)))
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        print(json.dumps({**summary, "ok": False, "problems": [f"pack: {e}"]}, indent=2))
        return 1
    model = choose_model(args, problems)
    summary["model"] = model

    proc = None
    if args.url:
        server = Server(args.url)
    else:
        port = args.port or free_port()
        server = Server(f"http://127.0.0.1:{port}")
        proc = start_comfy(args, port)
        summary["started"] = {"pid": proc.pid, "port": port, "log": args.log}
    try:
        t0 = time.time()
        if not wait_up(server, proc, timeout=300):
            problems.add("server", f"ComfyUI did not come up at {server.url}" + (f"; see {args.log}" if proc else ""))
            if proc is not None:
                summary["log"] = read_log(Path(args.log).read_text(errors="replace"), problems)
            return finish(summary, problems)
        summary["startup_s"] = round(time.time() - t0, 1)
        if proc is not None:
            time.sleep(1)
            summary["log"] = read_log(Path(args.log).read_text(errors="replace"), problems)
        summary["object_info"] = check_object_info(server, pack, problems)
        summary["extensions"] = check_extensions(server, problems)
        summary["workflows"] = {}
        for path in workflows:
            prompt = use_model(pack["workflows"][str(path)], model)
            summary["workflows"][path.stem] = run_prompt(server, path.stem, prompt, args.timeout, problems)
        summary["core_interop"] = run_prompt(server, "core interop", core_interop_prompt(model), args.timeout, problems)
        summary["validation"] = check_invalid(server, model, server.get_json("/object_info", timeout=120), problems)
        if args.screenshots and workflows:
            shown = next((w for w in workflows if w.stem == args.browser_workflow), workflows[0])
            summary["browser"] = browser_look(server, shown, pack["workflows"][str(shown)], model,
                                              Path(args.screenshots), args.chromium, args.timeout, problems)
    except (OSError, RuntimeError, ValueError) as e:
        problems.add("check", f"{type(e).__name__}: {e}")
    finally:
        if proc is not None and not args.keep_running:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return finish(summary, problems)


def finish(summary: dict, problems: Problems) -> int:
    summary["ok"] = not problems
    summary["problems"] = list(problems)
    print(json.dumps(summary, indent=2))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
