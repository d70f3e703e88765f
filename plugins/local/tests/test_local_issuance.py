"""Issuing a voucher or offer outside a checkout on the embedded engine: the rules' ``issue_offer`` path
with the shop's overrides, once per key (also from several OS processes), in the wallet and the statement."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from loyaltykit import CustomerNotFoundError, InvalidRequestError, Money
from loyaltykit.members import StatementEntryKind, VoucherIssue
from loyaltykit_local.tables import vouchers
from loyaltykit_local.testing import eur

PROGRAM = """
currency = "EUR"

[[offers]]
id = "FIVE"
kind = "fixed_off_check"
amount = 5
label = "5 off"
valid_days = 30

[[offers]]
id = "TENTH"
kind = "percent_off_check"
percent = 10
"""


def _issue(member: str, **extra) -> VoucherIssue:
    return VoucherIssue(**{"customer_id": member, "definition_id": "FIVE", "idempotency_key": "gift-1", **extra})


def test_issue_puts_offers_in_the_wallet_once_per_key_with_the_statement_entry(make_shop):
    shop = make_shop(PROGRAM)
    member = shop.customer(identifiers={"email": "ann@example.com"})
    first = shop.loyalty.issue_voucher(_issue(member, quantity=2, reason="sorry for the delay"))
    assert first.created and len({v.code for v in first.vouchers}) == 2
    assert all(v.amount == eur("5.00") and v.expires_at == shop.clock.now + timedelta(days=30) for v in first.vouchers)
    again = shop.loyalty.issue_voucher(_issue(member, quantity=2, reason="sorry for the delay"))
    assert not again.created and again.vouchers == first.vouchers
    assert sorted(o.code for o in shop.loyalty.wallet(member).offers) == sorted(v.code for v in first.vouchers)
    entries = [e for e in shop.loyalty.statement({"customer_id": member}).entries
               if e.kind is StatementEntryKind.VOUCHER]
    assert sorted(e.code for e in entries) == sorted(v.code for v in first.vouchers)
    assert {e.label for e in entries} == {"sorry for the delay"}
    code = first.vouchers[0].code
    assert shop.loyalty.redeem_voucher({"code": code, "order_ref": "pos-1", "customer_id": member}).discount == eur("5.00")


def test_face_value_and_expiry_override_the_template(make_shop):
    shop = make_shop(PROGRAM)
    member = shop.customer(identifiers={"email": "bob@example.com"})
    until = datetime(2099, 1, 31, 23, 59, tzinfo=UTC)
    issued = shop.loyalty.issue_voucher(_issue(member, face_value=Money.of("12.50", "EUR"), expires_at=until))
    assert issued.vouchers[0].amount == eur("12.50") and issued.vouchers[0].expires_at == until


def test_refusals_name_the_field(make_shop):
    shop = make_shop(PROGRAM)
    ann = shop.customer(identifiers={"email": "ann@example.com"})
    bob = shop.customer(identifiers={"email": "bob@example.com"})
    with pytest.raises(InvalidRequestError) as unknown:
        shop.loyalty.issue_voucher(_issue(ann, definition_id="NOTHING"))
    assert unknown.value.field == "issue.definition_id"
    with pytest.raises(InvalidRequestError) as percent:
        shop.loyalty.issue_voucher(_issue(ann, definition_id="TENTH", face_value=Money.of("1.00", "EUR")))
    assert percent.value.field == "issue.face_value"
    with pytest.raises(CustomerNotFoundError):
        shop.loyalty.issue_voucher(_issue("M-NOBODY"))
    shop.loyalty.issue_voucher(_issue(ann))
    with pytest.raises(InvalidRequestError) as reused:  # the same key for another member
        shop.loyalty.issue_voucher(_issue(bob))
    assert reused.value.field == "issue.idempotency_key"
    with shop.store.sqlalchemy_read() as conn:
        assert conn.execute(select(func.count()).select_from(vouchers)).scalar_one() == 1


CHILD = textwrap.dedent("""
    import json, sys
    from loyaltykit import Loyalty, LoyaltySettings
    from loyaltykit_local.adapter import LocalAdapter

    url, member = sys.argv[1], sys.argv[2]
    adapter = LocalAdapter({"database_url": url, "busy_timeout_ms": 60000, "program_file": sys.argv[3]})
    with Loyalty(LoyaltySettings(engine="local"), adapter=adapter, load_entry_points=False) as lk:
        result = lk.issue_voucher({"customer_id": member, "definition_id": "FIVE", "idempotency_key": "race-1"})
        print(json.dumps({"code": result.vouchers[0].code, "created": result.created}))
""")


def test_the_same_issue_from_several_processes_issues_once(make_shop, tmp_path):
    shop = make_shop(PROGRAM, name="race")
    member = shop.customer(identifiers={"email": "race@example.com"})
    program = tmp_path / "program.toml"
    program.write_text(PROGRAM, encoding="utf-8")
    command = [sys.executable, "-c", CHILD, str(shop.store.url), member, str(program)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    outputs = [child.communicate(timeout=120) for child in children]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs if out.strip()]
    assert len(results) == 4, [err[-500:] for _, err in outputs]
    assert sum(r["created"] for r in results) == 1 and len({r["code"] for r in results}) == 1
    with shop.store.sqlalchemy_read() as conn:
        assert conn.execute(select(func.count()).select_from(vouchers)).scalar_one() == 1
