"""Rate-limit headers the fake sends on every success, named and shaped as each vendor
does (OpenAI `x-ratelimit-*` with durations, Anthropic `anthropic-ratelimit-*` with
RFC 3339 reset times). The numbers are fixed: the fake never rate-limits by itself;
tests script a 429 when they want one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .errors import OPENAI

OPENAI_LIMITS = (
    (b"openai-version", b"2020-10-01"),
    (b"openai-processing-ms", b"1"),
    (b"x-ratelimit-limit-requests", b"10000"),
    (b"x-ratelimit-limit-tokens", b"30000000"),
    (b"x-ratelimit-remaining-requests", b"9999"),
    (b"x-ratelimit-remaining-tokens", b"29999000"),
    (b"x-ratelimit-reset-requests", b"6ms"),
    (b"x-ratelimit-reset-tokens", b"2ms"),
)
ANTHROPIC_LIMITS = (  # (kind, limit, remaining); each also gets a `-reset` timestamp
    (b"requests", b"4000", b"3999"),
    (b"input-tokens", b"2000000", b"1999000"),
    (b"output-tokens", b"400000", b"399000"),
    (b"tokens", b"2400000", b"2398000"),
)


class RateLimitHeaders:
    def __init__(self) -> None:
        self._second = -1
        self._anthropic: list[tuple[bytes, bytes]] = []

    def for_protocol(self, protocol: str) -> Sequence[tuple[bytes, bytes]]:
        if protocol == OPENAI:
            return OPENAI_LIMITS
        now = int(time.time())
        if now != self._second:  # the reset stamp changes once a second at most
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1)).encode()
            prefix = b"anthropic-ratelimit-"
            self._anthropic = [
                header
                for kind, limit, remaining in ANTHROPIC_LIMITS
                for header in (
                    (prefix + kind + b"-limit", limit),
                    (prefix + kind + b"-remaining", remaining),
                    (prefix + kind + b"-reset", stamp),
                )
            ]
            self._second = now
        return self._anthropic
