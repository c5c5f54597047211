"""The lmms-eval task ``videoprune_synthetic``: the built-in synthetic video-QA world as local files.

``export()`` writes, deterministically and without any download, ``videos/vNNNN.mp4`` (16 frames,
112 px, the world the built-in model knows) and ``test.jsonl`` with three multiple-choice questions
per video (colour, shape, background; like VideoMME's three per video). The videos are the held-out
accuracy benchmark's (``bench/accuracy.py``: ``make_dataset(n, seed=2)``), so the first question of
every video is the benchmark's own. The doc functions below are what the task YAML points at.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pruning_core.synthetic import KINDS, ask, first_word, make_dataset, write_mp4

TASK = "videoprune_synthetic"
SPLIT = "test"
SEED = 2              # bench/accuracy.py's held-out seed: training uses seeds >= 50,000,000, validation 3
VIDEOS = 100          # 300 questions
FPS = 4.0
TASK_DIR = Path(__file__).resolve().parent / "tasks" / TASK
DATA_DIR = Path(os.environ.get("VIDEOPRUNE_SYNTHETIC_DIR", TASK_DIR / "data"))
FIGURE_METRICS = ("kept_tokens", "retention", "equivalent_retention", "flops_ratio", "ttft_ms", "prefill_ms",
                  "vision_cache_hit")


def questions_for(sample, seed: int) -> list:
    """The sample's own question, then one of each other kind about the same object (background about
    the first object that stays inside one scene when this one does not)."""
    qs = [sample.question]
    for j, kind in enumerate(k for k in KINDS if k != sample.question.kind):
        rng = np.random.default_rng([seed, j + 1])
        for idx in range(len(sample.objects)):
            try:
                qs.append(ask(sample.objects, sample.scenes, sample.num_frames, idx, kind, rng))
                break
            except ValueError:  # object seen in several scenes: no single background to ask about
                continue
    return qs


def build_rows(videos: int = VIDEOS, seed: int = SEED) -> list[tuple[object, list[dict]]]:
    out = []
    qid = 0
    for v, sample in enumerate(make_dataset(videos, seed)):
        vid = f"v{v:04d}"
        rows = []
        for qi, q in enumerate(questions_for(sample, sample.seed)):
            rows.append({"qid": qid, "video_id": vid, "video": f"videos/{vid}.mp4", "question_index": qi,
                         "question": q.text, "answer": q.answer, "options": list(q.options), "kind": q.kind,
                         "position": q.position, "seed": int(sample.seed),
                         "frames_sha256": hashlib.sha256(sample.frames.tobytes()).hexdigest()})
            qid += 1
        out.append((sample, rows))
    return out


def export(out_dir: str | os.PathLike = DATA_DIR, videos: int = VIDEOS, seed: int = SEED, force: bool = False) -> Path:
    """Write the task's files into ``out_dir`` (atomically: a half-written export is never seen)."""
    out = Path(out_dir)
    manifest = {**MANIFEST, "videos": videos, "seed": seed}
    if not force and _complete(out, manifest):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        lines = []
        for sample, rows in build_rows(videos, seed):
            write_mp4(sample.frames, tmp / rows[0]["video"], fps=FPS)
            lines.extend(json.dumps(r) for r in rows)
        (tmp / f"{SPLIT}.jsonl").write_text("\n".join(lines) + "\n")
        (tmp / "manifest.json").write_text(json.dumps({**manifest, "questions": len(lines)}))
        if out.exists():
            if not force and _complete(out, manifest):  # another process finished first
                return out
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _complete(out: Path, manifest: dict) -> bool:
    try:
        m = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return all(m.get(k) == v for k, v in manifest.items()) and (out / f"{SPLIT}.jsonl").is_file()


# -- what the task YAML points at -------------------------------------------------------------------
def doc_to_visual(doc: dict) -> list[str]:
    return [str(DATA_DIR / doc["video"])]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    kw = lmms_eval_specific_kwargs or {}
    return f"{kw.get('pre_prompt', '')}{doc['question']}{kw.get('post_prompt', '')}"


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


def process_results(doc: dict, results: list) -> dict:
    """``acc``: the reply's first word equals the gold word. With the ``videoprune`` model the request's
    figures are scored too (means over docs, gathered across processes by lmms-eval)."""
    reply = results[0] if results else ""
    if isinstance(reply, (list, tuple)):
        reply = reply[-1] if reply else ""
    out = {"acc": float(first_word(str(reply)) == doc["answer"])}
    from .figures import DOC_FIGURES
    fig = DOC_FIGURES.get((TASK, SPLIT, doc["qid"]))
    if fig is not None:
        for k in FIGURE_METRICS[:-1]:
            out[k] = float(fig[k])
        out["vision_cache_hit"] = float(fig["vision_cached"])
    return out



MANIFEST = {"task": TASK, "videos": VIDEOS, "seed": SEED, "fps": FPS, "version": 1}


def ensure_exported() -> Path:
    """The default export, written when missing (what the task folder's utils.py does on import)."""
    return DATA_DIR if _complete(DATA_DIR, MANIFEST) else export(DATA_DIR)
