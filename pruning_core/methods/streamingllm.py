"""StreamingLLM (Xiao et al., ICLR 2024, "Efficient Streaming Language Models with Attention Sinks"),
the KV-cache baseline of HieraVid (Tables 1–2).

After the prefill, every layer's KV cache keeps only the first ``sinks`` entries (the attention
sinks, 4 in the paper) and the most recent ``window`` entries; everything between is freed.
During decoding the cache stays bounded: before each step the oldest non-sink entries go so
that the new token attends to at most ``sinks + window`` entries. With ``prefill=streamed``
(default; the setting the video-pruning papers compare against) the prefill is streamed too:
every token attends only to the sinks and the ``window`` most recent tokens (a boolean SDPA
mask in every layer), and the FLOPs count only those pairs; ``prefill=cache`` runs the prompt
with full attention and only cuts the cache afterwards. The window is either given, or sized so
that ``retention`` of the ORIGINAL visual tokens stay in the cache (the video sits before the
question, so the window holds the question and the LAST frames). See
``docs/methods/streamingllm.md``.
"""
from __future__ import annotations

import torch

from ..registry import MethodSpec, Param, register, retention_param
from ..stages import CacheStage, CacheView
from ..tokens import budget

PAPER = "StreamingLLM, Xiao et al. ICLR 2024 (4 attention sinks + recent window)"


def sink_window_keep(length: int, sinks: int, window: int, device=None) -> torch.Tensor:
    """Ascending cache indices StreamingLLM keeps of ``length`` entries: [0, sinks) ∪ [length-window, length)."""
    idx = torch.arange(length, device=device)
    return idx[(idx < sinks) | (idx >= length - window)]


def streaming_mask(n: int, sinks: int, window: int, device=None) -> torch.Tensor:
    """Bool [n, n]: query q may attend key k when k ≤ q and k is a sink (k < sinks) or among the
    ``window`` most recent tokens (q − k < window) — StreamingLLM's cache, as seen by every token
    of a streamed prefill. The last query sees exactly ``sink_window_keep(n, sinks, window)``."""
    idx = torch.arange(n, device=device)
    q, k = idx.unsqueeze(1), idx.unsqueeze(0)
    return (k <= q) & ((k < sinks) | (q - k < window))


def streaming_pairs(n: int, sinks: int, window: int) -> int:
    """(query, key) pairs ``streaming_mask(n, sinks, window)`` allows, without building it: query q sees
    [max(0, q-window+1), q] and the sinks below that, min(sinks, q+1, q-window+1) of them."""
    q = torch.arange(n, dtype=torch.float64)
    recent_lo = (q - window + 1).clamp(min=0)
    sinks_below = torch.minimum(torch.minimum(torch.full_like(q, float(sinks)), q + 1), recent_lo)
    return int((q + 1 - recent_lo + sinks_below).sum())


def window_for_retention(visual_ids: torch.Tensor, sinks: int, k_visual: int) -> int:
    """The recent-window size that keeps exactly ``k_visual`` visual entries of one layer's cache.

    ``visual_ids`` [len] is -1 for non-visual entries. Visual entries inside the sinks count
    towards ``k_visual``; the window reaches back from the end past the question until it has
    covered the rest.
    """
    length = visual_ids.numel()
    is_vis = visual_ids >= 0
    k_visual -= int(is_vis[:sinks].sum())
    is_vis[:sinks] = False
    # visual entries counted from the end: the window must end just after the k-th of them
    from_end = torch.flip(torch.cumsum(torch.flip(is_vis.long(), [0]), 0), [0])
    if k_visual <= 0:
        reach = (from_end == 0).nonzero()
        return int(length - reach[0, 0]) if reach.numel() else 0
    hit = ((from_end == k_visual) & is_vis).nonzero()
    if hit.numel() == 0:
        return max(0, length - sinks)
    return int(length - hit[0, 0])


