"""Fixtures: the fake CRM.COM and both facades, so every flow scenario runs sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from loyaltykit_crmcom.adapter import CrmcomAdapter
from loyaltykit_crmcom.testing import CrmcomHarness

from loyaltykit import AsyncLoyalty, Loyalty, LoyaltySettings


class SyncShop:
    def __init__(self, harness: CrmcomHarness, adapter: CrmcomAdapter | None = None) -> None:
        self.facade = Loyalty(LoyaltySettings(engine="crmcom"), adapter=adapter or harness.make_adapter(),
                              transport=harness.sync_transport(), load_entry_points=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.facade, name)

    def close(self) -> None:
        self.facade.close()


class AsyncShop:
    def __init__(self, harness: CrmcomHarness, adapter: CrmcomAdapter | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.facade = AsyncLoyalty(LoyaltySettings(engine="crmcom"), adapter=adapter or harness.make_adapter(),
                                   transport=harness.async_transport(), load_entry_points=False)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.facade, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run_until_complete(method(*args, **kwargs))

        return call

    def close(self) -> None:
        self.loop.run_until_complete(self.facade.aclose())
        self.loop.close()


@pytest.fixture
def harness() -> CrmcomHarness:
    return CrmcomHarness()


@pytest.fixture(params=["sync", "async"])
def make_shop(request, harness):
    shops = []

    def make(adapter: CrmcomAdapter | None = None):
        shop = (SyncShop if request.param == "sync" else AsyncShop)(harness, adapter)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.close()


@pytest.fixture
def shop(make_shop):
    return make_shop()
