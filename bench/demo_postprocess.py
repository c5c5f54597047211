"""The demo's post-processing after a Compare run reaches 100%: what the overlays cost to draw and to
encode for the browser (Gradio sends numpy images as WebP), before and after capping the all-frames
sheet (``demo.viewer.sheet_height``), and what the frame viewer, the timeline and the Pareto view cost.

    python bench/demo_postprocess.py                      # 64 frames, 6 methods at 10%, 5 repeats
    python bench/demo_postprocess.py --frames 16 --repeats 3

Runs one Compare graph on the built-in model (sample-1, one timing repeat), then times each step
``--repeats`` times and prints one JSON object: median and minimum seconds per step, the sheet's
size uncapped and capped. Wall times on a shared machine are noisy; compare ratios within one run.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METHODS = ("fastv", "sharp", "hieravid", "sharpv", "random", "uniform")


def _webp(img) -> int:
    """Bytes of ``img`` as WebP, the way Gradio encodes a numpy image (PIL defaults)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "webp")
    return len(buf.getvalue())


def _time(fn, repeats: int) -> dict:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(ts), 4), "min_s": round(min(ts), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--retention", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    from demo import compare, viewer
    from demo.service import DemoService
    svc = DemoService("builtin", tempfile.mkdtemp(prefix="videoprune-bench-"), device="cpu")
    q = svc.sample_clip("sample-1", args.frames).question
    s = svc.settings("sample-1", None, q, args.methods.split(","), args.retention, args.frames, 2, repeats=1)
    cg, ui, _ = svc.compare_workflow(s)
    res = svc._run(ui, None)
    rows = compare.run_rows(cg, res.outputs, svc.known_answer(s))
    n_runs = len(rows)

    def sheet(height: int):
        return compare.overlay_sheet(compare.overlay_rows(cg, res.outputs, rows, height=height))

    capped_h = viewer.sheet_height(n_runs, args.frames)
    before, after = sheet(compare.THUMB_H), sheet(capped_h)
    vw = viewer.collect(cg, res.outputs)
    mid = vw.num_frames // 2
    view = viewer.frame_view(vw, mid)
    out = {
        "benchmark": "demo_postprocess", "frames": args.frames, "runs": n_runs, "methods": args.methods,
        "repeats": args.repeats,
        "sheet_uncapped": {"thumb_h": compare.THUMB_H, "shape": list(before.shape[:2]),
                           "megapixels": round(before.shape[0] * before.shape[1] / 1e6, 2),
                           "build": _time(lambda: sheet(compare.THUMB_H), args.repeats),
                           "webp": _time(lambda: _webp(before), args.repeats), "webp_bytes": _webp(before)},
        "sheet_capped": {"thumb_h": capped_h, "shape": list(after.shape[:2]),
                         "megapixels": round(after.shape[0] * after.shape[1] / 1e6, 2),
                         "build": _time(lambda: sheet(capped_h), args.repeats),
                         "webp": _time(lambda: _webp(after), args.repeats), "webp_bytes": _webp(after)},
        "frame_view": {"shape": list(view.shape[:2]), "draw": _time(lambda: viewer.frame_view(vw, mid), args.repeats),
                       "webp": _time(lambda: _webp(view), args.repeats)},
        "timeline_chart": _time(lambda: viewer.timeline_chart(vw, mid), args.repeats),
        "pareto_chart": _time(lambda: viewer.pareto_chart(rows), args.repeats),
    }
    scores = viewer.record_scores(svc.adapter, vw)
    out["record_scores"] = _time(lambda: viewer.record_scores(svc.adapter, vw), max(1, args.repeats // 2))
    out["heat_view"] = _time(lambda: viewer.frame_view(vw, mid, heat=viewer.heat_for(scores)), args.repeats)
    u, c = out["sheet_uncapped"]["webp"]["min_s"], out["sheet_capped"]["webp"]["min_s"]
    out["sheet_webp_speedup"] = round(u / c, 2) if c else None
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
