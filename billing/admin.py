"""Operator admin for billing: everything read-only except "adjust credit", which
posts an ADJUSTMENT through the service (the ledger is append-only: no entry can be
edited or deleted here)."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Model, QuerySet, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.http import AuthenticatedHttpRequest
from billing.models import LedgerEntry, OrganisationCredit, StripeEvent, TopUp, TrialGrant
from billing.money import format_usd
from billing.services import CreditError, credit_adjust


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "organisation", "kind", "amount", "reference", "memo")
    list_filter = ("kind",)
    search_fields = ("organisation__slug", "idempotency_key", "reference")
    list_select_related = ("organisation",)
    date_hierarchy = "created_at"

    @admin.display(description="amount", ordering="amount_nano")
    def amount(self, obj: LedgerEntry) -> str:
        return format_usd(obj.amount_nano, places=6)


class AdjustCreditForm(forms.Form):
    amount_usd = forms.DecimalField(
        label="Amount (USD)",
        max_digits=16,
        decimal_places=9,
        help_text="Positive adds credit, negative removes it.",
    )
    memo = forms.CharField(max_length=300, help_text="Why: kept in the ledger for audit.")
    token = forms.UUIDField(widget=forms.HiddenInput)


@admin.register(OrganisationCredit)
class OrganisationCreditAdmin(ReadOnlyAdmin):
    list_display = ("slug", "name", "balance", "adjust_link")
    search_fields = ("slug", "name")
    fields = ("slug", "name", "balance")
    readonly_fields = ("slug", "name", "balance")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrganisationCredit]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                balance_nano=Coalesce(
                    "credit__balance_nano", Value(0), output_field=BigIntegerField()
                )
            )
        )

    @admin.display(description="balance", ordering="balance_nano")
    def balance(self, obj: OrganisationCredit) -> str:
        return format_usd(getattr(obj, "balance_nano", 0) or 0, places=4)

    @admin.display(description="")
    def adjust_link(self, obj: OrganisationCredit) -> str:
        url = reverse("admin:billing_organisationcredit_adjust", args=[obj.pk])
        return format_html('<a href="{}">Adjust credit</a>', url)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:pk>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="billing_organisationcredit_adjust",
            ),
            *super().get_urls(),
        ]

    def adjust_view(self, request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("billing.add_ledgerentry"):
            raise PermissionDenied
        organisation = get_object_or_404(OrganisationCredit, pk=pk)
        if request.method == "POST":
            form = AdjustCreditForm(request.POST)
            if form.is_valid():
                try:
                    entry = credit_adjust(
                        organisation=organisation,
                        amount_usd=form.cleaned_data["amount_usd"],
                        memo=form.cleaned_data["memo"],
                        created_by=request.user,
                        idempotency_key=str(form.cleaned_data["token"]),
                    )
                except CreditError as exc:
                    form.add_error(None, str(exc))
                else:
                    if entry is None:
                        messages.warning(request, "That adjustment was already posted.")
                    else:
                        messages.success(
                            request,
                            f"Posted {format_usd(entry.amount_nano, places=6)} to "
                            f"{organisation.slug}.",
                        )
                    return redirect("admin:billing_organisationcredit_changelist")
        else:
            form = AdjustCreditForm(initial={"token": uuid.uuid4()})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Adjust credit: {organisation.name}",
            "organisation": organisation,
            "balance": self.balance(self.get_queryset(request).get(pk=pk)),
            "form": form,
        }
        return TemplateResponse(request, "billing/admin_adjust_credit.html", context)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "organisation",
        "amount_usd",
        "fee_usd",
        "status",
        "refunded_usd",
        "paid_at",
    )
    list_filter = ("status",)
    search_fields = ("organisation__slug", "stripe_session_id", "stripe_payment_intent_id")
    list_select_related = ("organisation",)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "type", "stripe_id", "outcome", "topup", "detail")
    list_filter = ("type", "outcome", "livemode")
    search_fields = ("stripe_id", "payment_intent")


@admin.register(TrialGrant)
class TrialGrantAdmin(ReadOnlyAdmin):
    list_display = ("claimed_at", "email", "user", "organisation", "granted_at")
    search_fields = ("email", "organisation__slug")
