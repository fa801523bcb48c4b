"""Request-rate, token-rate and concurrency limits per API key and per organisation.

Two levels may limit a request: its key, and its organisation (all its keys together).
Each level has up to three limits, resolved when the key is loaded (gateway.admission
`KeyInfo`: the key's or organisation's own value, else its group's default; None = no
limit), and a request is admitted only if every level allows it:

    RPM          requests admitted in the level's current minute
    TPM          tokens (input + output) counted in the level's current minute
    concurrency  requests admitted and not yet settled

Windows are fixed: a level's minute starts with the first request admitted after the
previous one ended, and lasts 60 s (its counters then start again from zero). A request
counts its estimate at admission (the input estimate plus the most output it may ask
for, as the credit hold does; capped at the level's TPM, so one request bigger than the
whole budget is admitted into an empty window) and is corrected to the tokens the
upstream reported when it is settled (charging.settle): the difference is given back in
the same window, and tokens beyond the estimate are added to whichever window is
current. Refused requests count nothing. A concurrency slot is taken at admission and
given back at settlement (once per request, whatever happened); a slot whose request
never settles (its worker died) lapses after SLOT_TTL_SECONDS.

`RedisRateLimitStore` (every worker, one Lua script per admission and one per release,
batched like the credit scripts) and `LocalRateLimitStore` (this process only, the
embedded default) implement `RateLimitStore`; gateway.runtime picks one with the credit
store. Over a limit the client gets a 429 in its protocol's shape with `retry-after` and
the vendor's rate-limit headers; admitted requests get the remaining budget in the same
headers.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from billing.credit import ScriptBatch
from gateway.admission import KeyInfo
from gateway.asgi_io import Message, Send
from gateway.catalog import ModelEntry
from gateway.protocols.errors import GatewayError

WINDOW_MS = 60_000
# A slot whose request never settled (its process was killed) frees itself after this.
# A request still running after it no longer holds its slot (it is not cut short).
SLOT_TTL_SECONDS = 30 * 60

Kind = Literal["requests", "tokens", "concurrency"]


@dataclass(frozen=True, slots=True)
class Level:
    """One level's limits (None = no limit); `scope` is "key" or "organisation"."""

    scope: str
    ident: int
    name: str
    rpm: int | None
    tpm: int | None
    concurrency: int | None

    @property
    def counts(self) -> bool:
        """Whether the level has a per-minute window to count in."""
        return bool(self.rpm or self.tpm)


def levels_of(key: KeyInfo) -> tuple[Level, ...]:
    """The levels that limit this key's requests, the key's first."""
    levels = (
        Level("key", key.key_id, key.name, key.key_rpm, key.key_tpm, key.key_concurrency),
        Level(
            "organisation",
            key.organisation_id,
            key.organisation_slug,
            key.org_rpm,
            key.org_tpm,
            key.org_concurrency,
        ),
    )
    return tuple(level for level in levels if level.rpm or level.tpm or level.concurrency)


@dataclass(frozen=True, slots=True)
class LevelState:
    """A level's counters as the admission saw them (this request included if it was
    admitted): requests and tokens in the window, requests in flight."""

    level: Level
    window: int  # the window's id (its start, ms on the store's clock); 0 = none yet
    reset_ms: int  # until the window ends
    requests: int
    tokens: int
    charged: int  # tokens this request counted in the window
    inflight: int


@dataclass(frozen=True, slots=True)
class Admitted:
    """An admitted request's place in each level, released by `RateLimitStore.release`."""

    request_id: str
    states: tuple[LevelState, ...]
    observed_at: float  # unix time the counters were read


@dataclass(frozen=True, slots=True)
class Refused:
    level: Level
    kind: Kind
    states: tuple[LevelState, ...]  # as read, without this request
    observed_at: float


class RateLimitStore(Protocol):
    async def admit(
        self, levels: tuple[Level, ...], *, request_id: str, tokens: int
    ) -> Admitted | Refused:
        """Count the request in every level if every level allows it; else nothing."""

    async def release(self, admitted: Admitted, *, tokens: int) -> None:
        """The request is over: free its slots and correct its tokens to `tokens`."""


def _charge(level: Level, tokens: int) -> int:
    return min(tokens, level.tpm) if level.tpm else 0


def _refusal(level: Level, requests: int, tokens: int, charge: int, inflight: int) -> Kind | None:
    if level.rpm and requests + 1 > level.rpm:
        return "requests"
    if level.tpm and tokens + charge > level.tpm:
        return "tokens"
    if level.concurrency and inflight >= level.concurrency:
        return "concurrency"
    return None


# --- Redis --------------------------------------------------------------------------


