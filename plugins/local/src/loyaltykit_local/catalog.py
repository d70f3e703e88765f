"""The points catalog paid in points: lines a shop sends at 0.00 for a product the program prices
in points.

* a quote lists those lines and what they cost (:func:`points_priced_lines`, shown in the
  evaluation as the effect ``points_priced_lines`` until the core quote has a typed field for it);
* such a line earns nothing (see ``rules._line_points``);
* an order holding such lines is refused at export unless the member spent at least their points on
  that order (points burned in the ledger under the order's reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from loyaltykit import UnmappedEffect

from .rules import BasketView, CompiledProgram
from .store import ledger

EFFECT = "points_priced_lines"


@dataclass(frozen=True)
class PointsLine:
    line_id: str
    sku: str
    quantity: Decimal
    points: int  # the line's cost in points (unit points price x quantity, rounded up)


def is_points_priced(compiled: CompiledProgram, sku: str, unit_price: Decimal) -> bool:
    return unit_price == 0 and sku in compiled.catalog_price


def points_priced_lines(compiled: CompiledProgram, view: BasketView) -> list[PointsLine]:
    found = []
    for line in view.lines:
        if is_points_priced(compiled, line.sku, line.unit_price.amount):
            cost = Decimal(compiled.catalog_price[line.sku]) * line.quantity
            found.append(PointsLine(line.id, line.sku, line.quantity, int(cost.to_integral_value(rounding="ROUND_CEILING"))))
    return found


def effect(lines: list[PointsLine]) -> UnmappedEffect:
    raw: dict[str, Any] = {
        "lines": [{"line_id": p.line_id, "sku": p.sku, "quantity": str(p.quantity), "points": p.points} for p in lines],
        "points_due": sum(p.points for p in lines),
    }
    return UnmappedEffect(type=EFFECT, raw=raw)


def points_spent_on(conn: Connection, customer_id: str, order_ref: str) -> int:
    """Points the member spent on this order, net of any returned by a reversal."""
    spent = conn.execute(select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
        ledger.c.customer_id == customer_id, ledger.c.order_ref == order_ref, ledger.c.balance == "points",
        ledger.c.entry == "burn")).scalar_one()
    return -int(spent)


def unpaid_reason(compiled: CompiledProgram, conn: Connection, view: BasketView, customer_id: str | None) -> str | None:
    """Why an order with points-priced lines cannot be accepted (None: nothing to pay, or paid)."""
    lines = points_priced_lines(compiled, view)
    if not lines:
        return None
    due = sum(p.points for p in lines)
    if customer_id is None:
        return f"the order has points-priced lines ({due} points) but no member to pay them"
    spent = points_spent_on(conn, customer_id, view.id)
    if spent < due:
        return f"the order's points-priced lines cost {due} points; {spent} were spent on it"
    return None
