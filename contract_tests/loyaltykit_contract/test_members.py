"""Member operations: enrolment (once per external id), updates, the statement and the wallet."""

from __future__ import annotations

from decimal import Decimal

from loyaltykit.capabilities import Capability
from loyaltykit.errors import CustomerNotFoundError, InvalidRequestError
from loyaltykit.members import (
    Enrolment,
    EnrolmentResult,
    MemberField,
    MemberUpdate,
    Statement,
    StatementEntryKind,
    StatementQuery,
    Wallet,
    WalletQuery,
)
from loyaltykit.models import BalanceKind, Customer, ExportStatus, IdentifierKind
from loyaltykit.testing import OfferSpec

from .requirements import expect_not_supported, requires
from .support import redemption, sample_identifier, spend


def _enrolment(**extra) -> Enrolment:
    return Enrolment(external_id=sample_identifier(IdentifierKind.EXTERNAL_ID),
                     email=sample_identifier(IdentifierKind.EMAIL), first_name="Ada", last_name="Lovelace",
                     consents=({"purpose": "marketing_email", "granted": True},), **extra)


def _all_entries(lk, customer_id: str, page_size: int) -> list:
    entries, cursor, pages = [], None, 0
    while True:
        page = lk.call("statement", StatementQuery(customer_id=customer_id, page_size=page_size, cursor=cursor))
        assert isinstance(page, Statement), f"expected a Statement, got {page!r}"
        assert len(page.entries) <= page_size, f"a page of {page_size} held {len(page.entries)} entries"
        entries.extend(page.entries)
        pages += 1
        assert pages < 100, "the statement never ends (next_cursor loops)"
        if page.next_cursor is None:
            return entries
        cursor = page.next_cursor


@requires(Capability.ENROL_MEMBER)
def test_enrol_member_once_per_external_id(loyaltykit_target):
    """Enrolling returns a new member; enrolling the same external id again returns that member."""
    lk = loyaltykit_target
    enrolment = _enrolment()
    first = lk.call("enrol_member", enrolment)
    assert isinstance(first, EnrolmentResult), f"expected an EnrolmentResult, got {first!r}"
    assert first.created is True and first.customer.id
    again = lk.call("enrol_member", enrolment)
    assert again.created is False, "the second enrolment of one external id created a member"
    assert again.customer.id == first.customer.id
    if lk.supports(Capability.IDENTIFY) and IdentifierKind.EMAIL in lk.caps.identify_by:
        found = lk.call("identify", {"kind": "email", "value": enrolment.email})
        assert found is not None and found.id == first.customer.id, "the enrolled member is not found by e-mail"


@requires(Capability.ENROL_MEMBER)
def test_enrol_member_concurrently_creates_one(loyaltykit_target):
    """The same enrolment sent eight times at once creates exactly one member."""
    lk = loyaltykit_target
    enrolment = _enrolment()
    results = lk.concurrently("enrol_member", [enrolment] * 8)
    answers = [r for r in results if isinstance(r, EnrolmentResult)]
    assert answers, f"no enrolment succeeded: {results!r}"
    assert sum(r.created for r in answers) == 1, f"{sum(r.created for r in answers)} enrolments created a member"
    assert len({r.customer.id for r in answers}) == 1, "concurrent enrolments returned different members"


@requires(Capability.ENROL_MEMBER)
def test_enrol_member_refuses_an_identifier_held_by_another(loyaltykit_target):
    """A second member with another external id but the same e-mail is refused, naming the field."""
    lk = loyaltykit_target
    first = _enrolment()
    lk.call("enrol_member", first)
    outcome = lk.attempt("enrol_member", _enrolment().model_copy(update={"email": first.email}))
    assert isinstance(outcome, InvalidRequestError), f"expected InvalidRequestError, got {outcome!r}"
    assert outcome.field and "email" in outcome.field, outcome.field


def _declares(lk, field: MemberField, update: MemberUpdate) -> bool:
    """Whether the adapter declares ``field`` updatable; when it does not, assert the not-supported
    contract for it (``NotSupportedError`` naming the field, no engine request) and say so."""
    if field in lk.caps.member_fields:
        return True
    expect_not_supported(lk, "update_member", update, label=f"update_member.{field.value}")
    return False


def _two_tiers(lk) -> tuple[str, str]:
    tiers = tuple(getattr(lk.harness, "member_tiers", ()))
    assert len(tiers) >= 2, (
        f"the {lk.engine} harness names fewer than two member_tiers although the adapter declares tier updates"
    )
    return tiers[0], tiers[1]


