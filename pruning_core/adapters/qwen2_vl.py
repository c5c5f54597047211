"""Qwen2-VL and Qwen2.5-VL adapters.

Video path (transformers 5.23): frames padded to an even count (temporal patch 2), resized by
``smart_resize`` to multiples of patch·merge, patchified; the 2×2 merger yields LLM tokens in
(t, h/2, w/2) raster order. Positions are 3-row M-RoPE ids from the model's ``get_rope_index``.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import torch

from ..layout import TokenLayout
from .base import (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Adapter, Encoding, Timer, VisionAccess, normalize_pixels,
                   resize_bicubic, to_float_frames)

PROMPT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
          "<|vision_start|><|video_pad|><|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n")


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resize rule: multiples of ``factor``, pixel count within [min_pixels, max_pixels]."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is above 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


class Qwen2VLAdapter(Adapter):
    backbone = "qwen2_vl"

    def __init__(self, model, tokenizer, name: str = "", min_pixels: int | None = None, max_pixels: int | None = None):
        super().__init__(model, tokenizer, name)
        vc = model.config.vision_config
        self.patch = int(vc.patch_size)
        self.merge = int(vc.spatial_merge_size)
        self.temporal = int(vc.temporal_patch_size)
        proc = _processor_sizes(getattr(model.config, "_name_or_path", ""))
        self.min_pixels = min_pixels or proc.get("min", 128 * 28 * 28)
        self.max_pixels = max_pixels or proc.get("max", 768 * 28 * 28)
        self.mean = tuple(proc.get("mean", OPENAI_CLIP_MEAN))
        self.std = tuple(proc.get("std", OPENAI_CLIP_STD))
        self._rope_delta = 0

    def pixel_values(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(flattened patches [t·h·w, C·tp·p·p], grid_thw [1, 3]) exactly as Qwen2VLVideoProcessor."""
        x = to_float_frames(frames)
        factor = self.patch * self.merge
        h, w = smart_resize(x.shape[-2], x.shape[-1], factor, self.min_pixels, self.max_pixels)
        x = normalize_pixels(resize_bicubic(x, (h, w)), self.mean, self.std)
        if pad := -x.shape[0] % self.temporal:
            x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)], 0)
        t, c = x.shape[0] // self.temporal, x.shape[1]
        gh, gw, m, p = h // self.patch, w // self.patch, self.merge, self.patch
        x = x.view(t, self.temporal, c, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(t * gh * gw, c * self.temporal * p * p)
        return x, torch.tensor([[t, gh, gw]])

    def _last_block(self):
        return self.model.model.visual.blocks[-1]

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray, capture: bool = True) -> Encoding:
        captured: dict = {}
        handle = None
        if capture:
            def hook(_mod, args, kwargs):
                captured["input"] = args[0].detach()
                captured["kwargs"] = dict(kwargs)
            handle = self._last_block().register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with Timer() as t:
                pv, grid = self.pixel_values(frames)
                out = self.model.model.get_video_features(pv.to(self.device, self.dtype), grid.to(self.device))
                embeds = torch.cat(list(out.pooler_output), 0)
        finally:
            if handle is not None:
                handle.remove()
        gt, gh, gw = (int(v) for v in grid[0])
        layout = TokenLayout(gt, gh // self.merge, gw // self.merge, frames_per_step=self.temporal)
        vision = None
        if capture and "input" in captured:
            vision = VisionAccess(self.backbone, self._last_block(), captured["input"], captured["kwargs"],
                                  gh * gw, self._pooler(grid))
        return Encoding(embeds=embeds, layout=layout, grid_thw=grid.to(self.device), vision=vision, encode_ms=t.ms)

    def pool_to_tokens(self, values: torch.Tensor) -> torch.Tensor:
        """Per-patch values (merge-window order) → per-token values: mean over each merge window."""
        k = self.merge * self.merge
        return values.reshape(-1, k, *values.shape[1:]).float().mean(1)

    def _pooler(self, grid: torch.Tensor):
        return self.pool_to_tokens

    @torch.no_grad()
    def encode_black(self, layout: TokenLayout, like: np.ndarray) -> torch.Tensor:
        one = np.zeros((self.temporal, *like.shape[1:]), dtype=np.uint8)
        enc = self.encode_video(one, capture=False)
        return enc.embeds.repeat(layout.num_frames, 1)

    def prompt_ids(self, question: str, enc: Encoding):
        vid = int(self.model.config.video_token_id)
        return self._expand_placeholder(PROMPT.format(question=question.strip()), "<|video_pad|>", vid,
                                        enc.layout.num_tokens)

    def mm_token_type_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        return (input_ids == int(self.model.config.video_token_id)).int() * 2

    def position_ids(self, input_ids: torch.Tensor, enc: Encoding):
        pos, delta = self.model.model.get_rope_index(input_ids, self.mm_token_type_ids(input_ids),
                                                     video_grid_thw=enc.grid_thw)
        return pos, int(delta.reshape(-1)[0])

    def decode_position_ids(self, position: int) -> torch.Tensor:
        # ``position`` already includes the rope delta (the engine adds it)
        return torch.full((3, 1, 1), position, dtype=torch.long, device=self.device)


class Qwen25VLAdapter(Qwen2VLAdapter):
    backbone = "qwen2_5_vl"

    def _pooler(self, grid: torch.Tensor):
        """Qwen2.5-VL's blocks see merge units in window order; undo it as the model does after its merger."""
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import get_vision_window_index
        visual = self.model.model.visual
        window_index, _ = get_vision_window_index(grid.to(self.device), spatial_merge_size=visual.spatial_merge_size,
                                                  window_size=visual.window_size, patch_size=visual.patch_size)
        reverse = torch.argsort(window_index)

        def pool(values: torch.Tensor) -> torch.Tensor:
            return self.pool_to_tokens(values)[reverse.to(values.device)]
        return pool


def _processor_sizes(path: str) -> dict:
    """min/max pixels and normalisation from a local checkpoint's processor config, if present."""
    out: dict = {}
    for fname in ("video_preprocessor_config.json", "preprocessor_config.json"):
        fp = os.path.join(path, fname) if path and os.path.isdir(path) else ""
        if fp and os.path.isfile(fp):
            with open(fp) as f:
                cfg = json.load(f)
            size = cfg.get("size") or {}
            out.setdefault("min", cfg.get("min_pixels") or size.get("shortest_edge"))
            out.setdefault("max", cfg.get("max_pixels") or size.get("longest_edge"))
            if cfg.get("image_mean"):
                out.setdefault("mean", cfg["image_mean"])
                out.setdefault("std", cfg["image_std"])
    return {k: v for k, v in out.items() if v}
