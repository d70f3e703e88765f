"""The outbox keeps every order until the engine has recorded or refused it, across crashes."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from loyaltykit import (
    AsyncLoyalty,
    Capabilities,
    EngineAdapter,
    EngineClientConfig,
    EngineRequest,
    ExportReport,
    ExportStatus,
    Line,
    Loyalty,
    LoyaltySettings,
    Money,
    Order,
    OrderExportResult,
    RetryPolicy,
    Service,
)
from loyaltykit.outbox import DONE, PENDING, REJECTED, Outbox
from loyaltykit.testing import Fault, FaultKind, FakeEngine, json_response


class OrdersFake(FakeEngine):
    """Records orders by idempotency key; refuses orders whose total is zero."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded: dict[str, str] = {}
        self.route("POST", "/orders", "export", self._order)

    def _order(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = self.requests[-1].body
        if body["total"] == "0.00":
            return json_response({"error": "empty order"}, 422)
        if body["key"] in self.recorded:
            return json_response({"status": "duplicate"}, 200)
        self.recorded[body["key"]] = body["ref"]
        return json_response({"status": "created"}, 201)


class OrdersAdapter(EngineAdapter):
    name = "orders"
    capabilities = Capabilities(export_orders=True)

    def client_config(self) -> EngineClientConfig:
        return EngineClientConfig(
            engine=self.name,
            services={"default": Service("https://orders.test")},
            retry=RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_max=0.001),
        )

    def export_orders(self, orders, ctx):
        results = []
        for order in orders:
            response = yield EngineRequest(
                "POST",
                "/orders",
                json={"ref": order.ref, "key": order.key, "total": str(order.total.amount)},
                write=True,
                idempotency_key=order.key,
                route="export",
            )
            if response.status_code == 422:
                results.append(OrderExportResult(order_ref=order.ref, status=ExportStatus.REJECTED, reason="empty order"))
            else:
                status = ExportStatus.DUPLICATE if response.json()["status"] == "duplicate" else ExportStatus.ACCEPTED
                results.append(OrderExportResult(order_ref=order.ref, status=status))
        return ExportReport(engine=self.name, results=tuple(results))


