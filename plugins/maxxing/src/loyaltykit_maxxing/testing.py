"""The MAXXING harness for the engine-neutral contract suite, and adapters broken on purpose.

``make_harness()`` (entry point ``loyaltykit.harness: maxxing``) returns a fresh harness over a
fresh :class:`~loyaltykit_maxxing.fake.MaxxingFake`. Customers are identified by card and e-mail;
MAXXING has no phone, membership or external-id look-up in the public material, so seeding those
raises ``NotImplementedError``, as do wallet offers (no public offer-wallet call) and token expiry
(Basic auth on every call: there is no token).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from loyaltykit import Money
from loyaltykit.errors import LoyaltyError, MalformedResponseError, OutcomeUnknownError
from loyaltykit.testing import EngineBalances, HarnessBase, OfferSpec, RuleSpec, SeededCustomer, VoucherSpec

from . import wire
from .adapter import MaxxingAdapter, Sub
from .fake import FakeRule, FakeVoucher, MaxxingFake

CURRENCY = "EUR"


def harness_settings(**overrides: Any) -> dict[str, Any]:
    """Adapter settings matching :class:`MaxxingFake`'s defaults."""
    settings: dict[str, Any] = {
        "compute_url": "https://kit.cloud.maxxing.com",
        "backoffice_url": "https://kit-bo.cloud.maxxing.com",
        "username": "kit-api-user",
        "password": "kit-api-password",
        "store_chain": "0",
        "store_number": "42",
        "currency": CURRENCY,
    }
    settings.update(overrides)
    return settings


# ---------------------------------------------------------------------------------------------
# Adapters broken on purpose: the contract suite's self-test must fail against each
# ---------------------------------------------------------------------------------------------


class BurnsTwiceOnRetry(MaxxingAdapter):
    """Never looks up: a lost answer is followed by a blind re-post."""

    def _write_once(self, operation: str, body: dict[str, Any], route: str, key: str,
                    check: Callable[[wire.TransactionRecord], None] | None = None) -> Sub:
        request = self._call(operation, body, route, write=True)
        try:
            response = yield request
        except OutcomeUnknownError:
            response = yield request
        return self._transaction(response), False


class DropsIdempotencyKey(MaxxingAdapter):
    """A fresh transaction key per call, so the look-up never finds the earlier effect."""

    def _write_once(self, operation: str, body: dict[str, Any], route: str, key: str,
                    check: Callable[[wire.TransactionRecord], None] | None = None) -> Sub:
        fresh = f"{key}:{uuid.uuid4().hex[:8]}"
        return (yield from super()._write_once(operation, {**body, "transaction_key": fresh}, route, fresh, check))


class SwallowsErrorBody(MaxxingAdapter):
    """Trusts HTTP 200: an error envelope on a write is read as success."""

    def _transaction(self, response: httpx.Response) -> wire.TransactionRecord:
        try:
            return super()._transaction(response)
        except MalformedResponseError:
            raise
        except LoyaltyError:
            return wire.TransactionRecord(transaction_key="unknown", type="UNKNOWN", status=wire.CONFIRMED)


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


class MaxxingHarness(HarnessBase):
    engine = "maxxing"
    currency = CURRENCY
    adapter_class = MaxxingAdapter
    fake: MaxxingFake
    broken_adapter_classes = HarnessBase.broken_variants(BurnsTwiceOnRetry, DropsIdempotencyKey, SwallowsErrorBody)

    def __init__(self, **settings: Any) -> None:
        self.settings = harness_settings(**settings)
        self.fake = MaxxingFake(username=self.settings["username"], password=self.settings["password"],
                                store_chain=self.settings["store_chain"], currency=self.settings["currency"])

    # -- seeding -------------------------------------------------------------------------------
    def create_customer(self, *, identifiers: dict[str, str], tier: str | None = None,
                        points: Decimal = Decimal(0), cashback: Money | None = None) -> SeededCustomer:
        unknown = set(identifiers) - {"card", "email"}
        if unknown:
            raise NotImplementedError(f"MAXXING identifies by card and e-mail only, not {sorted(unknown)}")
        customer = self.fake.add_customer(card_key=identifiers.get("card"), email=identifiers.get("email"),
                                          cashback=self.amount_in_currency(cashback) or Decimal(0), points=Decimal(points))
        held = {"card": customer.card_key}
        if customer.email:
            held["email"] = customer.email
        return SeededCustomer(id=customer.cust_id, identifiers=held)

    def issue_voucher(self, spec: VoucherSpec) -> str:
        value = spec.percent if spec.kind == "percent" else self.amount_in_currency(spec.amount)
        if value is None:
            raise ValueError("a voucher needs a percent or an amount")
        self.fake.add_voucher(FakeVoucher(
            code=spec.code, kind=spec.kind, value=value, sku=spec.sku, owner=spec.owner_id,
            valid_from=spec.valid_from, expires_at=spec.expires_at, usage_limit=spec.usage_limit,
            min_basket=self.amount_in_currency(spec.min_basket),
        ))
        return spec.code

    def issue_offer(self, customer_id: str, spec: OfferSpec) -> str:
        raise NotImplementedError("no public MAXXING call lists a customer's offer wallet")

    def define_earn_rule(self, points_per_unit: Decimal) -> None:
        self.fake.points_per_unit = Decimal(points_per_unit)

    def define_cashback_rule(self, percent: Decimal) -> None:
        self.fake.cashback_percent = Decimal(percent)

    def define_rule(self, spec: RuleSpec) -> None:
        value = spec.percent if spec.kind.endswith("percent") else self.amount_in_currency(spec.amount)
        self.fake.add_rule(FakeRule(kind=spec.kind, value=value or Decimal(0), sku=spec.sku,
                                    min_subtotal=self.amount_in_currency(spec.min_subtotal), message=spec.message,
                                    label=spec.label))

    # -- reading back --------------------------------------------------------------------------
    def balances(self, customer_id: str) -> EngineBalances:
        with self.fake.lock:
            customer = self.fake.customers[customer_id]
            return self.engine_balances(customer.points, customer.cashback)

    def voucher_redemptions(self, code: str) -> int:
        with self.fake.lock:
            voucher = self.fake.vouchers.get(code)
            return len(voucher.burns) if voucher else 0

    def orders_received(self) -> list[str]:
        return self.fake.sales()



def make_harness() -> MaxxingHarness:
    return MaxxingHarness()


__all__ = ["MaxxingHarness", "harness_settings", "make_harness"]
