"""End-to-end through both facades against the stateful fake org."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from loyaltykit import (
    AuthFailedError,
    Basket,
    CashbackSpend,
    CodeStatus,
    DiscountTarget,
    EngineError,
    ExportStatus,
    InsufficientBalanceError,
    InvalidRequestError,
    Line,
    MalformedResponseError,
    Money,
    NotSupportedError,
    Order,
    OutcomeUnknownError,
    Reversal,
    ReversalKind,
    VoucherAlreadyRedeemedError,
    VoucherExpiredError,
    VoucherNotFoundError,
    VoucherNotOwnedError,
    VoucherRedemption,
)
from loyaltykit.models import BalanceKind
from loyaltykit.testing import Fault, FaultKind, OfferSpec, RuleSpec, VoucherSpec
from loyaltykit_salesforce.testing import SalesforceHarness


def eur(amount: str) -> Money:
    return Money.of(Decimal(amount), "EUR")


def basket(customer: str | None = "M000001", codes: tuple[str, ...] = (), **kwargs) -> Basket:
    return Basket(
        id="b-1", currency="EUR", customer_id=customer, coupon_codes=codes,
        lines=(
            Line(id="l1", sku="SKU-1", quantity=Decimal(2), unit_price=eur("25.00")),
            Line(id="l2", sku="SKU-2", quantity=Decimal(1), unit_price=eur("50.00")),
        ),
        **kwargs,
    )


def order(ref: str = "o-1", customer: str | None = "M000001", total: str = "100.00", receipts=()) -> Order:
    b = basket(customer)
    return Order(ref=ref, currency="EUR", lines=b.lines, total=eur(total), customer_id=customer, receipts=tuple(receipts))


def seed(h: SalesforceHarness, points: str = "500", cashback: str = "20.00") -> str:
    return h.create_customer(
        identifiers={"membership": "M000001", "email": "Ada@Example.com"},
        tier="Gold", points=Decimal(points), cashback=eur(cashback),
    ).id


# -- identify ---------------------------------------------------------------------------------


def test_identify_by_membership_and_email(harness, shop):
    member = seed(harness)
    by_number = shop.identify(membership=member)
    assert by_number.id == member and by_number.tier == "Gold"
    assert by_number.points == Decimal(500)
    assert by_number.cashback == eur("20.00")
    assert shop.identify(email="ada@example.com").id == member
    assert shop.identify(membership="NOPE") is None
    assert shop.identify(email="nobody@example.com") is None


def test_undeclared_or_malformed_identifiers_never_reach_the_engine(harness, shop):
    seed(harness)
    before = harness.request_count()
    with pytest.raises(NotSupportedError):
        shop.identify(external_id="003J8000002Yu0ZIAS")
    with pytest.raises(InvalidRequestError):
        shop.identify(email="not-an-email")
    assert harness.request_count() == before


def test_program_name_is_url_encoded_on_the_wire(harness, shop):
    member = seed(harness)
    shop.identify(membership=member)
    raw = [r for r in harness.fake.requests if r.route == "identify"]
    assert raw and "NTO Insider" in raw[0].path  # the fake decoded it back to the name
    # and the adapter sent it encoded: httpx only decodes what was percent-encoded
    from loyaltykit_salesforce import transformers as tf
    assert "NTO%20Insider" in tf.profile_path(harness.make_adapter().settings)


def test_pii_stays_out_of_errors_and_reprs(harness, shop):
    seed(harness)
    harness.inject("lookup", Fault(FaultKind.MALFORMED))
    with pytest.raises(MalformedResponseError) as info:
        shop.identify(email="ada@example.com")
    assert "ada@example.com" not in str(info.value) + repr(info.value)
    customer = shop.identify(email="ada@example.com")
    assert "ada" not in repr(customer).lower()
    assert "fake-consumer-secret" not in repr(harness.make_adapter().settings)


# -- evaluate ---------------------------------------------------------------------------------


def test_evaluate_prices_promotions_vouchers_and_earn_without_side_effects(harness, shop):
    member = seed(harness)
    harness.define_earn_rule(Decimal(1))
    harness.define_rule(RuleSpec(kind="line_percent", sku="SKU-1", percent=Decimal(10), label="10% SKU-1"))
    harness.define_rule(RuleSpec(kind="order_fixed", amount=eur("5.00"), label="5 off"))
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    harness.issue_voucher(VoucherSpec(code="OLD", kind="fixed", amount=eur("10.00"), owner_id=member,
                                      expires_at=datetime.now(UTC) - timedelta(days=2)))
    offer = harness.issue_offer(member, OfferSpec(kind="percent_off_check", percent=Decimal(15), label="15%"))
    before = harness.snapshot()

    quote = shop.evaluate(basket(member, codes=("TENOFF", "OLD", "NOSUCH")))

    assert harness.snapshot() == before
    line = [d for d in quote.discounts if d.target is DiscountTarget.LINE]
    assert [(d.line_id, d.amount) for d in line] == [("l1", eur("5.00"))]
    orders = {d.label: d.amount for d in quote.discounts if d.target is DiscountTarget.ORDER}
    assert orders["5 off"] == eur("5.00") and orders["Voucher"] == eur("10.00")
    assert quote.total == eur("80.00")
    codes = {c.code: (c.status, c.reason) for c in quote.codes}
    assert codes == {
        "TENOFF": (CodeStatus.ACCEPTED, None),
        "OLD": (CodeStatus.REJECTED, "voucher_expired"),
        "NOSUCH": (CodeStatus.REJECTED, "voucher_not_found"),
    }
    assert quote.points_to_earn == Decimal(80)  # simulated on what the shopper pays
    assert offer in {o.id for o in quote.wallet}
    assert any(b.kind is BalanceKind.POINTS and b.points == Decimal(500) for b in quote.spendable)
    assert not quote.degraded


def test_evaluate_guest_basket_and_fail_open(harness, shop):
    harness.define_rule(RuleSpec(kind="order_percent", percent=Decimal(10), label="10%"))
    quote = shop.evaluate(basket(None, codes=("X1",)))
    assert quote.discount_total == eur("10.00")
    assert quote.codes[0].status is CodeStatus.REJECTED
    harness.inject("evaluate", Fault(FaultKind.STATUS, status=500))
    degraded = shop.evaluate(basket(None))
    assert degraded.degraded and degraded.discounts == ()
    harness.inject("evaluate", Fault(FaultKind.MALFORMED))
    assert shop.evaluate(basket(None)).degraded


# -- redeem voucher ---------------------------------------------------------------------------


def test_redeem_then_typed_rejections(harness, shop):
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    harness.issue_voucher(VoucherSpec(code="OLD", kind="fixed", amount=eur("10.00"), owner_id=member,
                                      expires_at=datetime.now(UTC) - timedelta(days=2)))
    result = shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member, basket=basket(member)))
    assert result.status.value == "redeemed" and result.discount == eur("10.00")
    assert harness.voucher_redemptions("TENOFF") == 1
    with pytest.raises(VoucherAlreadyRedeemedError):
        shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-2", customer_id=member))
    with pytest.raises(VoucherExpiredError):
        shop.redeem_voucher(VoucherRedemption(code="OLD", order_ref="o-2", customer_id=member))
    with pytest.raises(VoucherNotFoundError):
        shop.redeem_voucher(VoucherRedemption(code="NOSUCH", order_ref="o-2", customer_id=member))
    assert harness.voucher_redemptions("TENOFF") == 1


@pytest.mark.parametrize("lost", [1, 2], ids=["reserve-lost", "redeem-lost"])
def test_redeem_lost_response_is_applied_once(harness, shop, lost):
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    if lost == 2:  # let the Reserve through, lose the Redeem's answer
        harness.inject("redeem", Fault(FaultKind.DELAY, seconds=0))
    harness.inject("redeem", Fault(FaultKind.TIMEOUT_AFTER))
    result = shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member))
    assert result.status.value == "redeemed"
    assert harness.voucher_redemptions("TENOFF") == 1
    assert harness.request_count("redeem") == 2  # Reserve + Redeem, nothing re-sent


def test_redeem_lost_response_with_failed_lookup_is_outcome_unknown(harness, shop):
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    harness.inject("redeem", Fault(FaultKind.TIMEOUT_AFTER))
    harness.inject("wallet", Fault(FaultKind.DELAY, seconds=0))  # the pre-check list passes
    harness.inject("wallet", Fault(FaultKind.STATUS, status=500, times=10))
    with pytest.raises(OutcomeUnknownError):
        shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member))
    assert harness.request_count("redeem") == 1  # never re-sent blind


# -- spend ------------------------------------------------------------------------------------


def test_spend_points_and_cashback(harness, shop):
    member = seed(harness)
    spent = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(200)))
    assert spent.points == Decimal(200) and spent.remaining.points == Decimal(300)
    cash = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", amount=eur("7.50")))
    assert cash.amount == eur("7.50") and cash.remaining.money == eur("12.50")
    balances = harness.balances(member)
    assert balances.points == Decimal(300) and balances.cashback == eur("12.50")
    again = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(200)))
    assert again.receipt.replayed and harness.balances(member).points == Decimal(300)


def test_spend_never_overdraws(harness, make_shop):
    member = seed(harness, points="100")
    shop = make_shop()
    before = harness.request_count("spend")
    with pytest.raises(InsufficientBalanceError):
        shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(101)))
    assert harness.request_count("spend") == before  # refused before sending
    # Without the pre-check the engine's own refusal (200 + status:false) is classified the same.
    harness.settings["check_balance_before_spend"] = False
    trusting = make_shop()
    with pytest.raises(InsufficientBalanceError):
        trusting.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-2", kind="points", points=Decimal(101)))
    assert harness.balances(member).points == Decimal(100)


def test_spend_lost_response_is_applied_once(harness, shop):
    member = seed(harness)
    harness.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    spent = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(200)))
    assert spent.points == Decimal(200)
    assert harness.balances(member).points == Decimal(300)
    assert harness.request_count("spend") == 1
    # the shop repeats the call: still once
    shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(200)))
    assert harness.balances(member).points == Decimal(300)


def test_spend_lost_before_applying_is_sent_again(harness, shop):
    member = seed(harness)
    harness.inject("spend", Fault(FaultKind.TIMEOUT_BEFORE))
    shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(200)))
    assert harness.balances(member).points == Decimal(300)
    assert harness.request_count("spend") == 2


def test_status_false_is_a_failure_not_success(harness, shop):
    member = seed(harness)
    harness.inject("spend", Fault(FaultKind.ERROR_BODY))
    with pytest.raises(EngineError):
        shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(10)))
    assert harness.balances(member).points == Decimal(500)


# -- export -----------------------------------------------------------------------------------


def test_export_accrues_once(harness, shop):
    member = seed(harness)
    harness.define_earn_rule(Decimal(2))
    report = shop.export_orders([order("o-1"), order("o-guest", customer=None)])
    assert report.status_of("o-1") is ExportStatus.ACCEPTED
    assert report.results[0].points_earned == Decimal(200)
    assert report.status_of("o-guest") is ExportStatus.REJECTED
    again = shop.export_orders([order("o-1")])
    assert again.status_of("o-1") is ExportStatus.DUPLICATE
    assert harness.orders_received() == ["o-1"]
    assert harness.balances(member).points == Decimal(700)


def test_export_lost_response_is_applied_once(harness, shop):
    member = seed(harness)
    harness.define_earn_rule(Decimal(1))
    harness.inject("export", Fault(FaultKind.TIMEOUT_AFTER))
    report = shop.export_orders([order("o-1"), order("o-2")])
    assert [r.status for r in report.results] == [ExportStatus.ACCEPTED, ExportStatus.ACCEPTED]
    assert sorted(harness.orders_received()) == ["o-1", "o-2"]
    assert harness.balances(member).points == Decimal(700)
    assert harness.request_count("export") == 2


def test_export_error_body_is_rejected_not_accepted(harness, shop):
    seed(harness)
    harness.inject("export", Fault(FaultKind.ERROR_BODY))
    report = shop.export_orders([order("o-1")])
    assert report.status_of("o-1") is ExportStatus.REJECTED
    assert harness.orders_received() == []


def test_export_engine_down_stays_queued(harness, shop):
    seed(harness)
    harness.inject("lookup", Fault(FaultKind.STATUS, status=503, times=10))
    report = shop.export_orders([order("o-1")])
    assert report.status_of("o-1") is ExportStatus.RETRY_LATER
    assert harness.orders_received() == []


# -- reverse ----------------------------------------------------------------------------------


def test_cancel_reverses_spend_voucher_and_accrual_once(harness, shop):
    member = seed(harness)
    harness.define_earn_rule(Decimal(1))
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    redeemed = shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member))
    spent = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(200)))
    placed = order("o-1", receipts=(redeemed.receipt, spent.receipt))
    shop.export_orders([placed])
    assert harness.balances(member).points == Decimal(400)

    result = shop.reverse(Reversal(order=placed, kind=ReversalKind.CANCEL))
    assert result.points_returned == Decimal(200) and result.points_clawed_back == Decimal(100)
    assert result.vouchers_reinstated == ("TENOFF",)
    assert harness.balances(member).points == Decimal(500)
    assert harness.voucher_redemptions("TENOFF") == 0

    harness.inject("reverse", Fault(FaultKind.STATUS, status=500, times=5))  # must not be needed again
    shop.reverse(Reversal(order=placed, kind=ReversalKind.CANCEL))
    assert harness.balances(member).points == Decimal(500)


def test_cancel_lost_response_is_applied_once(harness, shop):
    member = seed(harness)
    spent = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(200)))
    placed = order("o-1", receipts=(spent.receipt,))
    harness.inject("reverse", Fault(FaultKind.TIMEOUT_AFTER))
    shop.reverse(Reversal(order=placed, kind=ReversalKind.CANCEL, exported=False))
    assert harness.balances(member).points == Decimal(500)
    assert harness.request_count("reverse") == 1


# -- auth -------------------------------------------------------------------------------------


def test_expired_token_is_refreshed_once(harness, shop):
    member = seed(harness)
    shop.identify(membership=member)
    assert harness.request_count("token") == 1
    harness.expire_token()
    assert shop.identify(membership=member).id == member
    assert harness.request_count("token") == 2


def test_refused_refresh_does_not_loop(harness, shop):
    member = seed(harness)
    harness.fake.authorize = lambda request, route: route == "token"  # the org rejects every token
    with pytest.raises(AuthFailedError):
        shop.identify(membership=member)
    assert harness.request_count("token") == 2
    assert harness.request_count("identify") == 2


def test_bad_credentials_are_auth_failed(harness, make_shop):
    harness.settings["client_secret"] = "wrong-consumer-secret"
    seed(harness)
    shop = make_shop()
    with pytest.raises(AuthFailedError) as info:
        shop.identify(membership="M000001")
    assert "wrong-consumer-secret" not in str(info.value)


# -- broken adapters really are broken (the contract suite's self-test relies on it) ----------


def test_broken_adapters_misbehave(harness, make_shop):
    member = seed(harness)
    broken = harness.broken_adapters()
    shop = make_shop(adapter=broken["burns_twice_on_retry"]())
    harness.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(100)))
    assert harness.balances(member).points == Decimal(300)  # burned twice

    shop = make_shop(adapter=broken["drops_idempotency_key"]())
    shop.export_orders([order("o-9")])
    shop.export_orders([order("o-9")])
    assert harness.orders_received().count("o-9") == 2

    shop = make_shop(adapter=broken["swallows_error_body"]())
    harness.inject("spend", Fault(FaultKind.ERROR_BODY))
    shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-3", kind="points", points=Decimal(10)))
    assert harness.balances(member).points == Decimal(300)  # "succeeded" without a debit


# -- redeem replays, ownership, not-applied answers ---------------------------------------------


def test_redeem_same_key_twice_burns_once(harness, shop):
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    request = VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member)
    shop.redeem_voucher(request)
    again = shop.redeem_voucher(request)
    assert again.receipt.idempotency_key == request.key
    assert harness.voucher_redemptions("TENOFF") == 1


def test_redeem_replay_refused_by_the_org_fails_closed(harness, shop):
    """If the org answers a repeated Redeem with an error, the repeat fails; nothing burns twice."""
    member = seed(harness)
    harness.fake.replay_redeem_with_key = False
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    request = VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member)
    shop.redeem_voucher(request)
    with pytest.raises(VoucherAlreadyRedeemedError):
        shop.redeem_voucher(request)
    assert harness.voucher_redemptions("TENOFF") == 1


def test_voucher_of_another_member_is_not_owned(harness, shop):
    owner = seed(harness)
    other = harness.create_customer(identifiers={"membership": "M000002"}).id
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=owner))
    with pytest.raises(VoucherNotOwnedError):
        shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=other))
    assert harness.request_count("redeem") == 0


def test_503_on_a_write_is_sent_again_because_nothing_was_applied(harness, shop):
    member = seed(harness)
    harness.inject("spend", Fault(FaultKind.STATUS, status=503))
    shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(50)))
    assert harness.balances(member).points == Decimal(450)
    assert harness.request_count("spend") == 2


def test_500_on_a_write_is_reconciled_not_resent_blind(harness, shop):
    member = seed(harness)
    harness.inject("spend", Fault(FaultKind.STATUS, status=500))  # not applied, outcome unknown to us
    shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(50)))
    assert harness.balances(member).points == Decimal(450)  # looked up, absent, sent once more


def test_old_api_version_redeems_without_actions(harness, make_shop):
    member = seed(harness)
    harness.settings.update(api_version="60.0", promotions_api="eligible_promotions")
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    harness.define_rule(RuleSpec(kind="order_percent", percent=Decimal(10), label="Ten"))
    shop = make_shop()
    shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member))
    assert harness.voucher_redemptions("TENOFF") == 1
    assert harness.request_count("redeem") == 1
    assert [r.body for r in harness.fake.requests if r.route == "redeem"] == [{}]  # no action before v62
    quote = shop.evaluate(basket(member))
    assert quote.discounts == () and [m.text for m in quote.messages] == ["Ten"]  # list only


def test_fake_served_over_real_http(harness):
    from loyaltykit import Loyalty, LoyaltySettings
    from loyaltykit.testing import serve
    from loyaltykit_salesforce.adapter import SalesforceAdapter

    member = seed(harness)
    with serve(harness.fake.handle) as served:
        adapter = SalesforceAdapter({**harness.settings, "my_domain_url": served.url})
        with Loyalty(LoyaltySettings(engine="salesforce"), adapter=adapter, load_entry_points=False) as shop:
            assert shop.identify(membership=member).id == member
            shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(5)))
    assert harness.balances(member).points == Decimal(495)
    raw = [r for r in harness.fake.requests if r.route == "spend"]
    assert raw[0].headers["authorization"].startswith("Bearer ")


def test_membership_number_stays_out_of_logs_and_reconcile_data_on_writes(harness, shop, caplog):
    """Member numbers are path segments of voucher and profile calls: scrubbed like identify's value."""
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    harness.inject("redeem", Fault(FaultKind.TIMEOUT_AFTER))
    harness.inject("wallet", Fault(FaultKind.DELAY, seconds=0))  # the pre-check list passes
    harness.inject("wallet", Fault(FaultKind.STATUS, status=500, times=10))
    with caplog.at_level("INFO"):
        with pytest.raises(OutcomeUnknownError) as info:
            shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member))
        shop.evaluate(basket(member))
    assert any("/members/" in record.getMessage() for record in caplog.records)
    assert member not in "\n".join(record.getMessage() for record in caplog.records)
    assert member not in repr(info.value.reconcile) + str(info.value)


