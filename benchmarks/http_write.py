"""A write (``Loyalty.spend_cashback``) over HTTP versus a hand-written httpx client, sync and async.

Target: at most 1.10x (same-run ratio of medians). Both sides talk to the same canned loopback
server answering the bodies recorded from the engine's fake; the raw client sends the very
requests the kit sent (same headers, idempotency keys and bodies).

    python benchmarks/http_write.py [--engine sessionm] [--mode sync] [--calls 40] [--repetitions 11]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_note
from _http import ENGINES, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, action="append")
    parser.add_argument("--mode", choices=("sync", "async"), action="append")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--repetitions", type=int, default=11)
    args = parser.parse_args()
    print(load_note())
    ok = True
    with tempfile.TemporaryDirectory() as name:
        for engine in args.engine or ENGINES:
            ok &= run(engine, "spend", 1, args.calls, args.repetitions, Path(name), 1.10,
                      f"write (spend) {engine}", tuple(args.mode or ("sync", "async")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
