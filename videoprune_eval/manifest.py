"""Entry point of the ``lmms_eval.models`` group (lmms-eval >= 0.7 loads it when it builds its model registry).

``pyproject.toml`` declares ``videoprune = "videoprune_eval.manifest:manifests"``; lmms-eval calls
it and registers the returned manifest, so ``--model videoprune`` resolves to ``VideoPrune``.
"""
from __future__ import annotations


def manifests():
    from lmms_eval.models.registry_v2 import ModelManifest
    return [ModelManifest(model_id="videoprune", simple_class_path="videoprune_eval.lmms_model.VideoPrune")]
