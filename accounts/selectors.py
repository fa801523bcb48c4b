"""Reads for accounts: what the console lists for an organisation."""

from __future__ import annotations

import hashlib

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiKey, Invitation, Membership, Organisation


def api_key_list(*, organisation: Organisation) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organisation=organisation).select_related("group", "created_by")


def membership_list(*, organisation: Organisation) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organisation=organisation)
        .select_related("user")
        .order_by("user__email")
    )


def _invitations_pending() -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def invitation_pending_list(*, organisation: Organisation) -> QuerySet[Invitation]:
    return (
        _invitations_pending()
        .filter(organisation=organisation)
        .select_related("invited_by")
        .order_by("-created_at")
    )


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_pending_get_by_token(*, token: str) -> Invitation | None:
    """The invitation behind an e-mailed link, if it can still be accepted."""
    return (
        _invitations_pending()
        .select_related("organisation", "invited_by")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )
