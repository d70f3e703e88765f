"""The outbox store interface: what a backend (SQLite, PostgreSQL) must do, atomically.

Policy (back-off, dead-lettering, lease length) lives in :class:`loyaltykit.outbox.Outbox`; a store
only runs the statements. Every write that settles a leased order is fenced by the claim's token:
a worker whose lease ran out (and was claimed by another) changes nothing.

Times are seconds since the epoch from the outbox's clock, so tests can move time.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import __version__

if TYPE_CHECKING:
    from ..models import Order

PENDING = "pending"
DONE = "done"
REJECTED = "rejected"
DEAD = "dead"
DROPPED = "dropped"
STATES = (PENDING, DONE, REJECTED, DEAD, DROPPED)


# The digest of a payload the kit wrote from a validated order, keyed on the release that wrote it: a
# row whose payload still has its digest is that very text, read back without a validation run; a
# payload changed since (by hand, a script, a restore), a row without a digest (queued by an earlier
# release) or one written by another release is validated in full. It detects a change; it is not a
# signature: whoever can write the table and reads this code can write a matching digest too (and
# could queue any valid order anyway).
_DIGEST_KEY = f"loyaltykit outbox order {__version__}".encode()


def payload_digest(payload: str) -> str:
    """The digest kept beside a payload the kit wrote (see :class:`Claimed`)."""
    return hashlib.blake2b(payload.encode(), digest_size=16, key=_DIGEST_KEY).hexdigest()


def group_of(order: Order) -> str:
    """Orders of one customer are delivered in order; a guest order is its own group."""
    return f"customer:{order.customer_id}" if order.customer_id else f"order:{order.ref}"


@dataclass(frozen=True)
class OutboxEntry:
    """One order's place in the outbox, as operators see it (no payload: it holds customer data)."""

    ref: str
    state: str
    attempts: int
    last_status: str | None
    last_reason: str | None
    next_attempt: float = 0.0
    created_at: float = 0.0
    leased: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "state": self.state, "attempts": self.attempts, "last_status": self.last_status,
            "last_reason": self.last_reason, "next_attempt": self.next_attempt, "created_at": self.created_at,
            "leased": self.leased,
        }


# Claimed and Settlement are named tuples (one per order of every batch): built in C, where a frozen
# dataclass runs a Python __init__ setting each field through object.__setattr__.
class Claimed(NamedTuple):
    """A leased row: its ref, stored payload (JSON), how many attempts it had before, and the digest
    the kit wrote beside the payload (None for a row queued without one)."""

    ref: str
    payload: str
    attempts: int
    digest: str | None = None


class Settlement(NamedTuple):
    """The new state of one leased order, written only while the claim still holds it."""

    ref: str
    state: str
    attempts: int
    next_attempt: float
    last_status: str | None
    last_reason: str | None


class OutboxStore(ABC):
    """A durable table of orders to export, shared by every worker that opens the same URL."""

    #: where the store lives, safe to print (no password)
    display: str

    @abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the table and its indexes; safe to run from many processes at once."""

    @abstractmethod
    def insert(self, ref: str, group: str, payload: str, now: float, *, supersede: bool,
               digest: str | None = None) -> bool:
        """Queue an order; with ``supersede``, replace the payload (and its digest) of a pending, un-leased one."""

    @abstractmethod
    def claim(self, limit: int, now: float, until: float, token: str) -> list[Claimed]:
        """Lease up to ``limit`` due orders under ``token``: only the oldest pending order of each group."""

    @abstractmethod
    def renew(self, token: str, until: float) -> int:
        """Extend every lease ``token`` still holds; returns how many it holds."""

    @abstractmethod
    def release(self, token: str, refs: Sequence[str]) -> None:
        """Give leased orders back untouched."""

    @abstractmethod
    def settle(self, token: str, settlements: Sequence[Settlement], now: float) -> set[str]:
        """Write outcomes for orders ``token`` still holds; returns the refs written."""

    @abstractmethod
    def drop(self, ref: str, reason: str, now: float) -> bool:
        """Mark a pending, un-leased order dropped with the reason."""

    @abstractmethod
    def retry(self, refs: Sequence[str] | None, states: Sequence[str], now: float) -> int:
        """Make orders in ``states`` (all of them, or just ``refs``) pending and due now, attempts reset."""

    @abstractmethod
    def entries(self, state: str | None, limit: int, now: float, ref: str | None = None) -> list[OutboxEntry]:
        """Entries, oldest first, of one state or all."""

    @abstractmethod
    def counts(self, now: float) -> dict[str, int]:
        """Orders per state, plus ``due`` (pending, due now, not leased) and ``leased``."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
