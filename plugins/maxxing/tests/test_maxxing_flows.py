"""End to end through the sync and the async facade against the stateful MAXXING fake."""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
from loyaltykit_maxxing.adapter import MaxxingAdapter
from loyaltykit_maxxing.fake import FakeVoucher, MaxxingFake
from loyaltykit_maxxing.settings import Operation
from loyaltykit_maxxing.testing import MaxxingHarness, harness_settings

from loyaltykit import (
    AsyncLoyalty,
    CashbackSpend,
    Loyalty,
    LoyaltySettings,
    Money,
    Order,
    ProductQuery,
    VoucherRedemption,
)
from loyaltykit.errors import (
    AuthFailedError,
    LoyaltyError,
    OutcomeUnknownError,
    VoucherAlreadyRedeemedError,
)
from loyaltykit.models import Basket, ExportStatus, Line, RefundLine, Reversal, ReversalKind, SpendResult
from loyaltykit.testing import FACADE_KINDS, FacadeDriver, Fault, FaultKind, RuleSpec, VoucherSpec, serve

KIT = {"read_deadline": 2.0, "write_deadline": 3.0, "evaluate_budget": 1.0, "breaker_threshold": 1000}
EUR = "EUR"


def eur(value: str) -> Money:
    return Money.of(value, EUR)


class Shop(FacadeDriver):
    """One harness and one facade (sync or async), called the same way."""

    def __init__(self, kind: str, harness: MaxxingHarness | None = None, **settings: Any) -> None:
        self.h = harness or MaxxingHarness(**settings)
        super().__init__(self.h, kind, **KIT)

    def bodies(self, route: str) -> list[Any]:
        return [r.body for r in self.fake.requests if r.route == route]


@pytest.fixture(params=FACADE_KINDS)
def shop(request):
    made = Shop(request.param)
    yield made
    made.close()


def member(shop: Shop, cashback: str = "0", **identifiers: str):
    return shop.fake.add_customer(card_key=identifiers.get("card"), email=identifiers.get("email"),
                                  cashback=Decimal(cashback))


def basket(customer_id: str | None, *codes: str, channel: str | None = None, store: str | None = None) -> Basket:
    return Basket(id="cart-1", currency=EUR, customer_id=customer_id, coupon_codes=codes, channel=channel,
                  store_id=store, lines=(Line(id="l1", sku="SKU-A", quantity=2, unit_price=eur("20.00")),
                                         Line(id="l2", sku="SKU-B", quantity=1, unit_price=eur("10.00"))))


# -- the confirmed calls, verbatim ------------------------------------------------------------------


def test_identify_by_card_sends_the_documented_call(shop):
    ann = member(shop, cashback="12.50", card="925000000001")
    customer = shop.identify(card="925000000001")
    assert customer.id == ann.cust_id and customer.cashback_in(EUR) == eur("12.50")
    first = next(r for r in shop.fake.requests if r.route == "identify")
    assert first.path == "/MPCM/Web/api/rest/5.6/CustomerInformationServer/getCustomerByCardKey"
    assert first.body == {"storeChain": "0", "card_key": "925000000001"}
    assert first.headers["content-type"] == "application/json"
    user, _, password = base64.b64decode(first.headers["authorization"].removeprefix("Basic ")).decode().partition(":")
    assert (user, password) == ("kit-api-user", "kit-api-password")
    assert shop.identify(card="925000000099") is None


def test_identify_by_email_uses_get_customers(shop):
    ann = member(shop, email="ann@example.com")
    assert shop.identify(email="Ann@Example.com").id == ann.cust_id
    search = next(r for r in shop.fake.requests if r.path.endswith("/getCustomers"))
    assert search.body == {"storeChain": "0", "email": "ann@example.com"}
    assert shop.identify(email="nobody@example.com") is None


def test_two_customers_with_one_email_are_not_guessed(shop):
    member(shop, email="twin@example.com")
    member(shop, email="twin@example.com")
    assert isinstance(shop.attempt("identify", {"kind": "email", "value": "twin@example.com"}), LoyaltyError)


# -- the fake refuses what the engine is documented to refuse ----------------------------------------


