"""Exactly once across OS processes: four processes spend with one idempotency key on an engine
without engine-side idempotency (the reference engine, served over HTTP), sharing the
``key_lock_dir`` file locks; and redeem with one key on its de-duplicating endpoint."""

from __future__ import annotations

import multiprocessing
import time
from decimal import Decimal

import httpx
import pytest

from loyaltykit.testing import serve

reference = pytest.importorskip("loyaltykit_reference.testing", reason="install plugins/reference (requirements-dev.txt)")

PROCESSES = 4


def _call(url: str, lock_dir: str | None, operation: str, payload: dict, start, results) -> None:
    from loyaltykit import Loyalty, LoyaltySettings
    from loyaltykit_reference.adapter import ReferenceAdapter
    from loyaltykit_reference.fake import CLIENT_ID, CLIENT_SECRET

    adapter = ReferenceAdapter({"base_url": url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    settings = LoyaltySettings(engine="reference", write_deadline=20, key_lock_dir=lock_dir)
    with Loyalty(settings, adapter=adapter, load_entry_points=False) as shop:
        shop.identify(email="ann@example.com")  # fetch a token before the race
        start.wait(30)  # every process ready: go together
        result = getattr(shop, operation)(payload)
        results.put(result.receipt.engine_ref)


def race(url: str, lock_dir: str | None, operation: str, payload: dict) -> list[str]:
    context = multiprocessing.get_context("fork")  # the children inherit the imports: fast
    start, results = context.Barrier(PROCESSES), context.Queue()
    workers = [context.Process(target=_call, args=(url, lock_dir, operation, payload, start, results))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    refs = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    return refs


@pytest.fixture
def served():
    harness = reference.make_harness()
    harness.fake.add_member("m1", {"email": "ann@example.com"}, cashback=Decimal("20.00"))
    harness.fake.add_voucher("ONCE", Decimal(5))

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.01)  # widen the window between a look-up and a post
        return harness.fake.handle(request)

    with serve(slow) as server:
        yield harness, server.url


def test_a_look_up_then_post_spend_is_applied_once_across_processes(served, tmp_path):
    harness, url = served
    spend = {"customer_id": "m1", "order_ref": "o-proc", "kind": "cashback",
             "amount": {"amount": "1.00", "currency": "EUR"}}
    refs = race(url, str(tmp_path / "locks"), "spend_cashback", spend)
    assert len(harness.fake.spends) == 1, f"spent {len(harness.fake.spends)} times"
    assert set(refs) == {"s1"}
    assert harness.balances("m1").cashback.amount == Decimal("19.00")


def test_a_keyed_redeem_is_applied_once_across_processes_without_shared_locks(served):
    harness, url = served
    refs = race(url, None, "redeem_voucher", {"code": "ONCE", "order_ref": "o-proc", "customer_id": "m1"})
    assert harness.voucher_redemptions("ONCE") == 1
    assert len(set(refs)) == 1


def test_the_setting_selects_file_locks_and_the_default_is_per_process(tmp_path):
    from loyaltykit import Loyalty, LoyaltySettings
    from loyaltykit.reconcile import PROCESS_KEY_LOCKS, FileKeyLocks
    from loyaltykit_reference.adapter import ReferenceAdapter
    from loyaltykit_reference.fake import CLIENT_ID, CLIENT_SECRET

    def shop(**settings):
        adapter = ReferenceAdapter({"base_url": "https://x.example", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        return Loyalty(LoyaltySettings(engine="reference", **settings), adapter=adapter, load_entry_points=False)

    with shop(key_lock_dir=tmp_path / "locks") as shared, shop() as alone:
        assert isinstance(shared.client_config.key_locks, FileKeyLocks)
        assert alone.client_config.key_locks is PROCESS_KEY_LOCKS
    assert (tmp_path / "locks").is_dir()
