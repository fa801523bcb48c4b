"""Signals accounts sends for others to act on, keeping imports one-way
(accounts <- billing <- gateway). The gateway listens to drop cached keys."""

from django.dispatch import Signal

# Sent after commit when a key is revoked or its group, limits or expiry change.
# kwargs: secret_hash
api_key_changed = Signal()

# Sent after commit when an organisation is created (on sign-up or from the console),
# so billing can grant trial credit without accounts importing billing.
# kwargs: organisation_id
organisation_created = Signal()
