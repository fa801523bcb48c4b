"""Responses requests: to the Chat Completions hub, on to Anthropic, and prepared for a
Responses upstream. Request bodies are checked against the openai SDK's own request
types where they are the client's, and the chat bodies against the Chat types."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from gateway.protocols.reasoning_carrier import mint_reasoning
from gateway.protocols.registry import route
from gateway.protocols.request_common import TranslationError
from gateway.protocols.responses import REASONING_FORMAT
from gateway.protocols.responses_request import (
    NO_CONVERSATIONS,
    chat_request_from_responses,
    responses_request_prepare,
)

ARGS = {"upstream_model": "up-model", "max_output_tokens": 8192}
SHELL = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
    },
    "strict": False,
}
SIGNED = [
    {
        "type": "reasoning.text",
        "text": "Let me look.",
        "signature": "EqQBsig",
        "format": REASONING_FORMAT,
    },
    {"type": "reasoning.encrypted", "data": "REDACTED", "format": REASONING_FORMAT},
]


def codex_body(**extra: Any) -> dict[str, Any]:
    """A request as Codex sends it (CLIENTS.md)."""
    body: dict[str, Any] = {
        "model": "claude-test",
        "instructions": "You are Codex.",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "<permissions>"}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "list the files"}],
            },
        ],
        "tools": [
            SHELL,
            {"type": "web_search", "external_web_access": False},
            {"type": "namespace", "name": "mcp__docs", "description": "docs", "tools": []},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "thread-1",
        "client_metadata": {"x": "y"},
    }
    body.update(extra)
    return body


def tool_turn(encrypted: str | None) -> list[dict[str, Any]]:
    """Turn N's output items as Codex sends them back in turn N+1."""
    items: list[dict[str, Any]] = []
    if encrypted is not None:
        items.append(
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "Let me look."}],
                "encrypted_content": encrypted,
            }
        )
    items += [
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Listing.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_01Abc",
            "name": "exec_command",
            "arguments": '{"cmd":"ls"}',
        },
        {"type": "function_call_output", "call_id": "call_01Abc", "output": "a.py\nb.py"},
    ]
    return items


def test_the_codex_request_maps_to_chat() -> None:
    chat, dropped = chat_request_from_responses(codex_body())
    assert chat["messages"] == [
        {"role": "system", "content": "You are Codex."},
        {"role": "developer", "content": [{"type": "text", "text": "<permissions>"}]},
        {"role": "user", "content": [{"type": "text", "text": "list the files"}]},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "exec_command",
                "description": "Run a shell command",
                "parameters": SHELL["parameters"],
                "strict": False,
            },
        }
    ]
    assert dropped == ("web_search", "namespace:mcp__docs")
    assert chat["tool_choice"] == "auto" and chat["parallel_tool_calls"] is False
    assert chat["reasoning_effort"] == "medium"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["prompt_cache_key"] == "thread-1"
    for ignored in ("store", "include", "client_metadata", "instructions", "input"):
        assert ignored not in chat


def test_the_chat_body_is_a_valid_chat_request() -> None:
    from openai.types.chat import completion_create_params

    body = codex_body(input=[{"role": "user", "content": "hi"}, *tool_turn(None)])
    chat, _ = chat_request_from_responses(body)
    TypeAdapter(completion_create_params.CompletionCreateParamsStreaming).validate_python(chat)


def test_function_calls_join_the_preceding_assistant_text() -> None:
    two_calls = [
        *tool_turn(None)[:2],
        {"type": "function_call", "call_id": "call_2", "name": "exec_command", "arguments": "{}"},
        tool_turn(None)[2],
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "ok"}],
        },
    ]
    chat, _ = chat_request_from_responses(
        codex_body(input=[{"role": "user", "content": "go"}, *two_calls])
    )
    user, assistant, out1, out2 = chat["messages"][1:]
    assert user == {"role": "user", "content": "go"}
    assert assistant["role"] == "assistant" and assistant["content"] == "Listing."
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_01Abc", "call_2"]
    assert assistant["tool_calls"][0]["function"] == {
        "name": "exec_command",
        "arguments": '{"cmd":"ls"}',
    }
    assert out1 == {"role": "tool", "tool_call_id": "call_01Abc", "content": "a.py\nb.py"}
    assert out2 == {
        "role": "tool",
        "tool_call_id": "call_2",
        "content": [{"type": "text", "text": "ok"}],
    }


