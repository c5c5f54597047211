"""Prompts from the checkpoint's own chat template, as ``processor.apply_chat_template`` builds them.

The template is looked up where transformers keeps it: the tokenizer's ``chat_template`` (set from
``tokenizer_config.json`` or ``chat_template.jinja``), then the checkpoint folder's
``chat_template.jinja``, ``chat_template.json`` and ``processor_config.json``. The message is one
user turn holding the video, then the question — the layout of the model cards' examples::

    [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]

rendered with ``add_generation_prompt=True``. Checkpoints without any template fall back to the
adapter's hard-coded prompt form, with a one-line warning.
"""
from __future__ import annotations

import json
import os
import warnings

from .errors import ModelLoadError

TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "processor_config.json", "tokenizer_config.json")


class NoChatTemplateWarning(UserWarning):
    """The checkpoint has no chat template; a hard-coded prompt form is used."""


def _pick(template) -> str | None:
    if isinstance(template, dict):  # named templates: transformers uses "default"
        template = template.get("default")
    if isinstance(template, list):  # [{"name": ..., "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template.strip() else None


def find_chat_template(tokenizer, folder: str | None) -> tuple[str | None, str]:
    """(template, where it was found) or (None, "") when the checkpoint has none."""
    t = _pick(getattr(tokenizer, "chat_template", None))
    if t:
        return t, "tokenizer"
    if not folder or not os.path.isdir(folder):
        return None, ""
    for name in TEMPLATE_FILES:
        fp = os.path.join(folder, name)
        if not os.path.isfile(fp):
            continue
        try:
            with open(fp, encoding="utf-8") as f:
                text = f.read()
            t = text if name.endswith(".jinja") else _pick(json.loads(text).get("chat_template"))
        except (OSError, ValueError, AttributeError):
            continue
        if _pick(t):
            return t, name
    return None, ""


def video_messages(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]


def render_video_prompt(tokenizer, template: str, question: str) -> str:
    """The prompt text the checkpoint's template gives for one video and ``question``."""
    try:
        return tokenizer.apply_chat_template(video_messages(question), chat_template=template, tokenize=False,
                                             add_generation_prompt=True)
    except Exception as e:  # jinja syntax/runtime errors come in many types; the user needs one line
        raise ModelLoadError(f"the checkpoint's chat template cannot render a video prompt "
                             f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def warn_no_template(name: str, backbone: str) -> None:
    warnings.warn(f"{name or backbone}: the checkpoint has no chat template; using the hard-coded {backbone} "
                  "prompt form (answers may differ from the model's own template)", NoChatTemplateWarning,
                  stacklevel=3)
