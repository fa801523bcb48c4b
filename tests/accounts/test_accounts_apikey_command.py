"""`manage.py apikey create|revoke`."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Group
from accounts.secrets import api_secret_hash

pytestmark = pytest.mark.django_db


def _run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("apikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_prints_the_secret_once_on_stdout(tenant):
    out, err = _run("create", "--org", "acme", "--name", "ci")
    secret = out.strip()
    assert re.fullmatch(r"sk-tg-[A-Za-z0-9]{40}", secret)
    assert secret not in err
    key = ApiKey.objects.get()
    assert key.secret_hash == api_secret_hash(secret)
    assert key.name == "ci"
    assert key.group.slug == "default"


def test_create_uses_the_given_group(tenant_factory):
    tenant_factory("initech", groups=("default", "pro"))
    _run("create", "--org", "initech", "--name", "ci", "--group", "pro")
    assert ApiKey.objects.get().group == Group.objects.get(slug="pro")


@pytest.mark.parametrize(
    "args, message",
    [
        (("--org", "nope", "--name", "x"), "No organisation"),
        (("--org", "acme", "--name", "x", "--group", "nope"), "No key group"),
        (("--org", "acme", "--name", "x", "--group", "pro"), "not available"),
    ],
)
def test_create_explains_bad_input(tenant, args, message):
    Group.objects.create(slug="pro", name="Pro")
    with pytest.raises(CommandError, match=message):
        _run("create", *args)
    assert ApiKey.objects.count() == 0


def test_revoke_by_prefix(tenant):
    secret = _run("create", "--org", "acme", "--name", "ci")[0].strip()
    prefix = secret[:14]
    out, _ = _run("revoke", prefix)
    assert "Revoked" in out
    assert ApiKey.objects.get().revoked_at is not None
    with pytest.raises(CommandError, match="No key"):
        _run("revoke", "sk-tg-missing0")
