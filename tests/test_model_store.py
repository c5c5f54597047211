"""Hub ids live in one place for the CLI, the demo and the nodes: ``models/LLM/<name>``."""
from __future__ import annotations

from pathlib import Path

import pytest

from pruning_core import model_store
from pruning_core.errors import ModelLoadError


def _fake_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_a_downloaded_hub_id_is_found_under_its_short_name(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOPRUNE_MODELS", str(tmp_path))
    folder = _fake_checkpoint(tmp_path / "llava-onevision-qwen2-0.5b-ov-hf")
    assert model_store.resolve_hub_id("llava-hf/llava-onevision-qwen2-0.5b-ov-hf") == str(folder)


def test_a_new_hub_id_downloads_into_the_first_models_folder(tmp_path, monkeypatch):
    import huggingface_hub
    calls = []

    def fake_download(repo_id, local_dir, allow_patterns, tqdm_class=None):
        calls.append((repo_id, local_dir, tuple(allow_patterns)))
        _fake_checkpoint(Path(local_dir))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setenv("VIDEOPRUNE_MODELS", str(tmp_path / "models"))
    out = model_store.resolve_hub_id("Qwen/Qwen2-VL-2B-Instruct")
    assert out == str(tmp_path / "models" / "Qwen2-VL-2B-Instruct")
    assert not any(p.endswith((".bin", ".pt", ".pth")) for p in calls[0][2])


def test_an_offline_download_names_the_folder_to_copy_into(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*a, **k):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.setenv("VIDEOPRUNE_MODELS", str(tmp_path))
    with pytest.raises(ModelLoadError, match=str(tmp_path / "Qwen2.5-VL-3B-Instruct")):
        model_store.resolve_hub_id("Qwen/Qwen2.5-VL-3B-Instruct")


def test_the_nodes_use_the_same_models_folder_standalone(tmp_path, monkeypatch):
    from nodes import context
    monkeypatch.setenv("VIDEOPRUNE_MODELS", str(tmp_path))
    monkeypatch.setattr(context, "_folder_paths", lambda: None)
    assert context.model_dirs() == [tmp_path]


def test_a_local_folder_is_not_a_hub_id(tmp_path):
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert not model_store.is_hub_id(str(tmp_path / "org" / "name"))
    assert model_store.is_hub_id("org/name")
