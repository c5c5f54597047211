"""The lmms-eval model type ``videoprune``: our loader + pruning engine behind lmms-eval's ``lmms`` API.

Registered through lmms-eval's entry-point group ``lmms_eval.models`` (see ``videoprune_eval.manifest``).
Requests arrive already sharded by lmms-eval (rank ``r`` of ``N`` gets docs ``r, r+N, ...``); the
rank and world size come from accelerate, so ``accelerate launch --num_processes N`` (multi-node
too) spreads one command over N processes. Each request is answered at batch size 1. Its figures
ride in the logged sample (``token_counts[i].videoprune``); the summary over all processes goes
to the results' ``throughput`` block and to the log, and ``videoprune_synthetic`` also scores them
as metrics next to ``acc``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import List, Tuple

from loguru import logger as eval_logger
from tqdm import tqdm

from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms

from pruning_core.errors import VideoPruneError

from .args import parse_model_args, single_cpu_launch_note
from .figures import DOC_FIGURES, summarize, summary_line
from .runner import Runner


@dataclasses.dataclass
class VideoPruneCounts(TokenCounts):
    """lmms-eval's per-request token counts, plus our figures (logged as ``token_counts[i].videoprune``)."""

    figures: dict | None = None

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.figures is not None:
            d["videoprune"] = dict(self.figures)
        return d


def _rank_and_world(accelerator) -> tuple[int, int]:
    """Global rank and world size: torch.distributed's when a launcher started a process group
    (accelerate --multi_gpu, torchrun, multi-node), else accelerate's view."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return accelerator.process_index, accelerator.num_processes


class VideoPrune(lmms):
    is_simple = True

    def __init__(self, **kwargs) -> None:
        super().__init__()
        from accelerate import Accelerator
        try:
            args = parse_model_args(**kwargs)
        except VideoPruneError as e:
            raise ValueError(f"videoprune: {e}") from None
        self.accelerator = Accelerator()
        self._rank, self._world_size = _rank_and_world(self.accelerator)
        if args.device == "auto" and self._world_size > 1 and self.accelerator.device.type == "cuda":
            args = dataclasses.replace(args, device=str(self.accelerator.device))
        self.args = args
        note = single_cpu_launch_note(os.environ, self._world_size)
        if note:
            eval_logger.warning(note)
        try:
            self.runner = Runner(args)
        except VideoPruneError as e:
            raise ValueError(f"videoprune: {e}") from None
        self._device = self.runner.adapter.device
        self._all_figures: list[dict] = []
        if self._rank == 0:
            eval_logger.info(f"videoprune: model {args.pretrained} plan {args.plan} frames {args.frames} "
                             f"on {self._device} x {self._world_size} process(es)")

    @property
    def device(self):
        return self._device

    @property
    def batch_size(self) -> int:
        return 1

    # -- helpers ---------------------------------------------------------------------------------
    def _doc(self, task: str, split: str, doc_id: int):
        return self.task_dict[task][split][doc_id]

    def _record(self, figures: dict, task: str, split: str, doc_id: int) -> None:
        DOC_FIGURES[(task, split, doc_id)] = figures
        self._local.append(figures)

    def _result(self, text, figures: dict, task: str, split: str, doc_id: int) -> GenerationResult:
        self._record(figures, task, split, doc_id)
        counts = VideoPruneCounts(output_tokens=figures.get("new_tokens"), figures=figures)
        return GenerationResult(text=text, token_counts=counts)

    def _finish(self) -> None:
        """Gather the figures of this call from every process; rank 0 logs the summary."""
        import torch.distributed as dist
        local, self._local = self._local, []
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, local)
            merged = [f for part in gathered for f in part]
        else:
            merged = local
        self._all_figures.extend(merged)
        if self._rank != 0 or not merged:
            return
        s = summarize(self._all_figures)
        s["vision_cache_rank0"] = self.runner.cache.stats.to_dict()
        eval_logger.info(summary_line(s))
        from lmms_eval.models.model_utils.gen_metrics import log_metrics
        seconds = sum(f["ttft_ms"] + f["decode_ms_per_token"] * max(f["new_tokens"] - 1, 0) for f in merged) / 1000
        tokens = sum(f["new_tokens"] for f in merged)
        numeric = {k.replace("mean_", ""): v for k, v in summarize(merged).items()
                   if isinstance(v, (int, float)) and k != "requests"}
        log_metrics(total_elapsed_time=seconds, total_gen_tokens=tokens,
                    avg_speed=tokens / seconds if seconds > 0 else 0.0,
                    additional_metrics={"videoprune_" + k: v for k, v in numeric.items()})

    @staticmethod
    def _padding(req: Instance) -> bool:
        """lmms-eval pads the shorter ranks with clones of their last request and drops their outputs:
        answered without running the model, and kept out of the figures."""
        return bool((getattr(req, "metadata", None) or {}).get("__padding_only__"))

    def _warn(self, gen_kwargs) -> None:
        msg = self.runner._warn_sampling(gen_kwargs)
        if msg and self._rank == 0:
            eval_logger.warning(msg)

    # -- lmms API --------------------------------------------------------------------------------
    def generate_until(self, requests: List[Instance]) -> List[GenerationResult]:
        self._local = []
        out = []
        for req in tqdm(requests, disable=self._rank != 0, desc="videoprune"):
            if self._padding(req):
                out.append("")
                continue
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            self._warn(gen_kwargs)
            text, fig = self.runner.generate(doc_to_visual(self._doc(task, split, doc_id)), context, gen_kwargs)
            out.append(self._result(text, fig, task, split, doc_id))
        self._finish()
        return out

    def loglikelihood(self, requests: List[Instance]) -> List[Tuple[float, bool]]:
        self._local = []
        out = []
        for req in tqdm(requests, disable=self._rank != 0, desc="videoprune loglikelihood"):
            if self._padding(req):
                out.append((0.0, False))
                continue
            context, doc_to_target, doc_to_visual, doc_id, task, split = req.args
            doc = self._doc(task, split, doc_id)
            continuation = doc_to_target if isinstance(doc_to_target, str) else doc_to_target(doc)
            ll, greedy, fig = self.runner.loglikelihood(doc_to_visual(doc), context, continuation)
            self._record(fig, task, split, doc_id)
            out.append((ll, greedy))
        self._finish()
        return out

    def generate_until_multi_round(self, requests: List[Instance]) -> List[GenerationResult]:
        self._local = []
        out = []
        for req in tqdm(requests, disable=self._rank != 0, desc="videoprune multi-round"):
            if self._padding(req):
                out.append([""])
                continue
            context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = req.args
            self._warn(gen_kwargs)
            doc = self._doc(task, split, doc_id)

            def next_round(previous, round_idx, info, _doc=doc, _f=doc_to_text):
                return _f(_doc, previous_output=previous, round_idx=round_idx, previous_round_info=info)
            texts, fig = self.runner.generate_rounds(doc_to_visual(doc), context, gen_kwargs, next_round)
            out.append(self._result(texts, fig, task, split, doc_id))
        self._finish()
        return out
