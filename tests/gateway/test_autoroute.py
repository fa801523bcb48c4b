from decimal import Decimal

from gateway.autoroute import auto_choose
from gateway.catalog import ModelEntry, RouterEntry
from gateway.pricing import TokenPrices

PRICES = TokenPrices.from_usd_per_million(
    input=Decimal(1),
    output=Decimal(1),
    cache_read=Decimal(0),
    cache_write_5m=Decimal(0),
    cache_write_1h=Decimal(0),
)


def model(name: str, context: int = 200_000) -> ModelEntry:
    return ModelEntry(
        id=1,
        public_id=name,
        display_name=name,
        context_window=context,
        max_output_tokens=1000,
        prices=PRICES,
        price_usd={},
        group_ids=frozenset(),
        deployments=(),
        created=0,
    )


def router(*models: ModelEntry) -> RouterEntry:
    return RouterEntry(
        public_id="tollgate/auto",
        display_name="auto",
        kind="auto",
        models=models,
        names=tuple(m.public_id for m in models),
        hedge_ms=None,
        group_ids=frozenset(),
        created=0,
    )


THREE = router(model("small"), model("mid"), model("big"))


def test_it_picks_the_smallest_tier_for_a_short_chat():
    assert auto_choose(THREE, {}, input_tokens=50, cost_quality=0.5)[0] == 0


def test_tools_and_reasoning_move_it_up():
    body = {"tools": [{}], "reasoning_effort": "high"}
    index, reason = auto_choose(THREE, body, input_tokens=50_000, cost_quality=0.5)
    assert index == 2
    assert "tools" in reason and "reasoning high" in reason and "big" in reason


def test_a_cheap_dial_moves_it_down():
    body = {"tools": [{}]}
    assert auto_choose(THREE, body, input_tokens=20_000, cost_quality=1.0)[0] == 0
    assert auto_choose(THREE, body, input_tokens=20_000, cost_quality=0.0)[0] == 2


def test_it_never_picks_a_tier_too_small_for_the_conversation():
    tiers = router(model("tiny", context=8_000), model("large"))
    assert auto_choose(tiers, {}, input_tokens=20_000, cost_quality=1.0)[0] == 1
