"""train/train_tiny.py's depth up-scaling: the grown LM starts as exactly the trained function."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from tiny_models import tiny_llava  # noqa: E402
from train_tiny import grow_depth  # noqa: E402


@pytest.fixture()
def pair():
    small, _ = tiny_llava(layers=3)
    grown, _ = tiny_llava(layers=3)
    grow_depth(grown, 8)
    return small, grown


def test_grown_model_has_the_requested_depth_and_a_consistent_config(pair):
    _, grown = pair
    layers = grown.model.language_model.layers
    assert len(layers) == 8 == grown.config.text_config.num_hidden_layers
    assert len(grown.config.text_config.layer_types) == 8
    assert [layer.self_attn.layer_idx for layer in layers] == list(range(8))


def test_grown_model_computes_the_same_logits(pair):
    small, grown = pair
    ids = torch.randint(11, 40, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(grown(input_ids=ids).logits, small(input_ids=ids).logits, rtol=0, atol=1e-6)


def test_originals_are_spread_over_the_depth_and_copies_start_silent(pair):
    small, grown = pair
    old = small.model.language_model.layers
    new = grown.model.language_model.layers
    originals = {0: 0, 2: 1, 5: 2}  # block i starts at floor(i * 8 / 3)
    for pos, layer in enumerate(new):
        src = old[originals[max(p for p in originals if p <= pos)]]
        torch.testing.assert_close(layer.self_attn.q_proj.weight, src.self_attn.q_proj.weight)
        silent = pos not in originals
        assert bool((layer.self_attn.o_proj.weight == 0).all()) == silent
        assert bool((layer.mlp.down_proj.weight == 0).all()) == silent


def test_shrinking_is_refused():
    model, _ = tiny_llava(layers=3)
    with pytest.raises(ValueError, match="below"):
        grow_depth(model, 2)


def test_lead_layers_go_in_front_silent_and_the_function_is_unchanged():
    small, _ = tiny_llava(layers=3)
    grown, _ = tiny_llava(layers=3)
    grow_depth(grown, 8, lead=2)
    new = grown.model.language_model.layers
    assert len(new) == 8 == grown.config.text_config.num_hidden_layers
    originals = {2: 0, 4: 1, 6: 2}  # lead 2, then block i of the 6 starts at 2 + floor(i * 6 / 3)
    for pos, layer in enumerate(new):
        silent = pos not in originals
        assert bool((layer.self_attn.o_proj.weight == 0).all()) == silent
        if pos in originals:
            src = small.model.language_model.layers[originals[pos]]
            torch.testing.assert_close(layer.self_attn.q_proj.weight, src.self_attn.q_proj.weight)
    ids = torch.randint(11, 40, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(grown(input_ids=ids).logits, small(input_ids=ids).logits, rtol=0, atol=1e-6)


def test_lead_layers_count_against_the_depth():
    model, _ = tiny_llava(layers=3)
    with pytest.raises(ValueError, match="below"):
        grow_depth(model, 4, lead=2)
