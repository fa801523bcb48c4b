"""API key authentication for the proxy: what the hot path knows about a key.

`KeyInfo` is a small immutable record cached in process memory and in Redis; the
database is read only on a miss (`key_info_load`, sync: run it off the event loop).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from accounts.models import ApiKey
from gateway.protocols.errors import GatewayError


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: int
    secret_hash: str
    name: str
    organisation_id: int
    organisation_slug: str
    organisation_active: bool
    group_id: int
    group_slug: str
    expires_at: float | None  # unix time
    revoked: bool
    spend_limit_total_nano: int | None
    spend_limit_daily_nano: int | None
    spend_limit_monthly_nano: int | None

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> KeyInfo:
        return cls(**json.loads(raw))

    def check_usable(self) -> None:
        """Raise the 401/403 a client should see, or return if the key may be used."""
        if self.revoked:
            raise GatewayError(
                401,
                "This API key has been revoked. Create a new key in the Tollgate console.",
                code="key_revoked",
                type="authentication_error",
            )
        if self.expires_at is not None and self.expires_at <= time.time():
            raise GatewayError(
                401,
                "This API key has expired. Create a new key in the Tollgate console.",
                code="key_expired",
                type="authentication_error",
            )
        if not self.organisation_active:
            raise GatewayError(
                403,
                "This organisation is suspended. Contact the operator.",
                code="organisation_suspended",
                type="permission_error",
            )


INVALID_KEY = GatewayError(
    401,
    "Invalid API key. Send a Tollgate key (sk-tg-...) as 'Authorization: Bearer <key>' "
    "or 'x-api-key: <key>'.",
    code="invalid_api_key",
    type="authentication_error",
)


def key_info_load(secret_hash: str) -> KeyInfo | None:
    """One indexed lookup by the unique secret hash."""
    row = (
        ApiKey.objects.filter(secret_hash=secret_hash)
        .select_related("organisation", "group")
        .first()
    )
    if row is None:
        return None
    return KeyInfo(
        key_id=row.pk,
        secret_hash=row.secret_hash,
        name=row.name,
        organisation_id=row.organisation_id,
        organisation_slug=row.organisation.slug,
        organisation_active=row.organisation.is_active,
        group_id=row.group_id,
        group_slug=row.group.slug,
        expires_at=row.expires_at.timestamp() if row.expires_at else None,
        revoked=row.revoked_at is not None,
        spend_limit_total_nano=row.spend_limit_total_nano,
        spend_limit_daily_nano=row.spend_limit_daily_nano,
        spend_limit_monthly_nano=row.spend_limit_monthly_nano,
    )
