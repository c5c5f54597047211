"""From a harness request (visuals, context text, generation kwargs) to an engine call and back.

Nothing here imports lmms-eval: ``Runner`` takes what a request carries and returns text (or a
log-likelihood) with the request's figures, so it is tested without the harness installed.
"""
from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from pruning_core.errors import VideoError, VideoPruneError
from pruning_core.registry import build_stages

from .args import ModelArgs
from .cache import EncodingCache
from .figures import combine_rounds, figures_of


@dataclass
class Encoded:
    """One cached video: its frames (at the model's input size) and its vision encoding."""

    frames: np.ndarray
    encoding: Any


def _is_image(x: Any) -> bool:
    return hasattr(x, "convert") and hasattr(x, "size") and hasattr(x, "mode")  # PIL.Image without importing PIL


def _flatten(visuals: Any) -> list:
    if visuals is None:
        return []
    if isinstance(visuals, (list, tuple)):
        out: list = []
        for v in visuals:
            out.extend(_flatten(v))
        return out
    return [visuals]


def stop_at(text: str, until: Sequence[str] | str | None) -> str:
    """``text`` cut before the first stop string (lmms-eval's ``until``)."""
    if not until:
        return text
    for s in [until] if isinstance(until, str) else until:
        if s and s in text:
            text = text.split(s, 1)[0]
    return text


