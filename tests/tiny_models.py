"""Tiny, randomly initialised configs of the REAL transformers architectures, for tests and benches."""
from __future__ import annotations

import numpy as np
import torch

WORDS = ("what colour is the red green blue yellow circle square triangle star video shape appears first last "
         "how many scenes background a an of in which after before when ? , . yes no one two three four").split()
SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<video>", "<image>", "<|vision_start|>",
            "<|vision_end|>", "<|video_pad|>", "<|image_pad|>", "<|endoftext|>"]


TIME_WORDS = ("seconds", "<", ">", ".", *"0123456789")  # Qwen3-VL's "<1.5 seconds>" timestamps


def tiny_tokenizer(extra: tuple[str, ...] = ()):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    words = SPECIALS + ["user", "assistant", "system", "you", "are", "helpful", "assistant."] + list(WORDS)
    vocab = {t: i for i, t in enumerate(words + [w for w in dict.fromkeys(extra) if w not in words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>")
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[2:]})
    return fast


def _text_cfg(cls, vocab, layers: int = 4, **extra):
    return cls(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False, **extra)


def tiny_llava(attn: str = "sdpa", seed: int = 0, layers: int = 4):
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config, SiglipVisionConfig
    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    text = _text_cfg(Qwen2Config, len(tok), layers)  # layer_types is sized at construction
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=32, patch_size=4)
    cfg = LlavaOnevisionConfig(vision_config=vision, text_config=text,
                               video_token_index=tok.convert_tokens_to_ids("<video>"),
                               image_token_index=tok.convert_tokens_to_ids("<image>"),
                               vision_feature_layer=-1, vision_feature_select_strategy="full")
    cfg.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    cfg._attn_implementation = attn
    model = LlavaOnevisionForConditionalGeneration(cfg).eval()
    model.generation_config.eos_token_id = cfg.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def tiny_qwen2vl(attn: str = "sdpa", seed: int = 0, v25: bool = False):
    import transformers as tf
    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    ids = {k: tok.convert_tokens_to_ids(k) for k in SPECIALS}
    if v25:
        vision = tf.Qwen2_5_VLVisionConfig(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=64,
                                           num_heads=2, patch_size=4, spatial_merge_size=2, temporal_patch_size=2,
                                           window_size=16, fullatt_block_indexes=[1])
        text = _text_cfg(tf.Qwen2_5_VLTextConfig, len(tok),
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0})
        cfg_cls, model_cls = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
    else:
        vision = tf.Qwen2VLVisionConfig(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2,
                                        patch_size=4, spatial_merge_size=2, temporal_patch_size=2)
        text = _text_cfg(tf.Qwen2VLTextConfig, len(tok),
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0})
        cfg_cls, model_cls = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration
    cfg = cfg_cls(vision_config=vision.to_dict(), text_config=text.to_dict(), video_token_id=ids["<|video_pad|>"],
                  image_token_id=ids["<|image_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                  vision_end_token_id=ids["<|vision_end|>"])
    cfg.eos_token_id = ids["<|im_end|>"]
    cfg._attn_implementation = attn
    model = model_cls(cfg).eval()
    model.generation_config.eos_token_id = cfg.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def tiny_qwen3vl(attn: str = "sdpa", seed: int = 0, moe: bool = False, layers: int = 4,
                 deepstack: tuple[int, ...] = (0, 1, 2)):
    """Qwen3-VL (or its MoE) of the real classes: patch 4, temporal 2, merge 2, a 3-block ViT whose
    blocks ``deepstack`` feed DeepStack into LM layers 0..K-1, interleaved M-RoPE [4, 2, 2]."""
    import transformers as tf
    tok = tiny_tokenizer(TIME_WORDS)
    torch.manual_seed(seed)
    ids = {k: tok.convert_tokens_to_ids(k) for k in SPECIALS}
    rope = {"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True, "rope_theta": 10000.0}
    vcls, tcls, ccls, mcls = ((tf.Qwen3VLMoeVisionConfig, tf.Qwen3VLMoeTextConfig, tf.Qwen3VLMoeConfig,
                               tf.Qwen3VLMoeForConditionalGeneration) if moe else
                              (tf.Qwen3VLVisionConfig, tf.Qwen3VLTextConfig, tf.Qwen3VLConfig,
                               tf.Qwen3VLForConditionalGeneration))
    vision = vcls(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=4, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=64,
                  deepstack_visual_indexes=list(deepstack))
    extra = dict(moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2) if moe else {}
    text = tcls(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
                rope_parameters=rope, **extra)
    cfg = ccls(vision_config=vision.to_dict(), text_config=text.to_dict(), video_token_id=ids["<|video_pad|>"],
               image_token_id=ids["<|image_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
               vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)
    cfg.eos_token_id = ids["<|im_end|>"]
    cfg._attn_implementation = attn
    model = mcls(cfg).eval()
    if moe:  # random routers tie too rarely to matter; keep the experts' weights at a sane scale
        for layer in model.model.language_model.layers:
            torch.nn.init.normal_(layer.mlp.experts.gate_up_proj, std=0.02)
            torch.nn.init.normal_(layer.mlp.experts.down_proj, std=0.02)
    model.generation_config.eos_token_id = cfg.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def tiny_adapter(kind: str = "llava", attn: str = "sdpa", seed: int = 0):
    from pruning_core.loader import wrap
    if kind == "llava":
        model, tok = tiny_llava(attn, seed)
        return wrap(model, tok, name=f"tiny-llava-{attn}")
    if kind in ("qwen3", "qwen3moe"):
        model, tok = tiny_qwen3vl(attn, seed, moe=(kind == "qwen3moe"))
        ad = wrap(model, tok, name=f"tiny-{kind}-{attn}")
        ad.min_pixels, ad.max_pixels = 8 * 8, 8 * 32 * 32  # Qwen3-VL budgets the whole clip's pixels
        return ad
    model, tok = tiny_qwen2vl(attn, seed, v25=(kind == "qwen25"))
    ad = wrap(model, tok, name=f"tiny-{kind}-{attn}")
    ad.min_pixels, ad.max_pixels = 8 * 8, 32 * 32
    return ad


def random_video(frames: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(frames, size, size, 3), dtype=np.uint8)
