"""Prepared statements (the checkout's hot path) store and read exactly what SQLAlchemy does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from loyaltykit_local.store import Prepared, Store, customers, ledger, orders

AT = datetime(2025, 5, 15, 12, 30, 1, 123456, tzinfo=UTC).replace(tzinfo=None)  # stored naive UTC


def order_row(ref: str, key: str) -> dict:
    return {"ref": ref, "write_key": key, "customer_id": "C1", "currency": "EUR", "total_minor": 3380,
            "points_earned": 87, "cashback_earned_minor": 68, "rules": ["coffee-bonus", "big"],
            "placed_at": AT, "created_at": AT}


@pytest.fixture
def store(database_url: str):
    made = Store(database_url)
    yield made
    made.dispose()


def test_insert_stores_what_sqlalchemy_stores(store: Store) -> None:
    with store.write() as conn:
        first = Prepared.insert(orders).run(conn, order_row("A", "ka")).inserted_id
        conn.execute(orders.insert(), order_row("B", "kb"))
    with store.read() as conn:
        rows = {row.ref: row for row in conn.execute(select(orders))}
    assert first == rows["A"].id
    prepared, plain = rows["A"]._asdict(), rows["B"]._asdict()
    for name in ("id", "ref", "write_key"):
        prepared.pop(name), plain.pop(name)
    assert prepared == plain
    assert rows["A"].rules == ["coffee-bonus", "big"] and rows["A"].placed_at == AT


def test_many_rows_constants_and_repeated_parameters(store: Store) -> None:
    entry = {"customer_id": "C1", "balance": "points", "currency": None, "entry": "earn", "order_ref": "A",
             "write_key": "ka", "label": "order A", "created_at": AT, "expires_at": None}
    with store.write() as conn:
        Prepared.insert(ledger).run(conn, [{**entry, "amount": 5}, {**entry, "amount": 7},
                                           {**entry, "amount": 11, "balance": "cashback", "currency": "EUR"}])
    # a literal ("points") and a LIMIT are constants of the statement; "who" is bound once, used twice
    points = Prepared(select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
        ledger.c.customer_id == bindparam("who"), ledger.c.balance == "points"))
    either = Prepared(select(ledger.c.amount).where(
        (ledger.c.customer_id == bindparam("who")) | (ledger.c.order_ref == bindparam("who")))
        .order_by(ledger.c.amount).limit(2))
    with store.read() as conn:
        assert points.run(conn, {"who": "C1"}).scalar_one() == 12
        assert points.run(conn, {"who": "C2"}).scalar_one() == 0
        assert [amount for (amount,) in either.run(conn, {"who": "A"})] == [5, 7]


def test_a_unique_violation_is_sqlalchemys_integrity_error(store: Store) -> None:
    insert = Prepared.insert(orders)
    with store.write() as conn:
        insert.run(conn, order_row("A", "ka"))
    with pytest.raises(IntegrityError), store.write() as conn:
        insert.run(conn, order_row("B", "ka"))
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == 1


def test_selected_rows_read_like_sqlalchemys(store: Store) -> None:
    with store.write() as conn:
        conn.execute(customers.insert(), {"id": "C1", "segments": ["vip", "staff"], "created_at": AT,
                                          "expiry_recorded_until": AT})
    query = select(customers).where(customers.c.id == bindparam("customer_id"))
    with store.read() as conn:
        prepared = Prepared(query).run(conn, {"customer_id": "C1"}).first()
        plain = conn.execute(query, {"customer_id": "C1"}).first()
        assert Prepared(query).run(conn, {"customer_id": "nobody"}).first() is None
    assert prepared.segments == ["vip", "staff"] and prepared.expiry_recorded_until == AT
    assert tuple(prepared) == tuple(plain)


@pytest.mark.parametrize("moment", [
    AT,
    datetime(2025, 5, 15, 12, 30, 1, tzinfo=UTC).replace(tzinfo=None),  # no microseconds: six digits all the same
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC).replace(tzinfo=None),  # a year of three digits
    datetime(2025, 5, 15, 12, 30, 1, 123456, tzinfo=UTC),  # an aware one goes to SQLAlchemy's own processor
])
def test_sqlite_datetimes_are_stored_as_the_same_text_as_sqlalchemys(tmp_path, moment: datetime) -> None:
    store = Store(f"sqlite:///{tmp_path / 'text.sqlite3'}")
    with store.write() as conn:
        Prepared.insert(orders).run(conn, {**order_row("A", "ka"), "placed_at": moment})
        conn.execute(orders.insert(), {**order_row("B", "kb"), "placed_at": moment})
        texts = dict(conn.exec_driver_sql("SELECT ref, placed_at FROM lk_orders").all())
    assert texts["A"] == texts["B"] and len(texts["A"]) == 26
    store.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("moment", [AT, AT.replace(microsecond=0), AT.replace(year=999, month=1, day=2),
                                    AT.replace(month=12, day=31, hour=23, minute=59, second=59, microsecond=999999),
                                    AT.replace(tzinfo=UTC), None])
def test_timestamps_are_stored_as_the_very_text_sqlalchemy_writes(store: Store, moment) -> None:
    entry = {"customer_id": "C1", "balance": "points", "currency": None, "entry": "earn", "amount": 1,
             "order_ref": "A", "write_key": "ka", "label": None, "created_at": AT, "expires_at": moment}
    with store.write() as conn:
        Prepared.insert(ledger).run(conn, [entry, {**entry, "order_ref": "B"}])
        conn.execute(ledger.insert(), {**entry, "order_ref": "C"})
    with store.read() as conn:
        stored = dict(conn.exec_driver_sql("SELECT order_ref, expires_at FROM lk_ledger").all())
    assert stored["A"] == stored["B"] == stored["C"]
    assert stored["A"] is None if moment is None else isinstance(stored["A"], str)
