"""The adapter's flows against the fake, on both facades: the POS walk-through, no double award or
double spend after a lost answer, concurrency, token life cycle, product sync, cancel."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from loyaltykit_crmcom.adapter import CrmcomAdapter
from loyaltykit_crmcom.testing import CrmcomHarness, harness_settings

from loyaltykit import (
    Basket,
    CashbackSpend,
    CustomerIdentifier,
    ExportStatus,
    IdentifierKind,
    Line,
    Loyalty,
    LoyaltySettings,
    Money,
    Order,
    Product,
    Reversal,
    ReversalKind,
    SpendResult,
)
from loyaltykit.errors import ConfigError, InvalidRequestError, OutcomeUnknownError
from loyaltykit.testing import Fault, FaultKind


def eur(value: str) -> Money:
    return Money.of(value, "EUR")


def lines() -> tuple[Line, ...]:
    return (Line(id="1", sku="COFFEE", quantity=2, unit_price=eur("15.00")),
            Line(id="2", sku="MUG", quantity=1, unit_price=eur("10.00")))


def basket(customer: str, ref: str = "B-1") -> Basket:
    return Basket(id=ref, currency="EUR", lines=lines(), customer_id=customer)


def order(customer: str, ref: str = "ORD-1") -> Order:
    return Order(ref=ref, currency="EUR", lines=lines(), total=eur("40.00"), customer_id=customer)


def member(harness: CrmcomHarness, cashback: str = "20.00") -> str:
    return harness.create_customer(identifiers={"card": "7712345678901234"}, cashback=eur(cashback)).id


def spend(customer: str, amount: str, ref: str = "ORD-1", with_basket: bool = True) -> CashbackSpend:
    return CashbackSpend(customer_id=customer, order_ref=ref, amount=eur(amount),
                         basket=basket(customer) if with_basket else None)


def test_pos_walk_through(harness, shop):
    """identify by card -> close the basket (award) -> spend -> amount due, as the README shows it."""
    harness.define_cashback_rule(Decimal(5))
    card = member(harness)
    customer = shop.identify(card=card)
    assert customer.id == card and customer.balances[0].money == eur("20.00")
    quote = shop.evaluate(basket(customer.id))
    assert quote.earn[0].money == eur("2.00") and quote.spendable[0].money == eur("20.00")
    placed = Order.from_evaluation("ORD-1", basket(customer.id), quote)
    closed = shop.export_orders([placed])
    assert closed.status_of("ORD-1") is ExportStatus.ACCEPTED
    assert harness.balances(card).cashback == eur("22.00")  # 5 % of 40.00 awarded
    paid = shop.spend_cashback(CashbackSpend(customer_id=customer.id, order_ref="ORD-1", amount=eur("12.50"),
                                             amount_due=placed.amount_due))
    placed = Order.from_evaluation("ORD-1", basket(customer.id), quote, receipts=[paid.receipt])
    assert placed.amount_due == eur("27.50")
    assert harness.balances(card).cashback == eur("9.50")


def test_spend_before_close_creates_the_purchase_and_export_does_not_award_twice(harness, shop):
    harness.define_cashback_rule(Decimal(10))
    card = member(harness)
    shop.spend_cashback(spend(card, "5.00"))
    assert harness.orders_received() == ["ORD-1"]
    assert harness.balances(card).cashback == eur("19.00")  # +4.00 awarded, -5.00 spent
    report = shop.export_orders([order(card)])
    assert report.status_of("ORD-1") is ExportStatus.DUPLICATE
    assert harness.orders_received() == ["ORD-1"] and harness.balances(card).cashback == eur("19.00")


def test_lost_answer_to_purchase_create_awards_once(harness, shop):
    harness.define_cashback_rule(Decimal(10))
    card = member(harness, "0.00")
    harness.inject("export", Fault(FaultKind.TIMEOUT_AFTER))
    report = shop.export_orders([order(card)])
    assert report.status_of("ORD-1") is ExportStatus.ACCEPTED  # found by reference, not re-sent
    again = shop.export_orders([order(card)])
    assert again.status_of("ORD-1") is ExportStatus.DUPLICATE
    assert harness.orders_received() == ["ORD-1"]
    assert harness.balances(card).cashback == eur("4.00")


def test_lost_answer_to_the_purchase_inside_a_spend_awards_and_spends_once(harness, shop):
    harness.define_cashback_rule(Decimal(10))
    card = member(harness)
    harness.inject("export", Fault(FaultKind.TIMEOUT_AFTER))
    result = shop.spend_cashback(spend(card, "5.00"))
    assert isinstance(result, SpendResult) and result.amount == eur("5.00")
    assert harness.orders_received() == ["ORD-1"]
    assert harness.balances(card).cashback == eur("19.00")


def test_lost_answer_to_spend_spends_once(harness, shop):
    card = member(harness)
    harness.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    first = shop.spend_cashback(spend(card, "5.00"))  # reconciled by reference
    assert first.amount == eur("5.00") and not first.receipt.replayed
    again = shop.spend_cashback(spend(card, "5.00"))
    assert again.receipt.replayed and again.receipt.engine_ref == first.receipt.engine_ref
    assert harness.balances(card).cashback == eur("15.00")
    assert len(harness.fake.spends) == 1


def test_spend_without_basket_or_purchase_names_the_field(harness, shop):
    card = member(harness)
    with pytest.raises(InvalidRequestError) as missing:
        shop.spend_cashback(spend(card, "5.00", with_basket=False))
    assert missing.value.field == "spend.basket" and harness.fake.spends == []


def test_same_spend_from_many_threads_spends_once(harness):
    card = member(harness)
    shop = Loyalty(LoyaltySettings(engine="crmcom"), adapter=harness.make_adapter(),
                   transport=harness.sync_transport(), load_entry_points=False)
    request = spend(card, "5.00")
    barrier = threading.Barrier(8)

    def one(_: int):
        barrier.wait()
        for _ in range(200):
            try:
                return shop.spend_cashback(request)
            except OutcomeUnknownError as exc:  # another call with the key is in flight: retry it
                if not exc.retryable:
                    return exc
                time.sleep(0.005)
        return None

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one, range(8)))
    shop.close()
    assert all(isinstance(o, SpendResult) and o.amount == eur("5.00") for o in outcomes), outcomes
    assert len(harness.fake.spends) == 1 and harness.balances(card).cashback == eur("15.00")


def test_token_is_refreshed_before_its_absolute_expiry(harness):
    clock = {"now": 0.0}
    adapter = harness.make_adapter()
    adapter.backend.auth.clock = lambda: clock["now"]
    card = member(harness)
    with Loyalty(LoyaltySettings(engine="crmcom"), adapter=adapter, transport=harness.sync_transport(),
                 load_entry_points=False) as shop:
        shop.identify(card=card)
        shop.identify(card=card)
        assert harness.request_count("token") == 1
        clock["now"] = 7200 - 299  # inside the refresh margin of the 2 h expiry
        shop.identify(card=card)
        assert harness.request_count("token") == 2


def test_expired_token_is_refreshed_once_and_released_on_close(harness):
    card = member(harness)
    shop = Loyalty(LoyaltySettings(engine="crmcom"), adapter=harness.make_adapter(),
                   transport=harness.sync_transport(), load_entry_points=False)
    shop.identify(card=card)
    harness.expire_token()
    assert shop.identify(card=card).id == card
    assert harness.request_count("token") == 2
    live = set(harness.fake.tokens)
    shop.close()
    assert live and harness.fake.released == list(live) and not harness.fake.tokens


def test_login_method_and_bare_basic_key(harness):
    harness.fake.users["pos"] = "s3cret"
    card = member(harness)
    for settings in ({"auth_method": "login", "username": "pos", "password": "s3cret", "organisation": "ORG"},
                     {"basic_with_colon": False}):
        adapter = CrmcomAdapter({**harness_settings(), **settings})
        with Loyalty(LoyaltySettings(engine="crmcom"), adapter=adapter, transport=harness.sync_transport(),
                     load_entry_points=False) as shop:
            assert shop.identify(card=card).id == card


def test_spend_mode_settings_are_checked():
    for mode in ("spend_request", "create_spend", "inside_create"):
        assert CrmcomAdapter({**harness_settings(), "spend_mode": mode}).settings.spend_mode == mode
    with pytest.raises(ConfigError, match="spend_mode"):
        CrmcomAdapter({**harness_settings(), "spend_mode": "auto_spend"})
    with pytest.raises(ConfigError, match="inside_create_spend_path"):
        CrmcomAdapter({**harness_settings(), "inside_create_spend_path": "spend_request..amount"})
    with pytest.raises(ConfigError, match="web_api_key"):
        CrmcomAdapter({"base_url": "https://x"})


def test_secrets_stay_out_of_reprs_and_errors(harness):
    adapter = harness.make_adapter()
    assert "0123456789ABCDEF" not in repr(adapter) and "0123456789ABCDEF" not in repr(adapter.settings)


def test_email_identifies_only_where_the_tenant_registers_it(harness):
    seeded = harness.create_customer(identifiers={"email": "ann@example.com"})
    adapter = CrmcomAdapter({**harness_settings(), "access_token_kinds": ["card", "email"]})
    assert adapter.capabilities.identify_by == {IdentifierKind.CARD, IdentifierKind.EMAIL}
    assert CrmcomAdapter(harness_settings()).capabilities.identify_by == {IdentifierKind.CARD}
    with Loyalty(LoyaltySettings(engine="crmcom"), adapter=adapter, transport=harness.sync_transport(),
                 load_entry_points=False) as shop:
        found = shop.identify(CustomerIdentifier.email("ann@example.com"))
        assert found is not None and found.id == "ann@example.com"
        assert found.balances[0].money == harness.balances(seeded.id).cashback


def test_default_product_is_reported_per_line(harness, shop):
    shop.sync_products([Product(sku="COFFEE", name="Coffee 1kg")])
    card = member(harness)
    report = shop.export_orders([order(card)])
    result = report.results[0]
    assert result.status is ExportStatus.ACCEPTED
    assert result.reason == "booked on the default product: MUG"


def test_product_sync_in_batches_of_1000(harness, shop):
    products = [Product(sku=f"P{i:05d}", category="coffee") for i in range(2500)]
    report = shop.sync_products(products)
    assert report.batches == 3 and len(report.synced) == 2500
    assert harness.request_count("products") == 3 and len(harness.fake.products) == 2500
    assert harness.fake.products["P00001"]["family_identifier"] == {"code": "coffee"}


def test_cancel_after_close_gives_back_the_spend_and_measures_the_clawback(harness, shop):
    harness.define_cashback_rule(Decimal(10))
    card = member(harness)
    paid = shop.spend_cashback(spend(card, "5.00"))
    placed = order(card).model_copy(update={"receipts": (paid.receipt,)})
    shop.export_orders([placed])
    assert harness.balances(card).cashback == eur("19.00")
    result = shop.reverse(Reversal(order=placed, kind=ReversalKind.CANCEL))
    assert result.cashback_returned == eur("5.00") and result.cashback_clawed_back == eur("4.00")
    assert harness.balances(card).cashback == eur("20.00")
    again = shop.reverse(Reversal(order=placed, kind=ReversalKind.CANCEL))
    assert again.cashback_returned is None and harness.balances(card).cashback == eur("20.00")


def test_evaluate_maps_the_preview(harness, shop):
    from loyaltykit.testing import RuleSpec

    harness.define_cashback_rule(Decimal("2.5"))
    harness.define_rule(RuleSpec(kind="order_fixed", amount=eur("4.00")))
    harness.fake.maximum_spend = Decimal("10.00")
    card = member(harness)
    quote = shop.evaluate(basket(card).model_copy(update={"coupon_codes": ("WELCOME",)}))
    assert quote.discount_total == eur("4.00") and quote.total == eur("36.00")  # instant spend
    assert quote.earn[0].money == eur("1.00")
    assert quote.spendable[0].money == eur("10.00")  # the per-transaction maximum
    limits = next(u for u in quote.unmapped if u.type == "spend_limits").raw
    assert limits["maximum_spend_amount_per_transaction"] == Decimal("10.00")
    assert limits["reduction_method"] == "FRONT_END_REDUCTION"
    assert quote.codes[0].status.value == "rejected" and quote.codes[0].reason == "not_supported"
    guest = shop.evaluate(Basket(id="G", currency="EUR", lines=lines()))
    assert guest.earn == () and harness.request_count("evaluate") == 1


def test_a_bad_error_pattern_is_a_config_error():
    with pytest.raises(ConfigError, match="error_patterns"):
        CrmcomAdapter({**harness_settings(), "error_patterns": {"oops": "no_such_code"}})


def test_a_cancelled_spend_is_not_replayed_as_paid(harness, shop):
    card = member(harness)
    paid = shop.spend_cashback(spend(card, "5.00"))
    placed = order(card).model_copy(update={"receipts": (paid.receipt,)})
    shop.reverse(Reversal(order=placed, kind=ReversalKind.CANCEL, exported=False))
    with pytest.raises(InvalidRequestError) as refused:
        shop.spend_cashback(spend(card, "5.00"))
    assert refused.value.field == "spend.idempotency_key"
    assert harness.balances(card).cashback == eur("20.00")


def test_an_unknown_customer_is_rejected_with_the_kit_code(harness, shop):
    report = shop.export_orders([order("7799999999999999")])
    assert report.results[0].status is ExportStatus.REJECTED
    assert report.results[0].error_code == "customer_not_found"


def test_a_write_that_never_arrived_is_sent_once_more(harness, shop):
    card = member(harness)
    harness.inject("spend", Fault(FaultKind.TIMEOUT_BEFORE))
    result = shop.spend_cashback(spend(card, "5.00"))
    assert result.amount == eur("5.00") and not result.receipt.replayed
    assert harness.request_count("spend") == 2 and len(harness.fake.spends) == 1
    assert harness.balances(card).cashback == eur("15.00")


def test_a_duplicate_reference_refusal_is_reconciled(harness, make_shop):
    """Another till created the purchase between our look-up and our create: the engine's conflict
    sends us to the look-up, which finds it; nothing is created twice."""
    card = member(harness)
    original = harness.fake.handle
    raced = []

    def race(request):
        if request.url.path.endswith("purchases/create") and not harness.fake.purchases:
            raced.append(original(request))  # the other till's create lands first
        return original(request)

    harness.fake.handle = race  # type: ignore[method-assign]
    shop = make_shop()
    report = shop.export_orders([order(card)])
    assert raced and harness.request_count("export") == 2  # ours was refused as a duplicate
    assert report.status_of("ORD-1") is ExportStatus.ACCEPTED
    assert harness.orders_received() == ["ORD-1"]


def test_a_lost_product_sync_answer_is_retried(harness, shop):
    harness.inject("products", Fault(FaultKind.TIMEOUT_AFTER))
    report = shop.sync_products([Product(sku="COFFEE"), Product(sku="MUG")])
    assert report.synced == ("COFFEE", "MUG") and harness.request_count("products") == 2
    assert sorted(harness.products_received()) == ["COFFEE", "MUG"]


def test_no_card_number_or_token_reaches_a_log_line_or_an_error(harness, shop, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    card = member(harness)
    shop.identify(card=card)
    token = next(iter(harness.fake.tokens))
    harness.inject("spend", Fault(FaultKind.ERROR_BODY))
    with pytest.raises(Exception) as failed:
        shop.spend_cashback(spend(card, "5.00"))
    assert "engine=crmcom" in caplog.text  # the engine calls were logged
    for text in (caplog.text, str(failed.value), repr(failed.value)):
        assert card not in text and token not in text and "0123456789ABCDEF" not in text


def test_a_spend_and_an_export_of_one_order_at_once_create_one_purchase(harness):
    """They hold different keys, so both may create the order's purchase: the engine refuses the
    second reference, and the reconcile finds the first one's purchase instead."""
    harness.define_cashback_rule(Decimal(10))
    card = member(harness)
    shop = Loyalty(LoyaltySettings(engine="crmcom"), adapter=harness.make_adapter(),
                   transport=harness.sync_transport(), load_entry_points=False)
    barrier = threading.Barrier(2)

    def export():
        barrier.wait()
        return shop.export_orders([order(card)])

    def pay():
        barrier.wait()
        return shop.spend_cashback(spend(card, "5.00"))

    with ThreadPoolExecutor(2) as pool:
        exported, paid = pool.submit(export), pool.submit(pay)
        report, result = exported.result(), paid.result()
    shop.close()
    assert report.status_of("ORD-1") in (ExportStatus.ACCEPTED, ExportStatus.DUPLICATE)
    assert result.amount == eur("5.00")
    assert harness.orders_received() == ["ORD-1"] and len(harness.fake.spends) == 1
    assert harness.balances(card).cashback == eur("19.00")  # +4.00 awarded once, -5.00 spent


