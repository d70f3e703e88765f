"""Boot N worker processes the way a pre-forking server does, all at once, on one database.

Run as a script: ``python boot_workers.py URL N``. The master imports everything, forks N workers
that wait on one barrier, then each builds its facade (creating the schema if the database is new)
and makes one call. Prints one JSON line: how many started, and the errors of the others.
"""

from __future__ import annotations

import json
import multiprocessing
import sys

import loyaltykit_local.adapter
import loyaltykit_local.service  # noqa: F401
from loyaltykit import Loyalty, LoyaltySettings


def worker(url: str, barrier, results) -> None:
    barrier.wait()
    try:
        settings = LoyaltySettings(engine="local", engines={"local": {"database_url": url, "create_schema": True}})
        with Loyalty(settings) as loyalty:
            loyalty.identify(email="nobody@example.com")
        results.put("ok")
    except Exception as exc:  # reported to the test, which fails on any
        results.put(f"{type(exc).__name__}: {exc}")


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(count), context.Queue()
    processes = [context.Process(target=worker, args=(url, barrier, results)) for _ in range(count)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    errors = [o for o in outcomes if o != "ok"]
    print(json.dumps({"started": outcomes.count("ok"), "errors": errors[:5]}))


if __name__ == "__main__":
    main()
