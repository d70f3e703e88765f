"""Resilience: retries on 503 and 429 (honouring Retry-After), deadlines hold when the engine
hangs, one token refresh after a 401 and never a loop, garbage answers become kit errors.

These scenarios fault the transport, so they do not apply to an in-process engine.
"""

from __future__ import annotations

import pytest

from loyaltykit.capabilities import Capability
from loyaltykit.errors import (
    AuthFailedError,
    EngineTimeoutError,
    EngineUnavailableError,
    LoyaltyError,
    OutcomeUnknownError,
)
from loyaltykit.models import Customer, Evaluation, RedemptionResult
from loyaltykit.testing import Fault, FaultKind

from .requirements import requires
from .support import identifiable_customer, issue_voucher, redemption
from .target import DEADLINE_SLACK


def token_engine(lk) -> None:
    """Expire the cached token; engines without tokens make the scenario not applicable."""
    lk.need_transport()
    try:
        lk.harness.expire_token()
    except NotImplementedError:
        lk.not_applicable(f"{lk.engine} does not authenticate with expiring tokens")


@requires(Capability.IDENTIFY)
def test_503_then_success(loyaltykit_target):
    """One 503 on a read is retried and the call succeeds."""
    lk = loyaltykit_target
    seeded, identifier = identifiable_customer(lk)
    lk.inject("identify", Fault(FaultKind.STATUS, status=503))
    before = lk.request_count("identify")
    customer = lk.call("identify", identifier)
    assert isinstance(customer, Customer) and customer.id == seeded.id
    assert lk.request_count("identify") - before >= 2, "the 503 was not retried"


@requires(Capability.REDEEM_VOUCHER)
def test_503_then_success_on_a_write(loyaltykit_target):
    """One 503 on a redemption either is retried (a write the engine de-duplicates by key) or
    fails closed as a retryable engine_unavailable with nothing burned; either way the voucher
    ends up burned exactly once."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    request = redemption(lk, code, customer.id)
    lk.inject("redeem", Fault(FaultKind.STATUS, status=503))
    result = lk.attempt("redeem_voucher", request)
    if isinstance(result, LoyaltyError):
        assert isinstance(result, EngineUnavailableError) and result.retryable, f"a 503 gave {result!r}"
        assert lk.harness.voucher_redemptions(code) == 0, "a write refused with 503 was applied"
        result = lk.attempt("redeem_voucher", request)
    assert isinstance(result, RedemptionResult), f"a 503 then success must redeem, got {result!r}"
    assert lk.harness.voucher_redemptions(code) == 1


@requires(Capability.IDENTIFY)
def test_connection_reset_then_success(loyaltykit_target):
    """A connection reset before anything was applied is retried and the call succeeds."""
    lk = loyaltykit_target
    seeded, identifier = identifiable_customer(lk)
    lk.inject("identify", Fault(FaultKind.RESET))
    customer = lk.call("identify", identifier)
    assert isinstance(customer, Customer) and customer.id == seeded.id


@requires(Capability.IDENTIFY)
def test_429_retry_after_is_honoured(loyaltykit_target):
    """A 429 with Retry-After: 1 is retried after about a second, inside the deadline."""
    lk = loyaltykit_target
    seeded, identifier = identifiable_customer(lk)
    lk.inject("identify", Fault(FaultKind.RATE_LIMIT, retry_after=1))
    customer, elapsed = lk.timed("identify", identifier)
    assert isinstance(customer, Customer) and customer.id == seeded.id, f"got {customer!r}"
    assert elapsed >= 0.9, f"retried after {elapsed:.2f}s, before Retry-After (1s)"
    assert elapsed <= lk.settings["read_deadline"] + DEADLINE_SLACK


@requires(Capability.IDENTIFY)
def test_read_deadline_holds_when_engine_hangs(loyaltykit_target):
    """A hanging engine makes identify fail with a timeout inside the read deadline."""
    lk = loyaltykit_target
    lk.configure(read_deadline=1.0)
    _, identifier = identifiable_customer(lk)
    lk.inject("identify", Fault(FaultKind.HANG, seconds=1.1, times=3))
    outcome, elapsed = lk.timed("identify", identifier)
    assert isinstance(outcome, EngineTimeoutError | EngineUnavailableError), f"got {outcome!r}"
    assert elapsed <= 1.0 + DEADLINE_SLACK, f"took {elapsed:.2f}s, deadline 1.0s"


@requires(Capability.REDEEM_VOUCHER)
def test_write_deadline_holds_when_engine_hangs(loyaltykit_target):
    """A hanging engine makes a redemption end inside the write deadline, without burning; the
    shop's retry then burns once."""
    lk = loyaltykit_target
    lk.configure(write_deadline=1.0)
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    request = redemption(lk, code, customer.id)
    lk.inject("redeem", Fault(FaultKind.HANG, seconds=1.1, times=3))
    outcome, elapsed = lk.timed("redeem_voucher", request)
    assert isinstance(outcome, OutcomeUnknownError | EngineTimeoutError | EngineUnavailableError), f"got {outcome!r}"
    assert elapsed <= 1.0 + DEADLINE_SLACK, f"took {elapsed:.2f}s, deadline 1.0s"
    assert lk.harness.voucher_redemptions(code) == 0
    lk.clear_faults()
    for _ in range(3):  # without clear_faults(), the remaining hangs are used up first
        outcome = lk.attempt("redeem_voucher", request)
        if isinstance(outcome, RedemptionResult):
            break
    assert isinstance(outcome, RedemptionResult), f"the retry did not redeem: {outcome!r}"
    assert lk.harness.voucher_redemptions(code) == 1


