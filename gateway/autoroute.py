"""`tollgate/auto`: pick a tier from what the request shows.

Pure function over the request body: how big the conversation is, whether tools are
offered, whether reasoning is asked for, and the client's cost-quality dial
(X-Tollgate-Cost-Quality: 0 = best quality, 1 = cheapest, default 0.5). Tiers are
ordered by the operator from the fastest/cheapest to the strongest; a tier whose
context window cannot hold the conversation is never chosen.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.catalog import RouterEntry

REASONING_WEIGHT = {"minimal": 0.1, "low": 0.15, "medium": 0.3, "high": 0.45, "xhigh": 0.5}


def auto_choose(
    router: RouterEntry, body: dict[str, Any], *, input_tokens: int, cost_quality: float
) -> tuple[int, str]:
    """Index of the tier to use, and a short reason for the log and the client."""
    signals = []
    # Size: ~1k tokens is a quick question, ~100k an agent deep into a task.
    size = min(max(math.log10(max(input_tokens, 1)) - 2.5, 0) / 2.5, 1) * 0.5
    signals.append(f"~{_k(input_tokens)} tokens")
    complexity = size
    if body.get("tools"):
        complexity += 0.15
        signals.append("tools")
    effort = body.get("reasoning_effort")
    thinking = body.get("thinking")
    if isinstance(effort, str) and effort in REASONING_WEIGHT:
        complexity += REASONING_WEIGHT[effort]
        signals.append(f"reasoning {effort}")
    elif isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        complexity += 0.35
        signals.append("thinking")
    # The dial shifts the choice by up to half the range either way: 0 alone reaches
    # the strongest tier of two, 1 alone the cheapest.
    score = min(max(complexity + (0.5 - cost_quality), 0.0), 1.0)
    last = len(router.models) - 1
    index = math.floor(score * last + 0.5)
    while index < last and router.models[index].context_window < input_tokens:
        index += 1  # too small for this conversation
    signals.append(f"cost-quality {cost_quality:g}")
    model = router.models[index]
    reason = f"auto: {', '.join(signals)} -> {router.names[index]} ({model.public_id})"
    return index, reason


def _k(tokens: int) -> str:
    return f"{tokens / 1000:.0f}k" if tokens >= 1000 else str(tokens)
