import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing.models import TopUp, TopUpStatus
from billing.stripe_client import STRIPE_API_VERSION
from billing.topups import TopUpError, topup_checkout_create, topup_fee_percent, topup_quote

JUNE_1 = dt.date(2026, 6, 1)


@pytest.fixture
def launch_until_june(settings):
    settings.TOLLGATE_TOPUP_FEE_PERCENT = Decimal("5")
    settings.TOLLGATE_TOPUP_LAUNCH_FEE_PERCENT = Decimal("3")
    settings.TOLLGATE_LAUNCH_WINDOW_END = "2026-06-01"
    settings.TOLLGATE_TOPUP_MIN_USD = Decimal("10")


@pytest.mark.parametrize(
    ("amount", "today", "fee_cents", "credit_cents", "launch"),
    [
        ("10", JUNE_1, 30, 970, True),  # the last day of the window is still launch
        ("10", JUNE_1 + dt.timedelta(days=1), 50, 950, False),
        ("10.01", JUNE_1, 30, 971, True),  # 30.03 cents rounds to 30
        ("10.50", JUNE_1 + dt.timedelta(days=1), 53, 997, False),  # 52.5 rounds half up
        ("123.45", JUNE_1 + dt.timedelta(days=30), 617, 11728, False),  # 617.25 -> 617
        ("10000", JUNE_1, 30000, 970000, True),
    ],
)
def test_fee_is_the_percentage_in_force_rounded_half_up_to_the_cent(
    launch_until_june, amount, today, fee_cents, credit_cents, launch
):
    quote = topup_quote(amount_usd=Decimal(amount), today=today)
    assert quote.amount_cents == int(Decimal(amount) * 100)
    assert (quote.fee_cents, quote.credit_cents, quote.launch_pricing) == (
        fee_cents,
        credit_cents,
        launch,
    )
    assert quote.fee_usd + quote.credit_usd == Decimal(amount)


def test_without_a_launch_window_the_standard_fee_applies(settings):
    settings.TOLLGATE_LAUNCH_WINDOW_END = ""
    settings.TOLLGATE_TOPUP_FEE_PERCENT = Decimal("5")
    assert topup_fee_percent(today=dt.date(2000, 1, 1)) == (Decimal("5"), False)


def test_a_malformed_launch_window_end_is_a_configuration_error(settings):
    settings.TOLLGATE_LAUNCH_WINDOW_END = "June 1st"
    with pytest.raises(ImproperlyConfigured, match="TOLLGATE_LAUNCH_WINDOW_END"):
        topup_fee_percent()


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("9.99", "minimum"),
        ("10.001", "two decimals"),
        ("ten", "US dollars"),
        ("10001", "maximum"),
        ("NaN", "US dollars"),
    ],
)
def test_it_refuses_amounts_it_cannot_charge(launch_until_june, amount, message):
    with pytest.raises(TopUpError, match=message):
        topup_quote(amount_usd=amount)


@pytest.mark.django_db
def test_checkout_opens_a_stripe_session_for_the_amount(tenant, fake_stripe, launch_until_june):
    started = topup_checkout_create(
        organisation=tenant.organisation,
        amount_usd=Decimal("25"),
        created_by=tenant.admin,
        success_url="https://tollgate.test/ok?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://tollgate.test/cancel",
    )
    topup = TopUp.objects.get()
    assert started.topup == topup
    assert topup.status == TopUpStatus.PENDING
    assert started.checkout_url == fake_stripe.sessions[topup.stripe_session_id]["url"]
    [request] = fake_stripe.requests
    assert request["path"] == "/v1/checkout/sessions"
    assert request["headers"]["Stripe-Version"] == STRIPE_API_VERSION
    assert request["headers"]["Idempotency-Key"] == f"tollgate-topup-{topup.public_id}"
    params = request["params"]
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == str(topup.public_id)
    assert params["metadata"] == {
        "topup_id": str(topup.public_id),
        "organisation_id": str(tenant.organisation.pk),
    }
    assert params["payment_intent_data"]["metadata"] == params["metadata"]
    [item] = params["line_items"]
    assert item["price_data"]["unit_amount"] == "2500"
    assert item["price_data"]["currency"] == "usd"
    assert params["success_url"].endswith("{CHECKOUT_SESSION_ID}")
    assert params["customer_email"] == tenant.admin.email


@pytest.mark.django_db
def test_checkout_fixes_the_fee_shown(tenant, fake_stripe, settings):
    settings.TOLLGATE_LAUNCH_WINDOW_END = ""
    settings.TOLLGATE_TOPUP_FEE_PERCENT = Decimal("5")
    topup_checkout_create(
        organisation=tenant.organisation,
        amount_usd=Decimal("20"),
        created_by=tenant.owner,
        success_url="https://t.test/s",
        cancel_url="https://t.test/c",
    )
    topup = TopUp.objects.get()
    assert (topup.amount_cents, topup.fee_cents, topup.fee_percent) == (2000, 100, Decimal("5"))


@pytest.mark.django_db
def test_a_stripe_error_is_reported_and_nothing_is_pending(tenant, fake_stripe, settings):
    settings.STRIPE_SECRET_KEY = "rk_not_a_secret_key"  # the fake answers 401, as Stripe would
    with pytest.raises(TopUpError, match="nothing was charged"):
        topup_checkout_create(
            organisation=tenant.organisation,
            amount_usd=Decimal("20"),
            created_by=tenant.owner,
            success_url="https://t.test/s",
            cancel_url="https://t.test/c",
        )
    assert TopUp.objects.get().status == TopUpStatus.FAILED


@pytest.mark.django_db
def test_without_stripe_configured_top_ups_are_unavailable(tenant, settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(TopUpError, match="not available"):
        topup_checkout_create(
            organisation=tenant.organisation,
            amount_usd=Decimal("20"),
            created_by=tenant.owner,
            success_url="https://t.test/s",
            cancel_url="https://t.test/c",
        )
