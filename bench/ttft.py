"""TTFT with the vision tower: real-size towers (random weights), stock vs ours, plus stages + prefill per plan.

Vision towers at the dims of the real checkpoints, with random weights (cost depends only on shapes):

- ``siglip``: LLaVA-OneVision's SigLIP-so400m (1152 wide, 16 heads, MLP 4304, patch 14, 384 px → 27² = 729
  patches per frame; llava-hf's LLaVA-OV checkpoints keep 26 of so400m's 27 layers and use the last,
  ``vision_feature_layer=-1``), projector to qwen2-0.5b's 896, pooled to 14² tokens per frame.
- ``qwen2vl``: Qwen2-VL's ViT (embed 1280, depth 32, 16 heads, MLP ratio 4, patch 14, temporal patch 2,
  2×2 merge, merger to 1536 as in Qwen2-VL-2B) at the geometry its processor gives a ``--size`` clip
  (default 360×640: ``smart_resize`` → 364×644, 26×46 patches per temporal step).

"stock" is the transformers tower called as the stock model's forward calls it (``get_video_features``
on all frames at once, the model loaded with ``--attn``, sdpa by default); "ours" is what the adapters
run (``pruning_core.vision_tower``). Runs alternate stock/ours; process CPU time (``--threads 1``: the
compute alone, robust on a loaded machine). ``max_abs_diff`` compares the two outputs.

TTFT = vision + pre-LLM stages + prefill (the project's one meaning). Stages + prefill per plan come
from ``bench/prefill.py`` (qwen2-0.5b dims, ``--frames`` × 196 tokens): given with ``--prefill-json``
(its output) or measured here for ``--plan``s. ``prunable_share`` = the unpruned run's stages + prefill
over its TTFT: the part of the wait that pruning visual tokens inside the LLM can shorten at all.

Prints JSON lines: one ``vision_tower`` line, then (with plans) one ``ttft`` line per plan.

    OMP_NUM_THREADS=1 python bench/ttft.py --tower siglip --frames 2            # minutes: extrapolate first
    OMP_NUM_THREADS=1 python bench/ttft.py --tower siglip --frames 32 --prefill-json p32.json
    OMP_NUM_THREADS=1 python bench/ttft.py --tower qwen2vl --frames 32
    OMP_NUM_THREADS=1 python bench/ttft.py --quick                                # tiny dims, seconds
"""
from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np
import torch

from common import LM_DIMS, median

SIGLIP_SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16,
                     image_size=384, patch_size=14)
QWEN2VL_VIT = dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2)
TOWER_NAMES = {"siglip": "siglip-so400m (LLaVA-OneVision)", "qwen2vl": "qwen2-vl vit"}
TINY_SIGLIP = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   image_size=56, patch_size=4)
TINY_QWEN = dict(depth=2, embed_dim=64, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=4,
                 spatial_merge_size=2, temporal_patch_size=2)


def _text(cls, tok, dims: str, **extra):
    lm = dict(LM_DIMS[dims], num_hidden_layers=1)  # the LM is not run here; its width sizes the projector
    return cls(vocab_size=len(tok), max_position_embeddings=32768, tie_word_embeddings=False, **lm, **extra)