def _redis_keys(level: Level) -> list[str]:
    base = f"tg:rl:{{{level.scope[0]}{level.ident}}}"
    return [base, f"{base}:f"]  # the window's counters (hash), the requests in flight


# KEYS: per level, its window hash (w: start ms, r: requests, t: tokens) and its
# in-flight sorted set (request id -> expiry ms). ARGV: request id, tokens, slot TTL ms,
# window ms, then per level: rpm, tpm, concurrency (0 = none).
# Returns {index of the refusing level (0: admitted), its kind, then per level: window
# start, ms until it ends, requests, tokens, tokens charged, in flight}.
_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local id, tokens = ARGV[1], tonumber(ARGV[2])
local ttl, span = tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 2
local states = {}
local refused, kind = 0, ''
for i = 1, n do
  local rpm, tpm = tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  local conc = tonumber(ARGV[4 + 3 * i])
  local s = {w = 0, r = 0, t = 0, charge = 0, f = 0, fresh = false}
  if rpm > 0 or tpm > 0 then
    local v = redis.call('HMGET', KEYS[2 * i - 1], 'w', 'r', 't')
    local w = tonumber(v[1])
    if w and now < w + span then
      s.w, s.r, s.t = w, tonumber(v[2]) or 0, tonumber(v[3]) or 0
    else
      s.w, s.fresh = now, true
    end
  end
  if tpm > 0 then s.charge = math.min(tokens, tpm) end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
    s.f = redis.call('ZCARD', KEYS[2 * i])
  end
  if refused == 0 then
    if rpm > 0 and s.r + 1 > rpm then refused, kind = i, 'requests'
    elseif tpm > 0 and s.t + s.charge > tpm then refused, kind = i, 'tokens'
    elseif conc > 0 and s.f >= conc then refused, kind = i, 'concurrency' end
  end
  s.rpm, s.tpm, s.conc = rpm, tpm, conc
  states[i] = s
end
local out = {refused, kind}
for i = 1, n do
  local s = states[i]
  if refused == 0 then
    local h = KEYS[2 * i - 1]
    if s.rpm > 0 or s.tpm > 0 then
      if s.fresh then
        redis.call('DEL', h)
        redis.call('HSET', h, 'w', s.w, 'r', 0, 't', 0)
        redis.call('PEXPIRE', h, span)
      end
      s.r = redis.call('HINCRBY', h, 'r', 1)
      if s.charge > 0 then s.t = redis.call('HINCRBY', h, 't', s.charge) end
    end
    if s.conc > 0 then
      redis.call('ZADD', KEYS[2 * i], now + ttl, id)
      redis.call('PEXPIRE', KEYS[2 * i], ttl)
      s.f = s.f + 1
    end
  end
  local reset = 0
  if s.w > 0 then reset = s.w + span - now end
  table.insert(out, s.w)
  table.insert(out, reset)
  table.insert(out, s.r)
  table.insert(out, s.t)
  table.insert(out, s.charge)
  table.insert(out, s.f)
end
return out
"""

# KEYS: as for _ADMIT. ARGV: request id, window ms, then per level: the window the
# request was counted in, the tokens it charged there (-1: tokens not counted), its
# actual tokens, and 1 if it holds a slot.
_RELEASE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local span = tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local w, charged = tonumber(ARGV[4 * i - 1]), tonumber(ARGV[4 * i])
  local actual, slot = tonumber(ARGV[4 * i + 1]), tonumber(ARGV[4 * i + 2])
  local h = KEYS[2 * i - 1]
  if slot == 1 then redis.call('ZREM', KEYS[2 * i], ARGV[1]) end
  if charged >= 0 then
    local delta = actual - charged
    local current = tonumber(redis.call('HGET', h, 'w'))
    if current == w then
      if redis.call('HINCRBY', h, 't', delta) < 0 then redis.call('HSET', h, 't', 0) end
    elseif delta > 0 then
      if current and now < current + span then
        redis.call('HINCRBY', h, 't', delta)
      else
        redis.call('DEL', h)
        redis.call('HSET', h, 'w', now, 'r', 0, 't', delta)
        redis.call('PEXPIRE', h, span)
      end
    end
  end
end
return 1
"""


def _states(levels: tuple[Level, ...], flat: list[Any]) -> tuple[LevelState, ...]:
    states = []
    for i, level in enumerate(levels):
        w, reset, requests, tokens, charged, inflight = (int(v) for v in flat[6 * i : 6 * i + 6])
        states.append(LevelState(level, w, reset, requests, tokens, charged, inflight))
    return tuple(states)


