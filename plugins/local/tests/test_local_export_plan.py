"""An export evaluated before its write transaction (from the facts the customer's last export left)
is used only if the transaction reads the very same facts: another writer, or a new program, makes
the export evaluate again inside the transaction."""

from __future__ import annotations

from sqlalchemy import select

from loyaltykit import Order
from loyaltykit_local.program import parse_program
from loyaltykit_local.tables import grants as lk_grants, orders
from loyaltykit_local.testing import eur, line

PROGRAM = (
    '[points]\nper_currency_unit = 1\n'
    '[[rules]]\nid = "once"\nwhen = { skus = { any = ["B"] }, not_previously_granted = true }\n'
    'then = { action = "bonus_points", points = 100 }\n'
    '[[rules]]\nid = "welcome"\nwhen = { first_order = true }\nthen = { action = "bonus_points", points = 50 }\n'
)


def order(ref: str, sku: str, customer_id: str) -> Order:
    return Order(ref=ref, currency="EUR", lines=(line("1", sku, "10"),), total=eur("10"), customer_id=customer_id)


def points_of(shop, ref: str, sku: str, customer_id: str) -> int:
    result = shop.loyalty.export_orders([order(ref, sku, customer_id)]).results[0]
    assert result.status == "accepted", result
    return int(result.points_earned)


def test_an_export_by_another_writer_in_between_is_seen(make_shop):
    first, second = make_shop(PROGRAM), make_shop(PROGRAM)  # two engines on one database: two processes
    customer = first.customer()
    assert points_of(first, "O-1", "A", customer) == 10 + 50  # the first order: welcome bonus
    assert points_of(first, "O-2", "A", customer) == 10  # planned from what O-1 left: right
    assert points_of(second, "O-3", "B", customer) == 10 + 100  # "once" granted, by the other writer
    # the first engine's plan still believes "once" was never granted: the transaction sees it was
    assert points_of(first, "O-4", "B", customer) == 10
    assert points_of(first, "O-5", "B", customer) == 10


def test_a_new_program_is_evaluated_afresh(make_shop):
    shop = make_shop(PROGRAM)
    customer = shop.customer()
    assert points_of(shop, "O-1", "A", customer) == 60
    shop.engine.set_program(parse_program(PROGRAM.replace("points = 100", "points = 7").replace(
        'skus = { any = ["B"] }, ', ""), "test.toml"))
    assert points_of(shop, "O-2", "A", customer) == 10 + 7


def test_planned_exports_grant_once_and_guests_earn_nothing(make_shop):
    shop = make_shop(PROGRAM)
    customer = shop.customer()
    assert points_of(shop, "O-1", "B", customer) == 160
    assert points_of(shop, "O-2", "B", customer) == 10  # planned: "once" and "welcome" already granted
    guest = shop.loyalty.export_orders([Order(ref="G-1", currency="EUR", lines=(line("1", "B", "10"),),
                                              total=eur("10"))]).results[0]
    assert guest.status == "accepted" and guest.points_earned == 0


def test_a_batch_reports_each_order_as_alone_and_keeps_what_succeeded(make_shop):
    shop = make_shop(PROGRAM)
    customer = shop.customer()
    assert points_of(shop, "O-0", "A", customer) == 60
    batch = [order("O-1", "A", customer), order("O-0", "A", customer),  # exported before
             order("O-2", "A", "no-such-customer"), order("O-3", "B", customer)]
    results = shop.loyalty.export_orders(batch).results
    assert [r.status for r in results] == ["accepted", "duplicate", "rejected", "accepted"]
    assert [int(r.points_earned) for r in (results[0], results[1], results[3])] == [10, 60, 110]
    assert shop.loyalty.export_orders(batch[:1]).results[0].engine_ref == results[0].engine_ref
    assert shop.points(customer) == 60 + 10 + 110  # each order counted once


def test_an_order_failing_part_way_in_a_batch_is_undone_alone(make_shop, monkeypatch):
    from loyaltykit import EngineUnavailableError
    from loyaltykit_local import checkout

    real = checkout.after_export

    def fail_for_o2(engine, conn, customer_id, tier, issued, order_ref, now):
        real(engine, conn, customer_id, tier, issued, order_ref, now)
        if order_ref == "O-2":  # after its order and ledger rows were written
            raise EngineUnavailableError("injected failure", engine="local")

    monkeypatch.setattr(checkout, "after_export", fail_for_o2)
    shop = make_shop(PROGRAM)
    customer = shop.customer()
    results = shop.loyalty.export_orders([order(f"O-{n}", "A", customer) for n in (1, 2, 3)]).results
    assert [r.status for r in results] == ["accepted", "retry_later", "accepted"]
    assert shop.points(customer) == 60 + 10  # nothing of O-2 stayed
    monkeypatch.setattr(checkout, "after_export", real)
    assert points_of(shop, "O-2", "A", customer) == 10  # and it is exported when sent again


