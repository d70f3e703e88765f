"""The SFCC cartridge's own tests (Node's built-in runner, with the dw.* mocks in the repository) run
as part of the normal test run, and an end-to-end run of the cartridge's code against a real sidecar
on 127.0.0.1 on the embedded engine.

Without Node the tests skip with the reason, except in CI (CI=true), where they fail."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SFCC = ROOT / "platforms" / "sfcc"
UNIT_TESTS = sorted((SFCC / "test" / "unit").glob("*.test.js"))
E2E_TEST = SFCC / "test" / "e2e" / "checkout.e2e.test.js"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node (20 or later) is required to test the SFCC cartridge")
        pytest.skip("node is not installed: the SFCC cartridge's tests need Node 20 or later")
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1))
    if major < 20:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Node {version} is too old for the SFCC cartridge's tests (20 or later)")
        pytest.skip(f"Node {version} is too old for the SFCC cartridge's tests (20 or later)")
    return found


def run_node(test_file: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [node(), "--require", "./test/setup.js", "--test", "--test-reporter=tap", str(test_file)],
        cwd=SFCC, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def test_there_are_cartridge_tests():
    assert {p.name for p in UNIT_TESTS} >= {"mapping.test.js", "calculate.test.js", "service.test.js",
                                            "payment.test.js", "outbox.test.js", "pricing.test.js"}


@pytest.mark.parametrize("test_file", UNIT_TESTS, ids=lambda p: p.name)
def test_cartridge_unit_tests(test_file: Path):
    done = run_node(test_file)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    passed = int(re.search(r"^# pass (\d+)", done.stdout, re.M).group(1))
    assert passed > 0 and re.search(r"^# fail 0$", done.stdout, re.M), report
    assert re.search(r"^# skipped 0$", done.stdout, re.M), report


def test_a_failing_cartridge_test_fails_the_run(tmp_path: Path):
    """The runner reports a failing Node test as a failure (not as a pass with output)."""
    failing = tmp_path / "deliberately_failing.test.js"
    failing.write_text("require('node:test')('fails', () => { require('node:assert').equal(1, 2); });\n")
    done = run_node(failing)
    assert done.returncode != 0
    assert re.search(r"^# fail 1$", done.stdout, re.M)


# -- end to end: the cartridge's client code against a real sidecar ----------------------------------
PROGRAM = """
name = "SFCC end-to-end"
currency = "EUR"
currencies = ["EUR"]

[points]
per_currency_unit = 1

[cashback]
spend_min = 1
spend_max = 200

[[vouchers]]
code = "ONLY-ONE"
kind = "fixed"
amount = 5
label = "5 EUR off"

[[rules]]
id = "coffee-5"
label = "5 % off coffee"
when = { categories = { any = ["coffee"] } }
then = { action = "percent_off_line", percent = 5, categories = ["coffee"] }
"""

CLIENT = "sfcc"
KEY = "lk_e2e-sfcc-cartridge-key-0001"
EMAIL = "ann@example.com"


@pytest.fixture
def live_sidecar(tmp_path: Path):
    """A sidecar on 127.0.0.1 (uvicorn, real sockets) on the embedded engine, flushing its outbox and
    requiring signed requests (the cartridge signs them)."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("uvicorn", reason="the sidecar extra is not installed (pip install loyaltykit[sidecar])")
    import uvicorn

    from loyaltykit import Loyalty, LoyaltySettings, Money
    from loyaltykit.outbox import Outbox
    from loyaltykit.sidecar import SidecarSettings, create_app, hash_key
    from loyaltykit.sidecar.idempotency import IdempotencyStore
    from loyaltykit_local.adapter import LocalAdapter
    from loyaltykit_local.program import parse_program
    from loyaltykit_local.service import LocalEngine
    from loyaltykit_local.store import Store

    # As in production: the embedded engine's schema is migrated first (`loyaltykit-local migrate`),
    # then served by a process that only checks it.
    engine_url = f"sqlite:///{tmp_path}/engine.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTYKIT_")}
    subprocess.run([sys.executable, "-c", "from loyaltykit_local.cli import main; main()", "migrate"], cwd=tmp_path,
                   env={**env, "LOYALTYKIT_LOCAL_DATABASE_URL": engine_url}, capture_output=True, check=True,
                   timeout=60)
    db = Store(engine_url, create=False)
    db.check_schema()
    engine = LocalEngine(db, parse_program(PROGRAM, "sfcc-e2e.toml"))
    customer_id = engine.create_customer(identifiers={"email": EMAIL}, cashback=Money.of("25.00", "EUR"))
    # The outbox and the idempotency records share the kit's outbox_url.
    kit = LoyaltySettings(outbox_url=f"sqlite:///{tmp_path}/outbox.sqlite3")
    loyalty = Loyalty(kit, adapter=LocalAdapter(engine=engine), load_entry_points=False)
    settings = SidecarSettings(clients=[{"name": CLIENT, "keys": [hash_key(KEY)]}], flush_interval=0.1,
                               hmac="required")
    outbox = Outbox.from_settings(kit)
    store = IdempotencyStore.from_settings(kit, retention_seconds=settings.retention_seconds)
    app = create_app(settings, loyalty=loyalty, outbox=outbox, store=store)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the sidecar did not start"
        time.sleep(0.02)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "engine": engine, "customer_id": customer_id}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()
        outbox.close()
        db.dispose()


def test_cartridge_checkout_end_to_end_against_a_real_sidecar(live_sidecar):
    done = run_node(E2E_TEST, env={
        "LOYALTYKIT_E2E_URL": live_sidecar["url"],
        "LOYALTYKIT_E2E_CLIENT": CLIENT,
        "LOYALTYKIT_E2E_KEY": KEY,
        "LOYALTYKIT_E2E_CUSTOMER": live_sidecar["customer_id"],
        "LOYALTYKIT_E2E_EMAIL": EMAIL,
    }, timeout=300)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert re.search(r"^# pass 2$", done.stdout, re.M) and re.search(r"^# skipped 0$", done.stdout, re.M), report
    engine = live_sidecar["engine"]
    # The engine saw: the single-use code burned once, the placed order exported once, the failed
    # order never, and the cashback back to what the refund and the compensation leave.
    assert engine.voucher_uses("ONLY-ONE") == 1
    assert engine.orders_received().count("E2E-1001") == 1
    assert "E2E-1002" not in engine.orders_received()
    summary = re.search(r"E2E-SUMMARY (\{.*\})", done.stdout)
    assert summary, report
    _, cashback = engine.balances(live_sidecar["customer_id"], "EUR")
    assert f"{cashback.amount:.2f}" in summary.group(1), summary.group(1)
