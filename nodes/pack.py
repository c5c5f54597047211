"""The ComfyUI node classes (classic V1 API). Stage nodes are generated from the method registry.

Wires: ``VIDEOPRUNE_MODEL`` (a loaded model), ``IMAGE`` (frames, [T, H, W, 3] float 0..1, so
VideoHelperSuite's Load Video plugs in), ``VIDEOPRUNE_PLAN`` (a plan: list of
``{"method": ..., params}``; every stage node takes one and returns it extended, so stages
chain), ``VIDEOPRUNE_RESULT`` (one run: answer, kept ids per stage, timings, FLOPs).
Node ids are part of every shared workflow: never rename them.
"""
from __future__ import annotations

import inspect
import math
import sys
from typing import Any

from pruning_core import checkpoints
from pruning_core.world import builtin_warning
from pruning_core.errors import PlanError, VideoPruneError
from pruning_core.registry import MethodSpec, Param, methods

from . import context, models, routes, videos
from .previews import save_previews
from .report import RunRecord, chart, summary_row, table
from .spec import SEED_WIDGET_NAMES

MODEL = "VIDEOPRUNE_MODEL"
PLAN = "VIDEOPRUNE_PLAN"
RESULT = "VIDEOPRUNE_RESULT"
VIDEO_INFO = "VIDEOPRUNE_VIDEO_INFO"
ROOT = "VideoPrune"
AUTO = "auto"
DEFAULT_QUESTION = "What happens in the video?"
DEFAULT_ANSWER_FRAMES = 16  # as Load Video's default and the papers' 16-frame settings
MAX_REPORT_RESULTS = 8

PLAN_TOOLTIP = ("Plan from the previous stage node (optional). This stage is appended to it, so stages "
                "chain in the order they are wired.")


# ---------------------------------------------------------------- loaders

class VideoPruneLoadModel:
    DESCRIPTION = ("Load a Video LLM (LLaVA-OneVision / LLaVA-Video, Qwen2-VL, Qwen2.5-VL, Qwen3-VL): the built-in tiny "
                   "model, a folder under models/LLM, or a Hugging Face hub id, downloaded once into models/LLM.")
    CATEGORY = f"{ROOT}/loaders"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded model, for Answer nodes.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (models.model_choices(), {
                    "default": models.BUILTIN,
                    "tooltip": "builtin = the built-in tiny model (CPU, synthetic videos); otherwise a model "
                               "folder found under models/LLM."}),
                "device": (["auto", "cpu", "cuda"], {"default": "auto",
                                                     "tooltip": "auto = CUDA when available, else CPU."}),
                "dtype": (["auto", "fp32", "bf16", "fp16"], {
                    "default": "auto", "tooltip": "auto = bf16 on CUDA, fp32 on CPU (bf16 is slow on CPU)."}),
                "attention": (["auto", "sdpa", "flash_attention_2", "eager"], {
                    "default": "auto",
                    "tooltip": "auto = FlashAttention-2 when installed on CUDA, else SDPA. Pruning never needs eager."}),
            },
            "optional": {
                "path_or_hub_id": ("STRING", {
                    "default": "",
                    "tooltip": "Overrides 'model' when set: a folder inside models/LLM, or a hub id such as "
                               "llava-hf/llava-onevision-qwen2-0.5b-ov-hf (downloaded into models/LLM/<name>)."}),
            },
        }

    def load(self, model, device, dtype, attention, path_or_hub_id=""):
        name = path_or_hub_id.strip() or model
        return (models.load(name, device, dtype, attention, progress=context.Progress(1)),)


