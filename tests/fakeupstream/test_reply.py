"""The fake's reply rules, without HTTP."""

from __future__ import annotations

import json

import openai
import pytest

from testkit.fakeupstream.reply import Conversation, plan_reply

# -- the reply rules, without HTTP -----------------------------------------------------


def test_a_stop_sequence_cuts_the_reply():
    conv = Conversation(
        model="m", units=[], last_kind="user", last_text="one STOP two", tools=[], stop=["STOP"]
    )

    plan = plan_reply(conv)

    assert (plan.text, plan.stop, plan.stop_sequence) == ("Echo: one", "stop_sequence", "STOP")


def test_a_forced_tool_is_called_even_after_a_tool_result():
    conv = Conversation(
        model="m",
        units=[],
        last_kind="tool_result",
        last_text="done",
        tools=[("a", {}), ("b", {})],
        tool_mode="tool",
        forced_tool="b",
    )

    plan = plan_reply(conv)

    assert plan.tool_calls == [("b", "{}")] and plan.stop == "tool_use"


def test_a_default_behaviour_serves_every_unscripted_request():
    from testkit.fakeupstream import FakeUpstream
    from testkit.fakeupstream.script import Behaviour
    from testkit.tenants import ServedApp

    app = FakeUpstream(default=Behaviour.parse({"status": 503}))
    served = ServedApp(app, lifespan="off")
    try:
        app.script("gpt-4o", [{"status": 429}])
        oai = openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-test", max_retries=0)
        statuses = []
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as info:
                oai.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )
            statuses.append(info.value.status_code)
    finally:
        served.stop()
    assert statuses == [429, 503, 503]  # the script first, then the default


# -- writing a file with the agent's own tool -------------------------------------------
CLAUDE_CODE_WRITE = (
    "Write",
    {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
    },
)
READ = ("Read", {"type": "object", "properties": {"file_path": {"type": "string"}}})
SHELL = ("exec_command", {"type": "object", "properties": {"cmd": {"type": "string"}}})


def _writing(tools, last_kind="user"):
    conv = Conversation(
        model="m",
        units=[],
        last_kind=last_kind,
        last_text="go",
        tools=tools,
        file_write=("/w/hello.txt", "it's here"),
    )
    return plan_reply(conv)


def test_file_write_picks_the_tool_that_takes_a_path_and_a_content_whatever_its_place():
    plan = _writing([READ, SHELL, CLAUDE_CODE_WRITE])

    assert [(name, json.loads(args)) for name, args in plan.tool_calls] == [
        ("Write", {"file_path": "/w/hello.txt", "content": "it's here"})
    ]


def test_file_write_falls_back_to_a_shell_tool_with_the_content_quoted():
    plan = _writing([READ, SHELL])

    [(name, args)] = plan.tool_calls
    assert name == "exec_command"
    assert json.loads(args) == {"cmd": "printf %s 'it'\"'\"'s here' > /w/hello.txt"}


def test_file_write_answers_in_text_once_the_tool_result_is_back():
    plan = _writing([CLAUDE_CODE_WRITE], last_kind="tool_result")

    assert plan.tool_calls == [] and plan.text.startswith("Tool result:")


def test_file_write_uses_clines_editor_or_its_apply_patch():
    editor = (
        "editor",
        {"type": "object", "properties": {"path": {}, "new_text": {}, "old_text": {}}},
    )
    patch = ("apply_patch", {"type": "object", "properties": {"input": {"type": "string"}}})

    [(name, args)] = _writing([editor]).tool_calls
    assert (name, json.loads(args)) == ("editor", {"path": "/w/hello.txt", "new_text": "it's here"})
    [(name, args)] = _writing([patch]).tool_calls
    assert json.loads(args) == {
        "input": "*** Begin Patch\n*** Add File: /w/hello.txt\n+it's here\n*** End Patch"
    }


def test_the_demo_calls_a_tool_only_when_the_user_asks_for_one():
    def conv(text):
        return Conversation(
            model="m",
            units=[],
            last_kind="user",
            last_text=text,
            tools=[READ],
            tools_when_asked=True,
        )

    assert plan_reply(conv("create notes.txt")).tool_calls == []
    assert [name for name, _ in plan_reply(conv("use a tool")).tool_calls] == ["Read"]


def test_the_demo_never_calls_a_tool_that_could_start_a_loop():
    agent = ("Agent", {"type": "object", "properties": {"prompt": {"type": "string"}}})
    conv = Conversation(
        model="m",
        units=[],
        last_kind="user",
        last_text="use a tool",
        tools=[agent, SHELL, CLAUDE_CODE_WRITE],
        tools_when_asked=True,
    )

    plan = plan_reply(conv)

    assert plan.tool_calls == [] and plan.text == "Echo: use a tool"
