"""Every statement the engine's operations run, by name, built on the Core tables of :mod:`.tables`.

One source of truth for the SQL: on PostgreSQL (and SQLite URLs the engine does not open itself)
a :class:`~.store.Prepared` statement is built here and run through SQLAlchemy; on a SQLite file
it runs on the driver from :mod:`.sqlite_statements`, which is what SQLAlchemy compiles from these
builders for SQLite, written out (SQL text, positional parameters, constants, and how each value is
converted to and from the database). A test compiles them again and fails on any difference;
``python -m loyaltykit_local.statements`` rewrites that module after a change here.

Importing this module imports SQLAlchemy: the runtime imports it only off SQLite.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Table, and_, bindparam, create_engine, func, insert, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable, Insert, Select, Update

from .tables import (
    customers,
    grants,
    ledger,
    member_events,
    orders,
    redemptions,
    rule_costs,
    schema_versions,
    vouchers,
    writes,
)

POINTS, CASHBACK = "points", "cashback"

#: a statement and, for an INSERT, the columns it writes (every one given by each row)
Built = tuple[Executable, list[str] | None]
BUILDERS: dict[str, Callable[[], Built]] = {}


def _named(name: str) -> Callable[[Callable[[], Built]], Callable[[], Built]]:
    def register(build: Callable[[], Built]) -> Callable[[], Built]:
        BUILDERS[name] = build
        return build
    return register


def _insert(table: Table, *, with_key: bool = False) -> Built:
    """An INSERT of every column (but a generated primary key unless ``with_key``)."""
    return insert(table), [column.key for column in table.columns if with_key or not column.primary_key]


# -- customers -------------------------------------------------------------------------------------


def _customer() -> Select[Any]:
    return select(customers).where(customers.c.id == bindparam("customer_id"))


@_named("customer")
def _customer_row() -> Built:
    return _customer(), None


@_named("customer_locked")
def _customer_locked() -> Built:
    return _customer().with_for_update(), None


@_named("customer_exists")
def _customer_exists() -> Built:
    return select(customers.c.id).where(customers.c.id == bindparam("customer_id")), None


def _customer_by(column: Any) -> Callable[[], Built]:
    def build() -> Built:
        return select(customers).where(column == bindparam("value")), None
    return build


for _identifier, _column in (("email", customers.c.email), ("phone", customers.c.phone), ("card", customers.c.card),
                             ("membership", customers.c.membership_number), ("external_id", customers.c.external_id)):
    BUILDERS[f"customer_by_{_identifier}"] = _customer_by(_column)


@_named("customer_for_export")
def _customer_for_export() -> Built:
    # What an export reads of the customer's row (its history included), locked, with whether any
    # lot expired since its last recorded expiry (the expiry_due look-up as a column).
    return select(
        customers.c.id, customers.c.role, customers.c.tier, customers.c.segments, customers.c.ordered,
        customers.c.granted_rules,
        select(ledger.c.id).where(
            ledger.c.customer_id == customers.c.id, ledger.c.balance == POINTS,
            ledger.c.expires_at.is_not(None), ledger.c.expires_at <= bindparam("now"),
            or_(customers.c.expiry_recorded_until.is_(None), ledger.c.expires_at > customers.c.expiry_recorded_until),
        ).exists().label("expiry_due"),
    ).where(customers.c.id == bindparam("customer_id")).with_for_update(), None


@_named("customer_history_update")
def _customer_history_update() -> Built:
    return (update(customers).where(customers.c.id == bindparam("customer_id"))
            .values(ordered=bindparam("ordered"), granted_rules=bindparam("granted_rules"))), None


@_named("customer_expiry_cursor_update")
def _customer_expiry_cursor_update() -> Built:
    return (update(customers).where(customers.c.id == bindparam("customer_id"))
            .values(expiry_recorded_until=bindparam("cursor"))), None


# -- ledger ----------------------------------------------------------------------------------------


def _sum() -> Any:
    return select(func.coalesce(func.sum(ledger.c.amount), 0))


@_named("points_sum")
def _points_sum() -> Built:
    return _sum().where(ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS), None


@_named("cashback_sum")
def _cashback_sum() -> Built:
    return _sum().where(ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == CASHBACK,
                        ledger.c.currency == bindparam("currency")), None


def _qualifying() -> Select[Any]:
    # Net points earned (earn entries less claw-backs); spending and expiry do not lower a tier.
    return _sum().where(  # type: ignore[no-any-return]
        ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS,
        (ledger.c.entry == "earn") | and_(ledger.c.entry == "reverse", ledger.c.amount < 0))


@_named("qualifying_points")
def _qualifying_points() -> Built:
    return _qualifying(), None


@_named("qualifying_points_since")
def _qualifying_points_since() -> Built:
    return _qualifying().where(ledger.c.created_at >= bindparam("since")), None


def _due() -> Select[Any]:
    return select(ledger.c.id).where(
        ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS,
        ledger.c.expires_at.is_not(None), ledger.c.expires_at <= bindparam("now"))


@_named("expiry_due")
def _expiry_due() -> Built:
    return _due().limit(1), None


@_named("expiry_due_since")
def _expiry_due_since() -> Built:
    return _due().where(ledger.c.expires_at > bindparam("cursor")).limit(1), None


@_named("points_lots")
def _points_lots() -> Built:
    return (select(ledger.c.amount, ledger.c.expires_at)
            .where(ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == POINTS)
            .order_by(ledger.c.id)), None


@_named("cashback_currencies")
def _cashback_currencies() -> Built:
    return select(ledger.c.currency).where(
        ledger.c.customer_id == bindparam("customer_id"), ledger.c.balance == CASHBACK).distinct(), None


@_named("points_spent_on_order")
def _points_spent_on_order() -> Built:
    return _sum().where(ledger.c.customer_id == bindparam("customer_id"), ledger.c.order_ref == bindparam("order_ref"),
                        ledger.c.balance == POINTS, ledger.c.entry == "burn"), None


@_named("ledger_of_order")
def _ledger_of_order() -> Built:
    return select(ledger).where(ledger.c.order_ref == bindparam("order_ref")).order_by(ledger.c.id), None


@_named("ledger_insert")
def _ledger_insert() -> Built:
    return _insert(ledger)


# -- orders, grants, keyed writes ------------------------------------------------------------------


@_named("order_seen")
def _order_seen() -> Built:
    return select(orders.c.id, orders.c.points_earned).where(
        (orders.c.ref == bindparam("ref")) | (orders.c.write_key == bindparam("key"))), None


@_named("order_by_ref")
def _order_by_ref() -> Built:
    return select(orders).where(orders.c.ref == bindparam("ref")), None


@_named("order_insert")
def _order_insert() -> Built:
    return _insert(orders)


@_named("grant_insert")
def _grant_insert() -> Built:
    return _insert(grants)


@_named("rule_cost_insert")
def _rule_cost_insert() -> Built:
    return _insert(rule_costs)


@_named("write_seen")
def _write_seen() -> Built:
    return select(writes).where(writes.c.key == bindparam("key")), None


@_named("write_insert")
def _write_insert() -> Built:
    return _insert(writes, with_key=True)


@_named("reversals_of_order")
def _reversals_of_order() -> Built:
    return select(writes.c.result).where(writes.c.operation == "reverse",
                                         writes.c.order_ref == bindparam("order_ref")), None


# -- vouchers and redemptions ----------------------------------------------------------------------


@_named("voucher")
def _voucher() -> Built:
    return select(vouchers).where(vouchers.c.code == bindparam("code")), None


@_named("voucher_locked")
def _voucher_locked() -> Built:
    return select(vouchers).where(vouchers.c.code == bindparam("code")).with_for_update(), None


@_named("voucher_code")
def _voucher_code() -> Built:
    return select(vouchers.c.code).where(vouchers.c.code == bindparam("code")), None


@_named("voucher_use")
def _voucher_use() -> Built:
    # The conditional UPDATE is the guard: of many racing uses, only as many as the limit allows
    # find a row to update.
    return (update(vouchers).where(vouchers.c.code == bindparam("voucher_code"))
            .where((vouchers.c.usage_limit.is_(None)) | (vouchers.c.uses < vouchers.c.usage_limit))
            .values(uses=vouchers.c.uses + 1)), None


@_named("voucher_release")
def _voucher_release() -> Built:
    return (update(vouchers).where(vouchers.c.code == bindparam("voucher_code"), vouchers.c.uses > 0)
            .values(uses=vouchers.c.uses - 1)), None


@_named("voucher_update")
def _voucher_update() -> Built:
    return (update(vouchers).where(vouchers.c.code == bindparam("voucher_code"))
            .values(definition=bindparam("definition"), owner_id=bindparam("owner_id"),
                    offer_kind=bindparam("offer_kind"), usage_limit=bindparam("usage_limit"))), None


@_named("voucher_insert")
def _voucher_insert() -> Built:
    return _insert(vouchers, with_key=True)


@_named("voucher_held")
def _voucher_held() -> Built:
    return select(redemptions.c.code).where(
        redemptions.c.order_ref == bindparam("order_ref"), redemptions.c.status == "redeemed",
        redemptions.c.code == bindparam("code")), None


@_named("wallet")
def _wallet() -> Built:
    return select(vouchers).where(
        vouchers.c.owner_id == bindparam("customer_id"), vouchers.c.offer_kind.is_not(None),
        (vouchers.c.usage_limit.is_(None)) | (vouchers.c.uses < vouchers.c.usage_limit),
    ).order_by(vouchers.c.created_at, vouchers.c.code), None


@_named("redemption_insert")
def _redemption_insert() -> Built:
    return _insert(redemptions)


@_named("redemptions_of_order")
def _redemptions_of_order() -> Built:
    return select(redemptions).where(
        redemptions.c.order_ref == bindparam("order_ref"), redemptions.c.status == "redeemed",
    ).order_by(redemptions.c.id), None


@_named("redemption_reinstate")
def _redemption_reinstate() -> Built:
    return update(redemptions).where(redemptions.c.id == bindparam("redemption_id")).values(status="reinstated"), None


@_named("schema_version")
def _schema_version() -> Built:
    return select(schema_versions.c.version).where(schema_versions.c.id == 1), None


# -- members ---------------------------------------------------------------------------------------


@_named("member_event_insert")
def _member_event_insert() -> Built:
    return _insert(member_events)


# ==================================================================================================
# The SQLite module
# ==================================================================================================

_TARGET = Path(__file__).with_name("sqlite_statements.py")


def sqlite_dialect() -> Dialect:
    """SQLAlchemy's SQLite dialect as an engine initialises it (server version read)."""
    engine = create_engine("sqlite://")
    with engine.connect():
        pass
    dialect = engine.dialect
    engine.dispose()
    return dialect