# -- documented wire behaviour: money-moving fixes ---------------------------------------------


def test_partially_redeemable_voucher_sends_the_amount_and_keeps_the_rest(harness, shop):
    member = seed(harness)
    harness.fake.add_voucher(member=member, code="GIFT", type="FixedValue", face_value=Decimal("150"), partial=True)
    result = shop.redeem_voucher(VoucherRedemption(code="GIFT", order_ref="o-1", customer_id=member, basket=basket(member)))
    assert result.discount == eur("100.00")  # the basket's 100, not the voucher's 150
    sent = [r.body for r in harness.fake.requests if r.route == "redeem"]
    assert sent[0]["reservedValue"] == Decimal("100.00") and sent[1]["redeemAmount"] == Decimal("100.00")
    voucher = next(v for v in harness.fake.vouchers if v.code == "GIFT")
    assert voucher.remaining == Decimal("50.00") and voucher.live_status() == "Issued"


def test_whole_voucher_sends_no_amount(harness, shop):
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member, basket=basket(member)))
    assert all("redeemAmount" not in r.body and "reservedValue" not in r.body
               for r in harness.fake.requests if r.route == "redeem")


def test_retried_fixed_value_redemption_reports_the_recorded_value_as_a_replay(harness, shop):
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="TENOFF", kind="fixed", amount=eur("10.00"), owner_id=member))
    request = VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member, basket=basket(member))
    first = shop.redeem_voucher(request)
    again = shop.redeem_voucher(request)
    assert first.discount == again.discount == eur("10.00")
    assert again.receipt.replayed is True and first.receipt.replayed is False
    assert harness.voucher_redemptions("TENOFF") == 1


