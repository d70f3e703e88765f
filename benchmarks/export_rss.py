"""Peak memory (RSS) exporting 100k orders versus 10k through the outbox (target: at most 1.2x).

Each size runs in a fresh subprocess: orders are queued in an outbox, then flushed in batches of
100 to the embedded engine (empty program: what is measured is the export path, not the rules)
until the queue is empty; the child reports its peak RSS. Memory must not grow with the backlog.

    python benchmarks/export_rss.py [--large 100000] [--small 10000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bulk_queue, load_note, verdict


def child(orders: int, workdir: Path) -> None:
    from loyaltykit import Line, Loyalty, LoyaltySettings, Money, Order
    from loyaltykit.outbox import Outbox
    from loyaltykit_local.adapter import LocalAdapter
    from loyaltykit_local.program import program_from_dict
    from loyaltykit_local.service import LocalEngine
    from loyaltykit_local.store import Store

    store = Store(f"sqlite:///{workdir / 'engine.sqlite3'}")
    engine = LocalEngine(store, program_from_dict({"points": {"per_currency_unit": 1}}, "rss"))
    engine.create_customer(id="C1")
    outbox = Outbox(workdir / "outbox.sqlite3")
    template = Order(ref="REF-TEMPLATE", currency="EUR", customer_id="C1", total=Money.of("33.80", "EUR"),
                     lines=(Line(id="1", sku="BEANS", quantity=2, unit_price=Money.of("16.90", "EUR")),)).model_dump_json()
    now = time.time() - 60
    bulk_queue(outbox, ((f"R-{n:08d}", template.replace("REF-TEMPLATE", f"R-{n:08d}"), now, now + n * 1e-6)
                        for n in range(orders)))
    with Loyalty(LoyaltySettings(), adapter=LocalAdapter(engine=engine), load_entry_points=False) as loyalty:
        while outbox.flush(loyalty, 100) is not None:
            pass
    assert outbox.counts()["done"] == orders, outbox.counts()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def peak_kib(orders: int) -> int:
    with tempfile.TemporaryDirectory() as name:
        done = subprocess.run([sys.executable, __file__, "--child", str(orders), "--workdir", name],
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return int(done.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.workdir)
        return 0
    print(load_note())
    small, large = peak_kib(args.small), peak_kib(args.large)
    print(f"  peak RSS exporting {args.small:>9,} orders: {small / 1024:8.1f} MiB")
    print(f"  peak RSS exporting {args.large:>9,} orders: {large / 1024:8.1f} MiB")
    ratio = large / small
    return 0 if verdict(f"peak RSS exporting {args.large:,} vs {args.small:,} orders", f"{large / 1024:.1f} MiB",
                        f"{small / 1024:.1f} MiB", ratio, "<= 1.20x", ratio <= 1.2) else 1


if __name__ == "__main__":
    sys.exit(main())
