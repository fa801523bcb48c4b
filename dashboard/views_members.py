"""Console pages for an organisation's people: members, roles, invitations, and the
page where an invited user accepts. Everyone in the organisation may see who is in it;
only owners invite, change roles and remove members."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedHttpRequest
from accounts.models import Invitation, Membership, Role
from accounts.selectors import (
    invitation_pending_get_by_token,
    invitation_pending_list,
    membership_list,
)
from accounts.services import (
    InvitationError,
    MembershipError,
    invitation_accept,
    invitation_create,
    invitation_revoke,
    membership_change_role,
    membership_remove,
)
from dashboard.access import membership_for
from dashboard.forms import InvitationForm, MembershipRoleForm


def _render_members(
    request: HttpRequest,
    membership: Membership,
    form: InvitationForm | None = None,
    status: int = 200,
) -> HttpResponse:
    organisation = membership.organisation
    is_owner = membership.has_role(Role.OWNER)
    return render(
        request,
        "dashboard/members/list.html",
        {
            "membership": membership,
            "members": membership_list(organisation=organisation),
            "invitations": invitation_pending_list(organisation=organisation) if is_owner else [],
            "invite_form": (form or InvitationForm()) if is_owner else None,
            "roles": Role.choices,
            "is_owner": is_owner,
        },
        status=status,
    )


@login_required
def member_list(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    return _render_members(request, membership_for(request, org))


@login_required
@require_POST
def member_invite(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.OWNER)
    form = InvitationForm(request.POST)
    if not form.is_valid():
        return _render_members(request, membership, form, status=400)

    def accept_url_for(token: str) -> str:
        return request.build_absolute_uri(reverse("dashboard:invitation", args=[token]))

    try:
        created = invitation_create(
            organisation=membership.organisation,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,
            accept_url_for=accept_url_for,
        )
    except InvitationError as exc:
        form.add_error("email", str(exc))
        return _render_members(request, membership, form, status=400)
    messages.success(request, f"Invitation sent to {created.invitation.email}.")
    return redirect("dashboard:members", org=org)


@login_required
@require_POST
def member_change_role(request: AuthenticatedHttpRequest, org: str, member_id: int) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.OWNER)
    target = get_object_or_404(
        Membership.objects.select_related("user", "organisation"),
        pk=member_id,
        organisation=membership.organisation,
    )
    form = MembershipRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role: owner, admin or member.")
        return redirect("dashboard:members", org=org)
    try:
        membership_change_role(membership=target, role=form.cleaned_data["role"])
    except MembershipError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{target.user.email} is now {form.cleaned_data['role']}.")
    return redirect("dashboard:members", org=org)


@login_required
@require_POST
def member_remove(request: AuthenticatedHttpRequest, org: str, member_id: int) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.OWNER)
    target = get_object_or_404(
        Membership.objects.select_related("user", "organisation"),
        pk=member_id,
        organisation=membership.organisation,
    )
    try:
        membership_remove(membership=target)
    except MembershipError as exc:
        messages.error(request, str(exc))
        return redirect("dashboard:members", org=org)
    messages.success(request, f"{target.user.email} was removed from {target.organisation.name}.")
    if target.pk == membership.pk:  # an owner who left can no longer see the page
        return redirect("dashboard:home")
    return redirect("dashboard:members", org=org)


@login_required
@require_POST
def invitation_cancel(
    request: AuthenticatedHttpRequest, org: str, invitation_id: int
) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.OWNER)
    invitation = get_object_or_404(
        Invitation, pk=invitation_id, organisation=membership.organisation
    )
    invitation_revoke(invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("dashboard:members", org=org)


@login_required
@never_cache
def invitation_detail(request: AuthenticatedHttpRequest, token: str) -> HttpResponse:
    """The link in an invitation e-mail: GET shows what joining means, POST joins.
    Anonymous visitors are sent to log in (or sign up) and come back here."""
    if request.method == "POST":
        try:
            joined = invitation_accept(token=token, user=request.user)
        except InvitationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"You joined {joined.organisation.name}.")
            return redirect("dashboard:overview", org=joined.organisation.slug)
    invitation = invitation_pending_get_by_token(token=token)
    return render(request, "dashboard/members/invitation.html", {"invitation": invitation})
