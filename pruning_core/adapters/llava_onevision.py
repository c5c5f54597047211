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


ENCODE_CHUNK = 8  # frames per stock vision-tower call (interruption is checked between calls)
FRAME_BATCH = 32  # frames per lean-tower batch (the papers' clips in one; bounds the MLP activations)


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

    def lean_tower(self) -> bool:
        """Whether ``vision_tower.siglip_tower`` can stand in for the stock tower (one SigLIP/CLIP-style feature layer)."""
        from ..vision_attention import _is_siglip
        tower = self.model.model.vision_tower
        vm = getattr(tower, "vision_model", tower)
        return (isinstance(self.model.config.vision_feature_layer, int) and hasattr(vm, "embeddings")
                and all(_is_siglip(layer) for layer in vm.encoder.layers))

    def video_features(self, pv: torch.Tensor, capture: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(projected, pooled visual tokens [F·h·w + 1, d] with the one image_newline, the feature layer's input).

        The lean tower (``vision_tower.siglip_tower``) runs frames in batches of ``FRAME_BATCH``; progress
        and interruption are checked between layers. The stock ``get_video_features`` (other towers)
        runs ``ENCODE_CHUNK`` frames per call, the input then captured by a hook."""
        m = self.model.model
        cfg = self.model.config
        n = pv.shape[1]
        if self.lean_tower():
            from ..vision_tower import frame_progress, siglip_tower
            parts, inputs = [], []
            for s in range(0, n, FRAME_BATCH):
                chunk = pv[0, s:s + FRAME_BATCH]
                out = siglip_tower(m.vision_tower, chunk, cfg.vision_feature_layer, capture,
                                   frame_progress("encoding frames", s, chunk.shape[0], n))
                feats = out.features[:, 1:] if cfg.vision_feature_select_strategy == "default" else out.features
                parts.append(m.apply_pooling(m.multi_modal_projector(feats)).flatten(0, 1))
                if capture:
                    inputs.append(out.layer_input)
            newline = m.image_newline[None, :].to(parts[0])
            return torch.cat(parts + [newline], 0), (torch.cat(inputs, 0) if capture else None)
        inputs = []
        handle = None
        if capture:
            handle = self._feature_layer_module().register_forward_pre_hook(
                lambda _mod, args: inputs.append(args[0].detach()))
        try:
            # the model appends one image_newline per call: keep the last only
            parts = []
            for s in range(0, n, ENCODE_CHUNK):
                out = m.get_video_features(pixel_values_videos=pv[:, s:s + ENCODE_CHUNK],
                                           vision_feature_layer=cfg.vision_feature_layer,
                                           vision_feature_select_strategy=cfg.vision_feature_select_strategy)
                parts.append(out.pooler_output[0])
                checkpoint("encoding frames", min(s + ENCODE_CHUNK, n), n)
        finally:
            if handle is not None:
                handle.remove()
        feats = torch.cat([p[:-1] for p in parts[:-1]] + parts[-1:], 0)
        return feats, (torch.cat(inputs, 0) if inputs else None)

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray, capture: bool = True, timing: VideoTiming | None = None) -> Encoding:
        recorder = ProjectionRecorder(self._feature_layer_module()) if capture else nullcontext()
        with Timer() as t, recorder:
            pv = self.pixel_values(frames).to(self.device, self.dtype)
            feats, layer_input = self.video_features(pv, capture)
        n_frames = frames.shape[0]
        layout = TokenLayout(n_frames, self.token_grid, self.token_grid)
        embeds, extra = feats[: layout.num_tokens], feats[layout.num_tokens:]
        vision = None
        if capture and layer_input is not None:
            vision = VisionAccess(self.backbone, self._feature_layer_module(), layer_input, {},
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
