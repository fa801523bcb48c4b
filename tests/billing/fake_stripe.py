"""A local fake of the Stripe endpoints Tollgate calls, and webhook signing.

A real HTTP server (http.server, in a thread, on a free port) speaking Stripe's wire
format: form-encoded bodies with bracketed keys, Bearer secret keys, the
Idempotency-Key and Stripe-Version headers, Stripe's error shape. It rejects what
Stripe would reject for the calls we make (no key, missing parameters, an amount
below the minimum, an idempotency key reused with different parameters).

`sign_payload` signs a webhook body with Stripe's scheme:
    Stripe-Signature: t=<unix ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

MIN_USD_CENTS = 50


def sign_payload(payload: str, secret: str, *, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`line_items[0][price_data][unit_amount]=1000` -> nested dicts/lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and parts[i + 1].isdigit()
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append(None)
                if last:
                    node[idx] = value
                else:
                    if node[idx] is None:
                        node[idx] = [] if nxt_is_index else {}
                    node = node[idx]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return root


class FakeStripe:
    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self._idempotency: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_GET(self) -> None:
                fake._handle(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.sessions.clear()
            self.requests.clear()
            self._idempotency.clear()

    # --- test helpers -------------------------------------------------------

    def complete(self, session_id: str, *, payment_status: str = "paid") -> dict[str, Any]:
        """What the session looks like once the customer has paid on Stripe's page."""
        with self._lock:
            session = self.sessions[session_id]
            session["status"] = "complete"
            session["payment_status"] = payment_status
            session["payment_intent"] = session["payment_intent"] or f"pi_{secrets.token_hex(12)}"
            return json.loads(json.dumps(session))

    # --- HTTP ---------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        params = _nest(parse_qsl(body, keep_blank_values=True))
        with self._lock:
            self.requests.append(
                {"method": method, "path": h.path, "headers": dict(h.headers), "params": params}
            )
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Bearer sk_"):
            return self._error(h, 401, "You did not provide an API key.")
        if method == "POST" and h.path == "/v1/checkout/sessions":
            return self._create_session(h, params)
        m = re.fullmatch(r"/v1/checkout/sessions/([A-Za-z0-9_]+)", h.path)
        if method == "GET" and m:
            with self._lock:
                session = self.sessions.get(m.group(1))
            if session is None:
                return self._error(
                    h, 404, f"No such checkout.session: '{m.group(1)}'", code="resource_missing"
                )
            return self._json(h, 200, session)
        return self._error(h, 404, f"Unrecognized request URL ({method}: {h.path}).")

    def _create_session(self, h: BaseHTTPRequestHandler, params: dict[str, Any]) -> None:
        key = h.headers.get("Idempotency-Key")
        if key:
            with self._lock:
                seen = self._idempotency.get(key)
            if seen is not None:
                if seen[0] != params:
                    return self._error(
                        h,
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                        type_="idempotency_error",
                    )
                return self._json(h, 200, seen[1])
        if params.get("mode") != "payment":
            return self._error(h, 400, "Missing required param: mode.", param="mode")
        items = params.get("line_items") or []
        if not items:
            return self._error(
                h, 400, "line_items is required in payment mode.", param="line_items"
            )
        total, currency = 0, None
        for i, item in enumerate(items):
            price = item.get("price_data") or {}
            try:
                unit = int(price.get("unit_amount", ""))
                qty = int(item.get("quantity", ""))
            except ValueError:
                return self._error(
                    h, 400, "Invalid integer.", param=f"line_items[{i}][price_data][unit_amount]"
                )
            if not (price.get("product_data") or {}).get("name"):
                return self._error(h, 400, "Missing required param: product_data[name].")
            currency = price.get("currency")
            if currency is None:
                return self._error(h, 400, "Missing required param: currency.")
            total += unit * qty
        if currency == "usd" and total < MIN_USD_CENTS:
            return self._error(
                h,
                400,
                "The Checkout Session's total amount due must add up to at least $0.50 usd",
                param="line_items",
            )
        session_id = f"cs_test_{secrets.token_hex(16)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "currency": currency,
            "customer_email": params.get("customer_email"),
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params.get("success_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        with self._lock:
            self.sessions[session_id] = session
            if key:
                self._idempotency[key] = (params, session)
        return self._json(h, 200, session)

    def _json(self, h: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
        h.end_headers()
        h.wfile.write(data)

    def _error(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        error: dict[str, Any] = {"type": type_, "message": message}
        if code:
            error["code"] = code
        if param:
            error["param"] = param
        self._json(h, status, {"error": error})
