"""Command line: ``python -m pruning_core {answer,flops,methods,sample-video}``.

Errors a user can act on print one line and exit with status 2; progress goes to stderr (tqdm).
"""
from __future__ import annotations

import argparse
import json
import sys

from .errors import VideoPruneError


def _progress_bar(enabled: bool):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm
    bars: dict = {}

    def update(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = tqdm(total=total, desc=phase, unit="layer" if phase == "prefill" else "tok",
                                     leave=False, file=sys.stderr)
        bar.n = done
        bar.refresh()

    def close() -> None:
        for b in bars.values():
            b.close()
    return update, close


def _frames_that_fit(eng, args) -> int | None:
    """The frame count to decode, checked against the model's context before decoding anything.

    ``--frames max`` takes as many as fit (of the frames ``--max-fps`` allows), saying so when
    that is fewer than the video has; a fixed count that does not fit is refused with the largest
    that does (``context_window``)."""
    from .context_window import max_frames
    from .video import probe_video, sample_indices, scaled_size
    w, h, n, fps = probe_video(args.video)
    width, height = scaled_size(w, h, args.max_side)
    if n <= 0:  # the container does not say: the check runs on the decoded frames instead
        return args.frames
    wanted = len(sample_indices(n, args.frames, fps, args.max_fps))
    if args.frames is None:
        best = max_frames(eng.adapter, height, width, args.question, args.max_new_tokens, wanted)
        if best < wanted:
            print(f"note: using {best} of {wanted} frames, the most that fit the model's context at "
                  f"{width}x{height}", file=sys.stderr)
        eng.check_fits(max(best, 1), height, width, args.question, args.max_new_tokens)
        return best
    eng.check_fits(wanted, height, width, args.question, args.max_new_tokens)
    return args.frames


def cmd_answer(args) -> int:
    from .engine import Engine
    from .loader import load_model
    from .model_store import is_hub_id, resolve_hub_id
    from .pixels import decode_transform
    from .registry import build_stages, parse_plan
    from .video import load_video, probe_video
    from .world import builtin_warning
    # cheapest checks first: a bad flag, plan step or video is refused before the model loads, and
    # what needs the model (layer ranges, the context) before anything is decoded
    if args.max_new_tokens < 1:
        raise VideoPruneError("--max-new-tokens must be at least 1")
    plan = parse_plan(args.plan)
    probe_video(args.video)  # a missing or unreadable video fails before the model loads
    if args.quiet:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    source = args.model
    if is_hub_id(source):   # downloaded once into models/LLM/<name>, as the demo and the nodes do
        source = resolve_hub_id(source)
    model = load_model(source, device=args.device, dtype=args.dtype, attn=args.attn)
    eng = Engine(model)
    build_stages(plan, eng.info)
    frames = _frames_that_fit(eng, args)  # checked against the context before anything is decoded
    # decoded straight to the model's input size (uint8, the processor's kernel): memory ~ model input
    video = load_video(args.video, num_frames=frames, max_fps=args.max_fps, max_side=args.max_side,
                       frame_transform=decode_transform(model.pre))
    prep = eng.prepare(video.frames, args.question, timing=video.timing)
    warning = builtin_warning(model, video.frames, args.question)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    progress, close = _progress_bar(not args.quiet)
    try:
        res = eng.run(prep, plan, max_new_tokens=args.max_new_tokens, progress=progress,
                      positions=args.positions)
    finally:
        close()
    if args.json:
        out = res.to_json(with_ids=args.ids)
        out["video"] = video.to_dict() if hasattr(video, "to_dict") else {"path": args.video}
        out["checkpoint"] = model.checkpoint_report()
        if warning:
            out["warning"] = warning
        print(json.dumps(out))
    else:
        print(res.answer)
        print(f"[{res.kept_tokens}/{res.visual_tokens} visual tokens kept ({res.retention:.1%}), "
              f"TTFT {res.ttft_ms:.0f} ms (vision {res.vision_ms:.0f} + pre-LLM {res.pre_llm_ms:.0f} + prefill "
              f"{res.prefill_ms:.0f}), {res.flops / 1e12:.3g} TFLOPs vs {res.flops_unpruned / 1e12:.3g} unpruned]",
              file=sys.stderr)
    return 0


def cmd_flops(args) -> int:
    from .flops import flops_report, get_preset
    if args.visual_tokens < 1 or args.text_tokens < 0:
        raise VideoPruneError("--visual-tokens must be at least 1 and --text-tokens at least 0")
    out = flops_report(get_preset(args.preset), args.visual_tokens, args.text_tokens, args.plan)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['tflops']:.4g} TFLOPs (unpruned {out['tflops_unpruned']:.4g}, "
              f"ratio {out['flops_ratio']:.3f}, equivalent retention {out['equivalent_retention']:.3f})")
    return 0


