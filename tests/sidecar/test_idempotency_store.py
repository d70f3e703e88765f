"""The idempotency store on SQLite and on PostgreSQL: one winner per key under concurrency, replay,
mismatch, leases of dead workers, unknown outcomes, retention.

PostgreSQL: the server named by the PG* environment variables when PGHOST is set; otherwise a
throw-away cluster started here with ``pg_virtualenv -t``; otherwise skipped with the reason
(and failed in CI, where a skip would hide that the PostgreSQL path went untested)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from loyaltykit.sidecar.idempotency import DONE, UNKNOWN, Decision, IdempotencyStore, fingerprint


def _url_from_env(env) -> str:
    user = quote(env.get("PGUSER", "postgres"), safe="")
    password = env.get("PGPASSWORD")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    return (f"postgresql+psycopg://{auth}@{env.get('PGHOST', 'localhost')}:{env.get('PGPORT', '5432')}"
            f"/{env.get('PGDATABASE', 'postgres')}")


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres_url():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (requirements-dev installs it)")
    if os.environ.get("PGHOST"):
        yield _url_from_env(os.environ)
        return
    pg_virtualenv = shutil.which("pg_virtualenv")
    if pg_virtualenv is None:
        _unavailable("no PostgreSQL: PGHOST is not set and pg_virtualenv is not installed")
    process = subprocess.Popen(
        [pg_virtualenv, "-t", "sh", "-c", 'env | grep "^PG"; echo "READY $$"; exec sleep 900'],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    env: dict[str, str] = {}
    holder = None
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("READY "):
            holder = int(line.split()[1])
            break
        key, _, value = line.rstrip("\n").partition("=")
        env[key] = value
    if holder is None:
        process.kill()
        _unavailable("pg_virtualenv could not start a cluster")
    try:
        yield _url_from_env(env)
    finally:
        os.kill(holder, signal.SIGTERM)  # the placeholder command ends; pg_virtualenv drops its cluster
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    made = []

    def make(clock=time.time, retention=86400.0):
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/keys.sqlite3"
        else:
            url = request.getfixturevalue("postgres_url")
        store = IdempotencyStore(url, retention_seconds=retention, clock=clock)
        made.append(store)
        return store

    yield make
    if request.param == "postgresql" and made:
        from loyaltykit.sidecar.idempotency import records

        with made[0].engine.begin() as conn:
            conn.execute(records.delete())
    for store in made:
        store.close()


FP = fingerprint("redeem_voucher", {"code": "X", "order_ref": "O-1"})
OTHER = fingerprint("redeem_voucher", {"code": "X", "order_ref": "O-2"})


def test_fingerprint_ignores_key_order_and_sees_values():
    assert fingerprint("op", {"a": 1, "b": "2"}) == fingerprint("op", {"b": "2", "a": 1})
    assert fingerprint("op", {"a": 1}) != fingerprint("op", {"a": 2})
    assert fingerprint("op", {"a": 1}) != fingerprint("other", {"a": 1})


def test_first_runs_then_replay_mismatch_and_clients_are_apart(make_store):
    store = make_store()
    assert store.begin("pos", "k", "redeem_voucher", FP, 30).decision is Decision.EXECUTE
    assert store.begin("pos", "k", "redeem_voucher", FP, 30).decision is Decision.IN_FLIGHT
    store.finish("pos", "k", 200, '{"ok":true}')
    replay = store.begin("pos", "k", "redeem_voucher", FP, 30)
    assert (replay.decision, replay.status_code, replay.body) == (Decision.REPLAY, 200, '{"ok":true}')
    assert store.begin("pos", "k", "redeem_voucher", OTHER, 30).decision is Decision.MISMATCH
    assert store.begin("pos", "k", "spend_cashback", FP, 30).decision is Decision.MISMATCH
    assert store.begin("sfcc", "k", "redeem_voucher", OTHER, 30).decision is Decision.EXECUTE
    assert store.state("pos", "k") == DONE


def test_dead_workers_lease_and_unknown_outcomes_are_reconciled_once(make_store):
    clock = Clock()
    store = make_store(clock=clock)
    assert store.begin("pos", "k", "redeem_voucher", FP, 30).decision is Decision.EXECUTE
    clock.now += 31  # the worker died holding the key
    assert store.begin("pos", "k", "redeem_voucher", FP, 30).decision is Decision.RECONCILE
    assert store.begin("pos", "k", "redeem_voucher", FP, 30).decision is Decision.IN_FLIGHT
    store.mark_unknown("pos", "k")
    assert store.state("pos", "k") == UNKNOWN
    assert store.begin("pos", "k", "redeem_voucher", FP, 30).decision is Decision.RECONCILE
    store.release("pos", "k")
    assert store.begin("pos", "k", "redeem_voucher", FP, 30).decision is Decision.EXECUTE


def test_answers_are_kept_for_the_retention_then_forgotten(make_store):
    clock = Clock()
    store = make_store(clock=clock, retention=24 * 3600)
    store.begin("pos", "k", "redeem_voucher", FP, 30)
    store.finish("pos", "k", 200, "{}")
    clock.now += 24 * 3600 - 1
    assert store.begin("pos", "k", "redeem_voucher", FP, 30).decision is Decision.REPLAY
    clock.now += 2
    assert store.purge() == 1
    assert store.begin("pos", "k", "redeem_voucher", OTHER, 30).decision is Decision.EXECUTE


def test_one_key_from_many_threads_has_one_winner(make_store):
    store = make_store()
    count = 24
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        return store.begin("pos", "race", "redeem_voucher", FP, 30).decision

    with ThreadPoolExecutor(count) as pool:
        decisions = list(pool.map(one, range(count)))
    assert decisions.count(Decision.EXECUTE) == 1
    assert decisions.count(Decision.IN_FLIGHT) == count - 1


def test_retention_setting_is_at_least_24_hours():
    from pydantic import ValidationError

    from loyaltykit.sidecar import SidecarSettings

    assert SidecarSettings().retention_seconds == 24 * 3600
    assert SidecarSettings(idempotency_retention_hours=48).retention_seconds == 48 * 3600
    with pytest.raises(ValidationError):
        SidecarSettings(idempotency_retention_hours=23)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_outbox_and_the_keys_share_the_kits_outbox_url(request, tmp_path, backend):
    from loyaltykit import LoyaltySettings, Order
    from loyaltykit.outbox import Outbox
    from loyaltykit.sidecar.idempotency import records, sqlalchemy_url

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/shared.sqlite3"
    else:  # as the kit's setting spells it, without a driver: the store picks psycopg, like the outbox
        url = request.getfixturevalue("postgres_url").replace("postgresql+psycopg://", "postgresql://")
    settings = LoyaltySettings(outbox_url=url)
    ref = f"SHARED-{uuid.uuid4().hex[:8]}"  # a server reused across runs keeps earlier rows
    outbox = Outbox.from_settings(settings)
    store = IdempotencyStore.from_settings(settings)
    try:
        outbox.add(Order.model_validate({"ref": ref, "currency": "EUR", "placed_at": "2026-01-01T10:00:00Z",
                                         "lines": [{"id": "1", "sku": "A", "quantity": "1",
                                                    "unit_price": {"amount": "1.00", "currency": "EUR"}}]}))
        assert store.begin("pos", "shared-k", "op", fingerprint("op", {}), 30).decision is Decision.EXECUTE
        assert outbox.entry(ref).state == "pending"
        assert store.engine.url.render_as_string(hide_password=False) == sqlalchemy_url(url)
        if backend == "sqlite":  # one file holds both tables
            assert store.engine.url.database == f"{tmp_path}/shared.sqlite3"
    finally:
        with store.engine.begin() as conn:
            conn.execute(records.delete())
        outbox.drop(ref, reason="test cleanup")
        store.close()
        outbox.close()


def test_an_outbox_url_reads_as_a_sqlalchemy_url():
    from loyaltykit.sidecar.idempotency import sqlalchemy_url

    assert sqlalchemy_url("postgresql://u:p@db:5432/shop") == "postgresql+psycopg://u:p@db:5432/shop"
    assert sqlalchemy_url("postgres://db/shop") == "postgresql+psycopg://db/shop"
    assert sqlalchemy_url("postgresql+psycopg://db/shop") == "postgresql+psycopg://db/shop"
    assert sqlalchemy_url("sqlite:///.loyaltykit/outbox.sqlite3") == "sqlite:///.loyaltykit/outbox.sqlite3"
    assert sqlalchemy_url(".loyaltykit/outbox.sqlite3") == "sqlite:///.loyaltykit/outbox.sqlite3"
