"""Write transactions of the store: commit, roll back, and (SQLite) the writers' gate that queues
writers of every thread and process for the length of a transaction."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from loyaltykit_local.store import OperationalError, Prepared, Store
from loyaltykit_local.tables import vouchers

INSERT = Prepared("voucher_insert")


def voucher_row(code: str) -> dict:
    return {"code": code, "definition": {"code": code}, "owner_id": None, "offer_kind": None, "usage_limit": 1,
            "uses": 0, "created_at": datetime(2025, 1, 1, tzinfo=UTC).replace(tzinfo=None)}  # stored naive UTC


@pytest.fixture
def store(database_url: str):
    made = Store(database_url)
    yield made
    made.dispose()


def count(store: Store) -> int:
    with store.sqlalchemy_read() as conn:
        return int(conn.execute(select(func.count()).select_from(vouchers)).scalar_one())


def test_a_write_commits(store: Store) -> None:
    with store.write() as conn:
        INSERT.run(conn, voucher_row("A"))
        INSERT.run(conn, voucher_row("B"))
    with store.write() as conn:  # the connection kept from the last write serves the next one
        INSERT.run(conn, voucher_row("C"))
    with store.sqlalchemy_write() as conn:  # and SQLAlchemy's, for administration
        conn.execute(vouchers.insert(), voucher_row("D"))
    assert count(store) == 4


def test_a_failed_write_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.write() as conn:
        INSERT.run(conn, voucher_row("A"))
        INSERT.run(conn, voucher_row("B"))
        raise RuntimeError("fail part-way")
    assert count(store) == 0
    with store.write() as conn:  # and the store writes again afterwards
        INSERT.run(conn, voucher_row("A"))
    assert count(store) == 1


def test_sqlite_writers_of_two_stores_queue_on_the_gate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gate.sqlite3'}"
    first, second = Store(url), Store(url, create=False)  # two stores: as two processes would hold them
    entered, release, order = threading.Event(), threading.Event(), []

    def hold() -> None:
        with first.write() as conn:
            INSERT.run(conn, voucher_row("A"))
            entered.set()
            release.wait(10)
            order.append("first done")

    def wait_then_write() -> None:
        with second.write() as conn:
            order.append("second in")
            INSERT.run(conn, voucher_row("B"))

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    assert Path(f"{tmp_path / 'gate.sqlite3'}-writer").exists()
    waiter = threading.Thread(target=wait_then_write)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and order == []  # the second writer waits while the first holds the gate
    release.set()
    holder.join(10)
    waiter.join(10)
    assert order == ["first done", "second in"]
    assert count(first) == 2
    first.dispose()
    second.dispose()


def test_statements_are_loaded_before_the_first_write_transaction_begins(tmp_path: Path) -> None:
    """A process's one-time preparation runs before its first transaction, not while every other
    writer waits for it to commit."""
    prepared = Prepared("voucher_code")
    store = Store(f"sqlite:///{tmp_path / 'warm.sqlite3'}")
    assert prepared._on_sqlite is None  # loaded on demand until a store opens its writer connection
    with store.write() as conn:
        assert prepared._on_sqlite is not None
        INSERT.run(conn, voucher_row("A"))
        assert prepared.run(conn, {"code": "A"}).scalar_one() == "A"
    store.dispose()


def test_the_wal_starts_over_while_writers_of_several_stores_keep_writing(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Each writer checkpoints outside the gate, where the others keep appending to the WAL, so none
    of those checkpoints completes and SQLite would never start the WAL over: past a bound, one is
    run with the gate closed."""
    from loyaltykit_local import store as store_module

    monkeypatch.setattr(store_module, "_CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(store_module, "_WAL_FRAMES_MAX", 200)
    path = tmp_path / "wal.sqlite3"
    stores = [Store(f"sqlite:///{path}")] + [Store(f"sqlite:///{path}", create=False) for _ in range(2)]

    def write(index: int) -> None:
        for n in range(900):
            with stores[index].write() as conn:
                INSERT.run(conn, voucher_row(f"{index}-{n}"))

    threads = [threading.Thread(target=write, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert count(stores[0]) == 2700
    with stores[0].read() as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    frames = (Path(f"{path}-wal").stat().st_size - 32) // (page_size + 24)  # the WAL's longest extent
    # 2,700 transactions of about 7 pages: some 18,000 frames when the WAL never starts over, 1,500 to
    # 7,500 when it does (the bound, plus what the writers append while their checkpoints collide)
    assert frames < 10_000
    for made in stores:
        made.dispose()


def test_a_writer_waits_for_the_gate_no_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    """A writer stuck inside its transaction makes the next one fail as SQLite's lock would, not hang."""
    url = f"sqlite:///{tmp_path / 'stuck.sqlite3'}"
    first, second = Store(url), Store(url, create=False, busy_timeout_ms=200)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.write() as conn:
            INSERT.run(conn, voucher_row("A"))
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"), second.write() as conn:
            INSERT.run(conn, voucher_row("B"))
        waited = time.monotonic() - started
        assert 0.2 <= waited < 5
    finally:
        release.set()
        holder.join(10)
    with second.write() as conn:  # the gate free again: the same store writes
        INSERT.run(conn, voucher_row("B"))
    assert count(first) == 2
    first.dispose()
    second.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_writes_on_its_own_connection(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'fork.sqlite3'}")
    with store.write() as conn:  # the parent now keeps a writer connection and its gate descriptor
        INSERT.run(conn, voucher_row("parent"))
    parent_writer = store._writers[0] if store._writers else None
    assert parent_writer is not None
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if it wrote through a writer of its own
        code = 1
        try:
            with store.write() as conn:
                INSERT.run(conn, voucher_row("child"))
            code = 0 if store._writers and store._writers[0] is not parent_writer else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with store.write() as conn:  # the parent's own writer still works
        INSERT.run(conn, voucher_row("parent again"))
    assert count(store) == 3
    store.dispose()


def test_a_callers_error_keeps_the_connection_and_a_database_error_drops_it(tmp_path: Path) -> None:
    """A transaction the caller's own error ended (a customer not found, a balance too low) is rolled
    back and its connection kept: opening one costs more than the transaction."""
    store = Store(f"sqlite:///{tmp_path / 'kept.sqlite3'}")
    with store.read() as conn:
        reader = conn
    with pytest.raises(RuntimeError), store.read() as conn:
        assert conn is reader
        raise RuntimeError("not found")
    with store.write() as conn:
        writer = conn
    with pytest.raises(RuntimeError), store.write() as conn:
        assert conn is writer
        INSERT.run(conn, voucher_row("A"))
        raise RuntimeError("too low")
    with store.read() as conn:
        assert conn is reader and conn.in_transaction
    with store.write() as conn:
        assert conn is writer
        INSERT.run(conn, voucher_row("B"))
    with pytest.raises(OperationalError), store.write() as conn:
        conn.execute("SELECT * FROM no_such_table")
    with store.write() as conn:
        assert conn is not writer  # a database error: a fresh connection
    assert count(store) == 1
    store.dispose()
