"""Evaluate: a quote with discounts, wallet, earn and messages; no side effect; fails open."""

from __future__ import annotations

from decimal import Decimal

from loyaltykit.capabilities import Capability
from loyaltykit.errors import ERROR_CODES
from loyaltykit.models import BalanceKind, CodeStatus, DiscountTarget, Evaluation, ExportStatus
from loyaltykit.testing import Fault, FaultKind, OfferSpec, RuleSpec

from .requirements import requires
from .support import assert_quote, issue_voucher, voucher_code
from .target import DEADLINE_SLACK


def define_rule(lk, spec: RuleSpec, tied: bool = True) -> None:
    lk.seed(f"define a {spec.kind} rule", lk.harness.define_rule, spec,
            capability=Capability.EVALUATE if tied else None)


@requires(Capability.EVALUATE)
def test_evaluate_percent_order_discount(loyaltykit_target):
    """A 10 % order promotion takes 10.00 off a 100.00 basket."""
    lk = loyaltykit_target
    define_rule(lk, RuleSpec(kind="order_percent", percent=Decimal(10), label="Ten percent"))
    customer = lk.customer()
    basket = lk.basket(customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    assert evaluation.discount_total == lk.money("10.00"), evaluation.discounts
    assert evaluation.total == lk.money("90.00")


@requires(Capability.EVALUATE)
def test_evaluate_fixed_order_discount(loyaltykit_target):
    """A fixed 7.50 order promotion takes 7.50 off."""
    lk = loyaltykit_target
    define_rule(lk, RuleSpec(kind="order_fixed", amount=lk.money("7.50"), label="Seven fifty off"))
    customer = lk.customer()
    basket = lk.basket(customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    assert evaluation.discount_total == lk.money("7.50"), evaluation.discounts


@requires(Capability.EVALUATE)
def test_evaluate_line_discount(loyaltykit_target):
    """A 20 % promotion on one product discounts that line only, attributed to it (not applicable to
    an engine whose quote carries order totals only: its harness cannot define a line promotion)."""
    lk = loyaltykit_target
    define_rule(lk, RuleSpec(kind="line_percent", percent=Decimal(20), sku="SKU-A", label="Twenty on A"), tied=False)
    customer = lk.customer()
    basket = lk.basket(("SKU-A", "50.00", 1), ("SKU-B", "50.00", 1), customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    assert evaluation.discount_total == lk.money("10.00"), evaluation.discounts
    line_discounts = [d for d in evaluation.discounts if d.target is DiscountTarget.LINE]
    assert line_discounts, f"the line promotion was not reported as a line discount: {evaluation.discounts}"
    assert {d.line_id for d in line_discounts} == {"l1"}, line_discounts


@requires(Capability.EVALUATE)
def test_evaluate_threshold_not_met(loyaltykit_target):
    """A promotion with a minimum spend gives nothing below it and applies above it."""
    lk = loyaltykit_target
    define_rule(lk, RuleSpec(kind="order_percent", percent=Decimal(10), min_subtotal=lk.money("150.00"),
                             label="Ten over 150"))
    customer = lk.customer()
    small = lk.basket(("SKU-A", "50.00", 2), customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", small), small)
    assert evaluation.discount_total == lk.money("0"), f"threshold not met, yet {evaluation.discounts}"
    large = lk.basket(("SKU-A", "50.00", 4), customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", large), large)
    assert evaluation.discount_total == lk.money("20.00"), evaluation.discounts


@requires(Capability.EVALUATE, Capability.WALLET_OFFERS)
def test_evaluate_lists_wallet_offers(loyaltykit_target):
    """An offer issued to the member appears in the quote's wallet."""
    lk = loyaltykit_target
    customer = lk.customer()
    offer_id = lk.seed(
        "issue a wallet offer",
        lk.harness.issue_offer,
        customer.id,
        OfferSpec(kind="percent_off_check", percent=Decimal(15), label="Fifteen off"),
        capability=Capability.WALLET_OFFERS,
    )
    basket = lk.basket(customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    ids = [offer.id for offer in evaluation.wallet]
    assert str(offer_id) in ids, f"offer {offer_id} not in the wallet {ids}"


@requires(Capability.EVALUATE, Capability.EARN_PREVIEW)
def test_evaluate_points_to_earn(loyaltykit_target):
    """With 1 point per currency unit, a 100.00 basket earns 100 points (not applicable to an engine
    whose earn preview is cashback only: its harness cannot define a points earn rule)."""
    lk = loyaltykit_target
    lk.seed("define a points earn rule", lk.harness.define_earn_rule, Decimal(1))
    customer = lk.customer()
    basket = lk.basket(customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    assert evaluation.points_to_earn == Decimal(100), evaluation.earn


@requires(Capability.EVALUATE, Capability.EARN_PREVIEW, Capability.EXPORT_ORDERS)
def test_evaluate_cashback_to_earn_is_credited_on_export(loyaltykit_target):
    """With 2.5 % cashback, a 100.00 basket shows 2.50 cashback to earn; exporting the order
    credits the customer's cashback balance with that amount."""
    lk = loyaltykit_target
    define = getattr(lk.harness, "define_cashback_rule", None)
    if not callable(define):
        lk.not_applicable(f"the {lk.engine} harness cannot define a cashback earn rate")
    lk.seed("define a cashback earn rate", define, Decimal("2.5"))
    customer = lk.customer()
    items = (("SKU-A", "60.00", 1), ("SKU-B", "40.00", 1))
    basket = lk.basket(*items, customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    cashback = [e for e in evaluation.earn if e.kind is BalanceKind.CASHBACK]
    assert cashback, f"no cashback to earn in the quote: {evaluation.earn}"
    assert all(e.money is not None for e in cashback), cashback
    earned = sum((e.money for e in cashback), lk.money("0"))
    assert earned == lk.money("2.50"), f"cashback to earn {earned}, expected 2.50 (2.5 % of 100.00): {cashback}"
    before = lk.cashback(customer.id)
    order = lk.order(*items, customer_id=customer.id)
    report = lk.call("export_orders", [order])
    assert report.status_of(order.ref) is ExportStatus.ACCEPTED, report
    after = lk.cashback(customer.id)
    assert after - before == earned, f"cashback balance went from {before} to {after}, expected +{earned}"


@requires(Capability.EVALUATE)
def test_evaluate_messages(loyaltykit_target):
    """A message promotion reaches the shopper in the quote's messages."""
    lk = loyaltykit_target
    text = "Spend 50.00 more for a free gift"
    define_rule(lk, RuleSpec(kind="message", message=text, label="Gift hint"), tied=False)
    customer = lk.customer()
    basket = lk.basket(customer_id=customer.id)
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    assert any(text in message.text for message in evaluation.messages), evaluation.messages


@requires(Capability.EVALUATE, Capability.REDEEM_VOUCHER)
def test_evaluate_reports_each_coupon_code(loyaltykit_target):
    """Each coupon code is reported: a valid one accepted with its discount, an unknown one
    rejected with an error code as the reason."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id, amount="5.00")
    unknown = voucher_code()
    basket = lk.basket(customer_id=customer.id, codes=[code, unknown])
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    by_code = {result.code: result for result in evaluation.codes}
    assert set(by_code) == {code, unknown}, evaluation.codes
    assert by_code[code].status is CodeStatus.ACCEPTED, by_code[code]
    assert by_code[unknown].status is CodeStatus.REJECTED, by_code[unknown]
    assert by_code[unknown].reason in ERROR_CODES, f"reason {by_code[unknown].reason!r} is not an error code"
    assert evaluation.discount_total == lk.money("5.00"), evaluation.discounts


@requires(Capability.EVALUATE)
def test_evaluate_has_no_side_effect(loyaltykit_target):
    """Evaluating (with a valid coupon code, for a member with balances) changes nothing."""
    lk = loyaltykit_target
    customer = lk.customer(
        points=Decimal(100) if lk.supports(Capability.SPEND_POINTS) else Decimal(0),
        cashback=lk.money("10.00") if lk.supports(Capability.SPEND_CASHBACK) else None,
    )
    codes = [issue_voucher(lk, customer.id)] if lk.supports(Capability.REDEEM_VOUCHER) else []
    basket = lk.basket(customer_id=customer.id, codes=codes)
    before = lk.harness.snapshot()
    for _ in range(2):
        assert_quote(lk, lk.call("evaluate", basket), basket)
    assert lk.harness.snapshot() == before, "evaluate changed the engine's state"
    for code in codes:
        assert lk.harness.voucher_redemptions(code) == 0, "evaluate burned the coupon code"


@requires(Capability.EVALUATE)
def test_evaluate_engine_down_degrades_within_budget(loyaltykit_target):
    """With the engine answering 503, evaluate returns a degraded full-price quote inside its budget."""
    lk = loyaltykit_target
    customer = lk.customer()
    lk.inject("evaluate", Fault(FaultKind.STATUS, status=503, times=20))
    basket = lk.basket(customer_id=customer.id)
    evaluation, elapsed = lk.timed("evaluate", basket)
    budget = lk.settings["evaluate_budget"]
    assert isinstance(evaluation, Evaluation), f"expected a degraded quote, got {evaluation!r}"
    assert evaluation.degraded and evaluation.degraded_reason
    assert evaluation.total == basket.subtotal and evaluation.discounts == ()
    assert elapsed <= budget + DEADLINE_SLACK, f"took {elapsed:.2f}s, budget {budget}s"


@requires(Capability.EVALUATE)
def test_evaluate_engine_hangs_degrades_within_budget(loyaltykit_target):
    """With the engine hanging (client timeout firing at the budget), evaluate degrades in time
    and does not try again past the budget."""
    lk = loyaltykit_target
    customer = lk.customer()
    budget = lk.settings["evaluate_budget"]
    lk.inject("evaluate", Fault(FaultKind.HANG, seconds=budget + 0.1, times=3))
    evaluation, elapsed = lk.timed("evaluate", lk.basket(customer_id=customer.id))
    assert isinstance(evaluation, Evaluation) and evaluation.degraded, f"expected degraded, got {evaluation!r}"
    assert elapsed <= budget + DEADLINE_SLACK, f"took {elapsed:.2f}s, budget {budget}s"

__all__ = [
    "test_evaluate_cashback_to_earn_is_credited_on_export",
    "test_evaluate_engine_down_degrades_within_budget",
    "test_evaluate_engine_hangs_degrades_within_budget",
    "test_evaluate_fixed_order_discount",
    "test_evaluate_has_no_side_effect",
    "test_evaluate_line_discount",
    "test_evaluate_lists_wallet_offers",
    "test_evaluate_messages",
    "test_evaluate_percent_order_discount",
    "test_evaluate_points_to_earn",
    "test_evaluate_reports_each_coupon_code",
    "test_evaluate_threshold_not_met",
]