def test_retried_spend_with_another_amount_reports_what_the_engine_debited(harness, shop):
    member = seed(harness)
    first = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(100),
                                              idempotency_key="spend-1"))
    again = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(70),
                                              idempotency_key="spend-1"))
    assert first.points == again.points == Decimal(100)
    assert again.receipt.replayed is True
    assert harness.balances(member).points == Decimal(400)


def test_retried_cashback_spend_reports_the_recorded_amount(harness, shop):
    member = seed(harness)
    shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", amount=eur("5.00"), idempotency_key="cb-1"))
    again = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", amount=eur("7.00"), idempotency_key="cb-1"))
    assert again.amount == eur("5.00") and again.receipt.replayed is True


def test_reinstate_answered_expired_is_not_reported_as_reinstated(harness, shop):
    member = seed(harness)
    voucher = harness.fake.add_voucher(member=member, code="TENOFF", type="FixedValue", face_value=Decimal("10"))
    result = shop.redeem_voucher(VoucherRedemption(code="TENOFF", order_ref="o-1", customer_id=member, basket=basket(member)))
    voucher.expiration = datetime.now(UTC).date() - timedelta(days=1)  # expires before the cancel
    reversal = shop.reverse(Reversal(order=order("o-1", receipts=[result.receipt]), kind=ReversalKind.CANCEL,
                                     exported=False))
    assert reversal.vouchers_reinstated == ()


