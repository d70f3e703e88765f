"""Every rule condition and action, stacking and priority, and earning — through the facade."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from loyaltykit import BalanceKind, DiscountTarget, Order, ProductQuery
from loyaltykit_local.testing import basket, eur, line

RULE = '[[rules]]\nid = "r"\nlabel = "the rule"\nwhen = {{ {when} }}\nthen = {{ {then} }}\n'
FIVE_OFF = 'action = "fixed_off_order", amount = 5'


def applies(shop, cart) -> bool:
    return any(d.engine_id == "r" for d in shop.loyalty.evaluate(cart).discounts)


# -- conditions ----------------------------------------------------------------------------------


def test_basket_amount_min_and_max(make_shop):
    shop = make_shop(RULE.format(when="basket_amount = { min = 20, max = 50 }", then=FIVE_OFF))
    assert not applies(shop, basket(line("1", "A", "19.99")))
    assert applies(shop, basket(line("1", "A", "20.00")))
    assert applies(shop, basket(line("1", "A", "25.00"), line("2", "B", "25.00")))
    assert not applies(shop, basket(line("1", "A", "50.01")))


def test_basket_amount_in_a_currency_without_an_amount_does_not_hold(make_shop):
    shop = make_shop('currencies = ["EUR", "USD"]\n' + RULE.format(when="basket_amount = { min = 1 }", then=FIVE_OFF))
    from loyaltykit import Basket, Line, Money

    usd = Basket(id="u", currency="USD", lines=[Line(id="1", sku="A", quantity=1, unit_price=Money.of(100, "USD"))])
    assert shop.loyalty.evaluate(usd).discounts == ()
    assert applies(shop, basket(line("1", "A", "100")))


def test_skus_any_with_minimum_quantity(make_shop):
    shop = make_shop(RULE.format(when='skus = { any = ["A", "B"], min_quantity = 3 }', then=FIVE_OFF))
    assert not applies(shop, basket(line("1", "A", "10", 2), line("2", "C", "10", 5)))
    assert applies(shop, basket(line("1", "A", "10", 2), line("2", "B", "10", 1)))


def test_skus_all_each_present(make_shop):
    shop = make_shop(RULE.format(when='skus = { all = ["A", "B"] }', then=FIVE_OFF))
    assert not applies(shop, basket(line("1", "A", "10", 4)))
    assert applies(shop, basket(line("1", "A", "10"), line("2", "B", "10")))


def test_categories_any_and_quantity(make_shop):
    shop = make_shop(RULE.format(when='categories = { any = ["coffee"], min_quantity = 2 }', then=FIVE_OFF))
    assert not applies(shop, basket(line("1", "A", "10", 1, "coffee"), line("2", "B", "10", 3, "tea")))
    assert applies(shop, basket(line("1", "A", "10", 1, "coffee"), line("2", "B", "10", 1, "coffee")))


def test_role_tier_and_segment(make_shop):
    shop = make_shop(RULE.format(when='role = ["partner"], tier = ["gold"], segment = ["vip", "staff"]', then=FIVE_OFF)
                     + '[[tiers]]\nname = "silver"\n[[tiers]]\nname = "gold"\nthreshold = 1000\n')
    everything = shop.customer(role="partner", tier="gold", segments=["staff"])
    wrong_role = shop.customer(role="customer", tier="gold", segments=["vip"])
    wrong_tier = shop.customer(role="partner", segments=["vip"])
    no_segment = shop.customer(role="partner", tier="gold")
    assert applies(shop, basket(line("1", "A", "10"), customer_id=everything))
    for other in (wrong_role, wrong_tier, no_segment, None):
        assert not applies(shop, basket(line("1", "A", "10"), customer_id=other))


def test_tier_is_earned_by_qualifying_points(make_shop):
    shop = make_shop(RULE.format(when='tier = ["gold"]', then=FIVE_OFF)
                     + '[[tiers]]\nname = "silver"\n[[tiers]]\nname = "gold"\nthreshold = 1000\n')
    customer = shop.customer(points=999)
    assert not applies(shop, basket(line("1", "A", "10"), customer_id=customer))
    shop.engine.credit(customer, points=1)
    assert shop.loyalty.identify(external_id="nobody") is None
    assert applies(shop, basket(line("1", "A", "10"), customer_id=customer))


def _export(shop, cart, ref):
    order = Order.from_evaluation(ref, cart, shop.loyalty.evaluate(cart))
    return shop.loyalty.export_orders([order]).results[0]


def test_first_order_true_and_false(make_shop):
    shop = make_shop(RULE.format(when="first_order = true", then=FIVE_OFF)
                     + RULE.replace('"r"', '"back"').format(when="first_order = false", then='action = "message", text = "welcome back"'))
    customer = shop.customer()
    cart = basket(line("1", "A", "10"), customer_id=customer)
    first = shop.loyalty.evaluate(cart)
    assert any(d.engine_id == "r" for d in first.discounts) and not first.messages
    assert not applies(shop, basket(line("1", "A", "10")))  # a guest's history is unknown
    assert _export(shop, cart, "O-1").status == "accepted"
    later = shop.loyalty.evaluate(cart)
    assert not any(d.engine_id == "r" for d in later.discounts)
    assert [m.text for m in later.messages] == ["welcome back"]


def test_not_previously_granted(make_shop):
    shop = make_shop(RULE.format(when="not_previously_granted = true", then='action = "free_gift", sku = "GIFT"'))
    customer = shop.customer()
    cart = basket(line("1", "A", "10"), customer_id=customer)
    assert [f.sku for f in shop.loyalty.evaluate(cart).free_items] == ["GIFT"]
    assert shop.loyalty.evaluate(cart).free_items  # evaluating grants nothing
    _export(shop, cart, "O-1")
    assert shop.loyalty.evaluate(cart).free_items == ()
    other = shop.customer()
    assert shop.loyalty.evaluate(basket(line("1", "A", "10"), customer_id=other)).free_items


def test_channel(make_shop):
    shop = make_shop(RULE.format(when='channel = ["web", "app"]', then=FIVE_OFF))
    assert applies(shop, basket(line("1", "A", "10"), channel="app"))
    assert not applies(shop, basket(line("1", "A", "10"), channel="store"))
    assert not applies(shop, basket(line("1", "A", "10")))


def test_date_window(make_shop, clock):
    shop = make_shop(RULE.format(when="valid_from = 2025-06-01T00:00:00Z, valid_until = 2025-07-01T00:00:00Z", then=FIVE_OFF))
    cart = basket(line("1", "A", "10"))
    clock.now = datetime(2025, 5, 31, 23, 59, tzinfo=UTC)
    assert not applies(shop, cart)
    clock.now = datetime(2025, 6, 1, tzinfo=UTC)
    assert applies(shop, cart)
    clock.now = datetime(2025, 7, 1, tzinfo=UTC)
    assert not applies(shop, cart)


def test_conditions_combine_with_and(make_shop):
    shop = make_shop(RULE.format(when='channel = ["web"], basket_amount = { min = 30 }', then=FIVE_OFF))
    assert not applies(shop, basket(line("1", "A", "40"), channel="store"))
    assert not applies(shop, basket(line("1", "A", "20"), channel="web"))
    assert applies(shop, basket(line("1", "A", "40"), channel="web"))


# -- actions ----------------------------------------------------------------------------------


def _only(shop, cart):
    quote = shop.loyalty.evaluate(cart)
    return quote, [d for d in quote.discounts if d.engine_id == "r"]


def test_percent_off_order(make_shop):
    quote, [discount] = _only(make_shop(RULE.format(when="", then='action = "percent_off_order", percent = 10')),
                              basket(line("1", "A", "33.33"), line("2", "B", "10")))
    assert discount.target is DiscountTarget.ORDER and discount.amount == eur("4.33") and discount.percent == 10
    assert quote.total == eur("39.00")


def test_fixed_off_order_never_below_zero(make_shop):
    quote, [discount] = _only(make_shop(RULE.format(when="", then='action = "fixed_off_order", amount = 50')),
                              basket(line("1", "A", "12.50")))
    assert discount.amount == eur("12.50") and quote.total == eur("0")


def test_percent_off_line_targets_skus_and_categories(make_shop):
    shop = make_shop(RULE.format(when="", then='action = "percent_off_line", percent = 20, skus = ["A"], categories = ["tea"]'))
    _quote, discounts = _only(shop, basket(line("1", "A", "10", 2), line("2", "B", "10", 1, "tea"), line("3", "C", "10")))
    assert {(d.line_id, d.amount.amount) for d in discounts} == {("1", Decimal("4.00")), ("2", Decimal("2.00"))}
    assert all(d.target is DiscountTarget.LINE for d in discounts)


def test_fixed_off_line_per_unit_capped_at_line(make_shop):
    shop = make_shop(RULE.format(when="", then='action = "fixed_off_line", amount = 3, skus = ["A", "B"]'))
    _, discounts = _only(shop, basket(line("1", "A", "10", 2), line("2", "B", "2", 1)))
    assert {(d.line_id, d.amount.amount) for d in discounts} == {("1", Decimal("6.00")), ("2", Decimal("2.00"))}


def test_special_price_only_when_lower(make_shop):
    shop = make_shop(RULE.format(when="", then='action = "special_price", sku = "A", price = 7.5'))
    _, [discount] = _only(shop, basket(line("1", "A", "10", 2)))
    assert discount.amount == eur("5.00") and discount.line_id == "1"
    _, none = _only(shop, basket(line("1", "A", "7")))
    assert none == []


def test_free_gift_line_and_free_shipping_and_message(make_shop):
    shop = make_shop(RULE.format(when="", then='action = "free_gift", sku = "MUG", quantity = 2, name = "A mug"')
                     + RULE.replace('"r"', '"ship"').format(when="", then='action = "free_shipping"')
                     + RULE.replace('"r"', '"msg"').format(when="", then='action = "message", text = "Thanks!"'))
    quote = shop.loyalty.evaluate(basket(line("1", "A", "10"), shipping="4.90"))
    [gift] = quote.free_items
    assert (gift.sku, gift.quantity, gift.label, gift.engine_id) == ("MUG", 2, "A mug", "r")
    assert quote.free_shipping
    assert quote.total == eur("10")  # the gift costs nothing; shipping is outside the total
    order = Order.from_evaluation("O-1", basket(line("1", "A", "10"), shipping="4.90"), quote)
    assert order.total == eur("10")  # free shipping: the order does not charge the 4.90
    assert [m.text for m in quote.messages] == ["Thanks!"]


def test_bonus_points_are_earned_on_export(make_shop):
    shop = make_shop('[points]\nper_currency_unit = 1\n' + RULE.format(when="", then='action = "bonus_points", points = 25'))
    customer = shop.customer()
    cart = basket(line("1", "A", "10"), customer_id=customer)
    quote = shop.loyalty.evaluate(cart)
    assert quote.points_to_earn == 35
    assert _export(shop, cart, "O-1").points_earned == 35
    assert shop.points(customer) == 35


def test_several_actions_in_one_rule(make_shop):
    shop = make_shop('[[rules]]\nid = "r"\nthen = [{ action = "percent_off_order", percent = 10 }, { action = "message", text = "10 % off" }]')
    quote = shop.loyalty.evaluate(basket(line("1", "A", "20")))
    assert quote.discount_total == eur("2.00") and [m.text for m in quote.messages] == ["10 % off"]


# -- stacking and priority -----------------------------------------------------------------------

STACK = """
[[rules]]
id = "low"
priority = 1
then = {{ action = "percent_off_order", percent = 50 }}

