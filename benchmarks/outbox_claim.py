"""``Outbox.claim(100)`` with 100k orders due versus 1k due (target: at most 1.2x slower).

Two outboxes, filled in bulk with the same order (refs differ), are claimed from in turn; each
claim is timed, then released so the next one finds the same backlog. A claim that sorts the whole
backlog grows with it; one that reads an index in order does not.

    python benchmarks/outbox_claim.py [--large 100000] [--small 1000] [--repetitions 31]
    python benchmarks/outbox_claim.py --postgres URL   # the same on PostgreSQL (throw-away databases on URL)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bulk_queue, describe, interleave, load_note, median_wall, verdict

from loyaltykit import Line, Money, Order
from loyaltykit.outbox import Outbox


def filled(url: str | Path, count: int) -> Outbox:
    outbox = Outbox(url)
    template = Order(ref="REF-TEMPLATE", currency="EUR", customer_id="C1", total=Money.of("33.80", "EUR"),
                     lines=(Line(id="1", sku="BEANS", quantity=2, unit_price=Money.of("16.90", "EUR")),)).model_dump_json()
    now = time.time() - 60
    rows = ((f"REF-{n:07d}", template.replace("REF-TEMPLATE", f"REF-{n:07d}"), now, now + n * 1e-6) for n in range(count))
    if str(url).startswith("postgresql"):
        from sqlalchemy import text

        from loyaltykit.outbox.postgres import TABLE

        with outbox.store.engine.begin() as conn:  # type: ignore[attr-defined]
            insert = (f"INSERT INTO {TABLE} (ref, group_key, payload, state, next_attempt, created_at, updated_at)"  # noqa: S608 - a constant table name
                      " VALUES (:ref, :ref, :payload, 'pending', :now, :created, :now)")
            conn.execute(text(insert), [{"ref": ref, "payload": payload, "now": due, "created": created}
                                        for ref, payload, due, created in rows])
            conn.execute(text(f"ANALYZE {TABLE}"))
    else:
        bulk_queue(outbox, rows)
    return outbox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--repetitions", type=int, default=31)
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server to measure on instead of SQLite")
    args = parser.parse_args()
    print(load_note())
    with ExitStack() as stack:
        if args.postgres:
            from loyaltykit.postgres_testing import URL_VARIABLE, fresh_database

            os.environ[URL_VARIABLE] = args.postgres
            large_url, small_url = (stack.enter_context(fresh_database("lk_claim")) for _ in range(2))
        else:
            name = stack.enter_context(tempfile.TemporaryDirectory())
            large_url, small_url = f"sqlite:///{Path(name) / 'large.sqlite3'}", f"sqlite:///{Path(name) / 'small.sqlite3'}"
        large, small = filled(large_url, args.large), filled(small_url, args.small)
        print(f"store: {'PostgreSQL' if args.postgres else 'SQLite'}")

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
    store = " (PostgreSQL)" if args.postgres else ""
    return 0 if verdict(f"Outbox.claim(100){store}, {args.large:,} vs {args.small:,} due", f"{big * 1e3:.2f} ms",
                        f"{little * 1e3:.2f} ms", ratio, "<= 1.20x", ratio <= 1.2) else 1


if __name__ == "__main__":
    sys.exit(main())
