"""Request types for views that only a logged-in user reaches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request a view behind @login_required (or the admin's admin_view) receives:
    its user is always a User, never AnonymousUser. For annotations only: Django never
    makes one, so never test isinstance() against it."""

    user: User
