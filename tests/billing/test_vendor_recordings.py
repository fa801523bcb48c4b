"""Vendor responses replayed byte for byte through the live gateway, with exact billing.

Each file of tests/fixtures/vendor_responses/ is an upstream answer shaped as the
vendor's current API reference documents it (its `source` names the section). The
fake upstream replays it (`{"replay": path}`) to every client protocol that can be
served over its wire (`gateway.protocols.registry.routes()`), through the official
SDKs, and we check that:

(a) the SDK parses the answer, or raises the exception class for the status;
(b) client protocol == wire: what the client got equals the SDK's own parse of the
    recording, but for the differences docs/protocols.md documents (`model` is the
    public id; `usage.cost` is added; Chat Completions usage also carries top-level
    `cache_read_input_tokens` / `cache_creation_input_tokens`); error bodies as written;
(c) the request log's `cost_nano` is the vendor's price formula applied to the
    recording's usage, computed here from the recording alone, to the nano-dollar.

Known gateway gaps are `xfail(strict=True)` in `GAPS`, one reason each.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.models import RequestLog
from gateway.protocols.registry import routes
from gateway.runtime import runtime

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "vendor_responses"
WEB_SEARCH_PRICE = Decimal("10")  # USD per 1,000 searches
# wire -> (public model the client asks for, upstream model name the replay is scripted on)
MODELS = {
    "openai": ("test-gpt-5.5", "gpt-5.5"),
    "anthropic": ("claude-test-4.6", "claude-sonnet-4-6"),
    "responses": ("test-gpt-native", "gpt-5.5"),
}
CLIENTS_BY_WIRE: dict[str, list[str]] = {}
for _route in routes():
    CLIENTS_BY_WIRE.setdefault(_route.wire, []).append(_route.client)


@dataclass(frozen=True)
class Recording:
    name: str
    path: Path
    wire: str
    stream: bool
    status: int
    headers: dict[str, str]
    body: str
    source: str

    @classmethod
    def load(cls, path: Path) -> Recording:
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert set(raw) == {"wire", "stream", "status", "headers", "body", "source"}, path
        return cls(name=path.stem, path=path, **raw)

    @property
    def ok(self) -> bool:
        return self.status < 400

    def events(self) -> list[tuple[str | None, str]]:
        """(event name, data) of each SSE event, as recorded."""
        out = []
        for block in re.split(r"\r\n\r\n|\n\n", self.body):
            if not block.strip():
                continue
            name, data = None, []
            for line in block.splitlines():
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
            out.append((name, "\n".join(data)))
        return out


RECORDINGS = [Recording.load(p) for p in sorted(FIXTURE_DIR.glob("*.json"))]

# (recording, client protocol) pairs the gateway cannot serve as documented; the lead
# fixes gateway code for each (see the report of the change that added this file).
GAPS: dict[tuple[str, str], str] = {}


def _cases() -> list[Any]:
    cases = []
    for rec in RECORDINGS:
        for client in CLIENTS_BY_WIRE[rec.wire]:
            marks = []
            reason = GAPS.get((rec.name, client)) or GAPS.get((rec.name, "*"))
            if reason:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            cases.append(pytest.param(rec, client, id=f"{rec.name}-to-{client}", marks=marks))
    return cases


# --- the recording as the SDK of its own protocol parses it ----------------------------
def sdk_parse(rec: Recording) -> Any:
    """What the SDK of the recording's protocol makes of it, as the SDK builds it
    (construct, no validation): a model, or a list of stream events."""
    if not rec.stream:
        data = json.loads(rec.body)
        if rec.wire == "anthropic":
            return anthropic._models.construct_type(type_=Message, value=data)
        whole: Any = ChatCompletion if rec.wire == "openai" else Response
        return openai._models.construct_type(type_=whole, value=data)
    out = []
    for name, data in rec.events():
        if rec.wire == "anthropic":
            if name == "ping":
                continue  # the SDK skips pings
            value = anthropic._models.construct_type(
                type_=RawMessageStreamEvent, value=json.loads(data)
            )
        else:
            if data.startswith("[DONE]"):
                continue
            kind: Any = ChatCompletionChunk if rec.wire == "openai" else ResponseStreamEvent
            value = openai._models.construct_type(type_=kind, value=json.loads(data))
        out.append(value)
    return out


def strict_validate(rec: Recording) -> None:
    """The recording as the SDK's types declare it, validated (not only constructed)."""
    if not rec.stream:
        data = json.loads(rec.body)
        kind: Any = {"anthropic": Message, "openai": ChatCompletion, "responses": Response}
        kind[rec.wire].model_validate(data, strict=False)
        return
    types: dict[str, Any] = {
        "anthropic": RawMessageStreamEvent,
        "openai": ChatCompletionChunk,
        "responses": ResponseStreamEvent,
    }
    adapter: Any = TypeAdapter(types[rec.wire])
    for name, data in rec.events():
        if name == "ping" or data.startswith("[DONE]"):
            continue
        event = json.loads(data)
        if rec.wire != "openai":
            assert name == event["type"], (name, event["type"])
        adapter.validate_python(event)


