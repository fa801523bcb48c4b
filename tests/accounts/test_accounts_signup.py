"""Console authentication through allauth: sign-up creates the user's organisation,
e-mail verification is mandatory, log in/out, password reset, login rate limit."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Organisation, Role, User

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "another long passphrase 77"
CONFIRM_RE = re.compile(r"http://testserver(/accounts/confirm-email/[^/\s]+/)")
RESET_RE = re.compile(r"http://testserver(/accounts/password/reset/key/[^/\s]+/)")


SIGNUP_PASSWORD = "a fresh signup passphrase 31"


def _signup(client: Client, email: str = "jane@example.test"):
    return client.post(
        reverse("account_signup"),
        {"email": email, "password1": SIGNUP_PASSWORD, "password2": SIGNUP_PASSWORD},
    )


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_signup_creates_the_users_own_organisation(client):
    response = _signup(client)
    assert response.status_code == 302
    user = User.objects.get(email="jane@example.test")
    membership = Membership.objects.select_related("organisation").get(user=user)
    org = membership.organisation
    assert membership.role == Role.OWNER
    assert org.slug == "jane"
    assert org.default_group.slug == "default"
    assert list(org.allowed_groups.values_list("slug", flat=True)) == ["default"]


def test_signup_slugs_are_unique(client, db):
    Organisation.objects.create(slug="jane", name="Taken")
    _signup(client, "jane@example.test")
    _signup(Client(), "jane@other.test")
    slugs = set(
        Membership.objects.filter(role=Role.OWNER).values_list("organisation__slug", flat=True)
    )
    assert slugs == {"jane-2", "jane-3"}


def test_signup_requires_verification_and_the_emailed_link_works(client):
    response = _signup(client)
    assert response["Location"] == reverse("account_email_verification_sent")
    assert not _logged_in(client)
    assert client.get(reverse("dashboard:home")).status_code == 302

    assert len(mail.outbox) == 1
    path = CONFIRM_RE.search(mail.outbox[0].body).group(1)
    page = client.get(path)
    assert page.status_code == 200
    assert b"jane@example.test" in page.content
    response = client.post(path)
    assert _logged_in(client)
    assert User.objects.get().emailaddress_set.get().verified
    home = client.get(response["Location"], follow=True)
    assert home.redirect_chain[-1][0] == reverse("dashboard:overview", args=["jane"])


def test_unverified_user_cannot_log_in(client, user_factory, user_password):
    user_factory("late@example.test", verified=False)
    response = client.post(
        reverse("account_login"), {"login": "late@example.test", "password": user_password}
    )
    assert not _logged_in(client)
    assert response["Location"] == reverse("account_email_verification_sent")


def test_login_and_logout(client, tenant, user_password):
    response = client.post(
        reverse("account_login"), {"login": "owner@acme.test", "password": user_password}
    )
    assert _logged_in(client)
    assert client.get(response["Location"], follow=True).redirect_chain[-1][0] == reverse(
        "dashboard:overview", args=["acme"]
    )
    client.post(reverse("account_logout"))
    assert not _logged_in(client)


def test_login_page_uses_the_console_layout(client, db):
    page = client.get(reverse("account_login")).content.decode()
    assert 'class="topbar"' in page
    assert "css/app.css" in page
    assert 'class="auth-card"' in page


def test_it_rate_limits_failed_logins(client, tenant, user_password):
    """After 5 failures for one account even the right password is refused."""
    for _ in range(5):
        response = client.post(
            reverse("account_login"), {"login": "owner@acme.test", "password": "wrong"}
        )
        assert response.status_code == 200
        assert not _logged_in(client)
    response = client.post(
        reverse("account_login"), {"login": "owner@acme.test", "password": user_password}
    )
    assert not _logged_in(client)
    assert b"Too many failed login attempts" in response.content
    # another account is unaffected
    client.post(reverse("account_login"), {"login": "admin@acme.test", "password": user_password})
    assert _logged_in(client)


def test_password_reset_by_email(client, tenant):
    response = client.post(reverse("account_reset_password"), {"email": "member@acme.test"})
    assert response.status_code == 302
    path = RESET_RE.search(mail.outbox[-1].body).group(1)
    form = client.get(path, follow=True)
    action = form.redirect_chain[-1][0] if form.redirect_chain else path
    assert b"Choose a new password" in form.content
    client.post(action, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    tenant.member.refresh_from_db()
    assert tenant.member.check_password(NEW_PASSWORD)


def test_it_enforces_csrf_on_login(tenant, user_password):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("account_login"), {"login": "owner@acme.test", "password": user_password}
    )
    assert response.status_code == 403
    assert not _logged_in(client)
