"""What a run's plan would save on a real checkpoint: the analytic prefill FLOPs (HieraVid eq. 12)
of the same plan on a real-scale preset's dims, with the run's token layout at that scale.

On the built-in model (a few layers, 64 wide) prefill time is call overhead, not arithmetic,
so the measured speedup says little about a 7B model. The projection answers the question a
user has: "if this were LLaVA-OneVision-7B, how much cheaper would this plan make prefill?".

Choices (written down because the issue is silent on them):
* layout at scale: the run's frames (token frames: Qwen2-VL's temporal pairs count once) times
  ``TOKENS_PER_FRAME`` = 196 (SigLIP 27×27 → 14×14, the papers' 32×196 setting), plus LLaVA-OV's
  one ``image_newline``; the run's own text tokens.
* the plan is built on the preset (``flops.flops_report``), so depth-scaled defaults scale to 28
  layers. A plan whose kept count depends on the video (SharpV adaptive, FrameFusion, ...) is
  projected from the run's MEASURED visual share entering every layer instead, layer i of the
  run mapped to layer i of the preset and the run's last share held to the end; ``basis`` says which.
* cache stages (SharpV memory, DyCoke decode) do not change prefill FLOPs: their projection is 1×.
"""
from __future__ import annotations

from typing import Any, Sequence

from pruning_core.errors import VideoPruneError
from pruning_core.flops import ModelDims, flops_report, get_preset, prefill_flops, tokens_per_layer_for

TOKENS_PER_FRAME = 196
REAL_SCALE = {"llava_onevision": "llava-onevision-7b", "qwen2_vl": "qwen2-vl-7b", "qwen2_5_vl": "qwen2.5-vl-7b",
              "qwen3_vl": "qwen3-vl-8b", "qwen3_vl_moe": "qwen3-vl-30b-a3b"}
DEFAULT_PRESET = "llava-onevision-7b"


def real_scale_preset(backbone: str) -> ModelDims:
    """The real-scale checkpoint for a backbone family (LLaVA-OneVision-7B when unknown)."""
    return get_preset(REAL_SCALE.get(str(backbone or ""), DEFAULT_PRESET))


def visual_tokens_at_scale(dims: ModelDims, token_frames: int) -> int:
    return token_frames * TOKENS_PER_FRAME + (1 if dims.backbone == "llava_onevision" else 0)


def measured_schedule(tokens_per_layer: Sequence[int], n_text: int, n_visual: int,
                      num_layers: int, n_visual_scaled: int) -> list[int]:
    """The run's visual share entering each layer, mapped onto ``num_layers`` layers at scale."""
    shares = [max(0.0, min(1.0, (t - n_text) / n_visual)) if n_visual else 1.0 for t in tokens_per_layer]
    if not shares:
        shares = [1.0]
    shares = (shares + [shares[-1]] * num_layers)[:num_layers]
    return [int(round(s * n_visual_scaled)) for s in shares]


def project(plan: Sequence[dict], token_frames: int, n_text: int, tokens_per_layer: Sequence[int],
            n_visual: int, dims: ModelDims) -> dict[str, Any]:
    """``{"speedup", "flops_ratio", "preset", "visual_tokens", "basis"}`` of ``plan`` on ``dims``;
    basis is ``plan`` (analytic) or ``measured`` (the run's per-layer kept share)."""
    nv = visual_tokens_at_scale(dims, max(1, int(token_frames)))
    try:
        rep = flops_report(dims, nv, n_text, list(plan))
    except VideoPruneError:
        rep = None          # a plan the preset cannot build (e.g. a layer past its depth): use what ran
    if rep is not None and not rep["data_dependent"]:
        return {"speedup": rep["speedup_predicted"], "flops_ratio": rep["flops_ratio"], "preset": dims.name,
                "visual_tokens": nv, "basis": "plan"}
    sched = measured_schedule(tokens_per_layer, n_text, n_visual, dims.num_layers, nv)
    d, m = dims.hidden_size, dims.intermediate_size
    f = prefill_flops(tokens_per_layer_for(n_text, nv, sched, dims.num_layers), d, m)
    f0 = prefill_flops([n_text + nv] * dims.num_layers, d, m)
    return {"speedup": f0 / f if f else 1.0, "flops_ratio": f / f0 if f0 else 1.0, "preset": dims.name,
            "visual_tokens": nv, "basis": "measured"}
