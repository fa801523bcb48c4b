"""Console pages for BYOK provider keys: see each provider's key status; admins and
owners add, replace, change the mode of and delete keys.

A submitted key goes straight to gateway.byok and is never rendered back: on an
error the form comes back empty, and the page only ever shows the last four characters.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from accounts.http import AuthenticatedHttpRequest
from accounts.models import Membership, Role
from dashboard.access import membership_for
from gateway.byok import (
    ProviderKeyError,
    provider_key_delete,
    provider_key_save,
    provider_key_set_mode,
    provider_key_statuses,
)
from gateway.models import Provider, ProviderKey, ProviderKeyMode


class ProviderKeyForm(forms.Form):
    secret = forms.CharField(
        label="API key",
        max_length=1000,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    mode = forms.ChoiceField(choices=ProviderKeyMode.choices, initial=ProviderKeyMode.PREFER)
    verify = forms.BooleanField(
        required=False, initial=True, label="Check the key with the provider before saving"
    )


class ProviderKeyModeForm(forms.Form):
    mode = forms.ChoiceField(choices=ProviderKeyMode.choices)


def _render(
    request: HttpRequest,
    membership: Membership,
    *,
    error_provider: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    can_write = membership.has_role(Role.ADMIN)
    rows = [
        {
            "provider": s.provider,
            "key": s.key,
            "form": ProviderKeyForm(auto_id=f"id_{s.provider.slug}_%s") if can_write else None,
            "error": error if s.provider.slug == error_provider else "",
        }
        for s in provider_key_statuses(organisation=membership.organisation)
    ]
    return render(
        request,
        "dashboard/provider_keys.html",
        {
            "membership": membership,
            "rows": rows,
            "can_write": can_write,
            "modes": ProviderKeyMode.choices,
        },
        status=status,
    )


@login_required
@require_GET
def provider_keys(request: AuthenticatedHttpRequest, org: str) -> HttpResponse:
    return _render(request, membership_for(request, org))


@login_required
@require_POST
@never_cache
@sensitive_post_parameters("secret")
def provider_key_save_view(
    request: AuthenticatedHttpRequest, org: str, provider: str
) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.ADMIN)
    found = get_object_or_404(Provider, slug=provider, enabled=True)
    form = ProviderKeyForm(request.POST)
    if not form.is_valid():
        return _render(
            request,
            membership,
            error_provider=found.slug,
            error="Paste the key and choose a mode.",
            status=400,
        )
    try:
        key = provider_key_save(
            organisation=membership.organisation,
            provider=found,
            secret=form.cleaned_data["secret"],
            mode=form.cleaned_data["mode"],
            created_by=request.user,
            verify=form.cleaned_data["verify"],
        )
    except ProviderKeyError as exc:
        return _render(request, membership, error_provider=found.slug, error=str(exc), status=400)
    checked = "checked and saved" if key.last_verified_at else "saved without checking"
    messages.success(request, f"{found.name} key …{key.last_four} {checked}.")
    return redirect("dashboard:provider_keys", org=org)


@login_required
@require_POST
def provider_key_mode_view(
    request: AuthenticatedHttpRequest, org: str, provider: str
) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.ADMIN)
    key = get_object_or_404(
        ProviderKey.objects.defer("secret_encrypted").select_related("provider"),
        organisation=membership.organisation,
        provider__slug=provider,
    )
    form = ProviderKeyModeForm(request.POST)
    if not form.is_valid():
        return _render(
            request, membership, error_provider=provider, error="Choose a mode.", status=400
        )
    provider_key_set_mode(provider_key=key, mode=form.cleaned_data["mode"])
    messages.success(request, f"{key.provider.name} key: {key.get_mode_display().lower()}.")
    return redirect("dashboard:provider_keys", org=org)


@login_required
@require_POST
def provider_key_delete_view(
    request: AuthenticatedHttpRequest, org: str, provider: str
) -> HttpResponse:
    membership = membership_for(request, org, minimum=Role.ADMIN)
    found = get_object_or_404(Provider, slug=provider)
    if provider_key_delete(organisation=membership.organisation, provider=found):
        messages.success(request, f"{found.name} key deleted; requests use managed credit.")
    return redirect("dashboard:provider_keys", org=org)
