"""Ledger arithmetic, pure: balances are sums of entries; expiry is worked out from the entries.

Credited points form *lots*, each with an optional expiry date. Debits (burns, expiries, claw-backs)
consume the lots that expire soonest first, in the order the entries were written. Points still
left in a lot whose date has passed are expired; the service writes them to the ledger as an
``expire`` entry at the start of every write transaction, and reads subtract them without writing
(an evaluation has no side effect).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .program import PointsPolicy


# A NamedTuple, not a frozen dataclass: as immutable and compared by value, built faster, and its
# class is made without compiling generated methods at import.
class PointsEntry(NamedTuple):
    amount: int  # signed
    expires_at: datetime | None = None


class HistoryEntry(NamedTuple):
    """One line of a customer's statement."""

    at: datetime
    balance: str  # points | cashback
    entry: str  # earn | burn | expire | reverse
    amount: int  # points, or cashback in minor units
    currency: str | None
    order_ref: str | None
    label: str | None


def expired_unrecorded(entries: Iterable[PointsEntry], now: datetime) -> int:
    """Points whose lot expired at or before ``now`` and that no entry has consumed yet.

    ``entries`` must be in the order they were written.
    """
    lots: list[list[Any]] = []  # [expires_at, remaining]
    for entry in entries:
        if entry.amount > 0:
            lots.append([entry.expires_at, entry.amount])
            continue
        debit = -entry.amount
        # Soonest expiry first; points that never expire last.
        for lot in sorted((lot for lot in lots if lot[1] > 0), key=lambda lot: (lot[0] is None, lot[0] or now)):
            if debit == 0:
                break
            taken = min(lot[1], debit)
            lot[1] -= taken
            debit -= taken
    return sum(lot[1] for lot in lots if lot[0] is not None and lot[0] <= now)


def expiry_for(policy: PointsPolicy, credited_at: datetime) -> datetime | None:
    """When points credited at ``credited_at`` expire under the program's policy (None: never)."""
    days, on = policy.expire_after_days, policy.expire_on
    after = credited_at + timedelta(days=days) if days is not None else None
    if on is not None and credited_at < on and (after is None or on < after):
        return on  # the fixed date comes first
    return after


def capped_clawback(wanted: int, available: int) -> int:
    """Earned value taken back on a refund: never more than the customer still holds.

    A customer who already spent the points keeps a zero balance rather than a debt.
    """
    return max(0, min(wanted, available))
