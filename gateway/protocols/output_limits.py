"""Each deployment's output limit, applied to the body sent to it: the parameter name
its upstream takes and its maximum, whether the body was translated or is the client's
own.

- OpenAI Chat Completions: OpenAI's reasoning models (o-series, GPT-5 and later) refuse
  `max_tokens` ("use max_completion_tokens"); some OpenAI-compatible vendors know only
  `max_tokens`. The deployment says which (`max_tokens_param`); automatic means
  max_completion_tokens for OpenAI reasoning model names, else the field the body has.
- Every wire: a limit above the deployment's maximum (its own, else the model's) is
  clamped to it rather than refused upstream (Cline asks 128,000 of a 64,000 model).
  With Anthropic's manual thinking, the budget is kept below the clamped limit.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.protocols.request_common import MIN_THINKING_BUDGET

_OPENAI_REASONING = re.compile(r"^(o\d+(?:-|$)|gpt-(\d+))")
_OPENAI_FIELDS = ("max_completion_tokens", "max_tokens")


def openai_wants_max_completion_tokens(upstream_model: str) -> bool:
    name = upstream_model.lower().rsplit("/", 1)[-1]
    match = _OPENAI_REASONING.match(name)
    if match is None:
        return False
    return match.group(2) is None or int(match.group(2)) >= 5


def _limit(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def output_limit_apply(
    body: dict[str, Any], wire: str, *, upstream_model: str, param: str, maximum: int
) -> dict[str, Any]:
    """`body` with the deployment's limit applied; the same object when nothing
    changes. `maximum` 0 means no known maximum; `param` "" means automatic."""
    if wire == "openai":
        return _openai(body, upstream_model, param, maximum)
    field = "max_tokens" if wire == "anthropic" else "max_output_tokens"
    value = _limit(body.get(field))
    if value is None or maximum <= 0 or value <= maximum:
        return body
    out = {**body, field: maximum}
    if wire == "anthropic":
        _thinking_fit(out, maximum)
    return out


def _openai(body: dict[str, Any], upstream_model: str, param: str, maximum: int) -> dict[str, Any]:
    present = [f for f in _OPENAI_FIELDS if f in body]
    if not present:
        return body
    value = _limit(body[present[0]])
    if value is None:
        return body  # junk or null: the upstream's own error names it
    wanted = param or (
        "max_completion_tokens"
        if openai_wants_max_completion_tokens(upstream_model)
        else present[0]
    )
    clamped = min(value, maximum) if maximum > 0 else value
    if present == [wanted] and clamped == value:
        return body
    out = {k: v for k, v in body.items() if k not in _OPENAI_FIELDS}
    out[wanted] = clamped
    return out


def _thinking_fit(out: dict[str, Any], max_tokens: int) -> None:
    thinking = out.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = _limit(thinking.get("budget_tokens"))
    if budget is None or budget < max_tokens:
        return
    if max_tokens - 1 >= MIN_THINKING_BUDGET:
        out["thinking"] = {**thinking, "budget_tokens": max_tokens - 1}
    else:
        out.pop("thinking")  # no room for Anthropic's minimum budget: answer without
