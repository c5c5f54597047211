"""Load a Video LLM (local folder, hub id, or the built-in tiny model) and wrap it in its adapter.

Device auto = CUDA when present; dtype auto = fp32 on CPU, bf16 on CUDA; attention auto =
flash_attention_2 when importable on CUDA, else sdpa.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch

from .adapters.base import Adapter
from .compat import check_transformers
from .errors import ModelLoadError, setting

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin" / "tiny-llava-ov"
BUILTIN_NAMES = ("builtin", "built-in", "tiny", "builtin-tiny")

_ARCH = {
    "llava_onevision": ("LlavaOnevisionForConditionalGeneration", "LlavaOneVisionAdapter", "llava_onevision"),
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", "Qwen2VLAdapter", "qwen2_vl"),
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen25VLAdapter", "qwen2_vl"),
    "qwen3_vl": ("Qwen3VLForConditionalGeneration", "Qwen3VLAdapter", "qwen3_vl"),
    "qwen3_vl_moe": ("Qwen3VLMoeForConditionalGeneration", "Qwen3VLMoeAdapter", "qwen3_vl"),
}


def resolve_device(device: str = "auto") -> torch.device:
    device = str(device or "auto").strip().lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ModelLoadError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ModelLoadError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} was asked for but no CUDA device is available; "
                             f"{setting('--device', 'device', 'cpu')}")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16}
    if dtype not in table:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16")
    return table[dtype]


def resolve_attn(attn: str, device: torch.device) -> str:
    if attn == "auto":
        if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        return "sdpa"
    if attn not in ("sdpa", "eager", "flash_attention_2"):
        raise ModelLoadError(f"unknown attention {attn!r}; use auto, sdpa, eager or flash_attention_2")
    if attn == "flash_attention_2" and (device.type != "cuda" or importlib.util.find_spec("flash_attn") is None):
        raise ModelLoadError("flash_attention_2 needs CUDA and the flash-attn package; use sdpa")
    return attn


def _model_type(source: str) -> str:
    cfg_path = Path(source) / "config.json"
    if cfg_path.is_file():
        try:
            return json.loads(cfg_path.read_text())["model_type"]
        except (ValueError, KeyError) as e:
            raise ModelLoadError(f"{cfg_path} is not a valid model config ({e})") from None
    from transformers import AutoConfig
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        return AutoConfig.from_pretrained(source, local_files_only=offline).model_type
    except Exception as e:  # hub errors come in many types; the user needs one line
        raise ModelLoadError(
            f"cannot load model {source!r}: not a local folder with config.json and not reachable as a hub id "
            f"({type(e).__name__}). Put the checkpoint in a folder and pass its path.") from None


def wrap(model, tokenizer, name: str = "", folder: str | None = None) -> Adapter:
    """Wrap an in-memory transformers model in the adapter of its architecture.

    ``folder``: the checkpoint folder whose processor files and chat template the adapter reads
    (default: the model's ``_name_or_path`` when it is a folder)."""
    check_transformers()
    mtype = model.config.model_type
    if mtype not in _ARCH:
        raise ModelLoadError(f"unsupported architecture {mtype!r}; supported: {', '.join(sorted(_ARCH))}")
    mod = importlib.import_module(f".adapters.{_ARCH[mtype][2]}", __package__)
    return getattr(mod, _ARCH[mtype][1])(model, tokenizer, name=name, folder=folder)


def load_model(source: str = "builtin", device: str = "auto", dtype: str = "auto", attn: str = "auto") -> Adapter:
    """Load a checkpoint from a folder or hub id (safetensors only) and return its adapter."""
    check_transformers()
    if source is None or str(source).strip().lower() in BUILTIN_NAMES:
        if not (BUILTIN_DIR / "config.json").is_file():
            raise ModelLoadError(f"the built-in model is missing at {BUILTIN_DIR}; reinstall the package")
        source = str(BUILTIN_DIR)
    source = os.path.expanduser(str(source))
    if (source.startswith((".", "/", "~")) or os.sep in source.strip("/").split("/", 1)[-1]) and not os.path.isdir(source):
        raise ModelLoadError(f"model folder {source!r} does not exist")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    impl = resolve_attn(attn, dev)
    mtype = _model_type(source)
    if mtype not in _ARCH:
        raise ModelLoadError(f"unsupported architecture {mtype!r} in {source}; supported: {', '.join(sorted(_ARCH))}")
    import transformers
    cls = getattr(transformers, _ARCH[mtype][0])
    try:
        model = cls.from_pretrained(source, dtype=dt, attn_implementation=impl, use_safetensors=True)
        tok = transformers.AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise ModelLoadError(f"cannot load {source!r}: {str(e).splitlines()[0]}") from None
    model.to(dev)
    name = "builtin" if Path(source) == BUILTIN_DIR else source
    return wrap(model, tok, name=name, folder=source if os.path.isdir(source) else None)
