"""The rows written at request rate carry no index that another one covers, and the
online migration that dropped them kept every foreign key (PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
def test_request_log_and_ledger_indexes():
    if connection.vendor != "postgresql":
        pytest.skip("the online index changes are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE tablename IN "
            "('gateway_requestlog', 'billing_ledgerentry')"
        )
        indexes = {(t, i) for t, i in cursor.fetchall()}
        cursor.execute(
            "SELECT conrelid::regclass::text, contype, conname FROM pg_constraint "
            "WHERE conrelid IN ('gateway_requestlog'::regclass, "
            "'billing_ledgerentry'::regclass) AND contype IN ('f', 'u')"
        )
        constraints = cursor.fetchall()
    names = {i for _, i in indexes}
    assert not any(n.endswith("_like") for n in names)
    assert not any(
        n.startswith(
            (
                "gateway_requestlog_organisation_id",
                "billing_ledgerentry_organisation_id",
                "billing_ledgerentry_api_key_id",
            )
        )
        for n in names
    )
    assert {
        "reqlog_request_id_unique",
        "ledger_idempotency_unique",
        "reqlog_org_time",
        "ledger_org_time",
        "ledger_key_time",
    } <= names
    unique = {name for _, kind, name in constraints if kind == "u"}
    assert unique == {"reqlog_request_id_unique", "ledger_idempotency_unique"}
    foreign = {(table, name.split("_fk_")[0]) for table, kind, name in constraints if kind == "f"}
    assert {
        ("gateway_requestlog", "gateway_requestlog_organisation_id_28dcd5bb"),
        ("billing_ledgerentry", "billing_ledgerentry_organisation_id_79107ba7"),
        ("billing_ledgerentry", "billing_ledgerentry_api_key_id_41044396"),
    } <= foreign
