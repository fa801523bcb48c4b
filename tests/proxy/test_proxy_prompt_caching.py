"""Prompt caching end to end: two-turn conversations whose second turn reads the cache,
from each client protocol, with the billed cost (usage.cost, the request log row and
the ledger debit) checked against the vendor's formula to the nano-dollar:

    input * price_in + cache_read * price_read + write_5m * price_w5
        + write_1h * price_w1h + output * price_out       (each token once)

computed in the test from the usage the upstream itself reported (the fake is asked
again, on a cold cache, with the very bodies the gateway sent)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from billing.models import LedgerEntry
from gateway.models import RequestLog

pytestmark = pytest.mark.django_db(transaction=True)

CLAUDE, GPT = "claude-test-4.6", "test-gpt-5.5"
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])

SYSTEM_1H = "You are a careful coding assistant working in a large repository " * 3
SYSTEM_5M = "Project rules: write tests first and keep modules small and readable " * 2
CONTEXT = "Here is the file tree of the project with many files listed one by one " * 2
LONG_SYSTEM = "word " * 1100  # past the 1024 tokens from which OpenAI caches prompts


def anthropic_client(world) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world.url, api_key=world.secret, max_retries=0, timeout=20)


def openai_client(world) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=world.openai_base, api_key=world.secret, max_retries=0, timeout=20
    )


def anthropic_ask(world, stream: bool, **kwargs) -> tuple[str, dict, float]:
    """(request id, usage as the client got it, cost it was told) of one message."""
    c = anthropic_client(world)
    if not stream:
        raw = c.messages.with_raw_response.create(**kwargs)
        usage = raw.parse().usage
        return raw.headers["x-tollgate-request-id"], usage.model_dump(), usage.model_extra["cost"]
    with c.messages.stream(**kwargs) as s:
        events = list(s)
        final = s.get_final_message()
        [delta] = [e for e in events if e.type == "message_delta"]
        return (
            s.response.headers["x-tollgate-request-id"],
            final.usage.model_dump(),
            delta.usage.model_extra["cost"],
        )


def assert_billed(
    world, request_id: str, tokens: dict[str, int], cost: float, expected: int
) -> None:
    assert round(cost * 1e9) == expected
    row = RequestLog.objects.get(request_id=request_id)
    assert row.cost_nano == expected
    assert (
        row.input_tokens,
        row.cache_read_tokens,
        row.cache_write_5m_tokens,
        row.cache_write_1h_tokens,
        row.output_tokens,
    ) == (
        tokens["input"],
        tokens["cache_read"],
        tokens["write_5m"],
        tokens["write_1h"],
        tokens["output"],
    )
    assert LedgerEntry.objects.get(idempotency_key=f"usage:{request_id}").amount_nano == -expected


def assert_turn2_reads_the_cache(reported: list[dict], anthropic_counts) -> None:
    first, second = (anthropic_counts(u) for u in reported)
    assert first["cache_read"] == 0 and first["write_1h"] > 0 and first["write_5m"] > 0
    assert second["cache_read"] > 0 and second["write_5m"] > 0


# --- Anthropic client, Anthropic upstream ---------------------------------------------


def _anthropic_turns() -> list[dict]:
    """Two turns with 1h and 5m breakpoints (at most 4, the 1h ones first)."""
    system = [
        {"type": "text", "text": SYSTEM_1H, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": SYSTEM_5M, "cache_control": {"type": "ephemeral"}},
    ]
    first_user = {
        "role": "user",
        "content": [
            {"type": "text", "text": CONTEXT, "cache_control": {"type": "ephemeral", "ttl": "5m"}},
            {"type": "text", "text": "What is in the tree?"},
        ],
    }
    turn1 = {"model": CLAUDE, "max_tokens": 1024, "system": system, "messages": [first_user]}
    turn2 = {
        **turn1,
        "messages": [
            first_user,
            {"role": "assistant", "content": "It lists files."},
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Now summarise it please",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
    }
    return [turn1, turn2]


@STREAM
def test_an_anthropic_clients_cached_conversation_is_billed_by_the_vendor_formula(
    world,
    vendor_cost,
    anthropic_counts,
    upstream_replay,
    stream,
):
    seen = [anthropic_ask(world, stream, **body) for body in _anthropic_turns()]
    sent = [r["body"] for r in world.fake.requests]
    assert [b["system"] for b in sent] == [_anthropic_turns()[0]["system"]] * 2  # untouched
    reported = upstream_replay()
    assert_turn2_reads_the_cache(reported, anthropic_counts)
    world.drain()
    for (request_id, usage, cost), upstream_usage in zip(seen, reported, strict=True):
        tokens = anthropic_counts(upstream_usage)
        assert anthropic_counts(usage) == tokens
        assert_billed(world, request_id, tokens, cost, vendor_cost(tokens, world.claude))


# --- OpenAI client, Anthropic upstream ------------------------------------------------


def _openai_turns() -> list[list[dict]]:
    """The same conversation as an OpenAI client (Roo Code) sends it: cache_control on
    the system prompt's parts and on user parts."""
    system = {
        "role": "system",
        "content": [
            {
                "type": "text",
                "text": SYSTEM_1H,
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
            {"type": "text", "text": SYSTEM_5M, "cache_control": {"type": "ephemeral"}},
        ],
    }
    first_user = {
        "role": "user",
        "content": [
            {"type": "text", "text": CONTEXT, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "What is in the tree?"},
        ],
    }
    turn2 = [
        system,
        first_user,
        {"role": "assistant", "content": "It lists files."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Now summarise it", "cache_control": {"type": "ephemeral"}}
            ],
        },
    ]
    return [[system, first_user], turn2]


