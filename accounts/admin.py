"""Operator admin for accounts: users, organisations, key groups, invitations, API keys.

API keys are read-only here except their rate limits: the admin shows metadata only
(never a secret or its hash), cannot create keys (a new secret must be shown once to the
person who will use it: `manage.py apikey create` or the console) and revokes through
the service so every gateway worker drops the key at once.

Rate limits (gateway.ratelimit) are set on keys, organisations and key groups (the
defaults); every save makes the gateway workers drop the cached keys it affects.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group as AuthGroup
from django.db import transaction
from django.db.models import Q, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone

from accounts.http import AuthenticatedHttpRequest
from accounts.models import ApiKey, Group, Invitation, Membership, Organisation, User
from accounts.services import api_key_revoke
from accounts.signals import api_key_changed

RATE_LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "concurrency_limit")
RATE_LIMIT_HELP = (
    "Blank: the group default applies (keys: their group's key defaults; organisations: "
    "their default group's organisation defaults). 0: no limit at this level. A request "
    "must stay within its key's limits and its organisation's."
)


class RateLimitsColumn:
    @admin.display(description="rate limits")
    def rate_limits(self, obj: ApiKey | Organisation) -> str:
        return obj.rate_limits_text() or "—"


# Tollgate's key groups (accounts.Group) are the groups operators manage; Django's
# permission groups would only be confused with them.
if admin.site.is_registered(AuthGroup):
    admin.site.unregister(AuthGroup)


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ("organisation",)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    list_display = ("email", "first_name", "last_name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "first_name", "last_name")
    ordering = ("email",)
    filter_horizontal = ()
    inlines = (MembershipOfUserInline,)

    def get_inlines(self, request: HttpRequest, obj: User | None) -> tuple:
        return self.inlines if obj is not None else ()  # add page: just the account


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "organisation"
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Organisation)
class OrganisationAdmin(RateLimitsColumn, admin.ModelAdmin):
    list_display: tuple[str, ...] = (
        "slug",
        "name",
        "default_group",
        "rate_limits",
        "is_active",
        "created_at",
    )
    list_filter = ("is_active", "allowed_groups")
    search_fields = ("slug", "name")
    filter_horizontal = ("allowed_groups",)
    inlines = (MembershipInline,)

    def get_fieldsets(self, request: HttpRequest, obj: Organisation | None = None) -> Any:
        """Every field as usual (read-only columns added by subclasses included), the
        rate limits in a section of their own."""
        fields = [f for f in self.get_fields(request, obj) if f not in RATE_LIMIT_FIELDS]
        return [
            (None, {"fields": fields}),
            (
                "Rate limits (all keys together)",
                {"fields": RATE_LIMIT_FIELDS, "description": RATE_LIMIT_HELP},
            ),
        ]

    # Saving an organisation drops its cached keys (gateway.receivers).


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "key_defaults", "organisation_defaults", "created_at")
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("slug", "name", "description")}),
        (
            "Rate-limit defaults per key",
            {
                "fields": RATE_LIMIT_FIELDS,
                "description": "For each key of this group whose own limit is blank. "
                "Blank or 0: no default.",
            },
        ),
        (
            "Rate-limit defaults per organisation",
            {
                "fields": ("org_rpm_limit", "org_tpm_limit", "org_concurrency_limit"),
                "description": "For each organisation whose default group this is and whose "
                "own limit is blank: all its keys together. Blank or 0: no default.",
            },
        ),
    )

    @admin.display(description="key defaults")
    def key_defaults(self, obj: Group) -> str:
        return _limits_text(obj.rpm_limit, obj.tpm_limit, obj.concurrency_limit)

    @admin.display(description="organisation defaults")
    def organisation_defaults(self, obj: Group) -> str:
        return _limits_text(obj.org_rpm_limit, obj.org_tpm_limit, obj.org_concurrency_limit)

    def save_model(self, request: HttpRequest, obj: Group, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            # Every cached key whose effective limits come from this group: its own
            # keys, and the keys of organisations whose default group it is.
            hashes = set(
                ApiKey.objects.filter(
                    Q(group=obj) | Q(organisation__default_group=obj)
                ).values_list("secret_hash", flat=True)
            )

            def publish() -> None:
                for secret_hash in hashes:
                    api_key_changed.send(sender=ApiKey, secret_hash=secret_hash)

            transaction.on_commit(publish)


def _limits_text(rpm: int | None, tpm: int | None, concurrency: int | None) -> str:
    parts = [
        f"{value} {unit}"
        for value, unit in ((rpm, "RPM"), (tpm, "TPM"), (concurrency, "concurrent"))
        if value
    ]
    return " · ".join(parts) or "—"


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = (
        "email",
        "organisation",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    )
    list_filter = ("role",)
    search_fields = ("email", "organisation__slug")
    # The token hash is useless to an operator and must not be copied around.
    exclude = ("token_hash",)
    readonly_fields = (
        "organisation",
        "email",
        "role",
        "invited_by",
        "expires_at",
        "accepted_at",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # an invitation needs a token e-mailed to someone: use the console


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("active", "active"), ("expired", "expired"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        live = queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return live.filter(expires_at__lte=now)
        if self.value() == "active":
            return live.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(RateLimitsColumn, admin.ModelAdmin):
    list_display = (
        "name",
        "masked",
        "organisation",
        "group",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "rate_limits",
        "status",
    )
    list_filter = (ApiKeyStatusFilter, "group")
    list_select_related = ("organisation", "group", "created_by")
    search_fields = ("name", "prefix", "organisation__slug")
    fields = (
        "name",
        "masked",
        "organisation",
        "group",
        "created_by",
        "created_at",
        "expires_at",
        "spend_limit_total_nano",
        "spend_limit_daily_nano",
        "spend_limit_monthly_nano",
        *RATE_LIMIT_FIELDS,
        "last_used_at",
        "revoked_at",
        "status",
    )
    # Only the rate limits may be changed here (saving drops the cached key everywhere:
    # gateway.receivers).
    readonly_fields = tuple(f for f in fields if f not in RATE_LIMIT_FIELDS)
    actions = ("revoke_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: request logs and ledger entries refer to keys

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_apikey")

    @admin.display(description="key")
    def masked(self, obj: ApiKey) -> str:
        return obj.masked

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        return obj.status

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_selected(
        self, request: AuthenticatedHttpRequest, queryset: QuerySet[ApiKey]
    ) -> None:
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key, revoked_by=request.user)
            count += 1
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)
