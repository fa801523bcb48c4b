"""GET /api/v1/requests/{id}: a request's record, to its own organisation only."""

from __future__ import annotations

import httpx
import openai
import pytest
from django.test import Client

from accounts.services import api_key_create
from testkit.tenants import PASSWORD, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(world):
    raw = openai.OpenAI(
        base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
    ).chat.completions.with_raw_response.create(
        model="test-gpt-5.5",
        messages=[{"role": "user", "content": "log me"}],
        extra_headers={"x-tollgate-session-id": "task-7"},
    )
    world.drain()
    return world, raw.headers["x-tollgate-request-id"], raw.headers["x-tollgate-cost-usd"]


def test_any_key_of_the_organisation_reads_the_record(served):
    world, request_id, cost = served
    other = api_key_create(organisation=world.organisation, name="reader").secret
    for headers in ({"authorization": f"Bearer {other}"}, {"x-api-key": world.secret}):
        response = httpx.get(f"{world.url}/api/v1/requests/{request_id}", headers=headers)
        assert response.status_code == 200
        record = response.json()
        assert record["request_id"] == request_id
        assert record["cost_usd"] == cost
        assert record["session_id"] == "task-7"
        assert record["resolved_model"] == "test-gpt-5.5"
        assert record["attempts"][0]["status"] == 200
        assert world.secret not in response.text


def test_a_console_session_reads_it_too(served):
    world, request_id, _ = served
    client = Client()
    client.login(email=world.tenant.member.email, password=PASSWORD)
    assert client.get(f"/api/v1/requests/{request_id}").status_code == 200
    assert client.get("/api/v1/requests?session_id=task-7").json()[0]["request_id"] == request_id


def test_another_organisation_gets_404(served):
    world, request_id, _ = served
    outsider = make_tenant("globex")
    key = api_key_create(organisation=outsider.organisation, name="x").secret
    response = httpx.get(
        f"{world.url}/api/v1/requests/{request_id}", headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 404
    client = Client()
    client.login(email=outsider.owner.email, password=PASSWORD)
    assert client.get(f"/api/v1/requests/{request_id}").status_code == 404
    assert client.get("/api/v1/requests").json() == []


def test_no_credentials_is_401(served):
    world, request_id, _ = served
    assert httpx.get(f"{world.url}/api/v1/requests/{request_id}").status_code == 401
    bad = httpx.get(
        f"{world.url}/api/v1/requests/{request_id}", headers={"authorization": "Bearer sk-tg-wrong"}
    )
    assert bad.status_code == 401


def test_the_openapi_docs_are_served(live_url):
    assert httpx.get(f"{live_url}/api/docs").status_code == 200
    schema = httpx.get(f"{live_url}/api/openapi.json").json()
    assert "/api/v1/requests/{request_id}" in schema["paths"]


def test_a_key_of_a_suspended_organisation_is_refused_as_by_the_proxy(served):
    """The API and the proxy share one key check: a suspended organisation's key gets
    the proxy's 403, and its records are not served."""
    world, request_id, _ = served
    world.organisation.is_active = False
    world.organisation.save(update_fields=["is_active"])
    for headers in ({"authorization": f"Bearer {world.secret}"}, {"x-api-key": world.secret}):
        response = httpx.get(f"{world.url}/api/v1/requests/{request_id}", headers=headers)
        assert response.status_code == 403
        assert "suspended" in response.text
        listing = httpx.get(f"{world.url}/api/v1/requests", headers=headers)
        assert listing.status_code == 403


def test_a_member_of_a_suspended_organisation_reads_nothing(served):
    world, request_id, _ = served
    world.organisation.is_active = False
    world.organisation.save(update_fields=["is_active"])
    client = Client()
    client.login(email=world.tenant.member.email, password=PASSWORD)
    assert client.get(f"/api/v1/requests/{request_id}").status_code == 404
    assert client.get("/api/v1/requests").json() == []


def test_a_revoked_key_is_refused(served):
    from accounts.models import ApiKey
    from accounts.services import api_key_revoke

    world, request_id, _ = served
    api_key_revoke(api_key=ApiKey.objects.get(organisation=world.organisation))
    response = httpx.get(
        f"{world.url}/api/v1/requests/{request_id}",
        headers={"authorization": f"Bearer {world.secret}"},
    )
    assert response.status_code == 401
    assert "revoked" in response.text
