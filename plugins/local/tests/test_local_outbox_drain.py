"""``loyaltykit outbox drain`` exports through the configured engine (here the embedded one)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from loyaltykit import Line, Money, Order
from loyaltykit.cli import app
from loyaltykit.outbox import DONE, REJECTED, Outbox


def order(ref: str, currency: str = "EUR") -> Order:
    line = Line(id="1", sku="BEANS", quantity=1, unit_price=Money.of("8.00", currency))
    return Order(ref=ref, currency=currency, lines=(line,), total=Money.of("8.00", currency))


def test_drain_exports_everything_due_and_prints_a_summary(tmp_path, monkeypatch, database_url):
    outbox_url = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    monkeypatch.setenv("LOYALTYKIT_LOCAL_DATABASE_URL", database_url)
    monkeypatch.setenv("LOYALTYKIT_LOCAL_CREATE_SCHEMA", "true")
    monkeypatch.setenv("LOYALTYKIT_OUTBOX_URL", outbox_url)
    monkeypatch.chdir(tmp_path)
    with Outbox(outbox_url) as outbox:
        for i in range(5):
            outbox.add(order(f"D-{i}"))
        outbox.add(order("D-USD", currency="USD"))  # the program books EUR: refused, the others go through

    done = CliRunner().invoke(app, ["outbox", "drain", "--batch", "2", "--json"])

    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert summary["exported"] == 5 and summary["rejected"] == 1 and summary["batches"] == 3
    assert summary["pending"] == 0
    with Outbox(outbox_url) as outbox:
        assert outbox.counts()[DONE] == 5 and outbox.entry("D-USD").state == REJECTED
        outbox.add(order("D-9"))
    shown = CliRunner().invoke(app, ["outbox", "drain"])
    assert shown.exit_code == 0 and "outbox drained" in shown.output and "exported" in shown.output
