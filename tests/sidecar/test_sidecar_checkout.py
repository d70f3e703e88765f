"""The sidecar on the merged checkout contract: a cancel of an order still queued here is dropped from
the outbox before the engine is told (so it is never exported), product sync as a keyed write, and
problem details that never quote a customer's code."""

from __future__ import annotations

import json

from loyaltykit_crmcom.testing import CrmcomHarness

from loyaltykit import Loyalty, LoyaltySettings, Money

from .conftest import bearer

EUR = "EUR"


def _order(ref: str, customer_id: str | None = None, codes=("ONLY-ONE",)) -> dict:
    return {"ref": ref, "currency": EUR, "customer_id": customer_id, "voucher_codes": list(codes),
            "lines": [{"id": "1", "sku": "BEANS", "quantity": "2", "category": "coffee",
                       "unit_price": {"amount": "10.00", "currency": EUR}}],
            "total": {"amount": "15.00", "currency": EUR}, "placed_at": "2026-01-01T10:00:00Z"}


def test_cancel_of_a_queued_order_drops_it_first_so_it_is_never_exported(service):
    customer_id = service.engine.create_customer(identifiers={"email": "ann@example.com"},
                                                 cashback=Money.of("10.00", EUR))
    assert service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-5"}, key="r-5").status_code == 200
    spent = service.post("/v1/cashback/spend", {"customer_id": customer_id, "order_ref": "O-5",
                                                "amount": {"amount": "4.00", "currency": EUR}}, key="s-5")
    assert spent.status_code == 200, spent.text
    order = _order("O-5", customer_id)
    assert service.post("/v1/orders", order, key="p-5").status_code == 202

    cancel = {"order": order, "kind": "cancel", "reason": "payment declined"}
    cancelled = service.post("/v1/reversals", cancel, key="c-5")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["vouchers_reinstated"] == ["ONLY-ONE"]
    assert cancelled.json()["cashback_returned"] == {"amount": "4.00", "currency": EUR}
    entry = service.outbox.entry("O-5")
    assert entry.state == "dropped" and entry.last_reason == "payment declined"
    # Nothing is left to export: the engine never records (nor credits) the cancelled order.
    assert service.outbox.flush(service.loyalty) is None
    assert service.get("/v1/orders/O-5").json()["state"] == "dropped"
    # The same cancel again is replayed, not applied twice.
    again = service.post("/v1/reversals", cancel, key="c-5")
    assert again.headers["idempotent-replayed"] == "true" and again.json() == cancelled.json()
    # The code was given back: another order may use it.
    assert service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-6"}, key="r-6").status_code == 200


def test_cancel_while_a_worker_exports_the_order_is_409_and_the_retry_cancels_it(service):
    assert service.post("/v1/vouchers/redeem", {"code": "ONLY-ONE", "order_ref": "O-7"}, key="r-7").status_code == 200
    order = _order("O-7")
    assert service.post("/v1/orders", order, key="p-7").status_code == 202
    claimed = service.outbox.claim()  # a worker holds it, mid-export
    assert [o.ref for o in claimed] == ["O-7"]
    cancel = {"order": order, "kind": "cancel", "reason": "voided"}
    busy = service.post("/v1/reversals", cancel, key="c-7")
    assert busy.status_code == 409 and busy.json()["code"] == "order_in_flight"
    assert busy.json()["retryable"] is True and busy.headers["retry-after"] == "1"
    service.outbox.flush(service.loyalty)  # nothing to claim while held
    service.outbox.release(claimed)  # the worker gave it back without exporting
    retried = service.post("/v1/reversals", cancel, key="c-7")  # the key was freed: the cancel runs now
    assert retried.status_code == 200, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert service.outbox.entry("O-7").state == "dropped"


def test_cancel_of_an_exported_order_goes_to_the_engine_as_sent(service):
    order = _order("O-8", codes=())
    assert service.post("/v1/orders", order, key="p-8").status_code == 202
    service.outbox.flush(service.loyalty)
    cancelled = service.post("/v1/reversals", {"order": order, "kind": "cancel"}, key="c-8")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["receipts"][0]["operation"] == "reverse"
    assert service.outbox.entry("O-8").state == "done"  # exported before: the engine reverses it


def test_sync_products_is_a_keyed_write(make_service):
    harness = CrmcomHarness()
    loyalty = Loyalty(LoyaltySettings(engine="crmcom"), adapter=harness.make_adapter(),
                      transport=harness.sync_transport(), load_entry_points=False)
    service = make_service(loyalty=loyalty)
    body = {"products": [{"sku": "COFFEE", "name": "Coffee 1kg", "category": "coffee"}, {"sku": "MUG"}]}
    synced = service.post("/v1/products/sync", body, key="catalogue-2026-01")
    assert synced.status_code == 200, synced.text
    assert synced.json()["synced"] == ["COFFEE", "MUG"] and synced.json()["engine"] == "crmcom"
    assert set(harness.fake.products) == {"COFFEE", "MUG"}
    calls = harness.request_count("products")
    again = service.post("/v1/products/sync", body, key="catalogue-2026-01")
    assert again.headers["idempotent-replayed"] == "true" and harness.request_count("products") == calls
    loyalty.close()


def test_sync_products_refuses_bad_input_before_the_engine_and_says_when_unsupported(service):
    duplicate = service.post("/v1/products/sync", {"products": [{"sku": "A"}, {"sku": "A"}]}, key="sync-1")
    assert duplicate.status_code == 400 and duplicate.json()["field"] == "products"
    empty = service.post("/v1/products/sync", {"products": []}, key="sync-2")
    assert empty.status_code == 400 and empty.json()["field"] == "products"
    missing = service.post("/v1/products/sync", {"products": [{"name": "no sku"}]}, key="sync-3")
    assert missing.status_code == 400 and missing.json()["field"] == "products.0.sku"
    unsupported = service.post("/v1/products/sync", {"products": [{"sku": "A"}]}, key="sync-4")
    assert unsupported.status_code == 501 and unsupported.json()["code"] == "not_supported"
    assert service.store.state("pos", "sync-4") is None  # nothing applied: the key is free again


def test_a_code_quoted_by_the_engine_never_reaches_a_problem_detail(service):
    body = {"code": "EXPIRED-2019", "order_ref": "O-9"}
    expired = service.post("/v1/vouchers/redeem", body, key="r-9")
    assert expired.status_code == 422 and expired.json()["code"] == "voucher_expired"
    assert "EXPIRED-2019" not in expired.text and "***" in expired.json()["detail"]
    replayed = service.post("/v1/vouchers/redeem", body, key="r-9")  # the stored answer is the scrubbed one
    assert replayed.headers["idempotent-replayed"] == "true" and "EXPIRED-2019" not in replayed.text
    unknown = service.post("/v1/vouchers/redeem", {"code": "SECRET-CODE-77", "order_ref": "O-9"}, key="r-10")
    assert unknown.status_code == 404 and "SECRET-CODE-77" not in unknown.text
    lookup = service.client.post("/v1/vouchers/redeem", content=json.dumps(body).encode(),
                                 headers={**bearer(), "Content-Type": "application/json"})
    assert lookup.status_code == 400 and lookup.json()["field"] == "Idempotency-Key"
