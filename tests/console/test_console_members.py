"""The members page: invitations (hash-only, e-mailed link, verified-address accept),
role changes and removals by owners, and never losing the last owner."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Role
from accounts.selectors import invitation_token_hash

pytestmark = pytest.mark.django_db

LINK_RE = re.compile(r"http://testserver/invitations/([\w-]+)/")


def _invite(client: Client, email: str = "new@example.test", role: str = "admin", capture=None):
    with capture(execute=True):
        return client.post(
            reverse("dashboard:member_invite", args=["acme"]), {"email": email, "role": role}
        )


def _membership(tenant, user) -> Membership:
    return Membership.objects.get(user=user, organisation=tenant.organisation)


def test_it_lists_members_for_any_member(client, tenant):
    client.force_login(tenant.member)
    page = client.get(reverse("dashboard:members", args=["acme"])).content.decode()
    for user in (tenant.owner, tenant.admin, tenant.member):
        assert user.email in page
    assert "Send invitation" not in page


def test_it_emails_an_invitation_and_stores_only_a_hash(
    client, tenant, django_capture_on_commit_callbacks
):
    client.force_login(tenant.owner)
    response = _invite(client, capture=django_capture_on_commit_callbacks)
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new@example.test"]
    assert "Acme" in message.subject
    token = LINK_RE.search(message.body).group(1)
    invitation = Invitation.objects.get()
    assert invitation.token_hash == invitation_token_hash(token)
    assert invitation.role == Role.ADMIN
    assert token not in str(Invitation.objects.values_list().get())
    page = client.get(reverse("dashboard:members", args=["acme"])).content.decode()
    assert "new@example.test" in page and "Withdraw" in page


def test_it_refuses_to_invite_an_existing_member(
    client, tenant, django_capture_on_commit_callbacks
):
    client.force_login(tenant.owner)
    response = _invite(client, email="MEMBER@acme.test", capture=django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert b"already a member" in response.content
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


def test_invited_user_signs_up_and_accepts(
    tenant, user_factory, user_password, django_capture_on_commit_callbacks
):
    owner = Client()
    owner.force_login(tenant.owner)
    _invite(owner, capture=django_capture_on_commit_callbacks)
    link = LINK_RE.search(mail.outbox[0].body).group(0)
    path = link.removeprefix("http://testserver")

    newcomer = Client()
    response = newcomer.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))

    user_factory("new@example.test")  # signed up and verified the invited address
    newcomer.login(username="new@example.test", password=user_password)
    page = newcomer.get(path)
    assert b"Join Acme" in page.content
    response = newcomer.post(path)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:overview", args=["acme"])
    membership = Membership.objects.get(user__email="new@example.test", organisation__slug="acme")
    assert membership.role == Role.ADMIN
    assert Invitation.objects.get().accepted_at is not None
    # the link works once
    again = newcomer.post(path, follow=True)
    assert b"not valid" in again.content


def test_a_newcomer_signs_up_from_the_link_and_lands_back_on_it(
    client, tenant, django_capture_on_commit_callbacks
):
    """No account yet: log-in page -> sign-up (keeping ?next) -> verify -> invitation."""
    client.force_login(tenant.owner)
    _invite(client, capture=django_capture_on_commit_callbacks)
    path = LINK_RE.search(mail.outbox[0].body).group(0).removeprefix("http://testserver")

    newcomer = Client()
    login_page = newcomer.get(newcomer.get(path)["Location"]).content.decode()
    signup_url = re.search(r'href="(/accounts/signup/\?next=[^"]+)"', login_page).group(1)
    signup_page = newcomer.get(signup_url).content.decode()
    assert f'name="next" value="{path}"' in signup_page
    password = "a fresh signup passphrase 31"
    newcomer.post(
        signup_url,
        {"email": "new@example.test", "password1": password, "password2": password, "next": path},
    )
    confirm = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", mail.outbox[-1].body)
    response = newcomer.post(confirm.group(1))
    assert response["Location"] == path
    response = newcomer.post(path)
    assert response["Location"] == reverse("dashboard:overview", args=["acme"])
    assert Membership.objects.filter(
        user__email="new@example.test", organisation=tenant.organisation, role=Role.ADMIN
    ).exists()


def test_it_refuses_an_invitation_for_another_address(
    client, tenant, outsider, django_capture_on_commit_callbacks
):
    client.force_login(tenant.owner)
    _invite(client, capture=django_capture_on_commit_callbacks)
    path = LINK_RE.search(mail.outbox[0].body).group(0).removeprefix("http://testserver")
    other = Client()
    other.force_login(outsider)
    response = other.post(path, follow=True)
    assert b"was sent to new@example.test" in response.content
    assert not Membership.objects.filter(user=outsider, organisation=tenant.organisation).exists()
    assert Invitation.objects.get().accepted_at is None


def test_it_refuses_an_invitation_to_an_unverified_address(
    client, tenant, user_factory, django_capture_on_commit_callbacks
):
    client.force_login(tenant.owner)
    _invite(client, capture=django_capture_on_commit_callbacks)
    path = LINK_RE.search(mail.outbox[0].body).group(0).removeprefix("http://testserver")
    newcomer = Client()
    newcomer.force_login(user_factory("new@example.test", verified=False))
    newcomer.post(path)
    assert not Membership.objects.filter(user__email="new@example.test").exists()


def test_it_refuses_expired_and_withdrawn_invitations(
    client, tenant, user_factory, django_capture_on_commit_callbacks
):
    client.force_login(tenant.owner)
    _invite(client, email="late@example.test", capture=django_capture_on_commit_callbacks)
    _invite(client, email="gone@example.test", capture=django_capture_on_commit_callbacks)
    late_path, gone_path = (
        LINK_RE.search(m.body).group(0).removeprefix("http://testserver") for m in mail.outbox
    )
    Invitation.objects.filter(email="late@example.test").update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    gone = Invitation.objects.get(email="gone@example.test")
    response = client.post(reverse("dashboard:invitation_cancel", args=["acme", gone.pk]))
    assert response.status_code == 302
    for email, path in (("late@example.test", late_path), ("gone@example.test", gone_path)):
        joiner = Client()
        joiner.force_login(user_factory(email))
        assert b"Invitation not valid" in joiner.get(path).content
        joiner.post(path)
        assert not Membership.objects.filter(user__email=email).exists()


def test_owner_changes_a_role(client, tenant):
    client.force_login(tenant.owner)
    target = _membership(tenant, tenant.member)
    response = client.post(
        reverse("dashboard:member_role", args=["acme", target.pk]), {"role": "admin"}
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.role == Role.ADMIN


def test_owner_removes_a_member(client, tenant):
    client.force_login(tenant.owner)
    target = _membership(tenant, tenant.member)
    client.post(reverse("dashboard:member_remove", args=["acme", target.pk]))
    assert not Membership.objects.filter(pk=target.pk).exists()


def test_it_never_demotes_or_removes_the_last_owner(client, tenant):
    client.force_login(tenant.owner)
    own = _membership(tenant, tenant.owner)
    response = client.post(
        reverse("dashboard:member_role", args=["acme", own.pk]), {"role": "member"}, follow=True
    )
    assert b"at least one owner" in response.content
    response = client.post(reverse("dashboard:member_remove", args=["acme", own.pk]), follow=True)
    assert b"last owner" in response.content
    own.refresh_from_db()
    assert own.role == Role.OWNER


def test_an_owner_may_leave_when_another_owner_remains(client, tenant):
    admin = _membership(tenant, tenant.admin)
    admin.role = Role.OWNER
    admin.save()
    client.force_login(tenant.owner)
    own = _membership(tenant, tenant.owner)
    response = client.post(reverse("dashboard:member_remove", args=["acme", own.pk]))
    assert response["Location"] == reverse("dashboard:home")
    assert not Membership.objects.filter(pk=own.pk).exists()


def test_it_enforces_csrf_on_member_forms(tenant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant.owner)
    target = _membership(tenant, tenant.member)
    posts = [
        (reverse("dashboard:member_invite", args=["acme"]), {"email": "x@y.test", "role": "admin"}),
        (reverse("dashboard:member_role", args=["acme", target.pk]), {"role": "owner"}),
        (reverse("dashboard:member_remove", args=["acme", target.pk]), {}),
        (reverse("dashboard:organisation_new"), {"name": "Other"}),
        (reverse("dashboard:invitation", args=["whatever"]), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    target.refresh_from_db()
    assert target.role == Role.MEMBER
    assert Invitation.objects.count() == 0

    client.get(reverse("dashboard:members", args=["acme"]))
    token = client.cookies["csrftoken"].value
    url, data = posts[1]
    assert client.post(url, {**data, "csrfmiddlewaretoken": token}).status_code == 302
    target.refresh_from_db()
    assert target.role == Role.OWNER
