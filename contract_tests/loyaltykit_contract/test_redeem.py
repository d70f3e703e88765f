"""Redeem a voucher: burn once per idempotency key; every rejection has its own error."""

from __future__ import annotations

import pytest

from loyaltykit.capabilities import Capability
from loyaltykit.errors import (
    LoyaltyError,
    OutcomeUnknownError,
    UsageLimitReachedError,
    VoucherAlreadyRedeemedError,
    VoucherExpiredError,
    VoucherNotFoundError,
    VoucherNotOwnedError,
)
from loyaltykit.models import CodeStatus, DiscountTarget, RedemptionResult, RedemptionStatus
from loyaltykit.testing import Fault, FaultKind, VoucherSpec

from .requirements import requires
from .support import assert_quote, issue_voucher, multi_use_voucher_or_single, past, redemption, voucher_code


def redeem_for_order(lk, code, customer_id, order):
    """Redeem ``code`` for ``order``; return the result and the order carrying its receipt."""
    request = redemption(lk, code, customer_id, order_ref=order.ref)
    result = assert_redeemed(lk, lk.call("redeem_voucher", request), request)
    return result, order.model_copy(update={"receipts": (result.receipt,)})

USED_UP = (VoucherAlreadyRedeemedError, UsageLimitReachedError)


def assert_redeemed(lk, result, request) -> RedemptionResult:
    assert isinstance(result, RedemptionResult), f"expected a RedemptionResult, got {result!r}"
    assert result.code == request.code
    assert result.status in (RedemptionStatus.REDEEMED, RedemptionStatus.RESERVED)
    assert result.receipt.idempotency_key == request.key, "the receipt does not carry the idempotency key"
    assert result.receipt.engine == lk.adapter.name
    return result


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_valid_voucher(loyaltykit_target):
    """A valid voucher of the customer is redeemed once."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    request = redemption(lk, code, customer.id)
    assert_redeemed(lk, lk.call("redeem_voucher", request), request)
    assert lk.harness.voucher_redemptions(code) == 1


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_open_code(loyaltykit_target):
    """An open code (owned by no customer) is redeemed by a customer, and burned once."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, None, what="issue an open (owner-less) code", capability=None)
    request = redemption(lk, code, customer.id)
    assert_redeemed(lk, lk.call("redeem_voucher", request), request)
    assert lk.harness.voucher_redemptions(code) == 1


