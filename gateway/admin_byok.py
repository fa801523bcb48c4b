"""Operator admin for BYOK provider keys: metadata only, never the secret.

The lead's gateway/admin.py imports this module, which registers the admin. Keys are
added and replaced by the organisation in the console (where they are encrypted and
optionally checked); the operator can only see metadata and delete a key.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from gateway.byok import provider_key_delete
from gateway.models import ProviderKey


@admin.register(ProviderKey)
class ProviderKeyAdmin(admin.ModelAdmin):
    list_display = ("organisation", "provider", "masked", "mode", "last_verified_at", "created_at")
    list_filter = ("provider", "mode")
    search_fields = ("organisation__slug", "organisation__name")
    list_select_related = ("organisation", "provider")
    # An explicit allow-list: a new field on the model does not appear by accident.
    fields = (
        "organisation",
        "provider",
        "masked",
        "mode",
        "created_by",
        "last_verified_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="key")
    def masked(self, obj: ProviderKey) -> str:
        return f"…{obj.last_four}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProviderKey]:
        return super().get_queryset(request).defer("secret_encrypted")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ProviderKey | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: ProviderKey) -> None:
        provider_key_delete(organisation=obj.organisation, provider=obj.provider)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ProviderKey]) -> None:
        for key in queryset.select_related("organisation", "provider"):
            provider_key_delete(organisation=key.organisation, provider=key.provider)
