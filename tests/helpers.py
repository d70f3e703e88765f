"""Helpers of the core's unit tests. The engine they drive is the reference adapter
(``loyaltykit_reference``) and its fake; nothing here is an engine of its own.

Loaded by ``conftest.py`` under the distinctive module name ``loyaltykit_core_test_helpers`` so it
cannot collide with another test directory's helpers when the whole repository runs in one session.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from loyaltykit import EngineAdapter, LoyaltySettings
from loyaltykit_reference.adapter import ReferenceAdapter
from loyaltykit_reference.fake import API_KEY, CLIENT_ID, CLIENT_SECRET, ReferenceEngine

BASE_URL = "https://reference.test"
TOKEN_URL = BASE_URL + "/oauth/token"
CURRENCY = "EUR"
ENGINE = "reference"

__all__ = ["API_KEY", "BASE_URL", "CLIENT_ID", "CLIENT_SECRET", "CURRENCY", "ENGINE", "TOKEN_URL"]


def adapter_settings(**overrides: Any) -> dict[str, Any]:
    """Reference settings for tests: the API-key header (no token round trip a respx mock would have
    to answer) and short back-offs, so failure paths finish quickly."""
    return {"base_url": BASE_URL, "auth": "api_key", "api_key": API_KEY, "backoff_base": 0.01, **overrides}


def oauth_settings(**overrides: Any) -> dict[str, Any]:
    """Reference settings with OAuth2 client credentials (the fake's client)."""
    return adapter_settings(auth="oauth2", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, api_key=None, **overrides)


def reference_adapter(**overrides: Any) -> ReferenceAdapter:
    return ReferenceAdapter(adapter_settings(**overrides))


def seeded_engine() -> ReferenceEngine:
    """The fake most core tests start from: Ann (gold, 100 points, 20.00 cashback), Bob (1.00
    cashback), two single-use vouchers, one point per currency unit on exported orders."""
    fake = ReferenceEngine()
    fake.add_member("m1", {"email": "ann@example.com", "external_id": "ext-ann-0001"}, tier="gold",
                    points=Decimal(100), cashback=Decimal("20.00"))
    fake.add_member("m2", {"email": "bob@example.com"}, tier="basic", cashback=Decimal("1.00"))
    fake.add_voucher("SAVE5", Decimal("5.00"))
    fake.add_voucher("SAVE3", Decimal("3.00"))
    fake.earn_per_unit = Decimal(1)
    return fake


def fast_settings(**overrides: Any) -> LoyaltySettings:
    """Kit settings with short deadlines, so failure paths finish quickly."""
    values: dict[str, Any] = {"evaluate_budget": 2.0, "read_deadline": 3.0, "write_deadline": 3.0, "engine": ENGINE}
    values.update(overrides)
    return LoyaltySettings(**values)


def basket_dict(**overrides: Any) -> dict[str, Any]:
    """A valid basket as a shop would send it (plain dict)."""
    basket: dict[str, Any] = {
        "id": "b1",
        "currency": CURRENCY,
        "lines": [
            {"id": "l1", "sku": "SKU-1", "quantity": "2", "unit_price": {"amount": "10.00", "currency": CURRENCY}},
            {"id": "l2", "sku": "SKU-2", "quantity": "1", "unit_price": {"amount": "5.50", "currency": CURRENCY}},
        ],
    }
    basket.update(overrides)
    return basket


class FakeEntryPoint:
    """Duck-typed ``importlib.metadata.EntryPoint`` for testing discovery."""

    class _Dist:
        def __init__(self, name: str, version: str) -> None:
            self.name = name
            self.version = version

    def __init__(self, name: str, obj: Any, dist: str = "fake-dist", version: str = "9.9.9",
                 error: Exception | None = None) -> None:
        self.name = name
        # Engine adapters are published in "loyaltykit", observer plugins in "loyaltykit.plugins".
        is_adapter = isinstance(obj, type) and issubclass(obj, EngineAdapter)
        self.group = "loyaltykit" if is_adapter or error is not None else "loyaltykit.plugins"
        self.value = f"fake:{name}"
        self._obj = obj
        self._error = error
        self.dist = self._Dist(dist, version)
        self.loads = 0

    def load(self) -> Any:
        self.loads += 1
        if self._error is not None:
            raise self._error
        return self._obj


def fake_entry_points(*eps: FakeEntryPoint):
    """A replacement for ``importlib.metadata.entry_points`` serving only ``eps``."""
    lock = threading.Lock()

    def entry_points(*, group: str | None = None, **_: Any):
        with lock:
            return [ep for ep in eps if group in (None, ep.group)]

    return entry_points
