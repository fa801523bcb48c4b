"""The catalog (providers, models, aliases, deployments, group access), BYOK provider
keys, and the request log."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from accounts.models import ApiKey, Group, Organisation, TimeStamped


class Protocol(models.TextChoices):
    OPENAI = "openai", "OpenAI Chat Completions"
    ANTHROPIC = "anthropic", "Anthropic Messages"
    RESPONSES = "responses", "OpenAI Responses"


class Provider(TimeStamped):
    """An upstream API. Managed credentials are either stored encrypted
    (`api_key_encrypted`, set through the admin) or read from an environment variable
    named in `api_key_env` at request time."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    protocol = models.CharField(
        max_length=10, choices=Protocol.choices, help_text="The wire the provider speaks"
    )
    speaks_responses = models.BooleanField(
        default=False,
        help_text="Also serves the OpenAI Responses API at {base_url}/responses (OpenAI "
        "itself does): Responses clients such as Codex are passed through to it instead "
        "of translated to Chat Completions",
    )
    base_url = models.URLField(
        help_text="Up to and including the version segment, e.g. https://api.openai.com/v1 "
        "or https://api.anthropic.com/v1"
    )
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_last_four = models.CharField(max_length=4, blank=True, editable=False)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Environment variable holding the managed key"
    )
    extra_headers = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


def _price(help_text: str = "USD per million tokens", max_digits: int = 14) -> models.DecimalField:
    return models.DecimalField(
        max_digits=max_digits,
        decimal_places=6,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=help_text,
    )


def _multiplier(help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=6,
        decimal_places=4,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=help_text,
    )


class Model(TimeStamped):
    """A public model id clients ask for, with its limits and pass-through prices."""

    public_id = models.CharField(max_length=120, unique=True)
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    context_window = models.PositiveIntegerField(default=128_000)
    max_output_tokens = models.PositiveIntegerField(default=8192)
    price_input = _price()
    price_output = _price()
    price_cache_read = _price()
    price_cache_write_5m = _price()
    price_cache_write_1h = _price()
    price_web_search = _price(
        "USD per 1,000 web searches the provider runs (Anthropic's web search tool, "
        "OpenAI's web_search calls), on top of tokens",
        max_digits=12,
    )
    price_web_fetch = _price(
        "USD per 1,000 web fetches the provider runs, on top of tokens", max_digits=12
    )
    long_context_above = models.PositiveIntegerField(
        default=0,
        help_text="Prompts with more input tokens than this (cache reads and writes "
        "included) are billed at the long-context prices, the whole request. 0: no tier.",
    )
    price_long_input = _price()
    price_long_output = _price()
    price_long_cache_read = _price()
    price_long_cache_write_5m = _price()
    price_long_cache_write_1h = _price()
    priority_multiplier = _multiplier(
        "Every price times this when the provider reports the priority tier served the "
        "request (OpenAI and Anthropic `service_tier: priority`)"
    )
    flex_multiplier = _multiplier(
        "Every price times this when the provider reports the flex tier (OpenAI "
        "`service_tier: flex`)"
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="models")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["public_id"]

    def __str__(self) -> str:
        return self.public_id


class ModelAlias(models.Model):
    alias = models.CharField(max_length=160, unique=True)
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.alias} -> {self.model.public_id}"


class MaxTokensParam(models.TextChoices):
    AUTO = "", "Automatic"
    MAX_TOKENS = "max_tokens", "max_tokens"
    MAX_COMPLETION_TOKENS = "max_completion_tokens", "max_completion_tokens"


class Deployment(TimeStamped):
    """A model served by a provider under the upstream's own model name. Lower
    priority numbers are tried first; equal priorities share load by weight."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="deployments")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="deployments")
    upstream_model = models.CharField(max_length=200)
    priority = models.PositiveIntegerField(default=0)
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    enabled = models.BooleanField(default=True)
    max_tokens_param = models.CharField(
        max_length=24,
        blank=True,
        choices=MaxTokensParam.choices,
        help_text="The output-limit parameter this upstream takes, for OpenAI-protocol "
        "providers. Automatic: max_completion_tokens for OpenAI's reasoning models "
        "(o-series, GPT-5 and later), else the one the request used.",
    )
    max_output_tokens = models.PositiveIntegerField(
        default=0,
        help_text="The most output tokens this deployment allows; requests asking for "
        "more are clamped. 0: the model's own maximum.",
    )

    class Meta:
        ordering = ["model", "priority", "-weight"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "provider", "upstream_model"], name="deployment_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model.public_id} @ {self.provider.slug}:{self.upstream_model}"


class RouterKind(models.TextChoices):
    AUTO = "auto", "Auto: pick a tier from what the request shows"
    FAST = "fast", "Fast: hedged requests across deployments"


class Router(TimeStamped):
    """A virtual model (`tollgate/auto`, `tollgate/fast`) that routes to real models.

    auto: config {"tiers": [{"name": "fast", "model": "<id>"}, ...]} ordered from the
          fastest/cheapest to the strongest.
    fast: config {"models": ["<id>", ...], "hedge_ms": 400}: their deployments are
          raced, a second one starting when the first has not answered in hedge_ms.
    """

    public_id = models.CharField(max_length=120, unique=True)
    display_name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=RouterKind.choices)
    config = models.JSONField(
        default=dict,
        help_text='auto: {"tiers": [{"name": "fast", "model": "<id>"}, ...]} fastest first; '
        'fast: {"models": ["<id>", ...], "hedge_ms": 400}',
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="routers")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["public_id"]

    def __str__(self) -> str:
        return self.public_id


class ProviderKeyMode(models.TextChoices):
    PREFER = "prefer", "Prefer mine, fall back to managed"
    ONLY = "only", "Mine only"


class ProviderKey(TimeStamped):
    """A customer's own key for a provider (BYOK), encrypted at rest."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="provider_keys"
    )
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="+")
    secret_encrypted = models.TextField(editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    mode = models.CharField(
        max_length=10, choices=ProviderKeyMode.choices, default=ProviderKeyMode.PREFER
    )
    created_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "provider"], name="provider_key_one_per_provider"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organisation} {self.provider} …{self.last_four}"


