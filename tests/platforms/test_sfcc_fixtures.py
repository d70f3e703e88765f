"""The SFCC cartridge's request and response fixtures are valid against the sidecar's committed
OpenAPI document, so the cartridge's tests and the sidecar cannot drift apart: a body the cartridge
builds (its tests compare against these files) is a body the sidecar accepts, and an answer the
cartridge is tested with is one the sidecar can send."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest

from loyaltykit import Money

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi" / "sidecar.json"
FIXTURES = ROOT / "platforms" / "sfcc" / "test" / "fixtures"
INDEX = json.loads((FIXTURES / "index.json").read_text(encoding="utf-8"))


def validator(schema_name: str):
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    assert schema_name in schemas, f"the sidecar's OpenAPI document has no schema {schema_name}"
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(root)


def test_every_fixture_is_listed_with_its_schema():
    on_disk = {p.name for p in FIXTURES.glob("*.json")} - {"index.json"}
    assert on_disk == set(INDEX), "each fixture file must name its OpenAPI schema in index.json"


@pytest.mark.parametrize("name", sorted(INDEX))
def test_fixture_matches_the_sidecar_schema(name):
    body = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}"
              for e in validator(INDEX[name]).iter_errors(body)]
    assert not errors, f"{name} is not a valid {INDEX[name]}: {errors}"


def test_the_validator_rejects_what_the_sidecar_rejects():
    """The check can fail: a number as money, an unknown field and a missing field are refused."""
    body = json.loads((FIXTURES / "spend.request.json").read_text(encoding="utf-8"))
    check = validator("CashbackSpend")
    assert check.is_valid(body)
    assert not check.is_valid({**body, "unexpected": 1})
    assert not check.is_valid({k: v for k, v in body.items() if k != "order_ref"})
    assert not validator("Quote").is_valid({"engine": "local"})
    quote = json.loads((FIXTURES / "evaluate.response.json").read_text(encoding="utf-8"))
    quote["discounts"][0]["amount"]["amount"] = 1.49  # Money out of the sidecar is a string, never a JSON number
    assert not validator("Quote").is_valid(quote)


def test_the_write_paths_the_cartridge_calls_exist_and_take_an_idempotency_key():
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    service_js = (ROOT / "platforms/sfcc/cartridges/int_loyaltykit/cartridge/scripts/loyaltykit/service.js").read_text()
    for path in ("/v1/vouchers/redeem", "/v1/cashback/spend", "/v1/orders", "/v1/reversals"):
        assert f"'{path}'" in service_js
        names = [p["name"] for p in document["paths"][path]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names, path
    for path in ("/v1/evaluate", "/v1/products/prices", "/v1/customers/identify"):
        assert f"'{path}'" in service_js and "post" in document["paths"][path]
    assert "get" in document["paths"]["/v1/orders/{order_ref}"]


# -- the sidecar itself accepts the cartridge's request bodies ----------------------------------------
# Sent in the order a checkout sends them, so each is judged against what really happened before it:
# (fixture, path, Idempotency-Key or None, expected status). The checkout pays order 00001001 and
# refunds part of it once exported; the compensation cancels an order whose payment failed after the
# cashback was spent (the same order number, in another shop's history: a fresh engine).
CHECKOUT = [
    ("evaluate.request.json", "/v1/evaluate", None, 200),
    ("prices.request.json", "/v1/products/prices", None, 200),
    ("redeem.request.json", "/v1/vouchers/redeem", "fx-redeem", 200),
    ("spend.request.json", "/v1/cashback/spend", "fx-spend", 200),
    ("order.request.json", "/v1/orders", "fx-order", 202),
    # (the outbox exports the order here)
    ("refund.request.json", "/v1/reversals", "fx-refund", 200),
]
FAILED_ORDER = [
    ("redeem.request.json", "/v1/vouchers/redeem", "fx-redeem", 200),
    ("spend.request.json", "/v1/cashback/spend", "fx-spend", 200),
    ("compensation.request.json", "/v1/reversals", "fx-compensation", 200),
]


def test_every_request_fixture_is_sent_to_the_sidecar_here():
    sent = {name for name, *_ in CHECKOUT + FAILED_ORDER}
    assert {name for name in INDEX if ".request." in name} == sent


@pytest.fixture
def make_sidecar(tmp_path):
    """The sidecar app on the embedded engine, in process: its own models judge the bodies."""
    import os

    if os.environ.get("CI") != "true":
        pytest.importorskip("fastapi", reason="the sidecar extra is not installed (pip install loyaltykit[sidecar])")
    from fastapi.testclient import TestClient

    from loyaltykit import Loyalty, LoyaltySettings, Money
    from loyaltykit.outbox import Outbox
    from loyaltykit.sidecar import SidecarSettings, create_app, hash_key
    from loyaltykit.sidecar.idempotency import IdempotencyStore
    from loyaltykit_local.adapter import LocalAdapter
    from loyaltykit_local.program import parse_program
    from loyaltykit_local.service import LocalEngine
    from loyaltykit_local.store import Store

    program = """
