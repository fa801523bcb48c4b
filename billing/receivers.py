"""Receivers of other apps' signals; each only hands over to a billing service.

Trial credit runs after the surrounding transaction commits, and a failure there is
logged rather than raised: it must never break an e-mail confirmation or a signup."""

from __future__ import annotations

from typing import TYPE_CHECKING

from allauth.account.signals import email_confirmed
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import Membership, Role
from billing.services import trial_credit_fulfil_pending, trial_credit_grant

if TYPE_CHECKING:
    from allauth.account.models import EmailAddress


@receiver(email_confirmed, dispatch_uid="billing.trial_on_email_confirmed")
def trial_on_email_confirmed(sender: object, email_address: EmailAddress, **kwargs: object) -> None:
    user, email = email_address.user, email_address.email
    transaction.on_commit(lambda: trial_credit_grant(user=user, email=email), robust=True)


@receiver(post_save, sender=Membership, dispatch_uid="billing.trial_on_ownership")
def trial_on_ownership(
    sender: type[Membership], instance: Membership, created: bool, **kwargs: object
) -> None:
    # The organisation may be created after the address was verified; a claim made
    # then is granted when its user first owns an organisation.
    if instance.role != Role.OWNER or kwargs.get("raw"):
        return
    user = instance.user
    transaction.on_commit(lambda: trial_credit_fulfil_pending(user=user), robust=True)
