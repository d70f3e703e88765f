"""End to end through the sync and the async facade against the stateful SessionM fake."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from loyaltykit import Loyalty, LoyaltySettings, Money, Order
from loyaltykit.errors import (
    AuthFailedError,
    EngineError,
    InsufficientBalanceError,
    LoyaltyError,
    NotSupportedError,
    OutcomeUnknownError,
    VoucherAlreadyRedeemedError,
    VoucherNotOwnedError,
)
from loyaltykit.models import BalanceKind, Evaluation, ExportStatus, RedemptionStatus
from loyaltykit.testing import FACADE_KINDS, FacadeDriver, Fault, FaultKind, OfferSpec, VoucherSpec, serve
from loyaltykit_sessionm.adapter import SessionMAdapter
from loyaltykit_sessionm.settings import SessionMSettings
from loyaltykit_sessionm.testing import SessionMHarness

KIT = {"read_deadline": 2.0, "write_deadline": 3.0, "evaluate_budget": 1.0, "breaker_threshold": 1000}


class Shop(FacadeDriver):
    """One harness and one facade (sync or async), called the same way."""

    def __init__(self, kind: str, **settings: Any) -> None:
        # The adapter's own default quote mode (the contract harness opts into "eligible").
        settings.setdefault("evaluate_applies", SessionMSettings.model_fields["evaluate_applies"].default)
        self.h = SessionMHarness(**settings)
        super().__init__(self.h, kind, **KIT)

    # -- data ----------------------------------------------------------------------------------
    def customer(self, points: int = 0, **identifiers: str):
        identifiers = identifiers or {"email": "ann@example.com"}
        return self.h.create_customer(identifiers=identifiers, points=Decimal(points))

    def voucher(self, owner: str, code: str = "VOUCHER-1", amount: str = "5.00") -> str:
        return self.h.issue_voucher(VoucherSpec(code=code, amount=Money.of(amount, "USD"), owner_id=owner))

    def basket(self, customer_id: str | None, codes=(), ref: str = "b-1") -> dict:
        return {"id": ref, "currency": "USD", "customer_id": customer_id, "coupon_codes": list(codes),
                "lines": [{"id": "l1", "sku": "SKU-A", "quantity": 1, "unit_price": Money.of("50.00", "USD")},
                          {"id": "l2", "sku": "SKU-B", "quantity": 2, "unit_price": Money.of("25.00", "USD")}]}

    def order(self, customer_id: str | None, ref: str = "o-1", receipts=(), total: str = "100.00") -> Order:
        basket = self.basket(customer_id)
        return Order(ref=ref, currency="USD", customer_id=customer_id, lines=basket["lines"],
                     total=Money.of(total, "USD"), receipts=tuple(receipts))

    def requests(self, route: str) -> list:
        return [r for r in self.fake.requests if r.route == route]


@pytest.fixture(params=FACADE_KINDS)
def kind(request):
    return request.param


@pytest.fixture
def shop(kind):
    s = Shop(kind)
    yield s
    s.close()


# -- identify ------------------------------------------------------------------------------------


def test_identify_by_every_declared_kind(shop):
    seeded = shop.customer(email="ann@example.com", external_id="cust-1", phone="+1 555 123 4567", card="CARD1234")
    for kwargs in ({"email": "ANN@example.com"}, {"external_id": "cust-1"}, {"phone": "+15551234567"},
                   {"card": "CARD1234"}):
        customer = shop.identify(**kwargs)
        assert customer is not None and customer.id == seeded.id, kwargs
    assert shop.identify(email="nobody@example.com") is None
    assert shop.identify(external_id="nobody") is None
    # Core by external id carries the documented query; phone goes to the POS as digits only
    core = [r for r in shop.fake.requests if r.path.startswith("/priv/v1/apps/core-key/external/users/")]
    assert core and core[0].path.endswith("/cust-1")
    lookups = [r.body for r in shop.fake.requests if r.path == "/api/2.0/lookup"]
    assert {"phone": "15551234567"} in [b["request_payload"] for b in lookups]
    with pytest.raises(NotSupportedError):
        shop.identify(membership="M123")


def test_identify_not_found_on_http_404_is_none(kind):
    s = Shop(kind)
    s.fake.core_not_found_status = 404
    try:
        assert s.identify(external_id="ghost") is None
    finally:
        s.close()


def test_identify_email_through_pos_when_configured(kind):
    s = Shop(kind, identify_email_via="pos")
    try:
        seeded = s.customer(email="bob@example.com")
        assert s.identify(email="bob@example.com").id == seeded.id
        assert s.fake.request_count("identify") == 1 and s.requests("identify")[0].path == "/api/2.0/lookup"
    finally:
        s.close()


def test_core_error_body_on_http_200_is_not_a_customer(shop):
    shop.customer(external_id="cust-1")
    shop.h.inject("identify", Fault(FaultKind.ERROR_BODY))
    outcome = shop.attempt("identify", {"kind": "external_id", "value": "cust-1"})
    assert isinstance(outcome, LoyaltyError) and outcome.engine_code == "not_available"


def test_wrong_credentials_are_auth_failed_and_leak_nothing(kind):
    s = Shop(kind, pos_secret="not-the-secret")
    try:
        s.customer(phone="+15551234567")
        with pytest.raises(AuthFailedError) as info:
            s.identify(phone="+15551234567")
        assert "not-the-secret" not in str(info.value) and "5551234567" not in str(info.value)
    finally:
        s.close()


def test_each_family_gets_its_own_basic_credentials(shop):
    seeded = shop.customer(points=100, external_id="cust-1")
    shop.identify(external_id="cust-1")
    shop.evaluate(shop.basket(seeded.id))

    def user(family_path: str) -> str:
        request = next(r for r in shop.fake.requests if r.path.startswith(family_path))
        return base64.b64decode(request.headers["authorization"].split()[1]).decode().split(":")[0]

    assert user("/priv/") == "core-key" and user("/offers/") == "connect-key" and user("/api/2.0/") == "pos-key"
    connect = next(r for r in shop.fake.requests if r.path.startswith("/incentives/"))
    assert connect.body["retailer_id"] == shop.h.settings["retailer_id"]


# -- evaluate ------------------------------------------------------------------------------------


def test_evaluate_quotes_what_redeem_will_burn_wallet_and_points(shop):
    seeded = shop.customer(points=250)
    code = shop.voucher(seeded.id, amount="5.00")
    offer = shop.h.issue_offer(seeded.id, OfferSpec(kind="percent_off_check", percent=Decimal(10), label="Ten"))
    item = shop.h.issue_offer(seeded.id, OfferSpec(kind="fixed_off_item", amount=Money.of("3.00", "USD"),
                                                   sku="SKU-B", label="Three off B"))
    before = shop.h.snapshot()
    evaluation = shop.evaluate(shop.basket(seeded.id, codes=[code, item, "UNKNOWN"]))
    assert shop.h.snapshot() == before  # a quote changes nothing
    assert evaluation.discount_total == Money.of("8.00", "USD")  # the named 5 + 3; the unnamed 10 % is not given
    line = next(d for d in evaluation.discounts if d.code == item)
    assert line.line_id == "l2"
    assert {o.id for o in evaluation.wallet} == {code, offer, item}
    assert evaluation.spendable[0].points == Decimal(250)
    assert [(c.code, c.status.value) for c in evaluation.codes] == [
        (code, "accepted"), (item, "accepted"), ("UNKNOWN", "rejected")]
    assert shop.h.voucher_redemptions(code) == 0


def test_evaluate_eligible_mode_is_an_explicit_opt_in(kind):
    s = Shop(kind, evaluate_applies="eligible")
    try:
        seeded = s.customer()
        s.voucher(seeded.id, amount="5.00")
        s.h.issue_offer(seeded.id, OfferSpec(kind="percent_off_check", percent=Decimal(10)))
        assert s.evaluate(s.basket(seeded.id)).discount_total == Money.of("15.00", "USD")
    finally:
        s.close()


def test_evaluate_codes_mode_quotes_only_named_offers(kind):
    s = Shop(kind, evaluate_applies="codes")
    try:
        seeded = s.customer()
        code = s.voucher(seeded.id, amount="5.00")
        s.h.issue_offer(seeded.id, OfferSpec(kind="percent_off_check", percent=Decimal(10)))
        assert s.evaluate(s.basket(seeded.id)).discounts == ()
        assert s.evaluate(s.basket(seeded.id, codes=[code], ref="b-2")).discount_total == Money.of(5, "USD")
    finally:
        s.close()


def test_evaluate_guest_basket_calls_nothing(shop):
    evaluation = shop.evaluate(shop.basket(None, codes=["ANY"]))
    assert evaluation.codes[0].status.value == "rejected" and not evaluation.degraded
    assert shop.fake.requests == []


@pytest.mark.parametrize("route", ["evaluate", "wallet", "lookup"])
def test_evaluate_error_body_on_any_family_is_detected_and_fails_open(shop, route):
    seeded = shop.customer(points=10)
    shop.h.issue_offer(seeded.id, OfferSpec(kind="percent_off_check", percent=Decimal(10)))
    shop.h.inject(route, Fault(FaultKind.ERROR_BODY))
    outcome = shop.attempt("evaluate", shop.basket(seeded.id))
    # The 200-with-error body is recognised as a failure (never read as an empty quote), and a
    # quote fails open: full price, degraded, with the engine's refusal as the reason.
    assert isinstance(outcome, Evaluation), outcome
    assert outcome.degraded and outcome.degraded_reason.startswith("engine_error")
    assert outcome.discounts == ()


def test_other_currency_never_reaches_the_engine(shop):
    seeded = shop.customer()
    basket = shop.basket(seeded.id)
    basket["lines"] = [{"id": "l1", "sku": "A", "quantity": 1, "unit_price": Money.of(1, "EUR")}]
    basket["currency"] = "EUR"
    with pytest.raises(LoyaltyError) as info:
        shop.evaluate(basket)
    assert info.value.code == "currency_mismatch" and shop.fake.requests == []


# -- redeem (POS lock), export, cancel -----------------------------------------------------------


def redeem(shop: Shop, code: str, customer_id: str | None, order_ref: str = "o-1"):
    return shop.redeem_voucher({"code": code, "order_ref": order_ref, "customer_id": customer_id,
                                "basket": shop.basket(customer_id)})


def test_lock_then_send_transaction_redeems_and_earns(shop):
    seeded = shop.customer(points=0)
    shop.h.define_earn_rule(Decimal(1))
    code = shop.voucher(seeded.id)
    result = redeem(shop, code, seeded.id)
    assert result.status is RedemptionStatus.RESERVED and result.discount == Money.of("5.00", "USD")
    assert shop.fake.user_offers[code].status == "LOCKED"
    report = shop.export_orders([shop.order(seeded.id, receipts=[result.receipt], total="95.00")])
    assert report.results[0].status is ExportStatus.ACCEPTED
    assert shop.fake.user_offers[code].status == "REDEEMED"
    sent = shop.requests("export")[0].body
    assert sent["request_payload"]["discounts"][0]["reference_id"] == code
    assert sent["request_payload"]["payments"][0]["user_id"] == seeded.id
    assert shop.h.balances(seeded.id).points == Decimal(95)
    # a second order cannot take the redeemed offer
    assert isinstance(shop.attempt("redeem_voucher", {"code": code, "order_ref": "o-2", "customer_id": seeded.id}),
                      VoucherAlreadyRedeemedError)


def test_lock_lost_response_is_replayed_not_reapplied(shop):
    seeded = shop.customer()
    code = shop.voucher(seeded.id)
    shop.h.inject("redeem", Fault(FaultKind.TIMEOUT_AFTER))
    result = redeem(shop, code, seeded.id)
    assert result.status is RedemptionStatus.RESERVED
    sent = shop.requests("redeem")
    assert len(sent) == 2 and sent[0].body["request_id"] == sent[1].body["request_id"]
    assert shop.h.voucher_redemptions(code) == 1
    assert redeem(shop, code, seeded.id).receipt == result.receipt  # the same call again replays


def test_locking_another_members_offer_is_refused_and_released(shop):
    owner = shop.customer(email="owner@example.com")
    thief = shop.customer(email="thief@example.com")
    code = shop.voucher(owner.id)
    with pytest.raises(VoucherNotOwnedError):
        redeem(shop, code, thief.id)
    assert shop.fake.user_offers[code].status == "ISSUED" and shop.h.voucher_redemptions(code) == 0


def test_pos_error_body_on_lock_is_an_error_and_locks_nothing(shop):
    seeded = shop.customer()
    code = shop.voucher(seeded.id)
    shop.h.inject("redeem", Fault(FaultKind.ERROR_BODY))
    with pytest.raises(EngineError):
        redeem(shop, code, seeded.id)
    assert shop.h.voucher_redemptions(code) == 0


def test_cancel_before_export_unlocks_and_returns_points(shop):
    seeded = shop.customer(points=100)
    code = shop.voucher(seeded.id)
    redeemed = redeem(shop, code, seeded.id)
    spent = shop.spend_cashback({"customer_id": seeded.id, "order_ref": "o-1", "kind": "points", "points": 40})
    order = shop.order(seeded.id, receipts=[redeemed.receipt, spent.receipt])
    result = shop.reverse({"order": order, "kind": "cancel", "exported": False})
    assert result.vouchers_reinstated == (code,) and result.points_returned == Decimal(40)
    assert shop.fake.user_offers[code].status == "ISSUED" and shop.h.balances(seeded.id).points == Decimal(100)
    assert shop.requests("release")[0].path == "/api/2.0/unlock"
    again = shop.reverse({"order": order, "kind": "cancel", "exported": False})
    assert again.points_returned == Decimal(40) and shop.h.balances(seeded.id).points == Decimal(100)


def test_cancel_after_export_reinstates_and_voids(shop):
    seeded = shop.customer(points=0)
    shop.h.define_earn_rule(Decimal(1))
    code = shop.voucher(seeded.id)
    redeemed = redeem(shop, code, seeded.id)
    order = shop.order(seeded.id, receipts=[redeemed.receipt], total="95.00")
    shop.export_orders([order])
    assert shop.h.balances(seeded.id).points == Decimal(95)
    shop.reverse({"order": order, "kind": "cancel"})
    assert shop.fake.user_offers[code].status == "ISSUED"
    assert shop.h.balances(seeded.id).points == Decimal(0)
    assert shop.requests("reverse")[-1].body["request_payload"]["is_voided"] is True


def test_refunds_are_not_supported(shop):
    seeded = shop.customer()
    with pytest.raises(NotSupportedError):
        shop.reverse({"order": shop.order(seeded.id), "kind": "refund"})
    assert shop.fake.requests == []


def test_default_settings_refuse_what_they_cannot_do_before_any_write(kind):
    s = Shop(kind, points_return="none", void_on_cancel=False)
    try:
        seeded = s.customer(points=100)
        code = s.voucher(seeded.id)
        redeemed = redeem(s, code, seeded.id)
        spent = s.spend_cashback({"customer_id": seeded.id, "order_ref": "o-1", "kind": "points", "points": 40})
        before = len(s.fake.requests)
        order = s.order(seeded.id, receipts=[redeemed.receipt, spent.receipt])
        with pytest.raises(NotSupportedError, match="points_return"):
            s.reverse({"order": order, "kind": "cancel", "exported": False})
        with pytest.raises(NotSupportedError, match="void_on_cancel"):
            s.reverse({"order": s.order(seeded.id, ref="o-2"), "kind": "cancel"})
        assert len(s.fake.requests) == before and s.fake.user_offers[code].status == "LOCKED"
    finally:
        s.close()


def test_redeem_mode_burns_now_and_reinstates_on_cancel(kind):
    s = Shop(kind, redeem_mode="redeem")
    try:
        assert not s.facade.capabilities.reserve_voucher
        seeded = s.customer()
        code = s.voucher(seeded.id)
        result = redeem(s, code, seeded.id)
        assert result.status is RedemptionStatus.REDEEMED and s.fake.user_offers[code].status == "REDEEMED"
        s.reverse({"order": s.order(seeded.id, receipts=[result.receipt]), "kind": "cancel", "exported": False})
        assert s.fake.user_offers[code].status == "ISSUED"
        assert s.requests("reverse")[0].path == "/api/2.0/reinstate"
    finally:
        s.close()


# -- spend points --------------------------------------------------------------------------------


def spend(shop: Shop, customer_id: str, points: str, order_ref: str = "o-1"):
    return shop.spend_cashback({"customer_id": customer_id, "order_ref": order_ref, "kind": "points",
                                "points": Decimal(points)})


def test_spend_lost_response_deducts_once(shop):
    seeded = shop.customer(points=100)
    shop.h.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    result = spend(shop, seeded.id, "12.5")
    assert result.points == Decimal("12.5") and result.remaining.points == Decimal("87.5")
    sent = shop.requests("spend")
    assert len(sent) == 2
    ids = {r.body["spend_details"][0]["idempotency_id"] for r in sent}
    assert len(ids) == 1
    assert shop.h.balances(seeded.id).points == Decimal("87.5")
    spend(shop, seeded.id, "12.5")  # the same spend again (another process, say) is de-duplicated
    assert shop.h.balances(seeded.id).points == Decimal("87.5")


def test_spend_more_than_the_balance_is_refused(shop):
    seeded = shop.customer(points=10)
    with pytest.raises(InsufficientBalanceError):
        spend(shop, seeded.id, "11")
    assert shop.h.balances(seeded.id).points == Decimal(10)


def test_connect_error_body_on_spend_is_an_error(shop):
    seeded = shop.customer(points=100)
    shop.h.inject("spend", Fault(FaultKind.ERROR_BODY))
    with pytest.raises(EngineError):
        spend(shop, seeded.id, "10")
    assert shop.h.balances(seeded.id).points == Decimal(100)


def test_cashback_is_not_supported(shop):
    seeded = shop.customer()
    with pytest.raises(NotSupportedError):
        shop.spend_cashback({"customer_id": seeded.id, "order_ref": "o", "amount": Money.of(1, "USD")})
    assert shop.h.request_count() == 0


# -- export --------------------------------------------------------------------------------------


def test_send_transaction_lost_response_records_once(shop):
    seeded = shop.customer()
    shop.h.inject("export", Fault(FaultKind.TIMEOUT_AFTER))
    report = shop.export_orders([shop.order(seeded.id)])
    assert report.results[0].status is ExportStatus.ACCEPTED
    assert shop.h.orders_received() == ["o-1"]
    shop.export_orders([shop.order(seeded.id)])  # re-export from an outbox replays
    assert shop.h.orders_received() == ["o-1"]
    ids = {r.body["request_id"] for r in shop.requests("export")}
    assert len(ids) == 1 and len(shop.requests("export")) == 3


def test_pos_error_body_on_export_is_not_accepted_and_the_batch_goes_on(shop):
    seeded = shop.customer()
    shop.h.inject("export", Fault(FaultKind.ERROR_BODY))
    report = shop.export_orders([shop.order(seeded.id, ref="o-1"), shop.order(seeded.id, ref="o-2")])
    assert [r.status for r in report.results] == [ExportStatus.REJECTED, ExportStatus.ACCEPTED]
    assert shop.h.orders_received() == ["o-2"]


def test_unknown_customer_order_is_rejected(shop):
    report = shop.export_orders([shop.order("ghost-user")])
    assert report.results[0].status is ExportStatus.REJECTED and report.results[0].error_code == "customer_not_found"
    assert shop.h.orders_received() == []


def test_anonymous_order_is_sent_without_a_user(shop):
    shop.export_orders([shop.order(None)])
    payment = shop.requests("export")[0].body["request_payload"]["payments"][0]
    assert "user_id" not in payment and shop.h.orders_received() == ["o-1"]


# -- points return by deposit (unkeyed) ----------------------------------------------------------


def test_deposit_return_lost_response_is_outcome_unknown(kind):
    s = Shop(kind, points_return="deposit", points_return_source_id="returns")
    try:
        seeded = s.customer(points=100)
        spent = spend(s, seeded.id, "30")
        order = s.order(seeded.id, receipts=[spent.receipt])
        s.h.inject("reverse", Fault(FaultKind.TIMEOUT_AFTER))
        with pytest.raises(OutcomeUnknownError):
            s.reverse({"order": order, "kind": "cancel", "exported": False})
        assert len(s.requests("reverse")) == 1  # never re-posted blindly
        assert s.requests("reverse")[0].body["deposit_details"][0]["point_source_id"] == "returns"
    finally:
        s.close()


# -- serving the fake over HTTP ------------------------------------------------------------------


def test_fake_served_over_real_http():
    harness = SessionMHarness()
    seeded = harness.create_customer(identifiers={"external_id": "cust-9"}, points=Decimal(7))
    with serve(harness.fake.handle) as served:
        settings = {**harness.settings, "core_base_url": served.url, "connect_base_url": served.url,
                    "pos_base_url": served.url}
        with Loyalty(LoyaltySettings(**KIT), adapter=SessionMAdapter(settings), load_entry_points=False) as lk:
            customer = lk.identify(external_id="cust-9")
    assert customer.id == seeded.id and customer.points == Decimal(7)
    assert customer.balance(BalanceKind.POINTS).points == Decimal(7)


def test_adapter_repr_and_errors_hold_no_secrets():
    adapter = SessionMAdapter(SessionMHarness().settings)
    assert "secret" not in repr(adapter)
    text = json.dumps(adapter.settings.model_dump(mode="json"))
    assert "core-secret" not in text


# -- documented wire behaviour -------------------------------------------------------------------


def test_send_transaction_passes_the_lock_discount_back_intact(shop):
    seeded = shop.customer()
    code = shop.voucher(seeded.id)
    result = redeem(shop, code, seeded.id)
    locked = shop.fake.pos_replies[shop.requests("redeem")[0].body["request_id"]][1]["payload"]
    shop.export_orders([shop.order(seeded.id, receipts=[result.receipt], total="95.00")])
    sent = shop.requests("export")[0].body["request_payload"]["discounts"]
    assert len(sent) == 1
    assert sent[0] == locked  # the object as the lock returned it: pos_discount_id, display fields, line ids
    assert shop.fake.user_offers[code].status == "REDEEMED"


def test_a_lock_is_not_finalised_without_its_discount(shop):
    seeded = shop.customer()
    code = shop.voucher(seeded.id)
    redeem(shop, code, seeded.id)
    shop.export_orders([shop.order(seeded.id, total="95.00")])  # the receipt (and its Discount) left out
    assert shop.fake.user_offers[code].status == "LOCKED"


def test_ttl_code_lock_is_released_by_the_user_offer_id(kind):
    s = Shop(kind, offer_lookup_type="TTLCode")
    try:
        seeded = s.customer()
        offer = s.fake.add_offer(offer_type=s.fake.FIXED, name="Five", amount=Decimal(5))
        uo = s.fake.issue(seeded.id, offer.offer_id, ttl_code="483920")
        result = redeem(s, "483920", seeded.id)
        assert s.fake.user_offers[uo.user_offer_id].status == "LOCKED"
        s.reverse({"order": s.order(seeded.id, receipts=[result.receipt]), "kind": "cancel", "exported": False})
        release = s.requests("release")[0].body["request_payload"]
        assert release["user_offer_id"] == uo.user_offer_id and release["employee_id"]
        assert s.fake.user_offers[uo.user_offer_id].status == "ISSUED"
    finally:
        s.close()


def test_order_store_and_channel_are_sent(shop):
    seeded = shop.customer()
    order = shop.order(seeded.id).model_copy(update={"store_id": "store-42", "channel": "in_store"})
    shop.export_orders([order])
    sent = shop.requests("export")[0].body
    assert sent["store_id"] == "store-42" and sent["request_payload"]["channel"] == "in_store"
    assert shop.fake.transactions[-1].store_id == "store-42"
    shop.export_orders([shop.order(seeded.id, ref="o-2")])
    assert shop.requests("export")[1].body["store_id"] == shop.h.settings["store_id"]  # the setting's by default


def test_tax_is_sent_when_lines_carry_it_and_never_invented(shop):
    seeded = shop.customer()
    plain = shop.order(seeded.id)
    shop.export_orders([plain])
    assert "tax_total" not in shop.requests("export")[0].body["request_payload"]
    lines = [line.model_copy(update={"attributes": {"tax": "8.33"}}) for line in plain.lines]
    shop.export_orders([plain.model_copy(update={"ref": "o-2", "lines": tuple(lines)})])
    payload = shop.requests("export")[1].body["request_payload"]
    assert payload["tax_total"] == Decimal("16.66") and payload["items"][0]["tax_included"] == Decimal("8.33")


def test_core_not_available_is_not_an_outage(shop):
    shop.customer(external_id="cust-1")
    shop.h.inject("identify", Fault(FaultKind.ERROR_BODY))  # {"code": "not_available"}
    outcome = shop.attempt("identify", {"kind": "external_id", "value": "cust-1"})
    assert outcome.code == "engine_error" and outcome.retryable is False


def test_bare_core_404_on_identify_is_none(kind):
    s = Shop(kind)
    try:
        s.fake.core_not_found_status, s.fake.core_not_found_body = 404, False
        assert s.identify(external_id="ghost") is None
    finally:
        s.close()


def test_wallet_pages_past_a_full_page(kind):
    s = Shop(kind, wallet_page_size=100)  # the same loop as the default 1000, with a smaller wallet
    try:
        seeded = s.customer()
        offer = s.fake.add_offer(offer_type=s.fake.FIXED, name="One", amount=Decimal(1))
        for _ in range(203):
            s.fake.issue(seeded.id, offer.offer_id)
        evaluation = s.evaluate(s.basket(seeded.id))
        assert not evaluation.degraded and len(evaluation.wallet) == 203
        assert [r.body["skip"] for r in s.requests("wallet")] == [0, 100, 200]
    finally:
        s.close()


def test_per_item_spend_failure_is_typed_from_error_response(shop):
    seeded = shop.customer(points=10)
    with pytest.raises(InsufficientBalanceError) as info:
        shop.spend_cashback({"customer_id": seeded.id, "order_ref": "o-1", "kind": "points", "points": 50})
    assert "{" not in (info.value.engine_message or "")  # fields read, not a dict's repr
    assert shop.h.balances(seeded.id).points == Decimal(10)


def test_half_applied_cancel_is_outcome_unknown_and_the_retry_finishes_once(kind):
    s = Shop(kind)
    try:
        seeded = s.customer(points=100)
        code = s.voucher(seeded.id)
        redeemed = redeem(s, code, seeded.id)
        spent = s.spend_cashback({"customer_id": seeded.id, "order_ref": "o-1", "kind": "points", "points": 40})
        order = s.order(seeded.id, receipts=[redeemed.receipt, spent.receipt])
        s.h.inject("reverse", Fault(FaultKind.STATUS, status=503, times=20))  # the points return fails
        with pytest.raises(OutcomeUnknownError) as info:
            s.reverse({"order": order, "kind": "cancel", "exported": False, "idempotency_key": "cancel-1"})
        assert info.value.idempotency_key == "cancel-1" and "unlock" in str(info.value)
        assert code not in str(info.value) and code not in repr(info.value.reconcile)
        assert s.fake.user_offers[code].status == "ISSUED"  # the unlock was applied
        s.fake.clear_faults()
        result = s.reverse({"order": order, "kind": "cancel", "exported": False, "idempotency_key": "cancel-1"})
        assert result.points_returned == Decimal(40) and s.h.balances(seeded.id).points == Decimal(100)
        s.reverse({"order": order, "kind": "cancel", "exported": False, "idempotency_key": "cancel-1"})
        assert s.h.balances(seeded.id).points == Decimal(100)  # exactly once
    finally:
        s.close()


def test_refund_as_a_return_transaction_when_enabled(kind):
    s = Shop(kind, refunds=True)
    try:
        seeded = s.customer()
        order = s.order(seeded.id, total="90.00")
        s.export_orders([order])
        refund = {"order": order, "kind": "refund", "lines": [{"line_id": "l2", "quantity": 1}], "reference": "r1"}
        s.reverse(refund)
        s.reverse(refund)  # the same refund again replays
        returns = [t for t in s.fake.transactions if t.from_transaction_id == "o-1"]
        assert len(returns) == 1 and returns[0].total == Decimal("-22.50")  # 25 of 100, of the 90 paid
        payload = s.requests("reverse")[0].body["request_payload"]
        assert payload["items"] == [{"line_id": "l2", "item_id": "SKU-B", "quantity": Decimal(-1),
                                     "unit_price": Decimal("25.00"), "subtotal": Decimal("-25.00")}]
    finally:
        s.close()
