"""Where the Load Video LLM node finds models, and the loaded-model object that travels on its wire.

A model is named by one of: ``builtin`` (the built-in tiny model), a folder under the model
folders (ComfyUI's ``models/LLM``), or a hub id, which is downloaded once into
``models/LLM/<name>`` (never into a hidden cache) and found there afterwards.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from pruning_core import model_store
from pruning_core.checkpoints import checkpoint
from pruning_core.errors import ModelLoadError, VideoPruneError, naming_widgets
from pruning_core.model_store import HUB_ID

from . import context
from .paths import is_inside, resolve_inside

BUILTIN = "builtin"

# In-memory model sources by name (tests, demos): name -> () -> adapter. Checked before disk.
MODEL_FACTORIES: dict[str, Callable[[], object]] = {}


def register_model(name: str, factory: Callable[[], object]) -> None:
    """Make ``name`` load by calling ``factory()`` (an adapter), e.g. a tiny test model."""
    MODEL_FACTORIES[name] = factory


def local_model_names(roots: list[Path] | None = None) -> list[str]:
    """Folders holding a ``config.json`` under the model folders, as ``name`` or ``org/name``."""
    names: list[str] = []
    for root in roots if roots is not None else context.model_dirs():
        if not root.is_dir():
            continue
        for cfg in sorted(list(root.glob("*/config.json")) + list(root.glob("*/*/config.json"))):
            if not is_inside(cfg.parent, [root]):
                continue  # a symlink out of the model folder: loading refuses it, so it is not listed
            rel = cfg.parent.relative_to(root).as_posix()
            if rel not in names:
                names.append(rel)
    return names


def model_choices() -> list[str]:
    return [BUILTIN] + [n for n in MODEL_FACTORIES if n != BUILTIN] + local_model_names()


def resolve_source(name: str, progress: context.Progress | None = None) -> str:
    """A local folder (or ``builtin``) for a model name; downloads a hub id the first time."""
    name = (name or "").strip()
    if not name or name.lower() in ("builtin", "built-in"):
        return BUILTIN
    roots = context.model_dirs()
    if HUB_ID.match(name):
        found = model_store.find_downloaded(name, roots)
        if found is not None:
            return str(resolve_inside(str(found), roots, "model folder", ModelLoadError))
        folder = roots[0] / name.split("/")[-1]
        if not context.downloads_allowed():
            raise ModelLoadError(f"model {name} is not in the model folder and downloading is off here (a demo "
                                 f"started without --allow-downloads); copy its files (config.json + "
                                 f"*.safetensors) into {folder}")
        return download(name, folder, progress)
    folder = resolve_inside(name, roots, "model folder", ModelLoadError, must_exist=False)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"model folder {folder} has no config.json; put a Hugging Face checkpoint "
                             f"(config.json + *.safetensors) there, or give a hub id like org/name")
    return str(folder)


def download(repo_id: str, folder: Path, progress: context.Progress | None = None) -> str:
    """Download ``repo_id`` (safetensors + configs) into ``folder``, reporting progress."""
    return model_store.download(repo_id, folder, _tqdm_for(progress))


def _tqdm_for(progress: context.Progress | None):
    """A tqdm class that also forwards its counts to ``progress`` (ComfyUI's bar or the runtime's)."""
    if progress is None:
        return None
    from tqdm.auto import tqdm

    class _Forward(tqdm):
        def update(self, n=1):
            out = super().update(n)
            if self.total:
                progress.update(int(self.n), int(self.total))
            return out

    return _Forward


class LoadedModel:
    """What the ``VIDEOPRUNE_MODEL`` wire carries: an engine around an adapter, plus a small cache
    of vision encodings so several Answer nodes on the same frames encode them once."""

    def __init__(self, adapter, name: str, cache_size: int = 4):
        from pruning_core.engine import Engine
        self.adapter = adapter
        self.engine = Engine(adapter)
        self.name = name
        self._encodings: OrderedDict[str, object] = OrderedDict()
        self._cache_size = cache_size

    @property
    def info(self):
        return self.engine.info

    def prepare(self, frames: np.ndarray, question: str, timing=None):
        """Engine-ready inputs; the vision encoding is reused when the same frames (and timing) come again."""
        if not isinstance(question, str) or not question.strip():
            raise VideoPruneError("the question is empty; type one in the Answer node's question field")
        key = f"{tuple(frames.shape)}:{frames.dtype}:{frames_digest(frames)}:{hash(timing)}"
        enc = self._encodings.get(key)
        if enc is None:
            prep = self.engine.prepare(frames, question, timing=timing)
            self._encodings[key] = prep.encoding
            while len(self._encodings) > self._cache_size:
                self._encodings.popitem(last=False)
            return prep
        self._encodings.move_to_end(key)
        return self.engine.prepare_encoded(enc, question, frames)

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, {self.info.backbone}, {self.info.num_layers} layers)"


def frames_digest(frames: np.ndarray) -> str:
    """A content hash of a clip, frame by frame (a checkpoint between frames: a long clip stays stoppable)."""
    h = hashlib.blake2b(digest_size=16)
    for i in range(frames.shape[0]):
        h.update(np.ascontiguousarray(frames[i]).data)
        checkpoint("hashing frames", i + 1, frames.shape[0])
    return h.hexdigest()


def load(name: str, device: str = "auto", dtype: str = "auto", attention: str = "auto",
         progress: context.Progress | None = None) -> LoadedModel:
    """Load a model by name (see module docstring) into a ``LoadedModel``."""
    key = (name or "").strip() or BUILTIN
    if key in MODEL_FACTORIES:
        return LoadedModel(MODEL_FACTORIES[key](), key)
    from pruning_core.loader import load_model
    with naming_widgets("Load Video LLM"):
        source = resolve_source(key, progress)
        adapter = load_model(source, device=device, dtype=dtype, attn=attention)
    return LoadedModel(adapter, key)
