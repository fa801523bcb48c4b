"""Fixtures shared by every test: tenants (owner, member, outsider), a clean Redis,
and the ASGI app served on a real port."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.conf import settings

from accounts.models import User
from testkit.tenants import PASSWORD, ServedApp, Tenant, make_group, make_tenant, make_user

__all__ = ["PASSWORD", "ServedApp", "Tenant", "make_group", "make_tenant", "make_user"]


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def outsider(db) -> User:
    """A verified user who belongs to another organisation only."""
    return make_tenant("globex").owner


@pytest.fixture
def user_factory(db):
    """make_user as a fixture: tests get it without importing conftest by name (which
    is ambiguous once a sub-folder has its own conftest.py)."""
    return make_user


@pytest.fixture
def tenant_factory(db):
    """make_tenant as a fixture (see user_factory)."""
    return make_tenant


@pytest.fixture
def user_password() -> str:
    """The password of every user made by make_user."""
    return PASSWORD


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """Password hashing is deliberately slow; tests create many users and need none of
    its strength (override_settings also clears Django's cached hashers)."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _clean_shared_state():
    """Each test starts with an empty Redis database and cold in-process caches."""
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        client.flushdb()
        client.close()
    from django.core.cache import cache

    cache.clear()
    from gateway.runtime import runtime
    from testkit.observe import runtime_reset

    runtime_reset(runtime)
    yield
    runtime_reset(runtime)


@pytest.fixture(scope="session")
def gateway_server(django_db_setup, django_db_blocker):
    """The whole Tollgate ASGI app (console, admin, API, proxy) on a real port."""
    from config.asgi import application

    served = ServedApp(application)
    yield served
    served.stop()


@pytest.fixture
def live_url(gateway_server, transactional_db):
    """URL of the running app; the test's data is committed so the server sees it.
    Usage events still queued are written before the database is emptied."""
    from gateway.runtime import runtime

    yield gateway_server.url
    runtime.drain()


from testkit.fakeupstream import FakeUpstream  # noqa: E402  (plain Python, no Django)


@dataclass
class FakeUpstreamServer:
    """The fake OpenAI/Anthropic upstream on a real port: `url` is its base
    (http://127.0.0.1:PORT; OpenAI clients add /v1), `app` the FakeUpstream to script."""

    url: str
    app: FakeUpstream


@pytest.fixture(scope="session")
def _fake_upstream_server():
    app = FakeUpstream()
    served = ServedApp(app, lifespan="off")
    yield FakeUpstreamServer(url=served.url, app=app)
    served.stop()


@pytest.fixture
def fake_upstream(_fake_upstream_server) -> FakeUpstreamServer:
    """The session's fake upstream with no scripts, no recorded requests, a cold prompt
    cache and default settings, for each test."""
    _fake_upstream_server.app.reset(settings=True)
    yield _fake_upstream_server
    _fake_upstream_server.app.reset(settings=True)
