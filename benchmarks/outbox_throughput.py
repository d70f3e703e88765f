"""Outbox export throughput: 1, 2 and 4 worker processes on PostgreSQL beside one worker on SQLite.

Each run queues ``--orders`` orders in a fresh outbox, starts N worker processes released
together, and times until every order is exported (``done``). Each export call waits
``--latency`` seconds, standing in for an engine across the network (``--engine remote``, the
default: what the outbox itself sustains); ``--engine local`` exports through the embedded engine
with its database on the same backend (then the engine's own writes dominate). Baseline, measured in the same run: one worker on the default SQLite outbox.

The ``RESULT`` row: 4 PostgreSQL workers against one SQLite worker (target: at least 2x, since the
export waits on the engine and workers add up). Without a PostgreSQL server the row says SKIP.

PostgreSQL comes from ``LOYALTYKIT_TEST_POSTGRES_URL`` or the ``PG*`` variables, e.g.::

    pg_virtualenv -t python benchmarks/outbox_throughput.py [--orders 2000] [--batch 50] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

from loyaltykit import ExportReport, ExportStatus, Line, Loyalty, LoyaltySettings, Money, Order, OrderExportResult
from loyaltykit.outbox import DONE, Outbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import verdict

SCALE_TARGET = 2.0

PROGRAM = {"points": {"per_currency_unit": 1}}


def _order(i: int, customers: int) -> Order:
    line = Line(id="1", sku="BEANS", quantity=1, unit_price=Money.of("12.50", "EUR"))
    customer = f"C{i % customers}" if customers else None
    return Order(ref=f"B-{i}", currency="EUR", lines=(line,), total=Money.of("12.50", "EUR"), customer_id=customer)


def _worker(outbox_url: str, engine_url: str, batch: int, latency: float, total: int, go, engine_kind: str) -> None:
    settings = LoyaltySettings(engine="local", engines={"local": {"database_url": engine_url, "pool_size": 2}})
    with Loyalty(settings) as loyalty, Outbox(outbox_url) as outbox:
        export = loyalty.export_orders

        def slow_export(orders):
            time.sleep(latency)  # the engine's round trip
            if engine_kind == "remote":  # the engine is elsewhere: only its latency costs here
                return ExportReport(engine="remote", results=tuple(
                    OrderExportResult(order_ref=o.ref, status=ExportStatus.ACCEPTED) for o in orders))
            return export(orders)

        loyalty.export_orders = slow_export  # type: ignore[method-assign]
        go.wait()
        while True:
            if outbox.flush(loyalty, batch=batch) is None:
                if outbox.counts()[DONE] >= total:
                    return
                time.sleep(0.005)


def run(outbox_url: str, engine_url: str, workers: int, args) -> float:
    from loyaltykit_local.program import program_from_dict
    from loyaltykit_local.service import LocalEngine
    from loyaltykit_local.store import Store

    store = Store(engine_url)  # migrates
    engine = LocalEngine(store, program_from_dict(PROGRAM))
    for c in range(args.customers):
        engine.create_customer(id=f"C{c}")
    store.dispose()
    with Outbox(outbox_url) as outbox:
        for i in range(args.orders):
            outbox.add(_order(i, args.customers))
    context = multiprocessing.get_context("fork")
    go = context.Event()
    processes = [context.Process(target=_worker, args=(outbox_url, engine_url, args.batch, args.latency, args.orders, go, args.engine))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    time.sleep(1.0)  # let every worker connect before the clock starts
    started = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    if any(p.exitcode != 0 for p in processes):
        sys.exit("a worker failed")
    with Outbox(outbox_url) as outbox:
        assert outbox.counts()[DONE] == args.orders, outbox.counts()
    return args.orders / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.1,
                        help="seconds each export call waits: a remote engine recording a batch")
    parser.add_argument("--engine", choices=("remote", "local"), default="remote",
                        help="remote: an engine elsewhere (its latency only); local: the embedded engine on the same backend")
    parser.add_argument("--customers", type=int, default=200, help="members the orders belong to (0: guests)")
    args = parser.parse_args()

    from loyaltykit.postgres_testing import URL_VARIABLE, fresh_database

    row = "outbox export, 4 PostgreSQL workers vs 1 SQLite worker"
    if not (os.environ.get(URL_VARIABLE) or os.environ.get("PGHOST") or os.environ.get("PGDATABASE")):
        print(f"RESULT {row} | kit - | baseline - | ratio - | target >= {SCALE_TARGET:.2f}x | "
              f"SKIP (no PostgreSQL server: set {URL_VARIABLE} or PG*, or run under pg_virtualenv)")
        return 0

    print(f"{args.engine} engine, {args.orders} orders, batches of {args.batch}, {args.latency * 1000:.0f} ms per export call, "
          f"{args.customers} customers, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = run(f"sqlite:///{Path(tmp) / 'outbox.sqlite3'}", f"sqlite:///{Path(tmp) / 'engine.sqlite3'}", 1, args)
    print(f"  SQLite,      1 worker : {baseline:8.0f} orders/s  (baseline)")
    single = rate = 0.0
    for workers in (1, 2, 4):
        with fresh_database("lk_bench") as url:
            rate = run(url, url, workers, args)
        single = single or rate
        print(f"  PostgreSQL,  {workers} worker{'s' if workers > 1 else ' '}: {rate:8.0f} orders/s  "
              f"({rate / baseline:4.2f}x SQLite, {rate / single:4.2f}x one PostgreSQL worker)")
    passed = verdict(row, f"{rate:,.0f}/s", f"{baseline:,.0f}/s", rate / baseline, f">= {SCALE_TARGET:.2f}x",
                     rate / baseline >= SCALE_TARGET)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
