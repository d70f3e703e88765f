"""Test support for the core's unit tests: a tiny stateful engine and its adapter.

``ShopEngine`` is a small loyalty engine faked at the HTTP level (a :class:`FakeEngine` subclass):
members with points and cashback, single-use vouchers, an order ledger, idempotency by the
``Idempotency-Key`` header, optional OAuth2 client credentials. ``ShopAdapter`` speaks its wire
format with sans-IO flows. Neither is a product; they exist so the core can be exercised end to end.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from loyaltykit import (
    Balance,
    BalanceKind,
    Capabilities,
    CodeResult,
    CodeStatus,
    Customer,
    CustomerNotFoundError,
    Discount,
    DiscountTarget,
    Earn,
    EngineAdapter,
    EngineClientConfig,
    EngineError,
    EngineRequest,
    Evaluation,
    ExportReport,
    ExportStatus,
    IdentifierKind,
    InsufficientBalanceError,
    LoyaltySettings,
    Money,
    OrderExportResult,
    Receipt,
    RedemptionResult,
    RedemptionStatus,
    RetryPolicy,
    ReversalResult,
    Service,
    SpendResult,
    VoucherAlreadyRedeemedError,
    VoucherNotFoundError,
)
from loyaltykit.auth import Auth, OAuth2ClientCredentials
from loyaltykit.testing import FakeEngine, json_response

BASE_URL = "http://shop-engine.test"
TOKEN_URL = BASE_URL + "/oauth/token"
CURRENCY = "EUR"


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


class ShopEngine(FakeEngine):
    """A stateful fake engine. Amounts on the wire are decimal strings in EUR."""

    def __init__(self, *, client_id: str | None = None, client_secret: str | None = None) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.members: dict[str, dict[str, Any]] = {}
        self.vouchers: dict[str, dict[str, Any]] = {}
        self.ledger: list[dict[str, Any]] = []  # append-only effects
        self.orders: list[str] = []  # every order ref recorded, once per record
        self.seen_keys: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> earlier answer
        self.tokens: set[str] = set()
        self._ids = itertools.count(1)
        self.route("POST", r"/oauth/token", "token", self._token)
        self.route("GET", r"/members", "identify", self._identify)
        self.route("POST", r"/evaluate", "evaluate", self._evaluate)
        self.route("POST", r"/vouchers/(?P<code>[^/]+)/redemptions", "redeem", self._redeem)
        self.route("POST", r"/members/(?P<member>[^/]+)/spend", "spend", self._spend)
        self.route("GET", r"/spends", "lookup", self._find_spend)
        self.route("POST", r"/orders", "export", self._export)
        self.route("POST", r"/orders/(?P<ref>[^/]+)/reversals", "reverse", self._reverse)

    # -- seeding / inspection ----------------------------------------------------------------
    def add_member(self, member_id: str, *, email: str | None = None, phone: str | None = None,
                   card: str | None = None, tier: str = "basic", points: int = 0,
                   cashback: str = "0.00") -> None:
        with self.lock:
            self.members[member_id] = {
                "id": member_id, "email": email, "phone": phone, "card": card,
                "tier": tier, "points": Decimal(points), "cashback": Decimal(cashback),
            }

    def add_voucher(self, code: str, amount: str) -> None:
        with self.lock:
            self.vouchers[code] = {"amount": Decimal(amount), "used": 0}

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps({
                "members": self.members, "vouchers": self.vouchers, "ledger": self.ledger,
                "orders": self.orders,
            }, default=str))

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # -- auth -----------------------------------------------------------------------------------
    def authorize(self, request: httpx.Request, route: str) -> bool:
        if self.client_id is None or route == "token":
            return True
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    def _token(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return json_response({"error": "invalid_client"}, 401)
        token = f"tok{next(self._ids):04d}abcdef"
        self.tokens.add(token)
        return json_response({"access_token": token, "token_type": "bearer"})

    # -- operations -------------------------------------------------------------------------------
    def _member_by(self, **query: str) -> dict[str, Any] | None:
        for member in self.members.values():
            if all(member.get(k) == v for k, v in query.items()):
                return member
        return None

    def _identify(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        query = {k: v for k, v in request.url.params.items() if k in ("email", "phone", "card")}
        member = self._member_by(**query) if len(query) == 1 else None
        if member is None:
            return json_response({"error": "member_not_found"}, 404)
        return json_response({"member": self._member_json(member)})

    @staticmethod
    def _member_json(member: dict[str, Any]) -> dict[str, Any]:
        return {"id": member["id"], "tier": member["tier"], "points": str(member["points"]),
                "cashback": str(member["cashback"])}

    def _evaluate(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        subtotal = sum((Decimal(line["price"]) * Decimal(line["qty"]) for line in body["lines"]), Decimal(0))
        discounts = []
        member = self.members.get(body.get("member_id") or "")
        if body.get("member_id") and member is None:
            return json_response({"error": "member_not_found"}, 404)
        if member and member["tier"] == "gold":
            discounts.append({"id": "gold10", "label": "Gold 10%", "amount": str((subtotal / 10).quantize(Decimal("0.01")))})
        codes = []
        for code in body.get("codes", []):
            voucher = self.vouchers.get(code)
            if voucher is None:
                codes.append({"code": code, "ok": False, "reason": "voucher_not_found"})
            elif voucher["used"]:
                codes.append({"code": code, "ok": False, "reason": "voucher_already_redeemed"})
            else:
                codes.append({"code": code, "ok": True})
                discounts.append({"id": f"v-{code}", "label": code, "amount": str(voucher["amount"]), "code": code})
        points = sum((Decimal(line["qty"]) for line in body["lines"]), Decimal(0))
        return json_response({"subtotal": str(subtotal), "discounts": discounts, "codes": codes,
                              "points": str(points)})

    def _replay(self, request: httpx.Request) -> httpx.Response | None:
        key = request.headers.get("Idempotency-Key")
        if key and key in self.seen_keys:
            return json_response({**self.seen_keys[key], "replayed": True}, 200)
        return None

    def _remember(self, request: httpx.Request, answer: dict[str, Any]) -> httpx.Response:
        key = request.headers.get("Idempotency-Key")
        if key:
            self.seen_keys[key] = answer
        return json_response({**answer, "replayed": False}, 201)

    def _redeem(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        replay = self._replay(request)
        if replay is not None:
            return replay
        voucher = self.vouchers.get(params["code"])
        if voucher is None:
            return json_response({"error": "voucher_not_found"}, 404)
        if voucher["used"]:
            return json_response({"error": "already_redeemed"}, 409)
        voucher["used"] += 1
        ref = f"R{next(self._ids)}"
        body = json.loads(request.content)
        self.ledger.append({"type": "redeem", "code": params["code"], "order": body["order"], "ref": ref})
        return self._remember(request, {"redemption_id": ref, "amount": str(voucher["amount"])})

    def _spend(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        replay = self._replay(request)
        if replay is not None:
            return replay
        member = self.members.get(params["member"])
        if member is None:
            return json_response({"error": "member_not_found"}, 404)
        body = json.loads(request.content)
        amount = Decimal(body["amount"])
        if amount > member["cashback"]:
            return json_response({"error": "insufficient_funds"}, 422)
        member["cashback"] -= amount
        ref = f"S{next(self._ids)}"
        self.ledger.append({"type": "spend", "member": member["id"], "amount": str(amount), "ref": ref,
                            "order": body.get("order")})
        return self._remember(request, {"spend_id": ref, "remaining": str(member["cashback"])})

    def _find_spend(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        order = request.url.params.get("order")
        found = [e for e in self.ledger if e["type"] == "spend" and e["order"] == order]
        return json_response({"spends": [{"spend_id": e["ref"], "amount": e["amount"]} for e in found]})

    def _export(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        results = []
        for order in body["orders"]:
            if order["ref"] in self.orders:
                results.append({"ref": order["ref"], "status": "duplicate"})
                continue
            self.orders.append(order["ref"])
            points = Decimal(order["total"]).to_integral_value()
            member = self.members.get(order.get("member_id") or "")
            if member:
                member["points"] += points
            self.ledger.append({"type": "order", "ref": order["ref"], "points": str(points)})
            results.append({"ref": order["ref"], "status": "accepted", "points": str(points)})
        return json_response({"results": results})

    def _reverse(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        replay = self._replay(request)
        if replay is not None:
            return replay
        entry = next((e for e in self.ledger if e["type"] == "order" and e["ref"] == params["ref"]), None)
        clawed = Decimal(entry["points"]) if entry else Decimal(0)
        ref = f"V{next(self._ids)}"
        self.ledger.append({"type": "reverse", "order": params["ref"], "points": str(-clawed), "ref": ref})
        return self._remember(request, {"reversal_id": ref, "points_clawed_back": str(clawed)})


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------


class ShopSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_SHOP_", extra="forbid")

    base_url: str = BASE_URL
    client_id: str | None = None
    client_secret: SecretStr | None = None
    keyed_writes: bool = True  # False: writes carry no idempotency key (the runner must not retry them)
    max_attempts: int = 4
    backoff_base: float = 0.01
    read_timeout: float = 10.0


def _money(value: str) -> Money:
    return Money.of(value, CURRENCY)


class ShopAdapter(EngineAdapter):
    name = "shop"
    version = "1.2.3"
    capabilities = Capabilities(
        identify_by=frozenset({IdentifierKind.EMAIL, IdentifierKind.PHONE, IdentifierKind.CARD}),
        evaluate=True,
        redeem_voucher=True,
        spend=frozenset({BalanceKind.CASHBACK}),
        export_orders=True,
        cancel=True,
        refund=True,
        currencies=frozenset({CURRENCY}),
    )
    settings_model = ShopSettings
    log = logging.getLogger("tests.shop_adapter")

    def client_config(self) -> EngineClientConfig:
        s: ShopSettings = self.settings  # type: ignore[assignment]
        auth: Auth = Auth()
        if s.client_id is not None and s.client_secret is not None:
            auth = OAuth2ClientCredentials(
                token_url=s.base_url.rstrip("/") + "/oauth/token", client_id=s.client_id, client_secret=s.client_secret
            )
        return EngineClientConfig(
            engine=self.name,
            services={"default": Service(base_url=s.base_url, auth=auth)},
            retry=RetryPolicy(max_attempts=s.max_attempts, backoff_base=s.backoff_base, backoff_max=0.05),
            read_timeout=s.read_timeout,
        )

    def _key(self, key: str) -> str | None:
        return key if self.settings.keyed_writes else None

    @staticmethod
    def _error(response: httpx.Response) -> str:
        try:
            return str(response.json().get("error"))
        except ValueError:
            return "unparseable"

    def identify(self, identifier, ctx):
        self.log.debug("identify by %s", identifier.kind.value)
        response = yield EngineRequest(
            "GET", "/members", params={identifier.kind.value: identifier.value}, route="identify"
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise EngineError(f"identify failed: {self._error(response)}", engine_code=self._error(response))
        member = response.json()["member"]
        return Customer(
            id=member["id"],
            tier=member["tier"],
            balances=(
                Balance(kind=BalanceKind.POINTS, points=member["points"]),
                Balance(kind=BalanceKind.CASHBACK, money=_money(member["cashback"])),
            ),
        )

    def evaluate_basket(self, basket, ctx):
        body = {
            "member_id": basket.customer_id,
            "lines": [{"id": line.id, "sku": line.sku, "qty": str(line.quantity), "price": str(line.unit_price.amount)}
                      for line in basket.lines],
            "codes": list(basket.coupon_codes),
        }
        response = yield EngineRequest("POST", "/evaluate", json=body, route="evaluate")
        if response.status_code == 404:
            raise CustomerNotFoundError("member not found", engine_code="member_not_found")
        data = response.json()
        return Evaluation(
            engine=self.name,
            basket_id=basket.id,
            currency=basket.currency,
            customer_id=basket.customer_id,
            subtotal=_money(data["subtotal"]),
            discounts=tuple(
                Discount(target=DiscountTarget.ORDER, amount=_money(d["amount"]), engine_id=d["id"],
                         label=d["label"], code=d.get("code"))
                for d in data["discounts"]
            ),
            codes=tuple(
                CodeResult(code=c["code"], status=CodeStatus.ACCEPTED if c["ok"] else CodeStatus.REJECTED,
                           reason=c.get("reason"))
                for c in data["codes"]
            ),
            earn=(Earn(kind=BalanceKind.POINTS, points=data["points"]),),
        )

    def redeem_voucher(self, redemption, ctx):
        key = redemption.key
        response = yield EngineRequest(
            "POST", f"/vouchers/{redemption.code}/redemptions",
            json={"order": redemption.order_ref, "member_id": redemption.customer_id},
            headers={"Idempotency-Key": key} if self._key(key) else None,
            write=True, idempotency_key=self._key(key), route="redeem",
        )
        if response.status_code == 404:
            raise VoucherNotFoundError(f"no voucher {redemption.code}", engine_code="voucher_not_found")
        if response.status_code == 409:
            raise VoucherAlreadyRedeemedError("already redeemed", engine_code="already_redeemed")
        if response.status_code not in (200, 201):
            raise EngineError(f"redeem failed: {self._error(response)}", engine_code=str(response.status_code))
        data = response.json()
        return RedemptionResult(
            code=redemption.code,
            status=RedemptionStatus.REDEEMED,
            discount=_money(data["amount"]),
            receipt=Receipt(operation="redeem_voucher", engine=self.name, idempotency_key=key,
                            engine_ref=data["redemption_id"], code=redemption.code, replayed=data["replayed"]),
        )

    def spend_cashback(self, spend, ctx):
        key = spend.key
        response = yield EngineRequest(
            "POST", f"/members/{spend.customer_id}/spend",
            json={"amount": str(spend.amount.amount), "order": spend.order_ref},
            headers={"Idempotency-Key": key} if self._key(key) else None,
            write=True, idempotency_key=self._key(key), route="spend",
        )
        if response.status_code == 404:
            raise CustomerNotFoundError("member not found", engine_code="member_not_found")
        if response.status_code == 422:
            raise InsufficientBalanceError("not enough cashback", engine_code="insufficient_funds")
        data = response.json()
        return SpendResult(
            kind=BalanceKind.CASHBACK,
            amount=spend.amount,
            remaining=Balance(kind=BalanceKind.CASHBACK, money=_money(data["remaining"])),
            receipt=Receipt(operation="spend_cashback", engine=self.name, idempotency_key=key,
                            engine_ref=data["spend_id"], amount=spend.amount, replayed=data["replayed"]),
        )

    def export_orders(self, orders, ctx):
        body = {"orders": [{"ref": o.ref, "member_id": o.customer_id, "total": str(o.total.amount)} for o in orders]}
        response = yield EngineRequest("POST", "/orders", json=body, write=True,
                                       idempotency_key=self._key("export:" + ",".join(o.ref for o in orders)),
                                       route="export")
        data = response.json()
        return ExportReport(
            engine=self.name,
            results=tuple(
                OrderExportResult(order_ref=r["ref"], status=ExportStatus(r["status"]),
                                  points_earned=r.get("points"))
                for r in data["results"]
            ),
        )

    def reverse(self, reversal, ctx):
        key = reversal.key
        response = yield EngineRequest(
            "POST", f"/orders/{reversal.order.ref}/reversals",
            json={"kind": reversal.kind.value, "reference": reversal.reference},
            headers={"Idempotency-Key": key} if self._key(key) else None,
            write=True, idempotency_key=self._key(key), route="reverse",
        )
        data = response.json()
        return ReversalResult(
            order_ref=reversal.order.ref,
            kind=reversal.kind,
            points_clawed_back=data["points_clawed_back"],
            receipts=(Receipt(operation="reverse", engine=self.name, idempotency_key=key,
                              engine_ref=data["reversal_id"], replayed=data["replayed"]),),
        )


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def fast_settings(**overrides: Any) -> LoyaltySettings:
    """Kit settings with short deadlines, so failure paths finish quickly."""
    values: dict[str, Any] = {"evaluate_budget": 2.0, "read_deadline": 3.0, "write_deadline": 3.0, "engine": "shop"}
    values.update(overrides)
    return LoyaltySettings(**values)


def basket_dict(**overrides: Any) -> dict[str, Any]:
    """A valid basket as a shop would send it (plain dict)."""
    basket: dict[str, Any] = {
        "id": "b1",
        "currency": CURRENCY,
        "lines": [
            {"id": "l1", "sku": "SKU-1", "quantity": "2", "unit_price": {"amount": "10.00", "currency": CURRENCY}},
            {"id": "l2", "sku": "SKU-2", "quantity": "1", "unit_price": {"amount": "5.50", "currency": CURRENCY}},
        ],
    }
    basket.update(overrides)
    return basket


class FakeEntryPoint:
    """Duck-typed ``importlib.metadata.EntryPoint`` for testing discovery."""

    class _Dist:
        def __init__(self, name: str, version: str) -> None:
            self.name = name
            self.version = version

    def __init__(self, name: str, obj: Any, dist: str = "fake-dist", version: str = "9.9.9",
                 error: Exception | None = None) -> None:
        self.name = name
        # Engine adapters are published in "loyaltykit", observer plugins in "loyaltykit.plugins".
        is_adapter = isinstance(obj, type) and issubclass(obj, EngineAdapter)
        self.group = "loyaltykit" if is_adapter or error is not None else "loyaltykit.plugins"
        self.value = f"fake:{name}"
        self._obj = obj
        self._error = error
        self.dist = self._Dist(dist, version)
        self.loads = 0

    def load(self) -> Any:
        self.loads += 1
        if self._error is not None:
            raise self._error
        return self._obj


def fake_entry_points(*eps: FakeEntryPoint):
    """A replacement for ``importlib.metadata.entry_points`` serving only ``eps``."""
    lock = threading.Lock()

    def entry_points(*, group: str | None = None, **_: Any):
        with lock:
            return [ep for ep in eps if group in (None, ep.group)]

    return entry_points
