"""Console pages for an organisation's API keys: list, create, revoke.

The plaintext secret exists only in the response to the create POST: it is rendered
into that page and goes nowhere else (no session, message, log line or redirect URL),
and the page is marked no-store so no cache keeps it.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedHttpRequest
from accounts.models import ApiKey, Membership, Role
from accounts.selectors import api_key_list
from accounts.services import ApiKeyError, api_key_create, api_key_revoke
from dashboard.access import membership_for
from dashboard.forms import ApiKeyCreateForm


def _render_list(
    request: HttpRequest, membership: Membership, form: ApiKeyCreateForm | None, status: int = 200
) -> HttpResponse:
    organisation = membership.organisation
    can_write = membership.has_role(Role.ADMIN)
    if can_write and form is None:
        form = ApiKeyCreateForm(organisation=organisation)
    return render(
        request,
        "dashboard/keys/list.html",
        {
            "membership": membership,
            "keys": api_key_list(organisation=organisation),
            "form": form if can_write else None,
            "can_write": can_write,
        },
        status=status,
    )


@login_required
def key_list(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org)
    return _render_list(request, membership, None)


@login_required
@require_POST
@never_cache
def key_create(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.ADMIN)
    organisation = membership.organisation
    form = ApiKeyCreateForm(request.POST, organisation=organisation)
    if not form.is_valid():
        return _render_list(request, membership, form, status=400)
    try:
        created = api_key_create(
            organisation=organisation,
            name=form.cleaned_data["name"],
            group=form.cleaned_data["group"],
            created_by=request.user,
            expires_at=form.expires_at,
            spend_limit_total_nano=form.limit_nano("spend_limit_usd"),
            spend_limit_daily_nano=form.limit_nano("daily_limit_usd"),
            spend_limit_monthly_nano=form.limit_nano("monthly_limit_usd"),
        )
    except ApiKeyError as exc:
        form.add_error(None, str(exc))
        return _render_list(request, membership, form, status=400)
    return render(
        request,
        "dashboard/keys/created.html",
        {
            "membership": membership,
            "api_key": created.api_key,
            "secret": created.secret,
        },
    )


@login_required
def key_revoke(request: AuthenticatedHttpRequest, org: str, key_id: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes."""
    membership = membership_for(request, org, minimum=Role.ADMIN)
    api_key = get_object_or_404(
        ApiKey.objects.select_related("group"), pk=key_id, organisation=membership.organisation
    )
    if request.method == "POST":
        api_key_revoke(api_key=api_key, revoked_by=request.user)
        messages.success(request, f"Key '{api_key.name}' ({api_key.masked}) is revoked.")
        return redirect("dashboard:keys", org=org)
    return render(
        request, "dashboard/keys/revoke.html", {"membership": membership, "api_key": api_key}
    )
