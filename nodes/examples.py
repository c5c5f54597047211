"""The shipped example workflows (``example_workflows/*.json``, ComfyUI's template-folder convention).

Each is defined here once and written in UI format with ``python -m nodes examples``; each
needs only the methods it names to be registered. They all use the built-in model and a
built-in sample clip, so they run anywhere, headless or in ComfyUI.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from pruning_core.registry import methods

from .uiformat import GraphBuilder

FRAMES = 16
TOKENS = 8


def _base(g: GraphBuilder, sample: str = "sample-0") -> tuple[int, int]:
    model = g.add("VideoPruneLoadModel", model="builtin")
    video = g.add("VideoPruneLoadVideo", video=sample, num_frames=FRAMES, max_side=0)
    return model, video


def _answer(g: GraphBuilder, model: int, video: int, plan: int | None, label: str) -> int:
    extra = {"plan": (plan, 0)} if plan is not None else {}
    return g.add("VideoPruneAnswer", title=f"Answer: {label}", model=(model, 0), frames=(video, 0),
                 sample_question=(video, 2), video_info=(video, 1), max_new_tokens=TOKENS, label=label, **extra)


def sharp_vs_fastv(g: GraphBuilder) -> None:
    g.note("ShaRP (segment-aware pruning at layer 1, 23.5% kept) against FastV (layer 2, 25% kept) and the "
           "unpruned model, on the built-in model and a sample clip. The overlays show which tokens each kept; "
           "the report compares retention, FLOPs and time to first token.")
    model, video = _base(g)
    sharp = g.add("VideoPruneShaRP")
    fastv = g.add("VideoPruneFastV", layer=2, retention=0.25)
    full = _answer(g, model, video, None, "unpruned")
    a_sharp = _answer(g, model, video, sharp, "ShaRP")
    a_fastv = _answer(g, model, video, fastv, "FastV")
    g.add("VideoPruneOverlay", title="Kept tokens: ShaRP", result=(a_sharp, 1), stage=-1, dim=0.3)
    g.add("VideoPruneOverlay", title="Kept tokens: FastV", result=(a_fastv, 1), stage=-1, dim=0.3)
    g.add("VideoPruneReport", result_1=(full, 1), result_2=(a_sharp, 1), result_3=(a_fastv, 1))


def sharpv_visual_memory(g: GraphBuilder) -> None:
    g.note("SharpV: adaptive per-frame visual pruning before the LLM, then the memory stage withdraws visual "
           "KV entries whose values drift from their inputs (cos < M). Chained: visual → memory → Answer.")
    model, video = _base(g, "sample-1")
    visual = g.add("VideoPruneSharpV")
    memory = g.add("VideoPruneSharpVMemory", plan=(visual, 0))
    full = _answer(g, model, video, None, "unpruned")
    a_visual = _answer(g, model, video, visual, "SharpV visual")
    a_both = _answer(g, model, video, memory, "SharpV visual + memory")
    g.add("VideoPruneOverlay", title="Kept tokens: SharpV visual stage", result=(a_both, 1), stage=0, dim=0.3)
    g.add("VideoPruneReport", result_1=(full, 1), result_2=(a_visual, 1), result_3=(a_both, 1))


def hieravid(g: GraphBuilder) -> None:
    g.note("HieraVid: segment-level merging, segment budgets, relevance-weighted DPP, then a multi-stage layer "
           "schedule whose FLOPs match the target retention (30%).")
    model, video = _base(g, "sample-2")
    hv = g.add("VideoPruneHieraVid")
    full = _answer(g, model, video, None, "unpruned")
    a_hv = _answer(g, model, video, hv, "HieraVid")
    g.add("VideoPruneOverlay", title="Kept tokens: HieraVid (first stage)", result=(a_hv, 1), stage=0, dim=0.3)
    g.add("VideoPruneReport", result_1=(full, 1), result_2=(a_hv, 1))


def visionzip_then_sharp(g: GraphBuilder) -> None:
    g.note("A chain: VisionZip keeps 20% of the tokens before the LLM, then ShaRP prunes entering layer 1 down "
           "to 12.4% of the ORIGINAL count (retention is always relative to the original, as in ShaRP Table 3).")
    model, video = _base(g, "sample-3")
    vz = g.add("VideoPruneVisionZip", retention=0.2)
    sharp = g.add("VideoPruneShaRP", retention=0.124, plan=(vz, 0))
    a_vz = _answer(g, model, video, vz, "VisionZip 20%")
    a_chain = _answer(g, model, video, sharp, "VisionZip 20% -> ShaRP 12.4%")
    g.add("VideoPruneOverlay", title="After VisionZip", result=(a_chain, 1), stage=0, dim=0.3)
    g.add("VideoPruneOverlay", title="After ShaRP", result=(a_chain, 1), stage=1, dim=0.3)
    g.add("VideoPruneReport", result_1=(a_vz, 1), result_2=(a_chain, 1))


def holitom_then_sharp(g: GraphBuilder) -> None:
    g.note("ShaRP Table 3's HoliTom + ShaRP: HoliTom's outer-LLM merging keeps 30% before the LLM, then ShaRP "
           "replaces HoliTom's inner-LLM stage and prunes entering layer 1 to 15% of the ORIGINAL count. Next to it: "
           "HoliTom with its own inner merging, and plain spatial downsampling to 25%, the floor.")
    model, video = _base(g, "sample-1")
    outer = g.add("VideoPruneHoliTom", retention=0.3, inner=False)
    sharp = g.add("VideoPruneShaRP", retention=0.15, plan=(outer, 0))
    holi = g.add("VideoPruneHoliTom", retention=0.3)
    down = g.add("VideoPruneDownsample", retention=0.25)
    full = _answer(g, model, video, None, "unpruned")
    a_chain = _answer(g, model, video, sharp, "HoliTom 30% -> ShaRP 15%")
    a_holi = _answer(g, model, video, holi, "HoliTom 30% (+ inner merging)")
    a_down = _answer(g, model, video, down, "Downsample 25%")
    g.add("VideoPruneOverlay", title="After HoliTom (outer)", result=(a_chain, 1), stage=0, dim=0.3)
    g.add("VideoPruneOverlay", title="After ShaRP", result=(a_chain, 1), stage=1, dim=0.3)
    g.add("VideoPruneReport", result_1=(full, 1), result_2=(a_chain, 1), result_3=(a_holi, 1), result_4=(a_down, 1))


COMPARE = (("VideoPruneRandom", {"retention": 0.25}), ("VideoPruneUniform", {"retention": 0.25}),
           ("VideoPruneFastV", {"layer": 2, "retention": 0.25}), ("VideoPrunePDrop", {}),
           ("VideoPruneVisionZip", {"retention": 0.25}), ("VideoPruneDivPrune", {"retention": 0.25}),
           ("VideoPruneShaRP", {"retention": 0.25}))


def compare_methods(g: GraphBuilder) -> None:
    g.note("Several methods at about 25% of the visual tokens, each in its own Answer node, all feeding one "
           "Report: retention, equivalent retention, FLOPs, time to first token, KV cache and answers side by side.")
    model, video = _base(g, "sample-4")
    results = {"result_1": (_answer(g, model, video, None, "unpruned"), 1)}
    for i, (cid, params) in enumerate(COMPARE, start=2):
        stage = g.add(cid, **params)
        results[f"result_{i}"] = (_answer(g, model, video, stage, cid.removeprefix("VideoPrune")), 1)
    g.add("VideoPruneReport", **results)


# file name -> (builder, registered methods it needs)
EXAMPLES: dict[str, tuple[Callable[[GraphBuilder], None], tuple[str, ...]]] = {
    "sharp_vs_fastv": (sharp_vs_fastv, ("sharp", "fastv")),
    "sharpv_visual_memory": (sharpv_visual_memory, ("sharpv", "sharpv_memory")),
    "hieravid": (hieravid, ("hieravid",)),
    "visionzip_then_sharp": (visionzip_then_sharp, ("visionzip", "sharp")),
    "holitom_then_sharp": (holitom_then_sharp, ("holitom", "sharp", "downsample")),
    "compare_methods": (compare_methods, ("random", "uniform", "fastv", "pdrop", "visionzip", "divprune", "sharp")),
}


def missing_methods(name: str) -> list[str]:
    known = methods()
    return [m for m in EXAMPLES[name][1] if m not in known]


def build(name: str, classes) -> dict:
    g = GraphBuilder(classes)
    EXAMPLES[name][0](g)
    return g.to_ui(title=name)


def write_examples(folder: str | Path, classes) -> list[Path]:
    """Write every example whose methods are registered; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXAMPLES:
        if missing_methods(name):
            continue
        path = folder / f"{name}.json"
        path.write_text(json.dumps(build(name, classes), indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written
