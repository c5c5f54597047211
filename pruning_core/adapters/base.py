"""What an adapter tells the engine about a Video LLM.

The engine owns the decoder-layer loop; an adapter only answers: how frames become pixel
tensors (exactly as the model's processor does), how pixels become LLM visual embeddings and
their TokenLayout, how the prompt is laid out, which position ids each token has, and where
the layers, norm and lm_head are.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .. import prompts
from ..errors import ModelLoadError
from ..layout import TokenLayout
from ..preprocessing import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Preprocessing, read_preprocessing
from ..timing import VideoTiming

__all__ = ["OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD", "Adapter", "Encoding", "ModelInfo", "VisionAccess",
           "normalize_pixels", "to_float_frames", "Timer"]


@dataclass(frozen=True)
class ModelInfo:
    """Dimensions the planner, the FLOPs counter and layer schedules need."""

    backbone: str
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    name: str = ""
    attn_impl: str = "sdpa"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class VisionAccess:
    """Vision-encoder internals a pre-LLM method may use (VisionZip).

    ``layer`` is the encoder layer whose output becomes the LLM features, ``layer_input`` its
    captured input hidden states, ``layer_kwargs`` the keyword arguments it was called with
    (Qwen: cu_seqlens, rotary position embeddings). ``pool_to_tokens`` maps per-patch values
    ``[P_total, ...]`` (in the encoder's patch order) onto the LLM visual tokens in layout order.
    """

    backbone: str
    layer: torch.nn.Module
    layer_input: torch.Tensor
    layer_kwargs: dict
    patches_per_frame: int
    pool_to_tokens: Callable[[torch.Tensor], torch.Tensor]
    # the layer's own query and key projections ([..., D] each, before head split and rotary), recorded
    # during the encode (``vision_attention.ProjectionRecorder``) so they need not be recomputed
    qk: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class Encoding:
    """Visual side of one video: LLM embeddings of the layout tokens and anything extra."""

    embeds: torch.Tensor                 # [N, d] visual tokens in layout order
    layout: TokenLayout
    extra: torch.Tensor | None = None    # [e, d] non-prunable visual extras (LLaVA-OV image_newline)
    grid_thw: torch.Tensor | None = None  # Qwen video_grid_thw
    vision: VisionAccess | None = None
    encode_ms: float = 0.0
    # [K, N, d] per-visual-token features added to the visual rows of decoder layers 0..K-1's
    # outputs (Qwen3-VL DeepStack); stages that drop or merge tokens drop or merge these alike
    deepstack: torch.Tensor | None = None
    timestamps: list[float] | None = None  # seconds of each temporal step, where the prompt states them (Qwen3-VL)
    timing: VideoTiming | None = None     # when each frame was (None: frames came without timing)


class Adapter:
    """Base adapter over a transformers ``*ForConditionalGeneration`` model."""

    backbone = ""
    fallback_prompt = ""  # {question}; only for checkpoints without a chat template

    def __init__(self, model, tokenizer, name: str = "", preprocessing: Preprocessing | None = None,
                 folder: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or self.backbone
        folder = folder or getattr(model.config, "_name_or_path", "") or ""
        self.folder = folder if os.path.isdir(folder) else ""
        self.pre = preprocessing or read_preprocessing(self.folder, self.backbone,
                                                       getattr(model.config, "vision_config", None))
        self.chat_template, self.chat_template_source = prompts.find_chat_template(tokenizer, self.folder)
        cfg = self.text_config
        heads = cfg.num_attention_heads
        self.info = ModelInfo(
            backbone=self.backbone,
            num_layers=cfg.num_hidden_layers,
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_heads=heads,
            num_kv_heads=getattr(cfg, "num_key_value_heads", heads) or heads,
            head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // heads,
            name=self.name,
            attn_impl=getattr(model.config, "_attn_implementation", "sdpa") or "sdpa",
        )

    # -- where things are -------------------------------------------------------------
    @property
    def text_config(self):
        return self.model.config.get_text_config()

    @property
    def language_model(self):
        return self.model.model.language_model

    @property
    def layers(self):
        return self.language_model.layers

    @property
    def norm(self):
        return self.language_model.norm

    @property
    def rotary_emb(self):
        return self.language_model.rotary_emb

    @property
    def lm_head(self):
        return self.model.lm_head

    @property
    def embed_tokens(self):
        return self.model.get_input_embeddings()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    @property
    def eos_token_ids(self) -> set[int]:
        ids = set()
        for src in (self.model.generation_config, self.model.config, self.text_config):
            e = getattr(src, "eos_token_id", None)
            if e is not None:
                ids.update(e if isinstance(e, (list, tuple)) else [e])
        if self.tokenizer is not None:
            for tok in ("<|im_end|>", "<|endoftext|>"):
                tid = self.tokenizer.convert_tokens_to_ids(tok)
                if isinstance(tid, int) and tid != getattr(self.tokenizer, "unk_token_id", None) and tid >= 0:
                    ids.add(tid)
        return ids

    # -- what the checkpoint says ---------------------------------------------------------
    @property
    def image_mean(self) -> tuple[float, ...]:
        return self.pre.image_mean

    @property
    def image_std(self) -> tuple[float, ...]:
        return self.pre.image_std

    def checkpoint_report(self) -> dict:
        """Which preprocessing and prompt this checkpoint gave (reported in ``--json`` output)."""
        return {"folder": self.folder, "preprocessing": self.pre.to_dict(),
                "prompt": {"chat_template": bool(self.chat_template), "source": self.chat_template_source or
                           "hard-coded fallback (no chat template in the checkpoint)"}}

    def prompt_text(self, question: str) -> str:
        """The prompt with one video placeholder: the checkpoint's chat template, else the fallback form."""
        if self.chat_template:
            return prompts.render_video_prompt(self.tokenizer, self.chat_template, question)
        prompts.warn_no_template(self.name, self.backbone)
        return self.fallback_prompt.format(question=question)

    @property
    def video_token_id(self) -> int:
        cfg = self.model.config
        return int(cfg.video_token_id if hasattr(cfg, "video_token_id") else cfg.video_token_index)

    def frame_transform(self):
        """Per-frame resize for ``load_video(frame_transform=...)``: decode straight to the input size."""
        from ..pixels import decode_transform
        return decode_transform(self.pre)

    # -- what each backbone defines -----------------------------------------------------
    def encode_video(self, frames: np.ndarray, capture: bool = True,
                     timing: VideoTiming | None = None) -> Encoding:  # pragma: no cover - interface
        raise NotImplementedError

    def encode_black(self, layout: TokenLayout, like: np.ndarray) -> torch.Tensor:
        """Visual embeddings [N, d] of an all-black video with ``layout`` (one step encoded, tiled)."""
        raise NotImplementedError  # pragma: no cover

    def encode_black_deepstack(self, layout: TokenLayout, like: np.ndarray) -> torch.Tensor | None:
        """DeepStack rows [K, N, d] of the all-black video of :meth:`encode_black` (None: no DeepStack)."""
        return None

    def visual_token_count(self, num_frames: int, height: int, width: int) -> int:
        """LLM visual tokens (extras included) of ``num_frames`` frames of ``height``×``width``, without encoding."""
        raise NotImplementedError  # pragma: no cover

    def sequence_length(self, num_frames: int, height: int, width: int, question: str) -> int:
        """Length of the prompt ``prompt_ids`` builds for such a clip, computed without encoding it."""
        probe = Encoding(embeds=torch.empty(0), layout=TokenLayout(1, 1, 1))  # one visual slot
        ids, _ = self.prompt_ids(question, probe)
        return int(ids.shape[1]) - 1 + self.visual_token_count(num_frames, height, width)

    def prompt_ids(self, question: str, enc: Encoding) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids [1, L], video-slot positions [N + extras]) with the video placeholder expanded."""
        count = enc.layout.num_tokens + (0 if enc.extra is None else enc.extra.shape[0])
        vid = self.video_token_id
        placeholder = self.tokenizer.convert_ids_to_tokens(vid)
        return self._expand_placeholder(self.prompt_text(question.strip()), placeholder, vid, count)

    def position_ids(self, input_ids: torch.Tensor, enc: Encoding) -> tuple[torch.Tensor, int]:
        """Rotary position ids for the prompt ([1, L] or Qwen's [3, 1, L]) and the rope delta for decoding."""
        raise NotImplementedError  # pragma: no cover

    def decode_position_ids(self, position: int) -> torch.Tensor:
        """Position ids of one generated token at absolute position ``position``."""
        return torch.tensor([[position]], device=self.device)

    # -- shared helpers -----------------------------------------------------------------
    def _expand_placeholder(self, text: str, placeholder: str, token_id: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        before, sep, after = text.partition(placeholder)
        if not sep:
            raise ModelLoadError(f"{self.name}: the prompt has no {placeholder} placeholder for the video "
                                 f"(source: {self.chat_template_source or 'hard-coded form'})")
        tok = self.tokenizer
        a = tok(before, add_special_tokens=False)["input_ids"]
        b = tok(after, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([a + [token_id] * count + b], dtype=torch.long)
        slots = torch.arange(len(a), len(a) + count)
        return ids.to(self.device), slots.to(self.device)


def to_float_frames(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T,H,W,3] RGB → float32 [T,3,H,W] in 0..255 (for frames already at the input size; the
    adapters use ``pixels.frames_to_pixels``, which resizes per frame first)."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if x.dtype != torch.uint8:
        raise ValueError("frames must be uint8 RGB [T,H,W,3]")
    return x.permute(0, 3, 1, 2).float()


def normalize_pixels(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x / 255.0 - m) / s


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.ms = (time.perf_counter() - self.t0) * 1000.0
