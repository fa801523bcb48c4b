"""Receivers of third-party signals (allauth); each only calls a service."""

from __future__ import annotations

from allauth.account.signals import user_signed_up
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import User
from accounts.services import organisation_create_for_user


@receiver(user_signed_up, dispatch_uid="accounts.organisation_for_new_user")
def organisation_for_new_user(sender: object, request: HttpRequest, user: User, **kwargs) -> None:
    organisation_create_for_user(user=user)
