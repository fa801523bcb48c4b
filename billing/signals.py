"""Signals billing sends for others to act on, keeping imports one-way
(accounts <- billing <- gateway): the gateway listens to refresh its credit cache."""

from django.dispatch import Signal

# Sent after the transaction that posted ledger entries commits.
# kwargs: organisation_ids (list[int], sorted, each once), kinds (list[str]: the
# entry kinds posted; the gateway ignores its own usage debits)
balance_changed = Signal()
