"""A fake LLM upstream: a real HTTP server (raw ASGI) speaking OpenAI Chat Completions,
OpenAI Responses and Anthropic Messages, for the gateway's tests, benchmarks and the
`make run` demo.

Routes: `POST /v1/chat/completions`, `POST /v1/responses` (see `responses_wire` and
`responses_render`), `GET /v1/models` (Anthropic's shape when an `anthropic-version`
header is sent), `POST /v1/messages`,
`POST /v1/messages/count_tokens`; admin: `POST /_fake/script`, `GET /_fake/requests`,
`POST /_fake/reset` (the same as `app.script()`, `app.requests`, `app.reset()`). The
request log keeps headers as received, API keys included: it is a test fake.

Auth: OpenAI wants `Authorization: Bearer <key>`; Anthropic wants the key in
`x-api-key` or as Bearer (current SDKs send the latter; 401 without either) and an
`anthropic-version` header (400 without, as upstream). By default any non-empty
key is valid except one starting with `bad-`; `FakeUpstream(valid_keys={...})` allows
only those keys.

Replies (the same rules in every protocol; Responses `function_call_output` items are
tool results, `function_call` items tool calls in history):
- Last turn a user message: "Echo: <its text>" (text parts joined by a space).
- Last turn tool results: "Tool result: <each result's text, joined by ' | '>".
- `tools` present, last turn a user message, tool choice not none: one call to the
  first tool (or the forced one) with arguments holding the schema's required
  properties (string "<name>-value", number/integer its minimum or 1, boolean true,
  array [], object recursed; enum/const/default win). With parallel calls allowed,
  2+ tools and "parallel" in the user text: the first two tools. With "narrate" in the
  text, a text "Calling <names>." comes before the calls. After tool results, a
  forced/required tool choice calls again; auto answers in text.
- Anthropic `thinking` (enabled or adaptive): a thinking block "Let me think about this
  request." with a signature the fake checks when it is sent back.
- Responses with `reasoning.effort` (not none): a reasoning item first, its summary
  "Let me think about this request." when `reasoning.summary` is set, and a signed
  OpenAI-style `encrypted_content` with `include: ["reasoning.encrypted_content"]`,
  checked when sent back (foreign encrypted content: 400 invalid_encrypted_content).
- Stop sequences cut the text at their first match (stop reason stop_sequence).

Tokens (deterministic; words = `len(text.split())`):
- input = sum over the prompt of: words of each text (system, messages, text parts,
  tool results); 10 per tool call in history; 10 + words(description) per tool
  definition; 100 per image/document/audio/file; 0 for earlier thinking blocks. The
  same conversation costs the same in every protocol.
- output = words of the reply text (each word is one stream chunk) + 10 per tool call
  + words of the thinking text + OpenAI reasoning tokens (reasoning_effort low 8,
  medium 16, high 32, xhigh 64). `max_tokens`/`max_completion_tokens` truncates in
  that order (thinking, text, tool calls) with stop reason max_tokens / length.
- OpenAI: prompt_tokens = input (cached included); completion_tokens = output
  (reasoning included). Responses: input_tokens / output_tokens likewise, with
  `input_tokens_details.cached_tokens` and `output_tokens_details.reasoning_tokens`.
  Anthropic: input_tokens = input - cache_read - cache_write.

Prompt caching (see `cache`): Anthropic `cache_control` pieces (and top-level
`cache_control` on the last block) are written the first time a prefix is seen
(split by ttl in `cache_creation`) and read afterwards; OpenAI caches automatically
when the prompt has at least `openai_cache_min_tokens` (default 1024) tokens, reported
in `prompt_tokens_details.cached_tokens`.

Scripted failures, and `replay` (answer with a recorded response byte for byte: its
status, only its headers, a `text/event-stream` body event by event; see
`tests/fixtures/vendor_responses/`): see `script`.
"""

from .app import FakeUpstream

__all__ = ["FakeUpstream"]
