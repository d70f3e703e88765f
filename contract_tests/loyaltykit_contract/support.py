"""Helpers the scenarios share: sample identifiers, vouchers, spends and invariants."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from loyaltykit.capabilities import Capability
from loyaltykit.errors import LoyaltyError
from loyaltykit.models import (
    BalanceKind,
    CashbackSpend,
    Evaluation,
    ExportReport,
    ExportStatus,
    IdentifierKind,
    VoucherRedemption,
)
from loyaltykit.testing import SeededCustomer, VoucherSpec

from .target import ContractTarget


def sample_identifier(kind: str) -> str:
    """A valid, unique identifier value of ``kind``."""
    tag = uuid.uuid4().hex
    digits = "".join(random.choice("0123456789") for _ in range(9))  # noqa: S311 (a made-up test number)
    return {
        IdentifierKind.EMAIL: f"m{tag[:12]}@example.com",
        IdentifierKind.PHONE: f"+4915{digits}",
        IdentifierKind.CARD: f"77{digits}{digits[:5]}",
        IdentifierKind.MEMBERSHIP: f"M{tag[:10].upper()}",
        IdentifierKind.EXTERNAL_ID: f"X{tag[:17]}",  # opaque: 18 letters and digits
    }[IdentifierKind(kind)]


def identifiable_customer(lk: ContractTarget, **kwargs: Any) -> tuple[SeededCustomer, dict[str, str]]:
    """A customer with an e-mail address and a value for the first identifier kind the adapter
    declares; returns the seeded customer and an identifier mapping to identify them by."""
    kind = sorted(lk.caps.identify_by)[0].value if lk.caps.identify_by else "email"
    identifiers = {"email": sample_identifier("email")}
    identifiers.setdefault(kind, sample_identifier(kind))
    seeded = lk.customer(identifiers, capability=Capability.IDENTIFY, **kwargs)
    value = seeded.identifiers.get(kind, identifiers[kind])
    return seeded, {"kind": kind, "value": value}


def voucher_code() -> str:
    return f"CT{uuid.uuid4().hex[:10].upper()}"


def issue_voucher(
    lk: ContractTarget,
    owner_id: str | None,
    *,
    amount: str = "5.00",
    usage_limit: int | None = 1,
    expires_at: datetime | None = None,
    valid_from: datetime | None = None,
    what: str = "issue a single-use fixed-amount voucher to a customer",
    capability: Capability | None = Capability.REDEEM_VOUCHER,
) -> str:
    spec = VoucherSpec(
        code=voucher_code(),
        kind="fixed",
        amount=lk.money(amount),
        owner_id=owner_id,
        usage_limit=usage_limit,
        expires_at=expires_at,
        valid_from=valid_from,
    )
    code: str = lk.seed(what, lk.harness.issue_voucher, spec, capability=capability)
    return code


def multi_use_voucher_or_single(lk: ContractTarget, owner_id: str) -> tuple[str, bool]:
    """An unlimited voucher when the engine has them (a double burn then shows as 2
    redemptions), else a single-use one (a double burn then shows as a refusal)."""
    try:
        spec = VoucherSpec(code=voucher_code(), kind="fixed", amount=lk.money("5.00"), owner_id=owner_id,
                           usage_limit=None)
        return lk.harness.issue_voucher(spec), True
    except NotImplementedError:
        return issue_voucher(lk, owner_id), False


def past(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def redemption(lk: ContractTarget, code: str, customer_id: str | None, order_ref: str | None = None) -> VoucherRedemption:
    return VoucherRedemption(
        code=code,
        order_ref=order_ref or lk.ref(),
        customer_id=customer_id,
        basket=lk.basket(customer_id=customer_id),
    )


# -- balances --------------------------------------------------------------------------------------

SPEND_CAPABILITY = {"cashback": Capability.SPEND_CASHBACK, "points": Capability.SPEND_POINTS}


def customer_with_balance(lk: ContractTarget, kind: str, amount: str) -> SeededCustomer:
    if kind == "cashback":
        return lk.customer(cashback=lk.money(amount), capability=Capability.SPEND_CASHBACK)
    return lk.customer(points=Decimal(amount), capability=Capability.SPEND_POINTS)


def spend(lk: ContractTarget, customer_id: str, kind: str, amount: str, order_ref: str | None = None) -> CashbackSpend:
    if kind == "cashback":
        # The basket it pays for: engines that settle a spend against an itemised purchase need it.
        return CashbackSpend(customer_id=customer_id, order_ref=order_ref or lk.ref(), amount=lk.money(amount),
                             basket=lk.basket(customer_id=customer_id))
    return CashbackSpend(
        customer_id=customer_id, order_ref=order_ref or lk.ref(), kind=BalanceKind.POINTS, points=Decimal(amount)
    )


def balance(lk: ContractTarget, customer_id: str, kind: str) -> Decimal:
    """The engine-side balance (money amount or points) read through the harness."""
    if kind == "cashback":
        return lk.cashback(customer_id).amount
    return lk.points(customer_id)


# -- invariants ------------------------------------------------------------------------------------


def assert_quote(lk: ContractTarget, evaluation: Any, basket: Any) -> Evaluation:
    assert isinstance(evaluation, Evaluation), f"expected an Evaluation, got {evaluation!r}"
    assert not evaluation.degraded, f"evaluation degraded: {evaluation.degraded_reason}"
    assert evaluation.currency == basket.currency
    assert evaluation.subtotal == basket.subtotal, f"subtotal {evaluation.subtotal} != {basket.subtotal}"
    assert evaluation.basket_id == basket.id
    return evaluation


def assert_report_truthful(lk: ContractTarget, report: Any, refs: list[str]) -> dict[str, ExportStatus]:
    """One result per order, in order; an order reported accepted or duplicate is recorded by the
    engine exactly once; an order reported rejected or retry_later is not recorded."""
    assert isinstance(report, ExportReport), f"expected an ExportReport, got {report!r}"
    assert [r.order_ref for r in report.results] == refs
    received = lk.harness.orders_received()
    statuses = {}
    for result in report.results:
        statuses[result.order_ref] = result.status
        count = received.count(result.order_ref)
        if result.status in (ExportStatus.ACCEPTED, ExportStatus.DUPLICATE):
            assert count == 1, f"order reported {result.status.value} but the engine recorded it {count} time(s)"
        else:
            assert result.reason, f"order {result.status.value} without a reason"
            if result.status is ExportStatus.REJECTED:
                assert count == 0, f"order reported rejected but the engine recorded it {count} time(s)"
    return statuses


def assert_no_duplicates(lk: ContractTarget, refs: list[str]) -> None:
    received = lk.harness.orders_received()
    for ref in refs:
        assert received.count(ref) == 1, f"engine recorded order {ref} {received.count(ref)} time(s), expected 1"


def export_until_done(lk: ContractTarget, orders: list[Any], attempts: int = 12) -> Any:
    """Re-export (as an outbox does) until no order is left retry_later."""
    refs = [o.ref for o in orders]
    report = None
    for _ in range(attempts):
        report = lk.call("export_orders", orders)
        statuses = assert_report_truthful(lk, report, refs)
        if all(s is not ExportStatus.RETRY_LATER for s in statuses.values()):
            return report
    raise AssertionError(f"orders still retry_later after {attempts} exports: {report!r}")


def is_error(value: Any, *types: type[BaseException]) -> bool:
    return isinstance(value, types or (LoyaltyError,))