def cmd_methods(args) -> int:
    from .registry import methods
    specs = [m.to_dict() for m in methods().values()]
    if args.json:
        print(json.dumps(specs, indent=1))
        return 0
    for s in specs:
        print(f"{s['name']:16s} {s['kind']:6s} {s['title']} — {s['summary']}")
        for p in s["params"]:
            rng = f" {p['range']}" if "range" in p else ""
            ch = f" {{{', '.join(map(str, p['choices']))}}}" if "choices" in p else ""
            print(f"    {p['name']}={p['default']!r} ({p['type']}{rng}{ch}) {p['tooltip']}")
    return 0


def cmd_sample_video(args) -> int:
    from .synthetic import sample_video
    sample = sample_video(args.out, seed=args.seed)
    q = sample.question
    info = {"path": args.out, "frames": int(sample.frames.shape[0]), "question": q.text, "answer": q.answer,
            "kind": q.kind, "evidence_position": q.position}
    if args.json:
        print(json.dumps(info))
    else:
        print(args.out)
        print(f"a question it answers: {q.text}  (answer: {q.answer})", file=sys.stderr)
    return 0


def _frame_count(text: str) -> int | None:
    if text.strip().lower() == "max":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'max', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pruning_core", description="Training-free visual-token pruning "
                                "for Video LLMs.")
    sub = p.add_subparsers(dest="cmd", required=True)

    a = sub.add_parser("answer", help="answer a question about a video under a pruning plan")
    a.add_argument("--model", default="builtin",
                   help="'builtin' (default), a model folder, or a hub id org/name (downloaded once into "
                        "models/LLM/<name>, or $VIDEOPRUNE_MODELS)")
    a.add_argument("--video", required=True, help="video file (any format OpenCV reads)")
    a.add_argument("--question", required=True)
    a.add_argument("--frames", type=_frame_count, default=16,
                   help="frames sampled uniformly (default 16); 'max' = as many as fit the model's context")
    a.add_argument("--max-fps", type=float, default=None, help="sample at most this many frames per second")
    a.add_argument("--max-side", type=int, default=None, help="downscale frames so the longer side is at most this")
    a.add_argument("--plan", default="none", help="stages joined by '+', e.g. fastv:layer=2,retention=0.25")
    a.add_argument("--max-new-tokens", type=int, default=32, help="longest answer in tokens (default 32)")
    a.add_argument("--positions", choices=("original", "compact"), default="original",
                   help="original: kept tokens keep their positions (default); compact: the tokens that "
                        "enter the LLM are re-encoded as the new input, as the papers' own code does")
    a.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    a.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    a.add_argument("--attn", "--attention", dest="attn", default="auto",
                   help="attention implementation: auto, sdpa, flash_attention_2, eager")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--ids", action="store_true", help="with --json: include kept ids of every stage")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(fn=cmd_answer)

    f = sub.add_parser("flops", help="analytic prefill FLOPs of a plan on a real checkpoint's dims")
    f.add_argument("--preset", required=True)
    f.add_argument("--visual-tokens", type=int, required=True)
    f.add_argument("--text-tokens", type=int, default=0)
    f.add_argument("--plan", default="none")
    f.add_argument("--json", action="store_true")
    f.set_defaults(fn=cmd_flops)

    m = sub.add_parser("methods", help="list registered methods and their parameters")
    m.add_argument("--json", action="store_true")
    m.set_defaults(fn=cmd_methods)

    s = sub.add_parser("sample-video", help="write a synthetic sample video the built-in model knows")
    s.add_argument("--out", default="sample.mp4")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_sample_video)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    import warnings
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning  # one line, no source excerpt
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = previous


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "frames", 1) is not None and getattr(args, "frames", 1) < 1:
        print("error: --frames must be at least 1", file=sys.stderr)
        return 2
    try:
        return args.fn(args)
    except VideoPruneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
