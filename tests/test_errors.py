"""One error vocabulary with stable codes; every error carries engine, operation, retryable, engine_code."""

from __future__ import annotations

import pytest

from loyaltykit import errors
from loyaltykit.errors import ERROR_CODES, LoyaltyError, OutcomeUnknownError, RateLimitedError

DESIGN_CODES = [
    "customer_not_found", "voucher_not_found", "voucher_expired", "voucher_already_redeemed", "voucher_not_owned",
    "usage_limit_reached", "insufficient_balance", "currency_mismatch", "invalid_request", "not_supported",
    "engine_unavailable", "timeout", "rate_limited", "auth_failed", "outcome_unknown", "config_error",
]

RETRYABLE = {"engine_unavailable", "timeout", "rate_limited"}


@pytest.mark.parametrize("code", DESIGN_CODES)
def test_design_code_exists(code):
    cls = ERROR_CODES[code]
    assert issubclass(cls, LoyaltyError)
    assert cls.code == code


@pytest.mark.parametrize("code", DESIGN_CODES)
def test_error_carries_engine_operation_retryable_engine_code(code):
    err = ERROR_CODES[code]("it went wrong", engine="acme", operation="redeem_voucher", engine_code="E42",
                            engine_message="Voucher locked")
    assert (err.engine, err.operation, err.engine_code, err.engine_message) == ("acme", "redeem_voucher", "E42",
                                                                                 "Voucher locked")
    assert err.retryable is (code in RETRYABLE)
    assert ERROR_CODES[code]("x", retryable=not err.retryable).retryable is (not err.retryable)
    text = str(err)
    for part in (f"[{code}]", "it went wrong", "engine=acme", "operation=redeem_voucher", "engine_code=E42"):
        assert part in text
    assert err.to_dict()["code"] == code
    assert set(err.to_dict()) >= {"code", "message", "engine", "operation", "retryable", "engine_code"}


def test_with_context_fills_only_what_is_missing():
    err = errors.VoucherExpiredError("expired", operation="redeem_voucher")
    err.with_context(engine="acme", operation="other")
    assert (err.engine, err.operation) == ("acme", "redeem_voucher")
    assert err.reason == "voucher_expired"


def test_codes_are_unique_per_class():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, LoyaltyError)]
    # The base class shares "engine_error" with EngineError, its concrete counterpart.
    own_codes = [c.code for c in classes if "code" in vars(c) and c is not LoyaltyError]
    assert len(own_codes) == len(set(own_codes))


def test_specialised_errors_keep_their_extra_facts():
    assert RateLimitedError("slow down", retry_after=3).retry_after == 3
    err = OutcomeUnknownError("lost", idempotency_key="k", reconcile={"route": "redeem"})
    assert (err.idempotency_key, err.reconcile) == ("k", {"route": "redeem"})
    assert isinstance(errors.CurrencyMismatchError("x"), errors.InvalidRequestError)
    assert isinstance(errors.CircuitOpenError("x"), errors.EngineUnavailableError)
