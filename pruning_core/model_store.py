"""Where checkpoints named by a hub id live: one answer for the CLI, the demo and the nodes.

A hub id (``org/name``) is downloaded once into ``<models folder>/<name>`` (safetensors and
configs only, never a hidden cache) and found there afterwards. The models folder is ComfyUI's
``models/LLM`` inside ComfyUI (the nodes pass it in), else ``models/LLM`` in this checkout, or
``$VIDEOPRUNE_MODELS`` when set.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ModelLoadError

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Only safetensors weights and configs: never .bin/.pt checkpoints, which run code when loaded.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_model_dirs() -> list[Path]:
    """``$VIDEOPRUNE_MODELS`` (``os.pathsep``-separated) or ``models/LLM`` in this checkout."""
    env = os.environ.get("VIDEOPRUNE_MODELS", "").strip()
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [REPO_ROOT / "models" / "LLM"]


def is_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name)) and not Path(name).expanduser().is_dir()


def find_downloaded(repo_id: str, roots: list[Path]) -> Path | None:
    """The folder a hub id was downloaded into, under ``org/name`` or ``name``, if any."""
    for root in roots:
        for cand in (root / repo_id, root / repo_id.split("/")[-1]):
            if (cand / "config.json").is_file():
                return cand
    return None


def download(repo_id: str, folder: Path, tqdm_class=None) -> str:
    """Download ``repo_id`` (safetensors + configs) into ``folder``; one actionable line on failure."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelLoadError(f"huggingface_hub is not installed, so {repo_id} cannot be downloaded; "
                             f"put the checkpoint files in {folder}") from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(repo_id, local_dir=str(folder), allow_patterns=HUB_PATTERNS, tqdm_class=tqdm_class)
    except Exception as e:  # offline, unknown repo, gated repo, disk full: one actionable line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"cannot download {repo_id} ({type(e).__name__}: {first[:160]}); if this machine "
                             f"is offline, download it elsewhere and copy its files into {folder}") from None
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"downloaded {repo_id} into {folder} but found no config.json there")
    return str(folder)


def resolve_hub_id(repo_id: str, roots: list[Path] | None = None, tqdm_class=None) -> str:
    """The local folder of a hub id: found under the models folders, else downloaded into the first."""
    roots = roots if roots is not None else default_model_dirs()
    found = find_downloaded(repo_id, roots)
    if found is not None:
        return str(found)
    return download(repo_id, roots[0] / repo_id.split("/")[-1], tqdm_class)