class RedisRateLimitStore:
    """Counters shared by every worker, one atomic script per admission or release."""

    def __init__(self, client: Any) -> None:
        self._admit = ScriptBatch(client, _ADMIT)
        self._release = ScriptBatch(client, _RELEASE)

    async def admit(
        self, levels: tuple[Level, ...], *, request_id: str, tokens: int
    ) -> Admitted | Refused:
        keys = [k for level in levels for k in _redis_keys(level)]
        args: list[Any] = [request_id, tokens, SLOT_TTL_SECONDS * 1000, WINDOW_MS]
        for level in levels:
            args += [level.rpm or 0, level.tpm or 0, level.concurrency or 0]
        result = await self._admit(keys, args)
        observed = time.time()
        refused, kind = int(result[0]), result[1]
        states = _states(levels, result[2:])
        if refused:
            text = kind.decode() if isinstance(kind, bytes) else str(kind)
            assert text in ("requests", "tokens", "concurrency")
            return Refused(levels[refused - 1], text, states, observed)  # type: ignore[arg-type]
        return Admitted(request_id, states, observed)

    async def release(self, admitted: Admitted, *, tokens: int) -> None:
        keys = [k for state in admitted.states for k in _redis_keys(state.level)]
        args: list[Any] = [admitted.request_id, WINDOW_MS]
        for state in admitted.states:
            level = state.level
            args += [
                state.window,
                state.charged if level.tpm else -1,
                tokens,
                1 if level.concurrency else 0,
            ]
        await self._release(keys, args)


# --- In process (embedded default: one process) -------------------------------------


class _Counters:
    __slots__ = ("inflight", "requests", "tokens", "window")

    def __init__(self) -> None:
        self.window = 0  # start, ms
        self.requests = 0
        self.tokens = 0
        self.inflight: dict[str, int] = {}  # request id -> expiry, ms


