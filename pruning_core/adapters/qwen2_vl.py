"""Qwen2-VL and Qwen2.5-VL adapters.

Video path (transformers 5.23): frames padded to an even count (temporal patch 2), resized by
``smart_resize`` to multiples of patch·merge, patchified; the 2×2 merger yields LLM tokens in
(t, h/2, w/2) raster order. Positions are 3-row M-RoPE ids from the model's ``get_rope_index``.
"""
from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import torch

from ..errors import ModelLoadError
from ..layout import TokenLayout
from ..pixels import frames_to_pixels
from ..preprocessing import smart_resize  # noqa: F401  (re-exported: the resize rule lives in preprocessing)
from ..timing import VideoTiming, sampled_fps
from ..vision_attention import ProjectionRecorder
from ..vision_tower import frame_progress, is_lean_qwen, qwen_tower
from .base import Adapter, Encoding, Timer, VisionAccess

PROMPT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
          "<|vision_start|><|video_pad|><|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n")
"""The Qwen2-VL template's rendering; used only for checkpoints without a chat template."""


class Qwen2VLAdapter(Adapter):
    backbone = "qwen2_vl"
    fallback_prompt = PROMPT

    def __init__(self, model, tokenizer, name: str = "", preprocessing=None, folder: str | None = None):
        super().__init__(model, tokenizer, name, preprocessing, folder)
        vc = model.config.vision_config
        model_geom = (int(vc.patch_size), int(vc.spatial_merge_size), int(vc.temporal_patch_size))
        proc_geom = (self.pre.patch_size, self.pre.merge_size, self.pre.temporal_patch_size)
        if proc_geom != model_geom:
            raise ModelLoadError(f"{self.name}: the processor's patch/merge/temporal sizes {proc_geom} do not match "
                                 f"the vision config's {model_geom}")
        self.patch, self.merge, self.temporal = model_geom
        self._rope_delta = 0

    # min/max pixels live in the preprocessing; settable for callers that cap the budget
    @property
    def min_pixels(self) -> int:
        return self.pre.min_pixels

    @min_pixels.setter
    def min_pixels(self, v: int) -> None:
        self.pre = self.pre.with_pixels(min_pixels=v)

    @property
    def max_pixels(self) -> int:
        return self.pre.max_pixels

    @max_pixels.setter
    def max_pixels(self, v: int) -> None:
        self.pre = self.pre.with_pixels(max_pixels=v)

    def pixel_values(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(flattened patches [t·h·w, C·tp·p·p], grid_thw [1, 3]) exactly as Qwen2VLVideoProcessor."""
        return self.patchify(frames_to_pixels(frames, self.pre))

    def patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised frames [T, C, h, w] → (patches in merge-window order, grid_thw), T padded to the temporal patch."""
        h, w = x.shape[-2:]
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
    def vision_forward(self, pv: torch.Tensor, grid: torch.Tensor, capture: bool = False):
        """(the tower's ``get_video_features``-shaped output, the last block's captured input, kwargs and q/k).

        Qwen2-VL / Qwen2.5-VL towers run lean (``vision_tower.qwen_tower``: batched segment SDPA, the patch
        embedding as one matmul; progress and interruption between blocks); others (Qwen3-VL) run stock."""
        visual = self.model.model.visual
        recorder = ProjectionRecorder(self._last_block()) if capture else nullcontext()
        captured: dict = {}
        if is_lean_qwen(visual):
            frames = int(grid[0, 0]) * self.temporal
            with recorder:
                got = qwen_tower(visual, pv.to(self.device, self.dtype), grid.to(self.device), capture,
                                 frame_progress("encoding frames", 0, frames, frames))
            out = SimpleNamespace(pooler_output=(got.features,))
            if capture:
                captured = {"input": got.layer_input, "kwargs": got.layer_kwargs}
        else:
            handle = None
            if capture:
                def hook(_mod, args, kwargs):
                    captured["input"] = args[0].detach()
                    captured["kwargs"] = dict(kwargs)
                handle = self._last_block().register_forward_pre_hook(hook, with_kwargs=True)
            try:
                with recorder:
                    out = self.model.model.get_video_features(pv.to(self.device, self.dtype), grid.to(self.device))
            finally:
                if handle is not None:
                    handle.remove()
        if capture:
            captured["qk"] = recorder.qk()
        return out, captured

    def encoding_extras(self, out, frames: np.ndarray, timing: VideoTiming | None) -> dict:
        """Backbone-specific ``Encoding`` fields from the tower's output (Qwen3-VL: DeepStack, timestamps)."""
        return {}

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray, capture: bool = True, timing: VideoTiming | None = None) -> Encoding:
        with Timer() as t:
            pv, grid = self.pixel_values(frames)
            out, captured = self.vision_forward(pv, grid, capture)
            embeds = torch.cat(list(out.pooler_output), 0)
            extras = self.encoding_extras(out, frames, timing)
        gt, gh, gw = (int(v) for v in grid[0])
        layout = TokenLayout(gt, gh // self.merge, gw // self.merge, frames_per_step=self.temporal)
        vision = None
        if capture and "input" in captured:
            vision = VisionAccess(self.backbone, self._last_block(), captured["input"], captured["kwargs"],
                                  gh * gw, self._pooler(grid), qk=captured.get("qk"))
        return Encoding(embeds=embeds, layout=layout, grid_thw=grid.to(self.device), vision=vision, encode_ms=t.ms,
                        timing=timing, **extras)

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

    def visual_token_count(self, num_frames: int, height: int, width: int) -> int:
        factor = self.patch * self.merge
        try:
            h, w = self.pre.output_size(height, width, num_frames)
        except ValueError as e:
            from ..errors import VideoError
            raise VideoError(f"frames of {width}x{height}: {e}") from None
        return -(-num_frames // self.temporal) * (h // factor) * (w // factor)

    def mm_token_type_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        return (input_ids == int(self.model.config.video_token_id)).int() * 2

    def rope_index_kwargs(self, enc: Encoding) -> dict:
        return {}

    def position_ids(self, input_ids: torch.Tensor, enc: Encoding):
        pos, delta = self.model.model.get_rope_index(input_ids, self.mm_token_type_ids(input_ids),
                                                     video_grid_thw=enc.grid_thw, **self.rope_index_kwargs(enc))
        return pos, int(delta.reshape(-1)[0])

    def decode_position_ids(self, position: int) -> torch.Tensor:
        # ``position`` already includes the rope delta (the engine adds it)
        return torch.full((3, 1, 1), position, dtype=torch.long, device=self.device)


class Qwen25VLAdapter(Qwen2VLAdapter):
    backbone = "qwen2_5_vl"

    def second_per_grid_ts(self, timing: VideoTiming | None) -> float:
        """Seconds one temporal grid step spans: temporal_patch_size / sampled fps (Qwen2_5_VLProcessor)."""
        return self.temporal / sampled_fps(timing)

    def rope_index_kwargs(self, enc: Encoding) -> dict:
        # temporal M-RoPE ids step by tokens_per_second * second_per_grid_ts per grid
        return {"second_per_grid_ts": torch.tensor([self.second_per_grid_ts(enc.timing)], device=self.device)}

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