class Runner:
    """Loaded model + engine + vision-encoding cache for one evaluation process."""

    def __init__(self, args: ModelArgs, adapter=None):
        from pruning_core.engine import Engine
        self.args = args
        if adapter is None:
            from pruning_core.loader import load_model
            adapter = load_model(args.pretrained, device=args.device, dtype=args.dtype, attn=args.attn)
        self.adapter = adapter
        self.engine = Engine(adapter)
        self.plan = args.plan_list
        build_stages(self.plan, adapter.info)  # a plan the model cannot run fails before the first request
        self.cache = EncodingCache(int(args.cache_mb * 2 ** 20))
        self._run_kwargs = self._engine_options()
        self.greedy_warned = False

    def _engine_options(self) -> dict:
        """``positions`` goes to the engine where it takes it; ``original`` is what the engine always does."""
        params = inspect.signature(self.engine.run).parameters
        if "positions" in params:
            return {"positions": self.args.positions}
        if self.args.positions != "original":
            raise VideoPruneError(f"positions={self.args.positions} is not supported by this engine; use positions=original")
        return {}

    # -- visuals -------------------------------------------------------------------------------
    def _video_key(self, visuals: list) -> tuple:
        a = self.args
        sampling = (a.frames, a.max_fps, a.max_side)
        if len(visuals) == 1 and isinstance(visuals[0], (str, os.PathLike)):
            path = os.path.realpath(os.fspath(visuals[0]))
            try:
                st = os.stat(path)
            except OSError:
                raise VideoError(f"video {visuals[0]!r} does not exist") from None
            return ("file", path, st.st_mtime_ns, st.st_size, *sampling)
        h = hashlib.blake2b(digest_size=16)
        for v in visuals:
            arr = np.asarray(v.convert("RGB")) if _is_image(v) else np.asarray(v)
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return ("pixels", h.hexdigest(), *sampling)

    def _frames(self, visuals: list):
        """(frames, timing or None): a video file is decoded straight to the model's input size."""
        from pruning_core.video import frames_from_array, load_video, sample_indices
        a = self.args
        if len(visuals) == 1 and isinstance(visuals[0], (str, os.PathLike)):
            v = load_video(os.fspath(visuals[0]), num_frames=a.frames, max_fps=a.max_fps, max_side=a.max_side,
                           frame_transform=self.adapter.frame_transform())
            return v.frames, v.timing
        if any(isinstance(v, (str, os.PathLike)) for v in visuals):
            raise VideoError("videoprune answers about one video per request; got several video paths")
        if any(isinstance(v, dict) for v in visuals):
            raise VideoError("videoprune has no audio input; this task gives audio")
        parts = [np.asarray(v.convert("RGB")) if _is_image(v) else np.asarray(v) for v in visuals]
        arrays = [p[None] if p.ndim == 3 else p for p in parts]
        frames = frames_from_array(np.concatenate(arrays, 0) if len(arrays) > 1 else arrays[0], max_side=a.max_side)
        idx = sample_indices(frames.shape[0], a.frames)
        return frames[idx], None

    def encode(self, visuals: Any) -> tuple[Encoded, bool]:
        """The cached encoding of ``visuals`` (one video path, or images/frames taken as one video)."""
        flat = _flatten(visuals)
        if not flat:
            raise VideoPruneError("videoprune evaluates video tasks; this request has no visual input")

        def make() -> Encoded:
            frames, timing = self._frames(flat)
            if frames.ndim != 4 or frames.shape[0] == 0:
                raise VideoError(f"no frames could be read from {flat[0]!r}")
            return Encoded(frames, self.adapter.encode_video(frames, timing=timing))
        return self.cache.get_or_create(self._video_key(flat), make)

    # -- requests ------------------------------------------------------------------------------
    def _max_new_tokens(self, gen_kwargs: dict | None) -> int:
        n = (gen_kwargs or {}).get("max_new_tokens")
        return max(1, int(n)) if n is not None else self.args.max_new_tokens

    def _warn_sampling(self, gen_kwargs: dict | None) -> str | None:
        g = gen_kwargs or {}
        if not self.greedy_warned and (g.get("do_sample") or float(g.get("temperature") or 0) > 0):
            self.greedy_warned = True
            return "videoprune decodes greedily (as the papers evaluate); do_sample/temperature are ignored"
        return None

    def generate(self, visuals: Any, context: str, gen_kwargs: dict | None = None) -> tuple[str, dict]:
        """Answer ``context`` about the video under the plan: (text cut at ``until``, figures)."""
        enc, hit = self.encode(visuals)
        prep = self.engine.prepare_encoded(enc.encoding, context, enc.frames)
        res = self.engine.run(prep, self.plan, max_new_tokens=self._max_new_tokens(gen_kwargs), **self._run_kwargs)
        return stop_at(res.answer, (gen_kwargs or {}).get("until")), figures_of(res, hit)

    def loglikelihood(self, visuals: Any, context: str, continuation: str) -> tuple[float, bool, dict]:
        """log P(continuation | video, context) on the pruned cache, and whether greedy decoding gives it.

        Pruning is decided on the question alone (the continuation is teacher-forced through the
        decode loop, after the pruned prefill), as it would be when the model answers.
        """
        ids = self.adapter.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not ids:
            raise VideoPruneError(f"continuation {continuation!r} has no tokens")
        enc, hit = self.encode(visuals)
        prep = self.engine.prepare_encoded(enc.encoding, context, enc.frames)
        res = self.engine.run(prep, self.plan, force_tokens=ids, **self._run_kwargs)
        logp = torch.log_softmax(res.logits.float(), dim=-1)
        target = torch.tensor(ids, device=logp.device)
        ll = float(logp.gather(1, target[:, None]).sum())
        greedy = bool((logp.argmax(-1) == target).all())
        return ll, greedy, figures_of(res, hit)

    def generate_rounds(self, visuals: Any, context: str, gen_kwargs: dict | None, next_round) -> tuple[list[str], dict]:
        """Multi-round generation: ``next_round(previous_outputs, round_idx, info)`` returns lmms-eval's
        ``(visuals, context, terminal, outputs, info)``; every round is one pruned engine call."""
        outputs: list[str] = []
        rounds: list[dict] = []
        info = None
        round_idx = 0
        while True:
            text, fig = self.generate(visuals, context, gen_kwargs)
            outputs.append(text)
            rounds.append(fig)
            round_idx += 1
            nxt_visuals, nxt_context, terminal, new_outputs, info = next_round(list(outputs), round_idx, info)
            if new_outputs is not None:
                outputs = list(new_outputs)
            if terminal or round_idx >= 64:
                break
            if nxt_visuals is not None:
                visuals = nxt_visuals
            if nxt_context is not None:
                context = nxt_context
        return outputs, combine_rounds(rounds)
