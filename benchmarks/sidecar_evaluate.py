"""HTTP sidecar: evaluate latency and throughput over real HTTP, against the in-process facade.

In one run, on one embedded-engine database and one demo-sized basket (5 lines, a coupon, a rule):
  * baseline: ``Loyalty.evaluate`` called in process (what a Python shop pays);
  * the sidecar: ``POST /v1/evaluate`` to ``loyaltykit serve`` on 127.0.0.1 (uvicorn), one request
    at a time (latency: median and p95) and from ``--clients`` concurrent clients (throughput).
The difference is what a non-Python platform pays for HTTP, JSON, auth and the ASGI stack; the
``RESULT`` row compares the medians (target: at most 10 ms more than the in-process call).

    python benchmarks/sidecar_evaluate.py [--runs 400] [--clients 8] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from loyaltykit import Loyalty, LoyaltySettings
from loyaltykit.sidecar import hash_key, new_key
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import verdict

#: What reaching the kit over HTTP may add to a quote: small next to a checkout page's own budget.
OVERHEAD_TARGET_MS = 10.0

PROGRAM = """
name = "Bench Club"
currency = "EUR"

[points]
per_currency_unit = 1

[[vouchers]]
code = "WELCOME10"
kind = "percent"
percent = 10
usage_limit = "unlimited"

[[rules]]
id = "coffee-5"
when = { categories = { any = ["coffee"] } }
then = { action = "percent_off_line", percent = 5, categories = ["coffee"] }
"""

BASKET = {
    "id": "bench-cart", "currency": "EUR", "coupon_codes": ["WELCOME10"],
    "lines": [
        {"id": str(n), "sku": f"SKU-{n}", "quantity": "1", "category": "coffee" if n % 2 else "tea",
         "unit_price": {"amount": f"{5 + n}.90", "currency": "EUR"}}
        for n in range(5)
    ],
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def report(name: str, seconds: list[float]) -> None:
    print(f"{name:<34} median {statistics.median(seconds) * 1000:7.2f} ms   p95 {percentile(seconds, 0.95) * 1000:7.2f} ms")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="loyaltykit-bench-"))
    (tmp / "program.toml").write_text(PROGRAM)
    engine_url = f"sqlite:///{tmp}/engine.sqlite3"

    store = Store(engine_url, create=False)  # what `loyaltykit-local migrate` does
    store.migrate()
    store.dispose()

    # Baseline: the facade in process, same engine database and program.
    loyalty = Loyalty(LoyaltySettings(), adapter=LocalAdapter({"database_url": engine_url, "create_schema": True,
                                                               "program_file": str(tmp / "program.toml")}),
                      load_entry_points=False)
    for _ in range(20):
        loyalty.evaluate(BASKET)
    in_process = []
    for _ in range(args.runs):
        started = time.perf_counter()
        loyalty.evaluate(BASKET)
        in_process.append(time.perf_counter() - started)
    loyalty.close()

    key = new_key()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTYKIT_")}
    env.update({
        "LOYALTYKIT_LOCAL_DATABASE_URL": engine_url,
        "LOYALTYKIT_LOCAL_PROGRAM_FILE": str(tmp / "program.toml"),
        "LOYALTYKIT_OUTBOX_URL": f"sqlite:///{tmp}/outbox.sqlite3",
        "LOYALTYKIT_SIDECAR_CLIENTS": f'[{{"name": "bench", "keys": ["{hash_key(key)}"]}}]',
    })
    server = subprocess.Popen(
        [sys.executable, "-c", "from loyaltykit.cli import main; main()", "serve", "--port", str(port),
         "--workers", str(args.workers)],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for _ in range(20):
                client.post("/v1/evaluate", json=BASKET).raise_for_status()
            sequential = []
            for _ in range(args.runs):
                started = time.perf_counter()
                client.post("/v1/evaluate", json=BASKET).raise_for_status()
                sequential.append(time.perf_counter() - started)

        lock = threading.Lock()
        done = [0]
        per_client = max(1, args.runs // args.clients)

        def worker(_):
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                for _ in range(per_client):
                    client.post("/v1/evaluate", json=BASKET).raise_for_status()
                    with lock:
                        done[0] += 1

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(worker, range(args.clients)))
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(20)

    print(f"evaluate, 5-line basket with a coupon and a rule; {args.runs} calls each; "
          f"sidecar with {args.workers} worker(s) on {os.cpu_count()} cores")
    report("in-process facade (baseline)", in_process)
    report("sidecar over HTTP, 1 client", sequential)
    print(f"{'in-process throughput':<34} {1 / statistics.mean(in_process):7.0f} /s (one thread)")
    print(f"{'sidecar throughput':<34} {done[0] / elapsed:7.0f} /s ({args.clients} concurrent clients)")
    sidecar_ms, facade_ms = statistics.median(sequential) * 1000, statistics.median(in_process) * 1000
    overhead = sidecar_ms - facade_ms
    print(f"{'HTTP overhead (median)':<34} {overhead:7.2f} ms")
    passed = verdict(f"sidecar evaluate over HTTP, {args.workers} worker(s)", f"{sidecar_ms:.2f} ms",
                     f"{facade_ms:.2f} ms (in-process facade)", sidecar_ms / facade_ms,
                     f"<= +{OVERHEAD_TARGET_MS:.0f} ms (measured +{overhead:.2f} ms)", overhead <= OVERHEAD_TARGET_MS)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
