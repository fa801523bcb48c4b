"""The catalog snapshot: an immutable in-memory copy of providers, models, aliases,
deployments and group access, so the hot path resolves a model without a query.

`catalog_snapshot_load()` reads the database (sync; run it off the event loop) and
returns a new snapshot; the runtime swaps it in when the catalog changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import time
from dataclasses import dataclass, field
from decimal import Decimal

from gateway.models import Deployment, Model, ModelAlias, Provider, Router
from gateway.pricing import TokenPrices


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    id: int
    slug: str
    protocol: str
    base_url: str
    api_key_env: str
    api_key_encrypted: str
    extra_headers: tuple[tuple[str, str], ...]
    wires: tuple[str, ...]  # the upstream wires it speaks (gateway.protocols.registry)

    def managed_key(self) -> str | None:
        """The operator's key for this provider: the named environment variable wins,
        then the encrypted stored key. None if neither is set."""
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if value:
                return value
        if self.api_key_encrypted:
            return _decrypt_cached(self.api_key_encrypted)
        return None


_decrypted: dict[str, str] = {}


def _decrypt_cached(token: str) -> str:
    value = _decrypted.get(token)
    if value is None:
        from gateway.encryption import secret_decrypt

        value = _decrypted[token] = secret_decrypt(token)
    return value


@dataclass(frozen=True, slots=True)
class DeploymentEntry:
    id: int
    provider: ProviderEntry
    upstream_model: str
    priority: int
    weight: int
    max_tokens_param: str = ""  # "" automatic, max_tokens, max_completion_tokens
    max_output_tokens: int = 0  # 0: the model's


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: int
    public_id: str
    display_name: str
    context_window: int
    max_output_tokens: int
    prices: TokenPrices
    price_usd: dict[str, str]  # as configured, for /v1/models and the console
    group_ids: frozenset[int]
    deployments: tuple[DeploymentEntry, ...]
    created: int
    aliases: tuple[str, ...] = ()  # explicit aliases, as the catalog spells them


@dataclass(frozen=True, slots=True)
class RouterEntry:
    """A virtual model; `models` are its members in order (auto: fastest tier first),
    `names` the tier names (auto) aligned with `models`."""

    public_id: str
    display_name: str
    kind: str
    models: tuple[ModelEntry, ...]
    names: tuple[str, ...]
    hedge_ms: int | None
    group_ids: frozenset[int]
    created: int


@dataclass
class CatalogSnapshot:
    models: dict[str, ModelEntry] = field(default_factory=dict)  # by public id
    names: dict[str, ModelEntry] = field(default_factory=dict)  # lower-cased names/aliases
    routers: dict[str, RouterEntry] = field(default_factory=dict)  # lower-cased ids
    loaded_at: float = 0.0

    def resolve_router(self, name: str) -> RouterEntry | None:
        return self.routers.get(name.strip().lower())

    def resolve(self, name: str) -> ModelEntry | None:
        return self.names.get(name.strip().lower())

    def suggestions(self, name: str, *, group_id: int | None = None, limit: int = 3) -> list[str]:
        entries: tuple[ModelEntry | RouterEntry, ...] = (
            *self.models.values(),
            *self.routers.values(),
        )
        candidates = [m.public_id for m in entries if group_id is None or group_id in m.group_ids]
        return difflib.get_close_matches(name.strip().lower(), candidates, n=limit, cutoff=0.5)

    def models_for_group(self, group_id: int) -> list[ModelEntry]:
        return sorted(
            (m for m in self.models.values() if group_id in m.group_ids),
            key=lambda m: m.public_id,
        )

    def routers_for_group(self, group_id: int) -> list[RouterEntry]:
        return sorted(
            (r for r in self.routers.values() if group_id in r.group_ids and r.models),
            key=lambda r: r.public_id,
        )


def _derived_names(public_id: str, provider_slugs: set[str]) -> set[str]:
    """Spellings users type that need no explicit alias: the hyphen form of a dotted
    version (claude-sonnet-4.6 -> claude-sonnet-4-6) and provider/model forms."""
    base = {public_id, public_id.replace(".", "-")}
    names = set(base)
    for slug in provider_slugs:
        names.update(f"{slug}/{n}" for n in base)
    return {n.lower() for n in names}


def _prices(m: Model) -> TokenPrices:
    def tier(
        input: Decimal, output: Decimal, read: Decimal, w5m: Decimal, w1h: Decimal
    ) -> TokenPrices:
        return TokenPrices.from_usd_per_million(
            input=input,
            output=output,
            cache_read=read,
            cache_write_5m=w5m,
            cache_write_1h=w1h,
            web_search=m.price_web_search,
            web_fetch=m.price_web_fetch,
        )

    base = tier(
        m.price_input,
        m.price_output,
        m.price_cache_read,
        m.price_cache_write_5m,
        m.price_cache_write_1h,
    )
    tiers = tuple(
        (name, int(multiplier * 10_000))
        for name, multiplier in (("priority", m.priority_multiplier), ("flex", m.flex_multiplier))
        if multiplier != 1
    )
    if tiers:
        base = dataclasses.replace(base, tiers=tiers)
    if not m.long_context_above:
        return base
    long = tier(
        m.price_long_input,
        m.price_long_output,
        m.price_long_cache_read,
        m.price_long_cache_write_5m,
        m.price_long_cache_write_1h,
    )
    return dataclasses.replace(base, long_above=m.long_context_above, long=long)


def _plain(price: Decimal) -> str:
    """A price as plain digits: "10", "0.3" (never Decimal's "1E+1")."""
    return format(price.normalize(), "f")


def catalog_snapshot_load() -> CatalogSnapshot:
    providers = {
        p.id: ProviderEntry(
            id=p.id,
            slug=p.slug,
            protocol=p.protocol,
            base_url=p.base_url.rstrip("/"),
            api_key_env=p.api_key_env,
            api_key_encrypted=p.api_key_encrypted,
            extra_headers=tuple(sorted((str(k), str(v)) for k, v in p.extra_headers.items())),
            wires=(p.protocol, "responses")
            if p.speaks_responses and p.protocol != "responses"
            else (p.protocol,),
        )
        for p in Provider.objects.filter(enabled=True)
    }
    deployments: dict[int, list[DeploymentEntry]] = {}
    for d in Deployment.objects.filter(enabled=True).order_by("priority", "-weight", "id"):
        provider = providers.get(d.provider_id)
        if provider is None:
            continue
        deployments.setdefault(d.model_id, []).append(
            DeploymentEntry(
                id=d.id,
                provider=provider,
                upstream_model=d.upstream_model,
                priority=d.priority,
                weight=d.weight,
                max_tokens_param=d.max_tokens_param,
                max_output_tokens=d.max_output_tokens,
            )
        )
    group_ids: dict[int, set[int]] = {}
    for model_id, group_id in Model.groups.through.objects.values_list("model_id", "group_id"):
        group_ids.setdefault(model_id, set()).add(group_id)

    aliases: dict[int, list[str]] = {}
    for alias, model_id in ModelAlias.objects.order_by("alias").values_list("alias", "model_id"):
        aliases.setdefault(model_id, []).append(alias)

    snapshot = CatalogSnapshot(loaded_at=time.monotonic())
    for m in Model.objects.filter(enabled=True):
        entry = ModelEntry(
            id=m.id,
            public_id=m.public_id,
            display_name=m.display_name,
            context_window=m.context_window,
            max_output_tokens=m.max_output_tokens,
            prices=_prices(m),
            price_usd={
                "input": _plain(m.price_input),
                "output": _plain(m.price_output),
                "cache_read": _plain(m.price_cache_read),
                "cache_write_5m": _plain(m.price_cache_write_5m),
                "cache_write_1h": _plain(m.price_cache_write_1h),
                "web_search_per_1000": _plain(m.price_web_search),
                "web_fetch_per_1000": _plain(m.price_web_fetch),
                **(
                    {"priority_multiplier": _plain(m.priority_multiplier)}
                    if m.priority_multiplier != 1
                    else {}
                ),
                **(
                    {"flex_multiplier": _plain(m.flex_multiplier)} if m.flex_multiplier != 1 else {}
                ),
                **(
                    {
                        "long_context_above": str(m.long_context_above),
                        "long_input": _plain(m.price_long_input),
                        "long_output": _plain(m.price_long_output),
                        "long_cache_read": _plain(m.price_long_cache_read),
                        "long_cache_write_5m": _plain(m.price_long_cache_write_5m),
                        "long_cache_write_1h": _plain(m.price_long_cache_write_1h),
                    }
                    if m.long_context_above
                    else {}
                ),
            },
            group_ids=frozenset(group_ids.get(m.id, ())),
            deployments=tuple(deployments.get(m.id, ())),
            created=int(m.created_at.timestamp()),
            aliases=tuple(aliases.get(m.id, ())),
        )
        snapshot.models[m.public_id] = entry
    # Explicit names first (public ids, then aliases), derived spellings only where free.
    for entry in snapshot.models.values():
        snapshot.names[entry.public_id.lower()] = entry
    by_id = {e.id: e for e in snapshot.models.values()}
    for model_id, names in aliases.items():
        for alias in names:
            if model_id in by_id:
                snapshot.names.setdefault(alias.lower(), by_id[model_id])
    for entry in snapshot.models.values():
        slugs = {d.provider.slug for d in entry.deployments}
        for name in _derived_names(entry.public_id, slugs):
            snapshot.names.setdefault(name, entry)
    router_groups: dict[int, set[int]] = {}
    for router_id, group_id in Router.groups.through.objects.values_list("router_id", "group_id"):
        router_groups.setdefault(router_id, set()).add(group_id)
    for r in Router.objects.filter(enabled=True):
        config = r.config or {}
        members = (
            config.get("tiers")
            if r.kind == "auto"
            else [{"model": m} for m in config.get("models") or []]
        )
        named = [
            (str(t.get("name") or t["model"]), snapshot.resolve(str(t["model"])))
            for t in members or []
            if isinstance(t, dict) and t.get("model")
        ]
        resolved = [(n, m) for n, m in named if m is not None]
        hedge = config.get("hedge_ms")
        snapshot.routers[r.public_id.lower()] = RouterEntry(
            public_id=r.public_id,
            display_name=r.display_name,
            kind=r.kind,
            models=tuple(m for _, m in resolved),
            names=tuple(n for n, _ in resolved),
            hedge_ms=int(hedge) if isinstance(hedge, int | float) else None,
            group_ids=frozenset(router_groups.get(r.id, ())),
            created=int(r.created_at.timestamp()),
        )
    return snapshot
