"""The SessionM harness for the engine-neutral contract suite, and adapters broken on purpose.

``make_harness()`` (entry point ``loyaltykit.harness: sessionm``) returns a fresh harness over a
fresh :class:`~loyaltykit_sessionm.fake.SessionMFake`. The harness's adapter enables two
documented settings so the suite can exercise a full cancel: ``points_return="spend_is_return"``
and ``void_on_cancel=True`` (both default off in production, see the README), and the opt-in
``evaluate_applies="eligible"``: SessionM has no automatic promotion, so the suite's promotion
rules are offers issued to every member, quoted without a code only in that mode. The default
(quote only the offers the basket names) is covered by the adapter's own flow tests.

What SessionM has no concept of raises ``NotImplementedError``: open (owner-less) codes, vouchers
with a usage limit other than one, cashback balances, and free-form promotion rules.
Promotion rules become offers issued to every member (bulk issuance to an audience); message rules
are not modelled. ``expire_token()`` raises ``NotImplementedError``: every SessionM family uses
Basic credentials, there is no token to expire.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from loyaltykit import Money
from loyaltykit.errors import OutcomeUnknownError
from loyaltykit.flows import EngineRequest
from loyaltykit.testing import EngineBalances, HarnessBase, OfferSpec, RuleSpec, SeededCustomer, VoucherSpec

from . import transformers as tf
from .adapter import SessionMAdapter, Sub
from .fake import SessionMFake

CURRENCY = "USD"


def harness_settings(**overrides: Any) -> dict[str, Any]:
    """Adapter settings matching :class:`SessionMFake`'s defaults (three hosts, one transport)."""
    settings: dict[str, Any] = {
        "core_base_url": "https://api-kit.stg-sessionm.com",
        "core_api_key": "core-key",
        "core_api_secret": "core-secret",
        "connect_base_url": "https://domains-kit.stg-sessionm.com",
        "connect_key": "connect-key",
        "connect_secret": "connect-secret",
        "pos_base_url": "https://cloudpos-kit.stg-sessionm.com",
        "pos_key": "pos-key",
        "pos_secret": "pos-secret",
        "retailer_id": "00000000-0000-4000-8000-000000000001",
        "store_id": "web-store",
        "currency": CURRENCY,
        "points_return": "spend_is_return",
        "void_on_cancel": True,
        "evaluate_applies": "eligible",
        "tier_system_id": "kit-tiers",  # move_user needs one (§ 5.4); the fake keeps the level given
    }
    settings.update(overrides)
    return settings


# ---------------------------------------------------------------------------------------------
# Adapters broken on purpose: the contract suite's self-test must fail against each
# ---------------------------------------------------------------------------------------------


class BurnsTwiceOnRetry(SessionMAdapter):
    """After a lost response, re-sends the write with a fresh request_id / idempotency_id."""

    def _runner_key(self, key: str) -> str | None:
        return None

    def _send_write(self, build: Callable[[str], EngineRequest], key: str, purpose: str) -> Sub:
        try:
            return (yield build(self._request_id(key, purpose)))
        except OutcomeUnknownError:
            return (yield build(str(uuid.uuid4())))


class DropsIdempotencyKey(SessionMAdapter):
    """A random request_id / idempotency_id per attempt, and no key for the runner."""

    def _runner_key(self, key: str) -> str | None:
        return None

    def _request_id(self, key: str, purpose: str) -> str:
        return str(uuid.uuid4())


class SwallowsErrorBody(SessionMAdapter):
    """Trusts HTTP 200: an error envelope is read as success."""

    @staticmethod
    def _loose(response: httpx.Response) -> dict[str, Any]:
        try:
            body = tf.loads(response.content)
        except Exception:
            return {}
        return body if isinstance(body, dict) else {}

    def _core_result(self, response: httpx.Response) -> dict[str, Any]:
        body = self._loose(response)
        return body if body.get("user") else {**body, "user": {"id": "unknown"}}

    def _connect_payload(self, response: httpx.Response) -> dict[str, Any]:
        payload = self._loose(response).get("payload")
        return payload if isinstance(payload, dict) else {
            "details": [{"error_status": 0}], "user_offers": [], "summary": {"total_points": 0},
        }

    def _pos_payload(self, response: httpx.Response) -> dict[str, Any]:
        payload = self._loose(response).get("payload")
        return payload if isinstance(payload, dict) else {"amount": 0, "user": {"id": "unknown"}}


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


