"""Export of many orders through the outbox with an HTTP adapter versus raw httpx (target >= 0.9x).

The kit: orders queued in an :class:`~loyaltykit.outbox.Outbox`, then ``outbox.flush(loyalty, 100)``
until the queue is empty (SessionM adapter, one POS transaction per order). The baseline: a
hand-written ``httpx.Client`` loop posting the same transaction body per order (its ref swapped
in) to the same canned loopback server and parsing each answer. Blocks of each alternate; the
figures are medians of per-block rates.

    python benchmarks/http_export.py [--orders 100000] [--block 2000]
"""

from __future__ import annotations

import argparse
import json
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
            raw_done = 0

            def kit() -> None:
                for _ in range(args.block // 100):
                    report = outbox.flush(loyalty, 100)
                    assert report is not None and all(r.status.value == "accepted" for r in report.results)

            def raw() -> None:
                nonlocal raw_done
                for n in range(raw_done, raw_done + args.block):
                    body = json.dumps(payload, separators=(",", ":")).replace(sample_ref, f"R-{n:08d}").encode()
                    json.loads(client.request(method, target, headers=replay_headers, content=body).content)
                raw_done += args.block

            samples = interleave({"kit": kit, "raw": raw}, repetitions)
            counts = outbox.counts()
            loyalty.close()
            client.close()
            outbox.close()
    print(f"{total:,} orders each, in blocks of {args.block:,}; outbox afterwards: {counts}")
    print(describe("outbox.flush -> SessionM adapter", samples["kit"], per=args.block))
    print(describe("raw httpx, one POST per order", samples["raw"], per=args.block))
    kit_rate, raw_rate = args.block / median_wall(samples["kit"]), args.block / median_wall(samples["raw"])
    ratio = kit_rate / raw_rate
    return 0 if verdict(f"export {total:,} orders through the outbox (HTTP) vs raw httpx", f"{kit_rate:,.0f}/s",
                        f"{raw_rate:,.0f}/s", ratio, ">= 0.90x", ratio >= 0.9) else 1


if __name__ == "__main__":
    sys.exit(main())
