"""Adds money to the operators' organisation list: each organisation's balance and its
spend today and this month. accounts.admin registers Organisation and may not import
billing or gateway (imports flow one way), so the dashboard app, which may import
all of them, re-registers it with these read-only columns."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.admin import OrganisationAdmin
from accounts.models import Organisation
from billing.money import format_usd
from gateway.reports import organisations_with_spend

if admin.site.is_registered(Organisation):
    admin.site.unregister(Organisation)


@admin.register(Organisation)
class OrganisationSpendAdmin(OrganisationAdmin):
    list_display = (*OrganisationAdmin.list_display, "balance", "spend_today", "spend_month")
    readonly_fields = (*OrganisationAdmin.readonly_fields, "balance", "spend_today", "spend_month")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organisation]:
        return organisations_with_spend(organisations=super().get_queryset(request))

    @admin.display(description="balance", ordering="balance_nano")
    def balance(self, obj: Organisation) -> str:
        return format_usd(getattr(obj, "balance_nano", 0) or 0, places=4)

    @admin.display(description="spend today", ordering="spend_today_nano")
    def spend_today(self, obj: Organisation) -> str:
        return format_usd(getattr(obj, "spend_today_nano", 0) or 0, places=4)

    @admin.display(description="spend this month", ordering="spend_month_nano")
    def spend_month(self, obj: Organisation) -> str:
        return format_usd(getattr(obj, "spend_month_nano", 0) or 0, places=4)