name = "fixtures"
currency = "EUR"
currencies = ["EUR"]

[cashback]
spend_min = 1
spend_max = 200

[[vouchers]]
code = "WELCOME10"
kind = "percent"
percent = 10
label = "10 % welcome"
"""
    opened: list = []

    def make(name: str):
        db = Store(f"sqlite:///{tmp_path}/{name}-engine.sqlite3")
        engine = LocalEngine(db, parse_program(program, "fx.toml"))
        engine.create_customer(id="cust-1", cashback=Money.of("25.00", "EUR"))  # the member of the fixtures
        # The outbox and the idempotency records share the kit's outbox_url.
        kit = LoyaltySettings(outbox_url=f"sqlite:///{tmp_path}/{name}-outbox.sqlite3")
        settings = SidecarSettings(clients=[{"name": "sfcc", "keys": [hash_key("lk_fixture-key-0001")]}],
                                   flush_interval=0)
        outbox = Outbox.from_settings(kit)
        store = IdempotencyStore.from_settings(kit, retention_seconds=settings.retention_seconds)
        loyalty = Loyalty(kit, adapter=LocalAdapter(engine=engine), load_entry_points=False)
        client = TestClient(create_app(settings, loyalty=loyalty, outbox=outbox, store=store),
                            base_url="http://sidecar", raise_server_exceptions=False)
        opened.append((client, store, outbox, loyalty, db))
        return client, outbox, loyalty, engine

    yield make
    for client, store, outbox, loyalty, db in opened:
        client.close()
        store.close()
        outbox.close()
        loyalty.close()
        db.dispose()


def _send(client, name: str, path: str, key: str | None):
    headers = {"Authorization": "Bearer lk_fixture-key-0001"}
    if key:
        headers["Idempotency-Key"] = key
    body = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return client.post(path, json=body, headers=headers)


def test_the_sidecar_accepts_the_checkout_fixtures_in_order(make_sidecar):
    client, outbox, loyalty, engine = make_sidecar("checkout")
    for name, path, key, status in CHECKOUT:
        if name == "refund.request.json":
            assert outbox.flush(loyalty) is not None  # the export job ran
            assert "00001001" in engine.orders_received()
        answer = _send(client, name, path, key)
        assert answer.status_code == status, f"{name}: {answer.status_code} {answer.text}"
    # The spend the fixture asked for was within the order's amount due, and the refund gave back
    # a share of it: the member holds 25.00 - 10.00 + the refund's cashback.
    refund = answer.json()
    # The answer the cartridge's tests are given is the one the sidecar sends (the engine's own
    # reference of the reversal aside).
    expected = json.loads((FIXTURES / "refund.response.json").read_text(encoding="utf-8"))
    assert {**refund, "receipts": [{**r, "engine_ref": "rev-12"} for r in refund["receipts"]]} == expected
    _, cashback = engine.balances("cust-1", "EUR")
    returned = Money.of(refund["cashback_returned"]["amount"], "EUR") if refund["cashback_returned"] else None
    assert returned is not None and returned.amount > 0
    assert cashback == Money.of("15.00", "EUR") + returned


def test_the_sidecar_accepts_the_compensation_of_a_failed_order(make_sidecar):
    client, _, _, engine = make_sidecar("failed")
    for name, path, key, status in FAILED_ORDER:
        answer = _send(client, name, path, key)
        assert answer.status_code == status, f"{name}: {answer.status_code} {answer.text}"
    _, cashback = engine.balances("cust-1", "EUR")
    assert cashback == Money.of("25.00", "EUR")  # the spend was given back
    assert engine.orders_received() == []


def test_a_spend_above_the_amount_due_is_refused_before_the_engine(make_sidecar):
    """The fixture's amount_due is what the core checks: more than it is a 400 naming the field."""
    client, _, _, engine = make_sidecar("over")
    body = json.loads((FIXTURES / "spend.request.json").read_text(encoding="utf-8"))
    body["amount"] = {"amount": "42.71", "currency": "EUR"}
    answer = client.post("/v1/cashback/spend", json=body,
                         headers={"Authorization": "Bearer lk_fixture-key-0001", "Idempotency-Key": "fx-over"})
    assert answer.status_code == 400 and answer.json()["field"] == "amount", answer.text
    assert engine.balances("cust-1", "EUR")[1] == Money.of("25.00", "EUR")
