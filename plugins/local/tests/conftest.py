"""Fixtures for the embedded engine's tests: a shop = a facade over a fresh engine and database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loyaltykit import AsyncLoyalty, Loyalty, LoyaltySettings, Money
from loyaltykit.postgres_testing import fresh_database
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.program import Program, parse_program
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store
from loyaltykit_local.testing import Clock


@dataclass
class Shop:
    loyalty: Loyalty
    engine: LocalEngine
    clock: Clock
    store: Store

    def customer(self, **kwargs) -> str:
        return self.engine.create_customer(**kwargs)

    def points(self, customer_id: str) -> int:
        return self.engine.balances(customer_id)[0]

    def cashback(self, customer_id: str) -> Money:
        return self.engine.balances(customer_id)[1]

    def async_facade(self) -> AsyncLoyalty:
        return AsyncLoyalty(LoyaltySettings(), adapter=LocalAdapter(engine=self.engine), load_entry_points=False)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 5, 15, 12, 0, tzinfo=UTC))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """The engine's tests run on both stores: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'engine'}.sqlite3"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
def make_shop(tmp_path: Path, clock: Clock, database_url: str):
    made: list[Shop] = []

    def make(program: str | Program = "", *, name: str = "engine") -> Shop:
        if isinstance(program, str):
            program = parse_program(program, "test.toml")
        url = database_url if name == "engine" else f"sqlite:///{tmp_path / name}.sqlite3"
        store = Store(url, busy_timeout_ms=60_000)
        engine = LocalEngine(store, program, clock=clock)
        loyalty = Loyalty(LoyaltySettings(), adapter=LocalAdapter(engine=engine), load_entry_points=False)
        shop = Shop(loyalty, engine, clock, store)
        made.append(shop)
        return shop

    yield make
    for shop in made:
        shop.store.dispose()

