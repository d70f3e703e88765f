"""Fixtures: the fake org and both facades, so every scenario runs sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loyaltykit import AsyncLoyalty, Loyalty, LoyaltySettings
from loyaltykit_salesforce.adapter import SalesforceAdapter
from loyaltykit_salesforce.testing import SalesforceHarness


class SyncShop:
    """Calls the facade's methods; the async variant runs them on its own loop."""

    def __init__(self, harness: SalesforceHarness, adapter: SalesforceAdapter | None = None, **settings: Any) -> None:
        self.facade = Loyalty(
            LoyaltySettings(engine="salesforce", **settings), adapter=adapter or harness.make_adapter(),
            transport=harness.sync_transport(), load_entry_points=False,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.facade, name)

    def close(self) -> None:
        self.facade.close()


class AsyncShop:
    def __init__(self, harness: SalesforceHarness, adapter: SalesforceAdapter | None = None, **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.facade = AsyncLoyalty(
            LoyaltySettings(engine="salesforce", **settings), adapter=adapter or harness.make_adapter(),
            transport=harness.async_transport(), load_entry_points=False,
        )

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.facade, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run_until_complete(method(*args, **kwargs))

        return call

    def close(self) -> None:
        self.loop.run_until_complete(self.facade.aclose())
        self.loop.close()


@pytest.fixture
def harness() -> SalesforceHarness:
    return SalesforceHarness()


@pytest.fixture(params=["sync", "async"])
def make_shop(request, harness):
    shops = []

    def make(adapter: SalesforceAdapter | None = None, **settings: Any):
        cls = SyncShop if request.param == "sync" else AsyncShop
        shop = cls(harness, adapter, **settings)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.close()


@pytest.fixture
def shop(make_shop):
    return make_shop()