def test_export_sends_each_line_at_what_it_cost_after_the_order_discounts(harness, shop):
    """The purchase carries the core's allocation (net paid per line), not list prices, so CRM.COM
    awards on what the shopper paid."""
    harness.define_cashback_rule(Decimal(10))
    card = member(harness, "0.00")
    discounted = Order(ref="ORD-D", currency="EUR", lines=lines(), total=eur("30.00"), customer_id=card)
    assert [a.net for a in discounted.allocations] == [eur("22.50"), eur("7.50")]
    shop.export_orders([discounted])
    sent = [line["total_amount"] for line in harness.fake.purchases[0].body["products_set"]]
    assert sent == [Decimal("22.50"), Decimal("7.50")]
    assert harness.balances(card).cashback == eur("3.00")  # 10 % of 30.00, not of 40.00


def test_the_amount_due_and_the_purchase_both_bound_a_spend(harness, shop):
    card = member(harness, "50.00")
    shop.export_orders([order(card)])
    before = len(harness.fake.requests)
    with pytest.raises(InvalidRequestError, match="amount due") as refused:  # the core's bound
        shop.spend_cashback(CashbackSpend(customer_id=card, order_ref="ORD-1", amount=eur("15.00"),
                                          amount_due=eur("12.00")))
    assert refused.value.field == "amount" and len(harness.fake.requests) == before
    # 45.00 due (shipping included) but the purchase the spend settles costs 40.00: the smaller wins.
    with pytest.raises(InvalidRequestError, match="amount due") as above:
        shop.spend_cashback(CashbackSpend(customer_id=card, order_ref="ORD-1", amount=eur("42.00"),
                                          amount_due=eur("45.00")))
    assert above.value.field == "spend.amount" and harness.fake.spends == []
