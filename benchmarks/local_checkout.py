"""Embedded engine: committed checkouts per second on SQLite (target: at least 2,000/s).

A checkout here is what the engine commits when a shop places an order for a member: one
``Loyalty.export_orders([order])`` call — one transaction writing the order, the rules granted and
the ledger rows for the points and cashback earned. Each is committed on its own (WAL,
``synchronous=NORMAL``, the engine's defaults).

Baseline, measured in the same run on a database with the same settings: raw ``sqlite3`` inserts
of the same rows (one order row and its ledger rows per transaction), with no engine around them.
Samples of each side alternate (interleaved); figures are medians. Target: at least half the raw
rate, and at least 2,000 checkouts/s on an idle machine.

    python benchmarks/local_checkout.py [--block 200] [--repetitions 11] [--customers 200]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import describe, interleave, load_note, median_wall, verdict

from loyaltykit import Line, Loyalty, LoyaltySettings, Money, Order
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.program import program_from_dict
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store

PROGRAM = {
    "points": {"per_currency_unit": 1, "expire_after_days": 365},
    "categories": [{"category": "coffee", "per_currency_unit": 2}],
    "cashback": {"earn_percent": 2},
    "rules": [
        {"id": "coffee-bonus", "when": {"categories": {"any": ["coffee"], "min_quantity": 2}},
         "then": {"action": "bonus_points", "points": 20}},
        {"id": "big", "when": {"basket_amount": {"min": 40}}, "then": {"action": "free_shipping"}},
        # Asks about the customer's history, so every checkout reads it.
        {"id": "welcome", "when": {"first_order": True, "not_previously_granted": True},
         "then": {"action": "bonus_points", "points": 100}},
    ],
}


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def make_order(ref: str, customer_id: str) -> Order:
    lines = (
        Line(id="1", sku="BEANS", quantity=2, unit_price=eur("14.90"), category="coffee"),
        Line(id="2", sku="FILTER", quantity=1, unit_price=eur("4.00"), category="accessories"),
    )
    return Order(ref=ref, currency="EUR", lines=lines, total=eur("33.80"), customer_id=customer_id)


class EngineCheckouts:
    """Committed checkouts through the facade, a block of orders at a time."""

    def __init__(self, workdir: Path, customers: int) -> None:
        self.store = Store(f"sqlite:///{workdir / 'engine.sqlite3'}")
        engine = LocalEngine(self.store, program_from_dict(PROGRAM, "benchmark"))
        self.ids = [engine.create_customer(id=f"C{n:05d}") for n in range(customers)]
        self.loyalty = Loyalty(LoyaltySettings(), adapter=LocalAdapter(engine=engine), load_entry_points=False)
        self.done = 0

    def block(self, size: int) -> None:
        batch = [make_order(f"ORD-{n:07d}", self.ids[n % len(self.ids)]) for n in range(self.done, self.done + size)]
        self.done += size
        for order in batch:
            self.loyalty.export_orders([order])

    def close(self) -> int:
        self.loyalty.close()
        with self.store.sqlalchemy_read() as conn:
            rows = conn.exec_driver_sql("SELECT count(*) FROM lk_ledger").scalar_one()
        self.store.dispose()
        return rows


class RawInserts:
    """The same rows, written with the sqlite3 module directly: the floor under any engine."""

    def __init__(self, workdir: Path, customers: int) -> None:
        self.customers = customers
        self.connection = connection = sqlite3.connect(workdir / "raw.sqlite3", isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, ref TEXT UNIQUE, write_key TEXT UNIQUE, "
                           "customer_id TEXT, currency TEXT, total_minor INTEGER, points_earned INTEGER, "
                           "cashback_earned_minor INTEGER, rules TEXT, placed_at TEXT, created_at TEXT)")
        connection.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, customer_id TEXT, balance TEXT, currency TEXT, "
                           "entry TEXT, amount INTEGER, order_ref TEXT, write_key TEXT, label TEXT, created_at TEXT, "
                           "expires_at TEXT)")
        connection.execute("CREATE INDEX ledger_customer ON ledger (customer_id, balance, currency)")
        connection.execute("CREATE INDEX ledger_order ON ledger (order_ref)")
        self.done = 0

    def block(self, size: int) -> None:
        connection = self.connection
        now = datetime.now(UTC).isoformat()
        for n in range(self.done, self.done + size):
            ref, customer_id = f"ORD-{n:07d}", f"C{n % self.customers:05d}"
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO orders VALUES (NULL,?,?,?,?,?,?,?,?,?,?)",
                               (ref, f"{ref}:export", customer_id, "EUR", 3380, 87, 68, '["coffee-bonus"]', now, now))
            connection.executemany("INSERT INTO ledger VALUES (NULL,?,?,?,?,?,?,?,?,?,?)", [
                (customer_id, "points", None, "earn", 67, ref, f"{ref}:export", f"order {ref}", now, now),
                (customer_id, "points", None, "earn", 20, ref, f"{ref}:export", "coffee-bonus", now, now),
                (customer_id, "cashback", "EUR", "earn", 68, ref, f"{ref}:export", f"cashback on order {ref}", now, None),
            ])
            connection.execute("COMMIT")
        self.done += size

    def close(self) -> None:
        self.connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=200, help="orders per timed sample")
    parser.add_argument("--repetitions", type=int, default=11)
    parser.add_argument("--customers", type=int, default=200)
    args = parser.parse_args()
    print(load_note())
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        kit, raw = EngineCheckouts(workdir, args.customers), RawInserts(workdir, args.customers)
        samples = interleave({"kit": lambda: kit.block(args.block), "raw": lambda: raw.block(args.block)},
                             args.repetitions)
        rows = kit.close()
        raw.close()
    print(f"{args.block} orders per sample, {args.repetitions} samples each, interleaved; each order committed on its own "
          f"(SQLite WAL, synchronous=NORMAL); {rows:,} ledger rows written by the engine")
    print(describe("committed checkouts (export_orders, 1 order)", samples["kit"], per=args.block))
    print(describe("raw sqlite3 inserts of the same rows", samples["raw"], per=args.block))
    kit_rate = args.block / median_wall(samples["kit"])
    raw_rate = args.block / median_wall(samples["raw"])
    ratio = kit_rate / raw_rate
    passed = ratio >= 0.5 and kit_rate >= 2000
    return 0 if verdict("embedded checkouts vs raw sqlite3", f"{kit_rate:,.0f}/s", f"{raw_rate:,.0f}/s", ratio,
                        ">= 0.50x and >= 2,000/s (idle)", passed) else 1


if __name__ == "__main__":
    sys.exit(main())
