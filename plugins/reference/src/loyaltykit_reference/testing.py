"""The contract-suite harness of the Reference adapter, and three adapters broken on purpose.

``make_harness`` is published in the ``loyaltykit.harness`` entry-point group, so the contract
suite runs against this adapter on both facades. ``broken_adapters()`` returns the mutations the
suite's self-test must catch.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from loyaltykit import Capabilities, Money
from loyaltykit.testing import EngineBalances, HarnessBase, RuleSpec, SeededCustomer, VoucherSpec

from .adapter import ReferenceAdapter
from .fake import CLIENT_ID, CLIENT_SECRET, ReferenceEngine

BASE_URL = "https://reference.example"


class BurnsTwiceOnRetry(ReferenceAdapter):
    """Sends no key but tells the runner it did, re-posts after a lost answer, skips look-ups."""

    send_keys = False
    retry_unkeyed = True


class DropsIdempotencyKey(ReferenceAdapter):
    """Sends writes without the engine's key (and spends without looking up first)."""

    send_keys = False


class SwallowsErrorBody(ReferenceAdapter):
    """Reads an HTTP-200 refusal as a success."""

    trust_ok = True


class ReferenceHarness(HarnessBase):
    engine = "reference"
    currency = "EUR"
    adapter_class: type[ReferenceAdapter] = ReferenceAdapter
    fake: ReferenceEngine

    broken_adapter_classes = HarnessBase.broken_variants(BurnsTwiceOnRetry, DropsIdempotencyKey, SwallowsErrorBody)

    def __init__(self) -> None:
        self.fake = ReferenceEngine()
        self.settings = {"base_url": BASE_URL, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                         "currency": self.currency}
        self.ids = itertools.count(1)

    # -- seeding: what the declared capabilities oblige ------------------------------------------
    def create_customer(self, *, identifiers: dict[str, str], tier: str | None = None,
                        points: Decimal = Decimal(0), cashback: Money | None = None) -> SeededCustomer:
        member_id = f"m{next(self.ids)}"
        self.fake.add_member(member_id, identifiers, tier=tier, points=points,
                             cashback=self.amount_in_currency(cashback) or Decimal(0))
        return SeededCustomer(member_id, dict(identifiers))

    def issue_voucher(self, spec: VoucherSpec) -> str:
        if spec.kind != "fixed" or spec.amount is None:
            raise NotImplementedError("Reference vouchers are fixed amounts")
        self.fake.add_voucher(spec.code, spec.amount.amount, owner_id=spec.owner_id, expires_at=spec.expires_at,
                              usage_limit=spec.usage_limit, min_basket=self.amount_in_currency(spec.min_basket))
        return spec.code

    def define_earn_rule(self, points_per_unit: Decimal) -> None:
        self.fake.earn_per_unit = points_per_unit

    def define_rule(self, spec: RuleSpec) -> None:
        if spec.kind not in ("order_percent", "order_fixed", "line_percent"):
            raise NotImplementedError(f"the Reference engine has no {spec.kind} rules")
        with self.fake.lock:
            self.fake.rules.append(spec)

    # -- reading the engine side back ------------------------------------------------------------
    def balances(self, customer_id: str) -> EngineBalances:
        with self.fake.lock:
            member = self.fake.members[customer_id]
            return self.engine_balances(member["points"], member["cashback"])

    def voucher_redemptions(self, code: str) -> int:
        with self.fake.lock:
            return int(self.fake.vouchers[code]["used"])

    def orders_received(self) -> list[str]:
        with self.fake.lock:
            return list(self.fake.orders)


def make_harness() -> ReferenceHarness:
    return ReferenceHarness()


class BareAdapter(ReferenceAdapter):
    """The Reference adapter with nothing declared: every scenario must find NotSupportedError."""

    name = "bare"
    capabilities = Capabilities()


class BareHarness(ReferenceHarness):
    engine = "bare"
    adapter_class = BareAdapter


def make_bare_harness() -> BareHarness:
    return BareHarness()
