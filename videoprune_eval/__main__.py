"""``python -m videoprune_eval {export,register,status}``: set up the offline lmms-eval task.

* ``export``   writes the task's mp4 + jsonl files (deterministic; the same bytes every time).
* ``register`` makes ``--tasks videoprune_synthetic`` resolve without ``--include_path``. lmms-eval
  0.7.3 discovers external *models* through the ``lmms_eval.models`` entry-point group, but finds
  *tasks* only in its own ``lmms_eval/tasks/`` folder, in ``--include_path`` folders, and (deprecated)
  through ``LMMS_EVAL_PLUGINS``, whose task folders its CLI adds after the task index is built, so
  they are not found. ``register`` therefore writes one two-line YAML into ``lmms_eval/tasks/videoprune/``
  that includes this repository's task YAML (nothing of lmms-eval is changed; ``--unregister`` removes it).
* ``status``   prints where the model, the task and its data are.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

POINTER_DIR = "videoprune"


def task_yaml() -> Path:
    return Path(__file__).resolve().parent / "tasks" / "videoprune_synthetic" / "videoprune_synthetic.yaml"


def _lmms_tasks_dir() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: lmms-eval is not installed here; run python install.py --standalone --eval")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


def pointer_text() -> str:
    return ("# Written by `python -m videoprune_eval register`: the task lives in the VideoPrune repository.\n"
            f"task: videoprune_synthetic\ninclude: {task_yaml()}\n")


def cmd_register(args) -> int:
    d = _lmms_tasks_dir() / POINTER_DIR
    f = d / "videoprune_synthetic.yaml"
    if args.unregister:
        if f.exists():
            f.unlink()
        if d.exists() and not any(d.iterdir()):
            d.rmdir()
        print(f"removed {f}")
        return 0
    d.mkdir(parents=True, exist_ok=True)
    f.write_text(pointer_text())
    print(f"{f} -> {task_yaml()}")
    return 0


def cmd_export(args) -> int:
    from .synthetic_task import DATA_DIR, VIDEOS, export
    out = export(args.out or DATA_DIR, videos=args.videos or VIDEOS, force=args.force)
    m = json.loads((out / "manifest.json").read_text())
    print(f"{out}: {m['videos']} videos, {m['questions']} questions")
    return 0


def cmd_status(args) -> int:
    from importlib.metadata import entry_points
    from .synthetic_task import DATA_DIR
    eps = [f"{e.name} = {e.value}" for e in entry_points().select(group="lmms_eval.models")]
    info = {"entry_points": eps, "task_yaml": str(task_yaml()), "data": str(DATA_DIR),
            "data_exported": (DATA_DIR / "manifest.json").is_file()}
    try:
        info["registered_task"] = str(_lmms_tasks_dir() / POINTER_DIR / "videoprune_synthetic.yaml")
        info["task_registered"] = Path(info["registered_task"]).is_file()
    except SystemExit:
        info["task_registered"] = False
    print(json.dumps(info, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m videoprune_eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write the videoprune_synthetic mp4 + jsonl files")
    e.add_argument("--out", default=None, help="folder (default: the task's data/ folder)")
    e.add_argument("--videos", type=int, default=None, help="number of videos (3 questions each; default 100)")
    e.add_argument("--force", action="store_true", help="rewrite even when a complete export is there")
    e.set_defaults(fn=cmd_export)
    r = sub.add_parser("register", help="make --tasks videoprune_synthetic resolve without --include_path")
    r.add_argument("--unregister", action="store_true")
    r.set_defaults(fn=cmd_register)
    s = sub.add_parser("status", help="print where the model entry point, the task and its data are")
    s.set_defaults(fn=cmd_status)
    args = p.parse_args(argv)
    if getattr(args, "videos", None) is not None and args.videos < 1:
        print("error: --videos must be at least 1", file=sys.stderr)
        return 2
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
