"""Identify: find a member by each declared identifier; unknown is None; malformed never leaves."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyaltykit.capabilities import Capability
from loyaltykit.errors import InvalidRequestError
from loyaltykit.models import Customer, IdentifierKind

from .requirements import expect_not_supported, requires
from .support import identifiable_customer, sample_identifier


@requires(Capability.IDENTIFY)
@pytest.mark.parametrize("kind", [k.value for k in IdentifierKind])
def test_identify_by_each_identifier_type(loyaltykit_target, kind):
    """Every declared identifier type finds the member; an undeclared one is NotSupported."""
    lk = loyaltykit_target
    value = sample_identifier(kind)
    if IdentifierKind(kind) not in lk.caps.identify_by:
        expect_not_supported(lk, "identify", {"kind": kind, "value": value}, label=f"identify_by {kind}")
        return
    identifiers = {"email": sample_identifier("email"), kind: value}
    seeded = lk.customer(identifiers, capability=Capability.IDENTIFY)
    used = seeded.identifiers.get(kind, value)
    customer = lk.call("identify", {"kind": kind, "value": used})
    assert isinstance(customer, Customer), f"identify by {kind} found nobody"
    assert customer.id == seeded.id


@requires(Capability.IDENTIFY)
def test_identify_unknown_customer_is_none(loyaltykit_target):
    """An identifier the engine does not know returns None, not an error."""
    lk = loyaltykit_target
    identifiable_customer(lk)  # the engine is not empty
    kind = sorted(lk.caps.identify_by)[0].value
    assert lk.call("identify", {"kind": kind, "value": sample_identifier(kind)}) is None


@requires(Capability.IDENTIFY)
@pytest.mark.parametrize(
    ("kind", "value"),
    [("email", "not-an-email"), ("phone", "call me"), ("card", "#!"), ("external_id", "a\x00b")],
    ids=["email", "phone", "card", "external_id"],
)
def test_identify_malformed_identifier_is_refused_without_engine_call(loyaltykit_target, kind, value):
    """A malformed identifier raises InvalidRequestError and sends nothing to the engine."""
    lk = loyaltykit_target
    before = lk.request_count()
    with pytest.raises(InvalidRequestError) as info:
        lk.call("identify", {"kind": kind, "value": value})
    assert info.value.field and info.value.field.startswith("identifier")
    after = lk.request_count()
    if before is not None:
        assert after == before, f"{after - before} request(s) reached the engine for a malformed identifier"


@requires(Capability.IDENTIFY)
def test_identify_reports_balances(loyaltykit_target):
    """identify returns the member's balances as the engine holds them."""
    lk = loyaltykit_target
    cashback = lk.money("12.50") if lk.supports(Capability.SPEND_CASHBACK) else None
    points = Decimal(250) if lk.supports(Capability.SPEND_POINTS) else Decimal(0)
    seeded, identifier = identifiable_customer(lk, points=points, cashback=cashback)
    customer = lk.call("identify", identifier)
    assert isinstance(customer, Customer) and customer.id == seeded.id
    assert customer.points == lk.points(seeded.id), "identify's points differ from the engine's"
    if lk.supports(Capability.SPEND_POINTS):
        assert customer.points == Decimal(250)
    if cashback is not None:
        assert customer.cashback_in(lk.currency) == cashback

__all__ = [
    "test_identify_by_each_identifier_type",
    "test_identify_malformed_identifier_is_refused_without_engine_call",
    "test_identify_reports_balances",
    "test_identify_unknown_customer_is_none",
]