def test_write_without_the_success_marker_is_unknown_not_success(harness, shop):
    member = seed(harness)
    harness.fake.drop_success_marker("spend")
    with pytest.raises(OutcomeUnknownError) as info:
        shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(10),
                                          idempotency_key="k-1"))
    assert info.value.idempotency_key == "k-1"


def test_export_answer_without_status_stays_queued_and_is_found_next_time(harness, shop):
    seed(harness)
    harness.fake.drop_success_marker("export")
    report = shop.export_orders([order("o-1")])
    assert report.results[0].status is ExportStatus.RETRY_LATER
    report = shop.export_orders([order("o-1")])
    assert report.results[0].status is ExportStatus.DUPLICATE  # the org had it: never accrued twice
    assert harness.orders_received().count("o-1") == 1


def test_cancel_answer_without_is_success_is_unknown(harness, shop):
    seed(harness)
    shop.export_orders([order("o-1")])
    harness.fake.drop_success_marker("reverse")
    with pytest.raises(OutcomeUnknownError):
        shop.reverse(Reversal(order=order("o-1"), kind=ReversalKind.CANCEL))


def test_503_after_the_org_committed_is_looked_up_not_debited_twice(harness, shop):
    member = seed(harness)
    harness.fake.fail_after_commit("spend", 503)
    result = shop.spend_cashback(CashbackSpend(customer_id=member, order_ref="o-1", kind="points", points=Decimal(50)))
    assert result.points == Decimal(50)
    assert harness.balances(member).points == Decimal(450)
    assert harness.request_count("spend") == 1


