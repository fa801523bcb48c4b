"""`manage.py catalog load`: idempotent, reports what changed, rejects bad files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from gateway.catalog import catalog_snapshot_load
from gateway.models import Deployment, Model

DATA = Path(settings.BASE_DIR) / "gateway" / "catalog_data"


def load(path) -> str:
    out = io.StringIO()
    call_command("catalog", "load", str(path), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_shipped_catalogs_load_and_reload_unchanged():
    first = load(DATA / "default.yaml")
    assert "created model" in first
    assert "already up to date" in load(DATA / "default.yaml")
    load(DATA / "demo.yaml")
    snapshot = catalog_snapshot_load()
    assert snapshot.resolve("demo-gpt") is not None
    assert snapshot.resolve_router("tollgate/auto") is not None
    for model in snapshot.models.values():
        assert model.prices.output >= 0


@pytest.mark.django_db
def test_it_reports_changes_and_aliases_resolve(tmp_path):
    catalog = {
        "groups": [{"slug": "default"}],
        "providers": [
            {
                "slug": "acme",
                "protocol": "anthropic",
                "base_url": "https://api.acme.test/v1",
                "api_key_env": "ACME_KEY",
            }
        ],
        "models": [
            {
                "id": "claude-x-4.6",
                "prices": {"input": "3", "output": "15"},
                "aliases": ["claude-x-4-6-20260101"],
                "groups": ["default"],
                "deployments": [{"provider": "acme", "upstream_model": "claude-x-4-6"}],
            }
        ],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(catalog))
    load(path)
    catalog["models"][0]["prices"]["input"] = "2.5"
    path.write_text(json.dumps(catalog))
    report = load(path)
    assert "price_input Decimal('3.000000') -> Decimal('2.5')" in report
    snapshot = catalog_snapshot_load()
    for name in (
        "claude-x-4.6",
        "claude-x-4-6",
        "CLAUDE-X-4.6",
        "claude-x-4-6-20260101",
        "acme/claude-x-4.6",
        "acme/claude-x-4-6",
    ):
        assert snapshot.resolve(name).public_id == "claude-x-4.6", name
    assert snapshot.suggestions("claude-x-4.7") == ["claude-x-4.6"]
    assert Deployment.objects.get().upstream_model == "claude-x-4-6"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad, message",
    [
        ({"models": [{"id": "m", "prices": {"input": "abc"}}]}, "models[0].prices.input"),
        ({"models": [{"id": "m", "prices": {"input": "0.0000001"}}]}, "6 decimal places"),
        ({"providers": [{"slug": "p", "protocol": "grpc", "base_url": "http://x"}]}, "protocol"),
        ({"models": [{"id": "m", "deployments": [{"provider": "nope"}]}]}, "unknown provider"),
    ],
)
def test_bad_files_are_refused_with_the_place_of_the_error(tmp_path, bad, message):
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(bad))
    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(path)
    assert not Model.objects.filter(public_id="m").exists()  # nothing half-loaded


@pytest.mark.django_db
def test_server_tool_and_long_context_prices_load_into_the_snapshot():
    load(DATA / "default.yaml")
    snapshot = catalog_snapshot_load()

    haiku = snapshot.resolve("claude-haiku-5.5")
    assert haiku is not None and haiku.prices.long is not None
    assert haiku.prices.long_above == 100_000
    assert haiku.prices.long.input == 5 * haiku.prices.input  # 5x, the whole request
    assert haiku.prices.web_search == 10 * 10**9  # $10 per 1,000 = 10^10 pico per call
    assert haiku.price_usd["web_search_per_1000"] == "10"
    assert haiku.price_usd["long_context_above"] == "100000"
    gemini = snapshot.resolve("gemini-3.8-flash")
    assert gemini is not None and gemini.prices.long is None
