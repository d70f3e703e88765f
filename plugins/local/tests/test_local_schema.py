"""The engine's schema versions: a database of an earlier version is upgraded by ``migrate`` (and
refused until it is), keeping its rows and the customers' history; the ledger's look-ups by customer run
on its one index."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text

from loyaltykit import ConfigError, Order
from loyaltykit_local import accounts
from loyaltykit_local.store import SCHEMA_VERSION, Store
from loyaltykit_local.tables import customers
from loyaltykit_local.testing import HISTORY_RULES, eur, line

PROGRAM = '[points]\nper_currency_unit = 1\nexpire_after_days = 30\n[cashback]\nearn_percent = 10\n'
EVERY_ORDER_RULE = """
[[rules]]
id = "every"
then = { action = "bonus_points", points = 5 }
"""


def export(shop, ref: str, customer_id: str, amount: str = "10") -> None:
    result = shop.loyalty.export_orders([Order(ref=ref, currency="EUR", lines=(line("1", "A", amount),),
                                               total=eur(amount), customer_id=customer_id)]).results[0]
    assert result.status == "accepted", result


def as_version_1(store: Store, grants: list[tuple[str, str, str]]) -> None:
    """The database as version 1 left it: the ledger's two indexes by customer, lk_orders_customer, no
    history on the customer's row, a grant row per order and rule; the version row at 1."""
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX lk_ledger_account"))
        conn.execute(text("CREATE INDEX lk_ledger_customer ON lk_ledger (customer_id, balance, currency)"))
        conn.execute(text("CREATE INDEX lk_ledger_expiry ON lk_ledger (customer_id, expires_at)"))
        conn.execute(text("CREATE INDEX lk_orders_customer ON lk_orders (customer_id)"))
        conn.execute(text("ALTER TABLE lk_customers DROP COLUMN ordered"))
        conn.execute(text("ALTER TABLE lk_customers DROP COLUMN granted_rules"))
        conn.execute(text("DELETE FROM lk_grants"))
        for customer_id, rule_id, order_ref in grants:
            conn.execute(text("INSERT INTO lk_grants (customer_id, rule_id, order_ref, created_at) "
                              "VALUES (:c, :r, :o, CURRENT_TIMESTAMP)"), {"c": customer_id, "r": rule_id, "o": order_ref})
        conn.execute(text("UPDATE lk_schema SET version = 1"))


def indexes(store: Store, table: str) -> dict[str, list[str]]:
    with store.engine.connect() as conn:
        return {index["name"]: list(index["column_names"]) for index in inspect(conn).get_indexes(table)}


def test_a_version_1_database_is_refused_then_migrated_keeping_its_rows(make_shop, database_url):
    shop = make_shop(PROGRAM + HISTORY_RULES + EVERY_ORDER_RULE)
    customer, newcomer = shop.customer(), shop.customer()
    export(shop, "O-1", customer)
    export(shop, "O-2", customer)
    shop.store.dispose()
    # version 1 wrote a grant row per order and rule
    as_version_1(shop.store, [(customer, "once", "O-1"), (customer, "every", "O-1"), (customer, "every", "O-2"),
                              (customer, "welcome", "O-1")])

    old = Store(database_url, create=False)
    try:
        assert old.schema_version() == 1
        with pytest.raises(ConfigError, match=f"schema version 1, this release needs {SCHEMA_VERSION}"):
            old.check_schema()
        assert old.migrate() == 1
        old.check_schema()
        assert old.schema_version() == SCHEMA_VERSION == 2
        assert indexes(old, "lk_ledger") == {"lk_ledger_account": ["customer_id", "balance", "expires_at", "currency"],
                                             "lk_ledger_order": ["order_ref"]}
        assert "lk_orders_customer" not in indexes(old, "lk_orders")
        with old.engine.connect() as conn:
            history = {row.id: (row.ordered, row.granted_rules) for row in conn.execute(
                select(customers.c.id, customers.c.ordered, customers.c.granted_rules))}
        assert history == {customer: (True, ["every", "once", "welcome"]), newcomer: (False, None)}
        assert old.migrate() == SCHEMA_VERSION  # nothing left to do
    finally:
        old.dispose()

    # the rows written under version 1 still count, its history too, and points still expire on time
    assert (shop.points(customer), shop.cashback(customer)) == (10 + 150 + 5 + 10 + 5, eur("2.00"))
    export(shop, "O-3", customer, "20")
    assert shop.points(customer) == 180 + 20 + 5  # neither "welcome" nor "once" again
    export(shop, "N-1", newcomer)
    assert shop.points(newcomer) == 10 + 150 + 5  # a first order
    shop.clock.advance(days=31)
    assert shop.points(customer) == 0


def test_a_new_database_has_the_one_ledger_index(make_shop):
    shop = make_shop(PROGRAM)
    assert set(indexes(shop.store, "lk_ledger")) == {"lk_ledger_account", "lk_ledger_order"}
    assert shop.store.schema_version() == SCHEMA_VERSION


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_ledgers_look_ups_by_customer_search_its_index(make_shop):
    shop = make_shop(PROGRAM)
    with shop.store.engine.connect() as conn:
        for statement in (accounts._SUM_POINTS, accounts._SUM_CASHBACK, accounts._DUE, accounts._DUE_SINCE,
                          accounts._CUSTOMER_LOCKED_DUE):
            sql = statement.on_sqlite().sql
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}",
                                                                       ("x",) * sql.count("?")))
            assert "SEARCH lk_ledger USING" in plan and "INDEX lk_ledger_account (customer_id=? AND balance=?" in plan, \
                (sql, plan)
            if statement in (accounts._DUE, accounts._DUE_SINCE, accounts._CUSTOMER_LOCKED_DUE):
                assert "expires_at" in plan.split("lk_ledger_account", 1)[1], plan  # a range, not a walk