@requires(Capability.EVALUATE, Capability.REDEEM_VOUCHER)
def test_item_voucher_discounts_its_line_and_redeems(loyaltykit_target):
    """An item voucher (5.00 off SKU-A) shows as a discount on SKU-A's line only, never more than
    that line is worth, and is redeemed for the customer."""
    lk = loyaltykit_target
    customer = lk.customer()
    spec = VoucherSpec(code=voucher_code(), kind="item", sku="SKU-A", amount=lk.money("5.00"), owner_id=customer.id)
    code = lk.seed("issue an item voucher", lk.harness.issue_voucher, spec)
    basket = lk.basket(("SKU-B", "50.00", 1), ("SKU-A", "20.00", 1), customer_id=customer.id, codes=[code])
    evaluation = assert_quote(lk, lk.call("evaluate", basket), basket)
    by_code = {result.code: result for result in evaluation.codes}
    assert code in by_code and by_code[code].status is CodeStatus.ACCEPTED, evaluation.codes
    assert evaluation.discounts, "the item voucher gave no discount"
    assert all(d.target is DiscountTarget.LINE and d.line_id == "l2" for d in evaluation.discounts), (
        f"the item voucher must discount SKU-A's line (l2) only: {evaluation.discounts}"
    )
    assert evaluation.discount_total == lk.money("5.00"), evaluation.discounts
    cheap = lk.basket(("SKU-B", "50.00", 1), ("SKU-A", "3.00", 1), customer_id=customer.id, codes=[code])
    evaluation = assert_quote(lk, lk.call("evaluate", cheap), cheap)
    on_line = sum((d.amount for d in evaluation.discounts if d.line_id == "l2"), lk.money("0"))
    assert on_line <= lk.money("3.00"), f"the item voucher took {on_line} off a 3.00 line: {evaluation.discounts}"
    assert all(d.line_id == "l2" for d in evaluation.discounts), evaluation.discounts
    request = redemption(lk, code, customer.id)
    assert request.basket is not None and any(line.sku == "SKU-A" for line in request.basket.lines)
    assert_redeemed(lk, lk.call("redeem_voucher", request), request)
    assert lk.harness.voucher_redemptions(code) == 1


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_already_used_voucher(loyaltykit_target):
    """A single-use voucher redeemed for one order is refused for another."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    first = redemption(lk, code, customer.id)
    assert_redeemed(lk, lk.call("redeem_voucher", first), first)
    with pytest.raises(USED_UP):
        lk.call("redeem_voucher", redemption(lk, code, customer.id))
    assert lk.harness.voucher_redemptions(code) == 1


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_expired_voucher(loyaltykit_target):
    """An expired voucher is refused with VoucherExpiredError."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id, valid_from=past(10), expires_at=past(1),
                         what="issue an expired voucher")
    with pytest.raises(VoucherExpiredError):
        lk.call("redeem_voucher", redemption(lk, code, customer.id))
    assert lk.harness.voucher_redemptions(code) == 0


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_voucher_of_another_customer(loyaltykit_target):
    """A voucher owned by one customer is refused for another with VoucherNotOwnedError."""
    lk = loyaltykit_target
    owner, other = lk.customer(), lk.customer()
    code = issue_voucher(lk, owner.id)
    with pytest.raises(VoucherNotOwnedError):
        lk.call("redeem_voucher", redemption(lk, code, other.id))
    assert lk.harness.voucher_redemptions(code) == 0


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_unknown_voucher(loyaltykit_target):
    """A code the engine does not know is refused with VoucherNotFoundError."""
    lk = loyaltykit_target
    customer = lk.customer()
    with pytest.raises(VoucherNotFoundError):
        lk.call("redeem_voucher", redemption(lk, voucher_code(), customer.id))


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_usage_limit_reached(loyaltykit_target):
    """A voucher usable twice serves two orders and refuses the third."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id, usage_limit=2, what="issue a voucher usable twice", capability=None)
    for _ in range(2):
        request = redemption(lk, code, customer.id)
        assert_redeemed(lk, lk.call("redeem_voucher", request), request)
    with pytest.raises(USED_UP):
        lk.call("redeem_voucher", redemption(lk, code, customer.id))
    assert lk.harness.voucher_redemptions(code) == 2


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_same_call_twice_burns_once(loyaltykit_target):
    """The same redemption (same idempotency key) sent twice succeeds twice and burns once."""
    lk = loyaltykit_target
    customer = lk.customer()
    code, _ = multi_use_voucher_or_single(lk, customer.id)
    request = redemption(lk, code, customer.id)
    assert_redeemed(lk, lk.call("redeem_voucher", request), request)
    assert_redeemed(lk, lk.call("redeem_voucher", request), request)
    assert lk.harness.voucher_redemptions(code) == 1


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_lost_response_burns_once(loyaltykit_target):
    """The engine applies a redemption but the response is lost; the call (and the shop's retry
    of the same call) end in one burn, never two."""
    lk = loyaltykit_target
    customer = lk.customer()
    code, _ = multi_use_voucher_or_single(lk, customer.id)
    request = redemption(lk, code, customer.id)
    lk.inject("redeem", Fault(FaultKind.TIMEOUT_AFTER))
    first = lk.attempt("redeem_voucher", request)
    if isinstance(first, LoyaltyError):
        assert isinstance(first, OutcomeUnknownError), f"a lost response must be outcome_unknown, got {first!r}"
        assert first.idempotency_key == request.key
    else:
        assert_redeemed(lk, first, request)
    retried = lk.attempt("redeem_voucher", request)
    assert not isinstance(retried, LoyaltyError), f"retrying the same redemption failed: {retried!r}"
    assert_redeemed(lk, retried, request)
    assert lk.harness.voucher_redemptions(code) == 1, "the voucher was burned more than once"


@requires(Capability.REDEEM_VOUCHER, Capability.RESERVE_VOUCHER, Capability.EXPORT_ORDERS)
def test_reserved_voucher_is_held_then_completed_by_export(loyaltykit_target):
    """A voucher reserved for an order cannot serve another order meanwhile; exporting the order
    with its receipt completes the redemption, once."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    order = lk.order(customer_id=customer.id, voucher_codes=(code,))
    result, order = redeem_for_order(lk, code, customer.id, order)
    with pytest.raises(USED_UP):
        lk.call("redeem_voucher", redemption(lk, code, customer.id))
    report = lk.call("export_orders", [order])
    assert report.status_of(order.ref).value == "accepted", report
    assert lk.harness.voucher_redemptions(code) == 1, f"{result.status.value} voucher not burned once by the export"
    lk.call("export_orders", [order])
    assert lk.harness.voucher_redemptions(code) == 1, "exporting again burned the voucher again"


@requires(Capability.REDEEM_VOUCHER)
def test_redeem_error_body_is_not_success(loyaltykit_target):
    """An HTTP 200 carrying the engine's error envelope is an error, not a redemption."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    request = redemption(lk, code, customer.id)
    lk.inject("redeem", Fault(FaultKind.ERROR_BODY))
    outcome = lk.attempt("redeem_voucher", request)
    assert isinstance(outcome, LoyaltyError), f"an error body was taken for success: {outcome!r}"
    assert lk.harness.voucher_redemptions(code) == 0
    assert_redeemed(lk, lk.call("redeem_voucher", request), request)
    assert lk.harness.voucher_redemptions(code) == 1

__all__ = [
    "test_item_voucher_discounts_its_line_and_redeems",
    "test_redeem_already_used_voucher",
    "test_redeem_error_body_is_not_success",
    "test_redeem_expired_voucher",
    "test_redeem_lost_response_burns_once",
    "test_redeem_open_code",
    "test_redeem_same_call_twice_burns_once",
    "test_redeem_unknown_voucher",
    "test_redeem_usage_limit_reached",
    "test_redeem_valid_voucher",
    "test_redeem_voucher_of_another_customer",
    "test_reserved_voucher_is_held_then_completed_by_export",
]
