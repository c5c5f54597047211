"""bench/prefill.py's hardware limit: a bare prefill at a plan's per-layer counts."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
_spec = importlib.util.spec_from_file_location("bench_prefill", REPO / "bench" / "prefill.py")
pre = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pre)


def test_limit_at_unpruned_counts_is_the_engines_unpruned_prefill(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    res = eng.run(prep, None, max_new_tokens=1, collect_logits=True)
    logits = pre.limit_prefill(eng, prep, res.tokens_per_layer)
    if eng.info.backbone.startswith("qwen3"):
        return  # DeepStack rows are not replayed by the limit
    torch.testing.assert_close(logits, res.logits[0], rtol=1e-4, atol=1e-4)


def test_limit_runs_each_layer_at_the_plans_count(tiny_llava):
    eng, prep = tiny_llava.engine, tiny_llava.prep
    res = eng.run(prep, "fastv:layer=2,retention=0.25", max_new_tokens=1)
    seen = []
    hooks = [lay.register_forward_hook(lambda m, a, k, o: seen.append(k["hidden_states"].shape[1] if "hidden_states" in k
                                                                      else a[0].shape[1]), with_kwargs=True)
             for lay in eng.adapter.layers]
    try:
        pre.limit_prefill(eng, prep, res.tokens_per_layer)
    finally:
        for h in hooks:
            h.remove()
    assert seen == res.tokens_per_layer and seen[-1] < seen[0]


def test_profile_command_splits_the_run_into_layers_and_the_rest(capsys):
    import json
    spec = importlib.util.spec_from_file_location("bench_profile", REPO / "bench" / "profile_prefill.py")
    prof = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prof)
    prof.main(["--quick", "--plan", "fastv:layer=2,retention=0.25", "--top", "5"])
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["inside_layers_ms"] <= out["profiled_run_ms"]
    assert len(out["top_ops"]) == 5 and out["tokens_per_layer"][2] < out["tokens_per_layer"][0]


def _sweep():
    spec = importlib.util.spec_from_file_location("bench_prefill_sweep", REPO / "bench" / "prefill_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sweep_resumes_shares_the_unpruned_run_and_the_limits(tmp_path, capsys):
    import json
    sw = _sweep()
    plans = ["--plan", "random:retention=0.25", "--plan", "uniform:retention=0.25", "--plan", "sharpv_memory"]
    args = ["--quick", "--out", str(tmp_path), "--decode", "2"] + plans
    sw.main(args + ["--passes", "1"])
    limits = sorted(p.name for p in tmp_path.glob("limit_*.json"))
    assert len(limits) == 1                      # random and uniform at 25% have one count vector
    sw.main(args + ["--passes", "2"])            # resumes: pass 0 is not run again
    none = json.loads((tmp_path / "none.json").read_text())
    assert len(none["cpu_ms_runs"]) == 2
    lim = json.loads((tmp_path / limits[0]).read_text())
    assert len(lim["cpu_ms_runs"]) == 2
    capsys.readouterr()
    sw.main(["--quick", "--out", str(tmp_path), "--collect"] + plans)
    rep = json.loads(capsys.readouterr().out)
    rows = {r["plan"]: r for r in rep["plans"]}
    assert rows["random:retention=0.25"]["repeats"] == 2 and rows["random:retention=0.25"]["tpot_cpu_ms"] > 0
    assert rows["random:retention=0.25"]["limit_cpu_ms_runs"] == rows["uniform:retention=0.25"]["limit_cpu_ms_runs"]
    assert rows["sharpv_memory"]["repeats"] == 1 and "speedup_limit" not in rows["sharpv_memory"]   # keeps every token
    assert 0 <= rows["random:retention=0.25"]["stage_cpu_ms"] and "ours_cpu_ms" in rows["random:retention=0.25"]
    spec = importlib.util.spec_from_file_location("bench_prefill_table", REPO / "bench" / "prefill_table.py")
    tab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tab)
    text = tab.table(rep)
    assert "| `sharpv_memory` |" in text and "— | —" in text


def test_sweep_leaves_the_engine_on_wall_clock_timings(tmp_path):
    import time

    import pruning_core.engine as engine_mod
    _sweep().main(["--quick", "--out", str(tmp_path), "--decode", "1", "--passes", "1", "--plan", "random:retention=0.5"])
    assert engine_mod.time is time
