"""The usage event is the one definition of a request's record: the request log, the
worker's columns and the API's schema all follow it."""

from __future__ import annotations

import dataclasses

from gateway.api import RequestOut
from gateway.models import RequestLog
from gateway.usage_event import LOG_FIELDS, MAX_LENGTHS, UsageEvent


def test_every_event_field_is_a_request_log_column_of_the_same_name():
    columns = {f.attname for f in RequestLog._meta.concrete_fields}
    for f in dataclasses.fields(UsageEvent):
        assert f.name in columns, f"RequestLog has no column for {f.name}"


def test_string_bounds_are_the_columns_lengths():
    for name, length in MAX_LENGTHS.items():
        field = RequestLog._meta.get_field(name)
        assert getattr(field, "max_length", None) in (length, None), name
    bounded = {
        f.attname for f in RequestLog._meta.concrete_fields if getattr(f, "max_length", None)
    }
    assert bounded - {"request_id", "client_protocol", "outcome"} <= set(MAX_LENGTHS)


def test_the_api_shows_every_logged_field():
    shown = set(RequestOut.model_fields)
    assert set(LOG_FIELDS) - {"cost_nano"} <= shown
    assert {"cost_usd", "api_key", "started_at"} <= shown


def test_the_wire_form_leaves_out_defaults_and_cuts_long_strings():
    event = UsageEvent(
        request_id="req_1",
        organisation_id=1,
        started_at=1.0,
        status_code=200,
        outcome="ok",
        client_protocol="openai",
        requested_model="m",
        provider="p" * 80,
    )
    wire = event.wire()
    assert "input_tokens" not in wire and "attempts" not in wire
    assert wire["provider"] == "p" * 50
    assert wire["requested_model"] == "m"