def fake_call(fake: MaxxingFake, body: Any, *, auth: tuple[str, str] | None = ("kit-api-user", "kit-api-password"),
              content_type: str = "application/json") -> httpx.Response:
    with httpx.Client(transport=fake.transport(), base_url="https://kit.cloud.maxxing.com") as client:
        return client.post("/MPCM/Web/api/rest/5.6/CustomerInformationServer/getCustomerByCardKey",
                           content=json.dumps(body), auth=auth, headers={"Content-Type": content_type})


def test_fake_requires_basic_auth_of_the_api_user():
    fake = MaxxingFake()
    fake.add_customer(card_key="925000000001")
    body = {"storeChain": "0", "card_key": "925000000001"}
    assert fake_call(fake, body, auth=None).status_code == 401
    assert fake_call(fake, body, auth=("kit-api-user", "wrong")).status_code == 401
    assert fake_call(fake, body).json()["customer"]["card_key"] == "925000000001"


def test_fake_allows_only_whitelisted_endpoints():
    fake = MaxxingFake(whitelist={"customers"})
    assert fake_call(fake, {"storeChain": "0", "card_key": "925000000001"}).status_code == 403


def test_fake_refuses_a_body_without_its_documented_keys():
    fake = MaxxingFake()
    assert fake_call(fake, {"card_key": "925000000001"}).json()["errorCode"] == "MISSING_FIELD"
    assert fake_call(fake, {"storeChain": "0"}).json()["errorCode"] == "MISSING_FIELD"
    assert fake_call(fake, {"storeChain": "0", "card_key": "1"}, content_type="text/plain").status_code == 415


def test_wrong_credentials_are_auth_failed():
    harness = MaxxingHarness()
    harness.settings["password"] = "not-the-password"
    shop = Shop("sync", harness)
    try:
        error = shop.attempt("identify", {"kind": "card", "value": "925000000001"})
        assert isinstance(error, AuthFailedError)
        assert "not-the-password" not in str(error)
    finally:
        shop.close()


# -- evaluate, price, redeem, spend, export, reverse ----------------------------------------------


