"""Fixtures of the sidecar tests: the app on the embedded engine, driven in process over ASGI.

Skipped as a whole (with the reason) when the ``sidecar`` extra is not installed, except in CI,
where requirements-dev installs it and a skip would hide a missing dependency.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("fastapi", reason="the sidecar extra is not installed (pip install loyaltykit[sidecar])")

import httpx
from fastapi.testclient import TestClient

from loyaltykit import Loyalty, LoyaltySettings
from loyaltykit.outbox import Outbox
from loyaltykit.sidecar import SidecarSettings, create_app, hash_key
from loyaltykit.sidecar.idempotency import IdempotencyStore
from loyaltykit.sidecar.observability import EngineMetrics
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.program import parse_program
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store

KEY = "lk_test-key-pos-0001"
NEXT_KEY = "lk_test-key-pos-0002"
SFCC_KEY = "lk_test-key-sfcc-0001"

PROGRAM = """
name = "Test Club"
currency = "EUR"
currencies = ["EUR"]

[points]
per_currency_unit = 1

[cashback]
spend_min = 1
spend_max = 200

[[vouchers]]
code = "ONLY-ONE"
kind = "fixed"
amount = 5
label = "5 EUR off"

[[vouchers]]
code = "WELCOME10"
kind = "percent"
percent = 10
usage_limit = "unlimited"
label = "10 % welcome"

[[vouchers]]
code = "EXPIRED-2019"
kind = "fixed"
amount = 5
valid_until = 2019-12-31T23:59:59Z

[[rules]]
id = "coffee-5"
label = "5 % off coffee"
when = { categories = { any = ["coffee"] } }
then = { action = "percent_off_line", percent = 5, categories = ["coffee"] }
"""


def basic(name: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{key}".encode()).decode()


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Service:
    app: object
    client: TestClient
    engine: LocalEngine
    loyalty: Loyalty
    outbox: Outbox
    store: IdempotencyStore
    settings: SidecarSettings

    def post(self, path: str, body, key: str | None = None, headers: dict | None = None, **kwargs) -> httpx.Response:
        sent = {**bearer(), **(headers or {})}
        if key is not None:
            sent["Idempotency-Key"] = key
        return self.client.post(path, json=body, headers=sent, **kwargs)

    def get(self, path: str, headers: dict | None = None) -> httpx.Response:
        return self.client.get(path, headers={**bearer(), **(headers or {})})


def sidecar_settings(tmp_path: Path, **overrides) -> SidecarSettings:
    values = {
        "clients": [{"name": "pos", "keys": [hash_key(KEY), hash_key(NEXT_KEY)]},
                    {"name": "sfcc", "keys": [hash_key(SFCC_KEY)]}],
        "flush_interval": 0,
    }
    return SidecarSettings(**{**values, **overrides})


def build_service(tmp_path: Path, program: str = PROGRAM, *, loyalty: Loyalty | None = None, name: str = "engine",
                  **overrides) -> Service:
    store_db = Store(f"sqlite:///{tmp_path}/{name}.sqlite3")
    engine = LocalEngine(store_db, parse_program(program, "test.toml"))
    # The outbox and the idempotency records share the kit's outbox_url, as in production.
    kit = LoyaltySettings(outbox_url=f"sqlite:///{tmp_path}/{name}-outbox.sqlite3")
    loyalty = loyalty or Loyalty(kit, adapter=LocalAdapter(engine=engine), load_entry_points=False,
                                 plugins=[EngineMetrics()])
    settings = sidecar_settings(tmp_path, **overrides)
    outbox = Outbox.from_settings(kit)
    store = IdempotencyStore.from_settings(kit, retention_seconds=settings.retention_seconds)
    app = create_app(settings, loyalty=loyalty, outbox=outbox, store=store)
    client = TestClient(app, base_url="http://sidecar", raise_server_exceptions=False)
    service = Service(app, client, engine, loyalty, outbox, store, settings)
    service._db = store_db  # type: ignore[attr-defined]
    return service


def close_service(service: Service) -> None:
    service.client.close()
    service.store.close()
    service.outbox.close()
    service._db.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def make_service(tmp_path: Path):
    made: list[Service] = []

    def make(program: str = PROGRAM, *, loyalty: Loyalty | None = None, **overrides) -> Service:
        service = build_service(tmp_path, program, loyalty=loyalty, name=f"engine-{len(made)}", **overrides)
        made.append(service)
        return service

    yield make
    for service in made:
        close_service(service)


@pytest.fixture
def service(make_service) -> Service:
    return make_service()