class VideoPruneLoadVideo:
    DESCRIPTION = ("Load a video from the input folder (or a built-in synthetic sample clip), sampling frames "
                   "uniformly across it. Outputs ComfyUI IMAGE frames; VideoHelperSuite's Load Video works too.")
    CATEGORY = f"{ROOT}/loaders"
    RETURN_TYPES = ("IMAGE", VIDEO_INFO, "STRING")
    RETURN_NAMES = ("frames", "video_info", "sample_question")
    OUTPUT_TOOLTIPS = ("Sampled frames [T, H, W, 3], float 0..1.",
                       "Frame count, size, fps and the source frame index of each sample.",
                       "The built-in sample's question (empty for files).")
    FUNCTION = "load"
    RESULT_AREA = (300, 300)  # the editor's preview of the selected video, under the upload button

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": (videos.video_choices(), {
                    "default": videos.sample_names()[0],
                    # ComfyUI's convention (its own Load Video): the editor adds an upload button and
                    # a preview; the samples' previews come from nodes/routes.py
                    "video_upload": True,
                    "tooltip": "sample-N = a synthetic clip the built-in model knows; otherwise a video file in "
                               "the input folder (or upload one with the button below)."}),
                "num_frames": ("INT", {"default": 16, "min": 1, "max": 1024, "step": 1,
                                       "tooltip": "Frames sampled uniformly across the whole video."}),
                "max_side": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 1,
                                     "tooltip": "Downscale so the longer side is at most this (0 = keep size). "
                                                "The model's processor resizes again anyway."}),
            },
            "optional": {
                "path": ("STRING", {"default": "",
                                    "tooltip": "Overrides 'video' when set: a path relative to the input folder."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, video, num_frames=16, max_side=0, path=""):
        return videos.fingerprint((path or "").strip() or video)

    def load(self, video, num_frames, max_side, path=""):
        from pruning_core.video import frames_to_image
        bar = PhasedProgress({"decoding frames": num_frames, "converting frames": num_frames})
        with checkpoints.watching(context.interrupted, bar.update):  # a long decode stays stoppable
            frames, info, question = videos.load((path or "").strip() or video, num_frames, max_side)
            return (frames_to_image(frames), info, question)


# ---------------------------------------------------------------- stage nodes from the registry

def _decimals(x: float | None) -> int:
    if x is None or x == 0 or not math.isfinite(x):
        return 0
    text = f"{abs(x):.6f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def _tooltip(p: Param) -> str:
    return f"{p.tooltip} [{p.ref}]" if p.ref else p.tooltip


def param_input(p: Param) -> tuple:
    """The widget spec for one registry parameter.

    A parameter that may be unset (None) is a text field where ``auto`` leaves it unset; a
    float keeps its exact default (no rounding to the step) and shows enough decimals for it.
    """
    tip = _tooltip(p)
    if p.optional:
        default = AUTO if p.default is None else str(p.default)
        return ("STRING", {"default": default, "tooltip": f"{tip} Type 'auto' to leave it to the method."})
    if p.type == "bool":
        return ("BOOLEAN", {"default": bool(p.default), "tooltip": tip})
    if p.type == "choice":
        return (list(p.choices), {"default": p.default, "tooltip": tip})
    if p.type == "str":
        return ("STRING", {"default": str(p.default), "tooltip": tip})
    if p.type == "int":
        lo = -(2 ** 31) if p.min is None else int(p.min) + (1 if p.min_exclusive else 0)
        hi = 2 ** 31 - 1 if p.max is None else int(p.max)
        opts = {"default": int(p.default), "min": lo, "max": hi, "step": int(p.step or 1), "tooltip": tip}
        if p.name in SEED_WIDGET_NAMES:  # say it outright: every frontend then adds the same control value
            opts["control_after_generate"] = True
        return ("INT", opts)
    decimals = float_decimals(p)
    step = 10.0 ** -decimals
    lo = -1e9 if p.min is None else float(p.min) + (step if p.min_exclusive else 0.0)
    hi = 1e9 if p.max is None else float(p.max)
    # ComfyUI's frontend shows as many decimals as ``step`` has and rounds every edit to them
    # (it ignores ``precision``), so ``step`` itself must carry the decimals; the other two keys
    # say the same for frontends that read them.
    return ("FLOAT", {"default": float(p.default), "min": round(lo, decimals), "max": hi, "step": step,
                      "round": step, "precision": decimals, "tooltip": tip})


SHARE_DECIMALS = 3  # a share in [0, 1] is typed to 0.1 %: the papers quote 12.4 %, 23.5 %, 9.8 %


def float_decimals(p: Param) -> int:
    """Decimals a float widget needs: its registry step's, its default's, and 0.1 % for a share."""
    share = p.min is not None and p.max is not None and -1.0 <= float(p.min) and float(p.max) <= 1.0
    return max(_decimals(p.step), _decimals(p.default), SHARE_DECIMALS if share else 0)


def plan_step(spec: MethodSpec, values: dict) -> dict:
    """A validated plan step from widget values (``auto`` → unset)."""
    given = {}
    for p in spec.params:
        if p.name not in values:
            continue
        v = values[p.name]
        if p.optional and isinstance(v, str) and v.strip().lower() in (AUTO, "", "none"):
            v = None
        given[p.name] = v
    return {"method": spec.name, **spec.validate(given)}


def make_stage_node(spec: MethodSpec) -> type:
    """A node class for one registered method: its params as widgets, an optional plan in, plan out."""

    def INPUT_TYPES(cls):
        return {"required": {p.name: param_input(p) for p in spec.params},
                "optional": {"plan": (PLAN, {"tooltip": PLAN_TOOLTIP})}}

    def VALIDATE_INPUTS(cls, **values):
        known = {k: v for k, v in values.items() if k != "plan" and v is not None and not isinstance(v, list)}
        try:
            plan_step(spec, known)
        except PlanError as e:
            return str(e)
        return True

    # ComfyUI skips its own type/min/max/list checks for every input VALIDATE_INPUTS names (all of
    # them for **kwargs) and repeats a failure once per named input. So the hook names only the
    # text widgets where "auto" stands for a number; ComfyUI checks the rest against INPUT_TYPES.
    text_params = [p.name for p in spec.params if p.optional]
    hooks = {}
    if text_params:
        arg = inspect.Parameter.POSITIONAL_OR_KEYWORD  # ComfyUI reads argspec.args, not kwonly
        VALIDATE_INPUTS.__signature__ = inspect.Signature(
            [inspect.Parameter("cls", arg)] + [inspect.Parameter(n, arg, default=None) for n in text_params])
        hooks["VALIDATE_INPUTS"] = classmethod(VALIDATE_INPUTS)

    def extend(self, plan=None, **values):
        return (list(plan or []) + [plan_step(spec, values)],)

    kind = {"pre": "pre-LLM stage", "layer": "layer stage", "cache": "KV-cache stage",
            "mixed": "several stages (before the LLM, inside it or on the KV cache)"}.get(spec.kind, spec.kind)
    return type(f"VideoPrune{spec.node}", (), {
        "__doc__": spec.summary,
        "DESCRIPTION": f"{spec.title} ({kind}). {spec.summary} Paper: {spec.paper}.",
        "CATEGORY": f"{ROOT}/stages/{spec.category}",
        "RETURN_TYPES": (PLAN,),
        "RETURN_NAMES": ("plan",),
        "OUTPUT_TOOLTIPS": ("The incoming plan with this stage appended.",),
        "FUNCTION": "extend",
        "METHOD": spec.name,
        "INPUT_TYPES": classmethod(INPUT_TYPES),
        **hooks,
        "extend": extend,
    })


# ---------------------------------------------------------------- outputs

class VideoPruneAnswer:
    DESCRIPTION = ("Answer a question about the frames with the model, pruning visual tokens by the plan. Shows "
                   "the answer with its timing and retention; the result feeds Overlay and Report nodes.")
    CATEGORY = f"{ROOT}/output"
    RETURN_TYPES = ("STRING", RESULT)
    RETURN_NAMES = ("answer", "result")
    OUTPUT_TOOLTIPS = ("The generated answer.", "Kept tokens per stage, timings, FLOPs, KV-cache size.")
    FUNCTION = "answer"
    OUTPUT_NODE = True
    RESULT_AREA = (300, 330)  # (width, height) the editor needs to show the result; see uiformat.to_ui

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "From Load Video LLM."}),
                "frames": ("IMAGE", {"tooltip": "Video frames [T, H, W, 3] (Load Video, or VideoHelperSuite)."}),
                "question": ("STRING", {"default": DEFAULT_QUESTION, "multiline": True,
                                        "tooltip": "The question to answer about the video. A built-in sample clip "
                                                   "wired to sample_question brings its own question instead."}),
                "max_new_tokens": ("INT", {"default": 16, "min": 1, "max": 4096, "step": 1,
                                           "tooltip": "Longest answer, in tokens."}),
            },
            "optional": {
                "plan": (PLAN, {"tooltip": "Pruning plan from the last stage node; none = no pruning."}),
                "label": ("STRING", {"default": "",
                                     "tooltip": "Name of this run in reports (empty = the plan, e.g. fastv:layer=2)."}),
                "sample_question": ("STRING", {
                    "forceInput": True,
                    "tooltip": "Load Video's sample_question. A built-in sample clip sends its question, which is "
                               "asked instead of the question field; a video file sends none, so the question "
                               "field is asked."}),
                "video_info": (VIDEO_INFO, {
                    "tooltip": "Load Video's video_info: source fps and sampled frame indices, for the models whose "
                               "positions or prompt depend on time (Qwen2.5-VL, Qwen3-VL). Without it the frames "
                               "count as 24 fps, as transformers assumes for a video without metadata."}),
                "positions": (["original", "compact"], {
                    "default": "original",
                    "tooltip": "original: kept tokens keep their positions in the unpruned prompt; compact: the "
                               "tokens entering the LLM are re-encoded as the new input (the papers' own code)."}),
                "num_frames": ("INT", {
                    "default": DEFAULT_ANSWER_FRAMES, "min": 0, "max": 4096, "step": 1,
                    "tooltip": "Frames the model sees: a longer incoming batch (e.g. all 152 frames from "
                               "VideoHelperSuite's Load Video) is subsampled uniformly to this many, as Load "
                               "Video samples a file; 0 = every incoming frame."}),
                "timing_repeats": ("INT", {
                    "default": 1, "min": 1, "max": 20, "step": 1,
                    "tooltip": "Run the prefill this many times and report the median timings (with their "
                               "spread); the answer comes from the first run. 1 = one run."}),
            },
        }

    def answer(self, model, frames, question, max_new_tokens, plan=None, label="", sample_question=None,
               video_info=None, positions="original", num_frames=DEFAULT_ANSWER_FRAMES, timing_repeats=1):
        from pruning_core.registry import format_plan
        from pruning_core.repeats import median_of_repeats
        from pruning_core.video import frames_from_array
        if not isinstance(model, models.LoadedModel):
            raise VideoPruneError("the model input must come from a VideoPrune Load Video LLM node")
        question = (sample_question if isinstance(sample_question, str) and sample_question.strip() else
                    question if isinstance(question, str) else "").strip()
        if not question:
            raise VideoPruneError("the question is empty; type one in the Answer node's question field")
        frames, timing, given = subsample_frames(frames, video_info, num_frames)
        shape = tuple(getattr(frames, "shape", ()))
        if len(shape) == 4:  # refuse a clip longer than the context before converting or encoding it
            model.engine.check_fits(shape[0], shape[1], shape[2], question, max_new_tokens)
        n = shape[0] if len(shape) == 4 else 1
        n_layers = model.info.num_layers
        # one bar from the first frame on: converting, hashing, resizing, encoding frames, then layers, tokens
        # prepare = the prompt and embeddings once the frames are encoded (and a cached encoding's
        # whole share); stages = the pre-LLM stages; it ends full even when end-of-sequence comes early
        bar = PhasedProgress({"converting frames": n, "hashing frames": n, "resizing frames": n,
                              "encoding frames": n, "prepare": 1, "stages": len(plan or []),
                              "prefill": n_layers, "decode": max_new_tokens})
        with checkpoints.watching(context.interrupted, bar.update):
            u8 = frames_from_array(frames)
            prep = model.prepare(u8, question, timing)
            bar.update("prepare", 1, 1)
            res = model.engine.run(prep, list(plan or []), max_new_tokens=max_new_tokens, progress=bar.update,
                                   interrupt=context.interrupted, positions=positions)
            res = median_of_repeats(res, lambda: model.engine.run(
                prep, list(plan or []), max_new_tokens=1, interrupt=context.interrupted, positions=positions),
                int(timing_repeats))
        bar.finish()
        rec = RunRecord((label or "").strip() or format_plan(res.plan), res, u8, model.name, question, given)
        row = summary_row(rec)
        if given > int(u8.shape[0]):
            print(f"[VideoPrune] Answer: {given} incoming frames, {int(u8.shape[0])} sampled uniformly "
                  f"(num_frames={num_frames}; 0 = all)", file=sys.stderr, flush=True)
        ui = {"text": [res.answer], "videoprune": [row]}
        warning = builtin_warning(model.adapter, u8, question)
        if warning:
            print(f"[VideoPrune] warning: {warning}", file=sys.stderr, flush=True)
            row["warning"] = warning
            ui["warnings"] = [warning]
        return {"ui": ui, "result": (res.answer, rec)}


