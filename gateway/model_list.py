"""`GET /v1/models` and `GET /v1/models/{id}`: what a key can use, in the caller's shape.

By default the list holds only what the key can call right now: models of its group
with at least one enabled deployment that has credentials (the operator's managed key,
or the organisation's own provider key), and routers with such a member. Options, as
query parameters (or `X-Tollgate-Models-*` headers, for clients such as Roo Code that
take a base URL and custom headers but no query):

    all=true       also the group's models that cannot be served now, marked
                   "available": false (a console for the curious, not for pickers)
    aliases=true   also every alias as an entry of its own, with "alias_of" naming the
                   canonical id, so pickers offer the vendor ids agents recognise
                   (claude-sonnet-4-6, claude-haiku-4-5-20251001)

With `anthropic-version` the answer is Anthropic's shape, paged by `limit` (1-1000,
default 20), `after_id` and `before_id` as Anthropic pages it; otherwise OpenAI's
`{"object": "list", "data": [...]}`, unpaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from gateway.catalog import CatalogSnapshot, ModelEntry, RouterEntry
from gateway.protocols.errors import GatewayError

Entry = ModelEntry | RouterEntry
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class ListOptions:
    all: bool = False
    aliases: bool = False
    limit: int | None = None  # Anthropic paging
    after_id: str | None = None
    before_id: str | None = None

    @classmethod
    def parse(cls, query: str, headers: dict[str, str]) -> ListOptions:
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}

        def flag(name: str) -> bool:
            value = params.get(name) or headers.get(f"x-tollgate-models-{name}") or ""
            return value.strip().lower() in _TRUE

        limit = params.get("limit")
        if limit is not None:
            if not limit.isdigit() or not 1 <= int(limit) <= 1000:
                raise GatewayError(
                    400, "`limit` must be a whole number from 1 to 1000.", param="limit"
                )
        return cls(
            all=flag("all"),
            aliases=flag("aliases"),
            limit=int(limit) if limit is not None else None,
            after_id=params.get("after_id") or None,
            before_id=params.get("before_id") or None,
        )


def model_servable(entry: ModelEntry, byok_provider_ids: set[int] | dict[int, Any]) -> bool:
    """Whether some enabled deployment of the model has credentials for this
    organisation: the managed key, or its own key for that provider."""
    return any(
        d.provider.id in byok_provider_ids or d.provider.managed_key() for d in entry.deployments
    )


def _servable(entry: Entry, byok: dict[int, Any]) -> bool:
    if isinstance(entry, RouterEntry):
        return any(model_servable(m, byok) for m in entry.models)
    return model_servable(entry, byok)


def models_body(
    snapshot: CatalogSnapshot,
    group_id: int,
    byok: dict[int, Any],
    options: ListOptions,
    *,
    anthropic: bool,
) -> dict[str, Any]:
    entries: list[Entry] = [
        *snapshot.routers_for_group(group_id),
        *snapshot.models_for_group(group_id),
    ]
    rows: list[dict[str, Any]] = []
    for entry in entries:
        available = _servable(entry, byok)
        if not available and not options.all:
            continue
        row = anthropic_model(entry) if anthropic else openai_model(entry)
        if options.all:
            row["available"] = available
        rows.append(row)
        if options.aliases and isinstance(entry, ModelEntry):
            for alias in entry.aliases:
                rows.append({**row, "id": alias, "alias_of": entry.public_id})
    if not anthropic:
        return {"object": "list", "data": rows}
    return _anthropic_page(rows, options)


def _anthropic_page(rows: list[dict[str, Any]], options: ListOptions) -> dict[str, Any]:
    ids = [row["id"] for row in rows]
    start, end = 0, len(rows)
    for name, cursor in (("after_id", options.after_id), ("before_id", options.before_id)):
        if cursor is not None and cursor not in ids:
            raise GatewayError(404, f"`{name}` names no model in this list.", param=name)
    if options.after_id is not None:
        start = ids.index(options.after_id) + 1
    if options.before_id is not None:
        end = ids.index(options.before_id)
    limit = options.limit or 20
    if options.before_id is not None and options.after_id is None:
        page = rows[max(start, end - limit) : end]
        has_more = end - limit > start
    else:
        page = rows[start : min(end, start + limit)]
        has_more = start + limit < end
    return {
        "data": page,
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


def model_body(
    snapshot: CatalogSnapshot, group_id: int, name: str, *, anthropic: bool
) -> dict[str, Any]:
    entry: Entry | None = snapshot.resolve(name) or snapshot.resolve_router(name)
    if entry is None or group_id not in entry.group_ids:
        raise GatewayError(
            404,
            f"The model '{name}' does not exist or is not available to this key.",
            code="model_not_found",
            param="model",
        )
    return anthropic_model(entry) if anthropic else openai_model(entry)


def openai_model(m: Entry) -> dict[str, Any]:
    if isinstance(m, RouterEntry):
        return {
            "id": m.public_id,
            "object": "model",
            "created": m.created,
            "owned_by": "tollgate",
            "name": m.display_name,
            "router": m.kind,
            "models": [x.public_id for x in m.models],
        }
    return {
        "id": m.public_id,
        "object": "model",
        "created": m.created,
        "owned_by": m.deployments[0].provider.slug if m.deployments else "tollgate",
        "name": m.display_name,
        "context_length": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "pricing": {"unit": "USD per million tokens", **m.price_usd},
    }


def anthropic_model(m: Entry) -> dict[str, Any]:
    """Anthropic's ModelInfo. Capabilities and the model line are Anthropic's own
    knowledge, not the catalog's: null, as the API allows."""
    created = datetime.fromtimestamp(m.created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    model = m if isinstance(m, ModelEntry) else None
    return {
        "type": "model",
        "id": m.public_id,
        "display_name": m.display_name,
        "created_at": created,
        "capabilities": None,
        "deprecated_at": None,
        "lifecycle": "active",
        "line": None,
        "max_input_tokens": model.context_window if model else None,
        "max_tokens": model.max_output_tokens if model else None,
        "retires_at": None,
    }
