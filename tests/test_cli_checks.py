"""The CLI refuses bad flags and plans cheaply, and its listings match what the validator enforces."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pruning_core.errors import PlanError
from pruning_core.registry import methods

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def no_decode(monkeypatch):
    """Fails the test if the CLI decodes a video; records whether a model was loaded."""
    import pruning_core.loader
    import pruning_core.video
    seen = {"loaded": 0}
    real_load = pruning_core.loader.load_model

    def refuse_decode(*a, **k):
        raise AssertionError("the video was decoded before the plan was checked")

    def count_load(*a, **k):
        seen["loaded"] += 1
        return real_load(*a, **k)

    monkeypatch.setattr(pruning_core.video, "load_video", refuse_decode)
    monkeypatch.setattr(pruning_core.loader, "load_model", count_load)
    return seen


def _answer(*extra):
    from pruning_core.cli import main
    return main(["answer", "--video", "/no/such/video.mp4", "--question", "what ?", "--quiet", *extra])


def test_an_unknown_method_is_refused_before_model_and_video(no_decode, capsys):
    assert _answer("--plan", "warp:speed=9") == 2
    assert no_decode["loaded"] == 0
    assert "unknown method" in capsys.readouterr().err


def test_a_layer_beyond_the_model_is_refused_before_anything_is_encoded(monkeypatch, tmp_path, capsys):
    from pruning_core.cli import main
    from pruning_core.engine import Engine
    from pruning_core.synthetic import sample_video

    def refuse_prepare(*a, **k):
        raise AssertionError("frames were encoded before the plan was checked against the model")

    monkeypatch.setattr(Engine, "prepare", refuse_prepare)
    video = tmp_path / "v.mp4"
    sample_video(str(video), seed=1)
    assert main(["answer", "--video", str(video), "--question", "what ?", "--quiet",
                 "--plan", "fastv:layer=99"]) == 2
    assert "out of range" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_new_tokens_below_one_is_refused(no_decode, capsys, value):
    assert _answer("--max-new-tokens", value) == 2
    err = capsys.readouterr().err
    assert "--max-new-tokens" in err and len(err.strip().splitlines()) == 1


def _numeric_params():
    for spec in methods().values():
        for p in spec.params:
            if p.type in ("int", "float") and p.min is not None:
                yield spec.name, p


@pytest.mark.parametrize("method,param", list(_numeric_params()), ids=lambda x: getattr(x, "name", x))
def test_listed_lower_bound_is_the_enforced_one(method, param):
    listed = param.to_dict()["range"]
    if param.min_exclusive:
        assert listed.startswith("(")
        with pytest.raises(PlanError):
            param.coerce(param.min, method)
    else:
        assert listed.startswith("[")
        assert param.coerce(param.min, method) == param.min


def test_methods_listing_shows_retention_as_open_at_zero(capsys):
    from pruning_core.cli import main
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "retention=" in out and "(0.0, 1.0]" in out and "[0.0, 1.0]" not in out.split("retention=")[1].split("\n")[0]


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", None])
def test_nodes_run_exits_2_for_an_unreadable_workflow(tmp_path, content):
    wf = tmp_path / "wf.json"
    if content is not None:
        wf.write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "nodes", "run", str(wf), "--out", str(tmp_path / "o")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