class LocalRateLimitStore:
    """The same counting in this process's memory, for the embedded mode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._levels: dict[tuple[str, int], _Counters] = {}

    @staticmethod
    def _now() -> int:
        return int(time.time() * 1000)

    def _counters(self, level: Level, now: int) -> _Counters:
        counters = self._levels.setdefault((level.scope, level.ident), _Counters())
        if counters.window and now >= counters.window + WINDOW_MS:
            counters.window, counters.requests, counters.tokens = 0, 0, 0
        if counters.inflight:
            expired = [rid for rid, until in counters.inflight.items() if until <= now]
            for rid in expired:
                del counters.inflight[rid]
        return counters

    async def admit(
        self, levels: tuple[Level, ...], *, request_id: str, tokens: int
    ) -> Admitted | Refused:
        now = self._now()
        with self._lock:
            all_counters = [self._counters(level, now) for level in levels]
            for level, c in zip(levels, all_counters, strict=True):
                kind = _refusal(
                    level, c.requests, c.tokens, _charge(level, tokens), len(c.inflight)
                )
                if kind is not None:
                    return Refused(
                        level, kind, self._snapshot(levels, all_counters, now), now / 1000
                    )
            for level, c in zip(levels, all_counters, strict=True):
                if level.counts:
                    if not c.window:
                        c.window = now
                    c.requests += 1
                    c.tokens += _charge(level, tokens)
                if level.concurrency:
                    c.inflight[request_id] = now + SLOT_TTL_SECONDS * 1000
            states = self._snapshot(levels, all_counters, now, tokens)
        return Admitted(request_id, states, now / 1000)

    @staticmethod
    def _snapshot(
        levels: Iterable[Level], counters: list[_Counters], now: int, tokens: int = 0
    ) -> tuple[LevelState, ...]:
        return tuple(
            LevelState(
                level,
                c.window,
                c.window + WINDOW_MS - now if c.window else 0,
                c.requests,
                c.tokens,
                _charge(level, tokens),
                len(c.inflight),
            )
            for level, c in zip(levels, counters, strict=True)
        )

    async def release(self, admitted: Admitted, *, tokens: int) -> None:
        now = self._now()
        with self._lock:
            for state in admitted.states:
                level = state.level
                c = self._counters(level, now)
                c.inflight.pop(admitted.request_id, None)
                if not level.tpm:
                    continue
                delta = tokens - state.charged
                if c.window == state.window:
                    c.tokens = max(c.tokens + delta, 0)
                elif delta > 0:
                    if not c.window:
                        c.window = now
                    c.tokens += delta

    def clear(self) -> None:
        """Forget every counter (tests: a fresh process)."""
        with self._lock:
            self._levels.clear()


# --- The hot path -------------------------------------------------------------------


def tokens_estimate(models: Iterable[ModelEntry], body: dict[str, Any], input_estimate: int) -> int:
    """What a request may use at most, as the credit hold reckons it (charging.hold):
    the input estimate plus the largest output any of its models may produce for it."""
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if requested is None:
        requested = body.get("max_output_tokens")
    worst = 0
    for entry in models:
        out = entry.max_output_tokens
        if isinstance(requested, int) and 0 < requested < out:
            out = requested
        worst = max(worst, min(input_estimate, entry.context_window) + out)
    return worst


async def admit(
    store: RateLimitStore,
    key: KeyInfo,
    *,
    request_id: str,
    protocol: str,
    tokens: int,
) -> Admitted | None:
    """Count the request against the key's and its organisation's limits; None if no
    limit applies. Raises the 429 the client should see if a limit is reached."""
    levels = levels_of(key)
    if not levels:
        return None
    result = await store.admit(levels, request_id=request_id, tokens=tokens)
    if isinstance(result, Refused):
        raise _too_many(result, protocol, tokens)
    return result


def _reset_text(observed: float, reset_ms: int) -> str:
    seconds = max(math.ceil(reset_ms / 1000), 1)
    at = dt.datetime.fromtimestamp(math.ceil(observed + reset_ms / 1000), dt.UTC)
    return f"in {seconds}s (at {at:%H:%M:%S} UTC)"


def _too_many(refused: Refused, protocol: str, tokens: int) -> GatewayError:
    level = refused.level
    state = next(s for s in refused.states if s.level == level)
    who = "this API key" if level.scope == "key" else f"the organisation '{level.name}'"
    if refused.kind == "concurrency":
        message = (
            f"Concurrency limit reached for {who}: {level.concurrency} requests at a time, "
            f"and {state.inflight} are in progress. Retry when one of them has finished."
        )
        retry_after = 1
    else:
        reset_ms = state.reset_ms if state.window else WINDOW_MS
        if refused.kind == "requests":
            what = f"{level.rpm} requests per minute (RPM)"
        else:
            what = (
                f"{level.tpm} tokens per minute (TPM); {state.tokens} are counted in this "
                f"minute and this request may use up to {tokens}"
            )
        message = (
            f"Rate limit reached for {who}: {what}. It resets "
            f"{_reset_text(refused.observed_at, reset_ms)}."
        )
        retry_after = max(math.ceil(reset_ms / 1000), 1)
    headers = headers_for(protocol, refused.states, refused.observed_at, refused=refused)
    headers["retry-after"] = str(retry_after)
    return GatewayError(
        429, message, code="rate_limit_exceeded", type="rate_limit_error", headers=headers
    )


def _duration(ms: int) -> str:
    """OpenAI's reset format: "1m0s", "59.5s", "120ms", "0s"."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def _tightest(
    states: tuple[LevelState, ...], kind: Kind, refused: Refused | None
) -> tuple[int, int, int] | None:
    """(limit, remaining, ms until reset) of the level that leaves least of `kind`."""
    best: tuple[int, int, int] | None = None
    for state in states:
        limit = state.level.rpm if kind == "requests" else state.level.tpm
        if not limit:
            continue
        used = state.requests if kind == "requests" else state.tokens
        remaining = max(limit - used, 0)
        if refused is not None and refused.kind == kind and refused.level == state.level:
            remaining = 0
        reset = state.reset_ms if state.window else 0
        if best is None or remaining < best[1]:
            best = (limit, remaining, reset)
    return best


def headers_for(
    protocol: str,
    states: tuple[LevelState, ...],
    observed: float,
    *,
    refused: Refused | None = None,
) -> dict[str, str]:
    """The rate-limit headers in the client's vendor's names: OpenAI's x-ratelimit-*
    (reset as a duration) or Anthropic's anthropic-ratelimit-* (reset as RFC 3339)."""
    headers: dict[str, str] = {}
    kinds: tuple[Kind, ...] = ("requests", "tokens")
    for kind in kinds:
        tight = _tightest(states, kind, refused)
        if tight is None:
            continue
        limit, remaining, reset_ms = tight
        if protocol == "anthropic":
            at = dt.datetime.fromtimestamp(math.ceil(observed + reset_ms / 1000), dt.UTC)
            prefix = f"anthropic-ratelimit-{kind}"
            headers[f"{prefix}-limit"] = str(limit)
            headers[f"{prefix}-remaining"] = str(remaining)
            headers[f"{prefix}-reset"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = _duration(reset_ms)
    return headers


def send_with_headers(send: Send, admitted: Admitted, protocol: str) -> Send:
    """`send`, adding the remaining budget (as of admission) to the response head."""
    extra = [
        (name.encode(), value.encode())
        for name, value in headers_for(protocol, admitted.states, admitted.observed_at).items()
    ]
    if not extra:
        return send

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return sending
