"""LLaVA-OneVision / LLaVA-Video adapter (transformers ``LlavaOnevisionForConditionalGeneration``).

Video path (transformers 5.23): SigLIP features of each frame → projector → bilinear resize of
the patch grid to ceil(H/2)×ceil(W/2) (196 tokens for 27×27) row-major → ONE ``image_newline``
after the last frame. The newline is a non-prunable extra; the layout covers F·h·w tokens.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch

from ..checkpoints import checkpoint
from ..layout import TokenLayout
from ..pixels import frames_to_pixels
from ..timing import VideoTiming
from ..vision_attention import ProjectionRecorder
from .base import Adapter, Encoding, Timer, VisionAccess

PROMPT = "<|im_start|>user <video>\n{question}<|im_end|>\n<|im_start|>assistant\n"
"""The llava-hf OneVision template's rendering; used only for checkpoints without a chat template."""


ENCODE_CHUNK = 8  # frames per vision-tower call (interruption is checked between calls)


class LlavaOneVisionAdapter(Adapter):
    backbone = "llava_onevision"
    fallback_prompt = PROMPT

    def __init__(self, model, tokenizer, name: str = "", preprocessing=None, folder: str | None = None):
        super().__init__(model, tokenizer, name, preprocessing, folder)
        vc = model.config.vision_config
        self.patch_grid = int(vc.image_size) // int(vc.patch_size)
        self.token_grid = math.ceil(self.patch_grid / 2)

    @property
    def image_size(self) -> int:
        return self.pre.output_size(1, 1)[0]

    # frames → pixels as LlavaOnevisionVideoProcessor: uint8 antialiased resize per frame, fused rescale+normalise
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        return frames_to_pixels(frames, self.pre).unsqueeze(0)

    def _feature_layer_module(self):
        tower = self.model.model.vision_tower
        layers = getattr(tower, "vision_model", tower).encoder.layers
        f = self.model.config.vision_feature_layer
        f = f[-1] if isinstance(f, (list, tuple)) else f
        idx = f % (len(layers) + 1)  # hidden_states[idx] is the output of layers[idx-1]
        return layers[max(idx - 1, 0)]

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray, capture: bool = True, timing: VideoTiming | None = None) -> Encoding:
        m = self.model
        cfg = m.config
        captured: dict = {}
        handle = None
        inputs: list[torch.Tensor] = []
        if capture:
            def hook(_mod, args, kwargs):
                inputs.append(args[0].detach())
                captured.setdefault("kwargs", {k: v for k, v in kwargs.items() if torch.is_tensor(v) or v is None})
            handle = self._feature_layer_module().register_forward_pre_hook(hook, with_kwargs=True)
        recorder = ProjectionRecorder(self._feature_layer_module()) if capture else nullcontext()
        try:
            with Timer() as t, recorder:
                pv = self.pixel_values(frames).to(self.device, self.dtype)
                # SigLIP sees each frame alone, so frames are encoded a chunk at a time: the result is the
                # same, and a long clip can be stopped between chunks. The model appends one image_newline
                # per call: keep the last only.
                parts = []
                for s in range(0, pv.shape[1], ENCODE_CHUNK):
                    out = m.model.get_video_features(
                        pixel_values_videos=pv[:, s:s + ENCODE_CHUNK],
                        vision_feature_layer=cfg.vision_feature_layer,
                        vision_feature_select_strategy=cfg.vision_feature_select_strategy,
                    )
                    parts.append(out.pooler_output[0])
                    checkpoint("encoding frames", min(s + ENCODE_CHUNK, pv.shape[1]), pv.shape[1])
                feats = torch.cat([p[:-1] for p in parts[:-1]] + parts[-1:], 0)
        finally:
            if handle is not None:
                handle.remove()
        if inputs:
            captured["input"] = torch.cat(inputs, 0)
        n_frames = frames.shape[0]
        layout = TokenLayout(n_frames, self.token_grid, self.token_grid)
        embeds, extra = feats[: layout.num_tokens], feats[layout.num_tokens:]
        vision = None
        if capture and "input" in captured:
            vision = VisionAccess(self.backbone, self._feature_layer_module(), captured["input"], captured["kwargs"],
                                  self.patch_grid ** 2, self.pool_to_tokens, qk=recorder.qk())
        return Encoding(embeds=embeds, layout=layout, extra=extra, vision=vision, encode_ms=t.ms, timing=timing)

    def pool_to_tokens(self, values: torch.Tensor) -> torch.Tensor:
        """Per-patch values [F·P, ...] → per-token [F·h·w, ...] by the same bilinear resize the model applies."""
        g = self.patch_grid
        rest = values.shape[1:]
        x = values.reshape(-1, g, g, int(np.prod(rest)) if rest else 1).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, size=(self.token_grid, self.token_grid), mode="bilinear")
        return x.permute(0, 2, 3, 1).reshape(-1, *rest) if rest else x.permute(0, 2, 3, 1).reshape(-1)

    @torch.no_grad()
    def encode_black(self, layout: TokenLayout, like: np.ndarray) -> torch.Tensor:
        one = np.zeros((1, *like.shape[1:]), dtype=np.uint8)
        enc = self.encode_video(one, capture=False)
        return enc.embeds.repeat(layout.num_frames, 1)

    def visual_token_count(self, num_frames: int, height: int, width: int) -> int:
        # every frame is resized to image_size², so the size does not matter; + one image_newline
        return num_frames * self.token_grid ** 2 + 1

    def position_ids(self, input_ids: torch.Tensor, enc: Encoding):
        return torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0), 0