[[rules]]
id = "high"
priority = 10
stop = {stop}
then = {{ action = "fixed_off_order", amount = 10 }}

[[rules]]
id = "line"
priority = 5
then = {{ action = "percent_off_line", percent = 10 }}
"""


def test_higher_priority_first_and_everything_stacks(make_shop):
    quote = make_shop(STACK.format(stop="false")).loyalty.evaluate(basket(line("1", "A", "100")))
    assert [d.engine_id for d in quote.discounts] == ["high", "line", "low"]
    # 100 - 10 (order) ; line 10 % of 100 = 10 ; 50 % of what is left (100 - 10 - 10 = 80) = 40
    assert [d.amount.amount for d in quote.discounts] == [Decimal("10.00"), Decimal("10.00"), Decimal("40.00")]
    assert quote.total == eur("40")


def test_stop_ends_the_walk(make_shop):
    quote = make_shop(STACK.format(stop="true")).loyalty.evaluate(basket(line("1", "A", "100")))
    assert [d.engine_id for d in quote.discounts] == ["high"]


def test_hit_policy_first(make_shop):
    quote = make_shop('[promotions]\nhit_policy = "first"\n' + STACK.format(stop="false")).loyalty.evaluate(
        basket(line("1", "A", "100")))
    assert [d.engine_id for d in quote.discounts] == ["high"]


def test_equal_priority_keeps_file_order(make_shop):
    shop = make_shop('[[rules]]\nid = "b"\nthen = { action = "message", text = "b" }\n'
                     '[[rules]]\nid = "a"\nthen = { action = "message", text = "a" }\n')
    assert [m.text for m in shop.loyalty.evaluate(basket(line("1", "A", "1"))).messages] == ["b", "a"]


# -- earning ---------------------------------------------------------------------------------------

EARN = """
[points]
per_currency_unit = 1
[[tiers]]
name = "base"
[[tiers]]
name = "gold"
threshold = 100000
multiplier = 1.5
[[products]]
sku = "FIXED"
points = 7
[[products]]
sku = "RATED"
per_currency_unit = 3
[[categories]]
category = "coffee"
per_currency_unit = 2
[cashback]
earn_percent = 5
earn_min_order = 20
earn_max_per_order = 3
"""


def test_points_per_sku_category_and_currency_unit(make_shop):
    shop = make_shop(EARN)
    customer = shop.customer()
    cart = basket(line("1", "FIXED", "100", 2), line("2", "RATED", "10"), line("3", "X", "10", 1, "coffee"),
                  line("4", "Y", "10.99"), customer_id=customer)
    # 2*7 + 3*10 + 2*10 + floor-later 10.99
    assert shop.loyalty.evaluate(cart).earn[0].points == 14 + 30 + 20 + 10


def test_tier_multiplier(make_shop):
    shop = make_shop(EARN)
    gold = shop.customer(tier="gold")
    assert shop.loyalty.evaluate(basket(line("1", "Y", "10"), customer_id=gold)).earn[0].points == 15


def test_earn_on_the_discounted_amount(make_shop):
    shop = make_shop(EARN + RULE.format(when="", then='action = "percent_off_order", percent = 50'))
    customer = shop.customer()
    assert shop.loyalty.evaluate(basket(line("1", "Y", "10"), customer_id=customer)).earn[0].points == 5


def test_guests_earn_nothing(make_shop):
    quote = make_shop(EARN).loyalty.evaluate(basket(line("1", "Y", "50")))
    assert quote.earn == () and quote.points_to_earn == 0


def test_cashback_earn_min_and_max(make_shop):
    shop = make_shop(EARN)
    customer = shop.customer()

    def cashback(amount):
        earn = shop.loyalty.evaluate(basket(line("1", "Y", amount), customer_id=customer)).earn
        return next((e.money for e in earn if e.kind is BalanceKind.CASHBACK), eur(0))

    assert cashback("19.99") == eur(0)
    assert cashback("20") == eur("1.00")
    assert cashback("200") == eur("3")


# -- product pages -------------------------------------------------------------------------------


def test_price_products_for_a_customer(make_shop):
    shop = make_shop(EARN + '[[catalog]]\nsku = "MUG"\npoints_price = 300\n'
                     + RULE.format(when='segment = ["vip"]', then='action = "percent_off_line", percent = 10, skus = ["Y"]'))
    vip = shop.customer(segments=["vip"])
    query = ProductQuery(currency="EUR", customer_id=vip, products=[line("1", "Y", "20"), line("2", "MUG", "0")])
    priced = shop.loyalty.price_products(query)
    assert [p.sku for p in priced] == ["Y", "MUG"]
    assert priced[0].discounted_price == eur("18.00") and priced[0].points_to_earn == 18
    assert priced[0].labels == ("the rule",)
    assert priced[1].points_price == 300
    guest = shop.loyalty.price_products(query.model_copy(update={"customer_id": None}))
    assert guest[0].discounted_price == eur("20") and guest[0].points_to_earn == 0


def test_catalog_and_wallet_in_the_quote(make_shop):
    shop = make_shop('[[catalog]]\nsku = "MUG"\nname = "Mug"\npoints_price = 300\n'
                     '[[offers]]\nid = "T"\nkind = "fixed_off_item"\nsku = "A"\namount = 1\n')
    rich = shop.customer(points=300)
    poor = shop.customer(points=299)
    shop.engine.issue_offer(rich, "T", code="T-RICH")
    quote = shop.loyalty.evaluate(basket(line("1", "B", "5"), customer_id=rich))
    assert [(c.sku, c.affordable) for c in quote.catalog] == [("MUG", True)]
    [offer] = quote.wallet
    assert (offer.id, offer.kind, offer.applicable) == ("T-RICH", "fixed_off_item", False)  # no A in the basket
    assert shop.loyalty.evaluate(basket(line("1", "A", "5"), customer_id=rich)).wallet[0].applicable
    assert [c.affordable for c in shop.loyalty.evaluate(basket(line("1", "B", "5"), customer_id=poor)).catalog] == [False]


@pytest.mark.parametrize("currency", ["USD"])
def test_a_basket_in_a_currency_the_program_refuses(make_shop, currency):
    from loyaltykit import Basket, CurrencyMismatchError, Line, Money

    shop = make_shop("")
    with pytest.raises(CurrencyMismatchError):
        shop.loyalty.evaluate(Basket(id="u", currency=currency,
                                     lines=[Line(id="1", sku="A", quantity=1, unit_price=Money.of(1, currency))]))
