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
