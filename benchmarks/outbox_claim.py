"""``Outbox.claim(100)`` with 100k orders due versus 1k due (target: at most 1.2x slower).

Two outboxes, filled in bulk with the same order (refs differ), are claimed from in turn; each
claim is timed, then released so the next one finds the same backlog. A claim that sorts the whole
backlog grows with it; one that reads an index in order does not.

    python benchmarks/outbox_claim.py [--large 100000] [--small 1000] [--repetitions 31]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bulk_queue, describe, interleave, load_note, median_wall, verdict

from loyaltykit import Line, Money, Order
from loyaltykit.outbox import Outbox


def filled(path: Path, count: int) -> Outbox:
    outbox = Outbox(path)
    template = Order(ref="REF-TEMPLATE", currency="EUR", customer_id="C1", total=Money.of("33.80", "EUR"),
                     lines=(Line(id="1", sku="BEANS", quantity=2, unit_price=Money.of("16.90", "EUR")),)).model_dump_json()
    now = time.time() - 60
    bulk_queue(outbox, ((f"REF-{n:07d}", template.replace("REF-TEMPLATE", f"REF-{n:07d}"), now, now + n * 1e-6)
                        for n in range(count)))
    return outbox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--repetitions", type=int, default=31)
    args = parser.parse_args()
    print(load_note())
    with tempfile.TemporaryDirectory() as name:
        large, small = filled(Path(name) / "large.sqlite3", args.large), filled(Path(name) / "small.sqlite3", args.small)

        def claimer(outbox: Outbox):
            def claim() -> None:
                orders = outbox.claim(100)
                assert len(orders) == 100
                outbox.release(orders)  # timed too, the same for both: a claim and its give-back
            return claim

        samples = interleave({"large": claimer(large), "small": claimer(small)}, args.repetitions, warmup=2)
        large.close()
        small.close()
    print(describe(f"claim(100) + release, {args.large:,} due", samples["large"]))
    print(describe(f"claim(100) + release, {args.small:,} due", samples["small"]))
    big, little = median_wall(samples["large"]), median_wall(samples["small"])
    ratio = big / little
    return 0 if verdict(f"Outbox.claim(100), {args.large:,} vs {args.small:,} due", f"{big * 1e3:.2f} ms",
                        f"{little * 1e3:.2f} ms", ratio, "<= 1.20x", ratio <= 1.2) else 1


if __name__ == "__main__":
    sys.exit(main())
