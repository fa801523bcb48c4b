"""Anthropic's signed thinking carried through a Responses client.

A Responses client keeps reasoning between turns as `reasoning` items whose
`encrypted_content` is opaque to it. When the model is Claude, Tollgate mints that
string itself: "tgr1." + unpadded urlsafe base64 of compact JSON, a list of the hub's
`reasoning_details` entries (format anthropic-claude-v1):

    {"type": "reasoning.text", "text": ..., "signature": ...}    a thinking block
    {"type": "reasoning.encrypted", "data": ...}                  redacted thinking

It is not encrypted: the thinking text is in the item's summary anyway, and the
blocks are signed by Anthropic, which refuses any that were altered. On the next
turn the entries go back on the assistant message (request_anthropic.py turns them
into thinking blocks, first in the turn).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from gateway.protocols.request_common import TranslationError
from gateway.protocols.responses import REASONING_FORMAT

PREFIX = "tgr1."


def is_tollgate_reasoning(encrypted_content: Any) -> bool:
    return isinstance(encrypted_content, str) and encrypted_content.startswith(PREFIX)


def mint_reasoning(details: list[dict[str, Any]]) -> str | None:
    """The encrypted_content for the signed entries of `details`, or None if none is
    signed (unsigned thinking cannot be sent back to Anthropic)."""
    carried: list[dict[str, Any]] = []
    for detail in details:
        if detail.get("format") not in (None, REASONING_FORMAT):
            continue
        if detail.get("type") == "reasoning.text" and detail.get("signature"):
            carried.append(
                {
                    "type": "reasoning.text",
                    "text": str(detail.get("text") or ""),
                    "signature": detail["signature"],
                }
            )
        elif detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            carried.append({"type": "reasoning.encrypted", "data": detail["data"]})
    if not carried:
        return None
    raw = json.dumps(carried, separators=(",", ":"), ensure_ascii=False).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def reasoning_details_from(encrypted_content: str, *, param: str) -> list[dict[str, Any]]:
    """The hub's reasoning_details entries carried by a Tollgate-minted string."""
    data = encrypted_content[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        entries = json.loads(raw)
    except (binascii.Error, ValueError):
        entries = None
    if not isinstance(entries, list):
        raise TranslationError(
            "This reasoning item's encrypted_content is damaged: send reasoning items "
            "back exactly as they were received.",
            param=param,
        )
    details: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == "reasoning.text" and isinstance(entry.get("signature"), str):
            details.append(
                {
                    "type": "reasoning.text",
                    "text": str(entry.get("text") or ""),
                    "signature": entry["signature"],
                    "format": REASONING_FORMAT,
                }
            )
        elif entry.get("type") == "reasoning.encrypted" and isinstance(entry.get("data"), str):
            details.append(
                {"type": "reasoning.encrypted", "data": entry["data"], "format": REASONING_FORMAT}
            )
    return details
