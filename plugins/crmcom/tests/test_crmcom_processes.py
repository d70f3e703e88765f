"""Exactly once across OS processes: the same spend (same idempotency key) from several processes at
once, against the fake served over real HTTP, spends once. Across processes nothing is shared but
the engine: the look-up by reference and the engine's duplicate-reference conflict do the work."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest
from loyaltykit_crmcom.testing import CrmcomHarness, harness_settings

from loyaltykit import Money
from loyaltykit.testing import serve

CHILD = textwrap.dedent("""
    import json, sys, time
    from loyaltykit import Basket, CashbackSpend, Line, Loyalty, LoyaltySettings, Money
    from loyaltykit.errors import LoyaltyError, OutcomeUnknownError
    from loyaltykit_crmcom.adapter import CrmcomAdapter

    settings, card = json.loads(sys.argv[1]), sys.argv[2]
    eur = lambda v: Money.of(v, "EUR")
    basket = Basket(id="B-1", currency="EUR", customer_id=card,
                    lines=(Line(id="1", sku="COFFEE", quantity=1, unit_price=eur("30.00")),))
    request = CashbackSpend(customer_id=card, order_ref="ORD-P", amount=eur("5.00"), basket=basket)
    with Loyalty(LoyaltySettings(engine="crmcom"), adapter=CrmcomAdapter(settings), load_entry_points=False) as lk:
        for _ in range(50):
            try:
                result = lk.spend_cashback(request)
                print(json.dumps({"amount": str(result.amount.amount), "ref": result.receipt.engine_ref}))
                break
            except OutcomeUnknownError:
                time.sleep(0.05)
            except LoyaltyError as exc:
                print(json.dumps({"error": exc.code}))
                break
""")


@pytest.mark.parametrize("spend_mode", ["spend_request", "create_spend", "inside_create"])
def test_same_spend_from_several_processes_spends_once(spend_mode):
    harness = CrmcomHarness(spend_mode=spend_mode)
    card = harness.create_customer(identifiers={"card": "7700000000009999"},
                                   cashback=Money.of("20.00", "EUR")).id
    with serve(harness.fake.handle) as served:
        settings = json.dumps(harness_settings(base_url=served.url, release_token_on_close=False,
                                               spend_mode=spend_mode))
        children = [subprocess.Popen([sys.executable, "-c", CHILD, settings, card], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outputs = [child.communicate(timeout=120) for child in children]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert all(r.get("amount") == "5.00" for r in results), (results, [err[-500:] for _, err in outputs])
    assert len({r["ref"] for r in results}) == 1
    assert len(harness.fake.purchases) == 1
    assert len(harness.fake.spends) == (1 if spend_mode == "spend_request" else 0)  # else inside the purchase
    assert harness.fake.purchases[0].spent == Decimal("5.00")
    assert harness.balances(card).cashback.amount == Decimal("15.00")
