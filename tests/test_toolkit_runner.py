"""What the runner decides for every adapter: one token refresh for many callers, an unreadable
answer to a write is an unknown outcome, and one in-flight call per idempotency key."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import loyaltykit_core_test_support as support
import pytest

from loyaltykit import Balance, BalanceKind, Money, OutcomeUnknownError, Receipt, SpendResult, wire
from loyaltykit.flows import EngineRequest
from loyaltykit.reconcile import reconcile
from loyaltykit.testing import Fault, FaultKind

SECRET = "refresh-secret-9c1"


async def call(method, *args):
    """Call a facade method, awaiting it when the facade is the async one."""
    result = method(*args)
    return await result if asyncio.iscoroutine(result) else result


def slow_token(engine: support.ShopEngine, seconds: float = 0.02):
    """Transports whose token endpoint takes a moment, so concurrent callers overlap the refresh."""

    def sync_handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            time.sleep(seconds)
        return engine.handle(request)

    async def async_handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            await asyncio.sleep(seconds)
        return engine.handle(request)

    return httpx.MockTransport(sync_handler), httpx.MockTransport(async_handler)


@pytest.fixture
def oauth_engine():
    engine = support.ShopEngine(client_id="shop-client", client_secret=SECRET)
    engine.add_member("m1", email="ann@example.com", cashback="20.00")
    return engine


def oauth_adapter():
    return support.ShopAdapter({"client_id": "shop-client", "client_secret": SECRET})


def test_thirty_threads_after_an_expiry_make_one_refresh(oauth_engine, make_sync):
    sync_transport, _ = slow_token(oauth_engine)
    shop = make_sync(oauth_adapter(), transport=sync_transport)
    assert shop.identify(email="ann@example.com").id == "m1"
    assert oauth_engine.request_count("token") == 1
    oauth_engine.expire_tokens()
    with ThreadPoolExecutor(30) as pool:
        found = list(pool.map(lambda _: shop.identify(email="ann@example.com"), range(30)))
    assert all(c.id == "m1" for c in found)
    assert oauth_engine.request_count("token") == 2, "one refresh for thirty callers"


async def test_thirty_tasks_after_an_expiry_make_one_refresh(oauth_engine, make_async):
    _, async_transport = slow_token(oauth_engine)
    shop = make_async(oauth_adapter(), transport=async_transport)
    assert (await shop.identify(email="ann@example.com")).id == "m1"
    oauth_engine.expire_tokens()
    found = await asyncio.gather(*(shop.identify(email="ann@example.com") for _ in range(30)))
    assert all(c.id == "m1" for c in found)
    assert oauth_engine.request_count("token") == 2, "one refresh for thirty callers"


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_an_unreadable_answer_to_a_write_is_an_unknown_outcome_with_its_key(facade, engine, make_sync, make_async):
    engine.inject("spend", Fault(FaultKind.MALFORMED))
    spend = {"customer_id": "m1", "order_ref": "o-1", "kind": "cashback",
             "amount": {"amount": "5.00", "currency": "EUR"}}
    shop = make_sync() if facade == "sync" else make_async()
    with pytest.raises(OutcomeUnknownError) as info:
        await call(shop.spend_cashback, spend)
    assert info.value.idempotency_key and info.value.idempotency_key.startswith("o-1")


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_an_answer_without_the_expected_fields_to_a_write_is_unknown(facade, engine, make_sync, make_async):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/spend"):
            return httpx.Response(201, json={"unexpected": True})  # no status, no spend id
        return engine.handle(request)

    spend = {"customer_id": "m1", "order_ref": "o-2", "kind": "cashback",
             "amount": {"amount": "5.00", "currency": "EUR"}}
    shop = (make_sync if facade == "sync" else make_async)(transport=httpx.MockTransport(handler))
    with pytest.raises(OutcomeUnknownError):
        await call(shop.spend_cashback, spend)


class LookUpThenPost(support.ShopAdapter):
    """Spends on an engine without native idempotency: look the spend up by order, post if absent."""

    def spend_cashback(self, spend, ctx):
        def look_up():
            response = yield EngineRequest("GET", "/spends", params={"order": spend.order_ref}, route="lookup")
            found = wire.items(wire.at(wire.json_body(response), "spends"), "spends")
            return wire.text(wire.at(found[0], "spend_id"), "spends[0].spend_id") if found else None

        def send():
            response = yield EngineRequest(
                "POST", f"/members/{spend.customer_id}/spend",
                json={"amount": spend.amount.amount, "order": spend.order_ref}, write=True, route="spend",
            )
            return wire.text(wire.at(wire.json_body(response), "spend_id"), "spend_id")

        sent, found = yield from reconcile(send, look_up, look_first=True)
        return SpendResult(
            kind=BalanceKind.CASHBACK, amount=spend.amount,
            receipt=Receipt(operation="spend_cashback", engine=self.name, idempotency_key=spend.key,
                            engine_ref=sent or found, amount=spend.amount, replayed=found is not None),
        )


def _slow(engine):
    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(0.002)  # widen the gap between look-up and post
        return engine.handle(request)

    async def ahandler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.002)
        return engine.handle(request)

    return httpx.MockTransport(handler), httpx.MockTransport(ahandler)


SPEND = {"customer_id": "m1", "order_ref": "o-race", "kind": "cashback", "amount": {"amount": "1.00", "currency": "EUR"}}


def test_ten_threads_with_one_key_apply_a_look_up_then_post_spend_once(engine, make_sync):
    shop = make_sync(LookUpThenPost(), transport=_slow(engine)[0])
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: shop.spend_cashback(SPEND), range(10)))
    spends = [e for e in engine.ledger if e["type"] == "spend"]
    assert len(spends) == 1, f"applied {len(spends)} times"
    assert engine.members["m1"]["cashback"] == Decimal("19.00")
    assert {r.receipt.engine_ref for r in results} == {spends[0]["ref"]}
    assert sum(not r.receipt.replayed for r in results) == 1


async def test_ten_tasks_with_one_key_apply_a_look_up_then_post_spend_once(engine, make_async):
    shop = make_async(LookUpThenPost(), transport=_slow(engine)[1])
    results = await asyncio.gather(*(shop.spend_cashback(SPEND) for _ in range(10)))
    spends = [e for e in engine.ledger if e["type"] == "spend"]
    assert len(spends) == 1, f"applied {len(spends)} times"
    assert {r.receipt.engine_ref for r in results} == {spends[0]["ref"]}


def test_different_keys_are_not_serialised(engine, make_sync):
    shop = make_sync(LookUpThenPost(), transport=_slow(engine)[0])
    orders = [{**SPEND, "order_ref": f"o-{i}"} for i in range(5)]
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(shop.spend_cashback, orders))
    assert engine.members["m1"]["cashback"] == Decimal("15.00")
    assert Money.of("15.00", "EUR") == Balance(kind=BalanceKind.CASHBACK, money=Money.of("15.00", "EUR")).money