@pytest.mark.parametrize("rec", RECORDINGS, ids=[r.name for r in RECORDINGS])
def test_the_recording_matches_its_vendors_sdk_types(rec):
    assert rec.source.strip()
    content_type = rec.headers["content-type"]
    assert content_type.startswith("text/event-stream" if rec.stream else "application/json")
    assert ("request-id" if rec.wire == "anthropic" else "x-request-id") in rec.headers
    if rec.ok:
        strict_validate(rec)
    else:
        error = json.loads(rec.body)
        if rec.wire == "anthropic":
            assert error["type"] == "error" and set(error["error"]) == {"type", "message"}
            assert error["request_id"] == rec.headers["request-id"]
        else:
            assert set(error["error"]) == {"message", "type", "param", "code"}


# --- the vendor's bill, from the recording alone ------------------------------------
def recorded_usage(rec: Recording) -> tuple[dict[str, Any], list[Any]]:
    """The recording's final usage in its own shape, and (Responses) its output items."""
    if not rec.stream:
        data = json.loads(rec.body)
        return data["usage"], data.get("output") or []
    events = [json.loads(d) for n, d in rec.events() if n != "ping" and d != "[DONE]"]
    if rec.wire == "openai":
        return next(e["usage"] for e in events if e.get("usage")), []
    if rec.wire == "responses":
        final = events[-1]["response"]
        return final["usage"], final["output"]
    usage = dict(next(e["message"]["usage"] for e in events if e["type"] == "message_start"))
    for e in events:
        if e["type"] == "message_delta":  # cumulative counts: each replaces the last
            usage.update({k: v for k, v in e["usage"].items() if v is not None})
    return usage, []


def vendor_counts(rec: Recording) -> dict[str, int]:
    """The counts each vendor bills, per its pricing pages: OpenAI's prompt / input
    counts INCLUDE cache reads and writes; Anthropic's input_tokens excludes them and
    splits writes by ttl; searches are Anthropic's usage.server_tool_use count or,
    on Responses, one per web_search_call item. OpenAI cache writes are priced as
    5-minute writes (the model has no price of their own)."""
    usage, output = recorded_usage(rec)
    if rec.wire == "anthropic":
        split = usage.get("cache_creation") or {}
        return {
            "input": usage["input_tokens"],
            "cache_read": usage.get("cache_read_input_tokens") or 0,
            "write_5m": split.get("ephemeral_5m_input_tokens") or 0,
            "write_1h": split.get("ephemeral_1h_input_tokens") or 0,
            "output": usage["output_tokens"],
            "web_searches": (usage.get("server_tool_use") or {}).get("web_search_requests") or 0,
        }
    prompt_key, output_key, details_key = (
        ("prompt_tokens", "completion_tokens", "prompt_tokens_details")
        if rec.wire == "openai"
        else ("input_tokens", "output_tokens", "input_tokens_details")
    )
    details = usage.get(details_key) or {}
    read = details.get("cached_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    return {
        "input": usage[prompt_key] - read - written,
        "cache_read": read,
        "write_5m": written,
        "write_1h": 0,
        "output": usage[output_key],
        "web_searches": sum(1 for item in output if item.get("type") == "web_search_call"),
    }


# --- what the client got, and what may differ ----------------------------------------
def dump(value: Any) -> Any:
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value.model_dump(mode="json", exclude_unset=True)


