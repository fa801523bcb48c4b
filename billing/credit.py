"""Credit reservations on the hot path: admit a request only if its organisation (and
its key's spend limits) can pay the worst case, then settle the actual cost.

Each organisation has, in Redis (or in process memory in the embedded default):
    avail    what may still be reserved: ledger balance - pending - held
    held     the sum of holds of requests in flight
    pending  costs settled by requests whose usage the flusher has not written yet
reserve:  avail -= hold,  held += hold              (refused if avail < hold)
settle:   avail += hold - actual, held -= hold, pending += actual
flushed:  pending -= written   (after the usage batch committed to the ledger)
A missing `avail` is rebuilt from the database as balance - pending - held, reading
pending and held BEFORE the balance, so a batch committing in between is counted
twice (refuses a little early) rather than not at all (would overspend).

Key spend limits use counters per key (total, today, this month) of settled + held
spend, kept the same way; a missing counter is rebuilt from the ledger's usage entries
for that key. Every step is one atomic Lua script, shared by all workers.

Callers see the `CreditStore` interface; `RedisCreditStore` (shared by every worker) and
`LocalCreditStore` (one process, the embedded default) implement it side by side, and
the gateway's runtime picks one by `TOLLGATE_STATE_BACKEND` (gateway.runtime).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.db.models import Sum
from redis.exceptions import ResponseError

from billing.models import CreditBalance, EntryKind, LedgerEntry

AVAIL_TTL_SECONDS = 600  # an idle organisation's cached figure is rebuilt after this
# A hold that is never settled (its process was killed mid-request) would reduce the
# organisation's available credit for good; the held sum expires once no request of
# the organisation has been admitted for this long.
HELD_IDLE_SECONDS = 6 * 3600
USAGE_STREAM = "tg:usage"  # gateway.usage reads it; settle appends to it


@dataclass(frozen=True, slots=True)
class KeyLimits:
    key_id: int
    total_nano: int | None = None
    daily_nano: int | None = None
    monthly_nano: int | None = None

    def windows(self, now: dt.datetime) -> list[tuple[str, int]]:
        out = []
        if self.total_nano is not None:
            out.append(("t", self.total_nano))
        if self.daily_nano is not None:
            out.append((f"d{now:%Y%m%d}", self.daily_nano))
        if self.monthly_nano is not None:
            out.append((f"m{now:%Y%m}", self.monthly_nano))
        return out


@dataclass(frozen=True, slots=True)
class Hold:
    organisation_id: int
    amount_nano: int
    key_counters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # "balance" or "key_limit"
    available_nano: int
    window: str = ""


# Runs a sync (database) function off the event loop: the runtime's `run_db`.
RunDb = Callable[..., Awaitable[Any]]


class CreditStore(Protocol):
    """Holds and settlements of one organisation's credit (and its keys' limits)."""

    async def reserve(
        self, *, organisation_id: int, amount_nano: int, limits: KeyLimits | None = None
    ) -> Hold | Refusal:
        """Hold `amount_nano` if the organisation and the key's limits allow it."""

    async def settle(
        self, hold: Hold, actual_nano: int, request_id: str, event: bytes = b""
    ) -> bool:
        """Release the hold and count `actual_nano` as pending until the usage worker
        has written it. Given a usage event's JSON, a store may append it to the usage
        queue in the same atomic step: it returns True if it did (the caller then
        must not append it again)."""

    def flushed(self, org_requests: dict[int, list[str]]) -> None:
        """These requests' costs are in the ledger now: no longer pending."""

    def invalidate(self, organisation_ids: list[int]) -> None:
        """Forget cached available credit (the balance changed outside the hot path)."""

    async def available(self, organisation_id: int) -> int | None:
        """What may still be held, if known."""


def _window_start(window: str) -> dt.datetime | None:
    if window == "t":
        return None
    if window.startswith("d"):
        return dt.datetime.strptime(window[1:], "%Y%m%d").replace(tzinfo=dt.UTC)
    return dt.datetime.strptime(window[1:], "%Y%m").replace(tzinfo=dt.UTC)


def balance_load(organisation_id: int) -> int:
    row = CreditBalance.objects.filter(organisation_id=organisation_id).first()
    return row.balance_nano if row else 0


