"""Run ComfyUI workflows headless: ``python -m nodes run WORKFLOW.json [--set NODE_ID.INPUT=VALUE ...] [--out DIR]``.

Writes every output node's results into ``--out``: ``answers.json`` (answer and summary per Answer
node), ``report_<id>.md`` (Report tables), PNG previews (Overlay frames, Report charts) and
``run.json`` (timings, cache use, runtime overhead). A workflow that fails validation prints
its node errors and exits 2; a node that fails exits 1; an interrupted run exits 130.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pruning_core.errors import VideoPruneError

from .context import REPO_ROOT
from .errors import Interrupted, NodeExecutionError, WorkflowError
from .workflow import WorkflowFormatError


def _print_errors(payload: dict, out=None) -> None:
    out = out or sys.stderr
    err = payload.get("error") or {}
    print(f"error: {err.get('message', 'invalid workflow')} [{err.get('type', '')}]", file=out)
    if err.get("type") != "prompt_outputs_failed_validation" and err.get("details"):
        print(f"  {err['details']}", file=out)
    for node_id, entry in (payload.get("node_errors") or {}).items():
        for e in entry.get("errors", []):
            details = f" ({e['details']})" if e.get("details") else ""
            print(f"  node {node_id} ({entry.get('class_type')}): {e['message']}{details} [{e['type']}]", file=out)


def _progress_printer(quiet: bool):
    def progress(event: str, data: dict) -> None:
        if quiet:
            return
        if event == "executing":
            print(f"[{data['step']}/{data['steps']}] node {data['node']} {data['class_type']} ...", file=sys.stderr,
                  flush=True)
        elif event == "executed":
            print(f"      node {data['node']} done in {data['ms']:.0f} ms", file=sys.stderr, flush=True)
        elif event == "cached":
            print(f"cached: node(s) {', '.join(data['nodes'])}", file=sys.stderr, flush=True)
    return progress


def _write_outputs(res, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    answers, written = {}, []
    for node_id, ui in res.ui.items():
        ct = res.prompt[node_id]["class_type"]
        if ct == "VideoPruneAnswer":
            row = (ui.get("videoprune") or [{}])[0]
            answers[node_id] = {"answer": (ui.get("text") or [""])[0], "summary": row}
        elif ct == "VideoPruneReport":
            path = out / f"report_{node_id}.md"
            path.write_text((ui.get("text") or [""])[0] + "\n")
            written.append(str(path))
        for im in ui.get("images", []):
            written.append(str(out / im.get("subfolder", "") / im["filename"]))
    if answers:
        (out / "answers.json").write_text(json.dumps(answers, indent=2))
        written.insert(0, str(out / "answers.json"))
    run = {"summary": res.summary(), "outputs": {k: _jsonable(v) for k, v in res.ui.items()}}
    (out / "run.json").write_text(json.dumps(run, indent=2))
    written.append(str(out / "run.json"))
    return {"answers": answers, "files": written}


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def cmd_run(args) -> int:
    from .runtime import Runtime
    out = Path(args.out)
    rt = Runtime(input_dirs=args.input_dir or [REPO_ROOT / "input"],
                 model_dirs=args.models_dir or [REPO_ROOT / "models" / "LLM"], output_dir=out)
    progress = _progress_printer(args.quiet)
    results = []
    try:
        for i in range(args.repeat):
            res = rt.run(args.workflow, overrides=args.set or [], progress=progress)
            results.append(res.summary())
            if not args.quiet:
                s = res.summary()
                print(f"run {i + 1}: {len(s['executed'])} executed, {len(s['cached'])} cached, "
                      f"{s['total_ms']:.1f} ms total, runtime overhead {s['overhead_ms']:.2f} ms "
                      f"({100 * s['overhead_share']:.3f}%)", file=sys.stderr)
    except WorkflowError as e:
        _print_errors(e.payload)
        if args.json:
            print(json.dumps(e.payload, indent=2))
        return 2
    except WorkflowFormatError as e:    # unreadable or not a workflow: refused like a bad graph
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"error: {e}", file=sys.stderr)
        return 130
    except (NodeExecutionError, VideoPruneError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    written = _write_outputs(res, out)
    if args.json:
        print(json.dumps({"runs": results, **written}, indent=2))
        return 0
    for node_id, a in written["answers"].items():
        row = a["summary"]
        print(f"node {node_id} answer: {a['answer']!r}  [{row.get('label', '')}: kept {row.get('retention', 0):.1%}, "
              f"TTFT {row.get('ttft_ms', 0):.1f} ms]")
    for node_id, ui in res.ui.items():
        if res.prompt[node_id]["class_type"] == "VideoPruneReport":
            print((ui.get("text") or [""])[0])
    print(f"wrote {len(written['files'])} file(s) to {out}")
    return 0


def cmd_validate(args) -> int:
    from .runtime import Runtime
    rt = Runtime(input_dirs=args.input_dir or [REPO_ROOT / "input"],
                 model_dirs=args.models_dir or [REPO_ROOT / "models" / "LLM"])
    try:
        val = rt.validate(args.workflow, args.set or [])
    except VideoPruneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not val.ok:
        _print_errors(val.payload())
        return 2
    print(f"ok: {len(val.outputs)} output node(s): {', '.join(val.outputs)}")
    return 0


def cmd_nodes(args) -> int:
    from .pack import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    for cid, cls in NODE_CLASS_MAPPINGS.items():
        print(f"{cid:28s} {NODE_DISPLAY_NAME_MAPPINGS.get(cid, cid):36s} {cls.CATEGORY}")
    return 0


def cmd_examples(args) -> int:
    from .examples import EXAMPLES, missing_methods, write_examples
    from .pack import NODE_CLASS_MAPPINGS
    written = write_examples(args.out, NODE_CLASS_MAPPINGS)
    for path in written:
        print(f"wrote {path}")
    if args.thumbnails:
        import tempfile

        from .runtime import Runtime
        from .thumbnails import write_thumbnails
        with tempfile.TemporaryDirectory() as tmp:
            rt = Runtime(output_dir=Path(tmp))
            for path in write_thumbnails(args.out, [p.stem for p in written], rt.run, tmp):
                print(f"wrote {path}")
    for name in EXAMPLES:
        missing = missing_methods(name)
        if missing:
            print(f"skipped {name}: method(s) not registered yet: {', '.join(missing)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nodes", description="Run VideoPrune ComfyUI workflows headless.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("workflow", help="workflow JSON (ComfyUI UI format or API prompt)")
        p.add_argument("--set", action="append", metavar="NODE_ID.INPUT=VALUE",
                       help="override an input (VALUE is JSON if it parses, else text); repeatable")
        p.add_argument("--input-dir", action="append", type=Path,
                       help="folder videos may be read from (default: ./input); repeatable")
        p.add_argument("--models-dir", action="append", type=Path,
                       help="folder of Video LLMs (default: ./models/LLM); repeatable")

    r = sub.add_parser("run", help="run a workflow and write its outputs")
    common(r)
    r.add_argument("--out", default="output", help="folder for answers, reports and images (default: ./output)")
    r.add_argument("--repeat", type=int, default=1, help="run N times (later runs are served from the cache)")
    r.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    r.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    r.set_defaults(fn=cmd_run)
    v = sub.add_parser("validate", help="validate a workflow without running it")
    common(v)
    v.set_defaults(fn=cmd_validate)
    n = sub.add_parser("nodes", help="list the node classes")
    n.set_defaults(fn=cmd_nodes)
    e = sub.add_parser("examples", help="write the example workflows (UI format)")
    e.add_argument("--out", default=str(REPO_ROOT / "example_workflows"))
    e.add_argument("--thumbnails", action="store_true",
                   help="also run each example headless and write <name>.jpg (the template browser's thumbnail)")
    e.set_defaults(fn=cmd_examples)
    args = ap.parse_args(argv)
    if getattr(args, "repeat", 1) < 1:
        ap.error("--repeat must be >= 1")
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
