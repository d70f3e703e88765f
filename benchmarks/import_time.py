"""Start-up cost of the kit: ``import loyaltykit`` plus plugin discovery, against a bare interpreter.

Runs each command N times, every run in a fresh subprocess, interleaved (bare, kit, bare, ...),
and prints the medians and the difference. Target: the kit adds at most 60 ms. This is a
measurement, not a timed test.

Discovery reads entry-point metadata and imports no plugin; a facade then imports only the selected
engine's adapter. The third figure shows that cost too (discovery plus loading the ``local`` adapter
class, which brings in pydantic, httpx and the adapter base), for the whole picture.

    python benchmarks/import_time.py            # 15 runs each
    python benchmarks/import_time.py --runs 31

To find what is slow: ``python -X importtime -c "import loyaltykit; loyaltykit.plugins.discover()"``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import verdict as report

TARGET_MS = 60.0
BARE = "pass"
KIT = "import loyaltykit; loyaltykit.plugins.discover()"
IMPORT_ONLY = "import loyaltykit"
WITH_ADAPTER = (
    "import loyaltykit; found = {d.name: d for d in loyaltykit.plugins.discover()}; "
    "found['local'].load() if 'local' in found else __import__('loyaltykit.adapter')"
)


def run_once(code: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    elapsed = (time.perf_counter() - started) * 1000
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"`python -c {code!r}` failed (exit {completed.returncode}):\n{tail}")
    return elapsed


def medians_ms(codes: list[str], runs: int) -> list[float]:
    """Median start-up of each command; the commands take turns, so load hits them alike."""
    # Not counted: warms the OS file cache and writes the kit's bytecode cache, as installing a package
    # does (under PYTHONDONTWRITEBYTECODE an editable install would compile the kit at every start).
    writing = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    for code in codes:
        run_once(code, writing)
    times: list[list[float]] = [[] for _ in codes]
    for _ in range(runs):
        for index, code in enumerate(codes):
            times[index].append(run_once(code))
    return [statistics.median(t) for t in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh subprocesses per command (default 15)")
    args = parser.parse_args()

    bare, import_only, kit, with_adapter = medians_ms([BARE, IMPORT_ONLY, KIT, WITH_ADAPTER], args.runs)
    print(f"python:      {sys.version.split()[0]} ({sys.executable})")
    print(f"runs:        {args.runs} per command, median of fresh subprocesses")
    print(f"bare start:  {bare:7.1f} ms   python -c {BARE!r}")
    print(f"import only: {import_only:7.1f} ms   python -c {IMPORT_ONLY!r}  (+{import_only - bare:.1f} ms)")
    print(f"kit start:   {kit:7.1f} ms   python -c {KIT!r}")
    diff = kit - bare
    verdict = "within" if diff < TARGET_MS else "OVER"
    print(f"difference:  {diff:7.1f} ms   ({verdict} the {TARGET_MS:.0f} ms target)")
    print(f"+ adapter:   {with_adapter:7.1f} ms   discovery and loading the selected adapter (+{with_adapter - bare:.1f} ms)")
    passed = report("import loyaltykit + plugin discovery", f"{kit:.0f} ms", f"{bare:.0f} ms (bare start)", None,
                     f"<= +{TARGET_MS:.0f} ms (measured +{diff:.0f} ms)", diff <= TARGET_MS)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
