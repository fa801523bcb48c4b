"""Writes for accounts: organisations, memberships, invitations, API keys.

Errors a user can fix are raised as the `*Error` classes below (ValueError subclasses)
with a message fit to show in the console as is.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import ApiKey, Group, Invitation, Membership, Organisation, Role, User
from accounts.secrets import api_secret_display_prefix, api_secret_generate, api_secret_hash
from accounts.selectors import invitation_token_hash
from accounts.signals import api_key_changed, organisation_created

DEFAULT_GROUP_SLUG = "default"
INVITATION_LIFETIME = timedelta(days=7)


class OrganisationError(ValueError):
    pass


class MembershipError(ValueError):
    pass


class InvitationError(ValueError):
    pass


class ApiKeyError(ValueError):
    pass


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    secret: str  # plaintext: exists only in this return value


def api_key_create(
    *,
    organisation: Organisation,
    name: str,
    group: Group | None = None,
    created_by: User | None = None,
    expires_at: datetime | None = None,
    spend_limit_total_nano: int | None = None,
    spend_limit_daily_nano: int | None = None,
    spend_limit_monthly_nano: int | None = None,
) -> CreatedApiKey:
    """Create a key; the returned plaintext secret is never stored anywhere."""
    group = group or organisation.default_group
    if group is None:
        raise ApiKeyError("The organisation has no default group; choose a group.")
    if not organisation.allowed_groups.filter(pk=group.pk).exists():
        raise ApiKeyError(f"Group '{group.slug}' is not available to this organisation.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("The expiry must be in the future.")
    for limit in (spend_limit_total_nano, spend_limit_daily_nano, spend_limit_monthly_nano):
        if limit is not None and limit <= 0:
            raise ApiKeyError("A spend limit must be more than zero (or left empty).")
    name = name.strip()
    if not name:
        raise ApiKeyError("Give the key a name.")
    for _ in range(5):  # a prefix collision is astronomically rare; retry anyway
        secret = api_secret_generate()
        key = ApiKey(
            organisation=organisation,
            name=name,
            group=group,
            secret_hash=api_secret_hash(secret),
            prefix=api_secret_display_prefix(secret),
            last_four=secret[-4:],
            created_by=created_by,
            expires_at=expires_at,
            spend_limit_total_nano=spend_limit_total_nano,
            spend_limit_daily_nano=spend_limit_daily_nano,
            spend_limit_monthly_nano=spend_limit_monthly_nano,
        )
        key.full_clean()
        try:
            with transaction.atomic():
                key.save()
        except IntegrityError:
            continue
        return CreatedApiKey(api_key=key, secret=secret)
    raise ApiKeyError("Could not generate a unique key; try again.")


def api_key_revoke(*, api_key: ApiKey, revoked_by: User | None = None) -> ApiKey:
    """Revoke at once: the row is marked, and every gateway worker drops the key from
    its caches through the invalidation signal (sent after commit)."""
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at", "updated_at"])
        transaction.on_commit(
            lambda: api_key_changed.send(sender=ApiKey, secret_hash=locked.secret_hash)
        )
    return locked


def api_key_update_group(*, api_key: ApiKey, group: Group) -> ApiKey:
    with transaction.atomic():
        api_key.group = group
        api_key.save(update_fields=["group", "updated_at"])
        transaction.on_commit(
            lambda: api_key_changed.send(sender=ApiKey, secret_hash=api_key.secret_hash)
        )
    return api_key


# --- Organisations ------------------------------------------------------------


def group_default_get_or_create() -> Group:
    group, _ = Group.objects.get_or_create(slug=DEFAULT_GROUP_SLUG, defaults={"name": "Default"})
    return group


def _slug_candidates(base: str) -> Iterator[str]:
    base = slugify(base)[:40].strip("-") or "org"
    yield base
    for n in range(2, 100):
        yield f"{base}-{n}"
    while True:  # a crowded base name: fall back to a random suffix
        yield f"{base}-{secrets.token_hex(3)}"


def organisation_create(*, name: str, owner: User, slug: str = "") -> Organisation:
    """Create an organisation owned by `owner`, in the default group.

    With an explicit `slug` a clash is an error the user can fix; without one the
    slug is derived from the name and suffixed (-2, -3, ...) until it is free. The
    unique constraint, not a prior lookup, decides, so concurrent sign-ups are safe.
    """
    name = name.strip()
    if not name:
        raise OrganisationError("Give the organisation a name.")
    group = group_default_get_or_create()
    candidates = [slugify(slug)] if slug else _slug_candidates(name)
    with transaction.atomic():
        for candidate in candidates:
            if not candidate:
                raise OrganisationError("Use letters, digits or hyphens in the slug.")
            org = Organisation(slug=candidate, name=name, default_group=group)
            try:
                org.full_clean(validate_unique=False)
            except ValidationError as exc:
                raise OrganisationError(" ".join(exc.messages)) from None
            try:
                with transaction.atomic():
                    org.save()
            except IntegrityError:
                if slug:
                    raise OrganisationError(
                        f"The slug '{candidate}' is taken; choose another."
                    ) from None
                continue
            break
        org.allowed_groups.set([group])
        Membership.objects.create(user=owner, organisation=org, role=Role.OWNER)
        transaction.on_commit(
            lambda: organisation_created.send(sender=Organisation, organisation_id=org.pk)
        )
    return org


def organisation_create_for_user(*, user: User) -> Organisation:
    """The personal organisation every new sign-up gets, named after the e-mail's
    local part (jane@example.com -> 'jane', slug 'jane' or 'jane-2', ...)."""
    local = user.email.split("@", 1)[0]
    return organisation_create(name=local or user.email, owner=user)


# --- Memberships --------------------------------------------------------------


def _owners_locked(organisation: Organisation) -> list[Membership]:
    # Locking every owner row serialises concurrent demotions/removals, so two
    # owners cannot each remove the other and leave the organisation ownerless.
    return list(
        Membership.objects.select_for_update()
        .filter(organisation=organisation, role=Role.OWNER)
        .order_by("pk")
    )


def membership_change_role(*, membership: Membership, role: str) -> Membership:
    role = Role(role)
    with transaction.atomic():
        owners = _owners_locked(membership.organisation)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == Role.OWNER and role != Role.OWNER and len(owners) <= 1:
            raise MembershipError(
                "An organisation needs at least one owner; make someone else an owner first."
            )
        locked.role = role
        locked.save(update_fields=["role", "updated_at"])
    return locked


def membership_remove(*, membership: Membership) -> None:
    with transaction.atomic():
        owners = _owners_locked(membership.organisation)
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == Role.OWNER and len(owners) <= 1:
            raise MembershipError(
                "The last owner cannot be removed; make someone else an owner first."
            )
        locked.delete()


# --- Invitations --------------------------------------------------------------


@dataclass(frozen=True)
class CreatedInvitation:
    invitation: Invitation
    token: str  # plaintext: exists only here and in the e-mail


def _invitation_send(*, invitation: Invitation, accept_url: str) -> None:
    context = {"invitation": invitation, "accept_url": accept_url}
    subject = render_to_string("account/email/invitation_subject.txt", context)
    body = render_to_string("account/email/invitation_message.txt", context)
    prefix = getattr(settings, "ACCOUNT_EMAIL_SUBJECT_PREFIX", "") or ""
    EmailMessage(
        subject=prefix + " ".join(subject.split()), body=body, to=[invitation.email]
    ).send()


def invitation_create(
    *,
    organisation: Organisation,
    email: str,
    role: str,
    invited_by: User,
    accept_url_for: Callable[[str], str],
) -> CreatedInvitation:
    """Invite `email` to `organisation`; e-mails a link (built by `accept_url_for`
    from the token) after commit. Only the token's SHA-256 is stored. Inviting the
    same address again replaces the earlier pending invitation."""
    email = User.objects.normalize_email(email.strip())
    role = Role(role)
    if Membership.objects.filter(organisation=organisation, user__email__iexact=email).exists():
        raise InvitationError(f"{email} is already a member of {organisation.name}.")
    now = timezone.now()
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        Invitation.objects.filter(
            organisation=organisation,
            email__iexact=email,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
        ).update(revoked_at=now)
        invitation = Invitation.objects.create(
            organisation=organisation,
            email=email,
            role=role,
            token_hash=invitation_token_hash(token),
            invited_by=invited_by,
            expires_at=now + INVITATION_LIFETIME,
        )
        accept_url = accept_url_for(token)
        transaction.on_commit(
            lambda: _invitation_send(invitation=invitation, accept_url=accept_url)
        )
    return CreatedInvitation(invitation=invitation, token=token)


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at", "updated_at"])
    return invitation


def invitation_accept(*, token: str, user: User) -> Membership:
    """Join the invitation's organisation. The invitation is a bearer link sent to one
    address, so it only works for a user who has verified that address: a forwarded
    or leaked link cannot be redeemed by somebody else."""
    from allauth.account.models import EmailAddress

    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("organisation")
            .filter(token_hash=invitation_token_hash(token))
            .first()
        )
        if invitation is None or invitation.revoked_at is not None:
            raise InvitationError("This invitation is not valid any more; ask for a new one.")
        if invitation.accepted_at is not None:
            raise InvitationError("This invitation has already been used.")
        if invitation.expires_at <= timezone.now():
            raise InvitationError("This invitation has expired; ask for a new one.")
        if not EmailAddress.objects.filter(
            user=user, email__iexact=invitation.email, verified=True
        ).exists():
            raise InvitationError(
                f"This invitation was sent to {invitation.email}. Log in with that "
                "address (and verify it) to accept it."
            )
        if Membership.objects.filter(user=user, organisation=invitation.organisation).exists():
            raise InvitationError(f"You are already a member of {invitation.organisation.name}.")
        membership = Membership.objects.create(
            user=user, organisation=invitation.organisation, role=invitation.role
        )
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at", "updated_at"])
    return membership
