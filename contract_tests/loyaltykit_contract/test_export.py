"""Export orders: each order recorded once however often it is sent; one bad order does not sink
the batch; an outage loses nothing.

"Invalid", engine-neutrally, means an order for a customer the engine does not know: every engine
records earned points against a member, so such an order must come back ``rejected`` with a
reason while the rest of the batch is accepted.
"""

from __future__ import annotations

from decimal import Decimal

from loyaltykit.capabilities import Capability
from loyaltykit.errors import LoyaltyError
from loyaltykit.models import ExportStatus
from loyaltykit.testing import Fault, FaultKind

from .requirements import requires
from .support import assert_no_duplicates, assert_report_truthful, export_until_done

OK = (ExportStatus.ACCEPTED, ExportStatus.DUPLICATE)


def batch(lk, n=3):
    customer = lk.customer()
    return customer, [lk.order(customer_id=customer.id) for _ in range(n)]


@requires(Capability.EXPORT_ORDERS)
def test_export_batch(loyaltykit_target):
    """A batch of valid orders is accepted, each recorded once."""
    lk = loyaltykit_target
    _, orders = batch(lk)
    refs = [o.ref for o in orders]
    report = lk.call("export_orders", orders)
    statuses = assert_report_truthful(lk, report, refs)
    assert all(s is ExportStatus.ACCEPTED for s in statuses.values()), report
    assert_no_duplicates(lk, refs)


@requires(Capability.EXPORT_ORDERS)
def test_export_again_creates_no_duplicates(loyaltykit_target):
    """Exporting the same orders again reports accepted or duplicate, and records nothing twice."""
    lk = loyaltykit_target
    _, orders = batch(lk)
    refs = [o.ref for o in orders]
    lk.call("export_orders", orders)
    report = lk.call("export_orders", orders)
    statuses = assert_report_truthful(lk, report, refs)
    assert all(s in OK for s in statuses.values()), report
    assert_no_duplicates(lk, refs)


@requires(Capability.EXPORT_ORDERS)
def test_export_rejects_one_invalid_order_and_accepts_the_rest(loyaltykit_target):
    """An order for an unknown customer is rejected with a reason; the others are accepted."""
    lk = loyaltykit_target
    customer = lk.customer()
    good1 = lk.order(customer_id=customer.id)
    bad = lk.order(customer_id=f"unknown-{lk.ref('cust')}")
    good2 = lk.order(customer_id=customer.id)
    refs = [good1.ref, bad.ref, good2.ref]
    report = lk.call("export_orders", [good1, bad, good2])
    statuses = assert_report_truthful(lk, report, refs)
    assert statuses[bad.ref] is ExportStatus.REJECTED, report
    assert statuses[good1.ref] is ExportStatus.ACCEPTED and statuses[good2.ref] is ExportStatus.ACCEPTED, report
    assert bad.ref not in lk.harness.orders_received()


@requires(Capability.EXPORT_ORDERS)
def test_export_engine_down_loses_nothing(loyaltykit_target):
    """With the engine down every order is retry_later (none recorded); a later export records
    each exactly once."""
    lk = loyaltykit_target
    _, orders = batch(lk)
    refs = [o.ref for o in orders]
    lk.inject("export", Fault(FaultKind.STATUS, status=503, times=12))
    report = lk.call("export_orders", orders)
    statuses = assert_report_truthful(lk, report, refs)
    assert all(s is ExportStatus.RETRY_LATER for s in statuses.values()), report
    assert not set(refs) & set(lk.harness.orders_received()), "orders recorded while the engine was down"
    lk.clear_faults()
    final = export_until_done(lk, orders)
    assert all(r.status in OK for r in final.results), final
    assert_no_duplicates(lk, refs)


@requires(Capability.EXPORT_ORDERS)
def test_export_lost_response_creates_no_duplicates(loyaltykit_target):
    """The engine records a batch but the response is lost; exporting again records nothing twice."""
    lk = loyaltykit_target
    _, orders = batch(lk)
    refs = [o.ref for o in orders]
    lk.inject("export", Fault(FaultKind.TIMEOUT_AFTER))
    first = lk.attempt("export_orders", orders)
    assert not isinstance(first, LoyaltyError), f"export must report per order, not raise: {first!r}"
    for result in first.results:
        assert result.status is not ExportStatus.REJECTED, f"a lost response is not a rejection: {result}"
    final = export_until_done(lk, orders)
    assert all(r.status in OK for r in final.results), final
    assert_no_duplicates(lk, refs)


@requires(Capability.EXPORT_ORDERS, Capability.EARN_PREVIEW)
def test_export_lost_response_awards_cashback_once(loyaltykit_target):
    """With 10 % cashback, an order whose export answer is lost, exported again, credits 10.00 once."""
    lk = loyaltykit_target
    define = getattr(lk.harness, "define_cashback_rule", None)
    if not callable(define):
        lk.not_applicable(f"the {lk.engine} harness cannot define a cashback earn rate")
    lk.seed("define a cashback earn rate", define, Decimal(10))
    customer = lk.customer()
    order = lk.order(customer_id=customer.id)
    before = lk.cashback(customer.id)
    lk.inject("export", Fault(FaultKind.TIMEOUT_AFTER))
    lk.attempt("export_orders", [order])
    export_until_done(lk, [order])
    lk.call("export_orders", [order])
    assert_no_duplicates(lk, [order.ref])
    assert lk.cashback(customer.id) - before == lk.money("10.00"), "the order's cashback was awarded more than once"


@requires(Capability.EXPORT_ORDERS)
def test_export_error_body_is_not_accepted(loyaltykit_target):
    """An HTTP 200 carrying the engine's error envelope never counts as an accepted order."""
    lk = loyaltykit_target
    _, orders = batch(lk)
    refs = [o.ref for o in orders]
    lk.inject("export", Fault(FaultKind.ERROR_BODY))
    report = lk.attempt("export_orders", orders)
    if isinstance(report, LoyaltyError):  # a failure of the whole call: then nothing is recorded
        assert not set(refs) & set(lk.harness.orders_received()), f"{report!r}, yet orders were recorded"
    else:
        statuses = assert_report_truthful(lk, report, refs)
        assert any(s not in OK for s in statuses.values()), f"an error body was taken for success: {report!r}"

__all__ = [
    "test_export_again_creates_no_duplicates",
    "test_export_batch",
    "test_export_engine_down_loses_nothing",
    "test_export_error_body_is_not_accepted",
    "test_export_lost_response_awards_cashback_once",
    "test_export_lost_response_creates_no_duplicates",
    "test_export_rejects_one_invalid_order_and_accepts_the_rest",
]
