"""Celery entry points for billing; each only calls a service."""

from __future__ import annotations

from celery import shared_task

from billing.services import balance_reconcile


@shared_task(name="billing.reconcile_balances")
def reconcile_balances() -> int:
    """Check every denormalised balance against its ledger; returns how many drift
    (each is logged at ERROR by the service)."""
    return len(balance_reconcile())
