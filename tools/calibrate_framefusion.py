"""Calibrate FrameFusion's merge threshold S_th for a model, as its authors do per model: the mean over
videos of the median first-layer similarity of each visual token with the token at the same grid
position in the previous frame.

    python tools/calibrate_framefusion.py                                   # built-in model, 8 synthetic videos
    python tools/calibrate_framefusion.py --model PATH --videos a.mp4 b.mp4 --frames 32

Prints JSON with the threshold, the per-video medians and the plan step to use
(``framefusion:threshold=…``). The default (0.6; 0.5 on Qwen2-VL) is the LLaVA-Video value.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def calibrate(model: str = "builtin", videos: list[str] = (), frames: int = 16, synthetic: int = 8,
              progress: bool = True) -> dict:
    import torch
    from tqdm import tqdm

    from pruning_core.loader import load_model
    from pruning_core.methods.framefusion import calibrate_threshold, median_similarity

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    adapter = load_model(model, device="cpu")
    if videos:
        from pruning_core.video import load_video
        sources = [(v, lambda v=v: load_video(v, num_frames=frames).frames) for v in videos]
    else:
        from pruning_core.synthetic import make_dataset
        sources = [(f"synthetic seed {s.seed}", lambda s=s: s.frames) for s in make_dataset(synthetic, 4, frames)]
    rows = []
    with torch.no_grad():
        for name, read in tqdm(sources, desc="calibrating", unit="video", disable=not progress, file=sys.stderr):
            enc = adapter.encode_video(read())
            ids = torch.arange(enc.layout.num_tokens, device=enc.embeds.device)
            rows.append({"video": name, "frames": enc.layout.num_frames,
                         "median_similarity": round(median_similarity(enc.embeds, ids, enc.layout.tokens_per_frame), 6)})
    threshold = calibrate_threshold([r["median_similarity"] for r in rows])
    return {"tool": "calibrate_framefusion", "model": model, "threshold": round(threshold, 4),
            "plan": f"framefusion:threshold={threshold:.4f}", "videos": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--videos", nargs="*", default=[], help="video files (default: synthetic videos)")
    ap.add_argument("--frames", type=int, default=16, help="frames sampled per video")
    ap.add_argument("--synthetic", type=int, default=8, help="synthetic videos when no --videos are given")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    from pruning_core.errors import VideoPruneError
    try:
        if args.frames < 2 or args.synthetic < 1:
            raise VideoPruneError("--frames must be >= 2 and --synthetic >= 1")
        report = calibrate(args.model, args.videos, args.frames, args.synthetic, not args.no_progress)
    except (VideoPruneError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
