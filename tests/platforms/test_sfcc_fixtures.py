"""The SFCC cartridge's request and response fixtures are valid against the sidecar's committed
OpenAPI document, so the cartridge's tests and the sidecar cannot drift apart: a body the cartridge
builds (its tests compare against these files) is a body the sidecar accepts, and an answer the
cartridge is tested with is one the sidecar can send."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest

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
ACCEPTED = {
    # fixture: (path, Idempotency-Key or None, statuses that mean "the body was understood"); a
    # reversal of an order the engine has not received yet may be refused, but not as a bad request
    "evaluate.request.json": ("/v1/evaluate", None, {200}),
    "prices.request.json": ("/v1/products/prices", None, {200}),
    "redeem.request.json": ("/v1/vouchers/redeem", "fx-redeem", {200}),
    "spend.request.json": ("/v1/cashback/spend", "fx-spend", {200}),
    "order.request.json": ("/v1/orders", "fx-order", {202}),
    "refund.request.json": ("/v1/reversals", "fx-refund", {200, 404, 422}),
    "compensation.request.json": ("/v1/reversals", "fx-compensation", {200, 404, 422}),
}


def test_every_request_fixture_is_sent_to_the_sidecar_here():
    assert {name for name in INDEX if ".request." in name} == set(ACCEPTED)


@pytest.fixture(scope="module")
def sidecar_client(tmp_path_factory):
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

    tmp = tmp_path_factory.mktemp("sidecar")
    db = Store(f"sqlite:///{tmp}/engine.sqlite3")
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
    engine = LocalEngine(db, parse_program(program, "fx.toml"))
    engine.create_customer(id="cust-1", cashback=Money.of("25.00", "EUR"))  # the member of the fixtures
    settings = SidecarSettings(database_url=f"sqlite:///{tmp}/sidecar.sqlite3", outbox_path=tmp / "outbox.sqlite3",
                               clients=[{"name": "sfcc", "keys": [hash_key("lk_fixture-key-0001")]}], flush_interval=0)
    outbox = Outbox(settings.outbox_path)
    store = IdempotencyStore(settings.database_url, retention_seconds=settings.retention_seconds)
    loyalty = Loyalty(LoyaltySettings(), adapter=LocalAdapter(engine=engine), load_entry_points=False)
    client = TestClient(create_app(settings, loyalty=loyalty, outbox=outbox, store=store), base_url="http://sidecar",
                        raise_server_exceptions=False)
    yield client
    client.close()
    store.close()
    outbox.close()
    db.dispose()


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_the_sidecar_accepts_the_request_fixture(sidecar_client, name):
    path, key, understood = ACCEPTED[name]
    headers = {"Authorization": "Bearer lk_fixture-key-0001"}
    if key:
        headers["Idempotency-Key"] = key
    body = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    answer = sidecar_client.post(path, json=body, headers=headers)
    assert answer.status_code in understood, f"{name}: {answer.status_code} {answer.text}"
    assert answer.status_code != 400