# -- the export's results are built without a validation run: the same models validation builds -----


def same_as_validated(model) -> None:
    again = type(model).model_validate(model.model_dump(exclude_unset=True))
    assert again == model
    assert again.model_fields_set == model.model_fields_set
    assert again.model_dump_json() == model.model_dump_json()


def test_an_export_report_and_its_results_equal_their_validated_copies(make_shop):
    shop = make_shop(PROGRAM)
    customer = shop.customer()
    batch = [order("O-1", "B", customer), order("O-2", "A", customer), order("O-3", "A", "nobody")]
    for report in (shop.loyalty.export_orders(batch[:1]), shop.loyalty.export_orders(batch)):
        same_as_validated(report)
        for result in report.results:
            same_as_validated(result)
    assert [r.status for r in report.results] == ["duplicate", "accepted", "rejected"]
    assert report.results[1].points_earned == 10 and report.results[1].engine_ref.startswith("ORD-")


def test_points_beyond_the_kits_limit_are_refused_and_nothing_is_written(make_shop):
    shop = make_shop('[points]\nper_currency_unit = 1000\n')
    customer = shop.customer()
    big = Order(ref="BIG", currency="EUR", lines=(line("1", "A", "9000000000"),), total=eur("9000000000"),
                customer_id=customer)
    result = shop.loyalty.export_orders([big]).results[0]
    assert result.status == "rejected" and result.error_code == "invalid_request"
    assert "points_earned" in (result.reason or "")
    assert shop.points(customer) == 0
    assert shop.loyalty.export_orders([order("O-1", "A", customer)]).results[0].points_earned == 10_000


def test_a_rule_is_granted_once_to_a_customer_and_its_grant_kept(make_shop):
    program = PROGRAM + '[[rules]]\nid = "every"\nwhen = { skus = { any = ["B"] } }\nthen = { action = "bonus_points", points = 5 }\n'
    shop = make_shop(program)
    customer, other = shop.customer(), shop.customer()
    assert [points_of(shop, f"O-{n}", "B", customer) for n in (1, 2, 3)] == [10 + 100 + 50 + 5, 15, 15]
    assert points_of(shop, "P-1", "B", other) == 165  # grants are per customer
    with shop.store.sqlalchemy_read() as conn:
        grants = set(conn.execute(select(lk_grants.c.customer_id, lk_grants.c.rule_id, lk_grants.c.order_ref)))
        rules_of = dict(conn.execute(select(orders.c.ref, orders.c.rules)).all())
    assert grants == {(who, rule, ref) for who, ref in ((customer, "O-1"), (other, "P-1"))
                      for rule in ("once", "welcome", "every")}
    assert rules_of["O-3"] == ["every"]  # each order's rules: on the order
    # "every" now asks whether it was granted before: it was, in O-1
    shop.engine.set_program(parse_program(program.replace(
        'skus = { any = ["B"] } }\nthen = { action = "bonus_points", points = 5 }',
        'skus = { any = ["B"] }, not_previously_granted = true }\nthen = { action = "bonus_points", points = 5 }'),
        "test.toml"))
    assert points_of(shop, "O-4", "B", customer) == 10


SEGMENT_PROGRAM = (
    '[points]\nper_currency_unit = 1\n'
    '[[rules]]\nid = "vip"\nwhen = { segment = ["vip"] }\nthen = { action = "bonus_points", points = 5 }\n'
)


def test_a_customer_row_changed_by_another_writer_is_read_again(make_shop):
    # the second export of a customer takes the facts the first one left when it reads the same row:
    # a row changed in between (another process's member update, then changed back) is decoded again
    first, second = make_shop(SEGMENT_PROGRAM), make_shop(SEGMENT_PROGRAM)
    customer = first.customer()
    assert points_of(first, "O-1", "A", customer) == 10
    assert points_of(first, "O-2", "A", customer) == 10
    second.loyalty.update_member({"customer_id": customer, "segments": ["vip"]})
    assert points_of(first, "O-3", "A", customer) == 15
    assert points_of(first, "O-4", "A", customer) == 15
    second.loyalty.update_member({"customer_id": customer, "segments": []})
    assert points_of(first, "O-5", "A", customer) == 10
    second.loyalty.update_member({"customer_id": customer, "segments": ["vip"]})
    assert points_of(first, "O-6", "A", customer) == 15