@STREAM
def test_an_openai_clients_cached_conversation_is_billed_by_the_vendor_formula(
    world,
    vendor_cost,
    anthropic_counts,
    upstream_replay,
    stream,
):
    c = openai_client(world)
    seen = []  # (request id, OpenAI usage the client got)
    for messages in _openai_turns():
        if stream:
            raw = c.chat.completions.with_raw_response.create(
                model=CLAUDE, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            usage = list(raw.parse())[-1].usage
        else:
            raw = c.chat.completions.with_raw_response.create(model=CLAUDE, messages=messages)
            usage = raw.parse().usage
        seen.append((raw.headers["x-tollgate-request-id"], usage))

    sent = [r["body"] for r in world.fake.requests]
    assert sent[0]["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert sent[1]["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    reported = upstream_replay()
    assert_turn2_reads_the_cache(reported, anthropic_counts)
    world.drain()
    for (request_id, usage), upstream_usage in zip(seen, reported, strict=True):
        tokens = anthropic_counts(upstream_usage)
        written = tokens["write_5m"] + tokens["write_1h"]
        # OpenAI's prompt_tokens includes the cached tokens; Anthropic's input excludes them
        assert usage.prompt_tokens == tokens["input"] + tokens["cache_read"] + written
        assert usage.completion_tokens == tokens["output"]
        assert usage.prompt_tokens_details.cached_tokens == tokens["cache_read"]
        # ...and Roo Code reads these two at the top level
        assert usage.model_extra["cache_read_input_tokens"] == tokens["cache_read"]
        assert usage.model_extra["cache_creation_input_tokens"] == written
        assert_billed(
            world, request_id, tokens, usage.model_extra["cost"], vendor_cost(tokens, world.claude)
        )


# --- Anthropic client, OpenAI upstream (automatic caching) ----------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_openai_upstreams_cache_reads_reach_an_anthropic_client_billed_by_formula(
    world,
    vendor_cost,
    upstream_replay,
    stream,
):
    turn1 = [{"role": "user", "content": "hi"}]
    turn2 = [
        *turn1,
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "summarise"},
    ]
    seen = [
        anthropic_ask(
            world, stream, model=GPT, max_tokens=256, system=LONG_SYSTEM, messages=messages
        )
        for messages in (turn1, turn2)
    ]
    reported = upstream_replay()  # OpenAI's shape: prompt_tokens includes cached ones
    assert reported[0]["prompt_tokens_details"]["cached_tokens"] == 0
    assert reported[1]["prompt_tokens_details"]["cached_tokens"] >= 1024
    world.drain()
    for (request_id, usage, cost), upstream in zip(seen, reported, strict=True):
        cached = upstream["prompt_tokens_details"]["cached_tokens"]
        # Anthropic's shape: input_tokens excludes what was read from the cache
        assert (
            usage["input_tokens"],
            usage["cache_read_input_tokens"],
            usage["output_tokens"],
        ) == (upstream["prompt_tokens"] - cached, cached, upstream["completion_tokens"])
        tokens = {
            "input": usage["input_tokens"],
            "cache_read": cached,
            "write_5m": 0,
            "write_1h": 0,
            "output": usage["output_tokens"],
        }
        assert_billed(world, request_id, tokens, cost, vendor_cost(tokens, world.gpt))
