"""LLaVA-OneVision / LLaVA-Video adapter (transformers ``LlavaOnevisionForConditionalGeneration``).

Video path (transformers 5.23): SigLIP features of each frame → projector → bilinear resize of
the patch grid to ceil(H/2)×ceil(W/2) (196 tokens for 27×27) row-major → ONE ``image_newline``
after the last frame. The newline is a non-prunable extra; the layout covers F·h·w tokens.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..layout import TokenLayout
from .base import (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Adapter, Encoding, Timer, VisionAccess, normalize_pixels,
                   resize_bicubic, to_float_frames)

PROMPT = "<|im_start|>user <video>\n{question}<|im_end|>\n<|im_start|>assistant\n"


class LlavaOneVisionAdapter(Adapter):
    backbone = "llava_onevision"

    def __init__(self, model, tokenizer, name: str = "", image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD):
        super().__init__(model, tokenizer, name)
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        vc = model.config.vision_config
        self.image_size = int(vc.image_size)
        self.patch_grid = self.image_size // int(vc.patch_size)
        self.token_grid = math.ceil(self.patch_grid / 2)

    # frames → pixels exactly as LlavaOnevisionVideoProcessor: bicubic resize to image_size², 1/255, CLIP norm
    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        x = resize_bicubic(to_float_frames(frames), (self.image_size, self.image_size))
        return normalize_pixels(x, self.image_mean, self.image_std).unsqueeze(0)

    def _feature_layer_module(self):
        tower = self.model.model.vision_tower
        layers = getattr(tower, "vision_model", tower).encoder.layers
        f = self.model.config.vision_feature_layer
        f = f[-1] if isinstance(f, (list, tuple)) else f
        idx = f % (len(layers) + 1)  # hidden_states[idx] is the output of layers[idx-1]
        return layers[max(idx - 1, 0)]

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray, capture: bool = True) -> Encoding:
        m = self.model
        cfg = m.config
        captured: dict = {}
        handle = None
        if capture:
            def hook(_mod, args, kwargs):
                captured["input"] = args[0].detach()
                captured["kwargs"] = {k: v for k, v in kwargs.items() if torch.is_tensor(v) or v is None}
            handle = self._feature_layer_module().register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with Timer() as t:
                pv = self.pixel_values(frames).to(self.device, self.dtype)
                out = m.model.get_video_features(
                    pixel_values_videos=pv,
                    vision_feature_layer=cfg.vision_feature_layer,
                    vision_feature_select_strategy=cfg.vision_feature_select_strategy,
                )
                feats = out.pooler_output[0]
        finally:
            if handle is not None:
                handle.remove()
        n_frames = frames.shape[0]
        layout = TokenLayout(n_frames, self.token_grid, self.token_grid)
        embeds, extra = feats[: layout.num_tokens], feats[layout.num_tokens:]
        vision = None
        if capture and "input" in captured:
            vision = VisionAccess(self.backbone, self._feature_layer_module(), captured["input"], captured["kwargs"],
                                  self.patch_grid ** 2, self.pool_to_tokens)
        return Encoding(embeds=embeds, layout=layout, extra=extra, vision=vision, encode_ms=t.ms)

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

    def prompt_ids(self, question: str, enc: Encoding):
        count = enc.layout.num_tokens + (0 if enc.extra is None else enc.extra.shape[0])
        vid = self.model.config.video_token_id if hasattr(self.model.config, "video_token_id") \
            else self.model.config.video_token_index
        return self._expand_placeholder(PROMPT.format(question=question.strip()), "<video>", int(vid), count)

    def position_ids(self, input_ids: torch.Tensor, enc: Encoding):
        return torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0), 0
