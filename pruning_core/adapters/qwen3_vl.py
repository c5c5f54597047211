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

from dataclasses import replace

import numpy as np
import torch

from ..layout import TokenLayout
from ..pixels import normalize_
from ..preprocessing import smart_resize_video  # noqa: F401  (the rule lives with the preprocessing)
from ..timing import DEFAULT_FPS, VideoTiming
from .base import Encoding
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
    fallback_prompt = PROMPT

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

    # -- vision -------------------------------------------------------------------------------
    def encoding_extras(self, out, frames: np.ndarray, timing: VideoTiming | None) -> dict:
        """DeepStack rows [K, N, d] and the timestamp of every temporal step.

        ``timing`` gives the source fps and sampled indices; without it (or without an fps) the
        frames count as consecutive at 24 fps, as the processor assumes for frames without metadata.
        """
        fps = float(getattr(timing, "fps", 0) or 0) or DEFAULT_FPS
        indices = list(getattr(timing, "indices", None) or range(frames.shape[0]))
        return {"deepstack": _deepstack(out), "timestamps": step_timestamps(indices, fps, self.temporal)}

    def _black_step(self, layout: TokenLayout):
        """(embeds, deepstack) of one all-black temporal step at the layout's grid, cached per grid."""
        key = (layout.grid_h, layout.grid_w)
        if key not in self._black:
            f = self.patch * self.merge
            x = torch.zeros(self.temporal, 3, layout.grid_h * f, layout.grid_w * f)  # black stays black when resized
            out, _ = self.vision_forward(*self.patchify(normalize_(x, self.pre)))
            self._black = {key: (torch.cat(list(out.pooler_output), 0), _deepstack(out))}
        return self._black[key]

    @torch.no_grad()
    def encode_black(self, layout: TokenLayout, like: np.ndarray) -> torch.Tensor:
        return self._black_step(layout)[0].repeat(layout.num_frames, 1)

    @torch.no_grad()
    def encode_black_deepstack(self, layout: TokenLayout, like: np.ndarray) -> torch.Tensor | None:
        ds = self._black_step(layout)[1]
        return None if ds is None else ds.repeat(1, layout.num_frames, 1)

    # -- prompt -------------------------------------------------------------------------------
    def sequence_length(self, num_frames: int, height: int, width: int, question: str) -> int:
        """Prompt length for such a clip without encoding it: one timestamp per temporal step counts
        (at the processor's default timing; other fps change a timestamp's digits, not its count)."""
        steps = -(-int(num_frames) // self.temporal)
        probe = Encoding(embeds=torch.empty(0), layout=TokenLayout(steps, 1, 1, frames_per_step=self.temporal))
        ids, _ = self.prompt_ids(question, probe)
        return int(ids.shape[1]) - steps + self.visual_token_count(num_frames, height, width)

    def prompt_ids(self, question: str, enc: Encoding):
        """(input_ids [1, L], visual slots [N]): the video placeholder expanded as ``Qwen3VLProcessor``
        does, ``<t seconds><|vision_start|>`` + one frame's pads + ``<|vision_end|>`` per temporal step.

        Each text piece starts or ends at a special token, so tokenizing piece by piece gives the
        ids of the whole string.
        """
        vid = self.video_token_id
        placeholder = self.tokenizer.convert_ids_to_tokens(vid)
        before, sep, after = self.prompt_text(question.strip()).partition(placeholder)
        if not sep:
            raise ValueError(f"prompt has no {placeholder} placeholder")
        lay = enc.layout
        stamps = enc.timestamps or step_timestamps(range(lay.num_frames * self.temporal), DEFAULT_FPS, self.temporal)
        if len(stamps) != lay.num_frames:
            raise ValueError(f"{len(stamps)} timestamps for {lay.num_frames} temporal steps")
        tok = self.tokenizer

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


def _deepstack(out) -> torch.Tensor | None:
    """[K, N, d] DeepStack rows from ``get_video_features``' per-video splits."""
    feats = out.deepstack_features
    return torch.stack([torch.cat(list(f), 0) for f in feats]) if feats else None


class Qwen3VLMoeAdapter(Qwen3VLAdapter):
    backbone = "qwen3_vl_moe"
