"""The points catalog paid in points: the quote lists points-priced lines and their cost; such a line
earns nothing; an order whose points lines were not paid in points is refused at export."""

from __future__ import annotations

from decimal import Decimal

from loyaltykit import ExportStatus, Order
from loyaltykit_local.testing import basket, eur, line

PROGRAM = """
currency = "EUR"

[points]
per_currency_unit = 1

[[products]]
sku = "MUG"
points = 10          # a fixed earn per unit, which a mug bought with points must not earn

[[catalog]]
sku = "MUG"
name = "Club mug"
points_price = 250
"""


def _order(ref: str, customer_id: str | None) -> Order:
    lines = (line("1", "BEANS", "20.00"), line("2", "MUG", "0.00", 2))
    return Order(ref=ref, currency="EUR", lines=lines, total=eur("20.00"), customer_id=customer_id)


def test_the_quote_lists_points_priced_lines_and_their_cost(make_shop):
    shop = make_shop(PROGRAM)
    member = shop.customer(points=1000)
    quote = shop.loyalty.evaluate(basket(line("1", "BEANS", "20.00"), line("2", "MUG", "0.00", 2),
                                         customer_id=member))
    effect = next(e for e in quote.unmapped if e.type == "points_priced_lines")
    assert effect.raw == {"lines": [{"line_id": "2", "sku": "MUG", "quantity": "2", "points": 500}], "points_due": 500}
    assert quote.earn[0].points == Decimal(20)  # the beans earn; the mugs at 0.00 do not (not 20 more)
    paid_mug = shop.loyalty.evaluate(basket(line("2", "MUG", "12.00"), customer_id=member))
    assert not [e for e in paid_mug.unmapped if e.type == "points_priced_lines"]  # a mug sold for money
    assert paid_mug.earn[0].points == Decimal(10)


def test_an_order_with_unpaid_points_lines_is_refused_and_a_paid_one_accepted(make_shop):
    shop = make_shop(PROGRAM)
    member = shop.customer(points=1000)
    refused = shop.loyalty.export_orders([_order("o-1", member)]).results[0]
    assert refused.status is ExportStatus.REJECTED and refused.error_code == "insufficient_balance"
    assert "500 points" in refused.reason
    shop.loyalty.spend_cashback({"customer_id": member, "order_ref": "o-2", "kind": "points", "points": 499})
    assert shop.loyalty.export_orders([_order("o-2", member)]).results[0].status is ExportStatus.REJECTED
    shop.loyalty.spend_cashback({"customer_id": member, "order_ref": "o-3", "kind": "points", "points": 500})
    accepted = shop.loyalty.export_orders([_order("o-3", member)]).results[0]
    assert accepted.status is ExportStatus.ACCEPTED and accepted.points_earned == Decimal(20)
    assert shop.points(member) == 1000 - 499 - 500 + 20
    guest = shop.loyalty.export_orders([_order("o-4", None)]).results[0]
    assert guest.status is ExportStatus.REJECTED and "no member" in guest.reason
