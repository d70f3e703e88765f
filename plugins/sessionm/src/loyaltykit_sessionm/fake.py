"""A stateful fake of SessionM at the HTTP level: Core, Connect and POS on their documented paths.

One handler serves the three families (routed by path prefix, so the three base URLs may be three
hosts on one ``httpx.MockTransport`` or one served address), each with its own Basic credentials
and its own envelope:

* Core ``/priv/v1/apps/{api_key}/...`` -> ``{"status": "ok", "user": ...}`` or HTTP 200
  ``{"status": "error", "errors": {"code": ...}}``;
* Connect ``/offers/api/2.0/...``, ``/incentives/api/{1.0|2.0}/...`` -> ``{"status": "ok", "payload": ...}``;
  bodies must carry the tenant's ``retailer_id``; spends are de-duplicated by ``idempotency_id``;
* POS ``/api/2.0/{operation}`` with the ``{store_id, client_id, request_id, request_payload}``
  envelope -> ``{"status": "OK", "payload": ...}``; a repeated ``request_id`` returns the stored answer.

Where the sources leave a shape UNCONFIRMED (POS look-up payload, error codes) the fake speaks the
adapter's default settings. State: users with point accounts, offers, user offers (ISSUED, LOCKED
to a transaction, REDEEMED), transactions and point audits.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from loyaltykit import wire
from loyaltykit.testing import FakeEngine

CORE = "core"
CONNECT = "connect"
POS = "pos"


def respond(payload: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=wire.dumps(payload),
                          headers={"Content-Type": "application/json"})


def family_of(path: str) -> str:
    if path.startswith("/priv/"):
        return CORE
    if path.startswith("/api/2.0/"):
        return POS
    return CONNECT


def _dec(value: Any) -> Decimal:
    if value is None or isinstance(value, bool):
        raise ValueError("not a number")
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass
class PointAccount:
    point_account_id: str
    account_name: str
    grouping_label: str
    balance: Decimal = Decimal(0)
    lifetime: Decimal = Decimal(0)


@dataclass
class User:
    id: str
    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    card: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    tier: str | None = None
    accounts: list[PointAccount] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)  # custom attributes (user_profile)


@dataclass
class OfferDef:
    offer_id: str
    offer_type: str
    name: str
    amount: Decimal | None = None  # money for fixed types, percent for percent types
    sku: str | None = None
    min_subtotal: Decimal | None = None


@dataclass
class UserOffer:
    user_offer_id: str
    offer_id: str
    user_id: str
    status: str = "ISSUED"  # ISSUED | LOCKED | REDEEMED
    locked_to: str | None = None
    valid_from: datetime | None = None
    expires_at: datetime | None = None
    consumed: int = 0  # lock/redeem takes one use; unlock/reinstate gives it back
    ttl_code: str | None = None  # a short-lived redemption code shown to the customer (TTLCode)
    lock_discount: dict[str, Any] | None = None  # the Discount the lock returned
    custom_data: str | None = None  # set by acquisition/update (reference § 4.4)


@dataclass
class Transaction:
    transaction_id: str
    request_id: str
    user_id: str | None
    total: Decimal
    earned: Decimal = Decimal(0)
    voided: bool = False
    store_id: str | None = None
    channel: str | None = None
    tax_total: Decimal | None = None
    discounts: list[dict[str, Any]] = field(default_factory=list)
    from_transaction_id: str | None = None


class SessionMFake(FakeEngine):
    """SessionM's three API families, stateful, with the kit's fault injection per route."""

    PERCENT = "percent_check_discount"
    FIXED = "fixed_amount_check_discount"
    ITEM = "fixed_amount_item_discount"
    PERCENT_ITEM = "percent_item_discount"

    def __init__(
        self,
        *,
        core_api_key: str = "core-key",
        core_api_secret: str = "core-secret",
        connect_key: str = "connect-key",
        connect_secret: str = "connect-secret",
        pos_key: str = "pos-key",
        pos_secret: str = "pos-secret",
        retailer_id: str = "00000000-0000-4000-8000-000000000001",
        client_id: str | None = None,
        core_not_found_status: int = 200,
        places: int = 2,
    ) -> None:
        super().__init__()
        self.core_api_key = core_api_key
        self.retailer_id = retailer_id
        self.client_id = client_id or retailer_id
        self.core_not_found_status = core_not_found_status
        self.core_not_found_body = True  # False: a bare 404 without the error envelope
        self.quantum = Decimal(1).scaleb(-places)
        self._credentials = {
            CORE: (core_api_key, core_api_secret),
            CONNECT: (connect_key, connect_secret),
            POS: (pos_key, pos_secret),
        }
        self.users: dict[str, User] = {}
        self.offers: dict[str, OfferDef] = {}
        self.user_offers: dict[str, UserOffer] = {}
        self.transactions: list[Transaction] = []
        self.spends: dict[str, dict[str, Any]] = {}  # idempotency_id -> stored detail
        self.audits: list[dict[str, Any]] = []
        self.pos_replies: dict[str, tuple[int, dict[str, Any]]] = {}
        self.earn_rate: Decimal | None = None
        self.audience_offers: list[str] = []  # issued to every member, present and future
        self._current = threading.local()

        core = r"/priv/v1/apps/(?P<api_key>[^/]+)"
        self.route("POST", core + r"/users", "enrol", self._core_create)
        self.route("GET", core + r"/users/search", "identify", self._core_search)
        self.route("GET", core + r"/external/users/(?P<external_id>[^/]+)", "identify", self._core_external)
        self.route("GET", core + r"/users/(?P<user_id>[^/]+)", "identify", self._core_by_id)
        self.route("PUT", core + r"/users/(?P<user_id>[^/]+)", "update", self._core_update)
        self.route("POST", r"/offers/api/2\.0/offers/get_user_offers", "wallet", self._get_user_offers)
        self.route("POST", r"/offers/api/2\.0/offers/acquisition/issue", "issue", self._acquisition_issue)
        self.route("POST", r"/offers/api/2\.0/offers/acquisition/update", "issue", self._acquisition_update)
        self.route("POST", r"/incentives/api/1\.0/movement/move_user", "update", self._move_user)
        self.route("POST", r"/incentives/api/1\.0/user_points/all_balances", "lookup", self._all_balances)
        self.route("POST", r"/incentives/api/1\.0/user_points/spend_multiple", "spend", self._spend_multiple)
        self.route("POST", r"/incentives/api/1\.0/user_points/spend_multiple", "reverse", self._spend_multiple)
        self.route("POST", r"/incentives/api/2\.0/user_points/deposit", "reverse", self._deposit)
        self.route("POST", r"/incentives/api/2\.0/user_points/fetch_point_audit_logs", "lookup", self._audit_logs)
        self.route("POST", r"/api/2\.0/lookup", "identify", self._pos(self._lookup))
        self.route("POST", r"/api/2\.0/lookup", "evaluate", self._pos(self._lookup))
        self.route("POST", r"/api/2\.0/lock", "redeem", self._pos(self._lock))
        self.route("POST", r"/api/2\.0/redeem", "redeem", self._pos(self._redeem))
        self.route("POST", r"/api/2\.0/unlock", "release", self._pos(self._unlock))
        self.route("POST", r"/api/2\.0/reinstate", "reverse", self._pos(self._reinstate))
        self.route("POST", r"/api/2\.0/send_transaction", "export", self._pos(self._send_transaction))
        self.route("POST", r"/api/2\.0/send_transaction", "reverse", self._pos(self._send_transaction))

    # ---------------------------------------------------------------------------------------------
    # Dispatch, auth and envelopes
    # ---------------------------------------------------------------------------------------------
    def _route_name(self, request: httpx.Request) -> str | None:
        """Routes shared by two kit operations are told apart by their body."""
        path = request.url.path
        if path not in ("/api/2.0/lookup", "/api/2.0/send_transaction",
                        "/incentives/api/1.0/user_points/spend_multiple"):
            return None
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return None
        if path == "/api/2.0/lookup":
            return "evaluate" if (body.get("request_payload") or {}).get("transaction") else "identify"
        if path == "/api/2.0/send_transaction":
            payload = body.get("request_payload") or {}
            return "reverse" if payload.get("is_voided") or payload.get("from_transaction_id") else "export"
        details = body.get("spend_details") or [{}]
        return "reverse" if details[0].get("is_return") else "spend"

    def handle(self, request: httpx.Request) -> httpx.Response:
        self._current.path = request.url.path
        name = self._route_name(request)
        if name is not None:
            for candidate in self._routes:
                if candidate.method == request.method and candidate.name == name:
                    match = candidate.pattern.match(request.url.path)
                    if match:
                        return self._dispatch(candidate, request, match.groupdict())
        return super().handle(request)

    def authorize(self, request: httpx.Request, route: str) -> bool:
        user, secret = self._credentials[family_of(request.url.path)]
        expected = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        return bool(request.headers.get("Authorization") == expected)

    def unauthorized(self) -> httpx.Response:
        return respond({"status": "error", "errors": {"code": "invalid_auth_token"}}, 401)

    def server_error(self, status: int) -> httpx.Response:
        return respond({"status": "error", "errors": {"code": "internal_server_error"}}, status)

    def error_body(self, route: str) -> httpx.Response:
        """HTTP 200 carrying the family's own error envelope (the kit's ERROR_BODY fault)."""
        family = family_of(getattr(self._current, "path", ""))
        if family == CORE:
            return respond({"status": "error", "errors": {"code": "not_available", "message": "injected"}})
        if family == CONNECT:
            return respond({"status": "error", "errors": {"error": "injected failure"}})
        return respond({"status": "ERROR", "errors": {"code": "injected", "message": "injected failure"}})

    @staticmethod
    def _body(request: httpx.Request) -> dict[str, Any]:
        try:
            body = json.loads(request.content or b"{}", parse_float=Decimal)
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _core_error(self, code: str, status: int = 200) -> httpx.Response:
        return respond({"status": "error", "errors": {"code": code, "message": code.replace("_", " ")}}, status)

    @staticmethod
    def _connect_ok(payload: dict[str, Any]) -> httpx.Response:
        return respond({"status": "ok", "payload": payload})

    @staticmethod
    def _connect_error(text: str) -> httpx.Response:
        return respond({"status": "error", "errors": {"error": text}})

    @staticmethod
    def _pos_error(code: str) -> tuple[int, dict[str, Any]]:
        return 200, {"status": "ERROR", "errors": {"code": code, "message": code.replace("_", " ")}}

    def _pos(self, operation: Callable[[dict[str, Any], dict[str, Any]], tuple[int, dict[str, Any]]]
             ) -> Callable[[httpx.Request, dict[str, str]], httpx.Response]:
        """Envelope check and replay by request_id around a POS operation."""

        def handler(request: httpx.Request, params: dict[str, str]) -> httpx.Response:
            envelope = self._body(request)
            missing = [k for k in ("store_id", "client_id", "request_id") if not envelope.get(k)]
            if missing or not isinstance(envelope.get("request_payload"), dict):
                return respond(self._pos_error("validation")[1])
            if envelope["client_id"] != self.client_id:
                return respond(self._pos_error("invalid_client")[1])
            request_id = str(envelope["request_id"])
            if request_id in self.pos_replies:
                status, body = self.pos_replies[request_id]
                return respond(body, status)
            status, body = operation(envelope["request_payload"], envelope)
            self.pos_replies[request_id] = (status, body)
            return respond(body, status)

        return handler

    def _connect_tenant(self, body: dict[str, Any]) -> httpx.Response | None:
        if body.get("retailer_id") != self.retailer_id:
            return self._connect_error("invalid retailer_id")
        return None

    # ---------------------------------------------------------------------------------------------
    # Seeding and reading back (used by the harness and tests; not part of the wire)
    # ---------------------------------------------------------------------------------------------
    def add_user(self, *, user_id: str | None = None, external_id: str | None = None, email: str | None = None,
                 phone: str | None = None, card: str | None = None, tier: str | None = None,
                 points: Decimal = Decimal(0), first_name: str | None = None, last_name: str | None = None) -> User:
        with self.lock:
            user = User(
                id=user_id or str(uuid.uuid4()),
                external_id=external_id,
                email=email.lower() if email else None,
                phone="".join(ch for ch in phone if ch.isdigit()) if phone else None,
                card=card,
                tier=tier,
                first_name=first_name,
                last_name=last_name,
                accounts=[PointAccount(str(uuid.uuid4()), "Loyalty Points", "Spend", Decimal(points), Decimal(points))],
            )
            self.users[user.id] = user
            for offer_id in self.audience_offers:
                self.issue(user.id, offer_id)
            return user

    def add_offer(self, *, offer_type: str, name: str = "Offer", amount: Decimal | None = None,
                  sku: str | None = None, min_subtotal: Decimal | None = None) -> OfferDef:
        with self.lock:
            offer = OfferDef(str(uuid.uuid4()), offer_type, name, amount, sku, min_subtotal)
            self.offers[offer.offer_id] = offer
            return offer

    def issue(self, user_id: str, offer_id: str, *, user_offer_id: str | None = None,
              valid_from: datetime | None = None, expires_at: datetime | None = None,
              ttl_code: str | None = None) -> UserOffer:
        with self.lock:
            if user_id not in self.users or offer_id not in self.offers:
                raise KeyError("unknown user or offer")
            ident = user_offer_id or str(uuid.uuid4())
            if ident in self.user_offers:
                raise ValueError("user_offer_id already issued")
            user_offer = UserOffer(ident, offer_id, user_id, valid_from=valid_from, expires_at=expires_at,
                                   ttl_code=ttl_code)
            self.user_offers[ident] = user_offer
            return user_offer

    def issue_to_audience(self, offer_id: str) -> None:
        """Bulk issuance to all members (the fake's audience is everyone)."""
        with self.lock:
            self.audience_offers.append(offer_id)
            for user_id in list(self.users):
                self.issue(user_id, offer_id)

    def points(self, user_id: str) -> Decimal:
        with self.lock:
            return self._spend_account(self.users[user_id]).balance

    def snapshot(self) -> dict[str, Any]:
        """Engine state without the POS replay store (a look-up's stored answer is not an effect)."""
        with self.lock:
            return copy.deepcopy({
                "users": self.users, "offers": self.offers, "user_offers": self.user_offers,
                "transactions": self.transactions, "spends": self.spends, "audits": self.audits,
            })

    # ---------------------------------------------------------------------------------------------
    # Core
    # ---------------------------------------------------------------------------------------------
    def _core_user(self, user: User, params: httpx.QueryParams) -> dict[str, Any]:
        account = self._spend_account(user)
        body: dict[str, Any] = {
            "id": user.id,
            "external_id": user.external_id,
            "opted_in": True,
            "activated": True,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "account_status": "good",
            "available_points": account.balance,
            "tier": user.tier,
            "created_at": "2024-01-01 00:00:00",
        }
        if params.get("show_identifiers") == "true" and user.external_id:
            body["identifiers"] = [{"external_id": user.external_id, "external_id_type": "merchant_identifier"}]
        if params.get("user[user_profile]") == "true":
            body["user_profile"] = {"_version": 1, **user.profile}
        if params.get("expand_incentives") == "true":
            body["tier_details"] = {"point_account_balances": self._balances(user), "tier_levels": []}
        return body

    def _core_reply(self, request: httpx.Request, params: dict[str, str], user: User | None) -> httpx.Response:
        if params.get("api_key") != self.core_api_key:
            return self._core_error("invalid_api_key")
        if user is None:
            if self.core_not_found_status == 404 and not self.core_not_found_body:
                return httpx.Response(404)  # "404 not found by id" with no envelope ([D-ERR] status table)
            return self._core_error("user_not_found", self.core_not_found_status)
        return respond({"status": "ok", "user": self._core_user(user, request.url.params)})

    def _core_external(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        ext = params["external_id"]
        user = next((u for u in self.users.values() if u.external_id == ext), None)
        return self._core_reply(request, params, user)

    def _core_by_id(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        return self._core_reply(request, params, self.users.get(params["user_id"]))

    # Create customer (../shared/reference/sessionm.md § 3.1, [D-CREATE]): attributes under "user";
    # one e-mail address per profile. The codes for a taken e-mail or external id are UNCONFIRMED:
    # the fake answers "email_taken" / "external_id_taken" (the adapter's enrol_email_taken_codes).
    _EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

    def _core_create(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if params.get("api_key") != self.core_api_key:
            return self._core_error("invalid_api_key")
        try:
            data = json.loads(request.content)
            fields = data["user"]
        except (ValueError, KeyError, TypeError):
            return self._core_error("missing_data", 400)
        if not isinstance(fields, dict):
            return self._core_error("missing_data", 400)
        email = fields.get("email")
        if email is not None and (not isinstance(email, str) or not self._EMAIL.match(email)):
            return self._core_error("invalid_email", 422)
        with self.lock:
            ext = fields.get("external_id")
            if ext is not None and any(u.external_id == ext for u in self.users.values()):
                return self._core_error("external_id_taken", 422)
            if email is not None and any(u.email == email.lower() for u in self.users.values()):
                return self._core_error("email_taken", 422)
            phones = fields.get("phone_numbers") or []
            user = self.add_user(external_id=ext, email=email, first_name=fields.get("first_name"),
                                 last_name=fields.get("last_name"),
                                 phone=phones[0].get("phone_number") if phones and isinstance(phones[0], dict) else None)
        return respond({"status": "ok", "user": self._core_user(user, request.url.params)})

    def _core_search(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        email = (request.url.params.get("email") or "").lower()
        if not email:
            return self._core_error("missing_data")
        user = next((u for u in self.users.values() if u.email == email), None)
        return self._core_reply(request, params, user)

    # ---------------------------------------------------------------------------------------------
    # Connect: offers wallet and points
    # ---------------------------------------------------------------------------------------------
    @staticmethod
    def _spend_account(user: User) -> PointAccount:
        return next((a for a in user.accounts if a.grouping_label == "Spend"), user.accounts[0])

    def _balances(self, user: User) -> dict[str, Any]:
        return {
            "retailer_id": self.retailer_id,
            "user_id": user.id,
            "summary": {
                "total_points": sum((a.balance for a in user.accounts), Decimal(0)),
                "life_time_points": sum((a.lifetime for a in user.accounts), Decimal(0)),
            },
            "details": [
                {
                    "account_name": a.account_name,
                    "user_point_account_id": f"{user.id}:{a.point_account_id}",
                    "point_account_id": a.point_account_id,
                    "grouping_label": a.grouping_label,
                    "available_balance": a.balance,
                    "life_time_value": a.lifetime,
                }
                for a in user.accounts
            ],
        }

    def _connect_user(self, request: httpx.Request) -> tuple[dict[str, Any], User | None, httpx.Response | None]:
        body = self._body(request)
        refused = self._connect_tenant(body)
        if refused is not None:
            return body, None, refused
        user = self.users.get(str(body.get("user_id")))
        if user is None:
            return body, None, self._connect_error("user_not_found")
        return body, user, None

    def _wallet_entry(self, uo: UserOffer) -> dict[str, Any]:
        offer = self.offers[uo.offer_id]
        entry: dict[str, Any] = {
            "offer_id": offer.offer_id,
            "offer_group_id": "00000000-0000-0000-0000-000000000000",
            "offer_type": offer.offer_type,
            "user_offer_id": uo.user_offer_id,
            "name": offer.name,
            "amount": offer.amount,
        }
        if offer.sku:
            entry["sku"] = offer.sku
        if uo.expires_at:
            entry["expiration_date"] = uo.expires_at.isoformat()
        if uo.custom_data is not None:
            entry["custom_data"] = uo.custom_data  # the key is UNCONFIRMED (adapter wallet_custom_data_key)
        return entry

    # Update customer (../shared/reference/sessionm.md § 3.4, [CAFEZUPAS-note] [R-RWS-R]): PUT with
    # the changed fields under "user"; custom attributes under user.user_profile (§ 3.1, [D-CREATE]).
    def _core_update(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if params.get("api_key") != self.core_api_key:
            return self._core_error("invalid_api_key")
        fields = self._body(request).get("user")
        if not isinstance(fields, dict):
            return self._core_error("missing_data", 400)
        with self.lock:
            user = self.users.get(params["user_id"])
            if user is None:
                return self._core_reply(request, params, None)
            for name in ("first_name", "last_name"):
                if isinstance(fields.get(name), str):
                    setattr(user, name, fields[name])
            profile = fields.get("user_profile")
            if profile is not None:
                if not isinstance(profile, dict):
                    return self._core_error("validation", 422)
                user.profile.update(profile)
        return respond({"status": "ok", "user": self._core_user(user, request.url.params)})

    # Move tier (§ 5.4, [R-LOTUSMILE]): tier_system_id, tier_level_id and user_id are sent by every
    # client; the answer's payload is UNCONFIRMED (the fake answers an empty one).
    def _move_user(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body, user, refused = self._connect_user(request)
        if refused is not None:
            return refused
        assert user is not None
        if not body.get("tier_system_id") or not body.get("tier_level_id"):
            return self._connect_error("validation: tier_system_id, tier_level_id")
        with self.lock:
            user.tier = str(body["tier_level_id"])
        return self._connect_ok({})

    # Issue an offer (§ 4.3, [R-RWS-T]): retailer_id, user_id, offer_id, quantity; one status_list
    # item per user offer issued, fail_reason 0. An unknown offer's refusal is UNCONFIRMED: the
    # fake answers the Connect error "offer_not_found" (the adapter's issue_offer_unknown_codes).
    def _acquisition_issue(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body, user, refused = self._connect_user(request)
        if refused is not None:
            return refused
        assert user is not None
        offer_id = body.get("offer_id")
        if not offer_id:
            return self._connect_error("validation: offer_id")
        quantity = body.get("quantity", 1)
        if not isinstance(quantity, int | Decimal) or int(quantity) != quantity or not 1 <= quantity <= 100:
            return self._connect_error("validation: quantity")
        if str(offer_id) not in self.offers:
            return self._connect_error("offer_not_found")
        issued = [self.issue(user.id, str(offer_id)) for _ in range(int(quantity))]
        return self._connect_ok({"status_list": [
            {"user_id": user.id, "user_offer_id": uo.user_offer_id, "offer_id": uo.offer_id,
             "root_offer_id": uo.offer_id, "pending_extended_data": False, "fail_reason": 0} for uo in issued]})

    # Update a user offer (§ 4.4, [R-RWS-T]): retailer_id, user_id, user_offer_id, custom_data (a
    # JSON string).
    def _acquisition_update(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body, user, refused = self._connect_user(request)
        if refused is not None:
            return refused
        assert user is not None
        with self.lock:
            uo = self.user_offers.get(str(body.get("user_offer_id")))
            if uo is None or uo.user_id != user.id:
                return self._connect_error("user_offer_not_found")
            custom = body.get("custom_data")
            if custom is not None:
                if not isinstance(custom, str):
                    return self._connect_error("validation: custom_data")
                try:
                    json.loads(custom)
                except ValueError:
                    return self._connect_error("validation: custom_data")
                uo.custom_data = custom
        return self._connect_ok({"user_offer_id": uo.user_offer_id})

    def _issued(self, user: User) -> list[UserOffer]:
        now = datetime.now(UTC)
        return [
            uo for uo in self.user_offers.values()
            if uo.user_id == user.id and uo.status == "ISSUED" and not (uo.expires_at and uo.expires_at < now)
        ]

    def _get_user_offers(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body, user, refused = self._connect_user(request)
        if refused is not None:
            return refused
        assert user is not None
        offers = self._issued(user)
        skip, take = int(body.get("skip") or 0), int(body.get("take") or 1000)
        # The documented request pages with skip/take=1000 (reference 4.2, [BRAZE]); a larger page is
        # refused here (the real limit is UNCONFIRMED).
        if take > 1000 or take < 1 or skip < 0:
            return self._connect_error("validation: take")
        account = self._spend_account(user)
        return self._connect_ok({
            "user": {"opted_in": True, "activated": True},
            "user_id": user.id,
            "user_offers": [self._wallet_entry(uo) for uo in offers[skip:skip + take]],
            "total_records": len(offers),
            "offer_groups": [{"id": "00000000-0000-0000-0000-000000000000", "name": "All Offers", "sort_order": 0}],
            "offer_categories": [],
            "total_points": account.lifetime,
            "available_points": account.balance,
        })

    def _all_balances(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        _, user, refused = self._connect_user(request)
        if refused is not None:
            return refused
        assert user is not None
        return self._connect_ok(self._balances(user))

    def _account(self, user: User, ids: list[Any]) -> PointAccount | None:
        if not ids:
            return self._spend_account(user)
        return next((a for a in user.accounts if a.point_account_id == str(ids[0])), None)

    def _spend_multiple(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body, user, refused = self._connect_user(request)
        if refused is not None:
            return refused
        assert user is not None
        details = body.get("spend_details")
        if not isinstance(details, list) or not details:
            return self._connect_error("validation: spend_details required")
        out = []
        for item in details:
            # spend_details[].idempotency_id de-duplicates a spend; the answer echoes it with an
            # idempotency_summary (reference 2.4, [R-RWS-T SpendRequest.cs / SpendResponse.cs]).
            ident = str(item.get("idempotency_id") or "")
            if ident and ident in self.spends:
                out.append({**self.spends[ident], "idempotency_summary": "duplicate: already applied"})
                continue
            try:
                amount = _dec(item.get("amount"))
            except (ValueError, ArithmeticError):
                return self._connect_error("validation: amount")
            account = self._account(user, item.get("point_account_ids") or [])
            if account is None or amount <= 0:
                return self._connect_error("validation: point account or amount")
            returning = bool(item.get("is_return"))
            if not returning and account.balance < amount and not item.get("force_spend"):
                # Per-item failure inside the payload: error_status, message, error_response
                # (reference 2.2, [R-RWS-T SpendResponse.cs]); the codes are UNCONFIRMED.
                out.append({"point_account_id": account.point_account_id, "amount_spent": Decimal(0),
                            "remaining_balance": account.balance, "idempotency_id": ident, "error_status": 1,
                            "message": "insufficient points",
                            "error_response": {"code": "insufficient_points", "message": "insufficient points"},
                            "retailer_id": self.retailer_id, "user_id": user.id})
                continue
            account.balance += amount if returning else -amount
            detail = {
                "account_name": account.account_name,
                "user_point_account_id": f"{user.id}:{account.point_account_id}",
                "point_account_id": account.point_account_id,
                "amount_spent": amount,
                "remaining_balance": account.balance,
                "reference_id": item.get("reference_id"),
                "reference_type": item.get("reference_type"),
                "tracking_id": str(uuid.uuid4()),
                "idempotency_id": ident,
                "error_status": 0,
                "retailer_id": self.retailer_id,
                "user_id": user.id,
                "point_source_id": item.get("point_source_id") or "",
                "idempotency_summary": "applied",
                "message": "",
                "error_response": None,
            }
            if ident:
                self.spends[ident] = detail
            self._audit(user, amount if returning else -amount, idempotency_id=ident,
                        transaction_id=item.get("transaction_id"), modification_type="spend",
                        account_name=account.account_name)
            out.append(detail)
        return self._connect_ok({
            "details": out,
            "retailer_id": self.retailer_id,
            "user_id": user.id,
            "summary": {"amount_spent": sum((d["amount_spent"] for d in out), Decimal(0)),
                        "remaining_balance": self._spend_account(user).balance},
            "audits": [],
            "time_of_occurrence": datetime.now(UTC).isoformat(),
        })

    def _audit(self, user: User, modification: Decimal, **fields: Any) -> None:
        # Audit row fields as listed in reference § 5.4 (from client code).
        self.audits.append({"id": str(uuid.uuid4()), "retailer_id": self.retailer_id, "user_id": user.id,
                            "modification": modification, "amount_expired": 0,
                            "time_of_occurrence": datetime.now(UTC).isoformat(), **fields})

    # fetch_point_audit_logs (reference § 5.4): {retailer_id, user_id, skip, take}; the payload key
    # of the rows is UNCONFIRMED (the fake and the adapter's default say "audit_logs"), and so is the order (newest first here).
    def _audit_logs(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body, user, refused = self._connect_user(request)
        if refused is not None:
            return refused
        assert user is not None
        try:
            skip, take = int(body.get("skip", 0)), int(body.get("take", 50))
        except (TypeError, ValueError):
            return self._connect_error("validation: skip and take")
        if skip < 0 or not 1 <= take <= 1000:
            return self._connect_error("validation: skip and take")
        rows = [a for a in reversed(self.audits) if a["user_id"] == user.id]
        return self._connect_ok({"audit_logs": rows[skip: skip + take], "total_records": len(rows)})

    def _deposit(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body, user, refused = self._connect_user(request)
        if refused is not None:
            return refused
        assert user is not None
        out = []
        for item in body.get("deposit_details") or []:
            if not item.get("point_source_id"):
                return self._connect_error("validation: point_source_id")
            account = self._account(user, [item["point_account_id"]] if item.get("point_account_id") else [])
            amount = _dec(item.get("amount"))
            if account is None or amount <= 0:
                return self._connect_error("validation: point account or amount")
            account.balance += amount
            account.lifetime += amount
            self._audit(user, amount, point_source_id=item["point_source_id"], modification_type="deposit",
                        account_name=account.account_name)
            out.append({"point_account_id": account.point_account_id, "amount": amount,
                        "available_balance": account.balance})
        return self._connect_ok({"details": out, "user_id": user.id})

    # ---------------------------------------------------------------------------------------------
    # POS
    # ---------------------------------------------------------------------------------------------
    def _find_user(self, criteria: dict[str, Any]) -> User | None:
        keys = {"user_id": "id", "email": "email", "phone": "phone", "external_customer_id": "card"}
        matches = list(self.users.values())
        used = False
        for field_name, attr in keys.items():
            if criteria.get(field_name):
                used = True
                value = str(criteria[field_name]).lower() if field_name == "email" else str(criteria[field_name])
                matches = [u for u in matches if getattr(u, attr) == value
                           or (field_name == "external_customer_id" and u.external_id == value)]
        return matches[0] if used and len(matches) == 1 else None

    def _subtotal(self, transaction: dict[str, Any]) -> Decimal:
        total = Decimal(0)
        for item in transaction.get("items") or []:
            if item.get("subtotal") is not None:
                total += _dec(item["subtotal"])
            else:
                total += _dec(item.get("unit_price", 0)) * _dec(item.get("quantity", 1))
        return total

    def _compute(self, uo: UserOffer, transaction: dict[str, Any]) -> tuple[Decimal, list[str]] | str:
        """(discount, discounted line ids), or the error code why the offer does not apply."""
        offer = self.offers[uo.offer_id]
        now = datetime.now(UTC)
        if uo.valid_from and now < uo.valid_from:
            return "offer_not_active"
        if uo.expires_at and now > uo.expires_at:
            return "offer_expired"
        items = transaction.get("items") or []
        subtotal = self._subtotal(transaction)
        if offer.min_subtotal is not None and subtotal < offer.min_subtotal:
            return "offer_not_applicable"
        amount = offer.amount or Decimal(0)
        if offer.offer_type == self.FIXED:
            return (min(amount, subtotal) if items else amount), []
        if offer.offer_type == self.PERCENT:
            value = (subtotal * amount / 100).quantize(self.quantum, rounding=ROUND_HALF_UP)
            return value, []
        if offer.offer_type in (self.ITEM, self.PERCENT_ITEM):
            matching = [i for i in items if str(i.get("item_id")) == offer.sku]
            if not matching:
                return "offer_not_applicable"
            best = max(matching, key=lambda i: _dec(i.get("unit_price", 0)))
            if offer.offer_type == self.ITEM:
                return min(amount, _dec(best.get("unit_price", 0))), [str(best.get("line_id"))]
            line_total = _dec(best.get("unit_price", 0)) * _dec(best.get("quantity", 1))
            value = (line_total * amount / 100).quantize(self.quantum, rounding=ROUND_HALF_UP)
            return value, [str(best.get("line_id"))]
        return "offer_not_applicable"

    def _lookup(self, payload: dict[str, Any], envelope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        user = self._find_user(payload)
        if user is None:
            return self._pos_error("user_not_found")
        body: dict[str, Any] = {"user": self._core_user(user, httpx.QueryParams({"expand_incentives": "true"}))}
        transaction = payload.get("transaction")
        offers = []
        for uo in self._issued(user):
            entry = self._wallet_entry(uo)
            if isinstance(transaction, dict):
                computed = self._compute(uo, transaction)
                if isinstance(computed, str):
                    continue  # only eligible offers are returned with a basket
                entry["discount_amount"], entry["discounted_line_ids"] = computed
            offers.append(entry)
        body["offers"] = offers
        return 200, {"status": "OK", "payload": body}

    def _discount(self, uo: UserOffer, amount: Decimal, lines: list[str], status: str) -> dict[str, Any]:
        offer = self.offers[uo.offer_id]
        return {
            "reference_id": uo.user_offer_id,
            "reference_id_type": "UserOfferId",
            "pos_discount_id": offer.offer_id,
            "status": status,
            "display_name": offer.name,
            "image_url": None,
            "discounted_line_ids": lines,
            "discounted_line_id_quantities": [],
            "discount_source": "Offer",
            "amount": amount,
            "stack_order": 0,
            "applied_time": datetime.now(UTC).isoformat(),
            "user_id": uo.user_id,
        }

    def _take(self, payload: dict[str, Any], *, lock: bool) -> tuple[int, dict[str, Any]]:
        # Lock / Immediate Redeem payload {offer_lookup_code, offer_lookup_type: TTLCode|UserOfferId,
        # transaction} ([D-POS-LOCK], [D-POS-REDEEM]; reference 4.5).
        lookup_type, code = payload.get("offer_lookup_type"), str(payload.get("offer_lookup_code") or "")
        if lookup_type not in ("UserOfferId", "TTLCode") or not code:
            return self._pos_error("validation")
        if lookup_type == "TTLCode":
            uo = next((u for u in self.user_offers.values() if u.ttl_code and u.ttl_code == code), None)
        else:
            uo = self.user_offers.get(code)
        transaction = payload.get("transaction")
        if not isinstance(transaction, dict) or not transaction.get("transaction_id"):
            return self._pos_error("validation")
        if uo is None:
            return self._pos_error("offer_not_found")
        if uo.status == "REDEEMED":
            return self._pos_error("offer_already_redeemed")
        transaction_id = str(transaction["transaction_id"])
        if uo.status == "LOCKED" and (not lock or uo.locked_to != transaction_id):
            return self._pos_error("offer_locked")
        computed = self._compute(uo, transaction)
        if isinstance(computed, str):
            return self._pos_error(computed)
        amount, lines = computed
        if uo.status == "ISSUED":
            uo.consumed += 1
        discount = self._discount(uo, amount, lines, "Locked" if lock else "Redeemed")
        if lock:
            # Locked to the transaction; redeemed when the transaction is finalized with this
            # Discount passed back in send_transaction.discounts ([D-POS-LOCK]).
            uo.status, uo.locked_to, uo.lock_discount = "LOCKED", transaction_id, discount
        else:
            uo.status, uo.locked_to = "REDEEMED", None
        return 200, {"status": "OK", "payload": discount}

    def _lock(self, payload: dict[str, Any], envelope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._take(payload, lock=True)

    def _redeem(self, payload: dict[str, Any], envelope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._take(payload, lock=False)

    def _unlock(self, payload: dict[str, Any], envelope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # Unlock payload {user_offer_id, employee_id} ([D-POS-UNLOCK]; reference 4.5): both required.
        if not payload.get("user_offer_id") or not payload.get("employee_id"):
            return self._pos_error("validation")
        uo = self.user_offers.get(str(payload.get("user_offer_id")))
        if uo is None:
            return self._pos_error("offer_not_found")
        if uo.status == "REDEEMED":
            return self._pos_error("offer_already_redeemed")
        if uo.status == "LOCKED":
            uo.status, uo.locked_to, uo.lock_discount = "ISSUED", None, None
            uo.consumed -= 1
        return 200, {"status": "OK"}

    def _reinstate(self, payload: dict[str, Any], envelope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # Reinstate payload {user_offer_id, employee_id} ([D-POS-REINSTATE]; reference 4.5).
        if not payload.get("user_offer_id") or not payload.get("employee_id"):
            return self._pos_error("validation")
        uo = self.user_offers.get(str(payload.get("user_offer_id")))
        if uo is None:
            return self._pos_error("offer_not_found")
        if uo.status in ("REDEEMED", "LOCKED"):
            uo.status, uo.locked_to = "ISSUED", None
            uo.consumed -= 1
        return 200, {"status": "OK"}

    @staticmethod
    def _same_discount(sent: dict[str, Any], locked: dict[str, Any] | None) -> bool:
        if locked is None:
            return False
        keys = ("reference_id", "reference_id_type", "pos_discount_id", "discounted_line_ids", "amount", "user_id")
        return all(sent.get(k) == locked.get(k) for k in keys)

    def _send_transaction(self, payload: dict[str, Any], envelope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        transaction_id = payload.get("transaction_id")
        if not transaction_id or not isinstance(payload.get("items"), list):
            return self._pos_error("validation")
        transaction_id = str(transaction_id)
        if payload.get("is_voided"):
            original = next((t for t in reversed(self.transactions)
                             if t.transaction_id == transaction_id and not t.voided), None)
            if original is None:
                return self._pos_error("transaction_not_found")
            original.voided = True
            if original.user_id and original.earned:
                account = self._spend_account(self.users[original.user_id])
                account.balance -= original.earned
                account.lifetime -= original.earned
            return 200, {"status": "OK", "payload": {"transaction_id": transaction_id}}
        # Attribution is via payments[].user_id + user_id_type "SessionM_ID" (reference 6.1, [R-RWS-T]).
        payments = payload.get("payments") or []
        user_id = None
        total = Decimal(0)
        for payment in payments:
            total += _dec(payment.get("amount", 0))
            if payment.get("user_id"):
                if payment.get("user_id_type") != "SessionM_ID" or str(payment["user_id"]) not in self.users:
                    return self._pos_error("user_not_found")
                user_id = str(payment["user_id"])
        discounts = [d for d in payload.get("discounts") or [] if isinstance(d, dict)]
        tax = payload.get("tax_total")
        record = Transaction(transaction_id, str(envelope["request_id"]), user_id, total,
                             store_id=str(envelope.get("store_id")), channel=payload.get("channel"),
                             tax_total=_dec(tax) if tax is not None else None, discounts=discounts,
                             from_transaction_id=payload.get("from_transaction_id"))
        for uo in self.user_offers.values():
            if uo.status != "LOCKED" or uo.locked_to != transaction_id or not payload.get("is_closed", True):
                continue
            # "pass the returned Discount back in send_transaction.discounts" ([D-POS-LOCK]): the
            # lock is finalised only when the same Discount object comes back.
            if any(self._same_discount(d, uo.lock_discount) for d in discounts):
                uo.status, uo.locked_to = "REDEEMED", None
        if user_id and self.earn_rate:
            earned = (total * self.earn_rate).quantize(Decimal(1), rounding=ROUND_DOWN)
            account = self._spend_account(self.users[user_id])
            account.balance += earned
            account.lifetime += earned
            record.earned = earned
            if earned:
                self._audit(self.users[user_id], earned, transaction_id=transaction_id,
                            modification_type="transaction", account_name=account.account_name)
        self.transactions.append(record)
        return 200, {"status": "OK", "payload": {"transaction_id": transaction_id,
                                                 "open_time": payload.get("open_time")}}
