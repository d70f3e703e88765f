"""``Loyalty.evaluate`` over HTTP versus a hand-written httpx client, sync and async.

Targets (same-run ratio of medians, kit / raw): at most 1.10x with 50 lines, at most 1.25x with
500 lines (the kit's input limit), for SessionM and Salesforce alike. Both sides talk to the same
canned loopback server (``canned_server.py``) answering bodies recorded from the engine's fake.

    python benchmarks/http_evaluate.py                       # 50 lines, both engines
    python benchmarks/http_evaluate.py --lines 500
    python benchmarks/http_evaluate.py --engine salesforce --mode sync --calls 50 --repetitions 15
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
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--engine", choices=ENGINES, action="append")
    parser.add_argument("--mode", choices=("sync", "async"), action="append")
    parser.add_argument("--calls", type=int, default=0, help="calls per sample (default: 40 at 50 lines, 10 at 500)")
    parser.add_argument("--repetitions", type=int, default=11)
    args = parser.parse_args()
    target = 1.10 if args.lines <= 50 else 1.25
    calls = args.calls or (40 if args.lines <= 50 else 10)
    print(load_note())
    ok = True
    with tempfile.TemporaryDirectory() as name:
        for engine in args.engine or ENGINES:
            ok &= run(engine, "evaluate", args.lines, calls, args.repetitions, Path(name),
                      target, f"evaluate {args.lines} lines {engine}", tuple(args.mode or ("sync", "async")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
