"""lmms-eval integration: the real harness runs ``videoprune`` on ``videoprune_synthetic``, 1 and 2 processes.

Runs only where lmms-eval is importable (``python install.py --standalone --eval``); each harness
run starts a fresh ``python -m lmms_eval`` (about a minute of it is lmms-eval's own start-up).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lmms_eval") is None or importlib.util.find_spec("accelerate") is None,
                                reason="lmms-eval not installed (python install.py --standalone --eval)")

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 5  # videos 0 and 1 (3 + 2 questions); odd, so lmms-eval pads the second of 2 processes
ARGS = ["--model", "videoprune", "--model_args", "plan=sharp:retention=0.25", "--tasks", "videoprune_synthetic",
        "--limit", str(LIMIT), "--log_samples", "--include_path", str(ROOT / "videoprune_eval" / "tasks")]


def _env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run(cmd: list[str], out: Path) -> tuple[dict, list[dict]]:
    p = subprocess.run([*cmd, *ARGS, "--output_path", str(out)], cwd=ROOT, env=_env(), capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads(next(out.rglob("*_results.json")).read_text())
    samples = [json.loads(line) for line in next(out.rglob("*_samples_videoprune_synthetic.jsonl")).read_text().splitlines()]
    return results, sorted(samples, key=lambda s: s["doc_id"])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return _run([sys.executable, "-m", "lmms_eval"], tmp_path_factory.mktemp("one"))


def test_entry_point_resolves_the_model_class():
    from lmms_eval.models import MODEL_REGISTRY_V2
    cls = MODEL_REGISTRY_V2.get_model_class("videoprune")
    assert cls.__module__ == "videoprune_eval.lmms_model" and cls.__name__ == "VideoPrune"


def test_accuracy_is_the_mean_of_per_doc_scores(one_process):
    results, samples = one_process
    res = results["results"]["videoprune_synthetic"]
    assert len(samples) == LIMIT
    assert res["acc,none"] == pytest.approx(sum(s["acc"] for s in samples) / LIMIT)
    from pruning_core.synthetic import first_word
    for s in samples:
        reply = s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"]
        assert s["acc"] == float(first_word(reply) == s["target"])


def test_logged_samples_carry_the_figures_of_their_own_request(one_process):
    from videoprune_eval.synthetic_task import DATA_DIR
    rows = [json.loads(line) for line in (DATA_DIR / "test.jsonl").read_text().splitlines()]
    results, samples = one_process
    for s in samples:
        fig = s["token_counts"][0]["videoprune"]
        # lmms-eval's doc_id is the row index, which process_results finds the figures by (qid)
        assert rows[s["doc_id"]]["qid"] == s["doc_id"] and rows[s["doc_id"]]["question"] == s["input"]
        assert fig["visual_tokens"] == 16 * 49 and fig["kept_tokens"] == 196
        assert s["flops_ratio"] == fig["flops_ratio"] < 1.0
    res = results["results"]["videoprune_synthetic"]
    assert res["retention,none"] == pytest.approx(0.25)
    assert res["vision_cache_hit,none"] == pytest.approx(3 / 5)   # 2 videos, 5 questions: 2 encodes
    assert results["throughput"]["avg_videoprune_vision_cache_hit_rate"] == pytest.approx(3 / 5, abs=1e-3)


def test_two_processes_answer_every_doc_as_one_does(one_process, tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "-m", "lmms_eval"]
    results2, samples2 = _run(cmd, tmp_path / "two")
    results1, samples1 = one_process
    assert [s["doc_id"] for s in samples2] == list(range(LIMIT))
    assert [s["filtered_resps"] for s in samples2] == [s["filtered_resps"] for s in samples1]
    assert results2["results"]["videoprune_synthetic"]["acc,none"] == results1["results"]["videoprune_synthetic"]["acc,none"]
    # round-robin shards: rank 0 gets docs 0,2,4 (one hit), rank 1 docs 1,3 + a padding clone, which is not counted
    assert results2["results"]["videoprune_synthetic"]["vision_cache_hit,none"] == pytest.approx(1 / 5)
    assert results2["throughput"]["avg_videoprune_vision_cache_hit_rate"] == pytest.approx(1 / 5, abs=1e-3)
