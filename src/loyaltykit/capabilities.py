"""What an adapter supports, declared as data. Closed by default: every flag is off until declared.

The facade refuses a call whose capability is not declared (``NotSupportedError``, no engine call);
the contract suite reads the same declaration to decide which scenarios must pass.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from .errors import NotSupportedError
from .members import MemberField, MemberUpdate
from .models import BalanceKind, IdentifierKind


class Capability(StrEnum):
    """One name per optional feature; the contract suite's scenarios require these by name."""

    IDENTIFY = "identify"
    EVALUATE = "evaluate"
    WALLET_OFFERS = "wallet_offers"
    EARN_PREVIEW = "earn_preview"
    PRICE_PRODUCTS = "price_products"
    REDEEM_VOUCHER = "redeem_voucher"
    RESERVE_VOUCHER = "reserve_voucher"
    SPEND_CASHBACK = "spend_cashback"
    SPEND_POINTS = "spend_points"
    EXPORT_ORDERS = "export_orders"
    CANCEL = "cancel"
    REFUND = "refund"
    PARTIAL_REFUND = "partial_refund"
    SYNC_PRODUCTS = "sync_products"
    ENROL_MEMBER = "enrol_member"
    UPDATE_MEMBER = "update_member"
    STATEMENT = "statement"
    WALLET = "wallet"
    ISSUE_VOUCHER = "issue_voucher"
    POINTS_CATALOG = "points_catalog"


class Capabilities(BaseModel):
    """An adapter's declaration. Unknown keys are refused so a typo cannot claim a feature."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    identify_by: frozenset[IdentifierKind] = frozenset()
    evaluate: bool = False
    wallet_offers: bool = False
    earn_preview: bool = False
    price_products: bool = False
    redeem_voucher: bool = False
    reserve_voucher: bool = False
    spend: frozenset[BalanceKind] = frozenset()
    export_orders: bool = False
    cancel: bool = False
    refund: bool = False
    partial_refund: bool = False
    sync_products: bool = False
    enrol_member: bool = False
    update_member: bool = False
    #: What ``update_member`` can change; a field not declared is refused before any engine call.
    member_fields: frozenset[MemberField] = frozenset()
    statement: bool = False
    wallet: bool = False
    issue_voucher: bool = False
    #: the quote names points-priced lines (sent at 0.00) and a points spend names the lines it pays
    points_catalog: bool = False
    currencies: frozenset[str] | None = None  # None: whatever the engine accepts

    def supports(self, capability: Capability | str) -> bool:
        if type(capability) is not Capability:  # the facade passes members: no enum look-up per call
            capability = Capability(capability)
        if capability is Capability.IDENTIFY:
            return bool(self.identify_by)
        if capability is Capability.SPEND_CASHBACK:
            return BalanceKind.CASHBACK in self.spend
        if capability is Capability.SPEND_POINTS:
            return BalanceKind.POINTS in self.spend
        return bool(getattr(self, capability.value))

    def check_member_update(self, update: MemberUpdate, engine: str) -> None:
        """Refuse an update naming a field not in ``member_fields`` (``NotSupportedError`` naming it)."""
        for name in update.changed_fields():
            if name not in self.member_fields:
                raise NotSupportedError(f"{engine} cannot change a member's {name.value}", engine=engine,
                                        operation="update_member", field=f"update.{name.value}")

    def supported(self) -> list[str]:
        return [c.value for c in Capability if self.supports(c)]

    def validate_consistency(self) -> list[str]:
        """Problems in the declaration itself (empty list when it is coherent)."""
        problems = []
        if self.partial_refund and not self.refund:
            problems.append("partial_refund requires refund")
        if self.reserve_voucher and not self.redeem_voucher:
            problems.append("reserve_voucher requires redeem_voucher")
        if (self.wallet_offers or self.earn_preview) and not self.evaluate:
            problems.append("wallet_offers / earn_preview require evaluate")
        if self.points_catalog and not (self.evaluate and BalanceKind.POINTS in self.spend):
            problems.append("points_catalog requires evaluate and spending points")
        if self.update_member and not self.member_fields:
            problems.append("update_member requires member_fields (the fields the engine can change)")
        if self.currencies is not None:
            from .money import is_currency

            bad = sorted(c for c in self.currencies if not is_currency(c))
            if bad:
                problems.append(f"unknown currencies {bad}")
        return problems
