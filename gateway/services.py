"""Writes for the gateway: loading a catalog file into the database."""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.db import models, transaction

from accounts.models import Group
from gateway.models import (
    Deployment,
    MaxTokensParam,
    Model,
    ModelAlias,
    Protocol,
    Provider,
    Router,
    RouterKind,
)

PRICE_FIELDS = {
    "input": "price_input",
    "output": "price_output",
    "cache_read": "price_cache_read",
    "cache_write_5m": "price_cache_write_5m",
    "cache_write_1h": "price_cache_write_1h",
    "web_search": "price_web_search",  # USD per 1,000 calls, like the vendors' pages
    "web_fetch": "price_web_fetch",
}


# Prices of a model's long-context tier: the whole request, once its prompt is above
# `long_context.above` input tokens.
LONG_PRICE_FIELDS = {
    "input": "price_long_input",
    "output": "price_long_output",
    "cache_read": "price_long_cache_read",
    "cache_write_5m": "price_long_cache_write_5m",
    "cache_write_1h": "price_long_cache_write_1h",
}


class CatalogError(ValueError):
    pass


@dataclass
class CatalogChanges:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    @property
    def changed(self) -> bool:
        return bool(self.lines)


def catalog_file_read(path: str | Path) -> dict[str, Any]:
    """YAML or JSON (JSON is YAML), with ${VAR} taken from the environment or settings."""
    text = Path(path).read_text()
    variables = {"TOLLGATE_DEMO_UPSTREAM_URL": settings.TOLLGATE_DEMO_UPSTREAM_URL}
    variables.update(os.environ)
    text = string.Template(text).safe_substitute(variables)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: the top level must be a mapping")
    return data


def _sync(obj: models.Model, values: dict[str, Any], label: str, changes: CatalogChanges) -> bool:
    diffs = []
    for name, value in values.items():
        old = getattr(obj, name)
        if old != value:
            diffs.append(f"{name} {old!r} -> {value!r}")
            setattr(obj, name, value)
    if diffs:
        changes.add(f"updated {label}: " + ", ".join(diffs))
    return bool(diffs)


