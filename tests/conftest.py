"""Shared fixtures: tiny random-weight configs of the real architectures, loaded once per session."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

from tiny_models import random_video, tiny_adapter  # noqa: E402


@dataclass
class TinySetup:
    """A loaded adapter, its engine, a small random video and a prepared question."""

    adapter: object
    engine: object
    frames: np.ndarray
    prep: object


def _setup(kind: str, attn: str = "sdpa") -> TinySetup:
    from pruning_core.engine import Engine
    ad = tiny_adapter(kind, attn)
    eng = Engine(ad)
    frames = random_video(4, 32, seed=1)
    return TinySetup(ad, eng, frames, eng.prepare(frames, "what colour is the circle ?"))


@pytest.fixture(scope="session")
def tiny_llava() -> TinySetup:
    return _setup("llava")


@pytest.fixture(scope="session")
def tiny_qwen2vl() -> TinySetup:
    return _setup("qwen2vl")


@pytest.fixture(scope="session", params=["llava", "qwen2vl"])
def tiny_any(request) -> TinySetup:
    return _setup(request.param)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, run only in the full CI pass")
