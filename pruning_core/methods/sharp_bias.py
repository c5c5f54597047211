"""ShaRP PosC's bias b (ShaRP.txt §4.2): computed once per model, layout and prompt, then cached.

b is the last-token attention over the visual tokens when the video is all black (every visual
token identical, so what differs between them is position). It depends only on the model, the
token layout, the frame size the black frame is encoded at, the prompt and the scoring layer, so
it is cached in memory and on disk as safetensors under ``$VIDEOPRUNE_CACHE/sharp_bias`` (default
``~/.cache/videoprune/sharp_bias``). Never pickled.

The disk cache is bounded, least recently used first: every read refreshes a file's mtime and
every write evicts the oldest files beyond ``$VIDEOPRUNE_SHARP_BIAS_MAX_FILES`` (default 256) or
``$VIDEOPRUNE_SHARP_BIAS_MAX_MB`` (default 64 MB). A bias is ~4 bytes per visual token (25 KB for
32×196 tokens), so the default keeps every layout and prompt of a long session; a benchmark sweeping
hundreds of prompts recomputes only the ones it evicted.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch

_MEMORY: "OrderedDict[str, torch.Tensor]" = OrderedDict()
_MEMORY_MAX = 64
_FINGERPRINTS: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()


DEFAULT_MAX_FILES = 256
DEFAULT_MAX_MB = 64.0


def _limit(env: str, default: float) -> float:
    try:
        v = float(os.environ.get(env, default))
    except ValueError:
        return default
    return v if v > 0 else default


def cache_dir() -> Path:
    """Where bias files live: ``$VIDEOPRUNE_CACHE/sharp_bias`` or ``~/.cache/videoprune/sharp_bias``."""
    root = os.environ.get("VIDEOPRUNE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "videoprune"
    return base / "sharp_bias"


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's config and a strided sample of its weights.

    Two checkpoints with the same name (e.g. two random tiny models) never share a bias; the
    sample keeps it cheap (a few thousand values per tensor, a handful of tensors).
    """
    fp = _FINGERPRINTS.get(model)
    if fp is not None:
        return fp
    h = hashlib.sha1()
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "to_json_string"):
        h.update(cfg.to_json_string(use_diff=False).encode())
    params = list(model.named_parameters())
    picks = params[:3] + params[len(params) // 2: len(params) // 2 + 2] + params[-3:]
    for name, p in picks:
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        h.update(name.encode())
        h.update(flat[::step][:4096].float().cpu().numpy().tobytes())
    fp = h.hexdigest()[:16]
    _FINGERPRINTS[model] = fp
    return fp


def bias_key(model_name: str, fingerprint: str, layout: dict, frame_hw: tuple[int, int] | None,
             input_ids: torch.Tensor, layer: int, dtype: str, path: str = "prob/cache/original",
             rows: torch.Tensor | None = None) -> str:
    """The cache key: model (name + weights fingerprint), layout, frame size, prompt ids, layer,
    dtype, scoring path (space/scoring/positions) and, for a bias over survivors, their rows."""
    h = hashlib.sha1()
    h.update(json.dumps({"model": model_name, "fp": fingerprint, "layout": layout,
                         "frame_hw": list(frame_hw) if frame_hw else None, "layer": int(layer),
                         "dtype": dtype, "path": path}, sort_keys=True).encode())
    h.update(input_ids.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    if rows is not None:
        h.update(b"rows")
        h.update(rows.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def _remember(key: str, bias: torch.Tensor) -> None:
    _MEMORY[key] = bias
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > _MEMORY_MAX:
        _MEMORY.popitem(last=False)


def _load(path: Path, n: int) -> torch.Tensor | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        bias = load_file(str(path))["bias"]
    except (OSError, KeyError, SafetensorError):
        return None      # unreadable or foreign file: recompute and overwrite
    return bias if bias.ndim == 1 and bias.numel() == n else None


def _save(path: Path, bias: torch.Tensor, meta: dict) -> None:
    from safetensors.torch import save_file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        save_file({"bias": bias.detach().float().cpu().contiguous()}, tmp,
                  metadata={k: str(v) for k, v in meta.items()})
        os.replace(tmp, path)   # atomic: a concurrent reader never sees half a file
    except OSError:
        pass                    # a read-only cache dir only costs a recomputation next time


def _touch(path: Path) -> None:
    try:
        os.utime(path)          # the mtime is the last use: eviction is least recently used first
    except OSError:
        pass


def prune_disk_cache(keep: Path | None = None) -> int:
    """Evict least recently used bias files beyond the count and size limits; returns how many went."""
    max_files = int(_limit("VIDEOPRUNE_SHARP_BIAS_MAX_FILES", DEFAULT_MAX_FILES))
    max_bytes = _limit("VIDEOPRUNE_SHARP_BIAS_MAX_MB", DEFAULT_MAX_MB) * 2 ** 20
    files = []
    for p in cache_dir().glob("*.safetensors"):
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime_ns, st.st_size, p))
    files.sort(key=lambda f: f[0], reverse=True)   # newest first
    total, removed = 0, 0
    for i, (_, size, p) in enumerate(files):
        total += size
        if (i >= max_files or total > max_bytes) and p != keep:
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def cached_bias(key: str, n: int, compute: Callable[[], torch.Tensor], meta: dict[str, Any] | None = None,
                use_disk: bool = True) -> tuple[torch.Tensor, dict]:
    """The bias [n] for ``key``: from memory, else disk, else ``compute()`` (then stored in both).

    Returns (bias fp32 on CPU, info) with info = {"bias_ms", "bias_cached", "bias_source"}.
    """
    t0 = time.perf_counter()
    bias = _MEMORY.get(key)
    source = "memory"
    if bias is None and use_disk:
        path = cache_dir() / f"{key}.safetensors"
        bias = _load(path, n) if path.is_file() else None
        if bias is not None:
            _touch(path)
        source = "disk"
    if bias is None:
        bias = compute().detach().float().cpu()
        source = "computed"
        if use_disk:
            path = cache_dir() / f"{key}.safetensors"
            _save(path, bias, {"n": n, **(meta or {})})
            prune_disk_cache(keep=path)
    _remember(key, bias)
    ms = (time.perf_counter() - t0) * 1000.0
    return bias, {"bias_ms": ms, "bias_cached": source != "computed", "bias_source": source}


def clear_memory() -> None:
    """Forget the in-memory biases (the disk cache stays)."""
    _MEMORY.clear()
