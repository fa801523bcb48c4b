"""Tool-call ids across protocols: OpenAI `call_...` <-> Anthropic `toolu_...`.

A client gets a tool call's id in turn N and sends it back with the result in turn
N+1, possibly to another upstream after a fallback. No state is kept anywhere, so the
mapping must be a bijection: `tool_id_to_openai(tool_id_to_anthropic(x)) == x` for
every string, and `tool_id_to_anthropic(tool_id_to_openai(y)) == y` for every valid
Anthropic id. Anthropic ids must match `^[a-zA-Z0-9_-]+$`; OpenAI accepts any string
but at most 40 characters in requests, which the common case keeps.

The three classes on each side, and how they pair up:

    OpenAI side                      Anthropic side
    plain    call_<r>           <->  toolu_<r>          plain (the common case)
    residual anything else      <->  toolu_-v<x>        x kept verbatim when it is
                                     toolu_-b<b64(x)>   all id characters, else
                                                        base64url of its UTF-8
    call_-v<y>                  <->  y                  Anthropic residual: any
                                                        other valid id (srvtoolu_...)

`r` is a run of id characters not starting with "-" (the marker: real ids never have
it there). Whether a string is "residual" depends on whether its decoding is residual
on the other side; the decoding is strictly shorter, so the question always ends.
"""

from __future__ import annotations

import base64
import binascii
import re

_ID_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_OPENAI_PREFIX = "call_"
_ANTHROPIC_PREFIX = "toolu_"
_MARK = "-"
_VERBATIM = _MARK + "v"
_BASE64 = _MARK + "b"


def _is_id_chars(text: str) -> bool:
    return _ID_CHARS.fullmatch(text) is not None


def _plain_rest(text: str, prefix: str) -> str | None:
    """`r` when `text` is prefix + r in the plain class, else None."""
    if not text.startswith(prefix):
        return None
    rest = text[len(prefix) :]
    if rest and not rest.startswith(_MARK) and _is_id_chars(rest):
        return rest
    return None


def _b64encode(text: str) -> str:
    # "surrogatepass": a lone surrogate (a JSON "\ud800" escape) round-trips too.
    raw = text.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(data: str) -> str | None:
    """The text whose canonical encoding is `data`, or None."""
    if data and not _is_id_chars(data):
        return None
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        text = raw.decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return text if _b64encode(text) == data else None


def _decode_anthropic(value: str) -> str | None:
    """The OpenAI-side string an encoded Anthropic id carries (before checking that
    it is residual there)."""
    if value.startswith(_ANTHROPIC_PREFIX + _VERBATIM):
        inner = value[len(_ANTHROPIC_PREFIX + _VERBATIM) :]
        return inner if inner and _is_id_chars(inner) else None
    if value.startswith(_ANTHROPIC_PREFIX + _BASE64):
        decoded = _b64decode(value[len(_ANTHROPIC_PREFIX + _BASE64) :])
        # Strings made only of id characters are always sent verbatim.
        if decoded is None or (decoded and _is_id_chars(decoded)):
            return None
        return decoded
    return None


def _decode_openai(value: str) -> str | None:
    if value.startswith(_OPENAI_PREFIX + _VERBATIM):
        inner = value[len(_OPENAI_PREFIX + _VERBATIM) :]
        return inner if inner and _is_id_chars(inner) else None
    return None


def _is_residual(value: str, side: str) -> bool:
    """Whether `value` is in its side's residual class (see the module docstring).

    Residual(s) = base(s) and not (decodes(s) and Residual(decoded s)). The chain of
    decodings is walked iteratively, so a hostile 100 kB id cannot exhaust the stack."""
    chain: list[bool] = []  # base(s) at each step
    while True:
        if side == "openai":
            base = _plain_rest(value, _OPENAI_PREFIX) is None
            decoded, other = _decode_openai(value), "anthropic"
        else:
            base = _is_id_chars(value) and _plain_rest(value, _ANTHROPIC_PREFIX) is None
            decoded, other = _decode_anthropic(value), "openai"
        chain.append(base)
        if not base or decoded is None:
            result = base
            break
        value, side = decoded, other
    # Unwind: each earlier step (all with base True) is residual iff the next is not.
    for _ in chain[:-1]:
        result = not result
    return result


def tool_id_to_anthropic(openai_id: str) -> str:
    """`call_abc` -> `toolu_abc`; any other string gets a reversible encoding."""
    rest = _plain_rest(openai_id, _OPENAI_PREFIX)
    if rest is not None:
        return _ANTHROPIC_PREFIX + rest
    inner = _decode_openai(openai_id)
    if inner is not None and _is_residual(inner, "anthropic"):
        return inner
    if openai_id and _is_id_chars(openai_id):
        return _ANTHROPIC_PREFIX + _VERBATIM + openai_id
    return _ANTHROPIC_PREFIX + _BASE64 + _b64encode(openai_id)


def tool_id_to_openai(anthropic_id: str) -> str:
    """`toolu_abc` -> `call_abc`; the inverse of `tool_id_to_anthropic`.

    Defined for valid Anthropic ids; anything else (a client's typo) is first mapped
    through the OpenAI-side encoding so the result is still a usable, stable id."""
    rest = _plain_rest(anthropic_id, _ANTHROPIC_PREFIX)
    if rest is not None:
        return _OPENAI_PREFIX + rest
    inner = _decode_anthropic(anthropic_id)
    if inner is not None and _is_residual(inner, "openai"):
        return inner
    if not _is_id_chars(anthropic_id):
        # Not a valid Anthropic id, so not in this function's domain. Return the
        # OpenAI id whose Anthropic form is the closest valid id we can make.
        return _OPENAI_PREFIX + _VERBATIM + tool_id_to_anthropic(anthropic_id)
    return _OPENAI_PREFIX + _VERBATIM + anthropic_id