def test_tollgate_reasoning_goes_back_as_reasoning_details_and_first_to_anthropic() -> None:
    encrypted = mint_reasoning(SIGNED)
    assert encrypted is not None and encrypted.startswith("tgr1.")
    body = codex_body(input=[{"role": "user", "content": "list"}, *tool_turn(encrypted)])
    chat, _ = chat_request_from_responses(body)
    assistant = chat["messages"][2]
    assert assistant["reasoning_details"] == [{**SIGNED[0], "index": 0}, {**SIGNED[1], "index": 1}]
    out = route("responses", "anthropic").request(
        body, upstream_model="claude-sonnet-4-5", max_output_tokens=8192
    )
    turn = out.body["messages"][1]
    assert turn["role"] == "assistant"
    assert turn["content"][:2] == [
        {"type": "thinking", "thinking": "Let me look.", "signature": "EqQBsig"},
        {"type": "redacted_thinking", "data": "REDACTED"},
    ]
    assert turn["content"][3]["type"] == "tool_use" and turn["content"][3]["id"] == "toolu_01Abc"
    assert out.body["messages"][2]["content"][0]["tool_use_id"] == "toolu_01Abc"
    assert out.body["thinking"]["type"] in ("enabled", "adaptive")  # kept on mid tool loop
    assert out.dropped_tools == ("web_search", "namespace:mcp__docs")


def test_foreign_reasoning_is_dropped_on_chat_wires_and_kept_on_the_responses_wire() -> None:
    body = codex_body(input=[{"role": "user", "content": "list"}, *tool_turn("gAAAAABopenai")])
    chat, _ = chat_request_from_responses(body)
    assert "reasoning_details" not in chat["messages"][2]
    passthrough = responses_request_prepare(body, **ARGS).body
    assert passthrough["input"][1]["encrypted_content"] == "gAAAAABopenai"


def test_the_responses_wire_strips_tollgate_reasoning_and_stores_nothing() -> None:
    body = codex_body(
        input=[{"role": "user", "content": "list"}, *tool_turn(mint_reasoning(SIGNED))], store=True
    )
    before = copy.deepcopy(body)
    prepared = route("responses", "responses").request(body, **ARGS)
    assert prepared.body["model"] == "up-model" and prepared.body["store"] is False
    assert [i.get("type") for i in prepared.body["input"]] == [
        None,
        "message",
        "function_call",
        "function_call_output",
    ]
    assert prepared.body["tools"] == body["tools"] and prepared.dropped_tools == ()
    assert body == before


@pytest.mark.parametrize("wire", ["openai", "anthropic", "responses"])
def test_previous_response_id_is_a_400_on_every_wire(wire: str) -> None:
    with pytest.raises(TranslationError) as caught:
        route("responses", wire).request(codex_body(previous_response_id="resp_1"), **ARGS)
    assert caught.value.status == 400 and caught.value.message == NO_CONVERSATIONS
    assert caught.value.param == "previous_response_id"


def test_store_true_is_accepted() -> None:
    chat, _ = chat_request_from_responses(codex_body(store=True))
    assert "store" not in chat


def test_a_tool_choice_naming_a_dropped_tool_is_a_400() -> None:
    for choice in (
        {"type": "web_search_preview"},
        {"type": "mcp", "server_label": "x"},
        {"type": "custom", "name": "apply_patch"},
    ):
        with pytest.raises(TranslationError) as caught:
            chat_request_from_responses(codex_body(tool_choice=choice))
        assert caught.value.param == "tool_choice" and "cannot run" in caught.value.message
    with pytest.raises(TranslationError):
        chat_request_from_responses(
            codex_body(tools=[{"type": "web_search"}], tool_choice="required")
        )


def test_tool_choice_forms() -> None:
    chat, _ = chat_request_from_responses(
        codex_body(tool_choice={"type": "function", "name": "exec_command"})
    )
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "exec_command"}}
    chat, _ = chat_request_from_responses(codex_body(tool_choice="required"))
    assert chat["tool_choice"] == "required"
    chat, _ = chat_request_from_responses(
        codex_body(tools=[{"type": "web_search"}], parallel_tool_calls=True)
    )
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat
    with pytest.raises(TranslationError):
        chat_request_from_responses(codex_body(tool_choice={"type": "function", "name": "nope"}))


def test_parameters() -> None:
    body = codex_body(
        text={
            "format": {
                "type": "json_schema",
                "name": "out",
                "schema": {"type": "object"},
                "strict": True,
            },
            "verbosity": "low",
        },
        max_output_tokens=500,
        temperature=0.5,
        top_p=0.9,
        user="u1",
        safety_identifier="s1",
        metadata={"a": "b"},
        truncation="auto",
        service_tier="priority",
    )
    chat, _ = chat_request_from_responses(body)
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert chat["verbosity"] == "low" and chat["max_completion_tokens"] == 500
    assert (chat["temperature"], chat["top_p"], chat["user"], chat["safety_identifier"]) == (
        0.5,
        0.9,
        "u1",
        "s1",
    )
    for dropped in ("metadata", "truncation", "service_tier"):
        assert dropped not in chat
    chat, _ = chat_request_from_responses(codex_body(text={"format": {"type": "json_object"}}))
    assert chat["response_format"] == {"type": "json_object"}