def make_order(ref: str, amount: str = "10.00") -> Order:
    line = Line(id="1", sku="SKU-1", quantity=1, unit_price=Money.of(amount, "EUR"))
    return Order(ref=ref, currency="EUR", lines=(line,), total=Money.of(amount, "EUR"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> OrdersFake:
    return OrdersFake()


@pytest.fixture
def loyalty(fake: OrdersFake):
    settings = LoyaltySettings(write_deadline=2, breaker_threshold=100)
    with Loyalty(settings, adapter=OrdersAdapter(), transport=fake.transport(), load_entry_points=False) as facade:
        yield facade


def test_accepted_orders_leave_the_outbox_and_are_recorded_once(tmp_path, fake, loyalty):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    assert outbox.add(make_order("A-1"))
    assert outbox.add(make_order("A-2"))
    assert not outbox.add(make_order("A-1")), "the same order ref is queued once"

    report = outbox.flush(loyalty)

    assert report is not None and [r.status for r in report.results] == [ExportStatus.ACCEPTED] * 2
    assert outbox.counts() == {PENDING: 0, DONE: 2, REJECTED: 0}
    assert sorted(fake.recorded.values()) == ["A-1", "A-2"]
    assert outbox.flush(loyalty) is None


def test_engine_down_keeps_orders_pending_with_backoff_then_exports(tmp_path, fake, loyalty):
    clock = Clock()
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    outbox.add(make_order("B-1"))
    fake.inject("export", Fault(FaultKind.STATUS, status=503, times=10))

    report = outbox.flush(loyalty)

    assert report is not None and report.status_of("B-1") is ExportStatus.RETRY_LATER
    entry = outbox.entry("B-1")
    assert entry is not None and entry.state == PENDING and entry.attempts == 1
    assert outbox.flush(loyalty) is None, "not due before its back-off has passed"

    fake.clear_faults()
    clock.now += 10
    report = outbox.flush(loyalty)
    assert report is not None and report.status_of("B-1") is ExportStatus.ACCEPTED
    assert outbox.entry("B-1").state == DONE
    assert list(fake.recorded.values()) == ["B-1"]


def test_rejected_order_is_kept_with_its_reason_and_others_go_through(tmp_path, fake, loyalty):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.add(make_order("C-1"))
    outbox.add(make_order("C-2", amount="0.00"))

    outbox.flush(loyalty)

    rejected = outbox.entry("C-2")
    assert rejected is not None and rejected.state == REJECTED and rejected.last_reason == "empty order"
    assert outbox.entry("C-1").state == DONE


def test_a_crashed_worker_lease_expires_and_the_engine_still_sees_the_order_once(tmp_path, fake, loyalty):
    clock = Clock()
    path = tmp_path / "outbox.sqlite3"
    crashed = Outbox(path, clock=clock, lease_seconds=60)
    crashed.add(make_order("D-1"))
    claimed = crashed.claim()
    assert [o.ref for o in claimed] == ["D-1"]
    # The worker exported but died before recording the outcome.
    loyalty.export_orders(claimed)
    crashed.close()

    survivor = Outbox(path, clock=clock, lease_seconds=60)
    assert survivor.claim() == [], "still leased by the crashed worker"
    clock.now += 61
    report = survivor.flush(loyalty)

    assert report is not None and report.status_of("D-1") is ExportStatus.DUPLICATE
    assert survivor.entry("D-1").state == DONE
    assert list(fake.recorded.values()) == ["D-1"], "the engine recorded the order once"


async def test_async_flush_exports_through_the_async_facade(tmp_path, fake):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.add(make_order("E-1"))
    settings = LoyaltySettings(write_deadline=2)
    async with AsyncLoyalty(settings, adapter=OrdersAdapter(), transport=fake.transport(), load_entry_points=False) as facade:
        report = await outbox.aflush(facade)
    assert report is not None and report.status_of("E-1") is ExportStatus.ACCEPTED
    assert outbox.entry("E-1").state == DONE


def test_outbox_refuses_what_is_not_an_order(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    with pytest.raises(ValueError) as info:
        outbox.add({"ref": "X"})  # type: ignore[arg-type]
    assert getattr(info.value, "field", None) == "order"
    assert outbox.counts()[PENDING] == 0


def test_money_in_the_stored_order_survives_as_decimal(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.add(make_order("F-1", amount="19.99"))
    (order,) = outbox.claim()
    assert order.total.amount == Decimal("19.99") and order.total.currency == "EUR"


def test_a_late_worker_does_not_overwrite_the_current_owners_outcome(tmp_path, fake, loyalty):
    clock = Clock()
    path = tmp_path / "outbox.sqlite3"
    late = Outbox(path, clock=clock, lease_seconds=60)
    late.add(make_order("G-1"))
    claimed = late.claim()
    clock.now += 61  # the late worker's lease ran out
    owner = Outbox(path, clock=clock, lease_seconds=60)
    assert owner.flush(loyalty).status_of("G-1") is ExportStatus.ACCEPTED

    retry = ExportReport(engine="orders", results=(
        OrderExportResult(order_ref="G-1", status=ExportStatus.RETRY_LATER, reason="late"),))
    late.record(retry)

    entry = owner.entry("G-1")
    assert entry.state == DONE and entry.last_status == "accepted", "the late verdict was dropped"
    assert [o.ref for o in claimed] == ["G-1"]


def test_oldest_pending_age_follows_the_oldest_waiting_order(tmp_path):
    from loyaltykit import Line, Money, Order
    from loyaltykit.outbox import Outbox

    now = [1000.0]
    outbox = Outbox(tmp_path / "o.sqlite3", clock=lambda: now[0])
    assert outbox.oldest_pending_age() is None
    line = Line(id="1", sku="S", quantity=1, unit_price=Money.of("1.00", "EUR"))
    outbox.add(Order(ref="A", currency="EUR", lines=[line], total=Money.of("1.00", "EUR")))
    now[0] += 30
    outbox.add(Order(ref="B", currency="EUR", lines=[line], total=Money.of("1.00", "EUR")))
    now[0] += 5
    assert outbox.oldest_pending_age() == 35
    outbox.close()
