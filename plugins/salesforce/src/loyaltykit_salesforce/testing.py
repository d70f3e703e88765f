"""The contract-suite harness for the Salesforce adapter, and adapters broken on purpose.

``make_harness()`` returns a fresh :class:`SalesforceHarness` around a new :class:`SalesforceFake`.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from loyaltykit.money import Money
from loyaltykit.testing import EngineBalances, HarnessBase, OfferSpec, RuleSpec, SeededCustomer, VoucherSpec

from .adapter import SalesforceAdapter
from .fake import FakeRule, FakeVoucher, FakeVoucherDefinition, SalesforceFake

BASE_URL = "https://fake-org.my.salesforce.com"
PROGRAM = "NTO Insider"  # a space, so every test exercises URL-encoding of names
POINTS = "Points"
CASHBACK = "Cashback"
ORDER_REF_FIELD = "Order_Reference__c"


def harness_settings(currency: str = "EUR", **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "my_domain_url": BASE_URL,
        "client_id": "fake-consumer-key",
        "client_secret": "fake-consumer-secret",
        "program_name": PROGRAM,
        "api_version": "65.0",
        "points_currency": POINTS,
        "cashback_currency": CASHBACK,
        "cashback_iso_currency": currency,
        "debit_points_process": "Debit Points",
        "debit_cashback_process": "Debit Cashback",
        "order_ref_field": ORDER_REF_FIELD,
    }
    settings.update(overrides)
    return settings


# ---------------------------------------------------------------------------------------------
# Broken on purpose: the contract suite's self-test must fail each of these.
# ---------------------------------------------------------------------------------------------


class BurnsTwiceOnRetry(SalesforceAdapter):
    """Re-posts a write blindly after a lost response (no look-up first)."""

    _reconcile_lost_writes = False


class DropsIdempotencyKey(SalesforceAdapter):
    """A random ExternalTransactionNumber per use, so no look-up can find an earlier write."""

    def _external_number(self, key: str) -> str:
        return f"{self.settings.external_number_prefix}{uuid.uuid4().hex}"


class SwallowsErrorBody(SalesforceAdapter):
    """Treats HTTP 200 with ``status:false`` as success."""

    _status_flag = False


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


class SalesforceHarness(HarnessBase):
    engine = "salesforce"
    member_tiers = ("Bronze", "Gold")  # of the fake's program (its default tiers)
    adapter_class = SalesforceAdapter
    fake: SalesforceFake
    broken_adapter_classes = HarnessBase.broken_variants(BurnsTwiceOnRetry, DropsIdempotencyKey, SwallowsErrorBody)

    def __init__(self, currency: str = "EUR", **setting_overrides: Any) -> None:
        self.currency = currency
        self.fake = SalesforceFake(
            program=PROGRAM, points_currency=POINTS, cashback_currency=CASHBACK,
            processes={"Debit Points": POINTS, "Debit Cashback": CASHBACK},
            order_ref_field=ORDER_REF_FIELD, currency=currency,
        )
        self.settings = harness_settings(currency, **setting_overrides)
        self._members = 0

    # -- seeding ------------------------------------------------------------------------------
    def create_customer(
        self, *, identifiers: dict[str, str], tier: str | None = None, points: Decimal = Decimal(0),
        cashback: Money | None = None,
    ) -> SeededCustomer:
        if "phone" in identifiers or "card" in identifiers:
            raise NotImplementedError("the adapter identifies by membership number, e-mail or contact id")
        self._members += 1
        number = identifiers.get("membership") or f"M{self._members:06d}"
        external = identifiers.get("external_id")
        member = self.fake.add_member(
            membership_number=number, email=identifiers.get("email"), contact_id=external,
            tier=tier or "Bronze", points=Decimal(points), cashback=self.amount_in_currency(cashback),
        )
        return SeededCustomer(id=member.membership_number, identifiers=dict(identifiers))

    def issue_voucher(self, spec: VoucherSpec) -> str:
        if spec.owner_id is None:
            raise NotImplementedError("Salesforce vouchers belong to a member; open codes are not supported")
        if spec.usage_limit != 1:
            raise NotImplementedError("a Salesforce voucher is used once")
        if spec.min_basket is not None or spec.kind == "item":
            raise NotImplementedError("member vouchers carry no basket conditions or product targets here")
        self._voucher(spec.owner_id, spec.code, spec.kind, spec.percent, spec.amount, spec)
        return spec.code

    def issue_offer(self, customer_id: str, spec: OfferSpec) -> str:
        if spec.kind == "fixed_off_item":
            raise NotImplementedError("item offers are not modelled as member vouchers")
        kind = "percent" if spec.kind == "percent_off_check" else "fixed"
        code = f"OFFER-{uuid.uuid4().hex[:8].upper()}"
        voucher = self._voucher(customer_id, code, kind, spec.percent, spec.amount, None, spec.label)
        return voucher.id

    def define_issuable(self, spec: OfferSpec) -> str:
        """A voucher definition the issue-voucher process can issue; its name."""
        if spec.kind == "fixed_off_item":
            raise NotImplementedError("item offers are not modelled as member vouchers")
        percent = spec.kind == "percent_off_check"
        definition = FakeVoucherDefinition(
            name=f"DEF-{uuid.uuid4().hex[:8].upper()}", type="DiscountPercentage" if percent else "FixedValue",
            face_value=spec.amount.amount if spec.amount is not None and not percent else None,
            percent=spec.percent if percent else None)
        return self.fake.add_definition(definition).name

    def _voucher(self, owner: str, code: str, kind: str, percent: Decimal | None, amount: Money | None,
                 spec: VoucherSpec | None, label: str = "Voucher") -> FakeVoucher:
        if owner not in self.fake.members:
            raise KeyError(f"unknown customer {owner}")
        return self.fake.add_voucher(
            member=owner, code=code,
            type="DiscountPercentage" if kind == "percent" else "FixedValue",
            face_value=amount.amount if amount is not None and kind != "percent" else None,
            percent=percent if kind == "percent" else None,
            effective=spec.valid_from.date() if spec and spec.valid_from else None,
            expiration=spec.expires_at.date() if spec and spec.expires_at else None,
            definition=label, currency=amount.currency if amount is not None else self.currency,
        )

    def define_earn_rule(self, points_per_unit: Decimal) -> None:
        with self.fake.lock:
            self.fake.earn_rate = Decimal(points_per_unit)

    def define_rule(self, spec: RuleSpec) -> None:
        if spec.kind == "message":
            raise NotImplementedError("promotion-execution returns no shopper messages")
        self.fake.add_rule(FakeRule(
            id=f"0c8{uuid.uuid4().hex[:15]}", kind=spec.kind, percent=spec.percent,
            amount=spec.amount.amount if spec.amount else None,
            currency=priced.currency if (priced := spec.amount or spec.min_subtotal) else None,
            sku=spec.sku, min_subtotal=spec.min_subtotal.amount if spec.min_subtotal else None, label=spec.label,
        ))

    # -- reading back -------------------------------------------------------------------------
    def balances(self, customer_id: str) -> EngineBalances:
        with self.fake.lock:
            member = self.fake.members[customer_id]
            return self.engine_balances(member.balances.get(POINTS, Decimal(0)), member.balances.get(CASHBACK))

    def voucher_redemptions(self, code: str) -> int:
        with self.fake.lock:
            return sum(v.redemptions for v in self.fake.vouchers if v.code == code)

    def orders_received(self) -> list[str]:
        with self.fake.lock:
            return [j.order_ref for j in self.fake.journals if j.type == "Accrual" and j.order_ref is not None]


def make_harness() -> SalesforceHarness:
    return SalesforceHarness()
