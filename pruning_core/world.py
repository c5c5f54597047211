"""Is this input from the built-in model's synthetic world? If not, its answer means nothing.

The built-in tiny model was trained only on ``synthetic`` clips (bright shapes on plain dark
backgrounds, 112 px frames) and questions in its word-level vocabulary. On anything else it still
answers, confidently and wrongly. ``builtin_warning`` says so in one line, for the CLI (stderr),
the Answer node and the demo.

A frame looks synthetic when, scaled to the model's 112 px, most of its pixels sit near one of the
world's colours (``synthetic.BACKGROUNDS`` and ``synthetic.COLOURS``; the tolerance absorbs video
compression and anti-aliased edges) and the commonest of them is a background colour.
"""
from __future__ import annotations

import cv2
import numpy as np

from . import synthetic

NEAR = 48.0            # max RGB distance to a palette colour (mp4 compression, anti-aliasing)
MIN_PALETTE = 0.85     # share of a frame's pixels near some palette colour
MIN_BACKGROUND = 0.5   # share near a background colour
MIN_FRAMES = 0.75      # share of the checked frames that must look synthetic
CHECKED_FRAMES = 8
MAX_BACKGROUND_STD = 10.0  # per channel, over the pixels of the commonest background colour

_BG = np.array(list(synthetic.BACKGROUNDS.values()), np.float32)
_PALETTE = np.concatenate([_BG, np.array(list(synthetic.COLOURS.values()), np.float32)])
_PALETTE_SQ = (_PALETTE * _PALETTE).sum(1)


def frame_looks_synthetic(frame: np.ndarray) -> bool:
    """One RGB uint8 frame: mostly palette colours, and half of it one flat background colour."""
    small = cv2.resize(frame, (synthetic.IMAGE_SIZE, synthetic.IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    px = small.reshape(-1, 3).astype(np.float32)
    d2 = (px * px).sum(1, keepdims=True) + _PALETTE_SQ[None] - 2.0 * px @ _PALETTE.T     # [P, colours]
    nearest = d2.argmin(1)
    near = d2[np.arange(len(px)), nearest] <= NEAR ** 2
    if near.mean() < MIN_PALETTE:
        return False
    bg = np.bincount(nearest[near & (nearest < len(_BG))], minlength=len(_BG)).argmax()
    flat = px[near & (nearest == bg)]
    # a synthetic background is one flat colour (compression noise only); a grey wall is textured
    return bool(len(flat) >= MIN_BACKGROUND * len(px) and flat.std(0).max() <= MAX_BACKGROUND_STD)


def video_looks_synthetic(frames: np.ndarray) -> bool:
    """Up to ``CHECKED_FRAMES`` frames spread over the clip; most of them must look synthetic."""
    t = frames.shape[0]
    idx = np.unique(np.linspace(0, t - 1, min(t, CHECKED_FRAMES)).round().astype(int))
    hits = sum(frame_looks_synthetic(frames[i]) for i in idx)
    return hits >= MIN_FRAMES * len(idx)


def unknown_words(tokenizer, question: str) -> list[str]:
    """Words of ``question`` the tokenizer maps to its unknown token (word-level vocabularies)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    unk = getattr(tokenizer, "unk_token", None)
    if backend is None or unk is None:
        return []
    text = backend.normalizer.normalize_str(question) if backend.normalizer is not None else question
    words = [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)] if backend.pre_tokenizer else text.split()
    vocab = tokenizer.get_vocab()
    out = []
    for w in words:
        if w not in vocab and w not in out:
            out.append(w)
    return out


def builtin_warning(adapter, frames: np.ndarray, question: str) -> str | None:
    """One line when the built-in model gets a video or question from outside its world, else None."""
    if getattr(adapter, "name", "") != "builtin":
        return None
    problems = []
    if frames is not None and frames.ndim == 4 and frames.shape[0] > 0 and not video_looks_synthetic(frames):
        problems.append("this video is not one of its synthetic clips")
    words = unknown_words(adapter.tokenizer, question)
    if words:
        shown = ", ".join(repr(w) for w in words[:5]) + (" ..." if len(words) > 5 else "")
        problems.append(f"the question has words outside its vocabulary ({shown})")
    if not problems:
        return None
    return ("the built-in model only knows its synthetic world (coloured shapes on plain backgrounds) and "
            f"{' and '.join(problems)}, so its answer means nothing; load a real Video LLM for real videos")
