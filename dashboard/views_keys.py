"""Console pages for an organisation's API keys: list, create, revoke, rate limits.

Owners and admins set a key's rate limits (gateway.ratelimit) on the keys page itself:
GET ?limits=<key id> shows the form, a POST to the keys page saves it (members and
other organisations get 404). The list shows each key's effective limits.

The plaintext secret exists only in the response to the create POST: it is rendered
into that page and goes nowhere else (no session, message, log line or redirect URL),
and the page is marked no-store so no cache keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedHttpRequest
from accounts.models import ApiKey, Group, Membership, Organisation, Role
from accounts.selectors import api_key_list
from accounts.services import ApiKeyError, api_key_create, api_key_revoke
from dashboard.access import membership_for
from dashboard.forms import ApiKeyCreateForm

LIMITS = (
    ("rpm_limit", "RPM", "Requests per minute"),
    ("tpm_limit", "TPM", "Tokens per minute"),
    ("concurrency_limit", "concurrent", "Concurrent requests"),
)


class KeyRateLimitsForm(forms.ModelForm):
    """A key's own rate limits: blank takes its group's default, 0 means no limit."""

    class Meta:
        model = ApiKey
        fields = [name for name, _, _ in LIMITS]
        labels = {name: label for name, _, label in LIMITS}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        group: Group = self.instance.group
        help_texts = {
            "rpm_limit": "Requests admitted per minute.",
            "tpm_limit": "Input + output tokens per minute (a request counts its "
            "estimate while it runs, then what it used).",
            "concurrency_limit": "Requests in progress at the same time.",
        }
        for name, unit, _ in LIMITS:
            default = getattr(group, name)
            inherited = f"{default} {unit}" if default else "no limit"
            field = self.fields[name]
            field.required = False
            field.help_text = (
                f"{help_texts[name]} Blank: the group '{group.slug}' default ({inherited}). "
                "0: no limit for this key."
            )
            field.widget.attrs.update({"min": 0, "placeholder": "group default"})


@dataclass(frozen=True)
class EffectiveLimit:
    value: int | None  # None: no limit
    unit: str
    inherited: bool  # from the group's default


def _effective(
    own: Organisation | ApiKey, defaults: Group | None, prefix: str = ""
) -> list[EffectiveLimit]:
    """The limits that apply at one level, the group's default where none is set."""
    out = []
    for name, unit, _ in LIMITS:
        value = getattr(own, name)
        inherited = value is None
        if inherited:
            value = getattr(defaults, prefix + name) if defaults is not None else None
        if value:
            out.append(EffectiveLimit(value, unit, inherited))
    return out


def _render_list(
    request: HttpRequest, membership: Membership, form: ApiKeyCreateForm | None, status: int = 200
) -> HttpResponse:
    organisation = membership.organisation
    can_write = membership.has_role(Role.ADMIN)
    if can_write and form is None:
        form = ApiKeyCreateForm(organisation=organisation)
    keys = list(api_key_list(organisation=organisation))
    for key in keys:
        key.effective_limits = _effective(key, key.group)  # type: ignore[attr-defined]
    return render(
        request,
        "dashboard/keys/list.html",
        {
            "membership": membership,
            "keys": keys,
            "form": form if can_write else None,
            "can_write": can_write,
            "organisation_limits": _effective(
                organisation, organisation.default_group, prefix="org_"
            ),
        },
        status=status,
    )


@login_required
def key_list(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    """The keys; with ?limits=<id>, that key's rate-limit form (owners and admins);
    a POST saves that form."""
    if request.method == "POST":
        return _limits_save(request, org)
    if "limits" in request.GET:
        membership = membership_for(request, org, minimum=Role.ADMIN)
        api_key = _key_of(membership, request.GET["limits"])
        return _render_limits(request, membership, KeyRateLimitsForm(instance=api_key))
    membership = membership_for(request, org)
    return _render_list(request, membership, None)


def _key_of(membership: Membership, raw_id: str) -> ApiKey:
    if not raw_id.isdigit():
        raise Http404("No such key")
    return get_object_or_404(
        ApiKey.objects.select_related("group"),
        pk=int(raw_id),
        organisation=membership.organisation,
        revoked_at__isnull=True,
    )


def _render_limits(
    request: HttpRequest, membership: Membership, form: KeyRateLimitsForm, status: int = 200
) -> HttpResponse:
    organisation = membership.organisation
    return render(
        request,
        "dashboard/keys/limits.html",
        {
            "membership": membership,
            "api_key": form.instance,
            "form": form,
            "organisation_limits": _effective(
                organisation, organisation.default_group, prefix="org_"
            ),
        },
        status=status,
    )


@never_cache
def _limits_save(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.ADMIN)
    api_key = _key_of(membership, request.POST.get("key_id", ""))
    form = KeyRateLimitsForm(request.POST, instance=api_key)
    if not form.is_valid():
        return _render_limits(request, membership, form, status=400)
    # Saving drops the cached key in every gateway worker (gateway.receivers).
    form.save()
    messages.success(request, f"Rate limits of '{api_key.name}' ({api_key.masked}) saved.")
    return redirect("dashboard:keys", org=org)


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
