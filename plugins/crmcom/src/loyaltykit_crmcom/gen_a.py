"""The Gen A backend: CRM.COM Web API, ``POST {host}/crmapi/rest/v2/{module}/{action}``.

Every request is a JSON POST carrying the session token in its body; every answer is the
``{"status", "data"}`` envelope (reference §2.1, §2.2).
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from loyaltykit.auth import Auth
from loyaltykit.errors import AuthFailedError, LoyaltyError, MalformedResponseError
from loyaltykit.flows import EngineRequest
from loyaltykit.http import EngineClientConfig, Service
from loyaltykit.models import CustomerIdentifier, Line, Product
from loyaltykit.scrub import register_secret

from . import transformers as tf
from .backend import Purchase, Sub
from .kit import AlreadyCancelledError, ErrorTable, json_body
from .settings import CrmcomSettings

ENGINE = "crmcom"


@dataclass
class WebApiToken(Auth):
    """The session token of §2.2: fetched with the Web API key (Basic user name, empty password)
    or a user login, sent as ``token`` in every body, refreshed before its absolute expiry and
    once after an authentication failure."""

    settings: CrmcomSettings
    clock: Any = time.monotonic
    refreshable = True
    _token: str | None = field(default=None, init=False, repr=False)
    _issued: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    token_fetches: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        s = self.settings
        for secret in (s.web_api_key, s.password):
            if secret is not None:
                register_secret(secret.get_secret_value(), self._basic(secret.get_secret_value(), True),
                                self._basic(secret.get_secret_value(), False))

    @staticmethod
    def _basic(key: str, colon: bool) -> str:
        return base64.b64encode((key + (":" if colon else "")).encode()).decode()

    @property
    def token(self) -> str | None:
        return self._token

    def needs_token(self) -> bool:
        with self._lock:
            if self._token is None:
                return True
            age = self.clock() - self._issued
            return age >= self.settings.token_lifetime_seconds - self.settings.token_refresh_margin_seconds

    def token_request(self) -> EngineRequest:
        s = self.settings
        body: dict[str, Any] = {}
        if s.unit:
            body["unit"] = s.unit
        if s.auth_method == "web_api_key":
            assert s.web_api_key is not None
            header = "Basic " + self._basic(s.web_api_key.get_secret_value(), s.basic_with_colon)
            return EngineRequest("POST", "authentication/web_api_key/token", json=body,
                                 headers={"Authorization": header}, authenticate=False, route="token")
        assert s.password is not None
        body.update(username=s.username, password=s.password.get_secret_value(), organisation=s.organisation)
        return EngineRequest("POST", "authentication/token", json=body, authenticate=False, route="token")

    def accept_token(self, response: httpx.Response) -> None:
        table = ErrorTable(self.settings.error_patterns, ENGINE)
        try:
            data = tf.unwrap(json_body(response, ENGINE), table, self.settings.ok_code, operation="token")
        except LoyaltyError as exc:
            raise AuthFailedError(f"the token call failed: {exc.message}", engine=ENGINE,
                                  engine_code=exc.engine_code) from None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthFailedError("the token call returned no data.token", engine=ENGINE)
        register_secret(token)
        with self._lock:
            self._token = token
            self._issued = self.clock()
            self.token_fetches += 1

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def body_fields(self) -> dict[str, Any]:
        token = self._token
        return {"token": token} if token else {}


class GenABackend:
    """Sub-flows over the Gen A Web API."""

    def __init__(self, settings: CrmcomSettings) -> None:
        self.s = settings
        self.auth = WebApiToken(settings)
        self.table = ErrorTable(settings.error_patterns, ENGINE)

    def client_config(self) -> EngineClientConfig:
        s = self.s
        base = s.base_url.rstrip("/") + "/" + s.api_prefix.strip("/")
        return EngineClientConfig(
            engine=ENGINE,
            services={"default": Service(base, self.auth, headers={"Content-Type": "application/json"})},
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
        )

    # -- transport: one call, unwrapped, with one re-login after an authentication failure ------
    def call(self, action: str, body: dict[str, Any], route: str, *, write: bool = False,
             idempotency_key: str | None = None) -> Sub:
        request = EngineRequest("POST", action, json=body, write=write, route=route, idempotency_key=idempotency_key)
        response = yield request
        try:
            return self._data(response, action)
        except AuthFailedError:
            # The token was refused (expired early, released elsewhere): log in again, once. Nothing
            # was applied, so repeating a write is safe.
            self.auth.invalidate()
            response = yield request
            return self._data(response, action)

    def _data(self, response: httpx.Response, action: str) -> Any:
        if response.status_code == 401:
            raise AuthFailedError("the engine refused the session token (HTTP 401)", engine=ENGINE)
        body = json_body(response, ENGINE)
        if not isinstance(body, dict) or "status" not in body:
            if response.status_code == 403:
                raise AuthFailedError("the engine refused the credentials (HTTP 403)", engine=ENGINE)
            raise MalformedResponseError(f"{action}: HTTP {response.status_code} without the status envelope",
                                         engine=ENGINE)
        return tf.unwrap(body, self.table, self.s.ok_code, operation=action)

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

    def create_purchase(self, customer_id: str, lines: tuple[Line, ...], reference: str) -> Sub:
        data = yield from self.call("customer_events/purchases/create",
                                    tf.purchase_body(self.s, customer_id, lines, reference), "export", write=True)
        return tf.purchase_from(data)

    def cancel_purchase(self, purchase: Purchase) -> Sub:
        try:
            yield from self.call("customer_events/purchases/cancel",
                                 tf.cancel_body(self.s.purchase_cancel_field, purchase.id), "reverse", write=True)
        except AlreadyCancelledError:
            return False
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

    def cancel_spend(self, spend_id: str) -> Sub:
        try:
            yield from self.call("customer_events/spend_requests/cancel",
                                 tf.cancel_body("customer_event_identifier", spend_id), "reverse", write=True)
        except AlreadyCancelledError:
            return False
        return True

    # -- products -----------------------------------------------------------------------------
    def sync_products(self, products: list[Product]) -> Sub:
        # Create-or-update by code: sending a batch again changes nothing, so the runner may retry it.
        key = tf.reference_for("products:", ",".join(p.sku for p in products))
        yield from self.call("products/synchronise", tf.sync_body(self.s, products), "products", write=True,
                             idempotency_key=key)
        return None

    def release_request(self) -> EngineRequest | None:
        token = self.auth.token
        if token is None:
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
