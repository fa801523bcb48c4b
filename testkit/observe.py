"""Hooks the tests use to observe and reset the gateway running in their process,
kept here so that production classes carry none.

    RecordedEvents   counts usage events as the gateway records them, so a test can
                     wait for a request to be settled (one the client abandoned
                     finishes after the client is gone) instead of sleeping
    runtime_reset    every cache cold and in-process credit forgotten: what a fresh
                     worker knows
"""

from __future__ import annotations

import threading

from billing.credit import LocalCreditStore
from gateway.runtime import Runtime
from gateway.usage_event import UsageEvent


class RecordedEvents:
    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def __call__(self, event: UsageEvent) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` events have been recorded in total."""
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= count, timeout)


recorded_events = RecordedEvents()


def runtime_observe(runtime: Runtime) -> None:
    if recorded_events not in runtime.on_recorded:
        runtime.on_recorded.append(recorded_events)


def runtime_reset(runtime: Runtime) -> None:
    runtime_observe(runtime)
    runtime.caches_clear()
    runtime.health.reset()
    if isinstance(runtime.credit, LocalCreditStore):
        # In place: the usage flusher holds the store's `flushed`.
        LocalCreditStore.__init__(runtime.credit, runtime.run_db)