def _decimal(value: Any, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise CatalogError(f"{where}: {value!r} is not a number") from None
    if result < 0 or result.as_tuple().exponent < -6:  # type: ignore[operator]
        raise CatalogError(f"{where}: prices must be >= 0 with at most 6 decimal places")
    return result


def _require(item: dict[str, Any], key: str, where: str) -> Any:
    if key not in item or item[key] in (None, ""):
        raise CatalogError(f"{where}: '{key}' is required")
    return item[key]


@transaction.atomic
def catalog_load(*, data: dict[str, Any]) -> CatalogChanges:
    """Create or update what the file lists; idempotent. A listed model's aliases,
    groups and deployments become exactly what the file says; things the file does not
    mention are left alone."""
    from gateway.encryption import secret_encrypt

    changes = CatalogChanges()
    groups: dict[str, Group] = {g.slug: g for g in Group.objects.all()}
    for i, item in enumerate(data.get("groups") or []):
        where = f"groups[{i}]"
        slug = _require(item, "slug", where)
        group = groups.get(slug)
        values = {
            "name": item.get("name", slug.title()),
            "description": item.get("description", ""),
        }
        if group is None:
            group = groups[slug] = Group.objects.create(slug=slug, **values)
            changes.add(f"created group {slug}")
        elif _sync(group, values, f"group {slug}", changes):
            group.save()

    providers: dict[str, Provider] = {p.slug: p for p in Provider.objects.all()}
    for i, item in enumerate(data.get("providers") or []):
        where = f"providers[{i}]"
        slug = _require(item, "slug", where)
        protocol = _require(item, "protocol", where)
        if protocol not in Protocol.values:
            raise CatalogError(f"{where}: protocol must be one of {Protocol.values}")
        values = {
            "name": item.get("name", slug),
            "protocol": protocol,
            "base_url": str(_require(item, "base_url", where)).rstrip("/"),
            "api_key_env": item.get("api_key_env", ""),
            "extra_headers": item.get("extra_headers") or {},
            "speaks_responses": bool(item.get("responses", False)),
        }
        provider = providers.get(slug)
        if provider is None:
            provider = providers[slug] = Provider(slug=slug, **values)
            changes.add(f"created provider {slug}")
        else:
            _sync(provider, values, f"provider {slug}", changes)
        plaintext = item.get("api_key")
        if plaintext and provider.api_key_last_four != str(plaintext)[-4:]:
            provider.api_key_encrypted = secret_encrypt(str(plaintext))
            provider.api_key_last_four = str(plaintext)[-4:]
            changes.add(f"set managed key of provider {slug}")
        provider.full_clean()
        provider.save()

    for i, item in enumerate(data.get("models") or []):
        _model_load(item, f"models[{i}]", groups, providers, changes)
    for i, item in enumerate(data.get("routers") or []):
        _router_load(item, f"routers[{i}]", groups, changes)
    return changes


def _router_load(
    item: dict[str, Any], where: str, groups: dict[str, Group], changes: CatalogChanges
) -> None:
    public_id = str(_require(item, "id", where))
    kind = _require(item, "kind", where)
    if kind not in RouterKind.values:
        raise CatalogError(f"{where}: kind must be one of {RouterKind.values}")
    if kind == "auto":
        tiers = item.get("tiers") or []
        if not tiers or not all(isinstance(t, dict) and t.get("model") for t in tiers):
            raise CatalogError(f"{where}: auto needs tiers: [{{name, model}}, ...]")
        config: dict[str, Any] = {
            "tiers": [
                {"name": str(t.get("name") or t["model"]), "model": str(t["model"])} for t in tiers
            ]
        }
        members = [t["model"] for t in config["tiers"]]
    else:
        members = [str(m) for m in item.get("models") or []]
        if not members:
            raise CatalogError(f"{where}: fast needs models: [id, ...]")
        config = {"models": members}
        if item.get("hedge_ms") is not None:
            config["hedge_ms"] = int(item["hedge_ms"])
    known = set(Model.objects.filter(public_id__in=members).values_list("public_id", flat=True))
    missing = [m for m in members if m not in known]
    if missing:
        raise CatalogError(f"{where}: unknown models {', '.join(missing)}")
    values = {"display_name": item.get("name", public_id), "kind": kind, "config": config}
    router = Router.objects.filter(public_id=public_id).first()
    if router is None:
        router = Router.objects.create(public_id=public_id, **values)
        changes.add(f"created router {public_id}")
    elif _sync(router, values, f"router {public_id}", changes):
        router.save()
    wanted = set()
    for slug in item.get("groups") or []:
        if slug not in groups:
            raise CatalogError(f"{where}: unknown group {slug}")
        wanted.add(groups[slug].pk)
    if wanted != set(router.groups.values_list("pk", flat=True)):
        router.groups.set(wanted)
        changes.add(f"set groups of {public_id}")


def _model_load(
    item: dict[str, Any],
    where: str,
    groups: dict[str, Group],
    providers: dict[str, Provider],
    changes: CatalogChanges,
) -> None:
    public_id = str(_require(item, "id", where))
    prices = item.get("prices") or {}
    values: dict[str, Any] = {
        "display_name": item.get("name", public_id),
        "description": item.get("description", ""),
        "context_window": int(item.get("context_window", 128_000)),
        "max_output_tokens": int(item.get("max_output_tokens", 8192)),
    }
    for key, field_name in PRICE_FIELDS.items():
        values[field_name] = _decimal(prices.get(key, 0), f"{where}.prices.{key}")
    long = item.get("long_context") or {}
    if not isinstance(long, dict):
        raise CatalogError(f"{where}.long_context: expected {{above: N, prices: {{...}}}}")
    values["long_context_above"] = int(long.get("above", 0))
    tiers = item.get("service_tiers") or {}
    if not isinstance(tiers, dict) or set(tiers) - {"priority", "flex"}:
        raise CatalogError(f"{where}.service_tiers: expected {{priority: N, flex: N}}")
    values["priority_multiplier"] = _decimal(tiers.get("priority", 1), f"{where}.service_tiers")
    values["flex_multiplier"] = _decimal(tiers.get("flex", 1), f"{where}.service_tiers")
    long_prices = long.get("prices") or {}
    for key, field_name in LONG_PRICE_FIELDS.items():
        values[field_name] = _decimal(long_prices.get(key, 0), f"{where}.long_context.prices.{key}")
    model = Model.objects.filter(public_id=public_id).first()
    if model is None:
        model = Model(public_id=public_id, **values)
        model.full_clean()
        model.save()
        changes.add(f"created model {public_id}")
    elif _sync(model, values, f"model {public_id}", changes):
        model.full_clean()
        model.save()

    wanted_aliases = {str(a) for a in item.get("aliases") or []} - {public_id}
    current = {a.alias: a for a in model.aliases.all()}
    for alias in sorted(wanted_aliases - set(current)):
        other = ModelAlias.objects.filter(alias=alias).exclude(model=model).first()
        if other is not None:
            raise CatalogError(f"{where}: alias {alias} already names {other.model.public_id}")
        ModelAlias.objects.create(alias=alias, model=model)
        changes.add(f"added alias {alias} -> {public_id}")
    for alias in sorted(set(current) - wanted_aliases):
        current[alias].delete()
        changes.add(f"removed alias {alias} of {public_id}")

    wanted_groups = set()
    for slug in item.get("groups") or []:
        if slug not in groups:
            raise CatalogError(f"{where}: unknown group {slug}")
        wanted_groups.add(groups[slug].pk)
    have_groups = set(model.groups.values_list("pk", flat=True))
    if wanted_groups != have_groups:
        model.groups.set(wanted_groups)
        names = sorted(g.slug for g in groups.values() if g.pk in wanted_groups)
        changes.add(f"set groups of {public_id}: {', '.join(names) or '(none)'}")

    seen = set()
    for j, dep in enumerate(item.get("deployments") or []):
        dwhere = f"{where}.deployments[{j}]"
        slug = _require(dep, "provider", dwhere)
        if slug not in providers:
            raise CatalogError(f"{dwhere}: unknown provider {slug}")
        provider = providers[slug]
        upstream_model = str(dep.get("upstream_model") or public_id)
        dvalues = {
            "priority": int(dep.get("priority", j)),
            "weight": int(dep.get("weight", 1)),
            "enabled": bool(dep.get("enabled", True)),
            "max_tokens_param": str(dep.get("max_tokens_param") or ""),
            "max_output_tokens": int(dep.get("max_output_tokens") or 0),
        }
        if dvalues["max_tokens_param"] not in MaxTokensParam.values:
            raise CatalogError(
                f"{dwhere}: max_tokens_param must be max_tokens or max_completion_tokens"
            )
        deployment = Deployment.objects.filter(
            model=model, provider=provider, upstream_model=upstream_model
        ).first()
        label = f"deployment {public_id}@{slug}:{upstream_model}"
        if deployment is None:
            deployment = Deployment.objects.create(
                model=model, provider=provider, upstream_model=upstream_model, **dvalues
            )
            changes.add(f"created {label}")
        elif _sync(deployment, dvalues, label, changes):
            deployment.save()
        seen.add(deployment.pk)
    for stale in model.deployments.exclude(pk__in=seen).select_related("provider"):
        changes.add(f"removed deployment {public_id}@{stale.provider.slug}:{stale.upstream_model}")
        stale.delete()
