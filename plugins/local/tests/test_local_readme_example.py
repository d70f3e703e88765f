"""The README's checkout example runs as written, in an empty directory, and does what it says."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from loyaltykit import Money
from loyaltykit.outbox import DONE

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_checkout_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A checkout, as a shop writes it", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the README's checkout section has a python block"
    return match.group(1)


def test_the_readme_checkout_example_runs_and_does_what_it_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a fresh clone's working directory: no loyaltykit.toml, no database
    monkeypatch.delenv("LOYALTYKIT_CONFIG", raising=False)
    namespace: dict = {}
    # running the README's own example is the point of this test
    exec(compile(readme_checkout_example(), str(README), "exec"), namespace)  # noqa: S102

    quote, order, refund = namespace["quote"], namespace["order"], namespace["refund"]
    assert not quote.degraded and quote.discount_total > Money.zero("EUR"), "WELCOME10 was applied"
    assert [r.operation for r in namespace["receipts"]] == ["redeem_voucher", "spend_cashback"]
    assert order.total == quote.total and order.amount_due == quote.total - Money.of("5.00", "EUR")
    assert namespace["outbox"].entry(order.ref).state == DONE
    # one of the two bags came back: half the order's goods, paid pro rata by card and cashback
    half = order.allocation("1").net.amount / 2
    assert abs(refund.refund.goods.amount - half) <= Decimal("0.005") and refund.refund.shipping == Money.zero("EUR")
    assert refund.refund.to_card + refund.refund.to_cashback == refund.refund.total
    assert f"to pay by card: {order.amount_due}" in capsys.readouterr().out