def build_siglip(vision: dict, dims: str, attn: str, seed: int = 0):
    """(LLaVA-OneVision adapter, stock call, our call) for pixel values [1, F, 3, H, W]."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config, SiglipVisionConfig

    from pruning_core.loader import wrap
    from tiny_models import tiny_tokenizer
    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = LlavaOnevisionConfig(vision_config=SiglipVisionConfig(**vision), text_config=_text(Qwen2Config, tok, dims),
                               video_token_index=tok.convert_tokens_to_ids("<video>"),
                               image_token_index=tok.convert_tokens_to_ids("<image>"),
                               vision_feature_layer=-1, vision_feature_select_strategy="full")
    cfg._attn_implementation = attn
    ad = wrap(LlavaOnevisionForConditionalGeneration(cfg).eval(), tok, name="siglip-so400m")
    m = ad.model.model

    def stock(pv):  # LlavaOnevisionModel.forward's call
        return m.get_video_features(pv, vision_feature_layer=cfg.vision_feature_layer,
                                    vision_feature_select_strategy=cfg.vision_feature_select_strategy,
                                    return_dict=True).pooler_output[0]

    def ours(pv):
        return ad.video_features(pv)[0]
    return ad, stock, ours


def build_qwen2vl(vision: dict, dims: str, attn: str, seed: int = 0):
    """(Qwen2-VL adapter, stock call, our call) for (patches, grid_thw)."""
    import transformers as tf

    from pruning_core.loader import wrap
    from pruning_core.vision_tower import qwen_tower
    from tiny_models import SPECIALS, tiny_tokenizer
    tok = tiny_tokenizer()
    ids = {k: tok.convert_tokens_to_ids(k) for k in SPECIALS}
    torch.manual_seed(seed)
    hd = LM_DIMS[dims]["hidden_size"] // LM_DIMS[dims]["num_attention_heads"]
    text = _text(tf.Qwen2VLTextConfig, tok, dims,  # Qwen2-VL's split of the rotary half: 1/4 temporal, 3/8 h, 3/8 w
                 rope_parameters={"rope_type": "default", "mrope_section": [hd // 8, 3 * hd // 16, 3 * hd // 16],
                                  "rope_theta": 1000000.0})
    cfg = tf.Qwen2VLConfig(vision_config=tf.Qwen2VLVisionConfig(**vision).to_dict(), text_config=text.to_dict(),
                           video_token_id=ids["<|video_pad|>"], image_token_id=ids["<|image_pad|>"],
                           vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    cfg._attn_implementation = attn
    ad = wrap(tf.Qwen2VLForConditionalGeneration(cfg).eval(), tok, name="qwen2-vl-vit")
    m = ad.model.model

    def stock(inp):  # Qwen2VLModel.forward's call
        return torch.cat(list(m.get_video_features(inp[0], inp[1]).pooler_output), 0)

    def ours(inp):
        return qwen_tower(m.visual, inp[0].type(m.visual.dtype), inp[1]).features
    return ad, stock, ours


def tower_flops(segments: list[int], d: int, m: int, layers: int, patch_in: int, mlp_mats: int = 2) -> float:
    """Realistic FLOPs (2 per MAC) of a ViT on packed segments: patch embedding, q/k/v/o, the MLP, and
    bidirectional attention (q·k and p·v) within each segment."""
    n = sum(segments)
    per_layer = 2 * n * (4 * d * d + mlp_mats * d * m) + 4 * d * sum(s * s for s in segments)
    return 2 * n * patch_in * d + layers * per_layer


def tower_case(args):
    """(adapter, stock, ours, input, description) for ``args.tower``."""
    rng = np.random.default_rng(0)
    if args.tower == "siglip":
        vision = TINY_SIGLIP if args.quick else SIGLIP_SO400M
        if args.layers:
            vision = dict(vision, num_hidden_layers=args.layers)
        ad, stock, ours = build_siglip(vision, args.dims, args.attn)
        size = vision["image_size"]
        pv = ad.pixel_values(rng.integers(0, 256, (args.frames, size, size, 3), dtype=np.uint8)).to(ad.dtype)
        p = (size // vision["patch_size"]) ** 2
        segs = [p] * args.frames
        used = ad.model.config.vision_feature_layer % (vision["num_hidden_layers"] + 1)
        d = vision["hidden_size"]
        desc = {"tower": TOWER_NAMES["siglip"], "frame_px": [size, size], "patches_per_frame": p,
                "layers": vision["num_hidden_layers"], "layers_used": used,
                "gflop": round(tower_flops(segs, d, vision["intermediate_size"], used, 3 * vision["patch_size"] ** 2)
                               / 1e9, 1)}
        return ad, stock, ours, pv, desc
    vision = TINY_QWEN if args.quick else QWEN2VL_VIT
    if args.layers:
        vision = dict(vision, depth=args.layers)
    ad, stock, ours = build_qwen2vl(vision, args.dims, args.attn)
    h, w = (int(v) for v in args.size.lower().split("x"))
    if args.quick:
        ad.min_pixels, ad.max_pixels = 8 * 8, 32 * 32
    pv, grid = ad.pixel_values(rng.integers(0, 256, (args.frames, h, w, 3), dtype=np.uint8))
    t, gh, gw = (int(v) for v in grid[0])
    d = vision["embed_dim"]
    desc = {"tower": TOWER_NAMES["qwen2vl"], "input_px": [h, w], "frame_px": [gh * vision["patch_size"], gw * vision["patch_size"]],
            "grid_thw": [t, gh, gw], "patches": t * gh * gw, "visual_tokens": t * gh * gw // 4, "layers": vision["depth"],
            "gflop": round(tower_flops([gh * gw] * t, d, d * vision["mlp_ratio"], vision["depth"],
                                       3 * 2 * vision["patch_size"] ** 2) / 1e9, 1)}
    return ad, stock, ours, (pv, grid), desc


@torch.no_grad()
def run_tower(args) -> dict:
    ad, stock, ours, inp, desc = tower_case(args)
    fns = {"stock": stock, "ours": ours}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    out = {}
    for r in range(args.repeats):
        for name in (("stock", "ours") if r % 2 == 0 else ("ours", "stock")):  # alternate who goes first
            c0, w0 = time.process_time(), time.perf_counter()
            out[name] = fns[name](inp)
            cpu[name].append(round((time.process_time() - c0) * 1e3, 1))
            wall[name].append(round((time.perf_counter() - w0) * 1e3, 1))
    peak = {}
    if args.memory:  # one more run each, under the tensor-memory tracker (slower: not timed)
        from common import PeakTensorMemory
        for name, fn in fns.items():
            with PeakTensorMemory() as mem:
                fn(inp)
            peak[f"{name}_peak_tensor_mb"] = round(mem.peak / 2**20, 1)
    diff = (out["stock"].float() - out["ours"].float()).abs().max().item()
    scale = out["stock"].float().abs().max().item()
    return {"bench": "vision_tower", **desc, "frames": args.frames, "attn": args.attn, "threads": args.threads,
            "repeats": args.repeats, "stock_cpu_ms_runs": cpu["stock"], "ours_cpu_ms_runs": cpu["ours"],
            "stock_wall_ms_runs": wall["stock"], "ours_wall_ms_runs": wall["ours"],
            "stock_cpu_ms": median(cpu["stock"]), "ours_cpu_ms": median(cpu["ours"]),
            "ours_vs_stock": round(median(cpu["ours"]) / median(cpu["stock"]), 3),
            "stock_gflop_per_cpu_s": round(desc["gflop"] / (median(cpu["stock"]) / 1e3), 1),
            "output_shape": list(out["ours"].shape), "max_abs_diff": diff, "max_abs": scale, **peak}


def read_prefill(path: str) -> dict:
    """Stages + prefill measurements: ``bench/prefill.py``'s JSON output, or a sweep directory holding
    ``meta.json`` (dims, frames, grid), ``none.json`` and ``plan_*.json`` (one plan each, ``cpu_ms_runs``)."""
    import glob
    import os
    if not os.path.isdir(path):
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    tokens = meta["frames"] * meta["grid"] ** 2
    plans = []
    for name in ["none.json"] + sorted(os.path.basename(p) for p in glob.glob(os.path.join(path, "plan_*.json"))):
        with open(os.path.join(path, name)) as f:
            row = json.load(f)
        row.setdefault("kept_tokens", tokens)
        row["overhead_ms"] = sum(s["ms"] for s in row.get("stage_overhead_ms", []))
        plans.append(row)
    return {**meta, "visual_tokens": tokens, "plans": plans}


def prefill_rows(args) -> dict:
    """Stages + prefill per plan: read from ``--prefill-json`` or measured (``bench/prefill.py``) for ``--plan``."""
    if args.prefill_json:
        return read_prefill(args.prefill_json)
    import prefill
    ns = SimpleNamespace(dims="tiny" if args.quick else args.dims, frames=args.frames, grid=7 if args.quick else 14,
                         plan=args.plan, repeats=args.prefill_repeats, attn="sdpa", memory=False, limit=False,
                         threads=args.threads, vision="record" if any("zip" in p or "merge" in p or "holitom" in p
                                                                      for p in args.plan) else None,
                         decode=0, matched_flops=None)
    return prefill.run(ns)


def ttft_rows(tower: dict, pre: dict) -> list[dict]:
    """One row per plan: vision (ours and stock) + stages + prefill, CPU ms, and the shares."""
    frames = pre["frames"]
    scale = frames / tower["frames"]  # per-frame cost is constant (SigLIP: one frame a segment)
    vis, vis_stock = tower["ours_cpu_ms"] * scale, tower["stock_cpu_ms"] * scale
    rows = []
    base = None
    for p in pre["plans"]:
        llm = median(p["cpu_ms_runs"])
        stage_wall = p.get("overhead_ms", 0.0)
        ttft, ttft_stock = vis + llm, vis_stock + llm
        if base is None:
            base = {"llm": llm, "ttft": ttft, "ttft_stock": ttft_stock}
        rows.append({
            "bench": "ttft", "plan": p["plan"], "frames": frames, "visual_tokens": pre["visual_tokens"],
            "kept_tokens": p["kept_tokens"], "vision_cpu_ms": round(vis, 1), "vision_stock_cpu_ms": round(vis_stock, 1),
            "vision_extrapolated_from_frames": tower["frames"] if scale != 1 else None,
            "stages_prefill_cpu_ms": round(llm, 1), "stage_overhead_wall_ms": round(stage_wall, 1),
            "ttft_cpu_ms": round(ttft, 1), "ttft_stock_tower_cpu_ms": round(ttft_stock, 1),
            "vision_share": round(vis / ttft, 3), "speedup_prefill": round(base["llm"] / llm, 3),
            "speedup_ttft": round(base["ttft"] / ttft, 3), "speedup_ttft_stock_tower": round(base["ttft_stock"] / ttft_stock, 3),
            "prunable_share": round(base["llm"] / base["ttft"], 3),
            "ttft_limit_speedup": round(base["ttft"] / vis, 2),
        })
    return rows


def flops_shares(tower: dict, frames: int, text_tokens: int = 19, presets: tuple[str, ...] | None = None) -> list[dict]:
    """The vision share of TTFT if time were proportional to realistic FLOPs, for real checkpoints' LMs:
    the tower's FLOPs at ``frames`` against an unpruned prefill of its visual tokens (LLaVA-OV: ``frames``·196
    + the newline) + text tokens (``flops.realistic_prefill_flops``). At 0.5B the measured share sits beside it."""
    from pruning_core.flops import get_preset, realistic_prefill_flops
    scale = frames / tower["frames"]
    vision = tower["gflop"] * 1e9 * scale
    if tower.get("tower", TOWER_NAMES["siglip"]) == TOWER_NAMES["siglip"]:
        n = frames * 196 + 1 + text_tokens
        presets = presets or ("llava-onevision-0.5b", "llava-onevision-7b")
    else:
        n = int(tower["visual_tokens"] * scale) + text_tokens
        presets = presets or ("qwen2-vl-2b", "qwen2-vl-7b")
    rows = []
    for name in presets:
        dims = get_preset(name)
        lm = realistic_prefill_flops([n] * dims.num_layers, dims)
        rows.append({"bench": "ttft_flops_share", "lm": name, "frames": frames, "sequence_tokens": n,
                     "vision_tflop": round(vision / 1e12, 2), "prefill_tflop": round(lm / 1e12, 2),
                     "vision_share_flops": round(vision / (vision + lm), 3),
                     "prunable_share_flops": round(lm / (vision + lm), 3)})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tower", choices=["siglip", "qwen2vl"], default="siglip")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", default="360x640", help="input frame HxW for the Qwen2-VL processor geometry")
    ap.add_argument("--repeats", type=int, default=2, help="tower runs each, alternating stock/ours")
    ap.add_argument("--attn", default="sdpa", help="attention the model is loaded with (the stock tower runs on it)")
    ap.add_argument("--dims", default="qwen2-0.5b")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, help="fewer tower layers at the real widths (a quick check; TTFT rows then mean little)")
    ap.add_argument("--memory", action="store_true", help="also the peak tensor memory of one run each")
    ap.add_argument("--tower-json", help="reuse a vision_tower line printed earlier instead of timing the tower")
    ap.add_argument("--prefill-json", help="bench/prefill.py output for the TTFT rows, or a sweep directory of "
                    "per-plan files (meta.json, none.json, plan_*.json)")
    ap.add_argument("--plan", action="append", default=[], help="measure stages + prefill for this plan (repeatable)")
    ap.add_argument("--prefill-repeats", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny dims: seconds")
    args = ap.parse_args(argv)
    if args.quick:
        args.dims, args.frames, args.repeats = "tiny", 4, 2
        args.plan = args.plan or ([] if args.tower == "qwen2vl" else ["fastv:layer=2,retention=0.25"])
    torch.set_num_threads(args.threads)
    if args.tower_json:
        with open(args.tower_json) as f:
            tower = next(json.loads(x) for x in f if '"vision_tower"' in x)
    elif args.tower == "qwen2vl" and (args.prefill_json or args.plan):
        ap.error("TTFT rows pair the prefill bench's LLaVA-OV layout (196 tokens a frame) with the siglip tower")
    else:
        tower = run_tower(args)
    is_qwen = tower["tower"] == TOWER_NAMES["qwen2vl"]
    if is_qwen and (args.prefill_json or args.plan):
        ap.error("TTFT rows pair the prefill bench's LLaVA-OV layout (196 tokens a frame) with the siglip tower")
    print(json.dumps(tower), flush=True)
    if is_qwen:  # a --tower-json line is scaled to --frames (the tower's cost is linear in temporal steps)
        for row in flops_shares(tower, args.frames if args.tower_json else tower["frames"]):
            print(json.dumps(row), flush=True)
    if args.prefill_json or args.plan:
        pre = prefill_rows(args)
        for row in ttft_rows(tower, pre) + flops_shares(tower, pre["frames"]):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
