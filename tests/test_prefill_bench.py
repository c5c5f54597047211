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