def test_503_after_commit_on_export_accrues_once(harness, shop):
    seed(harness)
    harness.define_earn_rule(Decimal(1))
    harness.fake.fail_after_commit("export", 503)
    report = shop.export_orders([order("o-1")])
    assert report.results[0].status is ExportStatus.ACCEPTED
    assert harness.orders_received().count("o-1") == 1


def test_identify_by_email_sends_no_membership_number_in_a_request_line(harness, shop):
    member = seed(harness)
    assert shop.identify(email="ada@example.com").id == member
    lines = [str(r.path) for r in harness.fake.requests]
    profile = [r for r in harness.fake.requests if r.route == "identify"]
    assert profile and all(member not in p.path for p in profile)
    assert member not in " ".join(lines)


def test_export_burns_codes_used_in_a_store_and_sends_every_code(harness, shop):
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="STORE10", kind="fixed", amount=eur("10.00"), owner_id=member))
    harness.issue_voucher(VoucherSpec(code="WEB5", kind="fixed", amount=eur("5.00"), owner_id=member))
    online = shop.redeem_voucher(VoucherRedemption(code="WEB5", order_ref="o-1", customer_id=member, basket=basket(member)))
    placed = Order(ref="o-1", currency="EUR", lines=basket(member).lines, total=eur("85.00"), customer_id=member,
                   voucher_codes=("STORE10", "WEB5"), receipts=(online.receipt,))
    assert shop.export_orders([placed]).results[0].status is ExportStatus.ACCEPTED
    assert harness.voucher_redemptions("STORE10") == 1 and harness.voucher_redemptions("WEB5") == 1
    with pytest.raises(VoucherAlreadyRedeemedError):  # the store's voucher cannot be given again online
        shop.redeem_voucher(VoucherRedemption(code="STORE10", order_ref="o-2", customer_id=member))
    journal = next(r.body for r in harness.fake.requests if r.route == "export")["transactionJournals"][0]
    assert journal["VoucherCode"] == "STORE10,WEB5"
    shop.export_orders([placed])  # a re-export burns nothing again
    assert harness.voucher_redemptions("STORE10") == 1