@requires(Capability.UPDATE_MEMBER)
def test_update_member_segments(loyaltykit_target):
    """Segments given replace the member's; the same update again changes nothing."""
    lk = loyaltykit_target
    if not _declares(lk, MemberField.SEGMENTS, MemberUpdate(customer_id="cust-probe", segments=("vip",))):
        return
    customer = lk.customer(capability=Capability.UPDATE_MEMBER)
    update = MemberUpdate(customer_id=customer.id, segments=("newsletter", "vip"))
    updated = lk.call("update_member", update)
    assert isinstance(updated, Customer), f"expected a Customer, got {updated!r}"
    assert sorted(updated.segments) == ["newsletter", "vip"], updated.segments
    again = lk.call("update_member", update)
    assert sorted(again.segments) == ["newsletter", "vip"]


@requires(Capability.UPDATE_MEMBER)
def test_update_member_tier(loyaltykit_target):
    """A tier change moves the member; the same change again is a no-op and keeps the tier."""
    lk = loyaltykit_target
    if not _declares(lk, MemberField.TIER, MemberUpdate(customer_id="cust-probe", tier="Gold")):
        return
    start, target = _two_tiers(lk)
    customer = lk.customer(tier=start, capability=Capability.UPDATE_MEMBER)
    update = MemberUpdate(customer_id=customer.id, tier=target, reason="goodwill upgrade")
    updated = lk.call("update_member", update)
    assert isinstance(updated, Customer), f"expected a Customer, got {updated!r}"
    assert updated.tier == target, f"expected tier {target!r}, got {updated.tier!r}"
    again = lk.call("update_member", update)
    assert again.tier == target, f"repeating the tier change left tier {again.tier!r}"


@requires(Capability.UPDATE_MEMBER)
def test_update_unknown_member(loyaltykit_target):
    """An update of a member the engine does not know is CustomerNotFoundError (one declared field)."""
    lk = loyaltykit_target
    field = sorted(lk.caps.member_fields)[0]
    values: dict[MemberField, object] = {MemberField.SEGMENTS: ("vip",), MemberField.ROLE: "staff"}
    value = values[field] if field in values else _two_tiers(lk)[1]
    outcome = lk.attempt("update_member", MemberUpdate(customer_id="no-such-member-42", **{field: value}))
    assert isinstance(outcome, CustomerNotFoundError), f"expected CustomerNotFoundError, got {outcome!r}"


@requires(Capability.STATEMENT, Capability.SPEND_POINTS)
def test_statement_shows_a_points_spend(loyaltykit_target):
    """Points paid for an order appear in the statement, negative, with the order reference, newest first."""
    lk = loyaltykit_target
    customer = lk.customer(points=100, capability=Capability.SPEND_POINTS)
    order_ref = lk.ref()
    lk.call("spend_cashback", spend(lk, customer.id, "points", "30", order_ref=order_ref))
    page = lk.call("statement", StatementQuery(customer_id=customer.id))
    spends = [e for e in page.entries if e.kind is StatementEntryKind.SPEND]
    assert len(spends) == 1, f"expected one spend entry, got {page.entries!r}"
    assert spends[0].balance is BalanceKind.POINTS and spends[0].points == Decimal(-30), spends[0]
    assert spends[0].order_ref == order_ref
    moments = [e.at for e in page.entries]
    assert moments == sorted(moments, reverse=True), "the statement is not newest first"


@requires(Capability.STATEMENT, Capability.EXPORT_ORDERS)
def test_statement_shows_points_earned_on_an_order(loyaltykit_target):
    """An exported order's points appear as an earn entry carrying the order reference."""
    lk = loyaltykit_target
    lk.seed("define a points-per-unit earn rule", lk.harness.define_earn_rule, Decimal(1))
    customer = lk.customer()
    order = lk.order(customer_id=customer.id)
    report = lk.call("export_orders", [order])
    assert report.results[0].status is ExportStatus.ACCEPTED, report
    page = lk.call("statement", StatementQuery(customer_id=customer.id))
    earned = [e for e in page.entries if e.kind is StatementEntryKind.EARN and e.order_ref == order.ref]
    assert earned, f"no earn entry for order {order.ref}: {page.entries!r}"
    assert sum(e.points or 0 for e in earned) > 0


