"""bench/ttft.py: the tower comparison and the TTFT rows it prints (tiny dims)."""
from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import ttft  # noqa: E402


def _lines(capsys):
    return [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]


def test_ttft_rows_add_vision_to_stages_and_prefill(capsys):
    ttft.main(["--quick", "--threads", "1"])
    tower, *rows = _lines(capsys)
    shares = [r for r in rows if r["bench"] == "ttft_flops_share"]
    rows = [r for r in rows if r["bench"] == "ttft"]
    assert [r["lm"] for r in shares] == ["llava-onevision-0.5b", "llava-onevision-7b"]
    assert tower["bench"] == "vision_tower" and tower["max_abs_diff"] <= 1e-5 * max(1.0, tower["max_abs"])
    assert [r["plan"] for r in rows] == ["none", "fastv:layer=2,retention=0.25"]
    base = rows[0]
    for r in rows:
        assert r["ttft_cpu_ms"] == pytest.approx(r["vision_cpu_ms"] + r["stages_prefill_cpu_ms"], abs=0.2)
    llm, ttft_ms = base["stages_prefill_cpu_ms"], base["ttft_cpu_ms"]
    # both times are printed to 0.1 ms and the share to 0.001: allow exactly that rounding (quick runs last ~10 ms)
    rounding = 0.05 / ttft_ms + 0.05 * llm / ttft_ms ** 2 + 5e-4
    assert base["prunable_share"] == pytest.approx(llm / ttft_ms, abs=rounding + 1e-9)
    assert rows[1]["kept_tokens"] < base["kept_tokens"]


def test_qwen_tower_line_reports_the_processor_geometry(capsys):
    ttft.main(["--quick", "--tower", "qwen2vl", "--threads", "1"])
    tower, *shares = _lines(capsys)
    assert [r["lm"] for r in shares] == ["qwen2-vl-2b", "qwen2-vl-7b"]
    t, gh, gw = tower["grid_thw"]
    assert t == 2 and tower["patches"] == t * gh * gw and tower["output_shape"][0] == tower["visual_tokens"]
    assert tower["max_abs_diff"] <= 1e-5 * max(1.0, tower["max_abs"])


def test_ttft_rows_refuse_the_qwen_tower(tmp_path, capsys):
    line = {"bench": "vision_tower", "tower": ttft.TOWER_NAMES["qwen2vl"], "frames": 4}
    (tmp_path / "t.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(SystemExit):
        ttft.main(["--tower-json", str(tmp_path / "t.jsonl"), "--plan", "random:retention=0.5"])


def test_sweep_directory_and_flops_shares(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"dims": "qwen2-0.5b", "frames": 32, "grid": 14}))
    (tmp_path / "none.json").write_text(json.dumps({"plan": "none", "cpu_ms_runs": [90.0, 100.0]}))
    (tmp_path / "plan_a.json").write_text(json.dumps({"plan": "random:retention=0.25", "cpu_ms_runs": [20.0],
                                                      "kept_tokens": 1568, "stage_overhead_ms": [{"ms": 1.5}]}))
    pre = ttft.read_prefill(str(tmp_path))
    tower = {"frames": 2, "ours_cpu_ms": 10.0, "stock_cpu_ms": 12.0, "gflop": 100.0}
    none, rnd = ttft.ttft_rows(tower, pre)
    assert none["vision_cpu_ms"] == 160.0 and none["vision_extrapolated_from_frames"] == 2
    assert none["ttft_cpu_ms"] == 255.0 and rnd["ttft_cpu_ms"] == 180.0 and rnd["stage_overhead_wall_ms"] == 1.5
    assert none["prunable_share"] == round(95 / 255, 3) and rnd["speedup_ttft"] == round(255 / 180, 3)
    small, big = ttft.flops_shares(tower, 32)
    assert small["vision_tflop"] == big["vision_tflop"] == 1.6
    assert 0 < big["vision_share_flops"] < small["vision_share_flops"] < 1  # a bigger LM leaves vision less


def test_ttft_table_renders_each_kind_once(tmp_path, capsys):
    import ttft_table
    tower = {"bench": "vision_tower", "tower": "t", "frames": 2, "frame_px": [384, 384], "patches_per_frame": 729,
             "gflop": 1283.6, "attn": "sdpa", "repeats": 1, "stock_cpu_ms": 2000.0, "ours_cpu_ms": 1000.0,
             "ours_vs_stock": 0.5, "max_abs_diff": 0.0}
    row = {"bench": "ttft", "plan": "none", "kept_tokens": 6272, "vision_cpu_ms": 1000.0, "stages_prefill_cpu_ms": 3000.0,
           "ttft_cpu_ms": 4000.0, "speedup_prefill": 1.0, "speedup_ttft": 1.0, "vision_share": 0.25}
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(x) for x in (tower, tower, row)) + "\n")
    ttft_table.main([str(tmp_path / "a.jsonl")])
    out = capsys.readouterr().out
    assert out.count("| t | 2 |") == 1 and "| 2.0 | 1.0 | 0.500 |" in out
    assert "| `none` | 6272 | 1.0 | 3.0 | 4.0 | 1.00× | 1.00× | 25% |" in out