def test_export_per_product_journals_sum_to_the_order_total(harness, make_shop):
    seed(harness)
    harness.settings.update(journal_product_field="ProductCode")
    shop = make_shop()
    report = shop.export_orders([order("o-1", total="99.99")])
    assert report.results[0].status is ExportStatus.ACCEPTED
    journals = next(r.body for r in harness.fake.requests if r.route == "export")["transactionJournals"]
    assert [j["ProductCode"] for j in journals] == ["SKU-1", "SKU-2"]
    assert sum(Decimal(j["TransactionAmount"]) for j in journals) == Decimal("99.99")
    assert len({j["ExternalTransactionNumber"] for j in journals}) == 2
    again = shop.export_orders([order("o-1", total="99.99")])
    assert again.results[0].status is ExportStatus.DUPLICATE


def test_partial_voucher_without_a_basket_is_refused_before_any_write(harness, shop):
    member = seed(harness)
    harness.fake.add_voucher(member=member, code="GIFT", type="FixedValue", face_value=Decimal("150"), partial=True)
    with pytest.raises(InvalidRequestError) as info:
        shop.redeem_voucher(VoucherRedemption(code="GIFT", order_ref="o-1", customer_id=member))
    assert info.value.field == "redemption.basket" and harness.request_count("redeem") == 0


