"""The outbox keeps every order until the engine has recorded or refused it, across crashes."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from loyaltykit_core_test_helpers import adapter_settings

from loyaltykit import (
    AsyncLoyalty,
    ExportReport,
    ExportStatus,
    Line,
    Loyalty,
    LoyaltySettings,
    Money,
    Order,
    OrderExportResult,
)
from loyaltykit.outbox import DEAD, DONE, DROPPED, PENDING, REJECTED, UNLOADABLE, Outbox
from loyaltykit.postgres_testing import fresh_database
from loyaltykit.testing import Fault, FaultKind
from loyaltykit_reference.adapter import ReferenceAdapter
from loyaltykit_reference.fake import ReferenceEngine


def orders_adapter() -> ReferenceAdapter:
    """The reference adapter with two attempts per export (an outage costs at most two calls)."""
    return ReferenceAdapter(adapter_settings(max_attempts=2, backoff_base=0.001))


def make_order(ref: str, amount: str = "10.00", currency: str = "EUR", customer_id: str | None = None) -> Order:
    """An order of its own customer (``member-<ref>``) unless ``customer_id`` is given; the outbox
    exports one customer's orders one at a time."""
    customer_id = customer_id or f"member-{ref}"
    line = Line(id="1", sku="SKU-1", quantity=1, unit_price=Money.of(amount, currency))
    return Order(ref=ref, currency=currency, lines=(line,), total=Money.of(amount, currency), customer_id=customer_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outbox_url(request, tmp_path) -> Iterator[str]:
    """The same tests on both stores: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
def make_outbox(outbox_url):
    made: list[Outbox] = []

    def make(**options) -> Outbox:
        outbox = Outbox(outbox_url, **options)
        made.append(outbox)
        return outbox

    yield make
    for outbox in made:
        outbox.close()


@pytest.fixture
def fake() -> ReferenceEngine:
    """The reference engine knowing Ann and Bob; the ``order`` fixture adds each order's own member.
    It rejects an order of a customer it does not know (``customer_id="ghost"``)."""
    engine = ReferenceEngine()
    for member in ("ann", "bob"):
        engine.add_member(member, {"email": f"{member}@example.com"})
    return engine


@pytest.fixture
def order(fake: ReferenceEngine):
    """``make_order`` whose default customer (``member-<ref>``) the fake knows."""

    def make(ref: str, amount: str = "10.00", currency: str = "EUR", customer_id: str | None = None) -> Order:
        made = make_order(ref, amount, currency, customer_id)
        if customer_id is None and made.customer_id not in fake.members:
            fake.add_member(made.customer_id, {"external_id": made.customer_id})
        return made

    return make


@pytest.fixture
def loyalty(fake: ReferenceEngine):
    settings = LoyaltySettings(write_deadline=2, breaker_threshold=100)
    with Loyalty(settings, adapter=orders_adapter(), transport=fake.transport(), load_entry_points=False) as facade:
        yield facade


def test_accepted_orders_leave_the_outbox_and_are_recorded_once(make_outbox, fake, loyalty, order):
    outbox = make_outbox()
    assert outbox.add(order("A-1"))
    assert outbox.add(order("A-2"))
    assert not outbox.add(order("A-1")), "the same order ref is queued once"

    report = outbox.flush(loyalty)

    assert report is not None and [r.status for r in report.results] == [ExportStatus.ACCEPTED] * 2
    assert outbox.counts() == {PENDING: 0, DONE: 2, REJECTED: 0, DEAD: 0, DROPPED: 0}
    assert sorted(fake.orders) == ["A-1", "A-2"]
    assert outbox.flush(loyalty) is None


def test_engine_down_keeps_orders_pending_with_backoff_then_exports(make_outbox, fake, loyalty, order):
    clock = Clock()
    outbox = make_outbox(clock=clock)
    outbox.add(order("B-1"))
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
    assert fake.orders == ["B-1"]


def test_rejected_order_is_kept_with_its_reason_and_others_go_through(make_outbox, fake, loyalty, order):
    outbox = make_outbox()
    outbox.add(order("C-1"))
    outbox.add(order("C-2", customer_id="ghost"))

    outbox.flush(loyalty)

    rejected = outbox.entry("C-2")
    assert rejected is not None and rejected.state == REJECTED and rejected.last_reason == "unknown customer"
    assert outbox.entry("C-1").state == DONE


def test_a_crashed_worker_lease_expires_and_the_engine_still_sees_the_order_once(make_outbox, fake, loyalty, order):
    clock = Clock()
    crashed = make_outbox(clock=clock, lease_seconds=60)
    crashed.add(order("D-1"))
    claimed = crashed.claim()
    assert [o.ref for o in claimed] == ["D-1"]
    # The worker exported but died before recording the outcome.
    loyalty.export_orders(claimed)
    crashed.close()

    survivor = make_outbox(clock=clock, lease_seconds=60)
    assert survivor.claim() == [], "still leased by the crashed worker"
    clock.now += 61
    report = survivor.flush(loyalty)

    assert report is not None and report.status_of("D-1") is ExportStatus.DUPLICATE
    assert survivor.entry("D-1").state == DONE
    assert fake.orders == ["D-1"], "the engine recorded the order once"


async def test_async_flush_exports_through_the_async_facade(make_outbox, fake, order):
    outbox = make_outbox()
    outbox.add(order("E-1"))
    settings = LoyaltySettings(write_deadline=2)
    async with AsyncLoyalty(settings, adapter=orders_adapter(), transport=fake.transport(), load_entry_points=False) as facade:
        report = await outbox.aflush(facade)
    assert report is not None and report.status_of("E-1") is ExportStatus.ACCEPTED
    assert outbox.entry("E-1").state == DONE


def test_outbox_refuses_what_is_not_an_order(make_outbox):
    outbox = make_outbox()
    with pytest.raises(ValueError) as info:
        outbox.add({"ref": "X"})  # type: ignore[arg-type]
    assert getattr(info.value, "field", None) == "order"
    assert outbox.counts()[PENDING] == 0


def test_money_in_the_stored_order_survives_as_decimal(make_outbox):
    outbox = make_outbox()
    outbox.add(make_order("F-1", amount="19.99"))
    (order,) = outbox.claim()
    assert order.total.amount == Decimal("19.99") and order.total.currency == "EUR"


def test_a_late_worker_does_not_overwrite_the_current_owners_outcome(make_outbox, fake, loyalty, order):
    clock = Clock()
    late = make_outbox(clock=clock, lease_seconds=60)
    late.add(order("G-1"))
    claimed = late.claim()
    clock.now += 61  # the late worker's lease ran out
    owner = make_outbox(clock=clock, lease_seconds=60)
    assert owner.flush(loyalty).status_of("G-1") is ExportStatus.ACCEPTED

    retry = ExportReport(engine="reference", results=(
        OrderExportResult(order_ref="G-1", status=ExportStatus.RETRY_LATER, reason="late"),))
    late.record(retry)

    entry = owner.entry("G-1")
    assert entry.state == DONE and entry.last_status == "accepted", "the late verdict was dropped"
    assert [o.ref for o in claimed] == ["G-1"]


def test_one_wrong_currency_order_does_not_block_the_others(make_outbox, fake, loyalty, order):
    outbox = make_outbox()
    for i in range(20):
        outbox.add(order(f"H-{i}"))
    outbox.add(order("H-USD", currency="USD"))

    report = outbox.flush(loyalty)

    assert report is not None and len(report.by_status(ExportStatus.ACCEPTED)) == 20
    assert sorted(fake.orders) == sorted(f"H-{i}" for i in range(20))
    bad = outbox.entry("H-USD")
    assert bad.state == PENDING and bad.attempts == 1 and "does not accept USD" in bad.last_reason
    assert outbox.counts()[DONE] == 20
    assert outbox.flush(loyalty) is None, "the bad order backs off on its own"


def test_a_stored_order_that_no_longer_loads_goes_dead_and_does_not_hold_its_batch(make_outbox, fake, loyalty, order):
    clock = Clock()
    outbox = make_outbox(clock=clock)
    outbox.add(order("U-1"))
    # rows written outside the kit (edited by hand, or by an incompatible release): one refused by
    # the model, one not JSON at all
    negative = order("U-2").model_dump_json().replace('"10.00"', '"-10.00"')
    assert outbox.store.insert("U-2", "order:U-2", negative, clock(), supersede=False)
    assert outbox.store.insert("U-3", "order:U-3", "{not json", clock(), supersede=False)
    outbox.add(order("U-4"))

    report = outbox.flush(loyalty)

    assert report is not None and sorted(r.order_ref for r in report.results) == ["U-1", "U-4"]
    assert sorted(fake.orders) == ["U-1", "U-4"]
    refused, garbled = outbox.entry("U-2"), outbox.entry("U-3")
    assert refused.state == DEAD and refused.last_status == UNLOADABLE and refused.attempts == 1
    assert "lines.0.unit_price" in refused.last_reason and "-10.00" not in refused.last_reason
    assert garbled.state == DEAD and garbled.last_reason == "the stored order does not load (JSONDecodeError)"
    assert outbox.counts() == {PENDING: 0, DONE: 2, REJECTED: 0, DEAD: 2, DROPPED: 0}
    clock.now += 10_000
    assert outbox.flush(loyalty) is None, "nothing stays leased or due"


def _rewrite_payload(outbox: Outbox, ref: str, payload: str) -> None:
    """Change a stored payload behind the kit's back (a hand edit), leaving its digest as it was."""
    store = outbox.store
    if hasattr(store, "engine"):  # PostgreSQL
        from sqlalchemy import text

        from loyaltykit.outbox.postgres import TABLE

        with store.engine.begin() as conn:
            conn.execute(text(f"UPDATE {TABLE} SET payload = :payload WHERE ref = :ref"),  # noqa: S608 - constant name
                         {"payload": payload, "ref": ref})
    else:
        with store._write() as db:  # type: ignore[attr-defined]
            db.execute("UPDATE outbox SET payload = ? WHERE ref = ?", (payload, ref))


@pytest.fixture
def dump_reads(monkeypatch):
    """The refs of the stored orders read back as the kit's own dump (no validation run): a spy on
    ``order_from_dump`` that changes nothing."""
    import loyaltykit.outbox as outbox_module

    read: list[str] = []
    real = outbox_module.order_from_dump

    def spy(data):
        order = real(data)
        if order is not None:
            read.append(order.ref)
        return order

    monkeypatch.setattr(outbox_module, "order_from_dump", spy)
    return read


def test_a_changed_stored_order_is_validated_in_full_and_refused_as_before(make_outbox, fake, loyalty, order, dump_reads):
    """A row the kit wrote keeps the digest of its payload: read back as written, without a validation
    run. A payload changed since (by hand, a script) no longer has its digest: it is validated in full
    and, refused, dead-lettered with the field named; a row queued without a digest is validated too."""
    clock = Clock()
    outbox = make_outbox(clock=clock)
    for ref in ("T-1", "T-2", "T-3", "T-4"):
        assert outbox.add(order(ref))
    _rewrite_payload(outbox, "T-2", order("T-2").model_dump_json().replace('"10.00"', '"-10.00"'))
    edited = order("T-3").model_dump_json().replace('"SKU-1"', '"SKU-9"')
    _rewrite_payload(outbox, "T-3", edited)  # still a valid order: validated, then exported as it now reads
    assert outbox.store.insert("T-5", "order:T-5", order("T-5").model_dump_json(), clock(), supersede=False)

    report = outbox.flush(loyalty)

    assert report is not None and sorted(r.order_ref for r in report.results) == ["T-1", "T-3", "T-4", "T-5"]
    assert sorted(dump_reads) == ["T-1", "T-4"], "only the rows as the kit wrote them skip validation"
    refused = outbox.entry("T-2")
    assert refused.state == DEAD and refused.last_status == UNLOADABLE and refused.attempts == 1
    assert refused.last_reason == ("the stored order does not load: "
                                   "lines.0.unit_price: unit price must not be negative")
    assert sorted(fake.orders) == ["T-1", "T-3", "T-4", "T-5"]


def test_a_superseded_payload_gets_its_own_digest(make_outbox, order, dump_reads):
    outbox = make_outbox()
    assert outbox.add(order("S-1", amount="10.00"))
    second = order("S-1", amount="12.00")
    assert outbox.add(second, supersede=True)
    (claimed,) = outbox.claim()
    assert claimed == second and dump_reads == ["S-1"]


def test_an_order_failing_every_time_goes_dead_with_its_last_error_and_can_be_retried(make_outbox, fake, loyalty, order):
    clock = Clock()
    outbox = make_outbox(clock=clock, max_attempts=3, backoff_base=2.0)
    outbox.add(order("J-USD", currency="USD"))
    outbox.add(order("J-1"))
    for _ in range(3):
        outbox.flush(loyalty)
        clock.now += 100
    dead = outbox.entry("J-USD")
    assert dead.state == DEAD and dead.attempts == 3 and dead.last_status == "retry_later"
    assert "CurrencyMismatchError" in dead.last_reason and "does not accept USD" in dead.last_reason
    assert outbox.entry("J-1").state == DONE
    assert outbox.flush(loyalty) is None, "a dead order is not claimed again"
    assert [e.ref for e in outbox.entries(DEAD)] == ["J-USD"]

    assert outbox.retry(["J-USD"]) == 1
    retried = outbox.entry("J-USD")
    assert retried.state == PENDING and retried.attempts == 0


def test_an_outage_backs_off_the_whole_batch_without_splitting_it(make_outbox, fake, loyalty, order):
    outbox = make_outbox()
    for i in range(5):
        outbox.add(order(f"K-{i}"))
    fake.inject("export", Fault(FaultKind.STATUS, status=503, times=100))
    calls_before = len(fake.requests)

    report = outbox.flush(loyalty)

    assert report is not None and len(report.by_status(ExportStatus.RETRY_LATER)) == 5
    assert all(outbox.entry(f"K-{i}").attempts == 1 for i in range(5))
    assert len(fake.requests) - calls_before <= 2, "one export attempt (with its own retry), not one per order"


def test_orders_of_one_customer_are_exported_in_the_order_they_were_placed(make_outbox, fake, loyalty, order):
    clock = Clock()
    outbox = make_outbox(clock=clock)
    outbox.add(order("L-1", customer_id="ann"))
    outbox.add(order("L-2", customer_id="ann"))
    outbox.add(order("L-3", customer_id="bob"))

    assert [o.ref for o in outbox.claim()] == ["L-1", "L-3"], "ann's second order waits for her first"
    clock.now += 200  # both leases ran out
    fake.inject("export", Fault(FaultKind.STATUS, status=503, times=2))
    outbox.flush(loyalty)  # L-1 and L-3 fail and back off
    clock.now += 1
    assert outbox.claim() == [], "L-2 still waits behind L-1"
    clock.now += 200
    fake.clear_faults()
    outbox.flush(loyalty)
    assert outbox.entry("L-1").state == DONE and outbox.entry("L-2").state == PENDING
    outbox.flush(loyalty)
    assert outbox.entry("L-2").state == DONE
    assert [ref for ref in fake.orders if ref.startswith("L-")] == ["L-1", "L-3", "L-2"]


def test_drop_cancels_a_pending_order_with_its_reason_but_not_one_in_flight_or_exported(make_outbox, fake, loyalty, order):
    outbox = make_outbox()
    outbox.add(order("M-1"))
    outbox.add(order("M-2"))
    outbox.add(order("M-3"))

    assert outbox.drop("M-1", reason="customer cancelled") is True
    assert outbox.entry("M-1").state == DROPPED and outbox.entry("M-1").last_reason == "customer cancelled"
    assert outbox.drop("M-1", reason="again") is False
    assert outbox.drop("NOPE", reason="unknown") is False
    claimed = outbox.claim()
    assert [o.ref for o in claimed] == ["M-2", "M-3"]
    assert outbox.drop("M-2", reason="too late") is False, "in flight"
    outbox.release(claimed)
    outbox.flush(loyalty)
    assert outbox.drop("M-3", reason="too late") is False, "exported"
    assert sorted(fake.orders) == ["M-2", "M-3"]
    with pytest.raises(ValueError) as info:
        outbox.drop("M-3", reason=" ")
    assert info.value.field == "reason"


def test_supersede_replaces_a_pending_orders_payload_only_before_export(make_outbox, fake, loyalty, order):
    outbox = make_outbox()
    assert outbox.add(order("N-1", amount="10.00"))
    assert outbox.add(order("N-1", amount="12.00")) is False, "without supersede the first payload stays"
    assert outbox.add(order("N-1", amount="12.00"), supersede=True) is True
    assert outbox.add(order("N-9", amount="1.00"), supersede=True) is True, "a new ref is simply queued"
    (first, _) = outbox.claim()
    assert first.ref == "N-1" and first.total.amount == Decimal("12.00")
    assert outbox.add(order("N-1", amount="13.00"), supersede=True) is False, "in flight"
    outbox.release([first])
    outbox.flush(loyalty)
    assert outbox.add(order("N-1", amount="14.00"), supersede=True) is False, "exported"
    assert outbox.entry("N-1").state == DONE


def test_the_lease_is_never_shorter_than_two_write_deadlines(make_outbox, fake, order):
    clock = Clock()
    worker = make_outbox(clock=clock, lease_seconds=1)
    other = make_outbox(clock=clock, lease_seconds=1)
    worker.add(order("P-1"))
    stolen: list = []

    class SlowAdapter(ReferenceAdapter):
        def export_orders(self, orders, ctx):
            clock.now += 20  # the export takes longer than lease_seconds, within the write deadline
            stolen.extend(other.claim())
            return (yield from super().export_orders(orders, ctx))

    settings = LoyaltySettings(write_deadline=15)
    with Loyalty(settings, adapter=SlowAdapter(orders_adapter().settings), transport=fake.transport(), load_entry_points=False) as facade:
        report = worker.flush(facade)
    assert stolen == [], "nobody else could claim the order while it was being exported"
    assert report.status_of("P-1") is ExportStatus.ACCEPTED and worker.entry("P-1").state == DONE


def test_the_lease_is_renewed_while_a_slow_export_runs(make_outbox, fake, order):
    import time as _time

    # A batch refused whole is exported one order at a time: each call within the write deadline,
    # all of them together longer than the lease (2 x 1 s). The renewal keeps the lease meanwhile.
    worker = make_outbox(lease_seconds=0.5)
    other = make_outbox(lease_seconds=0.5)
    worker.add(order("Q-USD", currency="USD"))
    for i in range(8):
        worker.add(order(f"Q-{i}"))
    stolen: list = []

    class SlowAdapter(ReferenceAdapter):
        def export_orders(self, orders, ctx):
            if len(orders) == 1:
                _time.sleep(0.3)
                stolen.extend(other.claim())
            return (yield from super().export_orders(orders, ctx))

    settings = LoyaltySettings(write_deadline=1.0)
    started = _time.monotonic()
    with Loyalty(settings, adapter=SlowAdapter(orders_adapter().settings), transport=fake.transport(), load_entry_points=False) as facade:
        report = worker.flush(facade)
    assert _time.monotonic() - started > 2.0, "the export outlived the lease it started with"
    assert stolen == [], "the renewed lease kept every order"
    assert len(report.by_status(ExportStatus.ACCEPTED)) == 8 and len(fake.orders) == 8


def test_one_thread_renews_the_leases_of_every_flush_and_ends_when_the_outbox_closes(make_outbox, loyalty, order):
    import threading

    outbox = make_outbox()
    for i in range(3):
        outbox.add(order(f"T-{i}"))
    before = set(threading.enumerate())
    outbox.flush(loyalty, 1)
    renewer = [t for t in set(threading.enumerate()) - before if t.name == "outbox-lease"]
    assert len(renewer) == 1 and renewer[0].is_alive(), "it waits for the next renewal time"
    outbox.flush(loyalty, 1)
    outbox.flush(loyalty, 1)
    assert [t for t in set(threading.enumerate()) - before if t.name == "outbox-lease"] == renewer, "no thread per batch"
    assert outbox.counts()[DONE] == 3
    outbox.close()
    assert not renewer[0].is_alive()


def test_each_claim_is_renewed_at_its_own_pace_until_it_ends():
    import time as _time

    from loyaltykit.outbox import _Renewals

    renewed: list[str] = []
    owner = _Recorder(renewed)
    renewals = _Renewals(owner.renew)
    with renewals.holding("slow", 30.0):  # renewed every 10 s: not within this test
        with renewals.holding("quick", 0.15):  # renewed every 0.05 s
            _time.sleep(0.3)
        ended = renewed.count("quick")
        _time.sleep(0.15)
    assert ended >= 2 and renewed.count("quick") == ended, "renewed while held, never after"
    assert "slow" not in renewed
    renewals.close()


def test_the_renewal_thread_does_not_keep_a_dropped_outbox_alive():
    import gc
    import weakref

    from loyaltykit.outbox import _Renewals

    owner = _Recorder([])
    renewals = _Renewals(owner.renew)
    gone = weakref.ref(owner)
    with renewals.holding("quick", 0.15):
        thread = renewals._thread
        assert thread is not None
        del owner
        gc.collect()
        thread.join(5)
    assert gone() is None and not thread.is_alive()


def test_the_renewal_thread_ends_soon_after_the_last_claim_and_a_new_claim_starts_another():
    from loyaltykit.outbox import _Renewals

    owner = _Recorder([])
    renewals = _Renewals(owner.renew)
    renewals.linger = 0.05
    with renewals.holding("first", 60.0):
        first = renewals._thread
    assert first is not None
    first.join(5)
    assert not first.is_alive(), "nothing held: it ended after lingering"
    with renewals.holding("second", 60.0):
        second = renewals._thread
        assert second is not None and second is not first and second.is_alive()
    renewals.close()
    assert not second.is_alive()


class _Recorder:
    def __init__(self, renewed: list[str]) -> None:
        self.renewed = renewed

    def renew(self, token: str, lease: float) -> None:
        self.renewed.append(token)


def test_drain_exports_everything_due_and_summarises(make_outbox, fake, loyalty, order):
    outbox = make_outbox()
    for i in range(7):
        outbox.add(order(f"R-{i}", amount="5.00", customer_id="ghost" if i == 3 else None))
    seen: list[int] = []

    summary = outbox.drain(loyalty, batch=3, progress=seen.append)

    assert summary.exported == 6 and summary.rejected == 1 and summary.batches == 3 and seen == [3, 3, 1]
    assert outbox.status()["due"] == 0 and outbox.counts()[DONE] == 6


def test_run_forever_stops_on_sigterm_after_finishing_its_batch(make_outbox, fake, loyalty, order):
    import os
    import signal
    import threading

    outbox = make_outbox()
    for i in range(4):
        outbox.add(order(f"S-{i}"))
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        summary = outbox.run_forever(loyalty, interval=0.05)
    finally:
        timer.cancel()
    assert signal.getsignal(signal.SIGTERM) is previous, "the previous handler is restored"
    assert summary.exported == 4 and outbox.counts()[DONE] == 4 and outbox.status()["leased"] == 0


async def test_async_methods_run_off_the_event_loop(make_outbox, fake, order):
    outbox = make_outbox()
    assert await outbox.aadd(order("T-1"))
    assert await outbox.aadd(order("T-2"))
    assert await outbox.adrop("T-2", reason="cancelled")
    settings = LoyaltySettings(write_deadline=2)
    async with AsyncLoyalty(settings, adapter=orders_adapter(), transport=fake.transport(), load_entry_points=False) as facade:
        summary = await outbox.adrain(facade)
    assert summary.exported == 1 and (await outbox.acounts())[DROPPED] == 1


def test_the_outbox_url_setting_chooses_the_store(monkeypatch, tmp_path):
    monkeypatch.setenv("LOYALTYKIT_OUTBOX_URL", f"sqlite:///{tmp_path / 'from-settings.sqlite3'}")
    with Outbox.from_settings() as outbox:
        outbox.add(make_order("U-1"))
    assert (tmp_path / "from-settings.sqlite3").is_file()
    assert "U-1" not in repr(LoyaltySettings()), "the URL (it may hold a password) stays out of reprs"
    with pytest.raises(Exception) as info:
        Outbox("sqlite://")
    assert "in-memory" in str(info.value)


def test_an_outbox_file_from_the_previous_release_is_upgraded_in_place(tmp_path, dump_reads):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE outbox (ref TEXT PRIMARY KEY, payload TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL, lease_owner TEXT,
            lease_until REAL NOT NULL DEFAULT 0, last_status TEXT, last_reason TEXT,
            created_at REAL NOT NULL, updated_at REAL NOT NULL);
    """)
    db.execute("INSERT INTO outbox (ref, payload, state, next_attempt, created_at, updated_at) VALUES (?, ?, ?, 0, 0, 0)",
               ("V-1", make_order("V-1").model_dump_json(), "pending"))
    db.commit()
    db.close()
    with Outbox(path) as outbox:
        assert [o.ref for o in outbox.claim()] == ["V-1"] and dump_reads == [], "validated in full"
    _a_table_without_digests_is_upgraded(str(path), dump_reads)


def _a_table_without_digests_is_upgraded(url: str, dump_reads: list[str]) -> None:
    """The previous release's rows (no digest) are validated in full; rows queued now carry a digest
    and are read back as written. Opening again (migrating again) changes nothing."""
    with Outbox(url) as outbox:
        assert outbox.add(make_order("V-2"))
        before = list(dump_reads)
        claimed = outbox.claim()
        assert [o.ref for o in claimed] == ["V-2"] and dump_reads == [*before, "V-2"]
        outbox.release(claimed)
    with Outbox(url) as outbox:
        assert [o.ref for o in outbox.claim()] == ["V-2"]


@pytest.mark.postgres
def test_a_postgres_table_from_the_previous_release_is_upgraded_in_place(dump_reads):
    from sqlalchemy import create_engine, text

    from loyaltykit.outbox.postgres import _SCHEMA, TABLE, engine_url

    with fresh_database() as url:
        old = create_engine(engine_url(url))
        try:
            with old.begin() as conn:  # the table as the previous release created it: no digest column
                conn.execute(text(_SCHEMA[0]))
                assert "digest" not in _SCHEMA[0]
                conn.execute(text(f"INSERT INTO {TABLE} (ref, group_key, payload, next_attempt, created_at, updated_at)"  # noqa: S608 - constant name
                                  " VALUES ('V-1', 'order:V-1', :payload, 0, 0, 0)"),
                             {"payload": make_order("V-1").model_dump_json()})
        finally:
            old.dispose()
        with Outbox(url) as outbox:
            claimed = outbox.claim()
            assert [o.ref for o in claimed] == ["V-1"] and dump_reads == [], "validated in full"
            outbox.release(claimed)
            outbox.drop("V-1", reason="upgraded")
        _a_table_without_digests_is_upgraded(url, dump_reads)


@pytest.mark.postgres
def test_transactional_outbox_an_order_is_queued_if_and_only_if_the_shops_transaction_commits():
    from sqlalchemy import create_engine, text

    from loyaltykit.outbox.postgres import engine_url, enqueue, insert_sql

    # Outbox(url) creates the table (what `loyaltykit outbox migrate` does)
    with fresh_database() as url, Outbox(url) as outbox:
        shop = create_engine(engine_url(url))
        try:
            with shop.connect() as conn:
                with conn.begin() as tx:
                    conn.execute(text("CREATE TABLE shop_orders (ref TEXT PRIMARY KEY)"))
                    tx.commit()
                with conn.begin() as tx:  # SQLAlchemy: the order row and the outbox row, one transaction
                    conn.execute(text("INSERT INTO shop_orders VALUES ('TX-1')"))
                    assert enqueue(conn, make_order("TX-1", customer_id="ann"))
                    tx.rollback()
                with conn.begin():
                    conn.execute(text("INSERT INTO shop_orders VALUES ('TX-2')"))
                    assert enqueue(conn, make_order("TX-2", customer_id="ann"))
            # any DB-API cursor (Django's connection.cursor() inside transaction.atomic())
            raw = shop.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute(*insert_sql(make_order("TX-3")))
                raw.commit()
            finally:
                raw.close()
        finally:
            shop.dispose()
        assert outbox.entry("TX-1") is None, "rolled back with the shop's order"
        assert [o.ref for o in outbox.claim()] == ["TX-2", "TX-3"]


async def test_a_slow_store_does_not_block_the_event_loop(outbox_url, fake, order):
    import asyncio
    import time as _time

    from loyaltykit.outbox import open_store

    class SlowStore:
        """The real store, with each call taking 0.2 s longer (a distant or busy database)."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            attr = getattr(self.inner, name)
            if not callable(attr):
                return attr

            def slow(*args, **kwargs):
                _time.sleep(0.2)
                return attr(*args, **kwargs)
            return slow

    outbox = Outbox(store=SlowStore(open_store(outbox_url)))  # type: ignore[arg-type]
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    running = asyncio.create_task(ticker())
    try:
        assert await outbox.aadd(order("Y-1"))
        settings = LoyaltySettings(write_deadline=2)
        async with AsyncLoyalty(settings, adapter=orders_adapter(), transport=fake.transport(),
                                load_entry_points=False) as facade:
            report = await outbox.aflush(facade)
    finally:
        running.cancel()
        outbox.close()
    assert report.status_of("Y-1") is ExportStatus.ACCEPTED
    assert ticks >= 20, f"the loop kept running during 0.6 s of database calls ({ticks} ticks)"


def test_a_drop_racing_a_claim_never_both_succeed(make_outbox):
    import threading

    dropper, worker = make_outbox(), make_outbox()
    for i in range(15):
        ref = f"Z-{i}"
        dropper.add(make_order(ref))
        start = threading.Barrier(2)
        outcome: dict = {}

        def drop():
            start.wait()  # noqa: B023 (run and joined within this iteration)
            outcome["dropped"] = dropper.drop(ref, reason="race")  # noqa: B023 (run and joined within this iteration)

        def claim():
            start.wait()  # noqa: B023 (run and joined within this iteration)
            outcome["claimed"] = [o.ref for o in worker.claim()]  # noqa: B023 (run and joined within this iteration)

        threads = [threading.Thread(target=drop), threading.Thread(target=claim)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        claimed = ref in outcome["claimed"]
        assert outcome["dropped"] != claimed, f"{ref}: exactly one of drop and claim wins ({outcome})"
        assert worker.entry(ref).state == (DROPPED if outcome["dropped"] else PENDING)
        if claimed:
            worker.release([make_order(ref)])
            assert dropper.drop(ref, reason="after release") is True
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


def test_a_claimed_order_is_the_order_that_was_added_field_for_field(make_outbox, dump_reads):
    from datetime import UTC, datetime

    from loyaltykit import Discount, FreeItem, Receipt

    lines = (Line(id="1", sku="SKU-1", quantity=Decimal("1.5"), unit_price=Money.of("10.00", "EUR"),
                  category="coffee", attributes={"grind": "fine"}),
             Line(id="2", sku="SKU-2", quantity=2, unit_price=Money.of("3.35", "EUR")))
    order = Order(ref="F-1", currency="EUR", lines=lines, customer_id="ann", shipping=Money.of("4.90", "EUR"),
                  discounts=(Discount(target="line", line_id="1", amount=Money.of("1.00", "EUR"), percent=Decimal("6.5")),
                             Discount(target="order", amount=Money.of("2.02", "EUR"), label="Ten percent")),
                  free_items=(FreeItem(sku="MUG", label="gift"),), voucher_codes=("WELCOME",),
                  receipts=(Receipt(operation="spend_cashback", engine="orders", idempotency_key="k-1",
                                    amount=Money.of("3.00", "EUR")),),
                  placed_at=datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC), channel="web", store_id="S1",
                  idempotency_key="F-1:export")
    outbox = make_outbox()
    assert outbox.add(order)
    (claimed,) = outbox.claim()
    assert claimed == order and dump_reads == ["F-1"], "read back as written, without a validation run"
    assert claimed.model_dump_json() == order.model_dump_json()
    assert claimed.allocations == order.allocations and claimed.total == order.total
    assert claimed.amount_due == order.amount_due


def test_the_sqlite_claim_reads_its_index_in_order_and_sorts_nothing(tmp_path):
    import time

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    try:
        # the claim statement as the store runs it, through SQLite's own planner
        calls: list[str] = []
        db = outbox.store._db
        outbox.store._db = _Spy(db, calls)
        outbox.claim()
        (claim_sql,) = [sql for sql in calls if sql.lstrip().startswith("SELECT")]
        now = time.time()
        plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + claim_sql,
                                                        ("pending", now, now, "pending", 100)))
    finally:
        outbox.store._db = db
        outbox.close()
    assert "USING INDEX outbox_due" in plan, plan
    assert "TEMP B-TREE" not in plan, f"the claim sorts the backlog: {plan}"


