"""How soon does a running workflow stop when interrupted? Prints JSON.

    python bench/interrupt_latency.py [--frames 80] [--size 1280x720] [--trials 4]

A Load Video → Answer workflow (built-in model) on a long, full-resolution clip written to a temp
folder. Two measurements:

* ``poll_gaps``: one uninterrupted run (after a warm-up run, so first imports are not counted) in
  which every interrupt poll (between nodes, frames, layers and tokens) is time-stamped; the longest
  gap between two polls is the worst latency any interrupt could see, wherever in the run it lands
  (``max_gap_s``; ``longest_gaps`` names the node running during each).
* ``trials``: real interrupts at spread-out moments of fresh runs; the time from ``interrupt()``
  to the run raising ``Interrupted``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


class PollClock(threading.Event):
    """An interrupt flag that time-stamps every poll (``is_set``) with the node running then."""

    def __init__(self):
        super().__init__()
        self.polls: list[tuple[float, str]] = []
        self.where = "start"

    def is_set(self) -> bool:
        self.polls.append((time.perf_counter(), self.where))
        return super().is_set()


def workflow(video: str, frames: int) -> dict:
    return {"1": {"class_type": "VideoPruneLoadModel", "inputs": {"model": "builtin", "device": "cpu",
                                                                  "dtype": "fp32", "attention": "auto"}},
            "2": {"class_type": "VideoPruneLoadVideo", "inputs": {"video": "sample-0", "num_frames": frames,
                                                                  "max_side": 0, "path": video}},
            "3": {"class_type": "VideoPruneAnswer", "inputs": {"model": ["1", 0], "frames": ["2", 0],
                                                               "question": "what colour is the circle ?",
                                                               "max_new_tokens": 8}}}


def write_clip(path: Path, frames: int, w: int, h: int) -> None:
    import cv2
    import numpy as np
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for i in range(frames):
        vw.write(np.roll(base, 7 * i, axis=1))
    vw.release()


def poll_gaps(rt, wf: dict) -> dict:
    from nodes.runtime import Runtime  # noqa: F401  (rt is one)
    clock = PollClock()
    rt._interrupt = clock
    rt.clear_cache()

    def on(event, data):
        if event == "executing":
            clock.where = data["class_type"]
    t0 = time.perf_counter()
    rt.run(wf, progress=on)
    total = time.perf_counter() - t0
    stamps = [(t0, "start")] + clock.polls + [(time.perf_counter(), "end")]
    gaps = sorted(((b[0] - a[0], b[1]) for a, b in zip(stamps, stamps[1:])), reverse=True)
    return {"run_s": round(total, 2), "polls": len(clock.polls), "max_gap_s": round(gaps[0][0], 3),
            "longest_gaps": [{"s": round(g, 3), "node": where} for g, where in gaps[:4]],
            "gaps_over_0_5_s": sum(1 for g, _ in gaps if g > 0.5)}


def trial(rt, wf: dict, delay: float) -> dict:
    from nodes.errors import Interrupted
    rt._interrupt = threading.Event()
    rt.clear_cache()
    out: dict = {}

    def go():
        try:
            rt.run(wf)
            out["finished"] = True
        except Interrupted as e:
            out["stopped_at"] = e.node_id
        out["t_end"] = time.perf_counter()
    th = threading.Thread(target=go)
    t0 = time.perf_counter()
    th.start()
    time.sleep(delay)
    t_int = time.perf_counter()
    rt.interrupt()
    th.join()
    if out.get("finished"):
        return {"delay_s": delay, "finished_before_interrupt": True, "run_s": round(out["t_end"] - t0, 2)}
    return {"delay_s": delay, "latency_s": round(out["t_end"] - t_int, 3), "node": out.get("stopped_at")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=80, help="frames sampled (the built-in model fits at most 83)")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--trials", type=int, default=4)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    import torch
    torch.set_num_threads(1)
    from nodes.runtime import Runtime
    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / "long.mp4"
        write_clip(clip, args.frames * 2, w, h)
        rt = Runtime(input_dirs=[d], output_dir=Path(d) / "out")
        wf = workflow("long.mp4", args.frames)
        rt.run(wf)  # warm-up: first imports and first calls are one-off costs, not a run's
        gaps = poll_gaps(rt, wf)
        run_s = gaps["run_s"]
        delays = [round(run_s * (k + 0.5) / args.trials, 2) for k in range(args.trials)]
        trials = [trial(rt, wf, dl) for dl in delays]
    lat = [t["latency_s"] for t in trials if "latency_s" in t]
    print(json.dumps({"frames": args.frames, "size": args.size, "poll_gaps": gaps, "trials": trials,
                      "max_trial_latency_s": max(lat) if lat else None}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
