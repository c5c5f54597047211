"""The committed built-in tiny LLaVA-OneVision model: real transformers classes, small, answers in-world."""
from __future__ import annotations

import json

import pytest
import torch

from pruning_core.loader import BUILTIN_DIR
from pruning_core.synthetic import ANSWER_WORDS, IMAGE_SIZE, make_sample

pytestmark = pytest.mark.skipif(not (BUILTIN_DIR / "config.json").is_file(), reason="built-in model not committed")
PROMPT = "<|im_start|>user <video>\n{question}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def hf():
    from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(BUILTIN_DIR).eval()
    return model, AutoTokenizer.from_pretrained(BUILTIN_DIR)


@pytest.fixture(scope="module")
def engine():
    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    return Engine(load_model("builtin", device="cpu"))


def test_folder_is_at_most_25_mb():
    size = sum(p.stat().st_size for p in BUILTIN_DIR.rglob("*") if p.is_file())
    assert size <= 25 * 1024 * 1024


def test_weights_are_safetensors_only():
    names = {p.name for p in BUILTIN_DIR.iterdir()}
    assert "model.safetensors" in names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)


def test_loads_with_the_real_llava_onevision_classes(hf):
    model, _ = hf
    assert type(model).__name__ == "LlavaOnevisionForConditionalGeneration"
    assert model.config.vision_config.model_type == "siglip_vision_model"
    assert model.config.text_config.model_type == "qwen2"
    assert model.config.vision_feature_layer == -1 and model.config.vision_feature_select_strategy == "full"


def test_config_token_ids_match_the_tokenizer(hf):
    model, tok = hf
    assert model.config.video_token_index == tok.convert_tokens_to_ids("<video>")
    assert model.config.image_token_index == tok.convert_tokens_to_ids("<image>")
    assert tok.eos_token == "<|im_end|>"
    for special in ("<|im_start|>", "<|im_end|>", "<video>", "<image>", "<pad>", "<unk>"):
        assert tok.convert_tokens_to_ids(special) != tok.unk_token_id or special == "<unk>"


def test_tokenizer_round_trips_the_chat_prompt(hf):
    _, tok = hf
    q = make_sample(0).question.text
    text = PROMPT.format(question=q)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert ids.count(tok.convert_tokens_to_ids("<video>")) == 1
    decoded = tok.decode(ids)
    assert tok(decoded, add_special_tokens=False)["input_ids"] == ids
    assert "".join(decoded.split()) == "".join(text.split())  # word-level: only spacing may differ


def test_every_answer_word_is_a_single_known_token(hf):
    _, tok = hf
    for w in ANSWER_WORDS:
        ids = tok(w, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != tok.unk_token_id


def test_each_frame_gives_a_7x7_token_grid(engine):
    s = make_sample(1)
    prep = engine.prepare(s.frames, s.question.text)
    assert (prep.layout.grid_h, prep.layout.grid_w) == (7, 7)
    assert prep.layout.num_tokens == 16 * 49
    assert engine.adapter.image_size == IMAGE_SIZE


def test_unpruned_answer_is_one_of_the_listed_options(engine):
    for seed in (0, 1, 2):
        s = make_sample(seed)
        res = engine.run(engine.prepare(s.frames, s.question.text), [], max_new_tokens=2)
        word = res.answer.split()[0] if res.answer.split() else ""
        assert word in s.question.options, (s.question.text, res.answer)


def test_engine_answer_matches_stock_transformers_greedy_first_token(hf, engine):
    model, tok = hf
    s = make_sample(5)
    prep = engine.prepare(s.frames, s.question.text)
    res = engine.run(prep, [], max_new_tokens=1)
    with torch.no_grad():
        logits = model(inputs_embeds=prep.embeds).logits[0, -1]
    assert tok.decode([int(logits.argmax())]).strip() == res.answer.strip()


def test_training_note_records_the_measured_validation_accuracy():
    note = json.loads((BUILTIN_DIR / "training.json").read_text())
    assert 0.0 <= note["val"]["acc"] <= 1.0 and note["step"] > 0
