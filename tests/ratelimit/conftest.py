"""Rate-limit tests start with no counters in process memory (Redis is flushed for
every test by the root conftest)."""

from __future__ import annotations

import pytest

from gateway.ratelimit import LocalRateLimitStore
from gateway.runtime import runtime


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    if isinstance(runtime.ratelimit, LocalRateLimitStore):
        runtime.ratelimit.clear()
    yield
    if isinstance(runtime.ratelimit, LocalRateLimitStore):
        runtime.ratelimit.clear()
