"""Signals the gateway sends about its own data, for its hot-path caches to act on."""

from django.dispatch import Signal

# Sent after the transaction that saved, replaced, deleted or re-encrypted an
# organisation's BYOK provider keys commits. kwargs: organisation_id (int)
provider_keys_changed = Signal()
