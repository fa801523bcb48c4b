"""Top-ups: the fee quote and starting a Stripe Checkout payment.

A top-up never moves credit by itself: the ledger is credited only when Stripe's
signed webhook reports the payment (billing.stripe_events). The fee is a percentage of
the amount paid, rounded half-up to the cent, fixed when the checkout is created: what
the customer was shown is what they are charged, even if the launch window closes
before Stripe confirms. Credit granted = amount paid - fee.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from accounts.models import Organisation, User
from billing.models import TopUp, TopUpStatus
from billing.money import CentsAmounts
from billing.stripe_client import StripeNotConfigured, checkout_session_create

logger = logging.getLogger(__name__)

# Stripe Checkout accepts up to $999,999.99; larger top-ups are a conversation.
TOPUP_MAX_USD = Decimal("10000")


class TopUpError(ValueError):
    """A top-up that cannot be made as asked; the message says what to do."""


@dataclass(frozen=True)
class TopUpQuote(CentsAmounts):
    amount_cents: int
    fee_percent: Decimal
    fee_cents: int
    launch_pricing: bool


def launch_window_end() -> dt.date | None:
    raw = settings.TOLLGATE_LAUNCH_WINDOW_END.strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"TOLLGATE_LAUNCH_WINDOW_END must be a date like 2026-12-31, got {raw!r}"
        ) from exc


def topup_fee_percent(*, today: dt.date | None = None) -> tuple[Decimal, bool]:
    """The fee percentage in force and whether it is the launch rate. The window
    includes its end date (UTC)."""
    today = today or timezone.now().date()
    end = launch_window_end()
    if end is not None and today <= end:
        return settings.TOLLGATE_TOPUP_LAUNCH_FEE_PERCENT, True
    return settings.TOLLGATE_TOPUP_FEE_PERCENT, False


def topup_amount_parse(raw: str | Decimal) -> Decimal:
    """A USD amount typed by a user: digits with at most two decimals."""
    try:
        amount = Decimal(str(raw).strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        raise TopUpError("Enter an amount in US dollars, like 25 or 25.50.") from None
    if not amount.is_finite():
        raise TopUpError("Enter an amount in US dollars, like 25 or 25.50.")
    if amount != amount.quantize(Decimal("0.01")):
        raise TopUpError("Amounts are in whole cents: use at most two decimals.")
    return amount


def topup_quote(*, amount_usd: Decimal, today: dt.date | None = None) -> TopUpQuote:
    """What paying `amount_usd` costs in fees and grants in credit, today."""
    amount_usd = topup_amount_parse(amount_usd)
    minimum = settings.TOLLGATE_TOPUP_MIN_USD
    if amount_usd < minimum:
        raise TopUpError(f"The minimum top-up is ${minimum:,.2f}.")
    if amount_usd > TOPUP_MAX_USD:
        raise TopUpError(
            f"The maximum top-up is ${TOPUP_MAX_USD:,.2f}; top up several times or contact us."
        )
    percent, launch = topup_fee_percent(today=today)
    amount_cents = int(amount_usd * 100)
    fee_cents = int(
        (Decimal(amount_cents) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    )
    return TopUpQuote(
        amount_cents=amount_cents,
        fee_percent=percent,
        fee_cents=fee_cents,
        launch_pricing=launch,
    )


@dataclass(frozen=True)
class StartedCheckout:
    topup: TopUp
    checkout_url: str


def topup_checkout_create(
    *,
    organisation: Organisation,
    amount_usd: Decimal,
    created_by: User | None,
    success_url: str,
    cancel_url: str,
) -> StartedCheckout:
    """Record a pending top-up and open a Stripe Checkout Session for it. The top-up's
    public id travels in `client_reference_id` and metadata, so the webhook can find it;
    the id also keys the Stripe request, so a retried create cannot open two sessions."""
    quote = topup_quote(amount_usd=amount_usd)
    with transaction.atomic():
        topup = TopUp.objects.create(
            organisation=organisation,
            created_by=created_by,
            amount_cents=quote.amount_cents,
            fee_percent=quote.fee_percent,
            fee_cents=quote.fee_cents,
        )
    metadata = {"topup_id": str(topup.public_id), "organisation_id": str(organisation.pk)}
    try:
        session = checkout_session_create(
            idempotency_key=f"tollgate-topup-{topup.public_id}",
            mode="payment",
            client_reference_id=str(topup.public_id),
            customer_email=getattr(created_by, "email", None) or None,
            line_items=[
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": quote.amount_cents,
                        "product_data": {
                            "name": f"{organisation.name} credit",
                            "description": (
                                f"${quote.credit_usd:,.2f} credit + ${quote.fee_usd:,.2f} fee "
                                f"({quote.fee_percent.normalize():f}%)"
                            ),
                        },
                    },
                }
            ],
            metadata=metadata,
            payment_intent_data={"metadata": metadata},
            success_url=success_url,
            cancel_url=cancel_url,
        )
    except StripeNotConfigured:
        topup.status = TopUpStatus.FAILED
        topup.save(update_fields=["status", "updated_at"])
        raise TopUpError("Top-ups are not available on this server yet.") from None
    except stripe.StripeError as exc:
        # The exception text is Stripe's own message, never a secret of ours.
        logger.warning("stripe checkout create failed for top-up %s: %s", topup.public_id, exc)
        topup.status = TopUpStatus.FAILED
        topup.save(update_fields=["status", "updated_at"])
        raise TopUpError(
            "Stripe could not start the payment; nothing was charged. Try again shortly."
        ) from None
    topup.stripe_session_id = session["id"]
    topup.save(update_fields=["stripe_session_id", "updated_at"])
    return StartedCheckout(topup=topup, checkout_url=session["url"])
