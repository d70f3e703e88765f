"""Capability requirements of scenarios, and what the suite asserts when one is not declared.

Every scenario names the capabilities it needs with :func:`requires`. When the adapter declares
all of them, the scenario runs. When it lacks one, the scenario body does not run; instead the
suite asserts the *not supported* contract for the first missing capability:

* for a capability the facade gates (identify, evaluate, price_products, redeem_voucher,
  spend_cashback, spend_points, export_orders, cancel, refund, partial_refund, sync_products,
  enrol_member, update_member, statement, wallet, issue_voucher,
  points_catalog), the operation
  raises ``NotSupportedError`` and no request reaches the engine;
* for a capability that qualifies an operation (wallet_offers, earn_preview, reserve_voucher),
  the operation still works and shows none of the undeclared feature (no wallet, no points to
  earn, a redemption that is ``redeemed`` rather than ``reserved``): an undeclared feature fails.

Either way the result is reported as "not supported" in the compatibility matrix, never skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from loyaltykit.capabilities import Capability
from loyaltykit.errors import LoyaltyError, NotSupportedError
from loyaltykit.members import Enrolment, MemberUpdate, StatementQuery, VoucherIssue, WalletQuery
from loyaltykit.models import (
    BalanceKind,
    CashbackSpend,
    Evaluation,
    PointsLine,
    Product,
    ProductQuery,
    RedemptionStatus,
    RefundLine,
    Reversal,
    ReversalKind,
    VoucherRedemption,
)

if TYPE_CHECKING:
    from .target import ContractTarget

F = TypeVar("F", bound=Callable[..., Any])

MARKER = "loyaltykit_requires"


def requires(*capabilities: Capability) -> Callable[[F], F]:
    """Declare the capabilities a scenario needs (in the order they should be probed)."""
    for capability in capabilities:
        Capability(capability)  # a typo fails at import, not silently at run time
    marker: Callable[[F], F] = getattr(pytest.mark, MARKER)(*capabilities)
    return marker


def required(item: pytest.Item) -> tuple[Capability, ...]:
    marker = item.get_closest_marker(MARKER)
    return tuple(Capability(c) for c in marker.args) if marker else ()


def expect_not_supported(target: ContractTarget, operation: str, *args: Any, label: str) -> None:
    """Assert ``operation`` raises NotSupportedError without any engine request."""
    before = target.request_count()
    try:
        result = target.call(operation, *args)
    except NotSupportedError:
        pass
    except LoyaltyError as exc:
        raise AssertionError(
            f"{target.engine} does not declare {label}: expected NotSupportedError, got {exc!r}"
        ) from None
    else:
        raise AssertionError(
            f"{target.engine} does not declare {label}: expected NotSupportedError, got a result {result!r}"
        )
    after = target.request_count()
    if before is not None and after is not None:
        assert after == before, f"{label} is not supported, yet {after - before} request(s) reached the engine"
    target.report("not_supported", label)


def _probe_args(target: ContractTarget, capability: Capability) -> tuple[str, tuple[Any, ...]] | None:
    currency = target.currency
    order = target.order(customer_id="cust-probe")
    if capability is Capability.IDENTIFY:
        return "identify", ({"kind": "email", "value": "probe@example.com"},)
    if capability is Capability.EVALUATE:
        return "evaluate", (target.basket(),)
    if capability is Capability.PRICE_PRODUCTS:
        return "price_products", (ProductQuery(currency=currency, products=target.lines(("SKU-A", "10.00", 1))),)
    if capability is Capability.REDEEM_VOUCHER:
        return "redeem_voucher", (VoucherRedemption(code="PROBE", order_ref=target.ref()),)
    if capability is Capability.SPEND_CASHBACK:
        spend = CashbackSpend(customer_id="cust-probe", order_ref=target.ref(), amount=target.money("1.00"))
        return "spend_cashback", (spend,)
    if capability is Capability.SPEND_POINTS:
        spend = CashbackSpend(
            customer_id="cust-probe", order_ref=target.ref(), kind=BalanceKind.POINTS, points=Decimal(10)
        )
        return "spend_cashback", (spend,)
    if capability is Capability.POINTS_CATALOG:
        # a points spend naming the points-priced lines it pays
        spend = CashbackSpend(
            customer_id="cust-probe", order_ref=target.ref(), kind=BalanceKind.POINTS, points=Decimal(10),
            line_ids=("l1",), points_lines=(PointsLine(line_id="l1", points=Decimal(10)),),
        )
        return "spend_cashback", (spend,)
    if capability is Capability.EXPORT_ORDERS:
        return "export_orders", ([order],)
    if capability is Capability.CANCEL:
        return "reverse", (Reversal(order=order, kind=ReversalKind.CANCEL),)
    if capability is Capability.REFUND:
        return "reverse", (Reversal(order=order, kind=ReversalKind.REFUND),)
    if capability is Capability.SYNC_PRODUCTS:
        return "sync_products", ([Product(sku="SKU-PROBE")],)
    if capability is Capability.ENROL_MEMBER:
        return "enrol_member", (Enrolment(external_id="probe-1", email="probe@example.com"),)
    if capability is Capability.UPDATE_MEMBER:
        return "update_member", (MemberUpdate(customer_id="cust-probe", segments=("probe",)),)
    if capability is Capability.STATEMENT:
        return "statement", (StatementQuery(customer_id="cust-probe"),)
    if capability is Capability.WALLET:
        return "wallet", (WalletQuery(customer_id="cust-probe"),)
    if capability is Capability.ISSUE_VOUCHER:
        return "issue_voucher", (VoucherIssue(customer_id="cust-probe", definition_id="probe", idempotency_key="probe-1"),)
    if capability is Capability.PARTIAL_REFUND:
        partial = Reversal(
            order=order, kind=ReversalKind.REFUND, lines=(RefundLine(line_id="l1", quantity=Decimal(1)),),
            reference="partial-1",
        )
        return "reverse", (partial,)
    return None


def assert_unsupported(target: ContractTarget, missing: list[Capability]) -> None:
    """The not-supported contract for the first missing capability (see the module docstring)."""
    gated = [c for c in missing if _probe_args(target, c) is not None]
    if gated:
        capability = gated[0]
        operation, args = _probe_args(target, capability)  # type: ignore[misc]
        expect_not_supported(target, operation, *args, label=capability.value)
        return
    capability = missing[0]
    if capability in (Capability.WALLET_OFFERS, Capability.EARN_PREVIEW):
        customer = target.customer()
        evaluation = target.call("evaluate", target.basket(customer_id=customer.id))
        assert isinstance(evaluation, Evaluation)
        assert not evaluation.degraded, f"evaluate degraded: {evaluation.degraded_reason}"
        if capability is Capability.WALLET_OFFERS:
            assert evaluation.wallet == (), (
                f"{target.engine} returns wallet offers but does not declare wallet_offers"
            )
        else:
            assert evaluation.earn == (), f"{target.engine} returns points to earn but does not declare earn_preview"
        target.report("not_supported", capability.value)
        return
    if capability is Capability.RESERVE_VOUCHER:
        from .support import issue_voucher, redemption

        customer = target.customer()
        code = issue_voucher(target, customer.id)
        result = target.call("redeem_voucher", redemption(target, code, customer.id))
        assert result.status is RedemptionStatus.REDEEMED, (
            f"{target.engine} reserves vouchers but does not declare reserve_voucher"
        )
        target.report("not_supported", capability.value)
        return
    raise AssertionError(f"the suite has no not-supported check for {capability.value}")  # pragma: no cover