class RequestOutcome(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"


class RequestLog(models.Model):
    """One row per proxied request, written in batches off the request path.
    Token counts follow Anthropic's split: `input_tokens` excludes cached tokens.
    Bodies are never stored here."""

    # Every index is paid for by every request (the rows are written at request rate):
    # no index that another one already covers. `request_id` is unique by constraint,
    # which on PostgreSQL spares the LIKE index `unique=True` adds; the organisation's
    # own index is the prefix of the (organisation, ...) indexes below.
    request_id = models.CharField(max_length=40)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="request_logs", db_index=False
    )
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="request_logs"
    )
    session_id = models.CharField(max_length=200, blank=True, default="")
    client_protocol = models.CharField(max_length=10, choices=Protocol.choices)
    requested_model = models.CharField(max_length=200)
    resolved_model = models.CharField(max_length=120, blank=True, default="")
    provider = models.CharField(max_length=50, blank=True, default="")
    deployment = models.ForeignKey(
        Deployment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    upstream_model = models.CharField(max_length=200, blank=True, default="")
    stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=10, choices=RequestOutcome.choices)
    error_type = models.CharField(max_length=60, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(default=0)
    ttfb_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_5m_tokens = models.PositiveIntegerField(default=0)
    cache_write_1h_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    web_search_calls = models.PositiveIntegerField(default=0)
    web_fetch_calls = models.PositiveIntegerField(default=0)
    service_tier = models.CharField(
        max_length=20, blank=True, default="", help_text="As the provider reported it"
    )
    usage_estimated = models.BooleanField(
        default=False, help_text="Tokens estimated (the upstream did not report usage)"
    )
    cost_nano = models.BigIntegerField(default=0, help_text="Charged cost, nano-USD")
    byok = models.BooleanField(default=False)
    attempts = models.JSONField(default=list, blank=True)
    route_reason = models.CharField(max_length=200, blank=True, default="")
    dropped_tools = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Tools left out because the serving upstream cannot run them",
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["request_id"], name="reqlog_request_id_unique"),
        ]
        indexes = [
            models.Index(fields=["organisation", "-started_at"], name="reqlog_org_time"),
            models.Index(fields=["organisation", "api_key", "-started_at"], name="reqlog_org_key"),
            models.Index(
                fields=["organisation", "session_id", "-started_at"], name="reqlog_org_session"
            ),
            models.Index(
                fields=["organisation", "resolved_model", "-started_at"], name="reqlog_org_model"
            ),
            # Console filters (provider, BYOK, status class), newest first within each.
            models.Index(
                fields=["organisation", "provider", "-started_at"], name="reqlog_org_provider"
            ),
            models.Index(fields=["organisation", "byok", "-started_at"], name="reqlog_org_byok"),
            models.Index(
                fields=["organisation", "status_code", "-started_at"], name="reqlog_org_status"
            ),
            # Daily roll-ups read one day of every organisation at once.
            models.Index(fields=["started_at"], name="reqlog_time"),
        ]

    def __str__(self) -> str:
        return self.request_id

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        """Every input token, cached or not (OpenAI's prompt_tokens)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


class DailyRollup(models.Model):
    """Usage summed per organisation, API key, resolved model and UTC day, computed from
    the request log by `gateway.rollups` (a day is recomputed whole, so late rows are
    picked up). Dashboards read these for complete days and the raw log only for today.

    `model` is the resolved model id ("" when a request failed before one was chosen).
    `api_key` is null for requests whose key is gone from the log row. Keys are revoked,
    never deleted: RESTRICT refuses to delete a key that has roll-ups (its spend history
    would vanish) but lets an organisation's deletion cascade to both.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.RESTRICT, null=True, blank=True, related_name="+"
    )
    model = models.CharField(max_length=120, blank=True, default="")
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_5m_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_1h_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cost_nano = models.BigIntegerField(default=0, help_text="Charged cost, nano-USD")
    byok_requests = models.PositiveIntegerField(default=0)
    byok_cost_nano = models.BigIntegerField(default=0, help_text="BYOK fees, nano-USD")
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Two partial constraints rather than one, because NULLs are distinct in a
            # plain unique constraint (and SQLite has no NULLS NOT DISTINCT).
            models.UniqueConstraint(
                fields=["organisation", "api_key", "model", "day"],
                condition=models.Q(api_key__isnull=False),
                name="rollup_unique_key",
            ),
            models.UniqueConstraint(
                fields=["organisation", "model", "day"],
                condition=models.Q(api_key__isnull=True),
                name="rollup_unique_keyless",
            ),
        ]
        indexes = [
            models.Index(fields=["organisation", "day"], name="rollup_org_day"),
            models.Index(fields=["day"], name="rollup_day"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.day} {self.model} key={self.api_key_id}"
