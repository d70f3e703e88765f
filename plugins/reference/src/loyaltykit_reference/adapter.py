"""The Reference adapter: flows (which calls, in which order, with which keys). Mapping is in
:mod:`.transformers`; the wire format is in the README.

Idempotency, the two cases a new adapter meets:

* redemptions, exports and reversals carry the kit's key in the engine's ``key`` field; the
  engine replays its stored answer for a repeated key, so the runner may retry them
  (``idempotency_key=`` on the request);
* spends have no engine-side key: the adapter looks the spend up by its reference (the kit's key)
  before sending and after a lost or unreadable answer, with the core's
  :func:`~loyaltykit.reconcile.reconcile`; the runner holds one call per key in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from loyaltykit import (
    BalanceKind,
    Capabilities,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    EngineAdapter,
    EngineClientConfig,
    EngineRequest,
    Evaluation,
    ExportReport,
    Flow,
    IdentifierKind,
    Order,
    RedemptionResult,
    RetryPolicy,
    Reversal,
    ReversalResult,
    Service,
    SpendResult,
    VoucherRedemption,
)
from loyaltykit.auth import ApiKeyHeader, Auth, OAuth2ClientCredentials
from loyaltykit.errors import ConfigError, OutcomeUnknownError
from loyaltykit.flows import CallContext
from loyaltykit.reconcile import reconcile

from . import __version__, transformers as tf
from .settings import ReferenceSettings


class ReferenceAdapter(EngineAdapter):
    name = "reference"
    version = __version__
    capabilities = Capabilities(
        identify_by=frozenset({IdentifierKind.EMAIL, IdentifierKind.EXTERNAL_ID}),
        evaluate=True,
        redeem_voucher=True,
        spend=frozenset({BalanceKind.CASHBACK}),
        export_orders=True,
        cancel=True,
        refund=True,
        points_catalog=False,  # no points-priced catalog in the engine's documentation
    )
    settings_model = ReferenceSettings
    settings: ReferenceSettings

    # Seams the deliberately broken test adapters flip (testing.py); a real adapter has none.
    send_keys: ClassVar[bool] = True
    retry_unkeyed: ClassVar[bool] = False
    trust_ok: ClassVar[bool] = False

    def __init__(self, settings: ReferenceSettings | dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.errors = tf.error_table(self.settings.error_codes)
        self.capabilities = type(self).capabilities.model_copy(update={"currencies": frozenset({self.settings.currency})})

    def client_config(self) -> EngineClientConfig:
        s = self.settings
        auth: Auth
        if s.api_key is not None and s.auth == "api_key":
            auth = ApiKeyHeader(s.api_key, header="X-Api-Key")
        elif s.client_id is not None and s.client_secret is not None:
            auth = OAuth2ClientCredentials(f"{s.base_url}/oauth/token", s.client_id, s.client_secret)
        else:  # the settings model refuses this combination; keep type checkers convinced
            raise ConfigError("reference: credentials missing for the configured auth", engine=self.name)
        return EngineClientConfig(
            engine=self.name,
            services={"default": Service(s.base_url, auth)},
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            retry=RetryPolicy(max_attempts=s.max_attempts, backoff_base=s.backoff_base,
                              backoff_max=s.backoff_base * 20),
        )

    # -- helpers ---------------------------------------------------------------------------------
    def _checked(self, response: httpx.Response, ctx: CallContext) -> Mapping[str, Any]:
        return tf.checked(response, self.errors, operation=ctx.operation, trust_ok=self.trust_ok)

    def _keyed_write(self, path: str, body: dict[str, Any], key: str, route: str) -> EngineRequest:
        """A write the engine de-duplicates by ``key``: the runner may retry it."""
        if self.send_keys:
            return EngineRequest("POST", path, json=body, write=True, idempotency_key=key, route=route)
        if self.retry_unkeyed:  # broken on purpose: claims a key it never sent
            return EngineRequest("POST", path, json=body, write=True, idempotency_key=key, route=route)
        return EngineRequest("POST", path, json=body, write=True, route=route)

    def _key(self, key: str) -> str | None:
        return key if self.send_keys else None

    # -- operations --------------------------------------------------------------------------------
    def identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Flow[Customer | None]:
        response = yield EngineRequest(
            "GET", "/members", params={identifier.kind.value: identifier.value}, route="identify"
        )
        return tf.customer_from_member(self._checked(response, ctx), self.settings.currency)

    def evaluate_basket(self, basket: Any, ctx: CallContext) -> Flow[Evaluation]:
        response = yield EngineRequest("POST", "/evaluate", json=tf.evaluate_request(basket), route="evaluate")
        return tf.evaluation(self._checked(response, ctx), basket, self.errors)

    def redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
        request = self._keyed_write(
            "/redemptions", tf.redemption_request(redemption, self._key(redemption.key)), redemption.key, "redeem"
        )
        try:
            response = yield request
        except OutcomeUnknownError:
            if not self.retry_unkeyed:
                raise
            response = yield request  # broken on purpose: re-posts blindly after a lost answer
        return tf.redemption_result(self._checked(response, ctx), redemption, self.settings.currency)

    def spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
        currency = self.settings.currency

        def look_up() -> Flow[Mapping[str, Any] | None]:
            response = yield EngineRequest(
                "GET", "/spends", params={"reference": tf.spend_reference(spend)}, route="lookup"
            )
            return tf.spend_found(self._checked(response, ctx))

        def send() -> Flow[Mapping[str, Any]]:
            response = yield EngineRequest("POST", "/spends", json=tf.spend_request(spend), write=True, route="spend")
            return self._checked(response, ctx)

        careful = self.send_keys  # the broken variants skip the look-ups
        sent, found = yield from reconcile(send, look_up, look_first=careful, look_after_loss=careful)
        record = sent if sent is not None else found
        if record is None:  # reconcile returns one of the two
            raise OutcomeUnknownError("the spend's outcome could not be established", engine=self.name,
                                      idempotency_key=spend.key)
        return tf.spend_result(record, spend, currency, replayed=found is not None)

    def export_orders(self, orders: list[Order], ctx: CallContext) -> Flow[ExportReport]:
        key = "|".join(o.key for o in orders)[:128]
        response = yield self._keyed_write("/orders", tf.export_request(orders, with_keys=self.send_keys), key, "export")
        return tf.export_report(self._checked(response, ctx))

    def reverse(self, reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
        body = tf.reversal_request(reversal, self._key(reversal.key))
        response = yield self._keyed_write("/reversals", body, reversal.key, "reverse")
        return tf.reversal_result(self._checked(response, ctx), reversal, self.settings.currency)
