"""The sync and async facades give equal results and equal engine-side effects for the same scenario,
run on the reference adapter (plugins/reference) and its fake engine."""

from __future__ import annotations

import asyncio
import inspect
import json
from decimal import Decimal

import pytest
from loyaltykit_core_test_helpers import basket_dict, fast_settings

from loyaltykit import AsyncLoyalty, Loyalty, LoyaltyError
from loyaltykit.testing import Fault, FaultKind, RuleSpec

reference = pytest.importorskip("loyaltykit_reference.testing", reason="install plugins/reference (requirements-dev.txt)")
from loyaltykit_reference.fake import ReferenceEngine  # noqa: E402

ORDER = {"ref": "o1", "currency": "EUR", "customer_id": "m1", "total": {"amount": "20.50", "currency": "EUR"},
         "lines": [{"id": "l1", "sku": "SKU-1", "quantity": "2", "unit_price": {"amount": "10.25", "currency": "EUR"}}]}


def seeded() -> ReferenceEngine:
    engine = ReferenceEngine()
    engine.add_member("m1", {"email": "ann@example.com", "external_id": "ext-1"}, tier="gold",
                      points=Decimal(100), cashback=Decimal("20.00"))
    engine.add_member("m2", {"email": "bob@example.com"}, cashback=Decimal("1.00"))
    engine.add_voucher("SAVE5", Decimal("5.00"))
    engine.rules.append(RuleSpec(kind="order_percent", percent=Decimal(10), label="10% off"))
    engine.earn_per_unit = Decimal(1)
    return engine


def adapter():
    return reference.ReferenceAdapter(reference.make_harness().adapter_settings())


#: (operation, argument, faults to inject first)
SCENARIO = [
    ("identify", {"kind": "email", "value": "Ann@Example.com"}, []),
    ("identify", {"kind": "external_id", "value": "ext-1"}, []),
    ("identify", {"kind": "email", "value": "nobody@example.com"}, []),
    ("evaluate", basket_dict(customer_id="m1", coupon_codes=["SAVE5", "NOPE"]), []),
    ("evaluate", basket_dict(customer_id="ghost"), []),
    ("evaluate", basket_dict(), [("evaluate", Fault(FaultKind.STATUS, status=503, times=10))]),
    ("evaluate", {"id": "bad", "currency": "EUR", "lines": []}, []),
    ("redeem_voucher", {"code": "SAVE5", "order_ref": "o1", "customer_id": "m1"}, []),
    ("redeem_voucher", {"code": "SAVE5", "order_ref": "o1", "customer_id": "m1"}, []),  # replay, same key
    ("redeem_voucher", {"code": "SAVE5", "order_ref": "o2"}, []),  # already redeemed
    ("redeem_voucher", {"code": "GHOST", "order_ref": "o2"}, []),
    ("spend_cashback", {"customer_id": "m1", "order_ref": "o1", "amount": {"amount": "2.50", "currency": "EUR"}}, []),
    ("spend_cashback", {"customer_id": "m2", "order_ref": "o3", "amount": {"amount": "9.00", "currency": "EUR"}}, []),
    ("spend_cashback", {"customer_id": "m1", "order_ref": "o4", "amount": {"amount": "1.00", "currency": "EUR"}},
     [("spend", Fault(FaultKind.TIMEOUT_AFTER))]),  # applied, answer lost: found by its reference
    ("export_orders", [ORDER], []),
    ("export_orders", [ORDER, {**ORDER, "ref": "o9"}], []),
    ("export_orders", [{**ORDER, "ref": "o10"}], [("export", Fault(FaultKind.STATUS, status=500))]),
    ("reverse", {"order": ORDER, "kind": "cancel"}, []),
    ("reverse", {"order": ORDER, "kind": "cancel"}, []),
    ("price_products", {"currency": "EUR", "products": ORDER["lines"]}, []),
]


def outcome(value):
    """A comparable picture of a result or error (request ids differ between runs by design)."""
    if isinstance(value, LoyaltyError):
        data = value.to_dict()
        data["type"] = type(value).__name__
        if hasattr(value, "idempotency_key"):
            data["idempotency_key"] = value.idempotency_key
        return data
    if isinstance(value, list):
        return [outcome(v) for v in value]
    return value.model_dump(mode="json") if value is not None else None


