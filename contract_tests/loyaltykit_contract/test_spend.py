"""Spend cashback or points: partial, full, refused above the balance, once per key, no overdraw."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyaltykit.capabilities import Capability
from loyaltykit.errors import InsufficientBalanceError, LoyaltyError, OutcomeUnknownError
from loyaltykit.models import BalanceKind, SpendResult
from loyaltykit.testing import Fault, FaultKind

from .requirements import requires
from .support import balance, customer_with_balance, spend

KINDS = pytest.mark.parametrize(
    "kind",
    [
        pytest.param("cashback", marks=requires(Capability.SPEND_CASHBACK)),
        pytest.param("points", marks=requires(Capability.SPEND_POINTS)),
    ],
)

#: (starting balance, a partial spend) per kind; points are 10x the money figures.
START = {"cashback": "20.00", "points": "200"}
PART = {"cashback": "5.00", "points": "50"}
OVER = {"cashback": "25.00", "points": "250"}


def assert_spent(lk, result, request, kind) -> SpendResult:
    assert isinstance(result, SpendResult), f"expected a SpendResult, got {result!r}"
    assert result.kind is BalanceKind(kind)
    if kind == "cashback":
        assert result.amount == request.amount, f"took {result.amount}, asked {request.amount}"
    else:
        assert result.points == request.points, f"took {result.points}, asked {request.points}"
    assert result.receipt.idempotency_key == request.key
    return result


@KINDS
def test_spend_partial(loyaltykit_target, kind):
    """Spending part of the balance takes exactly that part."""
    lk = loyaltykit_target
    customer = customer_with_balance(lk, kind, START[kind])
    request = spend(lk, customer.id, kind, PART[kind])
    result = assert_spent(lk, lk.call("spend_cashback", request), request, kind)
    left = Decimal(START[kind]) - Decimal(PART[kind])
    assert balance(lk, customer.id, kind) == left
    if result.remaining is not None:
        remaining = result.remaining.money.amount if kind == "cashback" else result.remaining.points
        assert remaining == left, f"reported remaining {remaining}, engine holds {left}"


@KINDS
def test_spend_full_balance(loyaltykit_target, kind):
    """Spending the whole balance leaves zero."""
    lk = loyaltykit_target
    customer = customer_with_balance(lk, kind, START[kind])
    request = spend(lk, customer.id, kind, START[kind])
    assert_spent(lk, lk.call("spend_cashback", request), request, kind)
    assert balance(lk, customer.id, kind) == 0


@KINDS
def test_spend_above_balance_is_refused(loyaltykit_target, kind):
    """Spending more than the balance raises InsufficientBalanceError and takes nothing."""
    lk = loyaltykit_target
    customer = customer_with_balance(lk, kind, START[kind])
    with pytest.raises(InsufficientBalanceError):
        lk.call("spend_cashback", spend(lk, customer.id, kind, OVER[kind]))
    assert balance(lk, customer.id, kind) == Decimal(START[kind])


@KINDS
def test_spend_same_call_twice_deducts_once(loyaltykit_target, kind):
    """The same spend (same idempotency key) sent twice succeeds twice and deducts once."""
    lk = loyaltykit_target
    customer = customer_with_balance(lk, kind, START[kind])
    request = spend(lk, customer.id, kind, PART[kind])
    assert_spent(lk, lk.call("spend_cashback", request), request, kind)
    assert_spent(lk, lk.call("spend_cashback", request), request, kind)
    assert balance(lk, customer.id, kind) == Decimal(START[kind]) - Decimal(PART[kind])


@KINDS
def test_spend_lost_response_deducts_once(loyaltykit_target, kind):
    """The engine applies a spend but the response is lost; the call and its retry deduct once."""
    lk = loyaltykit_target
    customer = customer_with_balance(lk, kind, START[kind])
    request = spend(lk, customer.id, kind, PART[kind])
    lk.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    first = lk.attempt("spend_cashback", request)
    if isinstance(first, LoyaltyError):
        assert isinstance(first, OutcomeUnknownError), f"a lost response must be outcome_unknown, got {first!r}"
    else:
        assert_spent(lk, first, request, kind)
    retried = lk.attempt("spend_cashback", request)
    assert not isinstance(retried, LoyaltyError), f"retrying the same spend failed: {retried!r}"
    assert_spent(lk, retried, request, kind)
    assert balance(lk, customer.id, kind) == Decimal(START[kind]) - Decimal(PART[kind]), "deducted more than once"


@KINDS
def test_spend_error_body_is_not_success(loyaltykit_target, kind):
    """An HTTP 200 carrying the engine's error envelope is an error, and nothing is deducted."""
    lk = loyaltykit_target
    customer = customer_with_balance(lk, kind, START[kind])
    request = spend(lk, customer.id, kind, PART[kind])
    lk.inject("spend", Fault(FaultKind.ERROR_BODY))
    outcome = lk.attempt("spend_cashback", request)
    assert isinstance(outcome, LoyaltyError), f"an error body was taken for success: {outcome!r}"
    assert balance(lk, customer.id, kind) == Decimal(START[kind])


@KINDS
def test_concurrent_spends_never_overdraw(loyaltykit_target, kind):
    """Twelve simultaneous spends of 2.00 against 10.00 (20 of 100 points): five succeed, the rest
    are refused for insufficient balance, and the balance never goes below zero."""
    lk = loyaltykit_target
    start, each = ("10.00", "2.00") if kind == "cashback" else ("100", "20")
    customer = customer_with_balance(lk, kind, start)
    requests = [spend(lk, customer.id, kind, each) for _ in range(12)]
    outcomes = lk.concurrently("spend_cashback", requests)
    succeeded = [o for o in outcomes if isinstance(o, SpendResult)]
    failed = [o for o in outcomes if not isinstance(o, SpendResult)]
    unexpected = [o for o in failed if not isinstance(o, InsufficientBalanceError)]
    assert not unexpected, f"concurrent spends failed with {unexpected[:3]!r}"
    left = balance(lk, customer.id, kind)
    assert left >= 0, f"overdrawn: {left}"
    assert left == Decimal(start) - len(succeeded) * Decimal(each), "balance disagrees with the successful spends"
    assert left < Decimal(each), f"{len(failed)} spends refused while {left} was left"

__all__ = [
    "test_concurrent_spends_never_overdraw",
    "test_spend_above_balance_is_refused",
    "test_spend_error_body_is_not_success",
    "test_spend_full_balance",
    "test_spend_lost_response_deducts_once",
    "test_spend_partial",
    "test_spend_same_call_twice_deducts_once",
]
