"""Every usage field the upstreams report is read once, into its own price slot
(gateway.protocols.usage.Usage)."""

from __future__ import annotations

from gateway.protocols.usage import Usage


def test_openai_cache_writes_split_by_retention():
    # Responses usage: 12,000 prompt tokens, 2,000 read from cache, 6,000 written of
    # which 1,000 kept 12 hours.
    usage = Usage.from_responses(
        {
            "input_tokens": 12_000,
            "input_tokens_details": {
                "cached_tokens": 2_000,
                "cache_write_tokens": 6_000,
                "cache_write_tokens_details": {"ttl_30m_tokens": 5_000, "ttl_12h_tokens": 1_000},
            },
            "output_tokens": 300,
            "output_tokens_details": {"reasoning_tokens": 100},
            "total_tokens": 12_300,
        }
    )

    assert (usage.input_tokens, usage.cache_read_tokens) == (4_000, 2_000)
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (5_000, 1_000)
    assert usage.prompt_tokens == 12_000 and usage.reasoning_tokens == 100


def test_chat_completions_cache_writes_without_a_split_are_short_writes():
    usage = Usage.from_openai(
        {
            "prompt_tokens": 4_020,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4_012},
        }
    )

    assert (usage.input_tokens, usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (
        8,
        4_012,
        0,
    )


def test_responses_web_searches_are_counted_from_the_output_items():
    usage = Usage.from_responses(
        {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        [
            {"type": "web_search_call", "id": "ws_1"},
            {"type": "message"},
            {"type": "web_search_call"},
        ],
    )

    assert usage.web_search_calls == 2


def test_anthropic_server_tool_use_is_read_from_messages_and_deltas():
    usage = Usage.from_anthropic(
        {"input_tokens": 10, "output_tokens": 1, "server_tool_use": {"web_search_requests": 1}}
    )
    usage.merge_anthropic_delta(
        {
            "output_tokens": 40,
            "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
        }
    )

    assert (usage.web_search_calls, usage.web_fetch_calls, usage.output_tokens) == (3, 1, 40)
