"""Qwen3-VL adapter (dense ``Qwen3VLForConditionalGeneration`` and MoE ``Qwen3VLMoeForConditionalGeneration``).

What differs from Qwen2-VL (transformers 5.23, ``models/qwen3_vl``):

* **Geometry**: patch 16, temporal patch 2, 2×2 merger; ``smart_resize`` budgets the pixels of the
  WHOLE clip (``t·h·w`` within [min_pixels, max_pixels]), frames smaller than one merge unit are
  scaled up first; mean/std 0.5 (``Qwen3VLVideoProcessor``).
* **DeepStack**: the vision tower also returns features of a few intermediate blocks
  (``deepstack_visual_indexes``), each through its own merger; the text model adds feature ``i`` to
  the visual rows of decoder layer ``i``'s output. They travel as ``Encoding.deepstack`` [K, N, d]
  and the engine drops/merges them with the tokens (``engine.side_rows``).
* **Timestamps**: the processor writes ``<t seconds>`` text before every temporal step's
  ``<|vision_start|>…<|vision_end|>`` block, t the mean time of the step's two source frames
  (``Qwen3VLProcessor._calculate_timestamps``). They are text tokens: never pruned; the layout still
  maps visual token ids to (step, row, col) while their sequence slots skip the timestamp text.
* **Interleaved M-RoPE**: ``get_rope_index`` gives every temporal step its own grid (t = 1) placed at
  the running text position, so the step's temporal id is that position; ``rotary_emb`` interleaves
  the t/h/w sections. The engine gathers its cos/sin by kept index like any rotary table.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from ..layout import TokenLayout
from ..pixels import frames_to_pixels, normalize_
from ..preprocessing import smart_resize_video  # noqa: F401  (the rule lives with the preprocessing)
from ..timing import DEFAULT_FPS
from .base import Encoding, Timer, VisionAccess
from .qwen2_vl import Qwen2VLAdapter

PROMPT = ("<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>{question}<|im_end|>\n"
          "<|im_start|>assistant\n")


def step_timestamps(indices, fps: float, temporal: int) -> list[float]:
    """Seconds of each temporal step: the mean of its first and last source frame's time.

    ``indices`` are the sampled frames' source indices, padded with the last one to a multiple of
    ``temporal`` (``Qwen3VLProcessor._calculate_timestamps``).
    """
    idx = [int(i) for i in indices]
    if not idx:
        return []
    idx += [idx[-1]] * (-len(idx) % temporal)
    t = [i / fps for i in idx]
    return [(t[i] + t[i + temporal - 1]) / 2 for i in range(0, len(t), temporal)]


class Qwen3VLAdapter(Qwen2VLAdapter):
    backbone = "qwen3_vl"

    def __init__(self, model, tokenizer, name: str = "", preprocessing=None, folder: str | None = None):
        super().__init__(model, tokenizer, name, preprocessing, folder)
        self._black: dict = {}
        tc = self.text_config
        if getattr(tc, "num_experts", 0):
            # MoE: the FFN a token runs through is its top-k experts (FLOPs count active parameters)
            sparse = [i for i in range(tc.num_hidden_layers)
                      if i not in (tc.mlp_only_layers or []) and (i + 1) % tc.decoder_sparse_step == 0]
            if len(sparse) == tc.num_hidden_layers:
                self.info = replace(self.info, intermediate_size=tc.num_experts_per_tok * tc.moe_intermediate_size)

    # -- pixels -------------------------------------------------------------------------------
    def frame_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        """(height, width) every frame of a ``num_frames`` clip is resized to."""
        return self.pre.resize_size(height, width, num_frames)

    def pixel_values(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(flattened patches [t·h·w, C·tp·p·p], grid_thw [1, 3]) as ``Qwen3VLVideoProcessor``."""
        return self._patchify(frames_to_pixels(frames, self.pre))

    def _patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if pad := -x.shape[0] % self.temporal:
            x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)], 0)
        t, c, h, w = x.shape[0] // self.temporal, x.shape[1], x.shape[2], x.shape[3]
        gh, gw, m, p = h // self.patch, w // self.patch, self.merge, self.patch
        x = x.view(t, self.temporal, c, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(t * gh * gw, c * self.temporal * p * p)
        return x, torch.tensor([[t, gh, gw]])

    # -- vision -------------------------------------------------------------------------------
    @torch.no_grad()
    def _encode_pixels(self, pv: torch.Tensor, grid: torch.Tensor, capture: bool):
        captured: dict = {}
        handle = None
        if capture:
            def hook(_mod, args, kwargs):
                captured["input"] = args[0].detach()
                captured["kwargs"] = dict(kwargs)
            handle = self._last_block().register_forward_pre_hook(hook, with_kwargs=True)
        try:
            out = self.model.model.get_video_features(pv.to(self.device, self.dtype), grid.to(self.device))
        finally:
            if handle is not None:
                handle.remove()
        embeds = torch.cat(list(out.pooler_output), 0)
        deepstack = torch.stack([torch.cat(list(f), 0) for f in out.deepstack_features]) \
            if out.deepstack_features else None
        return embeds, deepstack, captured

    @torch.no_grad()
    def encode_video(self, frames: np.ndarray, capture: bool = True, timing=None) -> Encoding:
        """Visual tokens, DeepStack rows and step timestamps of ``frames`` (uint8 [T, H, W, 3]).

        ``timing`` (anything with ``fps`` and ``indices``, e.g. ``VideoTiming``) gives the source
        frame rate and sampled indices; without it the frames count as consecutive at 24 fps, as
        the processor assumes for frames without metadata.
        """
        with Timer() as t:
            pv, grid = self.pixel_values(frames)
            embeds, deepstack, captured = self._encode_pixels(pv, grid, capture)
        gt, gh, gw = (int(v) for v in grid[0])
        layout = TokenLayout(gt, gh // self.merge, gw // self.merge, frames_per_step=self.temporal)
        vision = None
        if capture and "input" in captured:
            vision = VisionAccess(self.backbone, self._last_block(), captured["input"], captured["kwargs"],
                                  gh * gw, self.pool_to_tokens)
        fps = float(getattr(timing, "fps", 0) or 0) or DEFAULT_FPS
        indices = list(getattr(timing, "indices", None) or range(frames.shape[0]))
        return Encoding(embeds=embeds, layout=layout, grid_thw=grid.to(self.device), vision=vision, encode_ms=t.ms,
                        deepstack=deepstack, timestamps=step_timestamps(indices, fps, self.temporal), timing=timing)

    def _black_step(self, layout: TokenLayout):
        """(embeds, deepstack) of one all-black temporal step at the layout's grid, cached per grid."""
        key = (layout.grid_h, layout.grid_w)
        if key not in self._black:
            f = self.patch * self.merge
            x = torch.zeros(self.temporal, 3, layout.grid_h * f, layout.grid_w * f)  # black stays black when resized
            pv, grid = self._patchify(normalize_(x, self.pre))
            embeds, deepstack, _ = self._encode_pixels(pv, grid, capture=False)
            self._black = {key: (embeds, deepstack)}
        return self._black[key]

    @torch.no_grad()
    def encode_black(self, layout: TokenLayout, like: np.ndarray) -> torch.Tensor:
        return self._black_step(layout)[0].repeat(layout.num_frames, 1)

    @torch.no_grad()
    def encode_black_deepstack(self, layout: TokenLayout, like: np.ndarray) -> torch.Tensor | None:
        ds = self._black_step(layout)[1]
        return None if ds is None else ds.repeat(1, layout.num_frames, 1)

    # -- prompt -------------------------------------------------------------------------------
    def prompt_text(self, question: str) -> str:
        return PROMPT.format(question=question.strip())

    def prompt_ids(self, question: str, enc: Encoding):
        """(input_ids [1, L], visual slots [N]): the video placeholder expanded as ``Qwen3VLProcessor``
        does, ``<t seconds><|vision_start|>`` + one frame's pads + ``<|vision_end|>`` per temporal step.

        Each text piece starts or ends at a special token, so tokenizing piece by piece gives the
        ids of the whole string.
        """
        text = self.prompt_text(question)
        before, sep, after = text.partition("<|video_pad|>")
        if not sep:
            raise ValueError("prompt has no <|video_pad|> placeholder")
        lay = enc.layout
        stamps = enc.timestamps or step_timestamps(range(lay.num_frames * self.temporal), DEFAULT_FPS, self.temporal)
        if len(stamps) != lay.num_frames:
            raise ValueError(f"{len(stamps)} timestamps for {lay.num_frames} temporal steps")
        tok = self.tokenizer
        vid = int(self.model.config.video_token_id)

        def ids(s: str) -> list[int]:
            return tok(s, add_special_tokens=False)["input_ids"]

        out: list[int] = []
        slots: list[torch.Tensor] = []
        head = before
        for t in stamps:
            out += ids(f"{head}<{t:.1f} seconds><|vision_start|>")
            slots.append(torch.arange(len(out), len(out) + lay.tokens_per_frame))
            out += [vid] * lay.tokens_per_frame
            head = "<|vision_end|>"
        out += ids(head + after)
        return (torch.tensor([out], dtype=torch.long, device=self.device),
                torch.cat(slots).to(self.device))


class Qwen3VLMoeAdapter(Qwen3VLAdapter):
    backbone = "qwen3_vl_moe"
