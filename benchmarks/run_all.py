"""Run every benchmark and print the table of results (one row per target of the performance plan).

    python benchmarks/run_all.py            # the full sizes (100k-order exports take minutes)
    python benchmarks/run_all.py --quick    # smaller sizes and fewer repetitions, for a first look

Each script runs in its own interpreter; its ``RESULT`` lines make the table. Figures are only
comparable on an otherwise idle machine: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, full-size arguments, quick arguments)
RUNS: list[tuple[str, list[str], list[str]]] = [
    ("http_evaluate.py", ["--lines", "50"], ["--lines", "50", "--calls", "10", "--repetitions", "5"]),
    ("http_evaluate.py", ["--lines", "500"], ["--lines", "500", "--calls", "3", "--repetitions", "5"]),
    ("http_write.py", [], ["--calls", "10", "--repetitions", "5"]),
    ("local_checkout.py", [], ["--block", "100", "--repetitions", "5"]),
    ("local_processes.py", [], ["--orders", "200", "--repetitions", "2"]),
    ("local_evaluate.py", [], ["--runs", "300"]),
    ("http_export.py", [], ["--orders", "4000", "--block", "1000"]),
    ("local_export.py", [], ["--orders", "4000", "--block", "1000"]),
    ("outbox_claim.py", [], ["--large", "100000", "--small", "1000", "--repetitions", "9"]),
    ("trickle.py", [], ["--repetitions", "3"]),
    ("import_time.py", [], ["--runs", "7"]),
    ("local_startup.py", [], ["--runs", "5"]),
    ("export_rss.py", [], ["--large", "20000", "--small", "2000"]),
    ("sidecar_evaluate.py", [], ["--runs", "100", "--clients", "4"]),
    # PostgreSQL: the environment's server, else a throw-away cluster (pg_virtualenv); SKIP without either
    ("outbox_throughput.py", [], ["--orders", "1000"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; figures are indicative only")
    parser.add_argument("--only", action="append", help="run only scripts whose name contains this")
    args = parser.parse_args()
    rows: list[list[str]] = []
    for script, full, quick in RUNS:
        if args.only and not any(part in script for part in args.only):
            continue
        command = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"$ python benchmarks/{script} {' '.join(command[2:])}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        print(done.stdout, end="")
        found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if "Traceback" in done.stderr or not found:
            print(done.stderr[-3000:], file=sys.stderr)
            rows.append([f"{script} {' '.join(command[2:])}", "-", "-", "-", "-", "ERROR (see its output)"])
        for line in found:
            rows.append([part.strip() for part in line[len("RESULT "):].split("|")])
        print(f"  ({time.perf_counter() - started:.0f} s)\n", flush=True)
    one, five, _ = os.getloadavg()
    print("\n| what | kit | baseline | ratio | target | verdict |\n|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nload average {one:.2f} / {five:.2f} (1 / 5 min) on {os.cpu_count()} cores"
          f"{'; quick sizes' if args.quick else ''}")
    return 0 if all(row[-1] == "PASS" or row[-1].startswith("SKIP") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