def key_spend_load(key_id: int, window: str) -> int:
    """Ledger usage (and BYOK fees) charged to a key within a window, in nano-USD."""
    qs = LedgerEntry.objects.filter(
        api_key_id=key_id, kind__in=[EntryKind.USAGE, EntryKind.BYOK_FEE]
    )
    start = _window_start(window)
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    return -(qs.aggregate(total=Sum("amount_nano"))["total"] or 0)


# --- Redis --------------------------------------------------------------------------


def credit_keys(organisation_id: int) -> list[str]:
    """avail, held, pending, and pendreq (request id -> its pending amount). Batched
    calls span organisations, so this is for one Redis, not a Cluster."""
    base = f"tg:credit:{{{organisation_id}}}"
    return [f"{base}:avail", f"{base}:held", f"{base}:pending", f"{base}:pendreq"]


def credit_avail_key(organisation_id: int) -> str:
    return credit_keys(organisation_id)[0]


def credit_pending_release(sync_client: Any, org_requests: dict[int, list[str]]) -> None:
    """After a usage batch committed to the ledger, those requests' costs are no longer
    pending. Keyed by request id, so releasing a batch twice (a replay after a crash
    between commit and acknowledgement) changes nothing."""
    script = sync_client.register_script(_RELEASE)
    for org_id, request_ids in org_requests.items():
        keys = credit_keys(org_id)
        script(keys=[keys[2], keys[3]], args=request_ids)


_RESERVE = """
local avail = redis.call('GET', KEYS[1])
if not avail then return {-1, 0} end
local amount = tonumber(ARGV[1])
if tonumber(avail) < amount then return {0, tonumber(avail)} end
for i = 3, #KEYS do
  local used = redis.call('GET', KEYS[i])
  if not used then return {-2, i - 3} end
  local limit = tonumber(ARGV[i - 1])
  if tonumber(used) + amount > limit then return {-3, i - 3, limit - tonumber(used)} end
end
redis.call('DECRBY', KEYS[1], amount)
redis.call('INCRBY', KEYS[2], amount)
redis.call('EXPIRE', KEYS[2], ARGV[#ARGV])
for i = 3, #KEYS do redis.call('INCRBY', KEYS[i], amount) end
return {1, 0}
"""

# KEYS: avail, held, pending, pendreq, the usage stream, then the key's spend counters.
# ARGV: hold, actual, request id, pending TTL, and the usage event ("" for none), which
# is appended to the stream in the same step: settling and recording are one command.
_SETTLE = """
local hold = tonumber(ARGV[1])
local actual = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], hold - actual) end
redis.call('DECRBY', KEYS[2], hold)
if actual > 0 then
  redis.call('INCRBY', KEYS[3], actual)
  redis.call('HSET', KEYS[4], ARGV[3], actual)
  redis.call('EXPIRE', KEYS[3], ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
for i = 6, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], actual - hold) end
end
if ARGV[5] ~= '' then redis.call('XADD', KEYS[5], '*', 'e', ARGV[5]) end
return 1
"""

# Idempotent per request: a replayed batch releases nothing twice.
_RELEASE = """
for i = 1, #ARGV do
  local amount = redis.call('HGET', KEYS[2], ARGV[i])
  if amount then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('DECRBY', KEYS[1], amount)
  end
end
return 1
"""

_REBUILD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], tonumber(ARGV[1]) - tonumber(ARGV[2]) - tonumber(ARGV[3]),
           'EX', tonumber(ARGV[4]))
return 1
"""


# Runs many calls of one script as one: ARGV[1] is the number of calls, then each call's
# number of keys and of arguments; then every call's arguments, in order (KEYS likewise).
# Each call runs in its own pcall, so one failing call fails only itself.
_BATCH = """
local function call(KEYS, ARGV)
%s
end
local n = tonumber(ARGV[1])
local out = {}
local k, a = 0, 1 + 2 * n
for i = 1, n do
  local nk, na = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local keys, args = {}, {}
  for j = 1, nk do keys[j] = KEYS[k + j] end
  for j = 1, na do args[j] = ARGV[a + j] end
  k, a = k + nk, a + na
  local ok, result = pcall(call, keys, args)
  if ok then out[i] = result else out[i] = {'ERR', tostring(result)} end
