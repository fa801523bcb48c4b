"""The fake Stripe answers the SDK the way Stripe does for the calls Tollgate makes."""

import pytest
import stripe

from billing.stripe_client import stripe_configure
from tests.billing.fake_stripe import sign_payload

LINE_ITEM = {
    "quantity": 1,
    "price_data": {"currency": "usd", "unit_amount": 1000, "product_data": {"name": "Credit"}},
}


def _create(key="sk_test_x", **params):
    sdk = stripe_configure()
    return sdk.checkout.Session.create(api_key=key, **params)


def test_a_created_session_can_be_retrieved(fake_stripe):
    session = _create(mode="payment", line_items=[LINE_ITEM], idempotency_key="k1")
    again = stripe_configure().checkout.Session.retrieve(session.id, api_key="sk_test_x")
    assert (again.id, again.amount_total, again.payment_status) == (session.id, 1000, "unpaid")


def test_it_refuses_what_stripe_refuses(fake_stripe):
    with pytest.raises(stripe.AuthenticationError):
        _create(key="pk_test_publishable", mode="payment", line_items=[LINE_ITEM])
    with pytest.raises(stripe.InvalidRequestError, match="mode"):
        _create(line_items=[LINE_ITEM])
    small = {**LINE_ITEM, "price_data": {**LINE_ITEM["price_data"], "unit_amount": 49}}
    with pytest.raises(stripe.InvalidRequestError, match=r"\$0\.50"):
        _create(mode="payment", line_items=[small])
    with pytest.raises(stripe.InvalidRequestError, match=r"No such checkout\.session"):
        stripe_configure().checkout.Session.retrieve("cs_missing", api_key="sk_test_x")


def test_an_idempotency_key_replays_and_cannot_change_parameters(fake_stripe):
    first = _create(mode="payment", line_items=[LINE_ITEM], idempotency_key="same")
    assert _create(mode="payment", line_items=[LINE_ITEM], idempotency_key="same").id == first.id
    with pytest.raises(stripe.IdempotencyError):
        _create(mode="payment", line_items=[LINE_ITEM], metadata={"x": "1"}, idempotency_key="same")
    assert len(fake_stripe.sessions) == 1


def test_signatures_verify_with_the_stripe_sdk():
    payload = '{"id": "evt_1", "object": "event"}'
    header = sign_payload(payload, "whsec_abc")
    event = stripe.Webhook.construct_event(payload, header, "whsec_abc")
    assert event.id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_other")
