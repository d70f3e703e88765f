"""Many worker processes on one store (SQLite file or PostgreSQL), not threads alone.

Each test starts real OS processes (``scale_workers.py``) released together, on both backends:
the outbox drained by N workers exports every order once; a worker killed mid-flush leaves its
orders to the others once its lease runs out, and the engine still records each order once;
concurrent spends never overdraw; one single-use voucher is redeemed once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from loyaltykit import Line, Money, Order
from loyaltykit.outbox import DONE, Outbox
from loyaltykit_local.program import load_program
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store
from loyaltykit_local.tables import ledger, orders

WORKER = Path(__file__).with_name("scale_workers.py")
PROGRAM = """
name = "scale-out"
currency = "EUR"

[points]
per_currency_unit = 1

[[vouchers]]
code = "ONLY-ONE"
kind = "fixed"
amount = 5
"""


@pytest.fixture
def setup(tmp_path, database_url):
    """The engine's database (migrated, program loaded), an outbox beside it, and a way to start workers."""
    program_file = tmp_path / "program.toml"
    program_file.write_text(PROGRAM, encoding="utf-8")
    store = Store(database_url)
    engine = LocalEngine(store, load_program(program_file))
    outbox_url = database_url if database_url.startswith("postgresql") else f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    go = tmp_path / "go"
    started: list[subprocess.Popen] = []

    def start(command: str, **args) -> subprocess.Popen:
        args = {"engine_url": database_url, "outbox_url": outbox_url, "program_file": str(program_file),
                "go": str(go), **args}
        process = subprocess.Popen([sys.executable, str(WORKER), command, json.dumps(args)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    class Setup:
        pass

    s = Setup()
    s.engine, s.store, s.outbox_url, s.start, s.go = engine, store, outbox_url, start, go
    yield s
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
    store.dispose()


def results(processes: list[subprocess.Popen], timeout: float = 120) -> list[dict]:
    found = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err[-2000:]
        found.append(json.loads(out.strip().splitlines()[-1])["result"])
    return found


def order(ref: str, customer_id: str | None = None) -> Order:
    line = Line(id="1", sku="BEANS", quantity=1, unit_price=Money.of("10.00", "EUR"))
    return Order(ref=ref, currency="EUR", lines=(line,), total=Money.of("10.00", "EUR"), customer_id=customer_id)


def count(store: Store, statement) -> int:
    with store.sqlalchemy_read() as conn:
        return conn.execute(statement).scalar_one()


def test_worker_processes_drain_the_outbox_and_each_order_is_exported_once(setup):
    customers = [setup.engine.create_customer() for _ in range(8)]
    total = 96
    with Outbox(setup.outbox_url) as outbox:
        for i in range(total):  # half guests, half 8 customers with 6 orders each, delivered in order
            outbox.add(order(f"W-{i}", customers[(i // 2) % 8] if i % 2 else None))
    workers = [setup.start("drain", lease=30, batch=5, expect=total) for _ in range(3)]
    setup.go.touch()

    seen = results(workers)

    assert sum(r.get("accepted", 0) for r in seen) == total
    assert sum(r.get("duplicate", 0) for r in seen) == 0, "no order was exported twice"
    with Outbox(setup.outbox_url) as outbox:
        assert outbox.counts()[DONE] == total
    assert count(setup.store, select(func.count()).select_from(orders)) == total
    with setup.store.sqlalchemy_read() as conn:
        recorded = conn.execute(select(orders.c.customer_id, orders.c.ref).order_by(orders.c.id)).all()
    for customer in customers:
        refs = [int(ref.split("-")[1]) for who, ref in recorded if who == customer]
        assert len(refs) == 6 and refs == sorted(refs), "each customer's orders reached the engine in order"


def test_a_worker_killed_mid_flush_leaves_its_orders_to_the_others_once_its_lease_runs_out(setup):
    customers = [setup.engine.create_customer() for _ in range(10)]
    total = 40
    with Outbox(setup.outbox_url) as outbox:
        for i in range(total):
            outbox.add(order(f"X-{i}", customers[i % 10]))
    doomed = setup.start("drain", lease=1.0, write_deadline=0.5, batch=10, hang_after_export=True)
    setup.go.touch()
    line = doomed.stdout.readline()
    exported = json.loads(line)["exported"]
    assert len(exported) == 10
    os.kill(doomed.pid, signal.SIGKILL)  # exported, outcome never recorded
    doomed.wait()
    killed_at = time.monotonic()

    survivors = [setup.start("drain", lease=1.0, write_deadline=0.5, batch=10, expect=total) for _ in range(2)]
    seen = results(survivors)

    assert time.monotonic() - killed_at >= 0.5, "the killed worker's orders waited for its lease"
    assert sum(r.get("accepted", 0) for r in seen) == total - 10
    assert sum(r.get("duplicate", 0) for r in seen) == 10, "the killed worker's orders: exported again, recorded once"
    with Outbox(setup.outbox_url) as outbox:
        assert outbox.counts()[DONE] == total
    assert count(setup.store, select(func.count()).select_from(orders)) == total
    earns = select(ledger.c.order_ref, func.count()).where(ledger.c.entry == "earn", ledger.c.order_ref.is_not(None)) \
        .group_by(ledger.c.order_ref)
    with setup.store.sqlalchemy_read() as conn:
        per_order = dict(conn.execute(earns).all())
    assert len(per_order) == total and set(per_order.values()) == {1}, "each order earned its points once"


def test_fifty_concurrent_spends_from_several_processes_never_overdraw(setup):
    ann = setup.engine.create_customer(cashback=Money.of("20.00", "EUR"))
    racers = [setup.start("spend", customer=ann, threads=10, prefix=f"S{p}") for p in range(5)]
    setup.go.touch()

    seen = results(racers)

    assert sum(r.get("won", 0) for r in seen) == 20
    assert sum(r.get("insufficient", 0) for r in seen) == 30, seen
    assert setup.engine.balances(ann)[1] == Money.of("0.00", "EUR")


def test_a_hundred_concurrent_redemptions_of_one_single_use_voucher_from_several_processes_one_wins(setup):
    racers = [setup.start("redeem", code="ONLY-ONE", threads=25, prefix=f"R{p}") for p in range(4)]
    setup.go.touch()

    seen = results(racers)

    assert sum(r.get("won", 0) for r in seen) == 1
    assert sum(r.get("already_redeemed", 0) for r in seen) == 99, seen
    assert setup.engine.voucher_uses("ONLY-ONE") == 1


def test_twenty_four_workers_booting_together_on_a_new_database_all_start(tmp_path, database_url):
    # Pre-forked as a web server does; each creates the schema if missing (create_schema = true).
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'brand-new.sqlite3'}"
    script = Path(__file__).with_name("boot_workers.py")
    done = subprocess.run([sys.executable, str(script), database_url, "24"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"started": 24, "errors": []}
    store = Store(database_url, create=False)
    try:
        store.check_schema()  # migrated exactly to this release's version
    finally:
        store.dispose()