end
return out
"""


class ScriptBatch:
    """Group commit for one Lua script: the calls made during one turn of the event loop
    go to Redis as a single EVALSHA (one round trip, one pass through the client),
    and each caller gets its own call's result. Concurrent requests share the cost of
    the Redis client, which otherwise is a third of the gateway's CPU per request."""

    def __init__(self, client: Any, body: str) -> None:
        self._script = client.register_script(_BATCH % body)
        self._calls: list[tuple[list, list, asyncio.Future]] = []

    def __call__(self, keys: list, args: list) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._calls:
            loop.call_soon(self._send)
        self._calls.append((keys, args, future))
        return future

    def _send(self) -> None:
        calls, self._calls = self._calls, []
        task = asyncio.ensure_future(self._run(calls))
        _inflight.add(task)
        task.add_done_callback(_inflight.discard)

    async def _run(self, calls: list[tuple[list, list, asyncio.Future]]) -> None:
        counts: list = [len(calls)]
        keys: list = []
        args: list = []
        for k, a, _ in calls:
            counts += (len(k), len(a))
            keys += k
            args += a
        try:
            results = await self._script(keys=keys, args=counts + args)
        except BaseException as exc:
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(
                        exc
                        if isinstance(exc, Exception)
                        else ConnectionError("Redis call cancelled")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        try:
            for (_, _, future), result in zip(calls, results, strict=True):
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(result, list) and result and result[0] == b"ERR":
                    future.set_exception(ResponseError(result[1].decode()))
                else:
                    future.set_result(result)
        finally:  # a reply of the wrong shape must not leave anyone waiting
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(ResponseError("malformed batched script reply"))


_inflight: set[asyncio.Task] = set()  # batches being sent (kept from the collector)


class RedisCreditStore:
    """Reservations shared by every worker through Redis (async client on the hot
    path, sync client for the flusher and invalidation)."""

    def __init__(self, async_client: Any, sync_client: Any, run_db: RunDb) -> None:
        self._r = async_client
        self._s = sync_client
        self._run_db = run_db  # runs a sync function off the event loop
        self._reserve = ScriptBatch(async_client, _RESERVE)
        self._settle = ScriptBatch(async_client, _SETTLE)
        self._rebuild = async_client.register_script(_REBUILD)

    _keys = staticmethod(credit_keys)

    async def reserve(
        self, *, organisation_id: int, amount_nano: int, limits: KeyLimits | None = None
    ) -> Hold | Refusal:
        avail, held, _, _ = self._keys(organisation_id)
        windows = limits.windows(dt.datetime.now(dt.UTC)) if limits else []
        counters = [f"tg:keyspend:{limits.key_id}:{w}" for w, _ in windows] if limits else []
        for _attempt in range(4):
            result = await self._reserve(
                [avail, held, *counters],
                [amount_nano, *(limit for _, limit in windows), HELD_IDLE_SECONDS],
            )
            status = int(result[0])
            if status == 1:
                return Hold(organisation_id, amount_nano, tuple(counters))
            if status == 0:
                return Refusal("balance", int(result[1]))
            if status == -3:
                return Refusal("key_limit", max(int(result[2]), 0), windows[int(result[1])][0])
            if status == -1:
                await self._rebuild_avail(organisation_id)
            elif status == -2:
                index = int(result[1])
                assert limits is not None
                spent = await self._run_db(key_spend_load, limits.key_id, windows[index][0])
                ttl = None if windows[index][0] == "t" else 40 * 86400
                await self._r.set(counters[index], spent, nx=True, ex=ttl)
        return Refusal("balance", 0)

    async def _rebuild_avail(self, org_id: int) -> None:
        avail, held, pending, _ = self._keys(org_id)
        held_v, pending_v = await self._r.mget(held, pending)
        balance = await self._run_db(balance_load, org_id)
        await self._rebuild(
            keys=[avail],
            args=[balance, int(pending_v or 0), int(held_v or 0), AVAIL_TTL_SECONDS],
        )

    async def settle(
        self, hold: Hold, actual_nano: int, request_id: str, event: bytes = b""
    ) -> bool:
        """Settle a hold; with `event` (a usage event's JSON), append it to the usage
        stream in the same atomic step: settling and recording are one command."""
        await self._settle(
            [*self._keys(hold.organisation_id), USAGE_STREAM, *hold.key_counters],
            [hold.amount_nano, actual_nano, request_id, HELD_IDLE_SECONDS, event],
        )
        return bool(event)

    def flushed(self, org_requests: dict[int, list[str]]) -> None:
        credit_pending_release(self._s, org_requests)

    def invalidate(self, organisation_ids: list[int]) -> None:
        if organisation_ids:
            self._s.delete(*(self._keys(o)[0] for o in organisation_ids))

    async def available(self, organisation_id: int) -> int | None:
        value = await self._r.get(self._keys(organisation_id)[0])
        return int(value) if value is not None else None


# --- In process (embedded default: one process) -------------------------------------


class LocalCreditStore:
    """The same bookkeeping in process memory, for the embedded single-process mode."""

    def __init__(self, run_db: RunDb) -> None:
        self._run_db = run_db
        self._lock = threading.Lock()
        self._avail: dict[int, int] = {}
        self._held: dict[int, int] = {}
        self._pending: dict[int, int] = {}
        self._pending_requests: dict[str, tuple[int, int]] = {}
        self._keyspend: dict[str, int] = {}

    async def reserve(
        self, *, organisation_id: int, amount_nano: int, limits: KeyLimits | None = None
    ) -> Hold | Refusal:
        org = organisation_id
        windows = limits.windows(dt.datetime.now(dt.UTC)) if limits else []
        counters = [f"{limits.key_id}:{w}" for w, _ in windows] if limits else []
        if org not in self._avail:
            with self._lock:
                held, pending = self._held.get(org, 0), self._pending.get(org, 0)
            balance = await self._run_db(balance_load, org)
            with self._lock:
                self._avail.setdefault(org, balance - pending - held)
        for counter, (window, _) in zip(counters, windows, strict=True):
            if counter not in self._keyspend:
                assert limits is not None
                spent = await self._run_db(key_spend_load, limits.key_id, window)
                with self._lock:
                    self._keyspend.setdefault(counter, spent)
        with self._lock:
            avail = self._avail[org]
            if avail < amount_nano:
                return Refusal("balance", avail)
            for counter, (window, limit) in zip(counters, windows, strict=True):
                used = self._keyspend[counter]
                if used + amount_nano > limit:
                    return Refusal("key_limit", max(limit - used, 0), window)
            self._avail[org] = avail - amount_nano
            self._held[org] = self._held.get(org, 0) + amount_nano
            for counter in counters:
                self._keyspend[counter] += amount_nano
        return Hold(org, amount_nano, tuple(counters))

    async def settle(
        self, hold: Hold, actual_nano: int, request_id: str, event: bytes = b""
    ) -> bool:
        """Settle a hold. The usage event (if any) is left to the caller's queue."""
        org = hold.organisation_id
        with self._lock:
            if org in self._avail:
                self._avail[org] += hold.amount_nano - actual_nano
            self._held[org] = self._held.get(org, 0) - hold.amount_nano
            if actual_nano:
                self._pending[org] = self._pending.get(org, 0) + actual_nano
                self._pending_requests[request_id] = (org, actual_nano)
            for counter in hold.key_counters:
                if counter in self._keyspend:
                    self._keyspend[counter] += actual_nano - hold.amount_nano
        return False

    def flushed(self, org_requests: dict[int, list[str]]) -> None:
        with self._lock:
            for request_ids in org_requests.values():
                for request_id in request_ids:
                    released = self._pending_requests.pop(request_id, None)
                    if released is not None:
                        org, amount = released
                        self._pending[org] = self._pending.get(org, 0) - amount

    def invalidate(self, organisation_ids: list[int]) -> None:
        with self._lock:
            for org_id in organisation_ids:
                self._avail.pop(org_id, None)

    async def available(self, organisation_id: int) -> int | None:
        return self._avail.get(organisation_id)
