"""`manage.py serve` picks how many uvicorn workers to run, and refuses several
without Redis (credit holds and the usage queue would be split between processes)."""

from __future__ import annotations

import os

import pytest
from django.core.management import CommandError

from dashboard.management.commands.serve import Command


@pytest.mark.parametrize(
    ("redis_url", "env", "asked", "expected"),
    [
        ("", None, None, 1),
        ("redis://127.0.0.1:6379/0", None, None, os.cpu_count() or 1),
        ("redis://127.0.0.1:6379/0", "3", None, 3),
        ("redis://127.0.0.1:6379/0", "3", 2, 2),
        ("", "1", 1, 1),
    ],
)
def test_workers(settings, monkeypatch, redis_url, env, asked, expected):
    settings.REDIS_URL = redis_url
    if env is None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("WEB_CONCURRENCY", env)
    assert Command()._workers(asked) == expected


@pytest.mark.parametrize("env", [None, "4"])
def test_several_workers_without_redis_are_refused(settings, monkeypatch, env):
    settings.REDIS_URL = ""
    if env is None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
        asked = 2
    else:
        monkeypatch.setenv("WEB_CONCURRENCY", env)
        asked = None
    with pytest.raises(CommandError, match="needs REDIS_URL"):
        Command()._workers(asked)
