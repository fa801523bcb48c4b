"""Token usage in one normalised shape, read from and written to each protocol.

Normalised counts follow Anthropic's split: `input_tokens` EXCLUDES cached tokens, so
each token is counted (and priced) exactly once:
    OpenAI prompt_tokens = input + cache_read + cache_write_5m + cache_write_1h
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0  # part of output_tokens, reported for information
    web_search_calls: int = 0  # server tools the provider ran, billed per call
    web_fetch_calls: int = 0
    service_tier: str = ""  # as the provider reports it (priority, flex: other prices)

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    # --- reading ---------------------------------------------------------------
    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None, service_tier: Any = None) -> Usage:
        """Chat Completions usage. OpenAI reports cache writes as
        prompt_tokens_details.cache_write_tokens; OpenAI-compatible gateways in front
        of Anthropic models report them at the top level. Either way they are inside
        prompt_tokens."""
        out = cls._openai_family(
            usage,
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        )
        out.service_tier = str(service_tier or "")  # top-level in OpenAI's answers
        return out

    @classmethod
    def from_anthropic(cls, usage: dict[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        written = _int(usage.get("cache_creation_input_tokens"))
        split = usage.get("cache_creation") or {}
        w1h = _int(split.get("ephemeral_1h_input_tokens"))
        w5m = _int(split.get("ephemeral_5m_input_tokens"))
        if w1h + w5m != written:  # no split reported (or inconsistent): treat as 5m
            w5m, w1h = written - min(w1h, written), min(w1h, written)
        tools = usage.get("server_tool_use") or {}
        return cls(
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            cache_read_tokens=_int(usage.get("cache_read_input_tokens")),
            cache_write_5m_tokens=w5m,
            cache_write_1h_tokens=w1h,
            web_search_calls=_int(tools.get("web_search_requests")),
            web_fetch_calls=_int(tools.get("web_fetch_requests")),
            service_tier=str(usage.get("service_tier") or ""),
        )

    @classmethod
    def from_responses(
        cls,
        usage: dict[str, Any] | None,
        output: list[Any] | None = None,
        service_tier: Any = None,
    ) -> Usage:
        """OpenAI Responses usage: the same counts as Chat Completions' under other
        names (`input_tokens` includes cached tokens, like prompt_tokens). Web searches
        are not in `usage`: each `web_search_call` item of the `output` is one."""
        out = cls._openai_family(
            usage,
            "input_tokens",
            "output_tokens",
            "input_tokens_details",
            "output_tokens_details",
        )
        out.service_tier = str(service_tier or "")
        out.web_search_calls = sum(
            1
            for item in output or ()
            if isinstance(item, dict) and item.get("type") == "web_search_call"
        )
        return out

    @classmethod
    def _openai_family(
        cls,
        usage: dict[str, Any] | None,
        prompt_key: str,
        output_key: str,
        prompt_details_key: str,
        output_details_key: str,
    ) -> Usage:
        """Both OpenAI APIs: the prompt count includes cache reads and writes, which
        are split out."""
        if not usage:
            return cls()
        prompt = _int(usage.get(prompt_key))
        details = usage.get(prompt_details_key) or {}
        cached = _int(details.get("cached_tokens")) or _int(usage.get("cache_read_input_tokens"))
        written = _int(usage.get("cache_creation_input_tokens")) or _int(
            details.get("cache_write_tokens")
        )
        # OpenAI's two cache-write retentions: the default (30 minutes) is priced as
        # the catalog's short write (cache_write_5m), the 12-hour one as its long
        # write (cache_write_1h); docs/catalog.md.
        split = details.get("cache_write_tokens_details") or {}
        long_written = min(_int(split.get("ttl_12h_tokens")), written)
        output_details = usage.get(output_details_key) or {}
        return cls(
            input_tokens=max(prompt - cached - written, 0),
            output_tokens=_int(usage.get(output_key)),
            cache_read_tokens=cached,
            cache_write_5m_tokens=written - long_written,
            cache_write_1h_tokens=long_written,
            reasoning_tokens=_int(output_details.get("reasoning_tokens")),
        )

    def merge_anthropic_delta(self, usage: dict[str, Any] | None) -> None:
        """Apply a message_delta usage: its counts are cumulative, so replace the
        fields it carries rather than adding."""
        if not usage:
            return
        if "output_tokens" in usage:
            self.output_tokens = _int(usage["output_tokens"])
        if usage.get("input_tokens") is not None:
            self.input_tokens = _int(usage["input_tokens"])
        if usage.get("cache_read_input_tokens") is not None:
            self.cache_read_tokens = _int(usage["cache_read_input_tokens"])
        tools = usage.get("server_tool_use")
        if isinstance(tools, dict):
            self.web_search_calls = _int(tools.get("web_search_requests"))
            self.web_fetch_calls = _int(tools.get("web_fetch_requests"))
        if usage.get("cache_creation_input_tokens") is not None:
            total = _int(usage["cache_creation_input_tokens"])
            if isinstance(usage.get("cache_creation"), dict):
                fresh = Usage.from_anthropic(usage)
                self.cache_write_5m_tokens = fresh.cache_write_5m_tokens
                self.cache_write_1h_tokens = fresh.cache_write_1h_tokens
            elif total != self.cache_write_tokens:
                # message_delta carries the total without the ttl split: keep the
                # split message_start reported and put any difference in 5m writes.
                self.cache_write_1h_tokens = min(self.cache_write_1h_tokens, total)
                self.cache_write_5m_tokens = total - self.cache_write_1h_tokens

    # --- writing ---------------------------------------------------------------
    def to_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {
                "cached_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
            },
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            # Roo Code and other clients read these top-level Anthropic-style counts.
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            **(
                {"server_tool_use": self.server_tool_use()}
                if self.web_search_calls or self.web_fetch_calls
                else {}
            ),
        }

    def to_responses(self) -> dict[str, Any]:
        return {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {
                "cached_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
            },
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }

    def to_anthropic(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            },
        }
        if self.web_search_calls or self.web_fetch_calls:
            out["server_tool_use"] = self.server_tool_use()
        return out

    def server_tool_use(self) -> dict[str, int]:
        """Anthropic's `server_tool_use` counts (also shown to OpenAI-protocol clients,
        which have no field of their own for them)."""
        return {
            "web_search_requests": self.web_search_calls,
            "web_fetch_requests": self.web_fetch_calls,
        }
