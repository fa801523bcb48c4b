"""accounts services called directly: organisations, memberships, invitations, keys."""

from __future__ import annotations

import pytest

from accounts.models import Group, Membership, Organisation, Role
from accounts.services import (
    ApiKeyError,
    InvitationError,
    MembershipError,
    OrganisationError,
    api_key_create,
    invitation_accept,
    invitation_create,
    membership_change_role,
    membership_remove,
    organisation_create,
    organisation_create_for_user,
)
from accounts.signals import organisation_created

pytestmark = pytest.mark.django_db


def test_it_creates_the_default_group_when_missing(user_factory):
    assert not Group.objects.exists()
    org = organisation_create_for_user(user=user_factory("Ann.Lee+x@example.test"))
    assert org.slug == "annleex"
    assert org.default_group.slug == "default"
    assert Membership.objects.get(organisation=org).role == Role.OWNER


def test_it_announces_a_new_organisation_after_commit(
    user_factory, django_capture_on_commit_callbacks
):
    seen: list[int] = []

    def listener(sender, organisation_id, **kwargs):
        seen.append(organisation_id)

    organisation_created.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            org = organisation_create(name="Initech", owner=user_factory("p@initech.test"))
    finally:
        organisation_created.disconnect(listener)
    assert seen == [org.pk]


def test_it_rejects_a_taken_explicit_slug(tenant):
    with pytest.raises(OrganisationError, match="taken"):
        organisation_create(name="Acme two", slug="acme", owner=tenant.member)
    assert Organisation.objects.count() == 1


def test_it_refuses_to_demote_the_last_owner(tenant):
    owner = Membership.objects.get(user=tenant.owner)
    with pytest.raises(MembershipError):
        membership_change_role(membership=owner, role=Role.ADMIN)
    with pytest.raises(MembershipError):
        membership_remove(membership=owner)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_it_allows_demoting_an_owner_when_another_remains(tenant):
    admin = Membership.objects.get(user=tenant.admin)
    membership_change_role(membership=admin, role=Role.OWNER)
    owner = Membership.objects.get(user=tenant.owner)
    assert membership_change_role(membership=owner, role=Role.MEMBER).role == Role.MEMBER


def test_invitation_accept_joins_once(tenant, user_factory):
    created = invitation_create(
        organisation=tenant.organisation,
        email="Bob@Example.test",
        role=Role.MEMBER,
        invited_by=tenant.owner,
        accept_url_for=lambda token: token,
    )
    bob = user_factory("bob@example.test")
    membership = invitation_accept(token=created.token, user=bob)
    assert membership.organisation == tenant.organisation
    assert membership.role == Role.MEMBER
    with pytest.raises(InvitationError, match="already been used"):
        invitation_accept(token=created.token, user=bob)
    with pytest.raises(InvitationError, match="not valid"):
        invitation_accept(token="forged", user=bob)


def test_reinviting_replaces_the_pending_invitation(tenant, user_factory):
    first = invitation_create(
        organisation=tenant.organisation,
        email="bob@example.test",
        role=Role.MEMBER,
        invited_by=tenant.owner,
        accept_url_for=str,
    )
    invitation_create(
        organisation=tenant.organisation,
        email="bob@example.test",
        role=Role.ADMIN,
        invited_by=tenant.owner,
        accept_url_for=str,
    )
    with pytest.raises(InvitationError, match="not valid"):
        invitation_accept(token=first.token, user=user_factory("bob@example.test"))


@pytest.mark.parametrize("limit", [0, -1])
def test_it_rejects_a_non_positive_spend_limit(tenant, limit):
    with pytest.raises(ApiKeyError, match="spend limit"):
        api_key_create(organisation=tenant.organisation, name="x", spend_limit_total_nano=limit)
