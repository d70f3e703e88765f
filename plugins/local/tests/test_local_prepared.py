"""Named statements store and read exactly what SQLAlchemy does: on a SQLite file they run on the
driver from the SQL written out in ``sqlite_statements`` (compiled again here from the Core tables),
elsewhere through SQLAlchemy."""

from __future__ import annotations

import json
from collections import namedtuple
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Boolean, DateTime, func, select

from loyaltykit_local import sqlite_statements, statements, store as store_module
from loyaltykit_local.store import IntegrityError, Prepared, Store
from loyaltykit_local.tables import customers, ledger, orders

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


def test_the_sqlite_statements_are_what_sqlalchemy_compiles_from_the_tables() -> None:
    """``python -m loyaltykit_local.statements`` rewrites the module after a change to a statement or a table."""
    assert statements.render() == statements._TARGET.read_text(encoding="utf-8")


def test_the_check_finds_a_statement_that_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(statements.BUILDERS, "customer_exists", lambda: (select(customers.c.pk), None))
    assert statements.render() != statements._TARGET.read_text(encoding="utf-8")


def test_every_statement_the_engine_names_is_written_out() -> None:
    import loyaltykit_local.service  # noqa: F401  (every role: their statements are named at import)

    named = {prepared.name for prepared in store_module._PREPARED}
    assert named and named <= set(sqlite_statements.STATEMENTS) == set(statements.BUILDERS)


@pytest.mark.parametrize("value", [
    AT, AT.replace(microsecond=0), AT.replace(year=999, month=1, day=2), AT.replace(year=1, month=1, day=1),
    AT.replace(tzinfo=UTC), AT.replace(tzinfo=timezone(timedelta(hours=2))), date(2025, 5, 15), None,
])
def test_datetimes_convert_as_sqlalchemys_sqlite_datetime(value) -> None:
    dialect = statements.sqlite_dialect()
    impl = DateTime().dialect_impl(dialect)
    text = impl.bind_processor(dialect)(value)
    assert store_module._BIND["datetime"](value) == text
    assert store_module._RESULT["datetime"](text) == impl.result_processor(dialect, None)(text)


def test_a_datetime_column_refuses_what_sqlalchemy_refuses() -> None:
    with pytest.raises(TypeError, match="only accepts Python datetime and date"):
        store_module._BIND["datetime"]("2025-05-15")


@pytest.mark.parametrize("value", [["b", "a"], {"code": "X", "amount": {"EUR": "5.00"}, "n": 1.5}, [], None, "é"])
def test_json_converts_as_sqlalchemys_json(value) -> None:
    dialect = statements.sqlite_dialect()
    impl = JSON().dialect_impl(dialect)
    text = impl.bind_processor(dialect)(value)
    assert store_module._BIND["json"](value) == text
    assert store_module._RESULT["json"](text) == impl.result_processor(dialect, None)(text)
    assert store_module._RESULT["json"](None) is impl.result_processor(dialect, None)(None) is None


def test_texts_kept_for_repeated_values_stay_those_of_each_value() -> None:
    # A write binds one moment to several rows, and an order's rules list: their texts are kept,
    # but a kept text must never stand for a value whose own text differs.
    to_text, json_text = store_module._BIND["datetime"], store_module._BIND["json"]
    naive = AT.replace(microsecond=0)
    assert to_text(naive) == to_text(AT.replace(microsecond=0)) == "2025-05-15 12:30:01.000000"
    # equal instants in two zones: SQLAlchemy stores each one's own wall time, so each keeps its text
    in_utc, in_paris = AT.replace(tzinfo=UTC), AT.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert in_utc == in_paris and to_text(in_utc) != to_text(in_paris)
    assert to_text(in_paris) == "2025-05-15 14:30:01.123456"
    # equal lists, different JSON: only lists of plain strings are kept
    assert json_text([1]) == "[1]" and json_text([True]) == "[true]" and json_text([1.0]) == "[1.0]"
    rules = ["coffee-bonus", "welcome"]
    assert json_text(rules) == '["coffee-bonus", "welcome"]'
    rules.append("big")  # the list changed after its text was kept: the new text
    assert json_text(rules) == '["coffee-bonus", "welcome", "big"]'
    for minute in range(store_module._TEXTS_KEPT * 2):  # bounded
        to_text(AT + timedelta(minutes=minute))
        json_text([f"rule-{minute}"])
    assert len(store_module._DATETIME_TEXTS) <= store_module._TEXTS_KEPT
    assert len(store_module._JSON_TEXTS) <= store_module._TEXTS_KEPT
    assert to_text(AT + timedelta(minutes=1)) == "2025-05-15 12:31:01.123456"


@pytest.mark.parametrize("value", [True, False, None, 1, 0])
def test_booleans_convert_as_sqlalchemys_boolean(value) -> None:
    dialect = statements.sqlite_dialect()
    impl = Boolean().dialect_impl(dialect)
    stored = impl.bind_processor(dialect)(value)
    assert store_module._BIND["bool"](value) == stored
    assert store_module._RESULT["bool"](stored) == impl.result_processor(dialect, None)(stored)


@pytest.mark.parametrize("value", [2, "yes"])
def test_a_boolean_column_refuses_what_sqlalchemy_refuses(value) -> None:
    dialect = statements.sqlite_dialect()
    with pytest.raises((TypeError, ValueError)) as theirs:
        Boolean().dialect_impl(dialect).bind_processor(dialect)(value)
    with pytest.raises(theirs.type):
        store_module._BIND["bool"](value)


