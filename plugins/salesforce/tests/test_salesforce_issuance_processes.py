"""Issuing with one idempotency key from four OS processes at once issues one voucher: Salesforce has
no idempotency for the issue process, so the adapter looks the key's voucher code up before sending,
and the processes share the ``key_lock_dir`` file locks that close the race between look-up and post."""

from __future__ import annotations

import multiprocessing
import time
from decimal import Decimal

import httpx
import pytest

from loyaltykit.testing import serve
from loyaltykit_salesforce.fake import FakeVoucherDefinition
from loyaltykit_salesforce.testing import SalesforceHarness

PROCESSES = 4


def _issue(settings: dict, lock_dir: str, start, results) -> None:
    from loyaltykit import Loyalty, LoyaltySettings
    from loyaltykit_salesforce.adapter import SalesforceAdapter

    kit = LoyaltySettings(engine="salesforce", write_deadline=20, key_lock_dir=lock_dir)
    with Loyalty(kit, adapter=SalesforceAdapter(settings), load_entry_points=False) as shop:
        shop.identify(membership="M1")  # fetch a token before the race
        start.wait(30)
        issued = shop.issue_voucher({"customer_id": "M1", "definition_id": "Birthday",
                                     "idempotency_key": "birthday-M1-2026"})
        results.put((issued.vouchers[0].id, issued.created))


@pytest.fixture
def served():
    harness = SalesforceHarness()
    harness.create_customer(identifiers={"membership": "M1"})
    harness.fake.add_definition(FakeVoucherDefinition(name="Birthday", type="FixedValue", face_value=Decimal(10)))

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.01)  # widen the window between the look-up and the post
        return harness.fake.handle(request)

    with serve(slow) as server:
        yield harness, server.url


def test_one_key_from_four_processes_issues_one_voucher(served, tmp_path):
    harness, url = served
    settings = {**harness.settings, "my_domain_url": url}
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(PROCESSES), context.Queue()
    workers = [context.Process(target=_issue, args=(settings, str(tmp_path / "locks"), start, results))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert len(harness.fake.vouchers) == 1, f"issued {len(harness.fake.vouchers)} vouchers"
    assert {voucher_id for voucher_id, _ in answers} == {harness.fake.vouchers[0].id}
    assert sum(created for _, created in answers) == 1