class _Spy:
    """A sqlite3 connection that notes every statement it is given."""

    def __init__(self, db, calls: list[str]) -> None:
        self.db, self.calls = db, calls

    def execute(self, sql, *args):
        self.calls.append(sql)
        return self.db.execute(sql, *args)

    def executemany(self, sql, *args):
        self.calls.append(sql)
        return self.db.executemany(sql, *args)


def test_the_sqlite_outbox_syncs_every_commit_unless_told_otherwise(tmp_path):
    from loyaltykit.errors import ConfigError

    def level(outbox: Outbox) -> int:
        return outbox.store._db.execute("PRAGMA synchronous").fetchone()[0]  # type: ignore[attr-defined]

    with Outbox(tmp_path / "a.sqlite3") as safe:
        assert level(safe) == 2, "FULL: a commit survives a power cut"
        safe.add(make_order("S-0"))
        assert level(safe) == 2, "a queued order is synced"
        (claimed,) = safe.claim()
        assert level(safe) == 1, "a worker's progress is not synced on its own (export is idempotent)"
        assert safe.drop("S-0", reason="cancelled") is False, "it is leased"
        safe.release([claimed])
        assert safe.drop("S-0", reason="cancelled") and level(safe) == 2, "a drop is synced"
    with Outbox(f"sqlite:///{tmp_path / 'b.sqlite3'}?synchronous=normal") as fast:
        assert fast.store._db.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert fast.add(make_order("S-1")) and [o.ref for o in fast.claim()] == ["S-1"]
        assert "synchronous=normal" in repr(fast)
    with pytest.raises(ConfigError, match="synchronous"):
        Outbox(f"sqlite:///{tmp_path / 'c.sqlite3'}?synchronous=off")
    with pytest.raises(ConfigError, match="unknown SQLite option 'journal_mode'"):
        Outbox(f"sqlite:///{tmp_path / 'c.sqlite3'}?journal_mode=memory")


