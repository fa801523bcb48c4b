"""`FakeUpstream`, the raw ASGI app: routing, authentication, scripted behaviours, the
request log, rate-limit headers, and sending JSON answers and SSE streams.

What is answered lives in `reply`; how each vendor spells it lives in `openai_wire`,
`anthropic_wire` (requests) and `anthropic_render` (replies). The hot path (nothing
scripted) does one JSON parse, one walk over the messages and one serialisation, and
sends each stream event as it is built.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from . import anthropic_render, anthropic_wire, openai_wire, responses_render, responses_wire
from .cache import PromptCache
from .errors import (
    ANTHROPIC,
    OPENAI,
    WireError,
    anthropic_error,
    default_error_body,
    dumps,
    openai_error,
    stream_error_body,
)
from .ratelimits import RateLimitHeaders
from .reply import Conversation, Plan, plan_reply
from .script import Behaviour, ScriptBook

DEFAULT_MODELS = (
    "gpt-5.5",
    "gpt-5.4-mini",
    "gpt-4.1",
    "gpt-4o",
    "gpt-4o-mini",
    "o4-mini",
    "claude-opus-4-7",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
)
# Model-name fragments of Claude models that refuse temperature and top_p together.
DEFAULT_SAMPLING_EXCLUSIVE = (
    "opus-4-1",
    "opus-4.1",
    "4-5",
    "4.5",
    "4-6",
    "4.6",
    "4-7",
    "4.7",
    "4-8",
    "4.8",
    "opus-5",
    "sonnet-5",
    "haiku-5",
    "fable",
    "mythos",
)
OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API "
    "key from https://platform.openai.com/account/api-keys."
)
OPENAI_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
ANTHROPIC_BAD_JSON = "There was an error parsing the body of the request: invalid JSON"

_JSON = (b"content-type", b"application/json")
_SSE = ((b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"))
Handler = Callable[["Exchange", Any], Awaitable[None]]


def _betas(headers: dict[str, str]) -> list[str]:
    return [b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()]


class Exchange:
    """One request in flight."""

    __slots__ = ("behaviour", "headers", "model", "protocol", "receive", "request_id", "send")

    def __init__(self, receive: Any, send: Any, headers: dict[str, str], protocol: str) -> None:
        self.receive, self.send, self.headers, self.protocol = receive, send, headers, protocol
        self.request_id = (
            ("req_011C" + os.urandom(10).hex())
            if protocol == ANTHROPIC
            else ("req_" + os.urandom(16).hex())
        )
        self.behaviour: Behaviour | None = None
        self.model = ""

    def id_header(self) -> tuple[bytes, bytes]:
        name = b"request-id" if self.protocol == ANTHROPIC else b"x-request-id"
        return name, self.request_id.encode()

    def extra_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self.behaviour.headers if self.behaviour else ()


class FakeUpstream:
    """An OpenAI and Anthropic upstream in one ASGI app (see the package docstring)."""

    def __init__(
        self,
        *,
        valid_keys: Iterable[str] | None = None,
        models: Iterable[str] = DEFAULT_MODELS,
        sampling_exclusive_models: Iterable[str] = DEFAULT_SAMPLING_EXCLUSIVE,
        openai_cache_min_tokens: int = 1024,
        max_recorded_requests: int = 1000,
        default: Behaviour | None = None,
        tools_when_asked: bool = False,
    ) -> None:
        self._settings: dict[str, Any] = {
            "valid_keys": None if valid_keys is None else frozenset(valid_keys),
            "models": tuple(models),
            "sampling_exclusive_models": tuple(sampling_exclusive_models),
            "openai_cache_min_tokens": openai_cache_min_tokens,
        }
        self._apply_settings()
        self.cache = PromptCache()
        self._scripts = ScriptBook()
        # What an unscripted request gets (`--delay-ms`, `--chunk-delay-ms`: a model's
        # pace, for benchmarks), else None: answer at once.
        self._default = default
        # The `make run` demo: with tools offered, call one only when the user's text
        # says "tool" (a coding agent's every turn would otherwise call its first tool,
        # and Claude Code's first tool starts a sub-agent, which does the same...).
        self.tools_when_asked = tools_when_asked
        self._requests: deque[dict[str, Any]] = deque(maxlen=max_recorded_requests)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self._openai_chat,
            ("POST", "/v1/responses"): self._openai_responses,
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/messages"): self._anthropic_messages,
            ("POST", "/v1/messages/count_tokens"): self._anthropic_count,
        }
        self._limit_headers = RateLimitHeaders().for_protocol

    # -- the Python face, for in-process tests -------------------------------------

    def script(self, model: str, behaviours: list[dict[str, Any]]) -> None:
        """Queue behaviours for requests naming `model` ("*": any model)."""
        self._scripts.add(model, behaviours)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Requests received (method, path, query, headers, JSON body), newest last."""
        return list(self._requests)

    def reset(self, *, settings: bool = False) -> None:
        """Forget scripts, recorded requests and the prompt cache; with `settings`, also
        undo changes a test made to the settings below."""
        self._scripts.clear()
        self._requests.clear()
        self.cache.clear()
        if settings:
            self._apply_settings()

    def _apply_settings(self) -> None:
        settings = self._settings
        # None: any non-empty key is accepted except those starting with "bad-".
        self.valid_keys: set[str] | None = (
            None if settings["valid_keys"] is None else set(settings["valid_keys"])
        )
        self.models: list[str] = list(settings["models"])
        self.sampling_exclusive_models: tuple[str, ...] = settings["sampling_exclusive_models"]
        self.openai_cache_min_tokens: int = settings["openai_cache_min_tokens"]
        # Arguments the "model" calls a tool with, by tool name, instead of the example
        # arguments of its schema (tests make an agent's own tool write a real file).
        self.tool_arguments: dict[str, dict[str, Any]] = {}
        # (path, content): on a user turn the "model" writes that file with the
        # request's own file-writing tool (or shell tool), whatever the agent calls it.
        self.file_write: tuple[str, str] | None = None

    def key_accepted(self, key: str) -> bool:
        if not key:
            return False
        if self.valid_keys is not None:
            return key in self.valid_keys
        return not key.startswith("bad-")

    # -- ASGI ----------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path, method = scope["path"], scope["method"]
        if path.startswith("/_fake/"):
            await self._admin(method, path, body, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            payload, bad_json = (json.loads(body) if body else None), False
        except ValueError:
            payload, bad_json = None, True
        self._requests.append(
            {
                "method": method,
                "path": path,
                "query": scope.get("query_string", b"").decode("latin-1"),
                "headers": headers,
                "body": payload,
            }
        )
        anthropic = path.startswith("/v1/messages") or (
            path == "/v1/models" and "anthropic-version" in headers
        )
        exchange = Exchange(receive, send, headers, ANTHROPIC if anthropic else OPENAI)
        try:
            handler = self._routes.get((method, path))
            if handler is None:
                raise (
                    anthropic_error("Not Found", status=404)
                    if anthropic
                    else openai_error(f"Invalid URL ({method} {path})", status=404)
                )
            self._authenticate(exchange)
            if bad_json:
                raise (
                    anthropic_error(ANTHROPIC_BAD_JSON)
                    if anthropic
                    else openai_error(OPENAI_BAD_JSON)
                )
            await handler(exchange, payload)
        except WireError as error:
            await self._send_error(exchange, error.status, error.body)

    def _authenticate(self, ex: Exchange) -> None:
        if ex.protocol == OPENAI:
            scheme, _, key = ex.headers.get("authorization", "").partition(" ")
            key = key.strip()
            if scheme.lower() != "bearer" or not key:
                raise openai_error(OPENAI_NO_KEY, status=401)
            if not self.key_accepted(key):
                masked = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:]
                raise openai_error(
                    f"Incorrect API key provided: {masked}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    status=401,
                    code="invalid_api_key",
                )
            return
        # Anthropic takes the key in x-api-key or, as its current SDKs send it, as Bearer.
        key = ex.headers.get("x-api-key", "")
        if not key:
            scheme, _, bearer = ex.headers.get("authorization", "").partition(" ")
            key = bearer.strip() if scheme.lower() == "bearer" else ""
        if not key:
            raise anthropic_error("x-api-key header is required", status=401)
        if not self.key_accepted(key):
            raise anthropic_error("invalid x-api-key", status=401)
        if not ex.headers.get("anthropic-version"):
            raise anthropic_error("anthropic-version: header is required")

    # -- routes --------------------------------------------------------------------

    async def _scripted(self, ex: Exchange, body: Any) -> bool:
        """Take this request's scripted behaviour, if any, and play its opening part.
        True when that already answered the request."""
        model = body.get("model") if isinstance(body, dict) else None
        ex.model = model if isinstance(model, str) else ""
        behaviour = ex.behaviour = self._scripts.pop(ex.model) or self._default
        if behaviour is None:
            return False
        if behaviour.delay_ms:
            await asyncio.sleep(behaviour.delay_ms / 1000)
        if behaviour.hang:
            await _wait_for_disconnect(ex.receive)
            return True
        if behaviour.replay is not None:
            await self._replay(ex, behaviour)
            return True
        if behaviour.status is not None:
            error = (
                behaviour.body
                if behaviour.body is not None
                else default_error_body(ex.protocol, behaviour.status, ex.model)
            )
            await self._send_error(ex, behaviour.status, error)
            return True
        return False

    def _plan(self, conv: Conversation) -> Plan:
        """The reply, with the settings tests gave the "model" (tool arguments, the
        file to write, the demo's tool rule)."""
        conv.tool_arguments = self.tool_arguments
        conv.file_write = self.file_write
        conv.tools_when_asked = self.tools_when_asked
        return plan_reply(conv)

    def _openai_cached(self, conv: Conversation, prompt_tokens: int) -> int:
        """OpenAI's automatic caching: tokens read from cache, once the prompt is long
        enough."""
        if prompt_tokens < self.openai_cache_min_tokens:
            return 0
        units = list(range(len(conv.units)))
        return self.cache.openai(conv.model, conv.units, units, self.openai_cache_min_tokens)

    async def _openai_chat(self, ex: Exchange, body: Any) -> None:
        if await self._scripted(ex, body):
            return
        conv = openai_wire.parse_chat(body)
        prompt_tokens = conv.input_tokens()
        cached = self._openai_cached(conv, prompt_tokens)
        plan = self._plan(conv)
        usage = openai_wire.usage(prompt_tokens, cached, plan)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await self._stream(
                ex, openai_wire.stream_events(conv.model, plan, usage, include_usage)
            )
        else:
            await self._answer(ex, openai_wire.completion(conv.model, plan, usage))

    async def _openai_responses(self, ex: Exchange, body: Any) -> None:
        if await self._scripted(ex, body):
            return
        conv, options = responses_wire.parse_responses(body)
        input_tokens = conv.input_tokens()
        cached = self._openai_cached(conv, input_tokens)
        plan = self._plan(conv)
        usage = responses_render.usage(input_tokens, cached, plan)
        if body.get("stream"):
            await self._stream(
                ex,
                responses_render.stream_events(conv.model, plan, usage, options),
                error_event=responses_render.stream_error_event,
            )
        else:
            await self._answer(ex, responses_render.response(conv.model, plan, usage, options))

    async def _anthropic_messages(self, ex: Exchange, body: Any) -> None:
        if await self._scripted(ex, body):
            return
        conv = anthropic_wire.parse_messages(
            body, sampling_exclusive=self.sampling_exclusive_models, betas=_betas(ex.headers)
        )
        cache = self.cache.anthropic(conv.model, conv.units)
        plan = self._plan(conv)
        uncached = conv.input_tokens() - cache.read - cache.write
        usage = anthropic_render.usage(uncached, cache, plan.output_tokens)
        if body.get("stream"):
            await self._stream(ex, anthropic_render.stream_events(conv.model, plan, usage))
        else:
            await self._answer(ex, anthropic_render.message(conv.model, plan, usage))

    async def _anthropic_count(self, ex: Exchange, body: Any) -> None:
        if await self._scripted(ex, body):
            return
        conv = anthropic_wire.parse_messages(
            body,
            count_only=True,
            sampling_exclusive=self.sampling_exclusive_models,
            betas=_betas(ex.headers),
        )
        await self._answer(ex, dumps({"input_tokens": conv.input_tokens()}))

    async def _models(self, ex: Exchange, body: Any) -> None:
        if ex.protocol == ANTHROPIC:
            await self._answer(ex, anthropic_render.models_list(self.models))
        else:
            await self._answer(ex, openai_wire.models_list(self.models))

    # -- sending -------------------------------------------------------------------

    async def _send_error(self, ex: Exchange, status: int, body: dict[str, Any] | str) -> None:
        if isinstance(body, str):
            content, kind = body.encode(), (b"content-type", b"text/html; charset=utf-8")
        else:
            if (
                ex.protocol == ANTHROPIC
                and body.get("type") == "error"
                and "request_id" not in body
            ):
                body = dict(body, request_id=ex.request_id)
            content, kind = dumps(body), _JSON
        headers = [
            kind,
            (b"content-length", str(len(content)).encode()),
            ex.id_header(),
            *ex.extra_headers(),
        ]
        await ex.send({"type": "http.response.start", "status": status, "headers": headers})
        await ex.send({"type": "http.response.body", "body": content})

    async def _answer(self, ex: Exchange, content: bytes) -> None:
        behaviour = ex.behaviour
        if behaviour is not None and behaviour.stream_error_after_chunks is not None:
            # unstreamed, a failure midway is simply the vendor's error status
            status = 500 if ex.protocol == OPENAI else 529
            body = behaviour.body if behaviour.body is not None else stream_error_body(ex.protocol)
            await self._send_error(ex, status, body)
            return
        headers = [
            _JSON,
            (b"content-length", str(len(content)).encode()),
            ex.id_header(),
            *self._limit_headers(ex.protocol),
            *ex.extra_headers(),
        ]
        await ex.send({"type": "http.response.start", "status": 200, "headers": headers})
        if behaviour is not None and behaviour.drop_after_chunks is not None:
            return  # head sent, body never: the server closes the connection
        await ex.send({"type": "http.response.body", "body": content})

    async def _stream(
        self,
        ex: Exchange,
        events: list[bytes],
        error_event: Callable[[dict[str, Any], int], bytes] | None = None,
    ) -> None:
        headers = [*_SSE, ex.id_header(), *self._limit_headers(ex.protocol), *ex.extra_headers()]
        send = ex.send
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        behaviour = ex.behaviour
        if behaviour is None:
            last = len(events) - 1
            for i, event in enumerate(events):
                await send({"type": "http.response.body", "body": event, "more_body": i < last})
            return
        drop, fail = behaviour.drop_after_chunks, behaviour.stream_error_after_chunks
        delay = behaviour.chunk_delay_ms / 1000
        for i, event in enumerate(events):
            if drop is not None and i >= drop:
                return  # the response never completes: the server drops the connection
            if fail is not None and i >= fail:
                error = (
                    behaviour.body
                    if isinstance(behaviour.body, dict)
                    else stream_error_body(ex.protocol)
                )
                if error_event is not None:  # the Responses wire numbers its events
                    payload = error_event(error, i)
                else:
                    wire = openai_wire if ex.protocol == OPENAI else anthropic_render
                    payload = wire.stream_error_event(error)
                await send({"type": "http.response.body", "body": payload})
                return
            if delay and i:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if drop is None:
            await send({"type": "http.response.body", "body": b""})

    async def _replay(self, ex: Exchange, behaviour: Behaviour) -> None:
        """Send a recorded answer as it was recorded (see `script`): its status, only its
        headers, and its body, a stream event by event."""
        replay = behaviour.replay
        assert replay is not None
        send = ex.send
        await send(
            {
                "type": "http.response.start",
                "status": replay.status,
                "headers": list(replay.headers),
            }
        )
        drop, delay = behaviour.drop_after_chunks, behaviour.chunk_delay_ms / 1000
        for i, event in enumerate(replay.events):
            if drop is not None and i >= drop:
                return  # never completes: the server drops the connection
            if delay and i:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    # -- admin API -----------------------------------------------------------------

    async def _admin(self, method: str, path: str, body: bytes, send: Any) -> None:
        status: int = 200
        payload: Any = {"ok": True}
        if (method, path) == ("POST", "/_fake/script"):
            try:
                data = json.loads(body or b"{}")
                self.script(data.get("model"), data.get("behaviours"))
            except (ValueError, AttributeError, TypeError) as exc:
                status, payload = 400, {"error": str(exc)}
        elif (method, path) == ("GET", "/_fake/requests"):
            payload = self.requests
        elif (method, path) == ("POST", "/_fake/reset"):
            self.reset()
        else:
            status, payload = 404, {"error": f"no admin route {method} {path}"}
        content = dumps(payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Any) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _wait_for_disconnect(receive: Any) -> None:
    """Hold the request open: the next ASGI message is the client going away."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