def test_checkout_end_to_end(shop):
    shop.h.define_cashback_rule(Decimal(2))
    ann = member(shop, cashback="20.00", card="925000000001")
    # A voucher earned in a store, burned online.
    shop.fake.add_voucher(FakeVoucher(code="STORE5", kind="fixed", value=Decimal(5), owner=ann.cust_id,
                                      channel="STORE"))
    cart = basket(ann.cust_id, "STORE5", channel="WEB")
    quote = shop.evaluate(cart)
    assert quote.discount_total == eur("5.00") and quote.codes[0].status.value == "accepted"
    assert [e.money for e in quote.earn] == [eur("0.90")]  # 2 % of 45.00
    redeemed = shop.redeem_voucher(VoucherRedemption(code="STORE5", order_ref="ORD-1", customer_id=ann.cust_id,
                                                     basket=cart))
    paid = shop.spend_cashback(CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-1", amount=eur("15.00")))
    assert paid.remaining.money == eur("5.00")
    order = Order.from_evaluation("ORD-1", cart, quote, [redeemed.receipt, paid.receipt])
    report = shop.export_orders([order])
    assert report.status_of("ORD-1") is ExportStatus.ACCEPTED
    sale = shop.bodies("export")[-1]
    assert (sale["order_number"], sale["store"], sale["channel"]) == ("ORD-1", "42", "WEB")
    assert sale["tenders"][0]["amount"] == Decimal("15.00")
    assert shop.fake.vouchers["STORE5"].burns == [
        {"transaction_key": "lk-ORD-1:redeem:STORE5", "channel": "WEB", "store": "42"}]
    assert shop.export_orders([order]).status_of("ORD-1") is ExportStatus.DUPLICATE
    assert shop.fake.sales() == ["ORD-1"]
    assert shop.h.balances(ann.cust_id).cashback == eur("5.90")
    # A second online order cannot burn the store voucher again.
    again = shop.attempt("redeem_voucher", VoucherRedemption(code="STORE5", order_ref="ORD-2",
                                                              customer_id=ann.cust_id, basket=cart))
    assert isinstance(again, VoucherAlreadyRedeemedError)


def test_price_products_and_messages(shop):
    shop.h.define_rule(RuleSpec(kind="line_percent", percent=Decimal(25), sku="SKU-A", label="A quarter off A"))
    shop.h.define_rule(RuleSpec(kind="message", message="Free shipping from 60.00"))

    prices = shop.price_products(ProductQuery(currency=EUR, products=basket(None).lines))
    assert [p.discounted_price for p in prices] == [eur("15.00"), eur("10.00")]
    assert prices[0].labels == ("A quarter off A",)
    quote = shop.evaluate(basket(None))
    assert [m.text for m in quote.messages] == ["Free shipping from 60.00"]


def test_cancel_after_export_returns_everything_once(shop):
    shop.h.define_earn_rule(Decimal(1))
    ann = member(shop, cashback="20.00")
    shop.h.issue_voucher(VoucherSpec(code="V1", amount=eur("5.00"), owner_id=ann.cust_id))
    cart = basket(ann.cust_id, "V1")
    redeemed = shop.redeem_voucher(VoucherRedemption(code="V1", order_ref="ORD-9", customer_id=ann.cust_id,
                                                     basket=cart))
    paid = shop.spend_cashback(CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-9", amount=eur("8.00")))
    order = Order.from_evaluation("ORD-9", cart, None, [redeemed.receipt, paid.receipt])
    shop.export_orders([order])
    assert shop.h.balances(ann.cust_id).points == 50
    cancel = Reversal(order=order, kind=ReversalKind.CANCEL)
    result = shop.reverse(cancel)
    assert result.vouchers_reinstated == ("V1",)
    assert result.cashback_returned == eur("8.00") and result.points_clawed_back == 50
    assert shop.h.balances(ann.cust_id) == shop.h.balances(ann.cust_id).__class__(points=Decimal(0),
                                                                                  cashback=eur("20.00"))
    again = shop.reverse(cancel)
    assert all(r.replayed for r in again.receipts)
    assert shop.h.balances(ann.cust_id).cashback == eur("20.00") and shop.h.voucher_redemptions("V1") == 0


def test_partial_refunds_claw_back_in_proportion(shop):
    shop.h.define_earn_rule(Decimal(1))
    ann = member(shop)
    order = Order.from_evaluation("ORD-5", basket(ann.cust_id))
    shop.export_orders([order])
    first = Reversal(order=order, kind=ReversalKind.REFUND, reference="r1", lines=(RefundLine(line_id="l2", quantity=1),))
    assert shop.reverse(first).points_clawed_back == 10
    assert shop.reverse(first).points_clawed_back == 10  # replayed from the engine's record
    assert shop.h.balances(ann.cust_id).points == 40
    rest = Reversal(order=order, kind=ReversalKind.REFUND, reference="r2", lines=(RefundLine(line_id="l1", quantity=2),))
    shop.reverse(rest)
    assert shop.h.balances(ann.cust_id).points == 0


def test_refund_of_an_unexported_order_is_refused_without_a_call(shop):
    order = Order.from_evaluation("ORD-6", basket("1001"))
    before = shop.fake.request_count()
    error = shop.attempt("reverse", Reversal(order=order, kind=ReversalKind.REFUND, exported=False))
    assert getattr(error, "field", None) == "exported" and shop.fake.request_count() == before


# -- reconcile before re-sending ----------------------------------------------------------------


def test_write_lost_before_the_engine_applied_it_is_sent_once_more(shop):
    ann = member(shop, cashback="20.00")
    shop.fake.inject("spend", Fault(FaultKind.TIMEOUT_BEFORE))
    paid = shop.spend_cashback(CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-3", amount=eur("4.00")))
    assert isinstance(paid, SpendResult) and shop.h.balances(ann.cust_id).cashback == eur("16.00")
    assert shop.fake.request_count("spend") == 2


def test_lost_answer_and_failed_lookup_is_outcome_unknown_with_the_key(shop):
    ann = member(shop, cashback="20.00")
    spend = CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-4", amount=eur("4.00"))
    shop.fake.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    shop.fake.inject("lookup", Fault(FaultKind.DELAY, seconds=0))  # the pre-check goes through
    shop.fake.inject("lookup", Fault(FaultKind.STATUS, status=503, times=10))  # the reconcile does not
    error = shop.attempt("spend_cashback", spend)
    assert isinstance(error, OutcomeUnknownError) and error.idempotency_key == spend.key
    assert shop.h.balances(ann.cust_id).cashback == eur("16.00")  # it was applied
    shop.fake.clear_faults()
    retried = shop.spend_cashback(spend)  # the same key: found, not sent again
    assert retried.receipt.replayed and shop.h.balances(ann.cust_id).cashback == eur("16.00")
    assert shop.fake.request_count("spend") == 1


def test_same_key_from_many_threads_applies_once():
    harness = MaxxingHarness()
    ann = harness.fake.add_customer(cashback=Decimal("20.00"))
    shop = Shop("sync", harness)
    spend = CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-T", amount=eur("5.00"))
    try:
        def call(_):
            for _attempt in range(50):  # a caller told "in flight" retries with the same key
                try:
                    return shop.spend_cashback(spend)
                except OutcomeUnknownError:
                    time.sleep(0.01)
            raise AssertionError("never completed")

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(call, range(12)))
    finally:
        shop.close()
    assert all(r.amount == eur("5.00") for r in results)
    assert harness.balances(ann.cust_id).cashback == eur("15.00")
    assert sum(1 for t in harness.fake.transactions if t["type"] == "CASHBACK_BURN") == 1


def _redeem_in_process(url: str, code: str, owner: str, order_ref: str, queue) -> None:
    adapter = MaxxingAdapter(harness_settings(compute_url=url, backoffice_url=url))
    with Loyalty(LoyaltySettings(**KIT), adapter=adapter, load_entry_points=False) as shop:
        try:
            shop.redeem_voucher(VoucherRedemption(code=code, order_ref=order_ref, customer_id=owner))
            queue.put("redeemed")
        except LoyaltyError as exc:
            queue.put(exc.code)


def test_one_single_use_voucher_from_many_processes_burns_once():
    harness = MaxxingHarness()
    ann = harness.fake.add_customer()
    harness.issue_voucher(VoucherSpec(code="ONCE", amount=eur("5.00"), owner_id=ann.cust_id))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with serve(harness.fake.handle) as served:
        processes = [context.Process(target=_redeem_in_process, args=(served.url, "ONCE", ann.cust_id, f"P{i}", queue))
                     for i in range(6)]
        for process in processes:
            process.start()
        outcomes = [queue.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(30)
    assert outcomes.count("redeemed") == 1, outcomes
    assert set(outcomes) == {"redeemed", "voucher_already_redeemed"}, outcomes
    assert harness.voucher_redemptions("ONCE") == 1


def test_operation_paths_are_settings_end_to_end():
    moved = {"confirm": {"service": "backoffice", "path": "SaleServer/postSale"}}
    harness = MaxxingHarness(operations=moved)
    harness.fake = MaxxingFake(operations={"confirm": Operation(**moved["confirm"])})
    ann = harness.fake.add_customer()
    shop = Shop("sync", harness)
    try:
        report = shop.export_orders([Order.from_evaluation("ORD-M", basket(ann.cust_id))])
    finally:
        shop.close()
    assert report.status_of("ORD-M") is ExportStatus.ACCEPTED
    sent = [r for r in harness.fake.requests if r.route == "export"]
    assert sent[0].path == "/MPCM/Web/api/rest/5.6/SaleServer/postSale"


def test_fake_serves_as_a_process():
    port = 18000 + os.getpid() % 1000
    process = subprocess.Popen([sys.executable, "-m", "loyaltykit_maxxing.fake", "--port", str(port)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert "fake MAXXING on" in process.stdout.readline()
        adapter = MaxxingAdapter(harness_settings(compute_url=f"http://127.0.0.1:{port}", backoffice_url=None))
        with Loyalty(LoyaltySettings(**KIT), adapter=adapter, load_entry_points=False) as shop:
            assert shop.identify(card="925000000001").cashback_in(EUR) == eur("20.00")
    finally:
        process.terminate()
        process.wait(10)


def test_same_key_from_many_tasks_applies_once():
    harness = MaxxingHarness()
    ann = harness.fake.add_customer(cashback=Decimal("20.00"))
    spend = CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-A", amount=eur("5.00"))

    async def main():
        async with AsyncLoyalty(LoyaltySettings(**KIT), adapter=harness.make_adapter(),
                                transport=harness.async_transport(), load_entry_points=False) as shop:
            async def call():
                for _attempt in range(50):
                    try:
                        return await shop.spend_cashback(spend)
                    except OutcomeUnknownError:
                        await asyncio.sleep(0.01)
                raise AssertionError("never completed")

            return await asyncio.gather(*(call() for _ in range(12)))

    results = asyncio.run(main())
    assert all(r.amount == eur("5.00") for r in results)
    assert harness.balances(ann.cust_id).cashback == eur("15.00")
    assert sum(1 for t in harness.fake.transactions if t["type"] == "CASHBACK_BURN") == 1


def test_refunds_give_back_the_cashback_that_paid_in_proportion_and_cancel_the_rest(shop):
    ann = member(shop, cashback="30.00")
    cart = basket(ann.cust_id)
    paid = shop.spend_cashback(CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-R", amount=eur("10.00")))
    order = Order.from_evaluation("ORD-R", cart, None, [paid.receipt])
    shop.export_orders([order])
    refund = Reversal(order=order, kind=ReversalKind.REFUND, reference="r1", lines=(RefundLine(line_id="l2", quantity=1),))
    assert shop.reverse(refund).cashback_returned == eur("2.00")  # 10.00 of 50.00 came back
    assert shop.h.balances(ann.cust_id).cashback == eur("22.00")
    result = shop.reverse(Reversal(order=order, kind=ReversalKind.CANCEL))
    assert result.cashback_returned == eur("8.00")  # the rest, never twice
    assert shop.h.balances(ann.cust_id).cashback == eur("30.00")


def test_selected_by_entry_point_and_configured_from_the_environment(monkeypatch):
    harness = MaxxingHarness()
    ann = harness.fake.add_customer(card_key="925000000077")
    for key, value in harness_settings().items():
        monkeypatch.setenv(f"LOYALTYKIT_MAXXING_{key.upper()}", str(value))
    monkeypatch.setenv("LOYALTYKIT_MAXXING_OPERATIONS", '{"balances": {"service": "backoffice", "path": "AccountServer/getBalances"}}')
    with Loyalty(LoyaltySettings(engine="maxxing", **KIT), transport=harness.sync_transport()) as shop:
        assert shop.identify(card="925000000077").id == ann.cust_id
    hosts = {r.headers["host"] for r in harness.fake.requests}
    assert hosts == {"kit-bo.cloud.maxxing.com"}  # the customer calls go to the backoffice URL


def test_cancel_of_an_order_the_engine_never_received_changes_nothing(shop):
    ann = member(shop, cashback="20.00")
    paid = shop.spend_cashback(CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-N", amount=eur("5.00")))
    order = Order.from_evaluation("ORD-N", basket(ann.cust_id), None, [paid.receipt])
    error = shop.attempt("reverse", Reversal(order=order, kind=ReversalKind.CANCEL, exported=True))
    assert getattr(error, "field", None) == "exported"
    assert shop.h.balances(ann.cust_id).cashback == eur("15.00") and shop.fake.request_count("reverse") == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_unreadable_answer_to_an_applied_write_is_reconciled_not_resent(kind):
    harness = MaxxingHarness()
    ann = harness.fake.add_customer(cashback=Decimal("20.00"))
    original = harness.fake.handle
    garbled = []

    def garble(request: httpx.Request) -> httpx.Response:
        response = original(request)  # the engine applies the burn
        if request.url.path.endswith("/burnCashback") and not garbled:
            garbled.append(request)
            return httpx.Response(200, content=b'{"transaction": {"amount": "lots"}}')
        return response

    harness.fake.handle = garble  # type: ignore[method-assign]
    shop = Shop(kind, harness)
    try:
        paid = shop.spend_cashback(CashbackSpend(customer_id=ann.cust_id, order_ref="ORD-G", amount=eur("5.00")))
    finally:
        shop.close()
    assert garbled and paid.amount == eur("5.00") and not paid.receipt.replayed
    assert harness.balances(ann.cust_id).cashback == eur("15.00")
    assert harness.fake.request_count("spend") == 1  # found by the look-up, not sent again