@pytest.mark.postgres
def test_the_postgres_claim_reads_its_index_in_order_and_sorts_nothing():
    import time

    from sqlalchemy import text

    from loyaltykit.outbox.postgres import _PICK, TABLE

    with fresh_database() as url, Outbox(url) as outbox:
        engine = outbox.store.engine  # type: ignore[attr-defined]
        now = time.time()
        fill = (f"INSERT INTO {TABLE} (ref, group_key, payload, state, next_attempt, created_at, updated_at)"  # noqa: S608 - a constant table name
                " SELECT 'R' || g, 'R' || g, '{}', 'pending', :now + g * 1e-6, :now, :now FROM generate_series(1, 50000) AS g")
        with engine.begin() as conn:  # a backlog big enough for the planner to choose by cost
            conn.execute(text(fill), {"now": now - 60})
            conn.execute(text(f"ANALYZE {TABLE}"))
        with engine.begin() as conn:
            plan = "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + _PICK), {"now": now, "limit": 100}))
    assert f"Index Scan using {TABLE}_due" in plan, plan
    assert "Sort" not in plan, f"the claim sorts the backlog:\n{plan}"


def test_the_sqlite_listing_of_one_state_sorts_nothing(tmp_path):
    # the oldest pending order's age is read on every metrics scrape: no sort of the backlog
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    try:
        calls: list[str] = []
        db = outbox.store._db
        outbox.store._db = _Spy(db, calls)
        outbox.oldest_pending_age()
        (sql,) = [s for s in calls if s.lstrip().startswith("SELECT")]
        plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, ("pending", 1)))
    finally:
        outbox.store._db = db
        outbox.close()
    assert "USING" in plan and "INDEX outbox_state" in plan, plan
    assert "TEMP B-TREE" not in plan, f"the listing sorts the backlog: {plan}"
