"""Word-level tokenizer of the built-in tiny model (lower-cased words, whitespace/punctuation split).

Run: python train/build_tokenizer.py OUT_DIR  (train_tiny.py calls ``build_tokenizer`` itself).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pruning_core.synthetic import ANSWER_WORDS, QUESTION_WORDS  # noqa: E402

SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<video>", "<image>"]
# chat-template words plus a few common question words, so a user's own wording tokenises
# into known ids (the model is only trained on the synthetic question templates)
EXTRA_WORDS = ["user", "assistant", "system", "which", "where", "how", "many", "a", "an", "of", "in", "on", "and",
               "or", "video", "scene", "scenes", "first", "last", "after", "before", "frame", "frames", "color",
               "yes", "no", "one", "two", "three", "four", "five", ".", "!", "'", "is", "are", "there", "do", "does",
               "you", "see", "left", "right", "top", "bottom", "middle", "start", "end", "moving"]


# the prompt form the model is trained on (pruning_core/adapters/llava_onevision.py PROMPT), as a chat
# template so processors and pruning_core.prompts build it from the checkpoint like any real one
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + content['text'] }}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def vocabulary() -> list[str]:
    words = SPECIALS + EXTRA_WORDS + list(QUESTION_WORDS) + list(ANSWER_WORDS)
    return list(dict.fromkeys(words))


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` over a WordLevel model; chat markers are special added tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<|im_end|>", bos_token=None, model_max_length=4096)
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[2:]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tokenizer")
    build_tokenizer().save_pretrained(out)
    print(f"saved tokenizer ({len(vocabulary())} words) to {out}")
