"""Stripe's webhook endpoint: the only way a payment becomes credit.

Not a console page (Stripe calls it, nobody logs in), so it lives here rather than in
the dashboard. The signature is checked before anything is read; a bad one gets 400
and changes nothing. An event that was handled (or deliberately not) gets 200 so
Stripe stops retrying; an unexpected error gets 500 and nothing of it is kept, so
Stripe's retry starts afresh.

Operator set-up: in the Stripe dashboard add an endpoint at
`<SITE_URL>/billing/stripe/webhook/`, with the API version pinned in
billing.stripe_client, sending checkout.session.completed,
checkout.session.async_payment_succeeded, checkout.session.async_payment_failed,
checkout.session.expired, charge.refunded, charge.dispute.created,
charge.dispute.closed and charge.dispute.funds_reinstated (a won dispute gives the credit
back); put its signing secret in STRIPE_WEBHOOK_SECRET.
"""

from __future__ import annotations

import json
import logging

import stripe
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.stripe_client import webhook_event_verify
from billing.stripe_events import stripe_event_process

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    payload = request.body
    try:
        webhook_event_verify(payload=payload, signature=request.headers.get("Stripe-Signature"))
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError):
        logger.warning("stripe webhook with a bad signature or body refused")
        return JsonResponse({"error": "invalid signature"}, status=400)
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        return JsonResponse({"error": "not a Stripe event"}, status=400)
    row = stripe_event_process(event=event)
    return JsonResponse({"received": True, "outcome": row.outcome})
