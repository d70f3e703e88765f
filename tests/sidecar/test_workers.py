"""Exactly once over real HTTP: `loyaltykit serve` with several uvicorn worker processes on
127.0.0.1, the embedded engine on one SQLite (WAL) database, the outbox and the idempotency records on
another (the kit's ``outbox_url``), and 50 requests released at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from loyaltykit.sidecar import hash_key

from .conftest import KEY

RACERS = 50
WORKERS = 3
PROGRAM = """
currency = "EUR"

[[vouchers]]
code = "ONLY-ONE"
kind = "fixed"
amount = 5

[[vouchers]]
code = "SECOND"
kind = "fixed"
amount = 2
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp: Path = tmp_path_factory.mktemp("workers")
    (tmp / "program.toml").write_text(PROGRAM)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTYKIT_", "PROMETHEUS_"))}
    env.update({
        "LOYALTYKIT_LOCAL_DATABASE_URL": f"sqlite:///{tmp}/engine.sqlite3",
        "LOYALTYKIT_LOCAL_PROGRAM_FILE": str(tmp / "program.toml"),
        "LOYALTYKIT_OUTBOX_URL": f"sqlite:///{tmp}/outbox.sqlite3",  # the outbox and the idempotency records
        "LOYALTYKIT_SIDECAR_CLIENTS": f'[{{"name": "pos", "keys": ["{hash_key(KEY)}"]}}]',
        "LOYALTYKIT_SIDECAR_FLUSH_INTERVAL": "0",
    })
    # The server writes to its own copy of the log's descriptor, so ours closes once it started.
    with open(tmp / "server.log", "wb") as log:
        # As documented: the embedded engine's schema is migrated once, before the workers start.
        subprocess.run([sys.executable, "-c", "from loyaltykit_local.cli import main; main()", "migrate"],
                       cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=60)
        process = subprocess.Popen(
            [sys.executable, "-c", "from loyaltykit.cli import main; main()", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(WORKERS)],
            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and process.poll() is None:
        try:
            ready = httpx.get(base + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready:
            break
        time.sleep(0.2)
    if not ready:
        process.terminate()
        process.wait(10)
        pytest.fail("the sidecar did not start:\n" + (tmp / "server.log").read_text()[-3000:])
    children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == process.pid]
    assert len(children) >= WORKERS, "uvicorn did not start its worker processes"
    yield base, tmp
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _race(count, work):
    start = threading.Barrier(count)

    def one(index):
        start.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def _redemptions(tmp: Path, code: str) -> int:
    import sqlite3

    with sqlite3.connect(tmp / "engine.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM lk_redemptions WHERE code = ?", (code,)).fetchone()[0]


def test_fifty_parallel_redemptions_of_one_single_use_code_burn_it_once(server):
    base, tmp = server
    with httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=RACERS)) as client:
        def redeem(index):
            response = client.post("/v1/vouchers/redeem", json={"code": "ONLY-ONE", "order_ref": f"ORD-{index}"},
                                   headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": f"race-{index}"})
            return response.status_code, response.json().get("code")

        results = _race(RACERS, redeem)
    assert sorted(results).count((200, "ONLY-ONE")) == 1, results
    assert sorted(results).count((422, "voucher_already_redeemed")) == RACERS - 1, results
    assert _redemptions(tmp, "ONLY-ONE") == 1


def test_fifty_parallel_requests_with_one_key_apply_once(server):
    base, tmp = server
    body = {"code": "SECOND", "order_ref": "ORD-SAME"}
    with httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=RACERS)) as client:
        def redeem(_):
            response = client.post("/v1/vouchers/redeem", json=body,
                                   headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": "same-key"})
            return response.status_code, response.headers.get("idempotent-replayed"), response.json()

        results = _race(RACERS, redeem)
    statuses = [status for status, _, _ in results]
    # One request ran; the others saw it in flight (409) or replayed its stored answer.
    fresh = [r for r in results if r[0] != 409 and r[1] != "true"]
    assert len(fresh) == 1 and fresh[0][0] == 200, statuses
    assert set(statuses) <= {200, 409}
    assert all(r[2] == fresh[0][2] for r in results if r[1] == "true")
    assert all(r[2]["code"] == "idempotency_in_flight" for r in results if r[0] == 409)
    assert _redemptions(tmp, "SECOND") == 1


def test_metrics_add_up_across_worker_processes(server):
    base, _ = server
    text = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    # The first race's 49 refusals were answered by several workers; any one of them reports all.
    line = next(row for row in text.splitlines()
                if row.startswith("loyaltykit_sidecar_request_seconds_count") and 'status="422"' in row)
    assert float(line.rsplit(" ", 1)[1]) == RACERS - 1
