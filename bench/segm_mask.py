"""ShaRP's SegM layer at the papers' scale: one decoder layer under eq. 4's mask, dense vs causal blocks.

The dense [L, L] mask makes SDPA compute every (query, key) pair (an explicit mask turns off its
causal skipping); ``block_mask.SegmentCausal`` runs the same attention as causal blocks. Prints one
JSON object: process CPU time per layer call (interleaved runs), the plain causal layer (the bare
limit: no mask at all), and the largest difference of the two masked outputs.

    python bench/segm_mask.py --frames 32 --repeats 2       # qwen2-0.5b dims, 32 x 196 visual tokens
    python bench/segm_mask.py --quick
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import build_engine, median, prepare_embeds
from pruning_core.block_mask import as_dense, blocks_attention
from pruning_core.prefill_state import PrefillState
from pruning_core.registry import build_stages, parse_plan


@torch.no_grad()
def run(args) -> dict:
    torch.set_num_threads(args.threads)
    eng = build_engine(args.dims)
    prep = prepare_embeds(eng, args.frames, args.grid)
    ad = eng.adapter
    n = int(prep.input_ids.shape[1])
    state = PrefillState(ad, prep, torch.arange(n), prep.embeds.clone(), torch.arange(prep.layout.num_tokens),
                         prep.visual_embeds)
    stage = build_stages(parse_plan(f"sharp:tau_seg={args.tau_seg}"), eng.info)[0]
    blocks = stage.early_mask(state)
    dense = as_dense(blocks).view(1, 1, n, n)
    h = prep.embeds
    cos, sin = ad.rotary_emb(h, prep.position_ids)
    layer = ad.layers[0]

    def call(kind):
        c0 = time.process_time()
        if kind == "blocks":
            with blocks_attention(ad, blocks):
                out = layer(h, attention_mask=None, position_embeddings=(cos, sin))
        else:
            out = layer(h, attention_mask=dense if kind == "dense" else None, position_embeddings=(cos, sin))
        return (out[0] if isinstance(out, tuple) else out), (time.process_time() - c0) * 1000.0

    call("causal")   # warm-up
    cpu: dict[str, list[float]] = {"dense": [], "blocks": [], "causal": []}
    outs = {}
    for _ in range(args.repeats):
        for kind in cpu:
            outs[kind], ms = call(kind)
            cpu[kind].append(round(ms, 1))
    med = {k: median(v) for k, v in cpu.items()}
    return {"bench": "segm_mask", "dims": args.dims, "frames": args.frames, "sequence_tokens": n,
            "segments": len(getattr(blocks, "bounds", (0, 0))) - 1, "threads": args.threads,
            "cpu_ms_runs": cpu, "blocks_vs_dense": round(med["dense"] / med["blocks"], 3),
            "causal_vs_blocks": round(med["blocks"] / med["causal"], 3),
            "max_abs_diff": float((outs["blocks"] - outs["dense"]).abs().max())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="qwen2-0.5b")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tau-seg", type=float, default=0.9, help="ShaRP's segment threshold (its default)")
    ap.add_argument("--quick", action="store_true", help="tiny config, seconds")
    args = ap.parse_args(argv)
    if args.quick:
        args.dims, args.frames, args.grid = "tiny", 4, 7
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
