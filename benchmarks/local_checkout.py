"""Embedded engine: committed checkouts per second on SQLite (target: at least 2,000/s).

A checkout here is what the engine commits when a shop places an order for a member: one
``Loyalty.export_orders([order])`` call — one transaction writing the order, the rules granted and
the ledger rows for the points and cashback earned. Each is committed on its own (WAL,
``synchronous=NORMAL``, the engine's defaults).

Baseline, measured in the same run on a database with the same settings: raw ``sqlite3`` inserts
of the same rows (one order row and its ledger rows per transaction), with no engine around them.
A second figure gives the whole checkout as a shop runs it (evaluate, spend cashback, export).

    python benchmarks/local_checkout.py [--orders 3000] [--customers 200]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from loyaltykit import Basket, CashbackSpend, Line, Loyalty, LoyaltySettings, Money, Order
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


def engine_checkouts(workdir: Path, orders: int, customers: int) -> tuple[float, int]:
    store = Store(f"sqlite:///{workdir / 'engine.sqlite3'}")
    engine = LocalEngine(store, program_from_dict(PROGRAM, "benchmark"))
    ids = [engine.create_customer(id=f"C{n:05d}") for n in range(customers)]
    batch = [make_order(f"ORD-{n:07d}", ids[n % customers]) for n in range(orders)]
    with Loyalty(LoyaltySettings(), adapter=LocalAdapter(engine=engine), load_entry_points=False) as loyalty:
        start = time.perf_counter()
        for order in batch:
            loyalty.export_orders([order])
        elapsed = time.perf_counter() - start
    with store.read() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM lk_ledger").scalar_one()
    store.dispose()
    return orders / elapsed, rows


def full_checkouts(workdir: Path, orders: int, customers: int) -> float:
    store = Store(f"sqlite:///{workdir / 'full.sqlite3'}")
    engine = LocalEngine(store, program_from_dict(PROGRAM, "benchmark"))
    ids = [engine.create_customer(id=f"C{n:05d}", cashback=eur("1000.00")) for n in range(customers)]
    with Loyalty(LoyaltySettings(), adapter=LocalAdapter(engine=engine), load_entry_points=False) as loyalty:
        start = time.perf_counter()
        for n in range(orders):
            customer_id = ids[n % customers]
            ref = f"ORD-{n:07d}"
            order = make_order(ref, customer_id)
            basket = Basket(id=ref, currency="EUR", customer_id=customer_id, lines=order.lines)
            quote = loyalty.evaluate(basket)
            spent = loyalty.spend_cashback(CashbackSpend(customer_id=customer_id, order_ref=ref, amount=eur("1.00")))
            loyalty.export_orders([Order.from_evaluation(ref, basket, quote, [spent.receipt])])
        elapsed = time.perf_counter() - start
    store.dispose()
    return orders / elapsed


def raw_inserts(workdir: Path, orders: int, customers: int) -> float:
    """The same rows, written with the sqlite3 module directly: the floor under any engine."""
    connection = sqlite3.connect(workdir / "raw.sqlite3", isolation_level=None)
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
    now = datetime.now(UTC).isoformat()
    start = time.perf_counter()
    for n in range(orders):
        ref, customer_id = f"ORD-{n:07d}", f"C{n % customers:05d}"
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO orders VALUES (NULL,?,?,?,?,?,?,?,?,?,?)",
                           (ref, f"{ref}:export", customer_id, "EUR", 3380, 87, 68, '["coffee-bonus"]', now, now))
        connection.executemany("INSERT INTO ledger VALUES (NULL,?,?,?,?,?,?,?,?,?,?)", [
            (customer_id, "points", None, "earn", 67, ref, f"{ref}:export", f"order {ref}", now, now),
            (customer_id, "points", None, "earn", 20, ref, f"{ref}:export", "coffee-bonus", now, now),
            (customer_id, "cashback", "EUR", "earn", 68, ref, f"{ref}:export", f"cashback on order {ref}", now, None),
        ])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return orders / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--customers", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        baseline = raw_inserts(workdir, args.orders, args.customers)
        engine_rate, rows = engine_checkouts(workdir, args.orders, args.customers)
        full_rate = full_checkouts(workdir, max(500, args.orders // 3), args.customers)
    print(f"{args.orders} orders for {args.customers} members, each committed on its own (SQLite WAL, synchronous=NORMAL)")
    print(f"  baseline: raw sqlite3 inserts of the same rows        {baseline:9,.0f} /s")
    print(f"  committed checkouts (Loyalty.export_orders, 1 order)  {engine_rate:9,.0f} /s   ({rows:,} ledger rows)")
    print(f"  whole checkout (evaluate + spend cashback + export)   {full_rate:9,.0f} /s")
    print(f"target >= 2,000 committed checkouts/s: {'met' if engine_rate >= 2000 else 'NOT met'}")


if __name__ == "__main__":
    main()
