"""Our answer path vs the REAL transformers processors + ``generate``, on tiny checkpoints of real geometry.

Needs torchvision (the HF video processors do): run it in an env with ``torch==2.14.1 torchvision==0.29.1``::

    OMP_NUM_THREADS=1 /work/venv214/bin/python tools/real_processor_check.py --json out.json

For LLaVA-OneVision (SigLIP 384 / patch 14), Qwen2-VL and Qwen2.5-VL (patch 14, temporal patch 2,
merge 2) it builds random-weight checkpoints of the real model classes, saves them WITH real
processor objects (``LlavaOnevisionProcessor`` / ``Qwen2VLProcessor`` / ``Qwen2_5_VLProcessor``, a
chat template, a byte-level BPE tokenizer; no hub) in a temp folder, writes OpenCV-drawn clips to
mp4 (odd frame counts, sizes not multiples of the patch, upscaled and downscaled), and compares:

* ours: ``python -m pruning_core answer --plan none --json`` (in-process ``cli.main``) and the
  engine's pixels / prompt ids / first-token logits from the same decode;
* theirs: ``AutoProcessor.from_pretrained(folder)`` on the same decoded frames with their
  ``VideoMetadata`` (fps, sampled indices) → ``model.generate(do_sample=False)``.

Prints one JSON object (per case: pixel max-abs diff, prompt ids equal, tokens equal, first-token
logit max-abs diff, visual token counts) and exits 1 if any case differs. Also one checkpoint
with its own ``min_pixels`` / ``max_pixels``, whose visual-token count must be the processor's.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<video>", "<image>", "<|vision_start|>",
            "<|vision_end|>", "<|video_pad|>", "<|image_pad|>"]

# The chat templates these checkpoints ship (jinja, as in their chat_template.jinja).
LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] + '\n' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% endif %}{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
QWEN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

QWEN3_TEMPLATE = QWEN_TEMPLATE.replace(
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}", "")  # Qwen3-VL's template has no default system turn

QUESTION = "What is moving across the scene, and which colour is the square?"

# (name, frames sampled, width, height, source fps, source frames)
CASES = [
    ("8f-350x350", 8, 350, 350, 30.0, 60),
    ("7f-333x222", 7, 333, 222, 25.0, 40),
    ("5f-128x96-up", 5, 128, 96, 24.0, 30),
    ("9f-1280x720-down", 9, 1280, 720, 12.0, 27),
]


# ---------------------------------------------------------------- inputs

def write_clip(path: Path, width: int, height: int, fps: float, n: int, seed: int) -> None:
    """A real-looking clip: gradient background, moving shapes, text, sensor noise (mp4v)."""
    import cv2
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([120 + 80 * np.sin(xx / 37.0), 90 + 60 * np.cos(yy / 23.0), 140 + 50 * np.sin((xx + yy) / 51.0)], -1)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(n):
        img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        cx = int((i / max(n - 1, 1)) * (width - 40)) + 20
        cv2.circle(img, (cx, height // 3), max(4, height // 9), (30, 200, 240), -1)
        s = max(6, min(width, height) // 6)
        x0, y0 = width - cx - s // 2, (2 * height) // 3 - s // 2
        cv2.rectangle(img, (x0, y0), (x0 + s, y0 + s), (40, 40, 220), -1)
        cv2.putText(img, f"t{i}", (5, height - 8), cv2.FONT_HERSHEY_SIMPLEX, max(0.3, height / 400), (255, 255, 255), 1)
        vw.write(img)
    vw.release()


def tiny_tokenizer():
    """A byte-level BPE (the Qwen2 family's kind), trained here on a few sentences; specials added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [QUESTION, "You are a helpful assistant.", "system user assistant", "a red circle and a blue square",
              "the video shows shapes moving left and right over a coloured background", "yes no one two three"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None)
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    return fast


def _text_cfg(cls, vocab: int, **extra):
    # a wider init than the default 0.02 so random weights give varied tokens and logits that react to inputs
    return cls(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=8192, tie_word_embeddings=False,
               initializer_range=0.2, **extra)


