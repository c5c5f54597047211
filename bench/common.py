"""Shared benchmark plumbing: preset-sized random-weight models fed visual embeddings directly."""
from __future__ import annotations

import os
import statistics
import sys
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

# LM dims of real checkpoints (random weights: timing and memory only depend on shapes)
LM_DIMS = {
    "qwen2-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2),
    "qwen2-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2),
    # Qwen3-VL-2B's language model (flops.PRESETS["qwen3-vl-2b"]); builds a Qwen3-VL engine
    "qwen3-vl-2b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                        num_key_value_heads=8, head_dim=128),
    "qwen3-tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16),
}


def build_engine(dims: str = "qwen2-0.5b", seed: int = 0, attn: str = "sdpa"):
    """A LLaVA-OneVision model whose LM has ``dims`` (``qwen3*`` dims: a Qwen3-VL model); the vision
    tower is tiny since embeddings are fed."""
    if dims.startswith("qwen3"):
        return _build_qwen3(dims, seed, attn)
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config, SiglipVisionConfig

    from pruning_core.engine import Engine
    from pruning_core.loader import wrap
    from tiny_models import tiny_tokenizer
    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    text = Qwen2Config(vocab_size=len(tok), max_position_embeddings=32768, tie_word_embeddings=False, **LM_DIMS[dims])
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=32, patch_size=4)
    cfg = LlavaOnevisionConfig(vision_config=vision, text_config=text, video_token_index=tok.convert_tokens_to_ids("<video>"),
                               image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                               vision_feature_select_strategy="full")
    cfg._attn_implementation = attn
    model = LlavaOnevisionForConditionalGeneration(cfg).eval()
    return Engine(wrap(model, tok, name=f"random-{dims}"))


def _build_qwen3(dims: str, seed: int, attn: str):
    """A Qwen3-VL model with ``dims`` and 3 DeepStack layers (as every Qwen3-VL checkpoint has)."""
    import transformers as tf

    from pruning_core.engine import Engine
    from pruning_core.loader import wrap
    from tiny_models import SPECIALS, TIME_WORDS, tiny_tokenizer
    tok = tiny_tokenizer(TIME_WORDS)
    ids = {k: tok.convert_tokens_to_ids(k) for k in SPECIALS}
    torch.manual_seed(seed)
    lm = LM_DIMS[dims]
    rope = {"rope_type": "default", "mrope_interleaved": True, "rope_theta": 5000000.0,
            "mrope_section": [24, 20, 20] if lm["head_dim"] == 128 else [4, 2, 2]}
    text = tf.Qwen3VLTextConfig(vocab_size=len(tok), max_position_embeddings=32768, rope_parameters=rope, **lm)
    vision = tf.Qwen3VLVisionConfig(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=4,
                                    out_hidden_size=lm["hidden_size"], num_position_embeddings=64,
                                    deepstack_visual_indexes=[0, 1, 2])
    cfg = tf.Qwen3VLConfig(vision_config=vision.to_dict(), text_config=text.to_dict(),
                           video_token_id=ids["<|video_pad|>"], image_token_id=ids["<|image_pad|>"],
                           vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                           tie_word_embeddings=False)
    cfg._attn_implementation = attn
    model = tf.Qwen3VLForConditionalGeneration(cfg).eval()
    return Engine(wrap(model, tok, name=f"random-{dims}"))


