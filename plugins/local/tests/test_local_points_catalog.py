"""The points catalog paid in points: the quote lists points-priced lines and their cost; such a line
earns nothing; an order whose points lines were not paid in points is refused at export."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from loyaltykit import CashbackSpend, ExportStatus, InvalidRequestError, Order, PointsLine, RefundLine, Reversal
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
    assert quote.points_lines == (PointsLine(line_id="2", sku="MUG", quantity=2, points=500),)
    assert (quote.points_due, quote.total, quote.unmapped) == (500, eur("20.00"), ())
    assert quote.earn[0].points == Decimal(20)  # the beans earn; the mugs at 0.00 do not (not 20 more)
    paid_mug = shop.loyalty.evaluate(basket(line("2", "MUG", "12.00"), customer_id=member))
    assert paid_mug.points_lines == ()  # a mug sold for money
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


def test_the_typed_spend_pays_the_lines_at_the_catalog_price_and_a_refund_gives_the_points_back(make_shop):
    shop = make_shop(PROGRAM)
    member = shop.customer(points=1000)
    cart = basket(line("1", "BEANS", "20.00"), line("2", "MUG", "0.00", 2), customer_id=member)
    quote = shop.loyalty.evaluate(cart)
    spend = CashbackSpend.for_points_lines(quote, customer_id=member, order_ref="o-5")
    # the engine prices the lines itself: a quote edited to cost fewer points is refused, unspent
    cheap = spend.model_copy(update={"points": Decimal(2), "points_lines": (
        PointsLine(line_id="2", sku="MUG", quantity=2, points=2),)})
    with pytest.raises(InvalidRequestError) as refused:
        shop.loyalty.spend_cashback(cheap)
    assert refused.value.field == "points_lines.0.points" and shop.points(member) == 1000
    with pytest.raises(InvalidRequestError):  # the basket shows the mugs cost more
        shop.loyalty.spend_cashback(cheap.model_copy(update={"points_lines": (
            PointsLine(line_id="2", points=2),), "basket": cart}))
    paid = shop.loyalty.spend_cashback(spend)
    assert (paid.receipt.line_ids, paid.value, paid.points) == (("2",), eur(0), Decimal(500))
    order = Order.from_evaluation("o-5", cart, quote, receipts=[paid.receipt])
    assert shop.loyalty.export_orders([order]).results[0].points_earned == Decimal(20)
    assert shop.points(member) == 1000 - 500 + 20
    back = shop.loyalty.reverse(Reversal(order=order, kind="refund", lines=(RefundLine(line_id="2", quantity=1),),
                                         reference="r-1"))
    assert (back.points_returned, back.refund.line_points, back.points_clawed_back) == (250, 250, 0)
    cancel = shop.loyalty.reverse(Reversal(order=order, kind="refund", reference="r-2"))
    assert (cancel.points_returned, cancel.points_clawed_back) == (250, 20)
    assert shop.points(member) == 1000


def test_the_same_points_lines_spend_from_many_threads_burns_once(make_shop):
    shop = make_shop(PROGRAM)
    member = shop.customer(points=1000)
    cart = basket(line("1", "BEANS", "20.00"), line("2", "MUG", "0.00", 2), customer_id=member)
    spend = CashbackSpend.for_points_lines(shop.loyalty.evaluate(cart), customer_id=member, order_ref="o-9")
    start = threading.Barrier(16)

    def once(_: int):
        start.wait()
        return shop.loyalty.spend_cashback(spend)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(once, range(16)))
    assert sum(not r.receipt.replayed for r in results) == 1 and {r.receipt.engine_ref for r in results} == {
        results[0].receipt.engine_ref}
    assert shop.points(member) == 500


CHILD = textwrap.dedent("""
    import json, sys
    from loyaltykit import CashbackSpend, Loyalty, LoyaltySettings
    from loyaltykit_local.adapter import LocalAdapter
    from loyaltykit_local.testing import basket, line

    url, member = sys.argv[1], sys.argv[2]
    adapter = LocalAdapter({"database_url": url, "busy_timeout_ms": 60000, "program_file": sys.argv[3]})
    with Loyalty(LoyaltySettings(engine="local"), adapter=adapter, load_entry_points=False) as lk:
        cart = basket(line("1", "BEANS", "20.00"), line("2", "MUG", "0.00", 2), customer_id=member)
        spend = CashbackSpend.for_points_lines(lk.evaluate(cart), customer_id=member, order_ref="o-race")
        paid = lk.spend_cashback(spend)
        print(json.dumps({"replayed": paid.receipt.replayed, "engine_ref": paid.receipt.engine_ref,
                          "points": str(paid.points)}))
""")


def test_the_same_points_lines_spend_from_several_processes_burns_once(make_shop, tmp_path):
    shop = make_shop(PROGRAM, name="points-race")
    member = shop.customer(points=1000)
    program = tmp_path / "program.toml"
    program.write_text(PROGRAM, encoding="utf-8")
    command = [sys.executable, "-c", CHILD, str(shop.store.url), member, str(program)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    outputs = [child.communicate(timeout=120) for child in children]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs if out.strip()]
    assert len(results) == 4, [err[-500:] for _, err in outputs]
    assert sum(not r["replayed"] for r in results) == 1, results
    assert len({r["engine_ref"] for r in results}) == 1 and {r["points"] for r in results} == {"500"}
    assert shop.points(member) == 500
