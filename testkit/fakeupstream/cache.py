"""The fake's prompt cache: which prompt prefixes it has "seen", so usage can report
cache writes and reads the way each vendor does.

Anthropic (explicit): a prompt prefix ending at a `cache_control` breakpoint is
written the first time it is seen and read afterwards. As upstream, each breakpoint
also looks back up to 20 pieces for an earlier cached prefix, so a conversation that
moves its breakpoint forward each turn reads the old prefix and writes the new part.

OpenAI (automatic): when a prompt has at least `min_tokens` tokens, every message
boundary is remembered; a later prompt reads the longest remembered prefix that is
itself at least `min_tokens` long.

Prefixes are keyed by a running hash of (model, pieces without their cache_control);
entries expire after their ttl (5 minutes or 1 hour) and the cache keeps at most
`max_entries` of them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .reply import Unit

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK = 20


@dataclass(slots=True)
class CacheUsage:
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def write(self) -> int:
        return self.write_5m + self.write_1h


def _identity(obj: Any) -> bytes:
    if isinstance(obj, dict) and "cache_control" in obj:
        obj = {k: v for k, v in obj.items() if k != "cache_control"}
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _prefix_digests(model: str, units: list[Unit]) -> list[bytes]:
    running = hashlib.blake2b(model.encode(), digest_size=16)
    digests = []
    for unit in units:
        running.update(_identity(unit.obj))
        digests.append(running.copy().digest())
    return digests


class PromptCache:
    def __init__(self, *, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _alive(self, key: bytes, now: float) -> bool:
        expires = self._entries.get(key)
        return expires is not None and expires > now

    def _put(self, key: bytes, ttl: str, now: float) -> None:
        expires = now + TTL_SECONDS.get(ttl, 300.0)
        self._entries[key] = max(expires, self._entries.get(key, 0.0))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def anthropic(self, model: str, units: list[Unit]) -> CacheUsage:
        breakpoints = [i for i, unit in enumerate(units) if unit.ttl]
        usage = CacheUsage()
        if not breakpoints:
            return usage
        digests = _prefix_digests(model, units)
        cumulative, total = [], 0
        for unit in units:
            total += unit.tokens
            cumulative.append(total)
        now = time.monotonic()
        with self._lock:
            read_at = -1
            for bp in breakpoints:
                for pos in range(bp, max(bp - LOOKBACK, -1), -1):
                    if pos <= read_at:
                        break
                    if self._alive(digests[pos], now):
                        read_at = pos
                        break
            if read_at >= 0:
                usage.read = cumulative[read_at]
                # a read refreshes the entry for its own ttl (the longest on record)
                self._put(digests[read_at], "5m", now)
            previous = read_at
            for bp in breakpoints:
                if bp <= read_at:
                    continue
                written = cumulative[bp] - (cumulative[previous] if previous >= 0 else 0)
                if units[bp].ttl == "1h":
                    usage.write_1h += written
                else:
                    usage.write_5m += written
                self._put(digests[bp], units[bp].ttl or "5m", now)
                previous = bp
        return usage

    def openai(self, model: str, units: list[Unit], boundaries: list[int], min_tokens: int) -> int:
        """Cached tokens for an OpenAI prompt. `boundaries` are the unit indexes that end
        a message (or the tool definitions)."""
        cumulative, total = [], 0
        for unit in units:
            total += unit.tokens
            cumulative.append(total)
        if not units or total < max(min_tokens, 1):
            return 0
        digests = _prefix_digests(model, units)
        now = time.monotonic()
        cached = 0
        with self._lock:
            for pos in reversed(boundaries):
                if cumulative[pos] >= min_tokens and self._alive(digests[pos], now):
                    cached = cumulative[pos]
                    break
            for pos in boundaries:
                if cumulative[pos] >= min_tokens:
                    self._put(digests[pos], "5m", now)
        return cached