def siglip_vision_access(frames: int, grid: int, seed: int = 0, patch_grid: int = 27, hidden: int = 1152,
                         heads: int = 16, record: bool = True):
    """A VisionAccess as LLaVA-OneVision's adapter captures it, at SigLIP-so400m size (random weights):
    the last used encoder layer (1152 wide, 16 heads), its input for ``frames`` × 27² patches, and the
    model's bilinear 27² → grid² resize, so methods that read the vision attention (VisionZip, PruMerge,
    HoliTom) pay what they pay on the real tower. The layer runs once on that input, as in the
    tower's encode, with the adapter's ``ProjectionRecorder`` (``record=False``: no recorded q/k, so
    the methods recompute them, as before the recorder)."""
    from functools import partial
    from types import SimpleNamespace

    from transformers import SiglipVisionConfig
    from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer

    from pruning_core.adapters.base import VisionAccess
    from pruning_core.adapters.llava_onevision import LlavaOneVisionAdapter
    from pruning_core.vision_attention import ProjectionRecorder
    cfg = SiglipVisionConfig(hidden_size=hidden, intermediate_size=4304 * hidden // 1152, num_attention_heads=heads)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    layer = SiglipEncoderLayer(cfg).eval()
    x = torch.randn(frames, patch_grid * patch_grid, hidden, generator=torch.Generator().manual_seed(seed))
    qk = None
    if record:
        with torch.no_grad(), ProjectionRecorder(layer) as rec:
            layer(x, None)
        qk = rec.qk()
    pool = partial(LlavaOneVisionAdapter.pool_to_tokens, SimpleNamespace(patch_grid=patch_grid, token_grid=grid))
    return VisionAccess("llava_onevision", layer, x, {}, patch_grid * patch_grid, pool, qk=qk)


def prepare_embeds(engine, frames: int, grid: int = 14, seed: int = 0, question: str | None = None,
                   motion: float = 0.3, vision: bool | str = False):
    """A Prepared input with ``frames``·grid² synthetic visual embeddings (temporally correlated, like video).

    On a DeepStack model (Qwen3-VL) ``frames`` counts temporal steps, and DeepStack rows come alike.
    ``vision``: also a SigLIP-so400m-sized vision layer to read attention from (``siglip_vision_access``;
    ``"recompute"``: without its recorded q/k projections)."""
    from pruning_core.adapters.base import Encoding
    from pruning_core.layout import TokenLayout
    d = engine.info.hidden_size
    g = torch.Generator().manual_seed(seed)

    def video() -> torch.Tensor:
        out = [torch.randn(grid * grid, d, generator=g)]
        for _ in range(frames - 1):
            out.append(out[-1] * (1 - motion) + motion * torch.randn(grid * grid, d, generator=g))
        return torch.cat(out) * 0.5
    emb = video()
    dt = engine.adapter.dtype
    if engine.info.backbone.startswith("qwen3"):
        layout = TokenLayout(frames, grid, grid, frames_per_step=2)
        m = engine.adapter.merge
        k = len(engine.adapter.model.config.vision_config.deepstack_visual_indexes)
        enc = Encoding(embeds=emb.to(dt), layout=layout, grid_thw=torch.tensor([[frames, grid * m, grid * m]]),
                       deepstack=torch.stack([video() for _ in range(k)]).to(dt))
    else:
        layout = TokenLayout(frames, grid, grid)
        enc = Encoding(embeds=emb.to(dt), layout=layout, extra=None,
                       vision=siglip_vision_access(frames, grid, seed, record=vision != "recompute") if vision else None)
    q = question or "what colour is the circle in the video ? which shape appears first ?"
    return engine.prepare_encoded(enc, q)


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of live tensor storages created during the block (parameters excluded)."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _track(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key = st.data_ptr()
        if key in self._seen or st.nbytes() == 0:
            return
        self._seen.add(key)
        self.live += st.nbytes()
        self.peak = max(self.peak, self.live)
        nbytes = st.nbytes()

        def release(k=key, n=nbytes, mode=weakref.ref(self)):
            m = mode()
            if m is not None:
                m.live -= n
                m._seen.discard(k)
        weakref.finalize(t, release)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def median(xs):
    return statistics.median(xs) if xs else 0.0


def timed(fn, repeats: int, stat: str = "median"):
    """Run ``fn`` ``repeats`` times; return (its last result, the median or min wall time in ms)."""
    import time
    out, times = None, []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return out, (min(times) if stat == "min" else median(times))
