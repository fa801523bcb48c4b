"""Users, organisations (tenants), memberships, invitations, key groups and API keys."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def _limit_field(what: str) -> models.PositiveIntegerField:
    """One rate limit: blank = the group default applies, 0 = no limit at this level."""
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=f"{what}. Blank: the group default applies. 0: no limit at this level.",
    )


class RateLimits(models.Model):
    """Requests per minute, tokens (input + output) per minute and requests in flight,
    enforced by the gateway (gateway.ratelimit). NULL means "not set here" (the key
    group's default applies); 0 means "no limit at this level", whatever the group says."""

    rpm_limit = _limit_field("Requests per minute")
    tpm_limit = _limit_field("Input + output tokens per minute")
    concurrency_limit = _limit_field("Requests in flight at once")

    class Meta:
        abstract = True

    def rate_limits_text(self) -> str:
        """e.g. "60 RPM · 100000 TPM · 4 concurrent", or "" if none is set here."""
        parts = []
        for value, unit in (
            (self.rpm_limit, "RPM"),
            (self.tpm_limit, "TPM"),
            (self.concurrency_limit, "concurrent"),
        ):
            if value is not None:
                parts.append(f"{value} {unit}" if value else f"no {unit} limit")
        return " · ".join(parts)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person who logs in to the console; identified by e-mail, no username."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("e-mail address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    # Not the stubs' UserManager[User]: ours takes an e-mail address, not a username.
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email


class Group(TimeStamped):
    """An operator-defined tier of access (default, pro, ...). Keys belong to one group;
    which models a group may use is set on gateway.Model.

    Rate-limit defaults: `rpm_limit`, `tpm_limit`, `concurrency_limit` apply to each key
    of the group that sets none of its own; `org_*` apply to each organisation whose
    default group this is and that sets none of its own. Blank or 0: no default."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    rpm_limit = models.PositiveIntegerField(
        "key RPM default", null=True, blank=True, help_text="Requests per minute, per key."
    )
    tpm_limit = models.PositiveIntegerField(
        "key TPM default",
        null=True,
        blank=True,
        help_text="Input + output tokens per minute, per key.",
    )
    concurrency_limit = models.PositiveIntegerField(
        "key concurrency default", null=True, blank=True, help_text="Requests in flight, per key."
    )
    org_rpm_limit = models.PositiveIntegerField(
        "organisation RPM default",
        null=True,
        blank=True,
        help_text="Requests per minute, all keys of an organisation whose default group this is.",
    )
    org_tpm_limit = models.PositiveIntegerField(
        "organisation TPM default",
        null=True,
        blank=True,
        help_text="Tokens per minute, all keys of an organisation whose default group this is.",
    )
    org_concurrency_limit = models.PositiveIntegerField(
        "organisation concurrency default",
        null=True,
        blank=True,
        help_text="Requests in flight, all keys of an organisation whose default group this is.",
    )

    class Meta:
        verbose_name = "key group"
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Organisation(TimeStamped, RateLimits):
    """A tenant: everything a customer owns hangs off one of these. Its rate limits
    cover all its keys together (blank: its default group's `org_*` defaults)."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    default_group = models.ForeignKey(
        Group, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    allowed_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="organisations",
        help_text="Groups this organisation's keys may be placed in.",
    )
    store_prompts = models.BooleanField(
        default=False, help_text="Keep request and response bodies in the request log."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


ROLE_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


class Membership(TimeStamped):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organisation"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation} ({self.role})"

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]


class Invitation(TimeStamped):
    """An e-mailed invitation to join an organisation. Only a hash of the token is kept."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.email} -> {self.organisation}"


class ApiKey(TimeStamped, RateLimits):
    """A client credential. Only the SHA-256 of the secret is stored (unique, so one
    indexed lookup authenticates), plus a display prefix and the last four characters.
    Its rate limits apply to it alone (blank: its group's defaults)."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    group = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="api_keys")
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=24, unique=True, editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # Optional spend limits, integer nano-dollars (1e-9 USD).
    spend_limit_total_nano = models.BigIntegerField(null=True, blank=True)
    spend_limit_daily_nano = models.BigIntegerField(null=True, blank=True)
    spend_limit_monthly_nano = models.BigIntegerField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…{self.last_four})"

    @property
    def masked(self) -> str:
        return f"{self.prefix}…{self.last_four}"

    @property
    def status(self) -> str:
        """'revoked', 'expired' or 'active' (revocation wins: it is permanent)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"