def differences(got: Any, want: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for key in list(want) + [k for k in got if k not in want]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in got:
                out.append((sub, "<missing>", want[key]))
            elif key not in want:
                out.append((sub, got[key], "<not in the recording>"))
            else:
                out.extend(differences(got[key], want[key], sub))
        return out
    if isinstance(got, list) and isinstance(want, list):
        out = []
        for i in range(max(len(got), len(want))):
            sub = f"{path}[{i}]"
            if i >= len(got):
                out.append((sub, "<missing>", want[i]))
            elif i >= len(want):
                out.append((sub, got[i], "<not in the recording>"))
            else:
                out.extend(differences(got[i], want[i], sub))
        return out
    return [] if got == want else [(path, got, want)]


_MODEL = re.compile(r"(\[\d+\]\.)?((message|response)\.)?model")
_COST = re.compile(r"(.*\.)?usage\.cost")
_CHAT_TOP_LEVEL_CACHE = re.compile(
    r"(\[\d+\]\.)?usage\.(cache_read_input_tokens|cache_creation_input_tokens)"
)


def documented(path: str, got: Any, want: Any, client: str, public_model: str) -> bool:
    """docs/protocols.md: `model` is the public id (answers and every stream event);
    the gateway adds `usage.cost`; Chat Completions usage also carries top-level
    cache_read_input_tokens / cache_creation_input_tokens."""
    if _MODEL.fullmatch(path):
        return got == public_model
    if _COST.fullmatch(path):
        return want == "<not in the recording>"
    if client == "openai" and _CHAT_TOP_LEVEL_CACHE.fullmatch(path):
        return want == "<not in the recording>"
    return False


def expected_status(rec: Recording, client: str) -> int:
    """Same protocol: the upstream's status (failures.RELAYED_STATUSES). Across
    protocols, the closest one: an upstream 500 is the gateway's 502 (the upstream
    failed); 529 is 503 for the OpenAI protocols, whose SDKs know no 529."""
    if rec.status == 529 and client != "anthropic":
        return 503
    if rec.status == 500 and client != rec.wire:
        return 502
    return rec.status


OPENAI_ERRORS = {
    400: openai.BadRequestError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    502: openai.InternalServerError,
    503: openai.InternalServerError,
}
ANTHROPIC_ERRORS = {
    400: anthropic.BadRequestError,
    429: anthropic.RateLimitError,
    500: anthropic.InternalServerError,
    502: anthropic.InternalServerError,
    503: anthropic.ServiceUnavailableError,
    529: anthropic.OverloadedError,
}
RELAYED_HEADERS = re.compile(r"retry-after(-ms)?|x-ratelimit-.*|anthropic-ratelimit-.*")


def call(world, client: str, public_model: str, stream: bool) -> Any:
    """One request through the gateway with the official SDK of `client`; the parsed
    answer (a model, or the list of stream events)."""
    prompt: Any = [{"role": "user", "content": "What's the weather in Paris?"}]
    if client == "anthropic":
        claude: Any = anthropic.Anthropic(
            base_url=world.url, api_key=world.secret, max_retries=0, timeout=20
        )
        if stream:
            with claude.messages.create(
                model=public_model, max_tokens=1024, messages=prompt, stream=True
            ) as events:
                return list(events)
        return claude.messages.create(model=public_model, max_tokens=1024, messages=prompt)
    oai: Any = openai.OpenAI(
        base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
    )
    if client == "openai":
        if stream:
            with oai.chat.completions.create(
                model=public_model,
                messages=prompt,
                stream=True,
                stream_options={"include_usage": True},
            ) as chunks:
                return list(chunks)
        return oai.chat.completions.create(model=public_model, messages=prompt)
    if stream:
        with oai.responses.create(model=public_model, input=prompt, stream=True) as events:
            return list(events)
    return oai.responses.create(model=public_model, input=prompt)


@pytest.mark.parametrize(("rec", "client"), _cases())
def test_a_recording_replayed_through_the_gateway(rec, client, world, request, vendor_cost):
    if rec.wire == "responses":
        request.getfixturevalue("native_model")
    public_model, upstream_model = MODELS[rec.wire]
    for model in (world.gpt, world.claude, getattr(world, "native", None)):
        if model is not None:
            model.price_web_search = WEB_SEARCH_PRICE
            model.save()
    runtime.caches_clear()
    world.fake.script(upstream_model, [{"replay": str(rec.path)}])

    if rec.ok:
        got = call(world, client, public_model, rec.stream)
    else:
        status = expected_status(rec, client)
        errors = ANTHROPIC_ERRORS if client == "anthropic" else OPENAI_ERRORS
        with pytest.raises(errors[status]) as raised:
            call(world, client, public_model, rec.stream)
        error: Any = raised.value
        assert error.status_code == status
        if rec.status in (429, 503, 529):  # docs/protocols.md, "Upstream errors"
            sent = {k: v for k, v in rec.headers.items() if RELAYED_HEADERS.fullmatch(k)}
            relayed = {k: error.response.headers.get(k) for k in sent}
            assert relayed == sent, "rate-limit headers as the upstream sent them"
        if client == rec.wire:
            assert error.response.json() == json.loads(rec.body), "the upstream's own body"

    # (b) same protocol: only the documented differences
    if rec.ok and client == rec.wire:
        found = differences(dump(got), dump(sdk_parse(rec)))
        undocumented = [d for d in found if not documented(*d, client, public_model)]
        assert not undocumented, "\n".join(
            f"{p}: got {g!r}, recorded {w!r}" for p, g, w in undocumented
        )

    # across protocols: the documented stop-reason table, and the same token counts
    if rec.ok and client != rec.wire:
        assert client_stop(got, client) == expected_stop(rec, client)
        want = vendor_counts(rec)
        seen = client_counts(got, client)
        prompt = want["input"] + want["cache_read"] + want["write_5m"] + want["write_1h"]
        assert seen == {
            "prompt": prompt,
            "cache_read": want["cache_read"],
            "output": want["output"],
        }

    # (c) the bill
    world.drain()
    row = RequestLog.objects.get()
    if rec.ok:
        expected = vendor_cost(vendor_counts(rec), _model(world, rec.wire))
        logged = (row.status_code, row.cost_nano)
        assert logged == (200, expected), (
            f"input {row.input_tokens} read {row.cache_read_tokens} "
            f"w5m {row.cache_write_5m_tokens} w1h {row.cache_write_1h_tokens} "
            f"output {row.output_tokens} searches {row.web_search_calls}; "
            f"vendor {vendor_counts(rec)}"
        )
    else:
        assert row.cost_nano == 0


# docs/protocols.md, "Responses" (stop reasons, both directions).
ANTHROPIC_TO_CHAT = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "length",  # "stopped before the end; more can follow"
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
CHAT_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def recorded_stop(rec: Recording) -> str:
    """The recording's stop reason, in Chat Completions' words."""
    if not rec.stream:
        data = json.loads(rec.body)
        if rec.wire == "anthropic":
            return ANTHROPIC_TO_CHAT[data["stop_reason"]]
        return data["choices"][0]["finish_reason"]
    events = [json.loads(d) for n, d in rec.events() if n != "ping" and d != "[DONE]"]
    if rec.wire == "anthropic":
        [delta] = [e for e in events if e["type"] == "message_delta"]
        return ANTHROPIC_TO_CHAT[delta["delta"]["stop_reason"]]
    return next(c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"])


def expected_stop(rec: Recording, client: str) -> str:
    chat = recorded_stop(rec)
    if client == "openai":
        return chat
    if client == "anthropic":
        if not rec.stream and json.loads(rec.body)["choices"][0]["message"].get("refusal"):
            # OpenAI refuses with message.refusal and finish "stop": an Anthropic
            # refusal (docs/protocols.md, correction 13 and "Responses").
            return "refusal"
        return CHAT_TO_ANTHROPIC[chat]
    # a Responses status: incomplete for `length` (max_output_tokens) and content_filter
    return "incomplete" if chat in ("length", "content_filter") else "completed"


def client_stop(got: Any, client: str) -> str | None:
    if client == "openai":
        if isinstance(got, list):
            return next(c.finish_reason for e in got for c in e.choices if c.finish_reason)
        return got.choices[0].finish_reason
    if client == "anthropic":
        if isinstance(got, list):
            return next(e.delta.stop_reason for e in got if e.type == "message_delta")
        return got.stop_reason
    final = got[-1].response if isinstance(got, list) else got
    return final.status


def client_counts(got: Any, client: str) -> dict[str, int]:
    """The token counts the client is shown: prompt (cache included), cache reads, output."""
    if client == "openai":
        usage = next(e.usage for e in got if e.usage) if isinstance(got, list) else got.usage
        details = usage.prompt_tokens_details
        read = (details.cached_tokens if details else 0) or 0
        return {
            "prompt": usage.prompt_tokens,
            "cache_read": read,
            "output": usage.completion_tokens,
        }
    if client == "anthropic":
        if isinstance(got, list):
            start = next(e.message.usage for e in got if e.type == "message_start")
            delta = next(e.usage for e in got if e.type == "message_delta")
            fields = {**start.model_dump(), **delta.model_dump(exclude_none=True)}
        else:
            fields = got.usage.model_dump()
        read = fields.get("cache_read_input_tokens") or 0
        prompt = fields["input_tokens"] + read + (fields.get("cache_creation_input_tokens") or 0)
        return {"prompt": prompt, "cache_read": read, "output": fields["output_tokens"]}
    usage = (got[-1].response if isinstance(got, list) else got).usage
    read = usage.input_tokens_details.cached_tokens
    return {"prompt": usage.input_tokens, "cache_read": read, "output": usage.output_tokens}


def _model(world, wire: str):
    model = {"openai": world.gpt, "anthropic": world.claude}.get(wire) or world.native
    model.refresh_from_db()
    return model