def subsample_frames(frames, video_info, num_frames: int):
    """``frames`` (and their timing from ``video_info``) cut to ``num_frames`` uniformly sampled ones.

    The same rule as Load Video's sampling of a file (``pruning_core.video.sample_indices``), so an
    external batch (VideoHelperSuite's every frame) costs what a Load Video clip of that count does.
    Returns (frames, timing or None, the incoming frame count).
    """
    from pruning_core.timing import VideoTiming
    from pruning_core.video import sample_indices
    shape = tuple(getattr(frames, "shape", ()))
    given = int(shape[0]) if len(shape) == 4 else 1
    timing = VideoTiming.from_info(video_info, given)
    idx = sample_indices(given, int(num_frames or 0))
    if len(shape) != 4 or len(idx) == given:
        return frames, timing, given
    frames = frames[idx]  # torch and numpy both take an int64 index array
    if timing is not None:
        stamps = [timing.timestamps[i] for i in idx] if timing.timestamps else None
        timing = VideoTiming.of(timing.fps, [timing.indices[i] for i in idx], timing.source_frames, stamps)
    return frames, timing, given


class PhasedProgress:
    """One progress bar over consecutive phases of known length (unknown phases are ignored).

    A phase may report in its own units (``done`` of ``total``): it is scaled to its share of the
    bar. The bar never moves back, so a phase that is skipped (a cached encoding) or cut short
    (end-of-sequence before ``max_new_tokens``) simply jumps; ``finish`` fills it.
    """

    def __init__(self, phases: dict[str, int]):
        self.offsets, self.sizes, total = {}, {}, 0
        for name, size in phases.items():
            self.offsets[name], self.sizes[name] = total, max(int(size), 0)
            total += self.sizes[name]
        self.total, self.value = total, 0
        self.bar = context.Progress(total)

    def update(self, phase: str, done: int, total: int) -> None:
        if phase not in self.offsets:
            return
        size = self.sizes[phase]
        part = size if total <= 0 else min(size, (size * int(done)) // int(total))
        self._move(self.offsets[phase] + part)

    def finish(self) -> None:
        self._move(self.total)

    def _move(self, value: int) -> None:
        if value > self.value:
            self.value = value
            self.bar.update(value)


class VideoPruneOverlay:
    DESCRIPTION = ("Draw which visual tokens a stage kept on the frames it saw: pruned cells dimmed, the kept "
                   "region outlined, a retention bar per frame, plus a per-frame retention strip.")
    CATEGORY = f"{ROOT}/output"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("overlay", "retention_strip")
    OUTPUT_TOOLTIPS = ("Frames with the kept tokens drawn.", "One bar per frame: the share of its tokens kept.")
    FUNCTION = "draw"
    OUTPUT_NODE = True
    RESULT_AREA = (300, 300)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "result": (RESULT, {"tooltip": "From an Answer node."}),
                "stage": ("INT", {"default": -1, "min": -1, "max": 255, "step": 1,
                                  "tooltip": "Which stage's kept tokens to draw, 0-based in plan order; -1 = the last."}),
                "dim": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.05,
                                  "tooltip": "Brightness left to pruned cells (0 = black, 1 = unchanged)."}),
            },
            "optional": {
                "frames": ("IMAGE", {"tooltip": "Draw on these frames instead (e.g. full-resolution originals); "
                                                "must be the same frames the run saw."}),
            },
        }

    def draw(self, result, stage, dim, frames=None):
        from pruning_core.overlay import frame_retention, overlay_frames, retention_strip
        from pruning_core.video import frames_from_array, frames_to_image
        kept = result.result.kept_ids
        if not -1 <= stage < len(kept):
            raise VideoPruneError(f"stage {stage} does not exist: this run has {len(kept)} stage(s), "
                                  f"use 0..{len(kept) - 1} or -1 for the last")
        ids = kept[stage]
        u8 = frames_from_array(frames) if frames is not None else result.frames
        drawn = overlay_frames(u8, result.layout, ids, dim=dim)
        strip = retention_strip(result.layout, ids, width=max(drawn.shape[2], 4 * result.layout.num_frames),
                                height=max(24, drawn.shape[1] // 3))
        images = save_previews(list(drawn) + [strip], "overlay")
        ratios = [round(float(r), 4) for r in frame_retention(result.layout, ids)]
        stages = list(getattr(result.result, "stages", []) or [])
        drawn_stage = stages[stage] if len(stages) == len(kept) else None
        strip_info = {"label": result.label, "frame_retention": ratios,
                      "stage": drawn_stage.name if drawn_stage is not None else "",
                      "retention": round(float(ids.numel()) / max(result.layout.num_tokens, 1), 4)}
        return {"ui": {"images": images, "videoprune_strip": [strip_info]},
                "result": (frames_to_image(drawn), frames_to_image(strip[None]))}


class VideoPruneReport:
    DESCRIPTION = ("Compare runs: a table (retention, equivalent retention, FLOPs, TTFT, decode speed, KV cache, "
                   "pruning overhead, answer) and a latency/retention chart.")
    CATEGORY = f"{ROOT}/output"
    RETURN_TYPES = ("STRING", "IMAGE")
    RETURN_NAMES = ("table", "chart")
    OUTPUT_TOOLTIPS = ("Markdown table, one row per run.", "Retention and time-to-first-token bars per run.")
    FUNCTION = "report"
    OUTPUT_NODE = True
    RESULT_AREA = (520, 420)

    @classmethod
    def INPUT_TYPES(cls):
        optional = {f"result_{i}": (RESULT, {"tooltip": f"Run {i} (optional)."})
                    for i in range(2, MAX_REPORT_RESULTS + 1)}
        return {"required": {"result_1": (RESULT, {"tooltip": "Run 1, from an Answer node."})},
                "optional": optional}

    def report(self, result_1, **more):
        from pruning_core.video import frames_to_image
        recs = [result_1] + [more[f"result_{i}"] for i in range(2, MAX_REPORT_RESULTS + 1)
                             if more.get(f"result_{i}") is not None]
        rows = [summary_row(r) for r in recs]
        md = table(rows)
        img = chart(rows)
        return {"ui": {"text": [md], "images": save_previews([img], "report"), "videoprune_report": rows},
                "result": (md, frames_to_image(img[None]))}


# ---------------------------------------------------------------- mappings

def _build() -> tuple[dict[str, type], dict[str, str]]:
    classes: dict[str, type] = {"VideoPruneLoadModel": VideoPruneLoadModel,
                                "VideoPruneLoadVideo": VideoPruneLoadVideo}
    names = {"VideoPruneLoadModel": "Load Video LLM (VideoPrune)", "VideoPruneLoadVideo": "Load Video (VideoPrune)"}
    for spec in methods().values():
        if spec.name == "none":  # an absent stage is "no pruning"
            continue
        cls = make_stage_node(spec)
        classes[cls.__name__] = cls
        names[cls.__name__] = f"{spec.title} (VideoPrune)"
    for cls, title in ((VideoPruneAnswer, "Answer (VideoPrune)"), (VideoPruneOverlay, "Kept-Token Overlay (VideoPrune)"),
                       (VideoPruneReport, "Compare / Report (VideoPrune)")):
        classes[cls.__name__] = cls
        names[cls.__name__] = title
    return classes, names


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _build()


def stage_class_for(method: str) -> str:
    """The node id of a registered method, e.g. ``fastv`` → ``VideoPruneFastV``."""
    for cid, cls in NODE_CLASS_MAPPINGS.items():
        if getattr(cls, "METHOD", None) == method:
            return cid
    raise KeyError(method)


routes.register()  # inside ComfyUI: the sample clips' preview videos

__all__: list[Any] = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "stage_class_for"]
