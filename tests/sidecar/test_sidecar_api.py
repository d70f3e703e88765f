"""Golden tests of the sidecar through an in-process ASGI client: bodies, problems, idempotency,
auth, fail-open evaluation, trace propagation and logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
import time
from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from loyaltykit import Loyalty, Money
from loyaltykit.sidecar.auth import sign
from loyaltykit.sidecar.idempotency import UNKNOWN
from loyaltykit.sidecar.observability import JsonFormatter, TraceTransport, access_log
from loyaltykit.testing import Fault, FaultKind
from loyaltykit_reference.fake import ReferenceEngine

from .conftest import KEY, NEXT_KEY, SFCC_KEY, basic, bearer

helpers = sys.modules["loyaltykit_core_test_helpers"]


def basket(quantity: str = "2", codes=("ONLY-ONE", "NOPE"), **extra) -> dict:
    return {
        "id": "cart-1", "currency": "EUR", "coupon_codes": list(codes),
        "lines": [{"id": "1", "sku": "BEANS", "quantity": quantity, "category": "coffee",
                   "unit_price": {"amount": "10.00", "currency": "EUR"}}],
        **extra,
    }


def engine_calls(operation: str) -> float:
    total = 0.0
    for outcome in ("ok", "invalid_request", "voucher_already_redeemed", "engine_unavailable", "outcome_unknown"):
        total += REGISTRY.get_sample_value(
            "loyaltykit_engine_call_seconds_count", {"operation": operation, "outcome": outcome}) or 0.0
    return total


# -- quotes -----------------------------------------------------------------------------------------
def test_evaluate_money_is_strings_rejected_codes_are_results_and_effect_ids_are_stable(service):
    first = service.post("/v1/evaluate", basket("2"))
    second = service.post("/v1/evaluate", basket("3"))
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    quote = first.json()
    assert quote["subtotal"] == {"amount": "20.00", "currency": "EUR"}
    assert {c["code"]: c["status"] for c in quote["codes"]} == {"ONLY-ONE": "accepted", "NOPE": "rejected"}
    assert [d["amount"]["amount"] for d in quote["discounts"]] == ["1.00", "5.00"]
    ids = [d["id"] for d in quote["discounts"]]
    assert len(set(ids)) == 2 and all(i.startswith("lk-d-") for i in ids)
    # Another quantity moves the amounts, not the ids a cartridge keys its price adjustments on.
    assert [d["id"] for d in second.json()["discounts"]] == ids
    assert [d["amount"]["amount"] for d in second.json()["discounts"]] == ["1.50", "5.00"]


def test_bad_body_is_400_naming_the_field_and_calls_no_engine(service):
    before = engine_calls("evaluate_basket")
    bad_quantity = basket()
    bad_quantity["lines"][0]["quantity"] = "0"
    response = service.post("/v1/evaluate", bad_quantity)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_request" and body["field"] == "lines.0.quantity" and not body["retryable"]
    assert body["type"] == "urn:loyaltykit:error:invalid_request" and body["status"] == 400
    assert body["request_id"] == response.headers["x-request-id"]

    as_float = basket()
    as_float["lines"][0]["unit_price"]["amount"] = 10.5
    assert service.post("/v1/evaluate", as_float).json()["field"] == "lines.0.unit_price.amount"
    duplicate = basket(codes=("A", "A"))
    assert service.post("/v1/evaluate", duplicate).json()["field"] == "coupon_codes"
    broken = service.client.post("/v1/evaluate", content=b"{not json", headers={**bearer(), "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["field"] == "body"
    assert engine_calls("evaluate_basket") == before


def test_price_products_and_capabilities(service):
    prices = service.post("/v1/products/prices", {"currency": "EUR", "products": basket()["lines"]})
    assert prices.status_code == 200
    assert prices.json()["prices"][0]["discounted_price"] == {"amount": "9.50", "currency": "EUR"}
    caps = service.get("/v1/capabilities").json()
    assert caps["engine"] == "local" and caps["redeem_voucher"] is True


def test_identify_found_and_not_found(service):
    customer_id = service.engine.create_customer(identifiers={"email": "ann@example.com"}, points=40)
    found = service.post("/v1/customers/identify", {"kind": "email", "value": "Ann@Example.com"})
    assert found.status_code == 200 and found.json()["id"] == customer_id
    missing = service.post("/v1/customers/identify", {"kind": "email", "value": "nobody@example.com"})
    assert missing.status_code == 404 and missing.json()["code"] == "customer_not_found"


# -- keyed writes -----------------------------------------------------------------------------------
def test_write_without_idempotency_key_is_400(service):
    response = service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-1"})
    assert response.status_code == 400 and response.json()["field"] == "Idempotency-Key"
    assert service.engine is not None and engine_calls("redeem_voucher") == engine_calls("redeem_voucher")


def test_same_key_same_body_replays_the_stored_answer(service):
    body = {"code": "ONLY-ONE", "order_ref": "O-1"}
    first = service.post("/v1/vouchers/redeem", body, key="pos-O-1-redeem")
    calls = engine_calls("redeem_voucher")
    again = service.post("/v1/vouchers/redeem", dict(reversed(body.items())), key="pos-O-1-redeem")
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert engine_calls("redeem_voucher") == calls  # the replay did not reach the engine


def test_same_key_other_body_is_422_and_a_refusal_is_replayed_too(service):
    service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-1"}, key="k-1")
    other = service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-2"}, key="k-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    refused = service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-2"}, key="k-2")
    assert refused.status_code == 422 and refused.json()["code"] == "voucher_already_redeemed"
    replayed = service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-2"}, key="k-2")
    assert replayed.headers["idempotent-replayed"] == "true" and replayed.json() == refused.json()


def test_same_key_while_the_first_call_runs_is_409_with_retry_after(service):
    body = {"code": "ONLY-ONE", "order_ref": "O-1"}
    from loyaltykit.models import VoucherRedemption
    from loyaltykit.sidecar.idempotency import fingerprint

    # Another worker holds the key: its row is running, with a live lease.
    canonical = VoucherRedemption.model_validate(body).model_dump(mode="json")
    began = service.store.begin("pos", "k-busy", "redeem_voucher", fingerprint("redeem_voucher", canonical), 30)
    assert began.decision == "execute"
    busy = service.post("/v1/vouchers/redeem", body, key="k-busy")
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    assert busy.json()["code"] == "idempotency_in_flight" and busy.json()["retryable"] is True
    # The same key from another client is another key.
    other_client = service.post("/v1/vouchers/redeem", body, key="k-busy", headers={"Authorization": f"Bearer {SFCC_KEY}"})
    assert other_client.status_code == 200


def test_spend_place_order_status_and_refund(service):
    customer_id = service.engine.create_customer(identifiers={"email": "ann@example.com"}, cashback=Money.of("10.00", "EUR"))
    spent = service.post("/v1/cashback/spend", {"customer_id": customer_id, "order_ref": "O-9",
                                                "amount": {"amount": "4.00", "currency": "EUR"}}, key="spend-O-9")
    assert spent.status_code == 200, spent.text
    assert spent.json()["remaining"]["money"] == {"amount": "6.00", "currency": "EUR"}
    order = {"ref": "O-9", "currency": "EUR", "customer_id": customer_id, "lines": basket()["lines"],
             "total": {"amount": "20.00", "currency": "EUR"}, "placed_at": "2026-01-01T10:00:00Z"}
    placed = service.post("/v1/orders", order, key="place-O-9")
    assert placed.status_code == 202 and placed.headers["location"] == "/v1/orders/O-9"
    assert placed.json() == {"order_ref": "O-9", "state": "pending", "queued": True, "attempts": 0,
                             "last_status": None, "last_reason": None}
    service.outbox.flush(service.loyalty)
    status = service.get("/v1/orders/O-9").json()
    assert status["state"] == "done" and status["last_status"] == "accepted"
    assert service.get("/v1/orders/nope").status_code == 404
    refund = service.post("/v1/reversals", {"order": order, "kind": "refund", "reference": "RMA-1",
                                            "lines": [{"line_id": "1", "quantity": "1"}]}, key="rma-1")
    assert refund.status_code == 200, refund.text
    assert refund.json()["order_ref"] == "O-9" and refund.json()["kind"] == "refund"


# -- engine failures ------------------------------------------------------------------------------------
def shop_service(make_service, fake, **settings):
    loyalty = Loyalty(helpers.fast_settings(write_deadline=1.0, read_deadline=1.0, evaluate_budget=1.0, **settings),
                      adapter=helpers.reference_adapter(), load_entry_points=False,
                      transport=TraceTransport(fake.transport()))
    return make_service(loyalty=loyalty)


def test_engine_down_evaluate_fails_open_and_a_write_is_503_with_retry_after(make_service):
    fake = ReferenceEngine()
    fake.add_voucher("SAVE5", Decimal("5.00"))
    service = shop_service(make_service, fake, breaker_threshold=1000)
    fake.inject("evaluate", Fault(FaultKind.STATUS, status=503, times=20))
    fake.inject("redeem", Fault(FaultKind.STATUS, status=503, times=20))
    quote = service.post("/v1/evaluate", {**helpers.basket_dict(), "coupon_codes": ["SAVE5"]})
    assert quote.status_code == 200
    assert quote.json()["degraded"] is True
    assert quote.json()["codes"] == [{"code": "SAVE5", "status": "rejected", "reason": "engine_unavailable", "message": None}]
    down = service.post("/v1/vouchers/redeem", {"code": "SAVE5", "order_ref": "O-1"}, key="k-down")
    assert down.status_code == 503 and down.headers["retry-after"]
    assert down.json()["code"] == "engine_unavailable" and down.json()["retryable"] is True
    # Nothing was applied, so the key is free for the retry, which goes through once the engine is back.
    fake.clear_faults()
    again = service.post("/v1/vouchers/redeem", {"code": "SAVE5", "order_ref": "O-1"}, key="k-down")
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers


def test_rate_limited_is_429_with_retry_after(make_service):
    fake = ReferenceEngine()
    service = shop_service(make_service, fake)
    fake.inject("identify", Fault(FaultKind.RATE_LIMIT, retry_after=30, times=20))
    limited = service.post("/v1/customers/identify", {"kind": "email", "value": "ann@example.com"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "30"
    assert limited.json()["code"] == "rate_limited" and limited.json()["retryable"] is True


def test_outcome_unknown_is_504_with_the_key_and_the_retry_reconciles_without_a_second_effect(make_service):
    fake = ReferenceEngine()
    fake.add_voucher("SAVE5", Decimal("5.00"))
    service = shop_service(make_service, fake)
    fake.inject("redeem", Fault(FaultKind.TIMEOUT_AFTER, times=20))
    body = {"code": "SAVE5", "order_ref": "O-7"}
    lost = service.post("/v1/vouchers/redeem", body, key="k-lost")
    assert lost.status_code == 504
    problem = lost.json()
    assert problem["code"] == "outcome_unknown" and problem["idempotency_key"] == "k-lost" and problem["retryable"]
    assert service.store.state("pos", "k-lost") == UNKNOWN
    assert fake.vouchers["SAVE5"]["used"] == 1  # the engine did apply it; only the answer was lost
    fake.clear_faults()
    settled = service.post("/v1/vouchers/redeem", body, key="k-lost")
    assert settled.status_code == 200, settled.text
    assert settled.json()["receipt"]["replayed"] is True  # the engine recognised the key: no second burn
    assert fake.vouchers["SAVE5"]["used"] == 1
    assert service.post("/v1/vouchers/redeem", body, key="k-lost").headers["idempotent-replayed"] == "true"


def test_a_garbled_answer_to_a_write_is_reconciled_not_replayed(make_service):
    fake = ReferenceEngine()
    fake.add_voucher("SAVE5", Decimal("5.00"))
    service = shop_service(make_service, fake, breaker_threshold=1000)
    fake.inject("redeem", Fault(FaultKind.MALFORMED, times=20))
    body = {"code": "SAVE5", "order_ref": "O-8"}
    garbled = service.post("/v1/vouchers/redeem", body, key="k-garbled")
    # An answer to a write that cannot be read leaves its outcome unknown: 504 with the key, like a timeout.
    assert garbled.status_code == 504 and garbled.json()["code"] == "outcome_unknown"
    assert garbled.json()["idempotency_key"] == "k-garbled" and garbled.json()["retryable"] is True
    assert service.store.state("pos", "k-garbled") == UNKNOWN
    fake.clear_faults()
    settled = service.post("/v1/vouchers/redeem", body, key="k-garbled")
    assert settled.status_code == 200 and "idempotent-replayed" not in settled.headers
    assert fake.vouchers["SAVE5"]["used"] == 1


def test_traceparent_reaches_the_engine_and_comes_back(make_service):
    fake = ReferenceEngine()
    service = shop_service(make_service, fake)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = service.post("/v1/evaluate", helpers.basket_dict(),
                            headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    assert response.status_code == 200
    sent = [r for r in fake.requests if r.route == "evaluate"][-1]
    assert sent.headers["traceparent"].startswith(f"00-{trace}-")
    assert response.headers["traceparent"].startswith(f"00-{trace}-")
    assert sent.headers["traceparent"].split("-")[2] != "00f067aa0ba902b7"  # our own span


# -- auth ------------------------------------------------------------------------------------------------
def test_only_health_checks_answer_without_a_key(service):
    assert service.client.get("/livez").status_code == 200
    assert service.client.get("/readyz").json()["status"] == "ok"
    for method, path in [("GET", "/v1/capabilities"), ("GET", "/metrics"), ("GET", "/openapi.json"),
                         ("POST", "/v1/evaluate"), ("GET", "/v1/orders/x"), ("GET", "/nowhere")]:
        response = service.client.request(method, path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "unauthorized"
        assert "Bearer" in response.headers["www-authenticate"] and "Basic" in response.headers["www-authenticate"]


def test_bearer_and_basic_and_two_active_keys(service):
    assert service.client.get("/v1/capabilities", headers=bearer(KEY)).status_code == 200
    assert service.client.get("/v1/capabilities", headers=bearer(NEXT_KEY)).status_code == 200
    assert service.client.get("/v1/capabilities", headers={"Authorization": basic("sfcc", SFCC_KEY)}).status_code == 200
    assert service.client.get("/v1/capabilities", headers={"Authorization": basic("pos", SFCC_KEY)}).status_code == 401
    assert service.client.get("/v1/capabilities", headers=bearer("lk_wrong")).status_code == 401
    garbage = {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}
    assert service.client.get("/v1/capabilities", headers=garbage).status_code == 401


def test_hmac_signature_and_timestamp_window(make_service):
    service = make_service(hmac="required", hmac_window=300)
    body = json.dumps(basket()).encode()

    def call(timestamp, signature):
        headers = {**bearer(), "Content-Type": "application/json"}
        if timestamp is not None:
            headers["X-Loyaltykit-Timestamp"] = str(timestamp)
        if signature is not None:
            headers["X-Loyaltykit-Signature"] = signature
        return service.client.post("/v1/evaluate", content=body, headers=headers)

    now = int(time.time())
    assert call(now, sign(KEY, now, "POST", "/v1/evaluate", body)).status_code == 200
    assert call(None, None).json()["code"] == "signature_required"
    stale = now - 301
    assert call(stale, sign(KEY, stale, "POST", "/v1/evaluate", body)).json()["code"] == "signature_expired"
    tampered = sign(KEY, now, "POST", "/v1/evaluate", body + b" ")
    assert call(now, tampered).json()["code"] == "signature_invalid"
    assert call(now, sign(NEXT_KEY, now, "POST", "/v1/evaluate", body)).status_code == 401  # signed with another key


# -- operations ------------------------------------------------------------------------------------------
def test_access_log_is_json_with_request_id_and_no_secret_or_customer_data(service):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access_log.addHandler(handler)
    try:
        service.engine.create_customer(identifiers={"email": "ann@example.com"})
        service.post("/v1/customers/identify", {"kind": "email", "value": "ann@example.com"})
        service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-1"}, key="k-log",
                     headers={"X-Request-Id": "req-123"})
        service.client.get("/v1/capabilities", headers={"Authorization": basic("sfcc", SFCC_KEY)})
    finally:
        access_log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["route"] for line in lines] == ["/v1/customers/identify", "/v1/vouchers/redeem", "/v1/capabilities"]
    assert lines[1]["request_id"] == "req-123" and lines[1]["client"] == "pos" and lines[1]["status"] == 200
    text = stream.getvalue()
    for secret in ("ann@example.com", "ONLY-ONE", KEY, SFCC_KEY, "k-log"):
        assert secret not in text


def test_metrics_count_requests_replays_and_outbox_depth(service):
    service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-1"}, key="k-m")
    service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-1"}, key="k-m")
    text = service.get("/metrics").text
    assert 'loyaltykit_sidecar_request_seconds_count{method="POST",route="/v1/vouchers/redeem",status="200"}' in text
    assert 'loyaltykit_engine_call_seconds_count{operation="redeem_voucher",outcome="ok"}' in text
    assert 'loyaltykit_sidecar_idempotency_total{result="replayed"}' in text
    assert 'loyaltykit_outbox_orders{state="pending"} 0.0' in text
    assert "loyaltykit_outbox_oldest_pending_seconds 0.0" in text
    order = {"ref": "O-m", "currency": "EUR", "lines": basket()["lines"], "total": {"amount": "20.00", "currency": "EUR"}}
    service.post("/v1/orders", order, key="place-m")
    time.sleep(0.01)
    text = service.get("/metrics").text
    assert 'loyaltykit_outbox_orders{state="pending"} 1.0' in text
    age = next(row for row in text.splitlines() if row.startswith("loyaltykit_outbox_oldest_pending_seconds "))
    assert float(age.split()[1]) > 0
    assert 'loyaltykit_circuit_breaker_state{engine="local",state="closed"} 1.0' in text


def test_body_too_large_is_413(make_service):
    service = make_service(max_body_bytes=1024)
    response = service.client.post("/v1/evaluate", content=b"x" * 5000, headers=bearer())
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_lifespan_flushes_the_outbox_in_the_background(make_service):
    service = make_service(flush_interval=0.05)
    order = {"ref": "O-bg", "currency": "EUR", "lines": basket()["lines"], "total": {"amount": "20.00", "currency": "EUR"}}
    with TestClient(service.app, base_url="http://sidecar") as client:
        assert client.post("/v1/orders", json=order, headers={**bearer(), "Idempotency-Key": "bg"}).status_code == 202
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and client.get("/v1/orders/O-bg", headers=bearer()).json()["state"] != "done":
            time.sleep(0.05)
        assert client.get("/v1/orders/O-bg", headers=bearer()).json()["state"] == "done"


def test_the_core_imports_and_the_cli_runs_without_the_sidecar_extra(tmp_path):
    import subprocess

    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('fastapi', 'uvicorn', 'prometheus_client', 'starlette'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = ("import loyaltykit, loyaltykit.cli, loyaltykit.outbox\n"
            "from typer.testing import CliRunner\n"
            "r = CliRunner().invoke(loyaltykit.cli.app, ['serve'])\n"
            "print(r.exit_code, r.output)")
    code = code.replace("r.output", "r.output + r.stderr")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 ") and "loyaltykit[sidecar]" in done.stdout


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """The golden tests never leave the process."""
    def refuse(*args, **kwargs):
        raise AssertionError("no real HTTP in golden tests")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", refuse)


def test_optional_signing_accepts_unsigned_requests_but_not_bad_signatures(make_service):
    service = make_service(hmac="optional")
    assert service.get("/v1/capabilities").status_code == 200
    now = int(time.time())
    good = {"X-Loyaltykit-Timestamp": str(now),
            "X-Loyaltykit-Signature": sign(KEY, now, "GET", "/v1/capabilities", b"")}
    assert service.get("/v1/capabilities", headers=good).status_code == 200
    bad = {**good, "X-Loyaltykit-Signature": "v1=" + "0" * 64}
    assert service.get("/v1/capabilities", headers=bad).json()["code"] == "signature_invalid"


def test_readyz_pings_the_engine_when_asked_and_caches_the_answer(make_service):
    fake = ReferenceEngine()
    loyalty = Loyalty(helpers.fast_settings(read_deadline=1.0, breaker_threshold=1000), adapter=helpers.reference_adapter(),
                      load_entry_points=False, transport=fake.transport())
    service = make_service(loyalty=loyalty, ping_engine=True, ping_cache_seconds=60)
    fake.inject("identify", Fault(FaultKind.STATUS, status=503, times=20))
    down = service.client.get("/readyz")
    assert down.status_code == 503 and down.json()["checks"]["engine"] == "engine_unavailable"
    fake.clear_faults()
    assert service.client.get("/readyz").status_code == 503  # cached
    service.app.sidecar._ping = None  # cache expired
    up = service.client.get("/readyz")
    assert up.status_code == 200 and up.json()["checks"] == {"idempotency_store": "ok", "outbox": "ok", "engine": "ok"}
    assert fake.request_count("identify") >= 2