def run_sync(engine):
    results = []
    with Loyalty(fast_settings(engine="reference"), adapter=adapter(), transport=engine.transport(),
                 load_entry_points=False) as lk:
        for operation, argument, faults in SCENARIO:
            for route, fault in faults:
                engine.inject(route, fault)
            try:
                results.append(outcome(getattr(lk, operation)(argument)))
            except LoyaltyError as exc:
                results.append(outcome(exc))
            engine.clear_faults()
    return results


async def run_async(engine):
    results = []
    async with AsyncLoyalty(fast_settings(engine="reference"), adapter=adapter(), transport=engine.transport(),
                            load_entry_points=False) as lk:
        for operation, argument, faults in SCENARIO:
            for route, fault in faults:
                engine.inject(route, fault)
            try:
                results.append(outcome(await getattr(lk, operation)(argument)))
            except LoyaltyError as exc:
                results.append(outcome(exc))
            engine.clear_faults()
    return results


def requests(engine):
    return [(r.route, r.method, r.path, r.body) for r in engine.requests]


async def test_same_scenario_same_results_and_same_engine_effects():
    sync_engine, async_engine = seeded(), seeded()
    sync_results = run_sync(sync_engine)
    async_results = await run_async(async_engine)
    assert len(sync_results) == len(SCENARIO)
    for step, (expected, got) in enumerate(zip(sync_results, async_results, strict=True)):
        assert got == expected, f"step {step} ({SCENARIO[step][0]}) differs"
    assert async_engine.state() == sync_engine.state()
    assert requests(async_engine) == requests(sync_engine)


async def test_scenario_exercises_what_it_claims():
    """Guard against a parity test that compares two equally empty runs."""
    engine = seeded()
    results = run_sync(engine)
    types = [r.get("type") if isinstance(r, dict) else None for r in results]
    assert results[0]["id"] == "m1" and results[1]["id"] == "m1" and results[2] is None
    assert len(results[3]["discounts"]) == 2 and not results[3]["degraded"]
    assert [c["status"] for c in results[3]["codes"]] == ["accepted", "rejected"]
    assert results[4]["discounts"] and not results[4]["degraded"]  # the engine quotes unknown customers
    assert results[5]["degraded"] is True
    assert types[6] == "InvalidRequestError"
    assert results[8]["receipt"]["replayed"] is True
    assert types[9] == "VoucherAlreadyRedeemedError" and types[10] == "VoucherNotFoundError"
    assert types[12] == "InsufficientBalanceError"
    assert results[13]["receipt"]["replayed"] is True
    assert [r["status"] for r in results[15]["results"]] == ["duplicate", "accepted"]
    assert [r["status"] for r in results[16]["results"]] == ["retry_later"]
    assert types[19] == "NotSupportedError"
    assert results[18]["receipts"][0]["replayed"] is True
    snapshot = json.loads(engine.state())
    assert snapshot["vouchers"]["SAVE5"]["used"] == 1
    assert snapshot["members"]["m1"]["cashback"] == "16.50"
    assert len(snapshot["spends"]) == 2, "the lost spend was found, not sent again"


def test_both_facades_offer_the_same_operations():
    def public(cls):
        return {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)} - {"close", "aclose"}

    assert public(Loyalty) == public(AsyncLoyalty)
    for name in public(AsyncLoyalty):
        assert inspect.iscoroutinefunction(getattr(AsyncLoyalty, name)), name
        assert inspect.signature(getattr(Loyalty, name)) .parameters.keys() == \
            inspect.signature(getattr(AsyncLoyalty, name)).parameters.keys()


async def test_concurrent_async_calls_share_one_client_and_agree_with_the_engine():
    engine = seeded()
    async with AsyncLoyalty(fast_settings(engine="reference"), adapter=adapter(), transport=engine.transport(),
                            load_entry_points=False) as lk:
        customers = await asyncio.gather(*(lk.identify(email="ann@example.com") for _ in range(20)))
    assert {c.id for c in customers} == {"m1"}
    assert engine.request_count("identify") == 20