def _kind(type_: Any, dialect: Dialect, processor: object) -> str | None:
    """How :mod:`.store` converts a value of this type (None: as it is); a processor of any other
    type is refused, so that nothing is converted otherwise than SQLAlchemy converts it."""
    if processor is None:
        return None
    for kind, cls in (("datetime", DateTime), ("json", JSON), ("bool", Boolean)):
        if isinstance(type_, cls):
            return kind
    raise TypeError(f"no conversion of {type_!r} values on SQLite: add one to store._BIND/_RESULT")


def compiled_for_sqlite(name: str, dialect: Dialect) -> dict[str, Any]:
    statement, columns = BUILDERS[name]()
    compiled = statement.compile(dialect=dialect, column_keys=columns)  # type: ignore[attr-defined]
    params, binds, defaults = [], [], {}
    for param in compiled.positiontup or ():
        bind = compiled.binds[param]
        impl = bind.type.dialect_impl(dialect)
        params.append(param)
        binds.append(_kind(impl, dialect, impl.bind_processor(dialect)))
        if not bind.required:
            defaults[param] = bind.value
    selected = list(getattr(statement, "selected_columns", ()))
    results = []
    for index, column in enumerate(selected):
        impl = column.type.dialect_impl(dialect)
        kind = _kind(impl, dialect, impl.result_processor(dialect, None))
        if kind is not None:
            results.append((index, kind))
    verb = "insert" if isinstance(statement, Insert) else "update" if isinstance(statement, Update) else "select"
    return {"sql": str(compiled), "params": tuple(params), "defaults": defaults, "binds": tuple(binds),
            "columns": tuple(column.key for column in selected), "results": tuple(results), "verb": verb}


def render() -> str:
    """The text of :mod:`.sqlite_statements` for the builders and SQLAlchemy as installed."""
    dialect = sqlite_dialect()
    lines = [
        '"""The engine\'s named statements as SQLAlchemy compiles them for SQLite. Generated by',
        "``python -m loyaltykit_local.statements`` from :mod:`.statements`: do not edit (a test",
        "compiles them again and fails on any difference).",
        "",
        "Each: its SQL, positional parameter names, constant values (taken unless given), each",
        "parameter's conversion, the selected columns and their conversions, and the statement's verb.",
        '"""',
        "",
        "from typing import Any",
        "",
        "STATEMENTS: dict[str, dict[str, Any]] = {",
    ]
    for name in sorted(BUILDERS):
        lines.append(f"    {name!r}: {{")
        lines.extend(f"        {key!r}: {value!r}," for key, value in compiled_for_sqlite(name, dialect).items())
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    _TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {_TARGET.name}: {len(BUILDERS)} statements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
