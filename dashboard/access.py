"""Access helpers: every console view fetches its organisation (and objects) through
these, so no view can forget tenancy. Anyone who is not a member gets a 404."""

from __future__ import annotations

from django.http import Http404

from accounts.http import AuthenticatedHttpRequest
from accounts.models import Membership, Role


def membership_for(
    request: AuthenticatedHttpRequest, org_slug: str, minimum: str = Role.MEMBER
) -> Membership:
    """The requesting user's membership of the organisation `org_slug`.
    404 if they are not a member; 404 as well if their role is below `minimum` for a
    write, so the existence of a page is not revealed by a different status."""
    try:
        membership = Membership.objects.select_related("organisation").get(
            user=request.user, organisation__slug=org_slug, organisation__is_active=True
        )
    except Membership.DoesNotExist:
        raise Http404("No such organisation") from None
    if not membership.has_role(minimum):
        raise Http404("No such page")
    return membership