def test_a_string_input_and_images() -> None:
    chat, _ = chat_request_from_responses({"model": "m", "input": "hello"})
    assert chat == {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    chat, _ = chat_request_from_responses(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,JVBE",
                            "filename": "a.pdf",
                        },
                    ],
                }
            ],
        }
    )
    assert chat["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        },
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "input_image", "file_id": "file_1", "detail": "auto"},
            "input[0].content[0].file_id",
        ),
        ({"type": "input_file", "file_id": "file_1"}, "input[0].content[0]"),
        ({"type": "input_file", "file_url": "https://x/a.pdf"}, "input[0].content[0]"),
        ({"type": "input_audio", "input_audio": {}}, "input[0].content[0].type"),
    ],
)
def test_files_by_reference_are_a_400(part: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        chat_request_from_responses({"model": "m", "input": [{"role": "user", "content": [part]}]})
    assert caught.value.param == param


def test_images_in_tool_outputs_follow_the_tool_messages() -> None:
    items = [
        {"role": "user", "content": "look"},
        {"type": "function_call", "call_id": "call_1", "name": "view_image", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": [{"type": "input_image", "image_url": "data:image/png;base64,iVBO"}],
        },
    ]
    chat, _ = chat_request_from_responses({"model": "m", "input": items})
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant", "tool", "user"]
    assert chat["messages"][3]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBO"},
    }
    anthropic = route("responses", "anthropic").request({"model": "m", "input": items}, **ARGS).body
    assert [b["type"] for b in anthropic["messages"][2]["content"]] == [
        "tool_result",
        "text",
        "image",
    ]


def test_unknown_and_stateful_items_are_a_400_and_server_tool_items_are_skipped() -> None:
    with pytest.raises(TranslationError) as caught:
        chat_request_from_responses(
            {"model": "m", "input": [{"type": "local_shell_call", "id": "x"}]}
        )
    assert caught.value.param == "input[0].type"
    with pytest.raises(TranslationError):
        chat_request_from_responses(
            {"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}
        )
    chat, _ = chat_request_from_responses(
        {
            "model": "m",
            "input": [{"type": "web_search_call", "id": "ws_1"}, {"role": "user", "content": "hi"}],
        }
    )
    assert chat["messages"] == [{"role": "user", "content": "hi"}]
    for field, value in (("background", True), ("conversation", "conv_1"), ("prompt", {"id": "p"})):
        with pytest.raises(TranslationError):
            chat_request_from_responses({"model": "m", "input": "x", field: value})
    with pytest.raises(TranslationError):
        chat_request_from_responses({"model": "m"})


def test_a_damaged_tollgate_reasoning_item_is_a_400() -> None:
    with pytest.raises(TranslationError) as caught:
        chat_request_from_responses(
            {
                "model": "m",
                "input": [
                    {
                        "type": "reasoning",
                        "id": "rs",
                        "summary": [],
                        "encrypted_content": "tgr1.!!",
                    },
                    {"role": "user", "content": "x"},
                ],
            }
        )
    assert caught.value.param == "input[0].encrypted_content"


def test_anthropic_translation_errors_name_the_responses_item() -> None:
    items = [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "not json"},
        {"type": "function_call_output", "call_id": "call_1", "output": "x"},
    ]
    with pytest.raises(TranslationError) as caught:
        route("responses", "anthropic").request(
            {"model": "m", "input": items, "tools": [SHELL]}, **ARGS
        )
    assert caught.value.param == "input[1]"
    with pytest.raises(TranslationError) as caught:
        route("responses", "anthropic").request(
            {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}, **ARGS
        )
    assert caught.value.param == "text.format"


def test_custom_tool_calls_in_history_keep_their_outputs_paired() -> None:
    items = [
        {"role": "user", "content": "patch"},
        {
            "type": "custom_tool_call",
            "call_id": "call_p",
            "name": "apply_patch",
            "input": "*** Begin",
        },
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "done"},
    ]
    chat, _ = chat_request_from_responses({"model": "m", "input": items})
    call = chat["messages"][1]["tool_calls"][0]
    assert call["function"] == {
        "name": "apply_patch",
        "arguments": json.dumps({"input": "*** Begin"}),
    }
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "call_p", "content": "done"}


def test_the_openai_wire_body_loses_reasoning_details_and_keeps_usage() -> None:
    body = codex_body(
        input=[{"role": "user", "content": "list"}, *tool_turn(mint_reasoning(SIGNED))]
    )
    prepared = route("responses", "openai").request(body, **ARGS)
    assert prepared.body["model"] == "up-model"
    assert all("reasoning_details" not in m for m in prepared.body["messages"])
    assert prepared.body["stream_options"] == {"include_usage": True}


def test_reasoning_effort_is_left_out_for_openai_models_that_refuse_it() -> None:
    r = route("responses", "openai")
    body = codex_body()
    assert (
        r.request(body, upstream_model="gpt-5.5", max_output_tokens=1).body["reasoning_effort"]
        == "medium"
    )
    assert (
        "reasoning_effort"
        not in r.request(body, upstream_model="gpt-4.1", max_output_tokens=1).body
    )
