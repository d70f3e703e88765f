"""Start-up of ``Loyalty()`` on the embedded engine, against a bare interpreter start.

Each run is a fresh subprocess that builds the facade from settings (engine ``local``, a fresh
SQLite file migrated beforehand, untimed, as ``loyaltykit-local migrate`` does) and closes it; runs are interleaved with bare starts. Target: at
most +300 ms over the bare start.

For reference (not part of the verdict) a third fresh interpreter, interleaved with the other two,
only imports pydantic-settings, the configuration library every start of the kit loads: the part of
the figure that is that import and its exit, before any of the kit's own work.

The first pair is not timed: it warms the OS file cache and writes the bytecode cache of the kit's
modules, as installing a package does (the bare start reads the standard library's). Without it, an
editable install under ``PYTHONDONTWRITEBYTECODE`` compiles every source of the kit at every start.

    python benchmarks/local_startup.py [--runs 11]

To find what is slow: ``python -X importtime -c "from loyaltykit import Loyalty; Loyalty().close()"``
with ``LOYALTYKIT_LOCAL_DATABASE_URL`` set.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_note, verdict

TARGET_MS = 300.0
BARE = "pass"
SETTINGS = "import pydantic_settings"
KIT = "from loyaltykit import Loyalty; Loyalty().close()"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) of one fresh interpreter running ``code``, in ms."""
    cpu = _children_cpu()
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    elapsed = (time.perf_counter() - started) * 1000
    if completed.returncode != 0:
        raise SystemExit(f"`python -c {code!r}` failed:\n{completed.stderr[-2000:]}")
    return elapsed, (_children_cpu() - cpu) * 1000


def migrate(url: str) -> None:
    from loyaltykit_local.store import Store

    store = Store(url, create=False)
    store.migrate()
    store.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    print(load_note())
    bare_times, kit_times, bare_cpu, kit_cpu, settings_times, settings_cpu = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as name:
        for run in range(args.runs + 1):
            url = f"sqlite:///{Path(name) / f'start-{run}.sqlite3'}"
            migrate(url)
            env = {**os.environ, "LOYALTYKIT_ENGINE": "local", "LOYALTYKIT_LOCAL_DATABASE_URL": url}
            if not run:  # untimed: the OS file cache, and the bytecode an installed package has
                env.pop("PYTHONDONTWRITEBYTECODE", None)
            (bare, bare_used), (kit, kit_used) = run_once(BARE, env), run_once(KIT, env)
            settings, settings_used = run_once(SETTINGS, env)
            if run:
                settings_times.append(settings)
                settings_cpu.append(settings_used)
                bare_times.append(bare)
                kit_times.append(kit)
                bare_cpu.append(bare_used)
                kit_cpu.append(kit_used)
    bare, kit = statistics.median(bare_times), statistics.median(kit_times)
    cpu_bare, cpu_kit = statistics.median(bare_cpu), statistics.median(kit_cpu)
    print(f"bare start:            {bare:7.1f} ms   cpu {cpu_bare:6.1f} ms")
    print(f"Loyalty() on 'local':  {kit:7.1f} ms   cpu {cpu_kit:6.1f} ms   (+{kit - bare:.1f} ms wall, "
          f"+{cpu_kit - cpu_bare:.1f} ms cpu; fresh migrated database file each run)")
    settings, cpu_settings = statistics.median(settings_times), statistics.median(settings_cpu)
    print(f"  of which pydantic-settings' import alone: {settings:7.1f} ms   cpu {cpu_settings:6.1f} ms   "
          f"(+{settings - bare:.1f} ms wall over the bare start; reference, not the verdict)")
    passed = verdict("Loyalty() on the embedded engine", f"{kit:.0f} ms", f"{bare:.0f} ms (bare start)", None,
                     f"<= +{TARGET_MS:.0f} ms (measured +{kit - bare:.0f} ms)", kit - bare <= TARGET_MS)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