@requires(Capability.IDENTIFY)
def test_401_refreshes_the_token_once(loyaltykit_target):
    """An expired token is refreshed once and the call succeeds."""
    lk = loyaltykit_target
    seeded, identifier = identifiable_customer(lk)
    lk.call("identify", identifier)  # a token is cached
    token_engine(lk)
    tokens = lk.request_count("token")
    customer = lk.call("identify", identifier)
    assert isinstance(customer, Customer) and customer.id == seeded.id
    assert lk.request_count("token") - tokens == 1, "expected exactly one token refresh"


@requires(Capability.IDENTIFY)
def test_401_after_refresh_is_final(loyaltykit_target):
    """A 401 that persists after one refresh fails with AuthFailedError: no refresh loop."""
    lk = loyaltykit_target
    _, identifier = identifiable_customer(lk)
    lk.call("identify", identifier)
    token_engine(lk)
    lk.call("identify", identifier)  # refreshed
    tokens, calls = lk.request_count("token"), lk.request_count("identify")
    lk.inject("identify", Fault(FaultKind.STATUS, status=401, times=10))
    with pytest.raises(AuthFailedError):
        lk.call("identify", identifier)
    assert lk.request_count("token") - tokens <= 1, "more than one token refresh for one call"
    assert lk.request_count("identify") - calls <= 2, "the 401 was retried more than once"


@requires(Capability.IDENTIFY)
def test_malformed_body_on_identify_is_a_kit_error(loyaltykit_target):
    """A 200 whose body is not JSON raises a kit error (MalformedResponseError or another), not a crash."""
    lk = loyaltykit_target
    _, identifier = identifiable_customer(lk)
    lk.inject("identify", Fault(FaultKind.MALFORMED))
    outcome = lk.attempt("identify", identifier)
    assert isinstance(outcome, LoyaltyError), f"a malformed body gave {outcome!r}"


@requires(Capability.EVALUATE)
def test_malformed_body_on_evaluate_fails_open(loyaltykit_target):
    """A 200 whose body is not JSON makes evaluate degrade (or raise a kit error), never crash or
    look like a normal quote."""
    lk = loyaltykit_target
    customer = lk.customer()
    lk.inject("evaluate", Fault(FaultKind.MALFORMED))
    outcome = lk.attempt("evaluate", lk.basket(customer_id=customer.id))
    assert isinstance(outcome, LoyaltyError) or (isinstance(outcome, Evaluation) and outcome.degraded), outcome


@requires(Capability.EVALUATE)
def test_error_body_on_evaluate_is_not_a_quote(loyaltykit_target):
    """A 200 carrying the engine's error envelope makes evaluate degrade or raise, never a normal quote."""
    lk = loyaltykit_target
    customer = lk.customer()
    lk.inject("evaluate", Fault(FaultKind.ERROR_BODY))
    outcome = lk.attempt("evaluate", lk.basket(customer_id=customer.id))
    assert isinstance(outcome, LoyaltyError) or (isinstance(outcome, Evaluation) and outcome.degraded), (
        f"an error body was taken for a quote: {outcome!r}"
    )


@requires(Capability.REDEEM_VOUCHER)
def test_malformed_body_on_redeem_is_a_kit_error(loyaltykit_target):
    """A 200 whose body is not JSON to a redemption raises a kit error; the retry burns once."""
    lk = loyaltykit_target
    customer = lk.customer()
    code = issue_voucher(lk, customer.id)
    request = redemption(lk, code, customer.id)
    lk.inject("redeem", Fault(FaultKind.MALFORMED))
    outcome = lk.attempt("redeem_voucher", request)
    assert isinstance(outcome, LoyaltyError | RedemptionResult), f"a malformed body gave {outcome!r}"
    retried = lk.attempt("redeem_voucher", request)
    assert isinstance(retried, RedemptionResult), f"the retry did not redeem: {retried!r}"
    assert lk.harness.voucher_redemptions(code) == 1

__all__ = [
    "test_401_after_refresh_is_final",
    "test_401_refreshes_the_token_once",
    "test_429_retry_after_is_honoured",
    "test_503_then_success",
    "test_503_then_success_on_a_write",
    "test_connection_reset_then_success",
    "test_error_body_on_evaluate_is_not_a_quote",
    "test_malformed_body_on_evaluate_fails_open",
    "test_malformed_body_on_identify_is_a_kit_error",
    "test_malformed_body_on_redeem_is_a_kit_error",
    "test_read_deadline_holds_when_engine_hangs",
    "test_write_deadline_holds_when_engine_hangs",
]
