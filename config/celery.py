"""The Celery app. Tasks live in each app's tasks.py; the beat schedule is in code."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tollgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Hourly, off the hour: reports any organisation whose balance != its ledger sum.
    "billing-reconcile-balances": {
        "task": "billing.reconcile_balances",
        "schedule": crontab(minute=17),
    },
    # Every 10 minutes: recompute today's and yesterday's daily roll-ups (late rows).
    # With Redis: `celery -A config worker -B`; without, `manage.py serve` runs this
    # schedule in-process (config/beat.py).
    "gateway-rollup-recent": {
        "task": "gateway.rollup_recent",
        "schedule": crontab(minute="*/10"),
    },
}
