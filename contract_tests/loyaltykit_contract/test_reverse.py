"""Reverse: cancel before export gives back what was spent; refunds after export claw back
earned points in proportion; each reversal applies once."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from loyaltykit.capabilities import Capability
from loyaltykit.models import (
    ExportStatus,
    RedemptionResult,
    RefundLine,
    Reversal,
    ReversalKind,
    ReversalResult,
    SpendResult,
)

from .requirements import requires
from .support import balance, issue_voucher, redemption, spend


def spendable_kind(lk):
    if lk.supports(Capability.SPEND_CASHBACK):
        return "cashback"
    if lk.supports(Capability.SPEND_POINTS):
        return "points"
    return None


def assert_reversed(result, order, kind) -> ReversalResult:
    assert isinstance(result, ReversalResult), f"expected a ReversalResult, got {result!r}"
    assert result.order_ref == order.ref
    assert result.kind is kind
    return result


def exported_order_with_points(lk, *items):
    """A member, an order exported for them, and the points the export earned (0 when the harness
    cannot define an earn rule)."""
    with contextlib.suppress(NotImplementedError):
        lk.harness.define_earn_rule(Decimal(1))
    customer = lk.customer()
    order = lk.order(*items, customer_id=customer.id)
    before = lk.points(customer.id)
    report = lk.call("export_orders", [order])
    assert report.status_of(order.ref) is ExportStatus.ACCEPTED, report
    return customer, order, before, lk.points(customer.id) - before


@requires(Capability.CANCEL)
def test_cancel_before_export_returns_spent_balance(loyaltykit_target):
    """Cancelling an unexported order gives back the cashback or points spent on it."""
    lk = loyaltykit_target
    kind = spendable_kind(lk)
    start = {"cashback": "20.00", "points": "200", None: "0"}[kind]
    customer = (
        lk.customer(cashback=lk.money(start)) if kind == "cashback"
        else lk.customer(points=Decimal(start))
    )
    order = lk.order(customer_id=customer.id)
    receipts = ()
    if kind is not None:
        paid = lk.call("spend_cashback", spend(lk, customer.id, kind, "5.00" if kind == "cashback" else "50",
                                               order_ref=order.ref))
        assert isinstance(paid, SpendResult)
        receipts = (paid.receipt,)
        assert balance(lk, customer.id, kind) < Decimal(start)
    order = order.model_copy(update={"receipts": receipts})
    cancel = Reversal(order=order, kind=ReversalKind.CANCEL, exported=False)
    assert_reversed(lk.call("reverse", cancel), order, ReversalKind.CANCEL)
    if kind is not None:
        assert balance(lk, customer.id, kind) == Decimal(start), "the spent balance was not given back"
        assert_reversed(lk.call("reverse", cancel), order, ReversalKind.CANCEL)  # same key: once
        assert balance(lk, customer.id, kind) == Decimal(start), "a repeated cancel gave back twice"


@requires(Capability.CANCEL, Capability.REDEEM_VOUCHER)
def test_cancel_before_export_reinstates_voucher(loyaltykit_target):
    """Cancelling an unexported order reinstates the voucher redeemed for it."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    order = lk.order(customer_id=customer.id, voucher_codes=(code,))
    redeemed = lk.call("redeem_voucher", redemption(lk, code, customer.id, order_ref=order.ref))
    assert isinstance(redeemed, RedemptionResult)
    order = order.model_copy(update={"receipts": (redeemed.receipt,)})
    result = assert_reversed(
        lk.call("reverse", Reversal(order=order, kind=ReversalKind.CANCEL, exported=False)), order, ReversalKind.CANCEL
    )
    assert code in result.vouchers_reinstated, result
    again = lk.call("redeem_voucher", redemption(lk, code, customer.id))
    assert isinstance(again, RedemptionResult), "the reinstated voucher cannot be redeemed"


@requires(Capability.EXPORT_ORDERS, Capability.REFUND)
def test_full_refund_after_export(loyaltykit_target):
    """A full refund of an exported order claws back all the points it earned, once."""
    lk = loyaltykit_target
    customer, order, before, earned = exported_order_with_points(lk)
    refund = Reversal(order=order, kind=ReversalKind.REFUND)
    assert_reversed(lk.call("reverse", refund), order, ReversalKind.REFUND)
    assert lk.points(customer.id) == before, f"after a full refund {lk.points(customer.id)} != {before}"
    assert_reversed(lk.call("reverse", refund), order, ReversalKind.REFUND)
    assert lk.points(customer.id) == before, "a repeated refund clawed back twice"
    if earned == 0:
        lk.report("passes", "no earn rule: only the call was checked")


@requires(Capability.EXPORT_ORDERS, Capability.PARTIAL_REFUND)
def test_partial_refunds_after_export(loyaltykit_target):
    """Refunding the 40.00 line of a 100.00 order claws back 40 % of the earned points; refunding
    the rest later claws back the remainder; each partial refund applies once."""
    lk = loyaltykit_target
    customer, order, before, earned = exported_order_with_points(lk, ("SKU-A", "60.00", 1), ("SKU-B", "40.00", 1))
    first = Reversal(order=order, kind=ReversalKind.REFUND, reference="refund-1",
                     lines=(RefundLine(line_id="l2", quantity=Decimal(1)),))
    assert_reversed(lk.call("reverse", first), order, ReversalKind.REFUND)
    expected = before + earned * Decimal("0.6")
    assert abs(lk.points(customer.id) - expected) <= 1, f"{lk.points(customer.id)} points, expected {expected}"
    assert_reversed(lk.call("reverse", first), order, ReversalKind.REFUND)
    assert abs(lk.points(customer.id) - expected) <= 1, "a repeated partial refund clawed back twice"
    second = Reversal(order=order, kind=ReversalKind.REFUND, reference="refund-2",
                      lines=(RefundLine(line_id="l1", quantity=Decimal(1)),))
    assert_reversed(lk.call("reverse", second), order, ReversalKind.REFUND)
    assert lk.points(customer.id) == before, f"after refunding everything {lk.points(customer.id)} != {before}"

__all__ = [
    "test_cancel_before_export_reinstates_voucher",
    "test_cancel_before_export_returns_spent_balance",
    "test_full_refund_after_export",
    "test_partial_refunds_after_export",
]
