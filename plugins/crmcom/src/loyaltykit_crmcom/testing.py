"""The contract-suite harness for the CRM.COM adapter, and adapters broken on purpose.

``make_harness()`` returns a fresh :class:`CrmcomHarness` around a new :class:`CrmcomFake`.
"""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

from loyaltykit.errors import EngineError
from loyaltykit.money import Money
from loyaltykit.testing import EngineBalances, HarnessBase, OfferSpec, RuleSpec, SeededCustomer, VoucherSpec

from . import transformers as tf
from .adapter import CrmcomAdapter
from .backend import Purchase, SpendRequest
from .fake import CrmcomFake, FakeSettings, InstantOffer

BASE_URL = "https://crm.fake.example"
WEB_API_KEY = "0123456789ABCDEF0123456789ABCDEF"
UNIT = "UNIT0000000000000000000000000001"


def harness_settings(currency: str = "EUR", **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "base_url": BASE_URL,
        "web_api_key": WEB_API_KEY,
        "currency": currency,
        "performed_by_unit_id": UNIT,
        "external_system": "loyaltykit",
    }
    settings.update(overrides)
    return settings


# ---------------------------------------------------------------------------------------------
# Broken on purpose: the contract suite's self-test must fail each of these.
# ---------------------------------------------------------------------------------------------


class ResendsBlindly(CrmcomAdapter):
    """Re-sends a write after a lost answer without looking it up first, and takes the engine's
    duplicate-reference refusal of that re-send for a failure (the write was applied)."""

    _reconcile_lost_writes = False

    def __init__(self, settings: Any = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        duplicates = {phrase: "engine_error" for phrase, kit in tf.DOCUMENTED_PHRASES.items()
                      if kit == "outcome_unknown"}
        self.backend.table = self.backend.table.extended(phrases=duplicates)


class RandomReference(CrmcomAdapter):
    """A fresh spend reference per call, so neither a repeat nor a look-up finds the earlier spend."""

    def _spend_reference(self, key: str) -> str:
        return f"LKS-{uuid.uuid4().hex[:28].upper()}"


class SwallowsErrorBody(CrmcomAdapter):
    """Takes a spend refused with the error envelope for an approved spend."""

    def __init__(self, settings: Any = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        create = self.backend.create_spend

        def lenient(customer_id: str, purchase: Any, amount: Decimal, reference: str) -> Any:
            try:
                return (yield from create(customer_id, purchase, amount, reference))
            except EngineError:
                return SpendRequest(id=reference, number=None, amount=amount, state="POSTED", reference=reference)

        self.backend.create_spend = lenient  # type: ignore[method-assign]
        create_with_spend = self.backend.create_purchase_with_spend

        def lenient_purchase(customer_id: str, lines: Any, reference: str, amount: Decimal, spend_reference: str
                             ) -> Any:
            try:
                return (yield from create_with_spend(customer_id, lines, reference, amount, spend_reference))
            except EngineError:
                return Purchase(id=reference, number=None, reference=reference, state="POSTED", awarded=Decimal(0),
                                spent=amount, external_reference=spend_reference)

        self.backend.create_purchase_with_spend = lenient_purchase  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


class CrmcomHarness(HarnessBase):
    engine = "crmcom"
    adapter_class = CrmcomAdapter
    fake: CrmcomFake
    broken_adapter_classes = HarnessBase.broken_variants(ResendsBlindly, RandomReference, SwallowsErrorBody)

    def __init__(self, currency: str = "EUR", fake_settings: FakeSettings | None = None,
                 spend_mode: str = "spend_request", **setting_overrides: Any) -> None:
        self.currency = currency
        if fake_settings is None:
            # The spend inside purchases/create exists from R17; the other modes run against R16.
            fake_settings = FakeSettings(release=17 if spend_mode == "inside_create" else 16)
        self.fake = CrmcomFake(web_api_keys=(WEB_API_KEY,), settings=fake_settings)
        self.settings = harness_settings(currency, spend_mode=spend_mode, **setting_overrides)

    def adapter_options(self) -> dict[str, Any]:
        # The adapter releases its session tokens on close through a transport of its own.
        return {"release_transport": self.fake.transport()}

    # -- seeding --------------------------------------------------------------------------------
    def create_customer(self, *, identifiers: dict[str, str], tier: str | None = None,
                        points: Decimal = Decimal(0), cashback: Money | None = None) -> SeededCustomer:
        if points:
            raise NotImplementedError("a CRM.COM wallet holds money, not points")
        card = identifiers.get("card") or "77" + "".join(random.choice("0123456789") for _ in range(14))  # noqa: S311 (a made-up test card)
        self.fake.add_account(card, self.amount_in_currency(cashback) or Decimal(0))
        for kind in ("email", "phone"):
            # Registered as access tokens too, for tenants that do (the adapter's setting decides).
            if kind in identifiers:
                account = self.fake.account_of(card)
                with self.fake.lock:
                    token = self.fake.access_tokens[card]
                    self.fake.access_tokens[identifiers[kind]] = type(token)(
                        id=uuid.uuid4().hex.upper(), number=f"AT-{kind}", authentication_code=identifiers[kind],
                        account_id=account.id)
        return SeededCustomer(id=card, identifiers={**identifiers, "card": card})

    def issue_voucher(self, spec: VoucherSpec) -> str:
        raise NotImplementedError("the Gen A Web API has no POS voucher-code redemption")

    def issue_offer(self, customer_id: str, spec: OfferSpec) -> str:
        raise NotImplementedError("reward offers are configured in CRM.COM, not listed to the POS")

    def define_earn_rule(self, points_per_unit: Decimal) -> None:
        raise NotImplementedError("CRM.COM awards wallet money (cashback), not points")

    def define_cashback_rule(self, percent: Decimal) -> None:
        with self.fake.lock:
            self.fake.cashback_percent = Decimal(percent)

    def define_rule(self, spec: RuleSpec) -> None:
        # An instant-spend offer: the preview reports it as one total, so only order-level rules.
        if spec.kind not in ("order_percent", "order_fixed"):
            raise NotImplementedError("the preview reports instant spend as an order total only")
        offer = InstantOffer(percent=spec.percent, amount=spec.amount.amount if spec.amount else None,
                             min_total=spec.min_subtotal.amount if spec.min_subtotal else None)
        with self.fake.lock:
            self.fake.instant_offers.append(offer)

    # -- reading back ---------------------------------------------------------------------------
    def balances(self, customer_id: str) -> EngineBalances:
        with self.fake.lock:
            account = self.fake.account_of(customer_id)
            return self.engine_balances(Decimal(0), account.balance)

    def voucher_redemptions(self, code: str) -> int:
        return 0

    def orders_received(self) -> list[str]:
        with self.fake.lock:
            # A purchase created to settle a spend and then cancelled (payment declined) holds no
            # effect any more: it is not an order the engine recorded.
            return [p.body["reference_number"] for p in self.fake.purchases
                    if p.body["life_cycle_state"] != "CANCELLED"]

    def products_received(self) -> list[str]:
        with self.fake.lock:
            return list(self.fake.products)


def make_harness() -> CrmcomHarness:
    return CrmcomHarness()


def make_create_spend_harness() -> CrmcomHarness:
    """The R9-R16 atomic ``purchases/create_spend`` spend mode."""
    return CrmcomHarness(spend_mode="create_spend")


def make_inside_create_harness() -> CrmcomHarness:
    """The R17+ spend inside ``purchases/create``."""
    return CrmcomHarness(spend_mode="inside_create")
