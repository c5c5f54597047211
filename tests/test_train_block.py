"""train/train_tiny.py's block curriculum: text may not read the video in the first layers, and only there."""
from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from tiny_models import tiny_llava  # noqa: E402
import train_tiny  # noqa: E402
from train_tiny import text_visual_block, text_visual_block_mask  # noqa: E402

VISUAL = (3, 8)   # a prompt of 3 tokens, then 5 video tokens, then text
LENGTH = 12


def test_mask_is_causal_and_hides_only_video_keys_from_queries_after_the_video():
    allowed = text_visual_block_mask(LENGTH, VISUAL)[0, 0] == 0
    for q in range(LENGTH):
        for k in range(LENGTH):
            video_from_text = q >= VISUAL[1] and VISUAL[0] <= k < VISUAL[1]
            assert bool(allowed[q, k]) == (k <= q and not video_from_text), (q, k)


def attention_maps(model, emb, layers: int = 0):
    """Per-layer attention probabilities (eager), with the block on the first ``layers`` layers."""
    maps = []
    hooks = [layer.self_attn.register_forward_hook(lambda _m, _a, out: maps.append(out[1]))
             for layer in model.model.language_model.layers]
    with torch.no_grad(), (text_visual_block(model, layers, VISUAL) if layers else torch.no_grad()):
        hidden = model.model.language_model(inputs_embeds=emb).last_hidden_state
    for h in hooks:
        h.remove()
    return maps, hidden


@pytest.fixture()
def eager():
    model, _ = tiny_llava(attn="eager", layers=4)
    emb = torch.randn(2, LENGTH, model.config.text_config.hidden_size)
    return model, emb


def test_blocked_layers_give_text_no_attention_on_video_keys_and_later_layers_do(eager):
    model, emb = eager
    maps, _ = attention_maps(model, emb, layers=2)
    text, video = slice(VISUAL[1], None), slice(*VISUAL)
    for i, a in enumerate(maps):
        mass = a[:, :, text, video].sum().item()
        assert (mass == 0) == (i < 2), (i, mass)


def test_the_block_changes_nothing_else(eager):
    model, emb = eager
    blocked, _ = attention_maps(model, emb, layers=2)
    stock, _ = attention_maps(model, emb)
    # rows up to the end of the video do not depend on text: identical in every layer
    for b, s in zip(blocked, stock):
        torch.testing.assert_close(b[:, :, :VISUAL[1]], s[:, :, :VISUAL[1]])
    # layer 0 sees the same inputs: a text row is the stock row without its video keys, renormalised
    s = stock[0][:, :, VISUAL[1]:].clone()
    s[..., VISUAL[0]:VISUAL[1]] = 0
    torch.testing.assert_close(blocked[0][:, :, VISUAL[1]:], s / s.sum(-1, keepdim=True))
    # and the hooks are gone afterwards
    _, again = attention_maps(model, emb)
    torch.testing.assert_close(again, attention_maps(model, emb)[1])
    assert all(not layer._forward_pre_hooks for layer in model.model.language_model.layers)


def test_sdpa_training_path_applies_the_same_block(eager):
    model, emb = eager
    sdpa, _ = tiny_llava(attn="sdpa", layers=4)
    _, want = attention_maps(model, emb, layers=2)
    with torch.no_grad(), text_visual_block(sdpa, 2, VISUAL):
        got = sdpa.model.language_model(inputs_embeds=emb).last_hidden_state
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_fully_blocked_model_answers_without_looking_at_the_video(eager):
    model, emb = eager
    other = emb.clone()
    other[:, VISUAL[0]:VISUAL[1]] = torch.randn(2, VISUAL[1] - VISUAL[0], emb.shape[-1])
    _, h1 = attention_maps(model, emb, layers=4)
    _, h2 = attention_maps(model, other, layers=4)
    torch.testing.assert_close(h1[:, VISUAL[1]:], h2[:, VISUAL[1]:])
    _, s1 = attention_maps(model, emb, layers=3)
    _, s2 = attention_maps(model, other, layers=3)
    assert not torch.allclose(s1[:, VISUAL[1]:], s2[:, VISUAL[1]:])


def run_block_curriculum(run: Path, block_steps: int, free_steps: int, monkeypatch):
    monkeypatch.setattr(train_tiny, "WARM_MIX", {1: 1.0})
    monkeypatch.setattr(train_tiny, "CACHE_SIZES", {1: 6})
    monkeypatch.setattr(train_tiny, "VAL_SEED", 3)
    tok = train_tiny.build_tokenizer()
    model = train_tiny.build_model(tok, seed=0)
    train_tiny.grow_depth(model, 4, lead=1)
    args = Namespace(lr=1e-3, warm_start="x", block_layers=1, block_steps=block_steps, free_steps=free_steps,
                     free_lr_scale=0.5, free_aux=0.0, aux=1.0, seed=0, batch=2, val=1, eval_every=2,
                     ckpt_minutes=0.0, cache_dir=None, snapshots=False)
    monkeypatch.setattr(train_tiny, "build_cache", small_cache(train_tiny.build_cache))
    train_tiny.train_lm(model, tok, run, args)
    return model


def small_cache(real):
    """The validation cache at 1 frame instead of 16 (the test only needs some cached video)."""
    return lambda model, run, t, n, seeds: real(model, run, 1, n, seeds)


def test_a_stopped_block_run_resumes_to_the_same_weights(tmp_path, monkeypatch, capsys):
    straight = run_block_curriculum(tmp_path / "a", 2, 2, monkeypatch)
    run_block_curriculum(tmp_path / "b", 2, 0, monkeypatch)          # stopped after the block stage
    capsys.readouterr()
    resumed = run_block_curriculum(tmp_path / "b", 2, 2, monkeypatch)  # same command, longer: continues
    assert "resumed at step 2, stage 0" in capsys.readouterr().out
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert (tmp_path / "a" / "best" / "model.safetensors").exists()
