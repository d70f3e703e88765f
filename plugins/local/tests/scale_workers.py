"""One worker process of the scale-out tests: ``python scale_workers.py COMMAND JSON-ARGS``.

Each command waits for the ``go`` file (so all processes start together), does its work through
a real facade on the embedded engine, and prints one JSON line with what it saw:

* ``drain``: flush the outbox until nothing is due; counts of accepted / duplicate exports.
  With ``hang_after_export`` it exports one batch, says so, and hangs before recording the
  outcome (the test then kills it with SIGKILL).
* ``spend``: cashback spends of 1.00 on one account from ``threads`` threads.
* ``redeem``: redemptions of one single-use voucher from ``threads`` threads.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loyaltykit import (
    CashbackSpend,
    InsufficientBalanceError,
    Loyalty,
    LoyaltySettings,
    Money,
    VoucherAlreadyRedeemedError,
    VoucherRedemption,
)
from loyaltykit.outbox import DONE, Outbox


def wait_for(go: str) -> None:
    while not Path(go).exists():
        time.sleep(0.005)


def facade(args: dict) -> Loyalty:
    local = {"database_url": args["engine_url"], "pool_size": 6}  # x2 overflow: within max_connections
    if args.get("program_file"):
        local["program_file"] = args["program_file"]
    return Loyalty(LoyaltySettings(engine="local", write_deadline=args.get("write_deadline", 15.0),
                                   engines={"local": local}))


def drain(args: dict) -> dict:
    seen: Counter = Counter()
    with facade(args) as loyalty, Outbox(args["outbox_url"], lease_seconds=args["lease"]) as outbox:
        if args.get("hang_after_export"):
            export = loyalty.export_orders

            def export_then_hang(orders):
                report = export(orders)
                print(json.dumps({"exported": [r.order_ref for r in report.results]}), flush=True)
                time.sleep(3600)  # killed here: exported, outcome never recorded

            loyalty.export_orders = export_then_hang  # type: ignore[method-assign]
        wait_for(args["go"])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            report = outbox.flush(loyalty, batch=args.get("batch", 10))
            if report is not None:
                seen.update(r.status.value for r in report.results)
            elif outbox.counts()[DONE] >= args.get("expect", 0):
                break  # everything is settled (by us or by the others)
            else:
                time.sleep(0.05)  # orders leased by another worker, or backing off
    return dict(seen)


def race(args: dict) -> dict:
    outcomes: Counter = Counter()
    start = threading.Barrier(args["threads"])
    prefix = args["prefix"]

    with facade(args) as loyalty:
        def attempt(index: int):
            ref = f"{prefix}-{index}"
            if args["command"] == "spend":
                return loyalty.spend_cashback(CashbackSpend(customer_id=args["customer"], order_ref=ref,
                                                            amount=Money.of("1.00", "EUR")))
            return loyalty.redeem_voucher(VoucherRedemption(code=args["code"], order_ref=ref))

        def one(index: int) -> None:
            start.wait()
            try:
                attempt(index)
                outcomes["won"] += 1
            except InsufficientBalanceError:
                outcomes["insufficient"] += 1
            except VoucherAlreadyRedeemedError:
                outcomes["already_redeemed"] += 1
            except Exception as exc:  # anything else is a failure the test reports
                outcomes[f"error:{type(exc).__name__}:{exc}"[:200]] += 1

        wait_for(args["go"])
        with ThreadPoolExecutor(max_workers=args["threads"]) as pool:
            list(pool.map(one, range(args["threads"])))
    return dict(outcomes)


def main() -> None:
    command, args = sys.argv[1], json.loads(sys.argv[2])
    args["command"] = command
    result = drain(args) if command == "drain" else race(args)
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