class StreamingLLMStage(CacheStage):
    def __init__(self, method: str, params: dict):
        super().__init__(method, params)
        self.window = 0

    def _window(self, visual_ids: torch.Tensor, n_orig: int) -> int:
        p = self.params
        if p["window"] is not None:
            return int(p["window"])
        alive = int((visual_ids >= 0).sum())
        return window_for_retention(visual_ids, int(p["sinks"]), budget(p["retention"], n_orig, alive))

    def prefill_mask(self, state) -> torch.Tensor | None:
        if self.params["prefill"] != "streamed":
            return None
        n = int(state.hidden.shape[1])
        vids = torch.full((n,), -1, dtype=torch.long, device=state.vis_pos.device)
        vids[state.vis_pos] = state.vis_ids
        window = self._window(vids, state.layout.num_tokens)
        return streaming_mask(n, int(self.params["sinks"]), max(1, window), device=state.hidden.device)

    def expected_pairs(self, tokens_per_layer: list[int], n_text: int, n_visual: int) -> list[int] | None:
        """Data-free attention pairs per layer of the streamed prefill (``flops.flops_report``): the
        text taken to follow the video, as in every prompt template here."""
        if self.params["prefill"] != "streamed":
            return None
        vids = torch.cat([torch.arange(n_visual), torch.full((n_text,), -1, dtype=torch.long)])
        window = max(1, self._window(vids, n_visual))
        return [streaming_pairs(int(n), int(self.params["sinks"]), window) for n in tokens_per_layer]

    def after_prefill(self, cache: CacheView) -> dict:
        p = self.params
        sinks = int(p["sinks"])
        n_orig = cache.layout.num_tokens
        self.window = self._window(cache.visual_ids(0), n_orig)
        before = [int(cache.slots(l).numel()) for l in range(cache.num_layers)]
        visual = []
        for layer in range(cache.num_layers):
            keep = sink_window_keep(before[layer], sinks, self.window, device=cache.slots(layer).device)
            if keep.numel() < before[layer]:
                cache.keep(layer, keep)
            visual.append(int((cache.visual_ids(layer) >= 0).sum()))
        return {
            "sinks": sinks, "window": self.window, "prefill": p["prefill"],
            "kv_entries_before": before[0], "kv_entries_after": int(cache.slots(0).numel()),
            "visual_kv_entries": visual,
            # the visual share of the cache, averaged over layers: the retention it is compared at
            "cache_retention": round(sum(visual) / max(1, n_orig * cache.num_layers), 6),
        }

    def on_decode_step(self, cache: CacheView, step: int) -> None:
        if not self.params["bounded_decode"]:
            return
        sinks = int(self.params["sinks"])
        # room for the token about to be appended: at most sinks + window entries when it attends
        room = max(0, self.window - 1)
        for layer in range(cache.num_layers):
            length = int(cache.slots(layer).numel())
            if length > sinks + room:
                cache.keep(layer, sink_window_keep(length, sinks, room, device=cache.slots(layer).device))


register(MethodSpec(
    name="streamingllm",
    title="StreamingLLM",
    node="StreamingLLM",
    kind="cache",
    summary="KV cache keeps 4 attention-sink tokens plus the most recent window (the question and the last "
            "frames); the rest is freed after the prefill and the cache stays bounded while decoding.",
    paper=PAPER,
    params=(
        retention_param(0.3, ref="HieraVid Tables 1–2 (30/20/10% budgets)",
                        tooltip="Size the recent window so this fraction of the ORIGINAL visual tokens stays "
                                "in the KV cache (ignored when window is set)."),
        Param("sinks", "int", 4, "Initial tokens always kept (attention sinks).", min=0, max=1024, step=1,
              ref="StreamingLLM §3.2 (4 sink tokens)"),
        Param("window", "int", None, "Recent-window size in cache entries; empty = from retention.",
              min=1, max=10_000_000, step=1, optional=True, ref="StreamingLLM §4 (recent size)"),
        Param("prefill", "choice", "streamed", "streamed: every prompt token attends only to the sinks and the "
              "recent window (a masked prefill, its FLOPs counted); cache: full-attention prefill, the cache is "
              "cut afterwards.", choices=("streamed", "cache"),
              ref="StreamingLLM §3.2 (streaming with a rolling cache); HieraVid Tables 1-2"),
        Param("bounded_decode", "bool", True, "Keep the cache at sinks + window entries while decoding "
              "(evict the oldest non-sink entry per new token).", ref="StreamingLLM §3.2 (rolling KV cache)"),
    ),
    build=lambda p, info: [StreamingLLMStage("streamingllm", p)],
    tags=("kv-cache",),
))
