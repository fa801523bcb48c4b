import re

import pytest
from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed
from django.core import mail

from accounts.models import Membership, Organisation, Role, User
from billing.models import EntryKind, LedgerEntry, TrialGrant
from billing.selectors import balance_get
from testkit.tenants import PASSWORD, make_tenant, make_user

pytestmark = pytest.mark.django_db

THREE_USD = 3_000_000_000


def _confirm(user: User, email: str | None = None) -> None:
    """What allauth does when an address is verified (its admin action does the same)."""
    address = EmailAddress.objects.get(user=user, email__iexact=email or user.email)
    address.verified = True
    address.save()
    email_confirmed.send(sender=EmailAddress, request=None, email_address=address)


def _own_org(user: User, slug: str) -> Organisation:
    org = Organisation.objects.create(slug=slug, name=slug)
    Membership.objects.create(user=user, organisation=org, role=Role.OWNER)
    return org


def _trials(org: Organisation) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(organisation=org, kind=EntryKind.TRIAL))


def test_sign_up_then_verify_grants_trial_credit_to_the_new_organisation(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/signup/",
            {
                "email": "Jane@Example.test",
                "password1": PASSWORD,
                "password2": PASSWORD,
            },
        )
    assert response.status_code == 302
    user = User.objects.get(email__iexact="jane@example.test")
    org = Membership.objects.get(user=user, role=Role.OWNER).organisation
    assert balance_get(organisation=org) == 0  # nothing before the address is verified
    [message] = mail.outbox
    confirm_url = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", message.body)[1]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(confirm_url)
    assert response.status_code == 302
    assert balance_get(organisation=org) == THREE_USD
    [entry] = _trials(org)
    assert entry.idempotency_key == f"trial:org:{org.pk}"
    assert TrialGrant.objects.get().organisation == org


def test_trial_waits_for_an_organisation_created_after_verification(
    django_capture_on_commit_callbacks,
):
    user = make_user("late@example.test", verified=False)
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(user)
    claim = TrialGrant.objects.get()
    assert claim.organisation is None and claim.granted_at is None
    assert not LedgerEntry.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        org = _own_org(user, "late")
    assert balance_get(organisation=org) == THREE_USD
    claim.refresh_from_db()
    assert claim.organisation == org and claim.granted_at is not None


def test_trial_goes_to_the_first_organisation_the_user_owns(django_capture_on_commit_callbacks):
    user = make_user("multi@example.test", verified=False)
    first = _own_org(user, "first")
    second = _own_org(user, "second")
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(user)
    assert balance_get(organisation=first) == THREE_USD
    assert balance_get(organisation=second) == 0


def test_being_only_a_member_does_not_earn_that_organisation_a_trial(
    tenant, django_capture_on_commit_callbacks
):
    user = make_user("joiner@example.test", verified=False)
    Membership.objects.create(user=user, organisation=tenant.organisation, role=Role.MEMBER)
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(user)
    assert _trials(tenant.organisation) == []


def test_confirming_the_same_address_again_grants_nothing_more(
    django_capture_on_commit_callbacks,
):
    user = make_user("twice@example.test", verified=False)
    org = _own_org(user, "twice")
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(user)
        _confirm(user)
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(user)
    assert len(_trials(org)) == 1
    assert balance_get(organisation=org) == THREE_USD


def test_an_address_earns_a_trial_once_whatever_its_case(django_capture_on_commit_callbacks):
    first = make_user("Repeat@Example.test", verified=False)
    _own_org(first, "repeat-1")
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(first)
    first.delete()  # the account goes; the address's trial stays spent
    again = make_user("repeat@EXAMPLE.test", verified=False)
    org = _own_org(again, "repeat-2")
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(again)
    assert _trials(org) == []
    assert TrialGrant.objects.count() == 1


def test_an_organisation_gets_one_trial_however_many_owners_verify(
    django_capture_on_commit_callbacks,
):
    a = make_user("a@shared.test", verified=False)
    b = make_user("b@shared.test", verified=False)
    org = _own_org(a, "shared")
    Membership.objects.create(user=b, organisation=org, role=Role.OWNER)
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(a)
        _confirm(b)
    assert len(_trials(org)) == 1
    assert balance_get(organisation=org) == THREE_USD


def test_a_second_address_of_the_same_user_earns_no_second_trial(
    django_capture_on_commit_callbacks,
):
    user = make_user("main@example.test", verified=False)
    _own_org(user, "main")
    EmailAddress.objects.create(user=user, email="alt@example.test", verified=False)
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(user)
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(user, "alt@example.test")
        second = _own_org(user, "main-2")
    assert _trials(second) == []


def test_no_trial_when_the_trial_amount_is_zero(settings, django_capture_on_commit_callbacks):
    settings.TOLLGATE_TRIAL_CREDIT_USD = 0
    user = make_user("free@example.test", verified=False)
    org = _own_org(user, "free")
    with django_capture_on_commit_callbacks(execute=True):
        _confirm(user)
    assert _trials(org) == []
    assert not TrialGrant.objects.exists()


def test_owners_who_never_confirmed_an_address_claim_nothing(django_capture_on_commit_callbacks):
    """Owners made without an e-mail confirmation (fixtures, the admin) get no trial."""
    with django_capture_on_commit_callbacks(execute=True):
        created = make_tenant("fresh")
    assert balance_get(organisation=created.organisation) == 0
    assert not TrialGrant.objects.exists()