def test_insert_stores_what_sqlalchemy_stores(store: Store) -> None:
    with store.write() as conn:
        first = Prepared("order_insert").run(conn, order_row("A", "ka")).inserted_id
    with store.sqlalchemy_write() as conn:
        conn.execute(orders.insert(), order_row("B", "kb"))
    with store.sqlalchemy_read() as conn:
        rows = {row.ref: row for row in conn.execute(select(orders))}
    assert first == rows["A"].id
    prepared, plain = rows["A"]._asdict(), rows["B"]._asdict()
    for name in ("id", "ref", "write_key"):
        prepared.pop(name), plain.pop(name)
    assert prepared == plain
    assert rows["A"].rules == ["coffee-bonus", "big"] and rows["A"].placed_at == AT


def test_many_rows_and_constants(store: Store) -> None:
    entry = {"customer_id": "C1", "balance": "points", "currency": None, "entry": "earn", "order_ref": "A",
             "write_key": "ka", "label": "order A", "created_at": AT, "expires_at": None}
    with store.write() as conn:
        Prepared("ledger_insert").run(conn, [{**entry, "amount": 5}, {**entry, "amount": 7},
                                             {**entry, "amount": 11, "balance": "cashback", "currency": "EUR"}])
    # the balance ("points") and the sum's default (0) are constants of the statement
    points = Prepared("points_sum")
    with store.read() as conn:
        assert points.run(conn, {"customer_id": "C1"}).scalar_one() == 12
        assert points.run(conn, {"customer_id": "C2"}).scalar_one() == 0
        assert Prepared("cashback_sum").run(conn, {"customer_id": "C1", "currency": "EUR"}).scalar_one() == 11
        assert [row.amount for row in Prepared("ledger_of_order").run(conn, {"order_ref": "A"})] == [5, 7, 11]


def test_a_unique_violation_is_the_stores_integrity_error(store: Store) -> None:
    insert = Prepared("order_insert")
    with store.write() as conn:
        insert.run(conn, order_row("A", "ka"))
    with pytest.raises(IntegrityError) as info, store.write() as conn:
        insert.run(conn, order_row("B", "ka"))
    assert "IntegrityError" in {cls.__name__ for cls in type(info.value.orig).__mro__}  # the driver's own
    with store.sqlalchemy_read() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == 1


def test_selected_rows_read_like_sqlalchemys(store: Store) -> None:
    with store.sqlalchemy_write() as conn:
        conn.execute(customers.insert(), {"id": "C1", "segments": ["vip", "staff"], "created_at": AT,
                                          "expiry_recorded_until": AT, "granted_rules": ["r"]})
    with store.sqlalchemy_read() as conn:
        plain = conn.execute(select(customers).where(customers.c.id == "C1")).first()
    with store.read() as conn:
        prepared = Prepared("customer").run(conn, {"customer_id": "C1"}).first()
        assert Prepared("customer").run(conn, {"customer_id": "nobody"}).first() is None
    assert prepared.segments == ["vip", "staff"] and prepared.expiry_recorded_until == AT
    assert prepared.ordered is False and prepared.granted_rules == ["r"]
    assert tuple(prepared) == tuple(plain)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("moment", [AT, AT.replace(microsecond=0), AT.replace(year=999, month=1, day=2),
                                    AT.replace(month=12, day=31, hour=23, minute=59, second=59, microsecond=999999),
                                    AT.replace(tzinfo=UTC), None])
def test_rows_are_stored_as_the_very_text_sqlalchemy_writes(store: Store, moment) -> None:
    entry = {"customer_id": "C1", "balance": "points", "currency": None, "entry": "earn", "amount": 1,
             "order_ref": "A", "write_key": "ka", "label": None, "created_at": AT, "expires_at": moment}
    with store.write() as conn:
        Prepared("ledger_insert").run(conn, [entry, {**entry, "order_ref": "B"}])
        Prepared("order_insert").run(conn, {**order_row("A", "ka"), "placed_at": moment or AT})
    with store.sqlalchemy_write() as conn:
        conn.execute(ledger.insert(), {**entry, "order_ref": "C"})
        conn.execute(orders.insert(), {**order_row("C", "kc"), "placed_at": moment or AT})
    with store.sqlalchemy_read() as conn:
        stored = dict(conn.exec_driver_sql("SELECT order_ref, expires_at FROM lk_ledger").all())
        placed = {ref: (at, rules) for ref, at, rules in
                  conn.exec_driver_sql("SELECT ref, placed_at, rules FROM lk_orders").all()}
    assert stored["A"] == stored["B"] == stored["C"]
    assert stored["A"] is None if moment is None else isinstance(stored["A"], str) and len(stored["A"]) == 26
    assert placed["A"] == placed["C"] and json.loads(placed["A"][1]) == ["coffee-bonus", "big"]


def test_statements_selecting_the_same_columns_share_one_row_class() -> None:
    import loyaltykit_local.service  # noqa: F401  (every role's statements)

    loaded = [(prepared, prepared.on_sqlite()) for prepared in list(store_module._PREPARED)]
    selects = [(prepared, spec) for prepared, spec in loaded if spec.verb == "select"]
    assert selects and all(spec.row is None for _prepared, spec in loaded if spec.verb != "select")
    by_columns: dict[tuple[str, ...], set[int]] = {}
    for prepared, spec in selects:
        columns = tuple(str(key) for key in sqlite_statements.STATEMENTS[prepared.name]["columns"])
        assert spec.row._fields == namedtuple("Row", columns, rename=True)._fields
        by_columns.setdefault(columns, set()).add(id(spec.row))
    assert all(len(classes) == 1 for classes in by_columns.values())
    assert len({id(spec.row) for _prepared, spec in selects}) == len(by_columns)
