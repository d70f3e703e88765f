"""The committed OpenAPI document and the request/response examples a platform's tests reuse.

* the served document must equal ``docs/openapi/sidecar.json`` (regenerate with
  ``python -m loyaltykit.sidecar.openapi``);
* every example in ``docs/openapi/examples/`` must validate against the document's schema for its
  operation and status, and replaying the requests in order on a fresh embedded engine must give
  exactly the committed responses (request ids aside). ``LOYALTYKIT_WRITE_EXAMPLES=1`` rewrites them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema_rs
import pytest

from loyaltykit import Money
from loyaltykit.sidecar.openapi import DEFAULT_PATH, openapi_document, render
from loyaltykit_local.program import VoucherDef

from .conftest import bearer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / DEFAULT_PATH
EXAMPLES = ROOT / "docs/openapi/examples"
WRITE = os.environ.get("LOYALTYKIT_WRITE_EXAMPLES") == "1"

# The scenario, in order: name, method, path, Idempotency-Key, expected status.
SCENARIO = [
    ("capabilities", "GET", "/v1/capabilities", None, 200),
    ("identify", "POST", "/v1/customers/identify", None, 200),
    ("evaluate", "POST", "/v1/evaluate", None, 200),
    ("price-products", "POST", "/v1/products/prices", None, 200),
    ("redeem-voucher", "POST", "/v1/vouchers/redeem", "ORD-1001-redeem-WELCOME10", 200),
    ("spend-cashback", "POST", "/v1/cashback/spend", "ORD-1001-spend", 200),
    ("place-order", "POST", "/v1/orders", "ORD-1001-place", 202),
    ("order-status", "GET", "/v1/orders/ORD-1001", None, 200),
    ("refund-partial", "POST", "/v1/reversals", "ORD-1001-refund-RMA-7", 200),
    ("place-order-declined", "POST", "/v1/orders", "ORD-1003-place", 202),
    ("cancel-queued-order", "POST", "/v1/reversals", "ORD-1003-cancel", 200),
    ("order-status-dropped", "GET", "/v1/orders/ORD-1003", None, 200),
    ("enrol-member", "POST", "/v1/members", "shop-2001-enrol", 200),
    ("update-member", "POST", "/v1/members/update", "C-1001-segments-2026-01", 200),
    ("member-statement", "GET", "/v1/members/C-1001/statement?page_size=3", None, 200),
    ("member-wallet", "GET", "/v1/members/C-1001/wallet", None, 200),
    ("problem-invalid-request", "POST", "/v1/evaluate", None, 400),
    ("problem-voucher-already-redeemed", "POST", "/v1/vouchers/redeem", "ORD-1002-redeem-ONLY-ONE", 422),
    ("problem-idempotency-key-reused", "POST", "/v1/vouchers/redeem", "ORD-1001-redeem-WELCOME10", 422),
]


def test_served_document_matches_the_committed_one(service):
    served = service.get("/openapi.json")
    assert served.status_code == 200
    committed = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    assert served.json() == committed, "OpenAPI drift: run `python -m loyaltykit.sidecar.openapi` and commit"
    assert DOCUMENT.read_text(encoding="utf-8") == render()


def test_document_is_3_1_and_documents_every_status_the_server_returns():
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            if path in ("/livez", "/readyz"):
                assert "security" not in operation
                continue
            assert operation["security"] == [{"bearer": []}, {"basic": []}]
            assert {"400", "401", "500"} <= statuses, (method, path)
            if method == "post" and path not in ("/v1/evaluate", "/v1/customers/identify", "/v1/products/prices"):
                assert {"409", "422", "429", "503", "504"} <= statuses, (method, path)
                names = [p["name"] for p in operation["parameters"]]
                assert "Idempotency-Key" in names
    money = document["components"]["schemas"]["Money-Output"]["properties"]["amount"]
    assert money["type"] == "string"  # decimal strings on the wire, never JSON numbers


def _validator(document: dict, schema: dict):
    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


def _response_schema(document: dict, method: str, path: str, status: int) -> dict:
    operation = _operation(document, method, path)
    content = operation["responses"][str(status)]["content"]
    return next(iter(content.values()))["schema"]


def _operation(document: dict, method: str, path: str) -> dict:
    paths = document["paths"]
    path = path.partition("?")[0]
    if path in paths:
        return paths[path][method.lower()]
    parts = path.split("/")
    for template, operations in paths.items():
        pattern = template.split("/")
        if len(pattern) == len(parts) and all(p == q or (p.startswith("{") and p.endswith("}"))
                                               for p, q in zip(pattern, parts, strict=True)):
            return operations[method.lower()]
    raise KeyError(path)


def _requests() -> dict[str, dict]:
    catalog = {}
    for name, *_ in SCENARIO:
        file = EXAMPLES / f"{name}.request.json"
        if file.exists():
            catalog[name] = json.loads(file.read_text(encoding="utf-8"))
    return catalog


# What differs from run to run: request ids, the instants of statement entries, a new member's id.
_VARYING = {"request_id": "<request-id>", "at": "<instant>"}


def _normalise(body):
    if isinstance(body, dict):
        if "created" in body and isinstance(body.get("customer"), dict):
            body = {**body, "customer": {**body["customer"], "id": "<new-member-id>"}}
        return {k: (_VARYING[k] if k in _VARYING and v is not None else _normalise(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [_normalise(v) for v in body]
    return body


def test_examples_validate_against_the_document_and_replay_exactly(make_service):
    document = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    service = make_service()
    service.engine.create_customer(id="C-1001", identifiers={"email": "ann@example.com"}, tier=None,
                                   cashback=Money.of("25.00", "EUR"))
    # Another order already used the single-use code.
    service.loyalty.redeem_voucher({"code": "ONLY-ONE", "order_ref": "ORD-0999"})
    # An offer in the member's wallet.
    service.engine.issue_voucher(VoucherDef(code="ANN-BIRTHDAY-5", kind="fixed", amount=5, label="5 EUR birthday gift",
                                            owner="C-1001"), offer_kind="fixed_off_check")
    requests = _requests()
    index = []
    for name, method, path, key, status in SCENARIO:
        request = requests.get(name)
        operation = _operation(document, method, path)
        if request is not None:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            if status != 400:
                _validator(document, schema).validate(request)
        headers = {**bearer(), **({"Idempotency-Key": key} if key else {})}
        response = service.client.request(method, path, json=request, headers=headers)
        assert response.status_code == status, (name, response.text)
        body = _normalise(response.json())
        _validator(document, _response_schema(document, method, path, status)).validate(response.json())
        file = EXAMPLES / f"{name}.response.json"
        if WRITE:
            file.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        assert json.loads(file.read_text(encoding="utf-8")) == body, name
        index.append({"name": name, "method": method, "path": path, "idempotency_key": key, "status": status,
                      "request": f"{name}.request.json" if request is not None else None,
                      "response": f"{name}.response.json"})
    manifest = EXAMPLES / "index.json"
    if WRITE:
        manifest.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    assert json.loads(manifest.read_text(encoding="utf-8")) == index


def test_every_example_file_is_in_the_scenario():
    listed = {"index.json"} | {f"{name}.{kind}.json" for name, *_ in SCENARIO for kind in ("request", "response")}
    present = {p.name for p in EXAMPLES.glob("*.json")}
    assert present <= listed, present - listed


@pytest.mark.parametrize("bad", [{"amount": 5.5, "currency": "EUR"}, {"amount": "5", "currency": "EURO"}])
def test_a_request_that_breaks_the_kit_rules_is_refused_by_the_server(service, bad):
    basket = json.loads((EXAMPLES / "evaluate.request.json").read_text(encoding="utf-8"))
    basket["lines"][0]["unit_price"] = bad
    response = service.post("/v1/evaluate", basket)
    assert response.status_code == 400 and response.json()["field"].startswith("lines.0.unit_price")
