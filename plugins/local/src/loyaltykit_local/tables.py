"""The embedded engine's schema as SQLAlchemy Core tables, and the steps that migrate it.

The single source of truth for the schema and for the SQL the engine runs: migrations create and
upgrade tables from it, and the named statements of :mod:`.statements` are built on it (compiled by
SQLAlchemy on PostgreSQL, and for SQLite into :mod:`.sqlite_statements`). Importing this module
imports SQLAlchemy; the engine's runtime on a SQLite file never does.

Amounts are stored as integers: points are whole points, cashback is in the currency's minor
units. Ledger rows are only ever inserted; balances are sums over them.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

metadata = MetaData()

customers = Table(
    "lk_customers",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(128), nullable=False, unique=True),
    Column("membership_number", String(128), unique=True),
    Column("email", String(254), unique=True),
    Column("phone", String(32), unique=True),
    Column("card", String(64), unique=True),
    Column("external_id", String(128), unique=True),
    Column("display_name", String(256)),
    Column("role", String(64)),
    Column("tier", String(64)),  # an assigned tier: a floor under the tier earned by qualifying points
    Column("segments", JSON, nullable=False, default=list),
    Column("status", String(32), nullable=False, default="active"),
    Column("created_at", DateTime, nullable=False),
    # Up to when expired points have been written to the ledger (a cursor, not a balance).
    Column("expiry_recorded_until", DateTime),
    # What "first order" and "not previously granted" ask, kept on the row an export locks and reads
    # anyway (since version 2): whether an order of the customer's is recorded (lk_orders), and the
    # rules granted to the customer (lk_grants), as a sorted list.
    Column("ordered", Boolean, default=False),
    Column("granted_rules", JSON),
)

ledger = Table(
    "lk_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("balance", String(16), nullable=False),  # "points" | "cashback"
    Column("currency", String(3)),  # cashback only
    Column("entry", String(16), nullable=False),  # earn | burn | expire | reverse
    Column("amount", BigInteger, nullable=False),  # signed: points, or cashback minor units
    Column("order_ref", String(128)),
    Column("write_key", String(128)),
    Column("label", String(256)),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime),  # credited points only
    # One index serves every look-up by customer: balances (customer, balance[, currency]) and lots
    # expired in a window (customer, "points", expires_at range). Each index costs every earn row a write.
    Index("lk_ledger_account", "customer_id", "balance", "expires_at", "currency"),
    Index("lk_ledger_order", "order_ref"),
)

vouchers = Table(
    "lk_vouchers",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("definition", JSON, nullable=False),  # a program.VoucherDef
    Column("owner_id", String(128)),
    Column("offer_kind", String(32)),  # set for wallet offers
    Column("usage_limit", Integer),  # NULL: unlimited
    Column("uses", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Index("lk_vouchers_owner", "owner_id"),
)

redemptions = Table(
    "lk_redemptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False),
    Column("order_ref", String(128), nullable=False),
    Column("customer_id", String(128)),
    Column("write_key", String(128), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # redeemed | reinstated
    Column("created_at", DateTime, nullable=False),
    Index("lk_redemptions_order", "order_ref"),
    Index("lk_redemptions_code", "code"),
)

writes = Table(
    # One row per keyed write: the key's unique constraint is what makes a write exactly-once.
    "lk_writes",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("operation", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("order_ref", String(128)),
    Column("result", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

orders = Table(
    "lk_orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", String(128), nullable=False, unique=True),
    Column("write_key", String(128), nullable=False, unique=True),
    Column("customer_id", String(128)),
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("points_earned", BigInteger, nullable=False, default=0),
    Column("cashback_earned_minor", BigInteger, nullable=False, default=0),
    Column("rules", JSON, nullable=False, default=list),
    Column("placed_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

grants = Table(
    # The order in which a rule first benefited a customer (the rules of every order are in
    # lk_orders.rules; the customer's row lists the rules granted).
    "lk_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("order_ref", String(128), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("customer_id", "rule_id", "order_ref", name="lk_grants_once"),
)

schema_versions = Table(
    # One row: the schema version this database has been migrated to.
    "lk_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("migrated_at", DateTime, nullable=False),
)


member_profiles = Table(
    # What enrolment adds to a customer: profile fields and consents (one row per enrolled member).
    "lk_member_profiles",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("first_name", String(128)),
    Column("last_name", String(128)),
    Column("language", String(16)),
    Column("birth_date", DateTime),
    Column("consents", JSON, nullable=False, default=list),
    Column("profile", JSON, nullable=False, default=dict),
    Column("enrolled_at", DateTime, nullable=False),
)

member_events = Table(
    # A member's history beside the ledger: tier changes and vouchers issued (append-only).
    "lk_member_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # tier_change | voucher
    Column("tier", String(64)),
    Column("code", String(64)),
    Column("rule_id", String(128)),
    Column("order_ref", String(128)),
    Column("label", String(256)),
    Column("created_at", DateTime, nullable=False),
    Index("lk_member_events_customer", "customer_id", "created_at"),
)

rule_costs = Table(
    # What each rule gave away on each exported order (discounts, in minor units): the report's cost.
    "lk_rule_costs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_ref", String(128), nullable=False),
    Column("rule_id", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("discount_minor", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("lk_rule_costs_rule", "rule_id"),
)

TABLES = (customers, ledger, vouchers, redemptions, writes, orders, grants, member_profiles, member_events,
          rule_costs)





def _version_2(connection: Connection) -> None:
    """Version 2: fewer index writes per exported order.

    * the ledger's two indexes by customer, (customer, balance, currency) and (customer, expires_at),
      become ``lk_ledger_account``;
    * whether a customer ordered before and the rules granted to it move onto the customer's row
      (filled from lk_orders and lk_grants), so ``lk_orders_customer`` goes.
    """
    connection.execute(text("DROP INDEX IF EXISTS lk_ledger_customer"))
    connection.execute(text("DROP INDEX IF EXISTS lk_ledger_expiry"))
    next(index for index in ledger.indexes if index.name == "lk_ledger_account").create(connection, checkfirst=True)
    for column in (customers.c.ordered, customers.c.granted_rules):
        ddl = CreateColumn(column).compile(dialect=connection.dialect)
        connection.execute(text(f"ALTER TABLE {customers.name} ADD COLUMN {ddl}"))
    connection.execute(update(customers).values(
        ordered=select(orders.c.id).where(orders.c.customer_id == customers.c.id).exists()))
    granted: dict[str, set[str]] = {}
    for customer_id, rule_id in connection.execute(select(grants.c.customer_id, grants.c.rule_id).distinct()):
        granted.setdefault(customer_id, set()).add(rule_id)
    if granted:
        connection.execute(update(customers).where(customers.c.id == bindparam("who"))
                           .values(granted_rules=bindparam("rules")),
                           [{"who": who, "rules": sorted(rules)} for who, rules in granted.items()])
    connection.execute(text("DROP INDEX IF EXISTS lk_orders_customer"))


#: The steps from one schema version to the next: ``STEPS[n]`` takes a database from n - 1 to n
#: (version 1 is the tables as first released, created whole).
STEPS: dict[int, Callable[[Connection], None]] = {2: _version_2}

