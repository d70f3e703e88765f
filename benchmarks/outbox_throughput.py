"""Outbox export throughput: 1, 2 and 4 worker processes on PostgreSQL beside one worker on SQLite.

Each run queues ``--orders`` orders in a fresh outbox, starts N worker processes released
together, and times until every order is exported (``done``). Each export call waits
``--latency`` seconds, standing in for an engine across the network (``--engine remote``, the
default: what the outbox itself sustains); ``--engine local`` exports through the embedded engine
with its database on the same backend (then the engine's own writes dominate). Baseline, measured in the same run: one worker on the default SQLite outbox.

The ``RESULT`` row: 4 PostgreSQL workers against one SQLite worker (target: at least 2x, since the
export waits on the engine and workers add up). Without a PostgreSQL server the row says SKIP.

PostgreSQL: ``--url postgresql://user:password@host/db`` (a server where the script may create and
drop throw-away databases), else ``LOYALTYKIT_TEST_POSTGRES_URL`` or the ``PG*`` variables; with
none of these the script starts a throw-away cluster itself with ``pg_virtualenv`` (Debian's
postgresql-common) when it is installed, and removes it afterwards::

    python benchmarks/outbox_throughput.py [--orders 2000] [--batch 50] [--latency 0.1] [--url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import subprocess
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
    parser.add_argument("--url", help="a PostgreSQL server to create throw-away databases on "
                                      "(default: the environment's, else a cluster of our own)")
    args = parser.parse_args()

    from loyaltykit.postgres_testing import URL_VARIABLE, fresh_database

    row = "outbox export, 4 PostgreSQL workers vs 1 SQLite worker"
    if args.url:
        os.environ[URL_VARIABLE] = args.url
    if not (os.environ.get(URL_VARIABLE) or os.environ.get("PGHOST") or os.environ.get("PGDATABASE")):
        if shutil.which("pg_virtualenv") and not os.environ.get(_OWN_CLUSTER):
            return _in_own_cluster()
        print(f"RESULT {row} | kit - | baseline - | ratio - | target >= {SCALE_TARGET:.2f}x | "
              f"SKIP (no PostgreSQL server: pass --url, set {URL_VARIABLE} or PG*, or install pg_virtualenv)")
        return 0
    if os.environ.get(_OWN_CLUSTER):
        print("PostgreSQL: a throw-away cluster started for this run (pg_virtualenv)")

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
    return 0 if passed or os.environ.get(_OWN_CLUSTER) else 1


_OWN_CLUSTER = "LOYALTYKIT_BENCH_OWN_CLUSTER"


def _in_own_cluster() -> int:
    """Run this script again inside a throw-away PostgreSQL cluster (created and removed by
    ``pg_virtualenv``, which also works as root, where ``initdb`` refuses), on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["pg_virtualenv", "-t", "-c", f"-p {port}", "-o", "max_connections=200",
               sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
    # the verdict is read from the RESULT line: a FAIL exit would make pg_virtualenv dump the server log
    passed = False
    with subprocess.Popen(command, env={**os.environ, _OWN_CLUSTER: "1"}, stdout=subprocess.PIPE, text=True) as run:
        assert run.stdout is not None
        for line in run.stdout:
            print(line, end="", flush=True)
            passed = passed or (line.startswith("RESULT ") and line.rstrip().endswith("| PASS"))
    return 0 if run.returncode == 0 and passed else 1


if __name__ == "__main__":
    sys.exit(main())
