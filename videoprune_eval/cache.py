"""A bounded in-memory cache of vision encodings, one entry per (video, sampling).

VideoMME asks three questions per video, and so does ``videoprune_synthetic``; the vision tower
and projector are the same for all of them, so each (video, frames) is encoded once and every
question reuses it (pruning stages never modify an ``Encoding``). Entries are evicted least
recently used first once their tensors exceed ``max_bytes``; an entry larger than the bound is
not kept at all. Hits and misses are counted for the run's summary.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np
import torch


def nbytes(obj: Any) -> int:
    """Bytes held by the tensors / arrays inside ``obj`` (dataclasses, dicts, lists walked)."""
    seen: set[int] = set()

    def walk(x: Any) -> int:
        if x is None or id(x) in seen:
            return 0
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            return x.numel() * x.element_size()
        if isinstance(x, np.ndarray):
            return int(x.nbytes)
        if isinstance(x, dict):
            return sum(walk(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return sum(walk(v) for v in x)
        if hasattr(x, "__dataclass_fields__"):
            return sum(walk(getattr(x, f)) for f in x.__dataclass_fields__)
        return 0
    return walk(obj)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    bytes: int = 0
    entries: int = 0

    @property
    def requests(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    def to_dict(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "requests": self.requests,
                "hit_rate": round(self.hit_rate, 4), "evictions": self.evictions,
                "bytes": self.bytes, "entries": self.entries}


class EncodingCache:
    """LRU by bytes. ``get_or_create(key, make)`` returns ``(value, hit)``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get_or_create(self, key: Hashable, make: Callable[[], Any]) -> tuple[Any, bool]:
        if key in self._items:
            self._items.move_to_end(key)
            self.stats.hits += 1
            return self._items[key][0], True
        self.stats.misses += 1
        value = make()
        size = nbytes(value)
        if 0 < size <= self.max_bytes:
            self._items[key] = (value, size)
            self.stats.bytes += size
            while self.stats.bytes > self.max_bytes:
                _, (_, old) = self._items.popitem(last=False)
                self.stats.bytes -= old
                self.stats.evictions += 1
        self.stats.entries = len(self._items)
        return value, False

    def clear(self) -> None:
        self._items.clear()
        self.stats.bytes = 0
        self.stats.entries = 0
