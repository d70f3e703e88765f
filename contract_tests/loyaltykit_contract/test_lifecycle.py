"""The async facade's life cycle: one event loop at a time, a clear error otherwise."""

from __future__ import annotations

import asyncio

import pytest

from loyaltykit import AsyncLoyalty
from loyaltykit.capabilities import Capability
from loyaltykit.errors import ConfigError
from loyaltykit.models import Evaluation

from .requirements import requires


@requires(Capability.EVALUATE)
def test_async_facade_on_a_second_event_loop(loyaltykit_target):
    """An AsyncLoyalty used on a second running event loop raises a ConfigError that says how to build
    one per loop (a FastAPI lifespan) for an HTTP engine, instead of failing deep in the transport;
    once its first loop has closed, it follows the new loop. An in-process engine works on any loop."""
    lk = loyaltykit_target
    if lk.kind != "async":
        lk.not_applicable("an event-loop scenario: it builds its own async facade")
    basket = lk.basket()
    facade = AsyncLoyalty(lk._loyalty_settings(), adapter=lk.adapter, transport=lk.harness.async_transport(),
                          load_entry_points=False)
    first, second = asyncio.Runner(), asyncio.Runner()
    try:
        assert isinstance(first.run(facade.evaluate(basket)), Evaluation)
        if lk.in_process:
            assert isinstance(second.run(facade.evaluate(basket)), Evaluation)
        else:
            with pytest.raises(ConfigError) as info:
                second.run(facade.evaluate(basket))
            assert "lifespan" in str(info.value)
            first.close()
            quote = second.run(facade.evaluate(basket))
            assert isinstance(quote, Evaluation) and not quote.degraded, quote
    finally:
        first.close()
        second.close()


__all__ = ["test_async_facade_on_a_second_event_loop"]
