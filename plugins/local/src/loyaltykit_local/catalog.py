"""The points catalog paid in points: lines a shop sends at 0.00 for a product the program prices
in points.

* a quote names those lines and what they cost in ``Evaluation.points_lines`` (:func:`points_lines`);
* a points spend naming them (``CashbackSpend.line_ids``) must price them as the program does
  (:func:`spend_problem`); the core has checked it names exactly the quote's lines and their points;
* such a line earns nothing (see ``rules._line_points``);
* an order holding such lines is refused at export unless the member spent at least their points on
  that order (points burned in the ledger under the order's reference), whether or not the order
  carries the quote's ``points_lines``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from loyaltykit import CashbackSpend, PointsLine

from .rules import BasketView, CompiledProgram
from .store import Prepared

if TYPE_CHECKING:
    from .store import Connection

_POINTS_SPENT_ON_ORDER = Prepared("points_spent_on_order")


def is_points_priced(compiled: CompiledProgram, sku: str, unit_price: Decimal) -> bool:
    return unit_price == 0 and sku in compiled.catalog_price


def line_cost(compiled: CompiledProgram, sku: str, quantity: Decimal) -> int:
    """A line's cost in points: the unit points price x quantity, rounded up (weighed goods)."""
    return int((Decimal(compiled.catalog_price[sku]) * quantity).to_integral_value(rounding=ROUND_CEILING))


def points_lines(compiled: CompiledProgram, view: BasketView) -> tuple[PointsLine, ...]:
    """The basket's points-priced lines: catalog products sent at 0.00 (sold for money otherwise)."""
    return tuple(
        PointsLine(line_id=line.id, sku=line.sku, quantity=line.quantity,
                   points=Decimal(line_cost(compiled, line.sku, line.quantity)))
        for line in view.lines if is_points_priced(compiled, line.sku, line.unit_price.amount)
    )


def spend_problem(compiled: CompiledProgram, spend: CashbackSpend) -> tuple[str, str] | None:
    """(field, message) when a spend's points lines are not what the program charges for them."""
    if spend.basket is not None:
        expected = {p.line_id: p.points for p in points_lines(compiled, BasketView.of_basket(spend.basket))}
        given = {p.line_id: p.points for p in spend.points_lines}
        if given != expected:
            return "points_lines", "the basket's points-priced lines are not these (quote the basket again)"
        return None
    for index, entry in enumerate(spend.points_lines):
        if entry.sku is None:
            continue  # the core checked the sum against the quote
        if entry.sku not in compiled.catalog_price:
            return f"points_lines.{index}.sku", "not a product of the points catalog"
        cost = line_cost(compiled, entry.sku, entry.quantity)
        if entry.points != cost:
            return f"points_lines.{index}.points", f"the catalog prices this line at {cost} points"
    return None


def points_spent_on(conn: Connection, customer_id: str, order_ref: str) -> int:
    """Points the member spent on this order, net of any returned by a reversal."""
    spent = _POINTS_SPENT_ON_ORDER.run(conn, {"customer_id": customer_id, "order_ref": order_ref}).scalar_one()
    return -int(spent)


def unpaid_reason(compiled: CompiledProgram, conn: Connection, view: BasketView, customer_id: str | None) -> str | None:
    """Why an order with points-priced lines cannot be accepted (None: nothing to pay, or paid)."""
    lines = points_lines(compiled, view)
    if not lines:
        return None
    due = int(sum(p.points for p in lines))
    if customer_id is None:
        return f"the order has points-priced lines ({due} points) but no member to pay them"
    spent = points_spent_on(conn, customer_id, view.id)
    if spent < due:
        return f"the order's points-priced lines cost {due} points; {spent} were spent on it"
    return None
