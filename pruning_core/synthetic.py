"""Deterministic synthetic video-QA world for the built-in tiny model and the accuracy benchmark.

A video is a run of 2–5 scenes (contiguous frame segments, each with its own background colour)
in which a few objects (distinct shapes, distinct colours) appear for a few frames, move one grid
cell per frame, and vanish. Objects are drawn inside the cells of the 7×7 token grid the tiny
LLaVA-OneVision model sees (112 px frames, 16 px per token), so the evidence of every question is
a known set of (frame, row, col) cells, i.e. known ORIGINAL visual token ids.

Each sample carries one multiple-choice question (4 options in the text, one-word answer) whose
evidence sits early, in the middle, late, or spread over an early and a late segment.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import VideoError

IMAGE_SIZE = 112
GRID = 7
CELL = IMAGE_SIZE // GRID  # 16 px: one LLaVA-OV visual token (2×2 patches of 8 px)
DEFAULT_FRAMES = 16

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
COLOURS = {  # bright object colours
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (70, 120, 255), "yellow": (240, 220, 40),
    "white": (245, 245, 245), "orange": (255, 140, 0), "pink": (255, 120, 200), "cyan": (60, 230, 230),
}
BACKGROUNDS = {  # dark / muted scene colours, disjoint words from the object colours
    "black": (15, 15, 15), "gray": (105, 105, 105), "navy": (20, 30, 100), "maroon": (100, 20, 35),
    "olive": (85, 85, 20), "teal": (15, 85, 85), "brown": (95, 55, 20), "purple": (75, 25, 100),
}
KINDS = ("colour", "shape", "background")
POSITIONS = ("early", "middle", "late", "spread")
ANSWER_WORDS = tuple(COLOURS) + SHAPES + tuple(BACKGROUNDS)
QUESTION_WORDS = ("what", "colour", "is", "the", "shape", "object", "background", "when", "appears", "?",
                  "options", ":", ",")


@dataclass(frozen=True)
class VideoObject:
    shape: str
    colour: str
    frames: tuple[int, ...]
    cells: tuple[tuple[int, int], ...]  # (row, col) per entry of ``frames``


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    options: tuple[str, ...]
    kind: str                   # colour | shape | background
    position: str               # early | middle | late | spread
    evidence: tuple[tuple[int, int, int], ...]  # (frame, row, col) cells that hold the answer

    @property
    def evidence_frames(self) -> tuple[int, ...]:
        return tuple(sorted({f for f, _, _ in self.evidence}))

    def evidence_token_ids(self, grid: int = GRID) -> list[int]:
        """ORIGINAL visual token ids (frame*grid²+row*grid+col) of the evidence cells."""
        return sorted(f * grid * grid + r * grid + c for f, r, c in self.evidence)

    def to_dict(self) -> dict:
        return {"text": self.text, "answer": self.answer, "options": list(self.options), "kind": self.kind,
                "position": self.position, "evidence": [list(e) for e in self.evidence],
                "evidence_frames": list(self.evidence_frames)}


@dataclass
class Sample:
    """One synthetic video with its ground truth and one question about it."""

    frames: np.ndarray                      # uint8 [T, 112, 112, 3] RGB
    backgrounds: tuple[str, ...]            # background name per frame
    scenes: tuple[tuple[int, int, str], ...]  # (start, end_exclusive, background)
    objects: tuple[VideoObject, ...]
    question: Question
    seed: int = 0
    cell_shape: np.ndarray = field(repr=False, default=None)   # int [T,7,7]: 0 none, 1+SHAPES index
    cell_colour: np.ndarray = field(repr=False, default=None)  # int [T,7,7]: 0 none, 1+COLOURS index

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def background_ids(self) -> np.ndarray:
        names = list(BACKGROUNDS)
        return np.array([names.index(b) for b in self.backgrounds], dtype=np.int64)


def _position_window(position: str, t: int) -> tuple[int, int]:
    third = t / 3.0
    lo = {"early": 0, "middle": int(round(third)), "late": int(round(2 * third))}[position]
    hi = {"early": int(round(third)), "middle": int(round(2 * third)), "late": t}[position]
    return lo, max(hi, lo + 1)


def position_of(frames: tuple[int, ...], t: int) -> str:
    """Label a set of evidence frames by where it sits in a video of ``t`` frames."""
    labels = set()
    for f in frames:
        for p in ("early", "middle", "late"):
            lo, hi = _position_window(p, t)
            if lo <= f < hi:
                labels.add(p)
    if len(labels) == 1:
        return labels.pop()
    return "spread" if {"early", "late"} <= labels else sorted(labels, key=POSITIONS.index)[0]


def _scenes(rng: np.random.Generator, t: int) -> list[tuple[int, int, str]]:
    n = int(rng.integers(2, 6))
    n = max(1, min(n, t // 2))
    lengths = np.full(n, 2 if t >= 2 * n else 1, dtype=np.int64)
    rest = t - int(lengths.sum())
    if rest > 0:
        lengths += rng.multinomial(rest, np.full(n, 1.0 / n))
    names = rng.choice(list(BACKGROUNDS), size=n, replace=False)
    out, start = [], 0
    for ln, name in zip(lengths, names):
        out.append((start, start + int(ln), str(name)))
        start += int(ln)
    return out


def _scene_of(scenes, f: int) -> tuple[int, int, str]:
    for s in scenes:
        if s[0] <= f < s[1]:
            return s
    raise AssertionError(f"frame {f} outside scenes")


def _span(rng: np.random.Generator, scenes, lo: int, hi: int, length: int) -> tuple[int, ...]:
    """Contiguous frames starting in [lo, hi), clipped to the window and to one scene."""
    start = int(rng.integers(lo, hi))
    s0, s1, _ = _scene_of(scenes, start)
    end = min(start + length, hi, s1)
    return tuple(range(start, max(end, start + 1)))


def _walk(rng: np.random.Generator, frames: tuple[int, ...], occupied: dict) -> tuple[tuple[int, int], ...] | None:
    """Cells of an object moving one cell per frame (bouncing off the borders), avoiding occupied cells."""
    for _ in range(30):
        r, c = (int(v) for v in rng.integers(0, GRID, size=2))
        dr, dc = (int(v) for v in rng.integers(-1, 2, size=2))
        cells, prev = [], None
        for f in frames:
            if prev is not None and f == prev + 1:
                if not 0 <= r + dr < GRID:
                    dr = -dr
                if not 0 <= c + dc < GRID:
                    dc = -dc
                r, c = r + dr, c + dc
            elif prev is not None:  # a new appearance after a gap starts at a fresh cell
                r, c = (int(v) for v in rng.integers(0, GRID, size=2))
            cells.append((r, c))
            prev = f
        if all((f, cell) not in occupied for f, cell in zip(frames, cells)):
            for f, cell in zip(frames, cells):
                occupied[(f, cell)] = True
            return tuple(cells)
    return None


def _draw(img: np.ndarray, shape: str, rgb: tuple[int, int, int], row: int, col: int, rng: np.random.Generator) -> None:
    size = int(rng.integers(12, 16))
    cx = col * CELL + CELL // 2 + int(rng.integers(-1, 2))
    cy = row * CELL + CELL // 2 + int(rng.integers(-1, 2))
    h = size // 2
    colour = tuple(int(v) for v in rgb)
    if shape == "circle":
        cv2.circle(img, (cx, cy), h, colour, -1, cv2.LINE_AA)
    elif shape == "square":
        cv2.rectangle(img, (cx - h + 1, cy - h + 1), (cx + h - 1, cy + h - 1), colour, -1)
    elif shape == "triangle":
        pts = np.array([[cx, cy - h], [cx - h, cy + h], [cx + h, cy + h]], np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    elif shape == "diamond":
        pts = np.array([[cx, cy - h], [cx + h, cy], [cx, cy + h], [cx - h, cy]], np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    elif shape == "cross":
        w = max(2, size // 5)
        cv2.rectangle(img, (cx - h, cy - w), (cx + h, cy + w), colour, -1)
        cv2.rectangle(img, (cx - w, cy - h), (cx + w, cy + h), colour, -1)
    elif shape == "star":
        ang = np.arange(10) * np.pi / 5 - np.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, h + 0.5, h * 0.42)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).round().astype(np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _options(rng: np.random.Generator, answer: str, preferred: list[str], pool: tuple[str, ...]) -> tuple[str, ...]:
    """4 options: the answer, hard negatives from the same video first, then random fill; shuffled."""
    opts = [answer]
    for w in list(dict.fromkeys(preferred)):
        if w not in opts and len(opts) < 4:
            opts.append(w)
    rest = [w for w in pool if w not in opts]
    opts += list(rng.choice(rest, size=4 - len(opts), replace=False))
    return tuple(str(w) for w in rng.permutation(opts))


def make_sample(seed: int, num_frames: int = DEFAULT_FRAMES, kind: str | None = None,
                position: str | None = None) -> Sample:
    """Build one video and one question, fully determined by ``seed`` (and the optional overrides)."""
    if num_frames < 1:
        raise VideoError(f"num_frames must be >= 1, got {num_frames}")
    rng = np.random.default_rng(seed)
    t = num_frames
    kind = kind or str(rng.choice(KINDS))
    if kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; use one of {KINDS}")
    allowed = POSITIONS if kind != "background" else POSITIONS[:3]
    position = position or str(rng.choice(allowed))
    if position not in allowed:
        raise ValueError(f"position {position!r} is not available for {kind} questions")
    if t < 6 and position == "spread":
        position = "early"
    scenes = _scenes(rng, t)
    n_obj = int(rng.integers(3, 6))
    shapes = rng.choice(SHAPES, size=n_obj, replace=False)
    colours = rng.choice(list(COLOURS), size=n_obj, replace=False)

    occupied: dict = {}
    objects: list[VideoObject] = []
    for i in range(n_obj):
        for _ in range(30):
            if i == 0:
                if position == "spread":
                    a = _span(rng, scenes, *_position_window("early", t), int(rng.integers(1, 3)))
                    b = _span(rng, scenes, *_position_window("late", t), int(rng.integers(1, 3)))
                    frames = a + b
                else:
                    lo, hi = _position_window(position, t) if t >= 3 else (0, t)
                    frames = _span(rng, scenes, lo, hi, int(rng.integers(2, 4)))
            else:
                frames = _span(rng, scenes, 0, t, int(rng.integers(1, 5)))
            cells = _walk(rng, frames, occupied)
            if cells is not None:
                objects.append(VideoObject(str(shapes[i]), str(colours[i]), frames, cells))
                break
        else:
            raise AssertionError("could not place objects")  # 49 cells per frame, ≤5 objects: unreachable

    bgs = [_scene_of(scenes, f)[2] for f in range(t)]
    frames_px = np.empty((t, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for f in range(t):
        frames_px[f] = BACKGROUNDS[bgs[f]]
    cell_shape = np.zeros((t, GRID, GRID), dtype=np.int64)
    cell_colour = np.zeros((t, GRID, GRID), dtype=np.int64)
    for ob in objects:
        for f, (r, c) in zip(ob.frames, ob.cells):
            _draw(frames_px[f], ob.shape, COLOURS[ob.colour], r, c, rng)
            cell_shape[f, r, c] = SHAPES.index(ob.shape) + 1
            cell_colour[f, r, c] = list(COLOURS).index(ob.colour) + 1
    # mild sensor noise so the tower cannot key on exact pixel values
    noise = rng.integers(-6, 7, size=frames_px.shape)
    frames_px = np.clip(frames_px.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    q = ask(objects, scenes, t, 0, kind, rng, position if t < 3 else None)
    return Sample(frames_px, tuple(bgs), tuple(scenes), tuple(objects), q, seed, cell_shape, cell_colour)


def ask(objects, scenes, t: int, index: int, kind: str, rng: np.random.Generator,
        position: str | None = None) -> Question:
    """A question of ``kind`` about ``objects[index]`` with 4 shuffled options (hard negatives first).

    Background questions need the object to stay inside one scene; ``position`` overrides the label
    (only meaningful for videos too short to have thirds).
    """
    target = objects[index]
    others = [o for i, o in enumerate(objects) if i != index]
    evidence = tuple((f, r, c) for f, (r, c) in zip(target.frames, target.cells))
    if kind == "colour":
        text = f"what colour is the {target.shape} ?"
        answer = target.colour
        options = _options(rng, answer, [o.colour for o in others], tuple(COLOURS))
    elif kind == "shape":
        text = f"what shape is the {target.colour} object ?"
        answer = target.shape
        options = _options(rng, answer, [o.shape for o in others], SHAPES)
    elif kind == "background":
        names = {_scene_of(scenes, f)[2] for f in target.frames}
        if len(names) != 1:
            raise ValueError("background question about an object seen in several scenes")
        text = f"what is the background when the {target.shape} appears ?"
        answer = names.pop()
        options = _options(rng, answer, [s[2] for s in scenes], tuple(BACKGROUNDS))
    else:
        raise ValueError(f"unknown question kind {kind!r}; use one of {KINDS}")
    text += " options : " + " , ".join(options)
    label = position or position_of(target.frames, t)
    return Question(text, answer, options, kind, label, evidence)


def first_word(text: str) -> str:
    """The answer word of a generated reply (its first lower-case word); a reply is right when it equals the gold word."""
    m = re.search(r"[a-z]+", text.lower())
    return m.group(0) if m else ""


def make_dataset(n: int, seed: int, num_frames: int = DEFAULT_FRAMES) -> list[Sample]:
    """``n`` samples, balanced over (kind, position) combinations, seeds derived from ``seed``."""
    combos = [(k, p) for k in KINDS for p in POSITIONS if not (k == "background" and p == "spread")]
    return [make_sample(seed * 1_000_003 + i, num_frames, *combos[i % len(combos)]) for i in range(n)]


def sample_video(path: str | Path, seed: int = 0, num_frames: int = DEFAULT_FRAMES, fps: float = 4.0) -> Sample:
    """Write a generated video to ``path`` (mp4, 'mp4v') and return its sample (question and answer)."""
    s = make_sample(seed, num_frames)
    write_mp4(s.frames, path, fps)
    return s


def write_mp4(frames: np.ndarray, path: str | Path, fps: float = 4.0) -> None:
    """Write RGB uint8 frames [T,H,W,3] to ``path`` (mp4, OpenCV 'mp4v'), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w_px = int(frames.shape[1]), int(frames.shape[2])
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w_px, h))
    if not w.isOpened():
        raise VideoError(f"cannot open {path} for writing (OpenCV mp4v)")
    try:
        for f in frames:
            w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
        w.release()
