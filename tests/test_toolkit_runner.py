"""What the runner decides for every adapter, shown on the reference adapter (plugins/reference):
one token refresh for many callers, an unreadable answer to a write is an unknown outcome, and
one in-flight call per idempotency key (its spends are look-up-then-post: no engine-side key)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from loyaltykit_core_test_helpers import fast_settings

from loyaltykit import AsyncLoyalty, Loyalty, OutcomeUnknownError
from loyaltykit.testing import Fault, FaultKind

reference = pytest.importorskip("loyaltykit_reference.testing", reason="install plugins/reference (requirements-dev.txt)")


async def call(method, *args):
    """Call a facade method, awaiting it when the facade is the async one."""
    result = method(*args)
    return await result if asyncio.iscoroutine(result) else result


@pytest.fixture
def harness():
    h = reference.make_harness()
    h.fake.add_member("m1", {"email": "ann@example.com"}, cashback=Decimal("20.00"))
    yield h
    h.close()


def transports(harness, *, token_delay: float = 0.0, delay: float = 0.0, rewrite=None):
    """Sync and async transports onto the fake; the delays let concurrent callers overlap;
    ``rewrite(request, response)`` replaces the answer after the engine has applied the request."""

    def pause(request: httpx.Request) -> float:
        return token_delay if request.url.path.endswith("/oauth/token") else delay

    def answer(request: httpx.Request) -> httpx.Response:
        response = harness.fake.handle(request)
        return rewrite(request, response) if rewrite else response

    def sync_handler(request: httpx.Request) -> httpx.Response:
        time.sleep(pause(request))
        return answer(request)

    async def async_handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(pause(request))
        return answer(request)

    return httpx.MockTransport(sync_handler), httpx.MockTransport(async_handler)


@pytest.fixture
def facades(harness):
    made = []

    def make(kind: str, **options):
        sync_transport, async_transport = transports(harness, **options)
        cls, transport = (Loyalty, sync_transport) if kind == "sync" else (AsyncLoyalty, async_transport)
        facade = cls(fast_settings(engine="reference"), adapter=harness.make_adapter(), load_entry_points=False,
                     transport=transport)
        made.append(facade)
        return facade

    yield make
    for facade in made:
        if isinstance(facade, Loyalty):
            facade.close()  # async facades are closed by their tests, on their own event loop


def test_thirty_threads_after_an_expiry_make_one_refresh(harness, facades):
    shop = facades("sync", token_delay=0.02)
    assert shop.identify(email="ann@example.com").id == "m1"
    assert harness.request_count("token") == 1
    harness.expire_token()
    with ThreadPoolExecutor(30) as pool:
        found = list(pool.map(lambda _: shop.identify(email="ann@example.com"), range(30)))
    assert all(c.id == "m1" for c in found)
    assert harness.request_count("token") == 2, "one refresh for thirty callers"


async def test_thirty_tasks_after_an_expiry_make_one_refresh(harness, facades):
    shop = facades("async", token_delay=0.02)
    try:
        assert (await shop.identify(email="ann@example.com")).id == "m1"
        harness.expire_token()
        found = await asyncio.gather(*(shop.identify(email="ann@example.com") for _ in range(30)))
        assert all(c.id == "m1" for c in found)
        assert harness.request_count("token") == 2, "one refresh for thirty callers"
    finally:
        await shop.aclose()


SPEND = {"customer_id": "m1", "order_ref": "o-1", "kind": "cashback", "amount": {"amount": "1.00", "currency": "EUR"}}


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_unreadable_answer_to_an_unreconciled_write_is_unknown_with_its_key(kind, harness, facades):
    harness.inject("redeem", Fault(FaultKind.MALFORMED))
    harness.fake.add_voucher("V5", Decimal(5))
    shop = facades(kind)
    try:
        with pytest.raises(OutcomeUnknownError) as info:
            await call(shop.redeem_voucher, {"code": "V5", "order_ref": "o-9", "customer_id": "m1"})
        assert info.value.idempotency_key == "o-9:redeem:V5"
    finally:
        if kind == "async":
            await shop.aclose()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_answer_without_its_status_to_a_write_is_unknown(kind, harness, facades):
    harness.fake.add_voucher("V5", Decimal(5))

    def no_status(request, response):
        return httpx.Response(201, json={"id": "r1"}) if request.url.path == "/redemptions" else response

    shop = facades(kind, rewrite=no_status)
    try:
        with pytest.raises(OutcomeUnknownError):
            await call(shop.redeem_voucher, {"code": "V5", "order_ref": "o-8", "customer_id": "m1"})
        assert harness.voucher_redemptions("V5") == 1, "applied by the engine: hence unknown, never a failure"
    finally:
        if kind == "async":
            await shop.aclose()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_garbled_spend_answer_is_reconciled_from_the_engines_record(kind, harness, facades):
    def garbled(request, response):
        posted = request.method == "POST" and request.url.path == "/spends"
        return httpx.Response(200, content=b"{gar") if posted else response

    shop = facades(kind, rewrite=garbled)
    try:
        result = await call(shop.spend_cashback, SPEND)
    finally:
        if kind == "async":
            await shop.aclose()
    assert result.receipt.engine_ref == "s1" and result.receipt.replayed
    assert harness.balances("m1").cashback.amount == Decimal("19.00"), "spent once"


def test_ten_threads_with_one_key_spend_once_on_an_engine_without_idempotency(harness, facades):
    shop = facades("sync", delay=0.002)
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: shop.spend_cashback(SPEND), range(10)))
    assert len(harness.fake.spends) == 1, f"applied {len(harness.fake.spends)} times"
    assert harness.balances("m1").cashback.amount == Decimal("19.00")
    assert {r.receipt.engine_ref for r in results} == {"s1"}
    assert sum(not r.receipt.replayed for r in results) == 1


async def test_ten_tasks_with_one_key_spend_once_on_an_engine_without_idempotency(harness, facades):
    shop = facades("async", delay=0.002)
    try:
        results = await asyncio.gather(*(shop.spend_cashback(SPEND) for _ in range(10)))
    finally:
        await shop.aclose()
    assert len(harness.fake.spends) == 1, f"applied {len(harness.fake.spends)} times"
    assert {r.receipt.engine_ref for r in results} == {"s1"}


def test_different_keys_are_not_serialised(harness, facades):
    shop = facades("sync", delay=0.002)
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(shop.spend_cashback, [{**SPEND, "order_ref": f"o-{i}"} for i in range(5)]))
    assert harness.balances("m1").cashback.amount == Decimal("15.00")
