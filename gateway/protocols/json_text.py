"""The JSON the gateway writes: compact UTF-8 text, and money as exact decimals.

`usage.cost` is computed in nano-dollars and carried as a float of USD (the usage
hook's convention); written by the stdlib it would read `3.3e-05`. Here it is written
as the decimal of exactly those nano-dollars (`0.000033`), and any Decimal likewise.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
from decimal import Decimal
from typing import Any

# A Decimal is written as the JSON number of its digits (`0.000033`, never `3.3e-05`).
# The stdlib encoder (C, fast) cannot write raw text, so `default` writes it as a
# string behind a per-process random marker, which is then unquoted; the marker is
# unguessable, so no string of the data can be mistaken for it. A per-thread count of
# markers written spares the search for them when there were none (the usual case).
_RAW = "\x1etollgate-number-" + secrets.token_hex(16) + ":"
_RAW_WRITTEN = json.dumps(_RAW)[1:-1]  # as the encoder escapes it
_RAW_STRING = re.compile('"' + re.escape(_RAW_WRITTEN) + r'(-?[0-9]+(?:\.[0-9]+)?)"')
_RAW_COUNT = threading.local()


def _raw_number(value: Any) -> str:
    if isinstance(value, Decimal) and value.is_finite():
        _RAW_COUNT.n = getattr(_RAW_COUNT, "n", 0) + 1
        return _RAW + format(value, "f")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_raw_number)


def exact_cost(cost: Any) -> Any:
    """The gateway's `usage.cost`, a float of USD holding a whole number of
    nano-dollars (nano / 1e9), as the Decimal of exactly those nano-dollars."""
    if type(cost) is not float or not math.isfinite(cost):
        return cost
    return Decimal(round(cost * 1_000_000_000)).scaleb(-9).normalize()


def _exact_usage(holder: dict[str, Any]) -> dict[str, Any]:
    usage = holder.get("usage")
    if type(usage) is dict and type(usage.get("cost")) is float:
        return {**holder, "usage": {**usage, "cost": exact_cost(usage["cost"])}}
    return holder


def json_text(data: Any) -> str:
    """Compact JSON (UTF-8 text, not ASCII-escaped) of an answer or an event.
    Decimals are written as exact numbers, and so is the gateway's `usage.cost`
    (at the top level, or in a Responses event's `response`), which the usage hook
    gives as a float."""
    if type(data) is dict:
        data = _exact_usage(data)
        response = data.get("response")
        if type(response) is dict and type(response.get("usage")) is dict:
            exact = _exact_usage(response)
            if exact is not response:
                data = {**data, "response": exact}
    written = getattr(_RAW_COUNT, "n", 0)
    text = _ENCODER.encode(data)
    if getattr(_RAW_COUNT, "n", 0) != written:
        text = _RAW_STRING.sub(r"\1", text)
    return text
