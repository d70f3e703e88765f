"""The embedded engine: ``LocalEngine`` composes its roles, one module each.

* :mod:`.accounts` — the state (store, program, clock), customer facts and balances read in a
  transaction, ledger appends and exactly-once keyed writes, which the roles below share;
* :mod:`.checkout` — what the adapter calls for the checkout operations (identify, evaluate, price
  products, redeem, spend, export, reverse);
* :mod:`.admin` — the admin API a shop (or the demo, or the test harness) uses to set the program,
  seed customers, issue vouchers and offers, credit balances and read a customer's history;
* :mod:`.members` — enrolment, member updates, statements and wallets (functions over the state).

None of them imports this module, so there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .accounts import ENGINE, utcnow
from .admin import Admin
from .checkout import Checkout
from .program import Program, empty_program
from .store import Store

__all__ = ["ENGINE", "LocalEngine", "utcnow"]


class LocalEngine(Checkout, Admin):
    """The embedded engine: a store, a program, and a clock."""

    def __init__(self, store: Store, program: Program | None = None, *, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(store, clock=clock)
        self.set_program(program or empty_program())
