"""Each deployment's output limit on the body sent to it (gateway.protocols.output_limits)."""

from __future__ import annotations

import pytest

from gateway.protocols.output_limits import (
    openai_wants_max_completion_tokens,
    output_limit_apply,
)


@pytest.mark.parametrize(
    ("model", "wants"),
    [
        ("gpt-5.5", True),
        ("gpt-6.2-sol", True),
        ("o3-mini", True),
        ("o4", True),
        ("openai/gpt-5", True),
        ("gpt-4.1", False),
        ("gpt-4o", False),
        ("deepseek-v4-pro", False),
        ("mistral-medium-2604", False),
        ("omni-moderation", False),
    ],
)
def test_which_openai_models_want_max_completion_tokens(model, wants):
    assert openai_wants_max_completion_tokens(model) is wants


def apply(body, wire="openai", model="gpt-5.5", param="", maximum=4096):
    return output_limit_apply(body, wire, upstream_model=model, param=param, maximum=maximum)


def test_max_tokens_becomes_max_completion_tokens_for_reasoning_models_and_is_clamped():
    assert apply({"max_tokens": 32000}) == {"max_completion_tokens": 4096}
    assert apply({"max_tokens": 100}) == {"max_completion_tokens": 100}


def test_other_models_keep_the_clients_field_unless_the_deployment_names_one():
    assert apply({"max_tokens": 100}, model="gpt-4.1") == {"max_tokens": 100}
    assert apply({"max_completion_tokens": 100}, model="deepseek-v4-pro", param="max_tokens") == {
        "max_tokens": 100
    }
    assert apply({"max_tokens": 100}, model="gpt-4.1", param="max_completion_tokens") == {
        "max_completion_tokens": 100
    }


def test_a_body_that_needs_nothing_is_returned_as_is():
    body = {"max_completion_tokens": 100, "messages": []}
    assert apply(body) is body
    unlimited = {"messages": []}
    assert apply(unlimited) is unlimited
    junk = {"max_tokens": "lots"}
    assert apply(junk) is junk  # the upstream's own error names it


def test_no_known_maximum_renames_without_clamping():
    assert apply({"max_tokens": 999_999}, maximum=0) == {"max_completion_tokens": 999_999}


def test_anthropic_and_responses_limits_are_clamped():
    assert apply({"max_tokens": 128000}, wire="anthropic", maximum=64000) == {"max_tokens": 64000}
    assert apply({"max_output_tokens": 9000}, wire="responses") == {"max_output_tokens": 4096}
    body = {"max_tokens": 100}
    assert apply(body, wire="anthropic") is body


@pytest.mark.parametrize(
    ("maximum", "thinking"),
    [
        (8192, {"type": "enabled", "budget_tokens": 8191}),
        (1024, None),  # no room for the 1,024-token minimum budget: no thinking
    ],
)
def test_a_clamped_anthropic_limit_keeps_the_thinking_budget_below_it(maximum, thinking):
    body = {"max_tokens": 16384, "thinking": {"type": "enabled", "budget_tokens": 10000}}

    out = apply(body, wire="anthropic", maximum=maximum)

    assert out["max_tokens"] == maximum
    assert out.get("thinking") == thinking