def build_checkpoint(kind: str, folder: Path, seed: int = 0, min_pixels: int | None = None,
                     max_pixels: int | None = None) -> None:
    """Random-weight real-class model of the real vision geometry + its real processor, saved to ``folder``."""
    import torch
    import transformers as tf
    tok = tiny_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    torch.manual_seed(seed)
    rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
    if kind == "llava_onevision":
        vision = tf.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       image_size=384, patch_size=14, initializer_range=0.2)
        cfg = tf.LlavaOnevisionConfig(vision_config=vision, initializer_range=0.2, text_config=_text_cfg(tf.Qwen2Config, len(tok)),
                                      video_token_index=ids["<video>"], image_token_index=ids["<image>"],
                                      vision_feature_layer=-1, vision_feature_select_strategy="full")
        model = tf.LlavaOnevisionForConditionalGeneration(cfg)
        siglip = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])  # llava-hf OV: SigLIP's normalisation
        proc = tf.LlavaOnevisionProcessor(
            image_processor=tf.LlavaOnevisionImageProcessor(**siglip),
            video_processor=tf.LlavaOnevisionVideoProcessor(**siglip, size={"height": 384, "width": 384}),
            tokenizer=tok, chat_template=LLAVA_TEMPLATE, num_image_tokens=(384 // 14) ** 2,
            vision_feature_select_strategy="full")
    elif kind == "qwen3_vl":
        vision = tf.Qwen3VLVisionConfig(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                                        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64,
                                        num_position_embeddings=2304, deepstack_visual_indexes=[0],
                                        initializer_range=0.2)
        text = tf.Qwen3VLTextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                    max_position_embeddings=8192, initializer_range=0.2,
                                    rope_parameters={"rope_type": "default", "mrope_section": [4, 2, 2],
                                                     "mrope_interleaved": True, "rope_theta": 10000.0})
        cfg = tf.Qwen3VLConfig(vision_config=vision.to_dict(), text_config=text.to_dict(),
                               video_token_id=ids["<|video_pad|>"], image_token_id=ids["<|image_pad|>"],
                               vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                               tie_word_embeddings=False)
        model = tf.Qwen3VLForConditionalGeneration(cfg)
        vkw = {} if min_pixels is None else {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}
        proc = tf.Qwen3VLProcessor(image_processor=tf.Qwen2VLImageProcessor(patch_size=16),
                                   video_processor=tf.Qwen3VLVideoProcessor(**vkw), tokenizer=tok,
                                   chat_template=QWEN3_TEMPLATE)
    else:
        if kind == "qwen2_vl":
            vision = tf.Qwen2VLVisionConfig(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2,
                                            patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                                            initializer_range=0.2)
            text = _text_cfg(tf.Qwen2VLTextConfig, len(tok), rope_parameters=rope)
            cfg_cls, model_cls, proc_cls = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration, tf.Qwen2VLProcessor
        else:
            vision = tf.Qwen2_5_VLVisionConfig(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=64,
                                               num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                                               window_size=112, fullatt_block_indexes=[1], tokens_per_second=2,
                                               initializer_range=0.2)
            text = _text_cfg(tf.Qwen2_5_VLTextConfig, len(tok), rope_parameters=rope)
            cfg_cls, model_cls = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
            proc_cls = tf.Qwen2_5_VLProcessor
        cfg = cfg_cls(vision_config=vision.to_dict(), text_config=text.to_dict(), video_token_id=ids["<|video_pad|>"],
                      image_token_id=ids["<|image_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                      vision_end_token_id=ids["<|vision_end|>"], initializer_range=0.2)
        model = model_cls(cfg)
        vkw = {} if min_pixels is None else {"min_pixels": min_pixels, "max_pixels": max_pixels}
        proc = proc_cls(image_processor=tf.Qwen2VLImageProcessor(), video_processor=tf.Qwen2VLVideoProcessor(**vkw),
                        tokenizer=tok, chat_template=QWEN_TEMPLATE)
    model.config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.eval().save_pretrained(folder, safe_serialization=True)
    proc.save_pretrained(folder)


# ---------------------------------------------------------------- the two sides

def theirs(folder: Path, frames: np.ndarray, video, max_new_tokens: int) -> dict:
    """AutoProcessor + generate on the same decoded frames and their metadata."""
    import torch
    import transformers as tf
    from transformers.video_utils import VideoMetadata
    proc = tf.AutoProcessor.from_pretrained(folder)
    model = tf.AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    meta = VideoMetadata(total_num_frames=int(video.source_frames), fps=float(video.fps),
                         frames_indices=[int(i) for i in video.indices])
    inputs = proc(text=[text], videos=[frames], video_metadata=[meta], do_sample_frames=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, output_scores=True,
                             return_dict_in_generate=True)
    n = inputs["input_ids"].shape[1]
    vid = model.config.video_token_id if hasattr(model.config, "video_token_id") else model.config.video_token_index
    return {"input_ids": inputs["input_ids"][0], "pixels": inputs["pixel_values_videos"],
            "tokens": out.sequences[0, n:].tolist(), "logits0": out.scores[0][0].float(),
            "visual_tokens": int((inputs["input_ids"][0] == vid).sum()),
            "second_per_grid_ts": [float(x) for x in inputs.get("second_per_grid_ts", [])]}


def ours(folder: Path, clip: Path, num_frames: int, max_new_tokens: int) -> dict:
    """Our CLI (``--plan none --json``) and, from the same decode path, pixels, prompt ids and logits."""
    from pruning_core.cli import main
    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.video import load_video
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        rc = main(["answer", "--model", str(folder), "--video", str(clip), "--question", QUESTION,
                   "--frames", str(num_frames), "--plan", "none", "--json", "--quiet", "--device", "cpu",
                   "--max-new-tokens", str(max_new_tokens)])
    if rc != 0:
        raise RuntimeError(f"CLI failed ({rc}): {err.getvalue().strip()}")
    cli = json.loads(buf.getvalue())
    ad = load_model(str(folder), device="cpu")
    video = load_video(clip, num_frames=num_frames, frame_transform=ad.frame_transform())
    pix = ad.pixel_values(video.frames)[0]  # LLaVA-OV: [T, 3, H, W] of its [1, T, ...]; Qwen: the patches of (patches, grid)
    eng = Engine(ad)
    prep = eng.prepare(video.frames, QUESTION, timing=video.timing)
    res = eng.run(prep, "none", max_new_tokens=max_new_tokens, collect_logits=True)
    sec = [ad.second_per_grid_ts(video.timing)] if hasattr(ad, "second_per_grid_ts") else []
    return {"cli": cli, "input_ids": prep.input_ids[0].cpu(), "pixels": pix, "tokens": res.tokens,
            "logits0": res.logits[0].float(), "visual_tokens": prep.layout.num_tokens + (
                0 if prep.encoding.extra is None else int(prep.encoding.extra.shape[0])),
            "second_per_grid_ts": sec, "checkpoint": ad.checkpoint_report()}


def compare(kind: str, folder: Path, clip: Path, num_frames: int, max_new_tokens: int) -> dict:
    from pruning_core.video import load_video
    a = ours(folder, clip, num_frames, max_new_tokens)
    raw = load_video(clip, num_frames=num_frames)  # the frames the processor gets: decoded, not resized
    b = theirs(folder, raw.frames, raw, max_new_tokens)
    pa, pb = a["pixels"].float(), b["pixels"].float()
    pb = pb[0] if kind == "llava_onevision" else pb
    same_shape = tuple(pa.shape) == tuple(pb.shape)
    ids_equal = a["input_ids"].shape == b["input_ids"].shape and bool((a["input_ids"] == b["input_ids"]).all())
    return {
        "frames": num_frames, "source": f"{raw.frames.shape[2]}x{raw.frames.shape[1]}",
        "fps": raw.fps, "indices": [int(i) for i in raw.indices],
        "pixel_shape": list(pa.shape), "pixel_shape_equal": same_shape,
        "pixel_max_abs_diff": float((pa - pb).abs().max()) if same_shape else None,
        "prompt_ids_equal": ids_equal, "prompt_len": [int(a["input_ids"].numel()), int(b["input_ids"].numel())],
        "visual_tokens": [a["visual_tokens"], b["visual_tokens"]],
        "tokens_ours_engine": a["tokens"], "tokens_ours_cli": a["cli"].get("tokens"), "tokens_transformers": b["tokens"],
        "tokens_equal": a["tokens"] == b["tokens"] and a["cli"].get("tokens") == b["tokens"],
        "cli_answer": a["cli"]["answer"],
        "logits0_max_abs_diff": float((a["logits0"] - b["logits0"]).abs().max()),
        "second_per_grid_ts": [a["second_per_grid_ts"], b["second_per_grid_ts"]],
        "preprocessing_source": a["checkpoint"]["preprocessing"]["source"],
        "prompt_source": a["checkpoint"]["prompt"]["source"],
    }


def controls(kind: str, folder: Path, clip: Path, num_frames: int, max_new_tokens: int) -> dict:
    """Each cause of issue 21 put back on purpose: the comparison must see it (else it proves nothing)."""
    from dataclasses import replace

    import torch
    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.preprocessing import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    from pruning_core.video import load_video
    raw = load_video(clip, num_frames=num_frames)
    ref = theirs(folder, raw.frames, raw, max_new_tokens)
    out = {}

    def run_with(ad, frames, timing=raw.timing):
        eng = Engine(ad)
        prep = eng.prepare(frames, QUESTION, timing=timing)
        res = eng.run(prep, "none", max_new_tokens=max_new_tokens, collect_logits=True)
        px = ad.pixel_values(frames)[0].float()
        pb = ref["pixels"][0] if kind == "llava_onevision" else ref["pixels"]
        same_ids = prep.input_ids[0].shape == ref["input_ids"].shape and bool((prep.input_ids[0] == ref["input_ids"]).all())
        extra = 0 if prep.encoding.extra is None else int(prep.encoding.extra.shape[0])
        return {"pixel_max_abs_diff": float((px - pb.float()).abs().max()) if px.shape == pb.shape else None,
                "prompt_ids_equal": same_ids, "tokens_equal": res.tokens == ref["tokens"],
                "visual_tokens": [prep.layout.num_tokens + extra, ref["visual_tokens"]],
                "logits0_max_abs_diff": float((res.logits[0].float() - ref["logits0"]).abs().max())
                if same_ids else None}

    ad = load_model(str(folder), device="cpu")
    # cause 4: the old float bicubic resize (+clamp) instead of uint8 antialiased
    x = torch.from_numpy(raw.frames).permute(0, 3, 1, 2).float()
    h, w = ad.pre.output_size(raw.frames.shape[1], raw.frames.shape[2], raw.frames.shape[0])
    old = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", antialias=True).clamp_(0, 255)
    new = torch.nn.functional.interpolate(torch.from_numpy(raw.frames).permute(0, 3, 1, 2), size=(h, w),
                                          mode="bicubic", antialias=True).float()
    out["float_resize_grey_levels_max_diff"] = float((old - new).abs().max())
    # cause 5: the hard-coded prompt instead of the checkpoint's template
    ad.chat_template = None
    with contextlib.redirect_stderr(io.StringIO()):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["hard_coded_prompt"] = run_with(ad, load_video(clip, num_frames=num_frames,
                                                               frame_transform=ad.frame_transform()).frames)
    ad = load_model(str(folder), device="cpu")
    frames = load_video(clip, num_frames=num_frames, frame_transform=ad.frame_transform()).frames
    if kind == "llava_onevision":  # cause 1: OpenAI-CLIP mean/std instead of the checkpoint's
        ad.pre = replace(ad.pre, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD)
        out["clip_normalisation"] = run_with(ad, frames)
    if kind == "qwen3_vl":  # no video timing: the prompt's per-step timestamps would be at 24 fps
        out["no_timing"] = run_with(ad, frames, timing=None)
    if kind == "qwen2_5_vl":  # cause 2: no video timing (temporal ids as if 24 fps / 1 s per grid)
        out["no_timing"] = run_with(ad, frames, timing=None)
        with torch.no_grad():
            orig = ad.second_per_grid_ts
            ad.second_per_grid_ts = lambda timing: 1.0
            out["one_second_per_grid"] = run_with(ad, frames)
            ad.second_per_grid_ts = orig
    return out


def ok(case: dict, pixel_tol: float = 1e-5) -> bool:
    return bool(case["pixel_shape_equal"] and case["pixel_max_abs_diff"] <= pixel_tol and case["prompt_ids_equal"]
                and case["tokens_equal"] and case["visual_tokens"][0] == case["visual_tokens"][1])


def run(backbones, cases, max_new_tokens: int, workdir: Path, log=print) -> dict:
    report: dict = {"backbones": {}, "custom_pixels": {}}
    clips = {}
    for name, k, w, h, fps, n in cases:
        clips[name] = workdir / f"{name}.mp4"
        write_clip(clips[name], w, h, fps, n, seed=len(clips))
    for kind in backbones:
        folder = workdir / kind
        build_checkpoint(kind, folder)
        report["backbones"][kind] = {}
        for name, k, *_ in cases:
            t0 = time.perf_counter()
            c = compare(kind, folder, clips[name], k, max_new_tokens)
            c["ok"], c["seconds"] = ok(c), round(time.perf_counter() - t0, 1)
            report["backbones"][kind][name] = c
            log(f"{kind:16s} {name:18s} ok={c['ok']} pixels={c['pixel_max_abs_diff']} ids={c['prompt_ids_equal']} "
                f"tokens={c['tokens_equal']} logit0={c['logits0_max_abs_diff']:.2e} vis={c['visual_tokens']}")
    report["controls"] = {}
    for kind in backbones:
        name, k = cases[0][0], cases[0][1]
        report["controls"][kind] = controls(kind, workdir / kind, clips[name], k, max_new_tokens)
        log(f"{kind:16s} controls: {json.dumps(report['controls'][kind])}")
    # a checkpoint with its own pixel budget: 350x350, 8 frames -> 224x224 -> 4 x 8 x 8 = 256 tokens
    for kind in [b for b in backbones if b != "llava_onevision"]:
        folder = workdir / f"{kind}-pixels"
        build_checkpoint(kind, folder, min_pixels=4 * 28 * 28, max_pixels=224 * 224)
        c = compare(kind, folder, clips[cases[0][0]], cases[0][1], max_new_tokens)
        c["ok"] = ok(c)
        from pruning_core.preprocessing import CLASS_DEFAULTS
        from pruning_core.loader import load_model
        ad = load_model(str(folder), device="cpu")
        ad.pre = ad.pre.with_pixels(CLASS_DEFAULTS[kind]["size"]["shortest_edge"], CLASS_DEFAULTS[kind]["size"]["longest_edge"])
        from pruning_core.video import load_video
        from pruning_core.engine import Engine
        with contextlib.redirect_stderr(io.StringIO()):
            prep = Engine(ad).prepare(load_video(clips[cases[0][0]], num_frames=cases[0][1]), QUESTION)
        c["visual_tokens_if_the_budget_were_ignored"] = prep.layout.num_tokens
        report["custom_pixels"][kind] = c
        log(f"{kind:16s} custom min/max pixels: visual tokens ours/transformers = {c['visual_tokens']} ok={c['ok']}")
    report["all_ok"] = all(c["ok"] for per in report["backbones"].values() for c in per.values()) and \
        all(c["ok"] for c in report["custom_pixels"].values())
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", default="llava_onevision,qwen2_vl,qwen2_5_vl,qwen3_vl")
    p.add_argument("--cases", default="all", help="comma-separated case names, or 'all'")
    p.add_argument("--max-new-tokens", type=int, default=6)
    p.add_argument("--json", default="", help="also write the report here")
    args = p.parse_args(argv)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        print("real_processor_check: torchvision is not installed here; run it with torch==2.14.1 "
              "torchvision==0.29.1 (e.g. /work/venv214/bin/python)", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    cases = CASES if args.cases == "all" else [c for c in CASES if c[0] in args.cases.split(",")]
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(sys.stderr):  # stdout: the summary only
        report = run(args.backbones.split(","), cases, args.max_new_tokens, Path(d),
                     log=lambda s: print(s, file=sys.stderr))
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(json.dumps({"all_ok": report["all_ok"], "cases": sum(len(v) for v in report["backbones"].values()) +
                      len(report["custom_pixels"])}))
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