@requires(Capability.STATEMENT, Capability.SPEND_POINTS)
def test_statement_pages_neither_overlap_nor_skip(loyaltykit_target):
    """Five spends read two at a time: every entry once, pages within the page size."""
    lk = loyaltykit_target
    customer = lk.customer(points=100, capability=Capability.SPEND_POINTS)
    refs = [lk.ref() for _ in range(5)]
    for ref in refs:
        lk.call("spend_cashback", spend(lk, customer.id, "points", "1", order_ref=ref))
    entries = _all_entries(lk, customer.id, page_size=2)
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids)), f"pages overlap: {ids}"
    seen = {e.order_ref for e in entries if e.kind is StatementEntryKind.SPEND}
    assert seen == set(refs), f"pages skipped spends: missing {set(refs) - seen}"


@requires(Capability.STATEMENT)
def test_statement_of_unknown_member(loyaltykit_target):
    lk = loyaltykit_target
    outcome = lk.attempt("statement", StatementQuery(customer_id="no-such-member-42"))
    assert isinstance(outcome, CustomerNotFoundError), f"expected CustomerNotFoundError, got {outcome!r}"


@requires(Capability.STATEMENT)
def test_statement_refuses_a_forged_cursor(loyaltykit_target):
    lk = loyaltykit_target
    customer = lk.customer()
    outcome = lk.attempt("statement", StatementQuery(customer_id=customer.id, cursor="not-a-cursor"))
    assert isinstance(outcome, InvalidRequestError), f"expected InvalidRequestError, got {outcome!r}"


@requires(Capability.WALLET)
def test_wallet_lists_an_issued_offer(loyaltykit_target):
    """An offer put in the member's wallet is listed outside any basket, with its code."""
    lk = loyaltykit_target
    customer = lk.customer(capability=Capability.WALLET)
    offer_id = lk.seed("issue a wallet offer", lk.harness.issue_offer, customer.id,
                       OfferSpec(kind="percent_off_check", percent=Decimal(10), label="10% off"),
                       capability=Capability.WALLET)
    wallet = lk.call("wallet", WalletQuery(customer_id=customer.id))
    assert isinstance(wallet, Wallet), f"expected a Wallet, got {wallet!r}"
    assert [o.id for o in wallet.offers] == [str(offer_id)], wallet.offers
    assert wallet.offers[0].code, "a wallet offer needs the code a shop redeems it with"
    assert wallet.offers[0].percent == Decimal(10)
    other = lk.customer()
    assert lk.call("wallet", WalletQuery(customer_id=other.id)).offers == (), "another member sees the offer"


@requires(Capability.WALLET, Capability.REDEEM_VOUCHER)
def test_wallet_drops_a_redeemed_offer(loyaltykit_target):
    """Once the offer is redeemed it leaves the wallet."""
    lk = loyaltykit_target
    customer = lk.customer(capability=Capability.WALLET)
    offer_id = lk.seed("issue a wallet offer", lk.harness.issue_offer, customer.id,
                       OfferSpec(kind="fixed_off_check", amount=lk.money("5.00"), label="5 off"),
                       capability=Capability.WALLET)
    listed = lk.call("wallet", WalletQuery(customer_id=customer.id)).offers
    code = next(o.code for o in listed if o.id == str(offer_id))
    lk.call("redeem_voucher", redemption(lk, code, customer.id))
    wallet = lk.call("wallet", WalletQuery(customer_id=customer.id))
    assert str(offer_id) not in [o.id for o in wallet.offers], "a redeemed offer is still in the wallet"


@requires(Capability.WALLET)
def test_wallet_of_unknown_member(loyaltykit_target):
    lk = loyaltykit_target
    outcome = lk.attempt("wallet", WalletQuery(customer_id="no-such-member-42"))
    assert isinstance(outcome, CustomerNotFoundError), f"expected CustomerNotFoundError, got {outcome!r}"


__all__ = [
    "test_enrol_member_concurrently_creates_one",
    "test_enrol_member_once_per_external_id",
    "test_enrol_member_refuses_an_identifier_held_by_another",
    "test_statement_of_unknown_member",
    "test_statement_pages_neither_overlap_nor_skip",
    "test_statement_refuses_a_forged_cursor",
    "test_statement_shows_a_points_spend",
    "test_statement_shows_points_earned_on_an_order",
    "test_update_member_segments",
    "test_update_member_tier",
    "test_update_unknown_member",
    "test_wallet_drops_a_redeemed_offer",
    "test_wallet_lists_an_issued_offer",
    "test_wallet_of_unknown_member",
]
