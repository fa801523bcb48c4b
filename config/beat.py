"""An in-process stand-in for `celery beat`, for the embedded default (no Redis).

Without a broker there is no worker and no beat, and Celery runs tasks eagerly; so
`manage.py serve` starts this thread, which runs every entry of the beat schedule
defined in config/celery.py in-process when it is due (and each once at start, so a
new install's dashboard fills at once). With Redis set, run real Celery instead:
`celery -A config worker -B`.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from celery.schedules import BaseSchedule, maybe_schedule
from django.db import close_old_connections

from config.celery import app

log = logging.getLogger(__name__)


class EmbeddedBeat:
    """Runs the beat schedule's tasks in a daemon thread. `tick()` is one pass (tests
    call it directly); `start()` loops until `stop()`."""

    def __init__(self, schedule: dict | None = None, *, poll_seconds: float = 30.0) -> None:
        self.entries: dict[str, dict] = dict(
            app.conf.beat_schedule if schedule is None else schedule
        )
        self.poll_seconds = poll_seconds
        self.last_run: dict[str, datetime | None] = dict.fromkeys(self.entries)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[str]:
        """Run every entry that is due (never run counts as due); returns their names."""
        app.loader.import_default_modules()  # registers each app's tasks.py
        ran = []
        for name, entry in self.entries.items():
            schedule: BaseSchedule = maybe_schedule(entry["schedule"], app=app)
            last = self.last_run[name]
            if last is not None and not schedule.is_due(last).is_due:
                continue
            self.last_run[name] = schedule.now()
            ran.append(name)
            try:
                app.tasks[entry["task"]].apply(
                    args=entry.get("args", ()), kwargs=entry.get("kwargs", {}), throw=True
                )
            except Exception:  # one failing task must not stop the others
                log.exception("embedded beat: %s failed", name)
        return ran

    def _run(self) -> None:
        while not self._stopped.is_set():
            close_old_connections()  # this thread's own connection: drop it if broken/old
            try:
                self.tick()
            except Exception:
                log.exception("embedded beat: tick failed")
            self._stopped.wait(self.poll_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="embedded-beat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
