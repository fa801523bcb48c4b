"""The SSE parser's fast path for the usual shapes agrees with the general line parser
on every event, and events split anywhere across reads come out whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.protocols.sse import SSEParser, _parse_event, _parse_event_lines

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
)
line = st.one_of(
    text.map(lambda t: f"data: {t}"),
    text.map(lambda t: f"data:{t}"),
    text.map(lambda t: f"event: {t}"),
    text.map(lambda t: f": {t}"),
    text.map(lambda t: f"id: {t}"),
)


@given(st.lists(line, min_size=1, max_size=4))
def test_the_fast_path_reads_every_event_as_the_line_parser_does(lines):
    raw = ("\n".join(lines) + "\n\n").encode()
    assert _parse_event(raw) == _parse_event_lines(raw)


def test_the_usual_shapes():
    openai = _parse_event(b'data: {"a": 1}\n\n')
    assert (openai.event, openai.data) == (None, '{"a": 1}')
    anthropic = _parse_event(b'event: message_start\ndata: {"type": "x"}\n\n')
    assert (anthropic.event, anthropic.data) == ("message_start", '{"type": "x"}')
    assert _parse_event(b"data: [DONE]\n\n").data == "[DONE]"
    assert _parse_event(b": keep-alive\n\n").is_comment


@given(st.lists(line, min_size=1, max_size=4), st.lists(st.integers(0, 200), max_size=5))
def test_events_split_across_reads_come_out_whole(lines, cuts):
    raw = ("\n".join(lines) + "\n\n").encode() * 2
    points = sorted({min(c, len(raw)) for c in cuts})
    parser, events = SSEParser(), []
    for start, end in zip([0, *points], [*points, len(raw)], strict=True):
        events += parser.feed(raw[start:end])
    whole = _parse_event_lines(raw[: len(raw) // 2])
    assert events == ([whole, whole] if whole is not None else [])
