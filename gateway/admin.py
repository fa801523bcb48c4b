"""Operator admin for the catalog and the request log."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from billing.money import format_usd
from gateway import admin_byok  # noqa: F401  (registers ProviderKeyAdmin)
from gateway.encryption import secret_encrypt
from gateway.models import Deployment, Model, ModelAlias, Provider, RequestLog, Router


class ProviderForm(forms.ModelForm):
    base_url = forms.URLField(
        assume_scheme="https", help_text=Provider._meta.get_field("base_url").help_text
    )
    managed_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: stored encrypted; leave empty to keep the current key. "
        "Or name an environment variable below.",
    )
    clear_managed_key = forms.BooleanField(required=False)

    class Meta:
        model = Provider
        fields = ["slug", "name", "protocol", "base_url", "api_key_env", "extra_headers", "enabled"]

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        secret = self.cleaned_data.get("managed_key")
        if secret:
            provider.api_key_encrypted = secret_encrypt(secret)
            provider.api_key_last_four = secret[-4:]
        elif self.cleaned_data.get("clear_managed_key"):
            provider.api_key_encrypted = ""
            provider.api_key_last_four = ""
        if commit:
            provider.save()
        return provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = (
        "slug",
        "name",
        "protocol",
        "speaks_responses",
        "base_url",
        "credentials",
        "enabled",
    )
    list_filter = ("protocol", "enabled")
    search_fields = ("slug", "name")

    @admin.display(description="managed key")
    def credentials(self, obj: Provider) -> str:
        if obj.api_key_env:
            return f"${obj.api_key_env}"
        return f"stored …{obj.api_key_last_four}" if obj.api_key_encrypted else "none"


class AliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 1


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 1
    fields = (
        "provider",
        "upstream_model",
        "priority",
        "weight",
        "enabled",
        "max_tokens_param",
        "max_output_tokens",
    )


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "display_name",
        "price_input",
        "price_output",
        "price_cache_read",
        "price_cache_write_5m",
        "context_window",
        "enabled",
    )
    list_filter = ("enabled", "groups")
    search_fields = ("public_id", "display_name", "aliases__alias")
    filter_horizontal = ("groups",)
    inlines = [AliasInline, DeploymentInline]
    fieldsets = (
        (None, {"fields": ("public_id", "display_name", "description", "enabled", "groups")}),
        ("Limits", {"fields": ("context_window", "max_output_tokens")}),
        (
            "Prices (USD per million tokens)",
            {
                "fields": (
                    "price_input",
                    "price_output",
                    "price_cache_read",
                    "price_cache_write_5m",
                    "price_cache_write_1h",
                )
            },
        ),
        (
            "Server tools (USD per 1,000 calls)",
            {"fields": ("price_web_search", "price_web_fetch")},
        ),
        (
            "Service tiers (price multipliers)",
            {"fields": ("priority_multiplier", "flex_multiplier")},
        ),
        (
            "Long context (USD per million tokens, for the whole request above the threshold)",
            {
                "fields": (
                    "long_context_above",
                    "price_long_input",
                    "price_long_output",
                    "price_long_cache_read",
                    "price_long_cache_write_5m",
                    "price_long_cache_write_1h",
                )
            },
        ),
    )


@admin.register(Router)
class RouterAdmin(admin.ModelAdmin):
    list_display = ("public_id", "display_name", "kind", "enabled")
    filter_horizontal = ("groups",)


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("model", "provider", "upstream_model", "priority", "weight", "enabled")
    list_filter = ("provider", "enabled")
    search_fields = ("model__public_id", "upstream_model")
    list_select_related = ("model", "provider")


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "request_id",
        "organisation",
        "resolved_model",
        "provider",
        "status_code",
        "latency_ms",
        "total_tokens",
        "cost",
        "byok",
    )
    list_filter = ("outcome", "provider", "byok", "stream")
    search_fields = ("request_id", "organisation__slug", "session_id")
    list_select_related = ("organisation",)
    date_hierarchy = "started_at"
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: RequestLog | None = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RequestLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RequestLog | None = None) -> bool:
        return False

    @admin.display(description="tokens")
    def total_tokens(self, obj: RequestLog) -> int:
        return obj.input_tokens + obj.cache_read_tokens + obj.cache_write_tokens + obj.output_tokens

    @admin.display(description="cost")
    def cost(self, obj: RequestLog) -> str:
        return format_usd(obj.cost_nano)
