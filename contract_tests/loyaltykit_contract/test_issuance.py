"""Issuing a voucher or offer to a member outside a checkout: in the wallet, redeemable once, once per key."""

from __future__ import annotations

import uuid
from decimal import Decimal

from loyaltykit.capabilities import Capability
from loyaltykit.errors import CustomerNotFoundError, InvalidRequestError, VoucherError
from loyaltykit.members import IssuedVouchers, VoucherIssue, WalletQuery
from loyaltykit.testing import OfferSpec

from .requirements import requires
from .support import redemption


def _definition(lk) -> str:
    """An issuable fixed-amount voucher definition (or offer) on the engine."""
    spec = OfferSpec(kind="fixed_off_check", amount=lk.money("5.00"), label="5 off")
    definition: str = lk.seed("define an issuable voucher", lk.harness.define_issuable, spec,
                              capability=Capability.ISSUE_VOUCHER)
    return definition


def _issue(customer_id: str, definition_id: str, **extra) -> VoucherIssue:
    return VoucherIssue(customer_id=customer_id, definition_id=definition_id,
                        idempotency_key=f"issue-{uuid.uuid4().hex[:12]}", **extra)


def _wallet_ids(lk, customer_id: str) -> list[str]:
    return [o.id for o in lk.call("wallet", WalletQuery(customer_id=customer_id)).offers]


@requires(Capability.ISSUE_VOUCHER, Capability.WALLET, Capability.REDEEM_VOUCHER)
def test_issued_voucher_is_in_the_wallet_and_redeems_once(loyaltykit_target):
    """The issued voucher comes back with its code, is listed in the member's wallet, redeems once,
    and a second redemption is refused."""
    lk = loyaltykit_target
    customer = lk.customer(capability=Capability.ISSUE_VOUCHER)
    issued = lk.call("issue_voucher", _issue(customer.id, _definition(lk)))
    assert isinstance(issued, IssuedVouchers), f"expected IssuedVouchers, got {issued!r}"
    assert issued.created is True and len(issued.vouchers) == 1, issued
    voucher = issued.vouchers[0]
    assert voucher.id and voucher.code, "an issued voucher needs the id and code a shop redeems it with"
    assert _wallet_ids(lk, customer.id) == [voucher.id], "the issued voucher is not (only) in the wallet"
    lk.call("redeem_voucher", redemption(lk, voucher.code, customer.id))
    again = lk.attempt("redeem_voucher", redemption(lk, voucher.code, customer.id))
    assert isinstance(again, VoucherError), f"an issued voucher redeemed twice: {again!r}"
    assert voucher.id not in _wallet_ids(lk, customer.id), "a redeemed voucher is still in the wallet"


@requires(Capability.ISSUE_VOUCHER)
def test_issue_voucher_once_per_key(loyaltykit_target):
    """The same issue sent again returns the vouchers of the first, with created false."""
    lk = loyaltykit_target
    customer = lk.customer(capability=Capability.ISSUE_VOUCHER)
    issue = _issue(customer.id, _definition(lk), quantity=2)
    first = lk.call("issue_voucher", issue)
    assert first.created is True and len({v.id for v in first.vouchers}) == 2, first
    again = lk.call("issue_voucher", issue)
    assert again.created is False, "the second send of one key issued again"
    assert [v.id for v in again.vouchers] == [v.id for v in first.vouchers]
    if lk.supports(Capability.WALLET):
        assert sorted(_wallet_ids(lk, customer.id)) == sorted(v.id for v in first.vouchers)
    other = lk.call("issue_voucher", issue.model_copy(update={"idempotency_key": f"{issue.key}-b", "quantity": 1}))
    assert other.created is True and other.vouchers[0].id not in {v.id for v in first.vouchers}


@requires(Capability.ISSUE_VOUCHER)
def test_issue_voucher_concurrently_issues_once(loyaltykit_target):
    """One issue sent eight times at once issues one voucher."""
    lk = loyaltykit_target
    customer = lk.customer(capability=Capability.ISSUE_VOUCHER)
    issue = _issue(customer.id, _definition(lk))
    results = lk.concurrently("issue_voucher", [issue] * 8)
    answers = [r for r in results if isinstance(r, IssuedVouchers)]
    assert answers, f"no issue succeeded: {results!r}"
    assert sum(r.created for r in answers) == 1, f"{sum(r.created for r in answers)} calls issued"
    assert len({r.vouchers[0].id for r in answers}) == 1, "concurrent issues returned different vouchers"
    if lk.supports(Capability.WALLET):
        assert _wallet_ids(lk, customer.id) == [answers[0].vouchers[0].id], "the member holds more than one"


@requires(Capability.ISSUE_VOUCHER)
def test_issue_voucher_to_unknown_member(loyaltykit_target):
    """Issuing to a member the engine does not know raises CustomerNotFoundError."""
    lk = loyaltykit_target
    outcome = lk.attempt("issue_voucher", _issue("no-such-member-42", _definition(lk)))
    assert isinstance(outcome, CustomerNotFoundError), f"expected CustomerNotFoundError, got {outcome!r}"


@requires(Capability.ISSUE_VOUCHER)
def test_issue_voucher_of_unknown_definition(loyaltykit_target):
    """A voucher definition or offer the engine does not know is refused on definition_id."""
    lk = loyaltykit_target
    customer = lk.customer(capability=Capability.ISSUE_VOUCHER)
    outcome = lk.attempt("issue_voucher", _issue(customer.id, "no-such-definition-42"))
    assert isinstance(outcome, InvalidRequestError), f"expected InvalidRequestError, got {outcome!r}"
    assert outcome.field and "definition_id" in outcome.field, outcome.field


@requires(Capability.ISSUE_VOUCHER)
def test_issue_voucher_bad_input_names_the_field_without_an_engine_call(loyaltykit_target):
    """A zero quantity, a negative face value, a past expiry, an empty definition or a malformed key is
    refused with InvalidRequestError naming the field, and nothing reaches the engine."""
    lk = loyaltykit_target
    customer = lk.customer(capability=Capability.ISSUE_VOUCHER)
    before = lk.request_count()
    cases = {
        "quantity": {"quantity": 0},
        "face_value": {"face_value": {"amount": "-5.00", "currency": lk.currency}},
        "expires_at": {"expires_at": "2020-01-01T00:00:00Z"},
        "definition_id": {"definition_id": ""},
        "idempotency_key": {"idempotency_key": "has spaces"},
    }
    for field, bad in cases.items():
        body = {"customer_id": customer.id, "definition_id": "def-1", "idempotency_key": "k-1",
                "quantity": Decimal(1), **bad}
        outcome = lk.attempt("issue_voucher", body)
        assert isinstance(outcome, InvalidRequestError), f"{field}: expected InvalidRequestError, got {outcome!r}"
        assert outcome.field and field in outcome.field, f"{field}: the error names {outcome.field!r}"
    after = lk.request_count()
    if before is not None and after is not None:
        assert after == before, f"bad input reached the engine ({after - before} request(s))"


__all__ = [
    "test_issue_voucher_bad_input_names_the_field_without_an_engine_call",
    "test_issue_voucher_concurrently_issues_once",
    "test_issue_voucher_of_unknown_definition",
    "test_issue_voucher_once_per_key",
    "test_issue_voucher_to_unknown_member",
    "test_issued_voucher_is_in_the_wallet_and_redeems_once",
]
