"""``loyaltykit outbox ...``: operators inspect, retry and drop orders; scripts read --json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from loyaltykit import Line, Money, Order
from loyaltykit.cli import app
from loyaltykit.outbox import DEAD, DONE, DROPPED, PENDING, Outbox
from loyaltykit.outbox.store import Settlement

runner = CliRunner()


def make_order(ref: str) -> Order:
    line = Line(id="1", sku="SKU-1", quantity=1, unit_price=Money.of("3.00", "EUR"))
    return Order(ref=ref, currency="EUR", lines=(line,), total=Money.of("3.00", "EUR"))


def run(*args: str):
    return runner.invoke(app, ["outbox", *args])


def seeded(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'ops.sqlite3'}"
    with Outbox(url) as outbox:
        for ref in ("A", "B", "C"):
            outbox.add(make_order(ref))
        # C fails for good: dead, with its last error
        token = "operator-test"
        now = outbox.clock()
        (_claimed,) = [c for c in outbox.store.claim(10, now, now + 60, token) if c.ref == "C"]
        outbox.store.settle(token, [Settlement("C", DEAD, 10, now, "retry_later", "engine_unavailable: down")], now)
        outbox.store.release(token, ["A", "B"])
    return url


def test_status_and_list_as_json(tmp_path):
    url = seeded(tmp_path)
    done = run("status", "--url", url, "--json")
    assert done.exit_code == 0, done.output
    counts = json.loads(done.output)
    assert counts[PENDING] == 2 and counts[DEAD] == 1 and counts["due"] == 2

    listed = run("list", "--url", url, "--state", "dead", "--json")
    (entry,) = json.loads(listed.output)
    assert entry["ref"] == "C" and entry["attempts"] == 10 and entry["last_reason"] == "engine_unavailable: down"
    assert run("list", "--url", url, "--state", "nonsense").exit_code == 2


def test_drop_and_retry(tmp_path):
    url = seeded(tmp_path)
    dropped = run("drop", "A", "--reason", "customer cancelled", "--url", url, "--json")
    assert dropped.exit_code == 0 and json.loads(dropped.output) == {"ref": "A", "dropped": True, "state": DROPPED}
    again = run("drop", "A", "--reason", "twice", "--url", url)
    assert again.exit_code == 1 and "dropped" in again.output
    assert run("drop", "B", "--url", url).exit_code == 2, "a drop needs --reason"

    assert run("retry", "--url", url).exit_code == 2, "refs or --all"
    retried = run("retry", "C", "--url", url, "--json")
    assert retried.exit_code == 0 and json.loads(retried.output) == {"retried": 1}
    with Outbox(url) as outbox:
        assert outbox.entry("C").state == PENDING and outbox.entry("C").attempts == 0
        assert outbox.entry("A").state == DROPPED and outbox.entry("A").last_reason == "customer cancelled"
    assert run("retry", "--all", "--url", url).exit_code == 1, "nothing dead is left"
    assert run("retry", "--all", "--state", "dropped", "--url", url).exit_code == 0
    with Outbox(url) as outbox:
        assert outbox.counts()[DONE] == 0 and outbox.counts()[PENDING] == 3


def test_migrate_creates_the_table_and_a_bad_url_is_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    done = run("migrate", "--url", url, "--json")
    assert done.exit_code == 0 and json.loads(done.output)["migrated"] is True
    bad = run("status", "--url", "mysql://nope")
    assert bad.exit_code == 2 and "outbox_url" in bad.output
