"""The transformers range VideoPrune admits, and its one-line refusals."""
from __future__ import annotations

import types

import pytest

from pruning_core import compat


def test_installed_transformers_passes_the_check():
    import transformers
    assert compat.check_transformers() == transformers.__version__


def test_versions_parse_to_major_minor():
    assert compat.parse_version("5.24.0") == (5, 24)
    assert compat.parse_version("5.23.0.dev0") == (5, 23)
    assert compat.parse_version("garbage") == (0, 0)


@pytest.mark.parametrize("version", ["4.57.1", "5.22.2", "6.0.0"])
def test_a_version_outside_the_range_is_refused_in_one_line(monkeypatch, version):
    import transformers
    compat.check_transformers.cache_clear()
    monkeypatch.setattr(transformers, "__version__", version)
    try:
        with pytest.raises(compat.TransformersVersionError) as e:
            compat.check_transformers()
    finally:
        compat.check_transformers.cache_clear()
    msg = str(e.value)
    assert "\n" not in msg and version in msg and ">=5.23,<6" in msg


def test_a_missing_internal_is_named_in_the_refusal(monkeypatch):
    import transformers
    compat.check_transformers.cache_clear()
    class CacheWithoutConfig:  # what an older cache API looked like
        def __init__(self):
            pass

    monkeypatch.setattr(transformers, "DynamicCache", CacheWithoutConfig)
    try:
        with pytest.raises(compat.TransformersVersionError, match=r"DynamicCache\(config"):
            compat.check_transformers()
    finally:
        compat.check_transformers.cache_clear()


def test_an_unverified_release_in_range_warns(monkeypatch):
    import transformers
    compat.check_transformers.cache_clear()
    monkeypatch.setattr(transformers, "__version__", "5.99.0")
    try:
        with pytest.warns(UserWarning, match="not yet verified"):
            compat.check_transformers()
    finally:
        compat.check_transformers.cache_clear()


def test_requirements_admit_the_supported_range():
    from pathlib import Path
    req = (Path(__file__).resolve().parent.parent / "requirements.txt").read_text()
    assert "transformers>=5.23,<6" in req
