"""The `replay` behaviour: a recorded answer sent byte for byte, and a strict parse."""

from __future__ import annotations

import json

import httpx
import pytest

from testkit.fakeupstream.script import Behaviour

STREAM = (
    'event: message_start\ndata: {"type":"message_start"}\n\n'
    'event: ping\ndata: {"type": "ping"}\n\n'
    'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


def test_a_replay_answers_exactly_the_recorded_bytes_and_headers(fake_upstream):
    body = '{\n  "id": "chatcmpl-1",\n  "object": "chat.completion"  \n}\n'
    fake_upstream.app.script(
        "gpt-5.5",
        [{"replay": {"status": 200, "headers": {"X-Request-Id": "req_abc"}, "body": body}}],
    )

    response = httpx.post(
        f"{fake_upstream.url}/v1/chat/completions",
        json={"model": "gpt-5.5", "messages": []},
        headers={"authorization": "Bearer sk-test"},
    )

    assert response.status_code == 200
    assert response.content == body.encode()
    assert response.headers["x-request-id"] == "req_abc"
    assert "x-ratelimit-limit-requests" not in response.headers  # only what was recorded


def test_a_replayed_stream_comes_event_by_event(fake_upstream):
    fake_upstream.app.script(
        "claude-sonnet-4-6",
        [
            {
                "replay": {
                    "status": 200,
                    "headers": {"content-type": "text/event-stream"},
                    "body": STREAM,
                }
            }
        ],
    )
    pieces = []
    with httpx.stream(
        "POST",
        f"{fake_upstream.url}/v1/messages",
        json={"model": "claude-sonnet-4-6"},
        headers=HEADERS,
    ) as response:
        pieces = list(response.iter_raw())
        assert response.headers["content-type"] == "text/event-stream"

    assert b"".join(pieces) == STREAM.encode()
    assert Behaviour.parse(
        {
            "replay": {
                "status": 200,
                "headers": {"content-type": "text/event-stream"},
                "body": STREAM,
            }
        }
    ).replay.events == tuple(  # type: ignore[union-attr]
        e.encode() + b"\n\n" for e in STREAM.split("\n\n") if e
    )


def test_a_replay_from_a_file_with_an_error_status_and_a_dropped_stream(fake_upstream, tmp_path):
    recording = tmp_path / "r.json"
    error = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    recording.write_text(
        json.dumps(
            {"wire": "anthropic", "status": 529, "headers": {}, "body": error, "source": "x"}
        )
    )
    fake_upstream.app.script(
        "claude-sonnet-4-6",
        [
            {"replay": str(recording)},
            {
                "replay": {
                    "status": 200,
                    "headers": {"content-type": "text/event-stream"},
                    "body": STREAM,
                },
                "drop_after_chunks": 1,
            },
        ],
    )
    url = f"{fake_upstream.url}/v1/messages"

    failed = httpx.post(url, json={"model": "claude-sonnet-4-6"}, headers=HEADERS)
    assert (failed.status_code, failed.text) == (529, error)
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("POST", url, json={"model": "claude-sonnet-4-6"}, headers=HEADERS) as r:
            r.read()


@pytest.mark.parametrize(
    "raw",
    [
        {"replay": {"status": 200, "body": "x", "header": {}}},  # typo
        {"replay": {"status": 200}},  # no body
        {"replay": {"status": 200, "body": {"not": "a str"}}},
        {"replay": {"status": 99, "body": ""}},
        {"replay": {"status": 200, "body": ""}, "status": 500},  # the recording is the answer
        {"replay": {"status": 200, "body": ""}, "headers": {"x": "y"}},
        {"replay": "/no/such/recording.json"},
    ],
)
def test_a_malformed_replay_fails_loudly(raw):
    with pytest.raises(ValueError):
        Behaviour.parse(raw)
