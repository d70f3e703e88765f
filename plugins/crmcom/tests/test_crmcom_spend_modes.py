"""The release spend modes on both facades: the atomic ``purchases/create_spend`` (R9-R16) and the
spend inside ``purchases/create`` (R17+). The spend creates the order's purchase with it; a lost
answer is looked up by the order ref and never spends or awards twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from loyaltykit_crmcom.fake import FakeSettings
from loyaltykit_crmcom.testing import CrmcomHarness

from loyaltykit import (
    Basket,
    CashbackSpend,
    ExportStatus,
    Line,
    Loyalty,
    LoyaltySettings,
    Money,
    Order,
    Reversal,
    ReversalKind,
    SpendResult,
)
from loyaltykit.errors import EngineError, InvalidRequestError, OutcomeUnknownError
from loyaltykit.testing import Fault, FaultKind

ACTION = {"create_spend": "customer_events/purchases/create_spend",
          "inside_create": "customer_events/purchases/create"}


def eur(value: str) -> Money:
    return Money.of(value, "EUR")


def lines() -> tuple[Line, ...]:
    return (Line(id="1", sku="COFFEE", quantity=2, unit_price=eur("15.00")),
            Line(id="2", sku="MUG", quantity=1, unit_price=eur("10.00")))


def spend(customer: str, amount: str, ref: str = "ORD-1", **extra) -> CashbackSpend:
    return CashbackSpend(customer_id=customer, order_ref=ref, amount=eur(amount),
                         basket=Basket(id="B-1", currency="EUR", lines=lines(), customer_id=customer), **extra)


def order(customer: str, ref: str = "ORD-1", receipts=()) -> Order:
    return Order(ref=ref, currency="EUR", lines=lines(), total=eur("40.00"), customer_id=customer, receipts=receipts)


def member(harness: CrmcomHarness, cashback: str = "20.00") -> str:
    return harness.create_customer(identifiers={"card": "7712345678901234"}, cashback=eur(cashback)).id


@pytest.fixture(params=["create_spend", "inside_create"])
def harness(request) -> CrmcomHarness:
    return CrmcomHarness(spend_mode=request.param)


def mode(harness: CrmcomHarness) -> str:
    return harness.settings["spend_mode"]


def writes(harness: CrmcomHarness) -> list[str]:
    return [r.path.rsplit("/v2/", 1)[1] for r in harness.fake.requests if r.route in ("spend", "export")]


def test_the_spend_creates_the_purchase_with_it_in_one_call(harness, shop):
    harness.define_cashback_rule(Decimal(10))
    card = member(harness)
    paid = shop.spend_cashback(spend(card, "5.00"))
    assert paid.amount == eur("5.00") and not paid.receipt.replayed
    assert writes(harness) == [ACTION[mode(harness)]]  # one write: purchase and spend together
    assert harness.fake.spends == []  # no separate spend request
    purchase = harness.fake.purchases[0]
    assert paid.receipt.engine_ref == purchase.id and purchase.spent == Decimal("5.00")
    sent = harness.fake.requests[-1].body
    if mode(harness) == "create_spend":
        assert sent["spend_amount"] == Decimal("5.00")
    else:
        assert sent["spend_request"] == {"amount": Decimal("5.00")}
    assert sent["reference_number"] == "ORD-1" and sent["external_system_reference_number"].startswith("LKS-")
    assert harness.balances(card).cashback == eur("19.00")  # +4.00 awarded, -5.00 spent
    report = shop.export_orders([order(card, receipts=(paid.receipt,))])
    assert report.status_of("ORD-1") is ExportStatus.DUPLICATE
    assert harness.orders_received() == ["ORD-1"] and harness.balances(card).cashback == eur("19.00")
    again = shop.spend_cashback(spend(card, "5.00"))
    assert again.receipt.replayed and again.receipt.engine_ref == paid.receipt.engine_ref
    assert harness.balances(card).cashback == eur("19.00")


def test_lost_answer_spends_and_awards_once(harness, shop):
    harness.define_cashback_rule(Decimal(10))
    card = member(harness)
    harness.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    first = shop.spend_cashback(spend(card, "5.00"))  # looked up by the order ref, not re-sent
    assert first.amount == eur("5.00") and not first.receipt.replayed
    retried = shop.spend_cashback(spend(card, "5.00"))
    assert retried.receipt.replayed and retried.receipt.engine_ref == first.receipt.engine_ref
    assert len(harness.fake.purchases) == 1 and writes(harness) == [ACTION[mode(harness)]]
    assert harness.balances(card).cashback == eur("19.00")


#: Look-ups the spend makes before its write, per mode: the spend request and the purchase it
#: settles against, or the purchase that carries the spend.
LOOK_UPS_BEFORE_THE_WRITE = {"spend_request": 2, "create_spend": 1, "inside_create": 1}


@pytest.mark.parametrize("harness", list(LOOK_UPS_BEFORE_THE_WRITE), indirect=True)
def test_lost_answer_and_failed_look_up_is_outcome_unknown_then_retry_spends_once(harness, shop):
    card = member(harness)
    request = spend(card, "5.00")
    effects = harness.fake.spends if mode(harness) == "spend_request" else harness.fake.purchases
    harness.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    # The look-ups before the write pass; every attempt of the reconciling look-up fails.
    harness.inject("lookup", Fault(FaultKind.DELAY, seconds=0, times=LOOK_UPS_BEFORE_THE_WRITE[mode(harness)]))
    harness.inject("lookup", Fault(FaultKind.STATUS, status=500))
    with pytest.raises(OutcomeUnknownError) as lost:
        shop.spend_cashback(request)
    assert lost.value.idempotency_key == request.key
    assert len(effects) == 1  # applied, answer lost, not re-sent blind
    harness.fake.clear_faults()
    retried = shop.spend_cashback(request)
    assert retried.receipt.replayed and retried.amount == eur("5.00")
    assert harness.balances(card).cashback == eur("15.00") and len(effects) == 1


@pytest.mark.parametrize("harness", list(LOOK_UPS_BEFORE_THE_WRITE), indirect=True)
def test_bounds_and_the_amount_due_are_checked_before_any_write(harness, shop):
    card = member(harness)
    harness.fake.maximum_spend = Decimal("8.00")
    with pytest.raises(InvalidRequestError) as above:
        shop.spend_cashback(spend(card, "9.00"))
    assert above.value.field == "spend.amount"
    harness.fake.maximum_spend = None
    harness.fake.minimum_spend = Decimal("2.00")
    with pytest.raises(InvalidRequestError, match="minimum"):
        shop.spend_cashback(spend(card, "1.00"))
    harness.fake.minimum_spend = None
    # The order costs 40.00 at list prices, but a discount left 12.00 due: the core's amount due wins.
    with pytest.raises(InvalidRequestError, match="amount due"):
        shop.spend_cashback(spend(card, "15.00", amount_due=eur("12.00")))
    # Without an amount due, the basket's total is what the spend may pay at most.
    small = Basket(id="B-2", currency="EUR", customer_id=card, lines=(Line(id="1", sku="X", quantity=1,
                                                                             unit_price=eur("10.00")),))
    with pytest.raises(InvalidRequestError, match="amount due"):
        shop.spend_cashback(CashbackSpend(customer_id=card, order_ref="ORD-2", amount=eur("15.00"), basket=small))
    assert harness.fake.purchases == [] and harness.fake.spends == [] and writes(harness) == []
    assert shop.spend_cashback(spend(card, "12.00", amount_due=eur("12.00"))).amount == eur("12.00")


def test_cancel_gives_back_the_spend_made_with_the_purchase(harness, shop):
    harness.define_cashback_rule(Decimal(10))
    card = member(harness)
    paid = shop.spend_cashback(spend(card, "5.00"))
    placed = order(card, receipts=(paid.receipt,))
    result = shop.reverse(Reversal(order=placed, kind=ReversalKind.CANCEL))
    assert result.cashback_returned == eur("5.00") and result.cashback_clawed_back == eur("4.00")
    assert harness.balances(card).cashback == eur("20.00")
    assert not [r for r in harness.fake.requests if r.path.endswith("spend_requests/cancel")]
    again = shop.reverse(Reversal(order=placed, kind=ReversalKind.CANCEL))
    assert again.cashback_returned is None and harness.balances(card).cashback == eur("20.00")
    with pytest.raises(InvalidRequestError) as replay:
        shop.spend_cashback(spend(card, "5.00"))
    assert replay.value.field == "spend.idempotency_key"


def test_a_spend_on_a_closed_purchase(harness, shop):
    """R9-R16 still take a spend request against the closed purchase; from R17 the spend goes
    inside the purchase, so a spend after closing the basket is refused, naming the field."""
    card = member(harness)
    shop.export_orders([order(card)])
    if mode(harness) == "create_spend":
        paid = shop.spend_cashback(spend(card, "5.00"))
        assert len(harness.fake.spends) == 1 and paid.receipt.engine_ref == harness.fake.spends[0].body["id"]
        assert harness.balances(card).cashback == eur("15.00")
    else:
        with pytest.raises(InvalidRequestError) as closed:
            shop.spend_cashback(spend(card, "5.00"))
        assert closed.value.field == "spend.order_ref"
        assert harness.balances(card).cashback == eur("20.00")


def test_same_spend_from_many_threads_spends_once(harness):
    card = member(harness)
    request = spend(card, "5.00")
    with (Loyalty(LoyaltySettings(engine="crmcom"), adapter=harness.make_adapter(),
                  transport=harness.sync_transport(), load_entry_points=False) as shop,
          ThreadPoolExecutor(8) as pool):
        outcomes = list(pool.map(lambda _: shop.spend_cashback(request), range(16)))
    assert all(isinstance(o, SpendResult) and o.amount == eur("5.00") for o in outcomes)
    assert len({o.receipt.engine_ref for o in outcomes}) == 1
    assert len(harness.fake.purchases) == 1 and harness.balances(card).cashback == eur("15.00")


def test_an_engine_that_ignores_the_inline_spend_is_an_error_not_a_payment():
    """R17's spend parameter is UNCONFIRMED: a tenant whose release ignores it creates the purchase
    without the spend. The adapter reads total_spend_amount and says nothing was deducted."""
    harness = CrmcomHarness(spend_mode="inside_create", fake_settings=FakeSettings(release=16))
    card = member(harness)
    with (Loyalty(LoyaltySettings(engine="crmcom"), adapter=harness.make_adapter(),
                  transport=harness.sync_transport(), load_entry_points=False) as shop,
          pytest.raises(EngineError, match="without the spend")):
        shop.spend_cashback(spend(card, "5.00"))
    assert harness.balances(card).cashback == eur("20.00")
