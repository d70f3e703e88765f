"""Embedded engine: committed checkouts from 4 worker processes on one database versus 1 process.

The same number of orders is exported (one ``Loyalty.export_orders([order])`` each, each its own
transaction) by one process, then by four processes sharing the SQLite file, in turn for several
rounds; the figure is orders per second over each round's wall time, median over rounds. A round
runs from the moment every worker has started and opened the database to the moment the last one
has committed its last order: starting the interpreters and shutting them down (a few hundred ms
each, four of them on two cores) is not checkout throughput and stays out of both sides.
Target: four processes do no worse than one (ratio at least 1.0).

Beside the rates it prints the CPU time the workers spent per order (their process CPU over the
round, summed): what each order costs once several processes share the database and the cores.

    python benchmarks/local_processes.py [--orders 800] [--workers 4] [--repetitions 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_note, verdict
from local_checkout import PROGRAM, make_order

from loyaltykit import Loyalty, LoyaltySettings
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.program import program_from_dict
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store

CUSTOMERS = 200


def worker(url: str, refs: list[str], ready, start, finished) -> None:
    store = Store(url, create=False)
    engine = LocalEngine(store, program_from_dict(PROGRAM, "benchmark"))
    orders = [make_order(ref, f"C{int(ref.rsplit('-', 1)[1]) % CUSTOMERS:05d}") for ref in refs]
    with Loyalty(LoyaltySettings(), adapter=LocalAdapter(engine=engine), load_entry_points=False) as loyalty:
        ready.put(True)
        start.wait()
        cpu = time.process_time()
        for order in orders:
            report = loyalty.export_orders([order])
            assert report.results[0].status.value == "accepted", report.results[0]
        # the system-wide clock, comparable with the parent's, and this worker's CPU time over the round
        finished.put((time.monotonic(), time.process_time() - cpu))
    store.dispose()


def round_rate(url: str, first: int, orders: int, workers: int) -> tuple[float, float]:
    """Orders per second over the round, and the workers' CPU seconds per order."""
    context = multiprocessing.get_context("spawn")
    start, ready, finished = context.Event(), context.Queue(), context.Queue()
    refs = [f"ORD-{n:08d}" for n in range(first, first + orders)]
    processes = [context.Process(target=worker, args=(url, refs[index::workers], ready, start, finished))
                 for index in range(workers)]
    for process in processes:
        process.start()
    for _ in processes:  # every worker has imported and opened the database before the clock starts
        ready.get(timeout=120)
    began = time.monotonic()
    start.set()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a worker failed (exit {process.exitcode})")
    reports = [finished.get(timeout=10) for _ in processes]
    last = max(at for at, _cpu in reports)
    return orders / (last - began), sum(cpu for _at, cpu in reports) / orders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=800)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    print(load_note())
    with tempfile.TemporaryDirectory() as name:
        url = f"sqlite:///{Path(name) / 'shared.sqlite3'}"
        store = Store(url)
        engine = LocalEngine(store, program_from_dict(PROGRAM, "benchmark"))
        for n in range(CUSTOMERS):
            engine.create_customer(id=f"C{n:05d}")
        store.dispose()
        one, many, one_cpu, many_cpu = [], [], [], []
        first = 0
        for _ in range(args.repetitions):
            rate, cpu = round_rate(url, first, args.orders, 1)
            one.append(rate)
            one_cpu.append(cpu)
            first += args.orders
            rate, cpu = round_rate(url, first, args.orders, args.workers)
            many.append(rate)
            many_cpu.append(cpu)
            first += args.orders
    single, multi = statistics.median(one), statistics.median(many)
    print(f"  1 process:    {single:8,.0f} checkouts/s  cpu {statistics.median(one_cpu) * 1e6:5.0f} us/order  "
          f"(rounds: {', '.join(f'{r:,.0f}' for r in one)})")
    print(f"  {args.workers} processes:  {multi:8,.0f} checkouts/s  cpu {statistics.median(many_cpu) * 1e6:5.0f} us/order  "
          f"(rounds: {', '.join(f'{r:,.0f}' for r in many)})")
    ratio = multi / single
    return 0 if verdict(f"embedded engine, {args.workers} processes vs 1", f"{multi:,.0f}/s", f"{single:,.0f}/s", ratio,
                        ">= 1.00x", ratio >= 1.0) else 1


if __name__ == "__main__":
    sys.exit(main())
