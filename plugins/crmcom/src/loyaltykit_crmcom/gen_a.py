"""The Gen A backend: CRM.COM Web API, ``POST {host}/crmapi/rest/v2/{module}/{action}``.

Every request is a JSON POST carrying the session token in its body; every answer is the
``{"status", "data"}`` envelope (reference §2.1, §2.2).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from loyaltykit.auth import TokenInBody
from loyaltykit.errors import UNAVAILABLE_ERRORS, LoyaltyError
from loyaltykit.flows import EngineRequest
from loyaltykit.http import EngineClientConfig, Service
from loyaltykit.models import CustomerIdentifier, Line, Product
from loyaltykit.scrub import register_secret

from . import transformers as tf
from .backend import Purchase, Sub
from .settings import CrmcomSettings

ENGINE = "crmcom"


def _basic(key: str, colon: bool) -> str:
    return base64.b64encode((key + (":" if colon else "")).encode()).decode()


def session_auth(settings: CrmcomSettings, table: Any) -> TokenInBody:
    """The session token of §2.2 with the core's token-in-body strategy: fetched with the Web API
    key (Basic user name, empty password) or a user login, sent as ``token`` in every body,
    renewed before its absolute expiry and once after a refusal (the error envelope at HTTP 200)."""
    s = settings
    for secret in (s.web_api_key, s.password):
        if secret is not None:
            value = secret.get_secret_value()
            register_secret(value, _basic(value, True), _basic(value, False))
    body: dict[str, Any] = {}
    if s.unit:
        body["unit"] = s.unit
    if s.auth_method == "web_api_key":
        if s.web_api_key is None:
            raise AssertionError("s.web_api_key is set here")
        header = "Basic " + _basic(s.web_api_key.get_secret_value(), s.basic_with_colon)
        login = EngineRequest("POST", "authentication/web_api_key/token", json=body,
                              headers={"Authorization": header}, authenticate=False, route="token")
    else:
        if s.password is None:
            raise AssertionError("s.password is set here")
        body.update(username=s.username, password=s.password.get_secret_value(), organisation=s.organisation)
        login = EngineRequest("POST", "authentication/token", json=body, authenticate=False, route="token")
    return TokenInBody(
        login=login,
        read_token=lambda response: tf.token_from(response, table, s.ok_code),
        lifetime=s.token_lifetime_seconds,
        refresh_margin=s.token_refresh_margin_seconds,
        refusal=lambda response: tf.token_refused(response, table, s.ok_code),
    )


class GenABackend:
    """Sub-flows over the Gen A Web API."""

    def __init__(self, settings: CrmcomSettings) -> None:
        self.s = settings
        self.table = tf.error_table(settings.error_patterns)
        self.auth = session_auth(settings, self.table)

    def client_config(self) -> EngineClientConfig:
        s = self.s
        base = s.base_url.rstrip("/") + "/" + s.api_prefix.strip("/")
        return EngineClientConfig(
            engine=ENGINE,
            services={"default": Service(base, self.auth, headers={"Content-Type": "application/json"})},
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
        )

    # -- transport: one call, unwrapped (a refused token is renewed once by the runner) ----------
    def call(self, action: str, body: dict[str, Any], route: str, *, write: bool = False,
             idempotency_key: str | None = None) -> Sub:
        request = EngineRequest("POST", action, json=body, write=write, route=route, idempotency_key=idempotency_key)
        response: httpx.Response = yield request
        return tf.answer(response, self.table, self.s.ok_code, operation=action)

    # -- customers ----------------------------------------------------------------------------
    def find_customer(self, identifier: CustomerIdentifier) -> Sub:
        try:
            data = yield from self.call(
                "access_tokens/show",
                {"access_token_identifier": {"authentication_code": identifier.value}},
                "identify",
            )
        except LoyaltyError as exc:
            if exc.code == "customer_not_found":
                return None
            raise
        customer = tf.customer_from(data, None, self.s.currency)
        if customer is None:
            return None
        balance = yield from self.balance(customer.id)
        return tf.customer_from(data, balance, self.s.currency)

    def balance(self, customer_id: str) -> Sub:
        data = yield from self.call("wallets/get_balance",
                                    {"accounts_receivable_identifier": tf.account(customer_id)}, "wallet")
        return tf.balance_from(data)

    # -- purchases ----------------------------------------------------------------------------
    def preview(self, customer_id: str, lines: tuple[Line, ...], reference: str) -> Sub:
        data = yield from self.call("customer_events/purchases/preview",
                                    tf.purchase_body(self.s, customer_id, lines, reference), "evaluate")
        return tf.preview_from(data)

    def find_purchase(self, reference: str) -> Sub:
        data = yield from self.call(
            "customer_events/purchases/list",
            tf.list_body(self.s.purchase_lookup_filter, reference, self.s.lookup_page_size), "lookup",
        )
        return _only_match([tf.purchase_from(item) for item in tf.list_items(data, "purchase")], reference)

    def create_purchase(self, customer_id: str, lines: tuple[Line, ...], reference: str,
                        paid: Mapping[str, Decimal] | None = None) -> Sub:
        data = yield from self.call("customer_events/purchases/create",
                                    tf.purchase_body(self.s, customer_id, lines, reference, paid=paid), "export",
                                    write=True)
        return tf.purchase_from(data)

    def create_purchase_with_spend(self, customer_id: str, lines: tuple[Line, ...], reference: str,
                                   amount: Decimal, spend_reference: str) -> Sub:
        # R9-R16: purchases/create_spend creates both or neither; R17+: purchases/create carries it (§2.6).
        action = "customer_events/purchases/create_spend" if self.s.spend_mode == "create_spend" \
            else "customer_events/purchases/create"
        data = yield from self.call(action, tf.purchase_spend_body(self.s, customer_id, lines, reference, amount,
                                                                   spend_reference), "spend", write=True)
        return tf.purchase_from(data)

    def cancel_purchase(self, purchase: Purchase, reference: str) -> Sub:
        return (yield from self._cancel(
            "customer_events/purchases/cancel", tf.cancel_body(self.s.purchase_cancel_field, purchase.id),
            lambda: self.find_purchase(reference)))

    def _cancel(self, action: str, body: dict[str, Any], find: Any) -> Sub:
        """Cancel an event: True when cancelled now. A refusal is checked against the engine's
        record (the refusal texts are UNCONFIRMED): an event already CANCELLED is False."""
        try:
            yield from self.call(action, body, "reverse", write=True)
        except LoyaltyError as exc:
            if isinstance(exc, UNAVAILABLE_ERRORS):
                raise
            event = yield from find()
            if event is not None and event.state == "CANCELLED":
                return False
            raise
        return True

    # -- spends -------------------------------------------------------------------------------
    def find_spend(self, reference: str) -> Sub:
        data = yield from self.call(
            "customer_events/spend_requests/list",
            tf.list_body(self.s.spend_lookup_filter, reference, self.s.lookup_page_size), "lookup",
        )
        return _only_match([tf.spend_from(item) for item in tf.list_items(data, "spend request")], reference)

    def create_spend(self, customer_id: str, purchase: Purchase, amount: Decimal, reference: str) -> Sub:
        data = yield from self.call("customer_events/spend_requests/create",
                                    tf.spend_body(self.s, customer_id, purchase, amount, reference), "spend",
                                    write=True)
        return tf.spend_from(data)

    def cancel_spend(self, spend_id: str, reference: str) -> Sub:
        return (yield from self._cancel(
            "customer_events/spend_requests/cancel", tf.cancel_body("customer_event_identifier", spend_id),
            lambda: self.find_spend(reference)))

    # -- products -----------------------------------------------------------------------------
    def sync_products(self, products: list[Product]) -> Sub:
        # Create-or-update by code: sending a batch again changes nothing, so the runner may retry it.
        key = tf.reference_for("products:", ",".join(p.sku for p in products))
        yield from self.call("products/synchronise", tf.sync_body(self.s, products), "products", write=True,
                             idempotency_key=key)
        return None

    def release_request(self) -> EngineRequest | None:
        if self.auth.session_token is None:
            return None
        return EngineRequest("POST", "authentication/token/release", json={}, route="token")


def _only_match(found: list[Any], reference: str) -> Any:
    """The listed event carrying ``reference``. An answer without references is trusted only when the
    filter left exactly one event (the filter's name is UNCONFIRMED: it may have been ignored)."""
    exact = [item for item in found if item.reference == reference]
    if exact:
        return exact[0]
    if len(found) == 1 and found[0].reference is None:
        return found[0]
    return None