def test_store_code_already_burned_or_unknown_does_not_block_the_export(harness, shop):
    member = seed(harness)
    harness.issue_voucher(VoucherSpec(code="STORE10", kind="fixed", amount=eur("10.00"), owner_id=member))
    shop.redeem_voucher(VoucherRedemption(code="STORE10", order_ref="pos-1", customer_id=member))  # burned by the store
    placed = Order(ref="o-7", currency="EUR", lines=basket(member).lines, total=eur("90.00"), customer_id=member,
                   voucher_codes=("STORE10", "NOT-A-VOUCHER"))
    assert shop.export_orders([placed]).results[0].status is ExportStatus.ACCEPTED
    assert harness.voucher_redemptions("STORE10") == 1


def test_partial_voucher_takes_what_is_due_after_promotions(harness, shop):
    member = seed(harness)
    harness.define_rule(RuleSpec(kind="order_percent", percent=Decimal(10), label="Ten"))
    harness.fake.add_voucher(member=member, code="GIFT", type="FixedValue", face_value=Decimal("150"), partial=True)
    quote = shop.evaluate(basket(member, codes=("GIFT",)))
    voucher_part = next(d for d in quote.discounts if d.code == "GIFT")
    result = shop.redeem_voucher(VoucherRedemption(code="GIFT", order_ref="o-1", customer_id=member, basket=basket(member)))
    assert voucher_part.amount == result.discount == eur("90.00")  # 100 less the 10 % promotion
    assert next(v for v in harness.fake.vouchers if v.code == "GIFT").remaining == Decimal("60.00")
