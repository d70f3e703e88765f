"""Export of many orders through the outbox with an HTTP adapter versus raw httpx (target >= 0.9x).

The kit: orders queued in an :class:`~loyaltykit.outbox.Outbox` (SQLite, its default durability),
then ``outbox.flush(loyalty, 100)`` until the queue is empty (SessionM adapter, one POS transaction
per order: SessionM documents no batch endpoint). The baseline does the same work by hand: the
same orders queued in a plain ``sqlite3`` table (WAL, synced on queueing and not on marking done,
as durable as the outbox), read 100 at a time (``json.loads`` of each stored order), the same transaction body
posted per order (its ref swapped in) with a hand-written ``httpx.Client`` to the same canned
loopback server, each answer parsed, and the batch marked done in one transaction. Blocks of each
alternate; the figures are medians of per-block rates. The posting alone (no queue) is timed too
and printed for reference.

    python benchmarks/http_export.py [--orders 100000] [--block 2000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import bulk_queue, describe, interleave, load_note, median_wall, verdict
from _http import BENCH_SETTINGS, Scenario, adapter_class

from loyaltykit import Loyalty
from loyaltykit.outbox import Outbox

ENGINE = "sessionm"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--block", type=int, default=2_000, help="orders per timed sample (a multiple of 100)")
    parser.add_argument("--lines", type=int, default=3)
    args = parser.parse_args()
    print(load_note())
    repetitions = max(1, args.orders // args.block - 1)
    total = (repetitions + 1) * args.block
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        scenario = Scenario(ENGINE, "export", args.lines, workdir)
        sample_ref = f"ORD-{scenario.spent:07d}"
        (method, headers, content), = [(e.method, e.headers, e.content) for e in scenario.steady]
        with scenario.server as server:
            settings = server.settings_for(scenario.harness.settings)
            outbox = Outbox(workdir / "outbox.sqlite3")
            queued = scenario.order()
            template = queued.model_dump_json()
            now = time.time() - 60
            # queue every order up front; what is timed is the export
            bulk_queue(outbox, ((f"Q-{n:08d}", template.replace(f'"{queued.ref}"', f'"Q-{n:08d}"', 1),
                                 now, now + n * 1e-6) for n in range(total)))
            loyalty = Loyalty(BENCH_SETTINGS, adapter=adapter_class(ENGINE)(settings), load_entry_points=False)
            client = httpx.Client()
            target = server.replay_requests(scenario.steady)[0][1]
            payload = json.loads(content)
            replay_headers = [(k, v) for k, v in headers if k.lower() not in ("host", "content-length")]
            raw_done = post_done = 0
            queue = sqlite3.connect(workdir / "raw.sqlite3", isolation_level=None)
            queue.execute("PRAGMA journal_mode=WAL")
            queue.execute("PRAGMA synchronous=FULL")  # the orders are queued durably
            queue.execute("CREATE TABLE queue (ref TEXT PRIMARY KEY, payload TEXT NOT NULL, state TEXT NOT NULL)")
            queue.execute("CREATE INDEX queue_state ON queue (state)")
            queue.execute("BEGIN")
            queue.executemany("INSERT INTO queue VALUES (?, ?, 'pending')",
                              ((f"R-{n:08d}", template.replace(f'"{queued.ref}"', f'"R-{n:08d}"', 1))
                               for n in range(total)))
            queue.execute("COMMIT")
            # as the outbox does: an export's outcome is not synced on its own (a lost one means a re-export,
            # which the engine answers as a duplicate)
            queue.execute("PRAGMA synchronous=NORMAL")

            def kit() -> None:
                for _ in range(args.block // 100):
                    report = outbox.flush(loyalty, 100)
                    assert report is not None and all(r.status.value == "accepted" for r in report.results)

            def raw() -> None:
                nonlocal raw_done
                for _ in range(args.block // 100):
                    rows = queue.execute("SELECT ref, payload FROM queue WHERE state = 'pending'"
                                         " ORDER BY rowid LIMIT 100").fetchall()
                    for _, stored in rows:
                        order = json.loads(stored)
                        body = json.dumps(payload, separators=(",", ":")).replace(sample_ref, order["ref"]).encode()
                        json.loads(client.request(method, target, headers=replay_headers, content=body).content)
                    queue.execute("BEGIN IMMEDIATE")
                    queue.executemany("UPDATE queue SET state = 'done' WHERE ref = ?", ((ref,) for ref, _ in rows))
                    queue.execute("COMMIT")
                    raw_done += len(rows)

            def post() -> None:
                nonlocal post_done
                for n in range(post_done, post_done + args.block):
                    body = json.dumps(payload, separators=(",", ":")).replace(sample_ref, f"P-{n:08d}").encode()
                    json.loads(client.request(method, target, headers=replay_headers, content=body).content)
                post_done += args.block

            samples = interleave({"kit": kit, "raw": raw, "post": post}, repetitions)
            counts = outbox.counts()
            assert queue.execute("SELECT COUNT(*) FROM queue WHERE state = 'done'").fetchone()[0] == raw_done
            queue.close()
            loyalty.close()
            client.close()
            outbox.close()
    print(f"{total:,} orders each, in blocks of {args.block:,}; outbox afterwards: {counts}")
    print(describe("outbox.flush -> SessionM adapter", samples["kit"], per=args.block))
    print(describe("raw sqlite3 queue + httpx POST per order", samples["raw"], per=args.block))
    print(describe("(reference) httpx POSTs alone, no queue", samples["post"], per=args.block))
    kit_rate, raw_rate = args.block / median_wall(samples["kit"]), args.block / median_wall(samples["raw"])
    post_rate = args.block / median_wall(samples["post"])
    print(f"  kit vs posting alone: {kit_rate / post_rate:.2f}x")
    ratio = kit_rate / raw_rate
    return 0 if verdict(f"export {total:,} orders through the outbox (HTTP) vs raw sqlite3 + httpx", f"{kit_rate:,.0f}/s",
                        f"{raw_rate:,.0f}/s", ratio, ">= 0.90x", ratio >= 0.9) else 1


if __name__ == "__main__":
    sys.exit(main())
