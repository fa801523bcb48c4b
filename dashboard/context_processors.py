"""Template context for console pages: the current organisation and the user's others."""

from __future__ import annotations

from django.http import HttpRequest


def console(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = list(
        user.memberships.select_related("organisation").order_by("organisation__name")
    )
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("org") if match else None
    current = next((m for m in memberships if m.organisation.slug == slug), None)
    return {"memberships": memberships, "current_membership": current}