class SessionMHarness(HarnessBase):
    engine = "sessionm"
    currency = CURRENCY
    adapter_class = SessionMAdapter
    fake: SessionMFake
    broken_adapter_classes = HarnessBase.broken_variants(BurnsTwiceOnRetry, DropsIdempotencyKey, SwallowsErrorBody)
    member_tiers = ("Bronze", "Silver")  # tier level ids of the harness's tier system

    def __init__(self, **settings: Any) -> None:
        self.fake = SessionMFake()
        self.settings = harness_settings(**settings)

    # -- seeding -------------------------------------------------------------------------------
    def create_customer(self, *, identifiers: dict[str, str], tier: str | None = None,
                        points: Decimal = Decimal(0), cashback: Money | None = None) -> SeededCustomer:
        if cashback is not None:
            raise NotImplementedError("SessionM has points accounts, no cashback balance")
        unknown = set(identifiers) - {"email", "phone", "card", "external_id", "membership"}
        if unknown:
            raise NotImplementedError(f"SessionM has no identifier kind {sorted(unknown)}")
        user = self.fake.add_user(
            external_id=identifiers.get("external_id") or identifiers.get("membership"),
            email=identifiers.get("email"),
            phone=identifiers.get("phone"),
            card=identifiers.get("card"),
            tier=tier,
            points=Decimal(points),
        )
        return SeededCustomer(id=user.id, identifiers=dict(identifiers))

    def _offer_type(self, kind: str) -> str:
        return {
            "percent": SessionMFake.PERCENT, "percent_off_check": SessionMFake.PERCENT,
            "fixed": SessionMFake.FIXED, "fixed_off_check": SessionMFake.FIXED,
            "item": SessionMFake.ITEM, "fixed_off_item": SessionMFake.ITEM,
        }[kind]

    def issue_voucher(self, spec: VoucherSpec) -> str:
        if spec.owner_id is None:
            raise NotImplementedError("SessionM offers are issued to a member; there are no open codes")
        if spec.usage_limit != 1:
            raise NotImplementedError("a SessionM user offer is used once; issue one per use")
        amount = spec.percent if spec.kind == "percent" else self.amount_in_currency(spec.amount)
        offer = self.fake.add_offer(offer_type=self._offer_type(spec.kind), name=f"Voucher {spec.kind}",
                                    amount=amount, sku=spec.sku, min_subtotal=self.amount_in_currency(spec.min_basket))
        self.fake.issue(spec.owner_id, offer.offer_id, user_offer_id=spec.code,
                        valid_from=spec.valid_from, expires_at=spec.expires_at)
        return spec.code

    def issue_offer(self, customer_id: str, spec: OfferSpec) -> str:
        amount = spec.percent if spec.kind == "percent_off_check" else self.amount_in_currency(spec.amount)
        offer = self.fake.add_offer(offer_type=self._offer_type(spec.kind), name=spec.label,
                                    amount=amount, sku=spec.sku)
        return self.fake.issue(customer_id, offer.offer_id).user_offer_id

    def define_issuable(self, spec: OfferSpec) -> str:
        """An offer the acquisition/issue call can give a member; its offer_id."""
        amount = spec.percent if spec.kind == "percent_off_check" else self.amount_in_currency(spec.amount)
        return self.fake.add_offer(offer_type=self._offer_type(spec.kind), name=spec.label, amount=amount,
                                   sku=spec.sku).offer_id

    def define_earn_rule(self, points_per_unit: Decimal) -> None:
        # SessionM earns in its rules engine from sent transactions; the fake applies it at once.
        self.fake.earn_rate = Decimal(points_per_unit)

    def define_rule(self, spec: RuleSpec) -> None:
        """A rule is an offer issued to every member; the POS look-up then quotes it when eligible."""
        offer_type = {
            "order_percent": SessionMFake.PERCENT,
            "order_fixed": SessionMFake.FIXED,
            "line_percent": SessionMFake.PERCENT_ITEM,
        }.get(spec.kind)
        if offer_type is None:
            raise NotImplementedError(f"SessionM has no {spec.kind} promotion in its documented APIs")
        amount = spec.percent if spec.kind.endswith("percent") else self.amount_in_currency(spec.amount)
        offer = self.fake.add_offer(offer_type=offer_type, name=spec.label, amount=amount, sku=spec.sku,
                                    min_subtotal=self.amount_in_currency(spec.min_subtotal))
        self.fake.issue_to_audience(offer.offer_id)

    # -- reading back --------------------------------------------------------------------------
    def balances(self, customer_id: str) -> EngineBalances:
        return self.engine_balances(self.fake.points(customer_id), None)

    def voucher_redemptions(self, code: str) -> int:
        with self.fake.lock:
            offer = self.fake.user_offers.get(code)
            return offer.consumed if offer else 0

    def orders_received(self) -> list[str]:
        with self.fake.lock:
            return [t.transaction_id for t in self.fake.transactions]



def make_harness() -> SessionMHarness:
    return SessionMHarness()
