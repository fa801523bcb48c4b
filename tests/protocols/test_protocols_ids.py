"""Tool-call ids: deterministic, reversible both ways, valid on the target side."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocols.ids import tool_id_to_anthropic, tool_id_to_openai

ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
anthropic_ids = st.from_regex(ANTHROPIC_ID, fullmatch=True)
# Ids the way real upstreams shape them, so the examples cover the prefixed paths.
prefixed = st.tuples(
    st.sampled_from(["call_", "toolu_", "call_-v", "toolu_-v", "toolu_-b", "srvtoolu_", ""]),
    st.text(alphabet="abcXYZ019_-.:=+/ é", max_size=30),
).map("".join)


@pytest.mark.parametrize(
    ("openai_id", "anthropic_id"),
    [
        ("call_abc123", "toolu_abc123"),
        ("call_01D7FLrfh4GYq7yT1ULFeyMV", "toolu_01D7FLrfh4GYq7yT1ULFeyMV"),
        ("call_-vsrvtoolu_01abc", "srvtoolu_01abc"),
    ],
)
def test_it_swaps_prefixes_of_common_ids(openai_id: str, anthropic_id: str) -> None:
    assert tool_id_to_anthropic(openai_id) == anthropic_id
    assert tool_id_to_openai(anthropic_id) == openai_id


@pytest.mark.parametrize(
    "openai_id",
    [
        "functions.get_weather:0",
        "chatcmpl-tool-1f2e",
        "tool_0",
        "",
        "call_",
        "call_a.b",
        "toolu_abc",
        "call_-x",
    ],
)
def test_it_encodes_ids_without_the_call_prefix_reversibly(openai_id: str) -> None:
    anthropic_id = tool_id_to_anthropic(openai_id)
    assert ANTHROPIC_ID.match(anthropic_id)
    assert tool_id_to_openai(anthropic_id) == openai_id


def test_it_keeps_anthropic_ids_within_openais_40_characters() -> None:
    openai_id = tool_id_to_openai("toolu_vrtx_01D7FLrfh4GYq7yT1ULFeyMV")
    assert openai_id == "call_vrtx_01D7FLrfh4GYq7yT1ULFeyMV"
    assert len(openai_id) <= 40


def test_it_survives_a_pathologically_long_nested_id() -> None:
    value = "call_-v" * 3000 + "x"
    assert tool_id_to_openai(tool_id_to_anthropic(value)) == value


@given(st.one_of(st.text(), prefixed))
def test_any_openai_id_round_trips_through_anthropic(openai_id: str) -> None:
    anthropic_id = tool_id_to_anthropic(openai_id)
    assert ANTHROPIC_ID.match(anthropic_id)
    assert tool_id_to_openai(anthropic_id) == openai_id


@given(st.one_of(anthropic_ids, prefixed.filter(ANTHROPIC_ID.match)))
def test_any_anthropic_id_round_trips_through_openai(anthropic_id: str) -> None:
    assert tool_id_to_anthropic(tool_id_to_openai(anthropic_id)) == anthropic_id


@given(st.text(), st.text())
def test_distinct_ids_stay_distinct(first: str, second: str) -> None:
    if first != second:
        assert tool_id_to_anthropic(first) != tool_id_to_anthropic(second)


def test_an_id_with_a_lone_surrogate_round_trips() -> None:
    # JSON allows "\ud800" escapes; such an id must not crash the translation.
    openai_id = "call_\ud800x"

    anthropic_id = tool_id_to_anthropic(openai_id)

    assert ANTHROPIC_ID.match(anthropic_id)
    assert tool_id_to_openai(anthropic_id) == openai_id
