"""Export of many orders to the embedded engine versus raw sqlite3 (target: at least 0.5x the rate).

``Loyalty.export_orders`` takes batches of 100 orders; the engine records up to 50 orders per
transaction, each in a savepoint of its own (order row, rules granted, ledger rows). The baseline
writes the same rows with the sqlite3 module, one transaction per order. Blocks of each alternate until ``--orders`` are written
by each side; the figures are the medians of the per-block rates.

    python benchmarks/local_export.py [--orders 100000] [--block 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import describe, interleave, load_note, median_wall, verdict
from local_checkout import EngineCheckouts, RawInserts, make_order

BATCH = 100


class EngineExport(EngineCheckouts):
    def block(self, size: int) -> None:
        for first in range(self.done, self.done + size, BATCH):
            batch = [make_order(f"ORD-{n:07d}", self.ids[n % len(self.ids)]) for n in range(first, first + BATCH)]
            report = self.loyalty.export_orders(batch)
            assert all(r.status.value == "accepted" for r in report.results)
        self.done += size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--block", type=int, default=2_000, help="orders per timed sample (a multiple of 100)")
    parser.add_argument("--customers", type=int, default=1_000)
    args = parser.parse_args()
    print(load_note())
    repetitions = max(1, args.orders // args.block - 1)  # one block each is the warm-up
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        kit, raw = EngineExport(workdir, args.customers), RawInserts(workdir, args.customers)
        samples = interleave({"kit": lambda: kit.block(args.block), "raw": lambda: raw.block(args.block)}, repetitions)
        rows = kit.close()
        raw.close()
    print(f"{(repetitions + 1) * args.block:,} orders each, in blocks of {args.block:,} (batches of {BATCH}); "
          f"{rows:,} ledger rows written by the engine")
    print(describe("export_orders to the embedded engine", samples["kit"], per=args.block))
    print(describe("raw sqlite3, same rows", samples["raw"], per=args.block))
    kit_rate, raw_rate = args.block / median_wall(samples["kit"]), args.block / median_wall(samples["raw"])
    ratio = kit_rate / raw_rate
    return 0 if verdict(f"export {(repetitions + 1) * args.block:,} orders to the embedded engine vs raw sqlite3",
                        f"{kit_rate:,.0f}/s", f"{raw_rate:,.0f}/s", ratio, ">= 0.50x", ratio >= 0.5) else 1


if __name__ == "__main__":
    sys.exit(main())
