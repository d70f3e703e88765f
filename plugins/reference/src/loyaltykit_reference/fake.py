"""A stateful fake Reference engine, written from the wire format in this package's README
(cited per handler as "README § ..."). ``make_fake("demo")`` is what ``loyaltykit fake reference``
serves."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from loyaltykit import wire
from loyaltykit.testing import FakeEngine, RuleSpec, form_fields

D = Decimal
CLIENT_ID = "reference-client"
CLIENT_SECRET = "reference-secret-7f3a"  # a fake's credential; never a real one
API_KEY = "reference-key-51c0"


def answer(payload: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=wire.dumps(payload), headers={"Content-Type": "application/json"})


def refusal(code: str, message: str, status: int = 200) -> httpx.Response:
    # README § Envelope: {"ok": false, "error": {"code", "message"}}
    return answer({"ok": False, "error": {"code": code, "message": message}}, status)


class ReferenceEngine(FakeEngine):
    """The engine's state in memory. It accepts one OAuth2 client and one API key (README §
    Authentication): the demo credentials above unless others are given."""

    issues_tokens = True  # README § Authentication: OAuth client credentials, bearer tokens

    def __init__(self, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET,
                 api_key: str = API_KEY) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_key = api_key
        self.token_ids = itertools.count(1)
        self.members: dict[str, dict[str, Any]] = {}
        self.vouchers: dict[str, dict[str, Any]] = {}
        self.rules: list[RuleSpec] = []
        self.earn_per_unit = D(0)
        self.keys: dict[str, dict[str, Any]] = {}  # idempotency key -> stored answer
        self.spends: list[dict[str, Any]] = []
        self.orders: list[str] = []
        self.order_points: dict[str, tuple[str, Decimal]] = {}
        self.route("POST", "/oauth/token", "token", self._token)
        self.route("GET", "/members", "identify", self._identify)
        self.route("POST", "/evaluate", "evaluate", self._evaluate)
        self.route("POST", "/redemptions", "redeem", self._redeem)
        self.route("POST", "/spends", "spend", self._spend)
        self.route("GET", "/spends", "lookup", self._find_spends)
        self.route("POST", "/orders", "export", self._export)
        self.route("POST", "/reversals", "reverse", self._reverse)

    # -- README § Authentication -------------------------------------------------------------------
    def authorize(self, request: httpx.Request, route: str) -> bool:
        if route == "token":
            return True
        if request.headers.get("X-Api-Key") == self.api_key:
            return True
        return self.bearer_token_honoured(request)

    def unauthorized(self) -> httpx.Response:
        return refusal("unauthorized", "missing or expired credentials", 401)

    def error_body(self, route: str) -> httpx.Response:
        return refusal("invalid_request", "injected refusal")

    def _token(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        form = form_fields(request)
        if form.get("grant_type") != "client_credentials":
            return refusal("invalid_request", "grant_type must be client_credentials", 400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return refusal("unauthorized", "unknown client", 401)
        token = f"ref-token-{next(self.token_ids)}"
        self.tokens.add(token)
        return answer({"access_token": token, "token_type": "bearer"})

    def shop_settings(self, url: str) -> dict[str, str]:
        return {
            "LOYALTYKIT_ENGINE": "reference",
            "LOYALTYKIT_REFERENCE_BASE_URL": url,
            "LOYALTYKIT_REFERENCE_CLIENT_ID": self.client_id,
            "LOYALTYKIT_REFERENCE_CLIENT_SECRET": self.client_secret,
        }

    # -- README § Endpoints ----------------------------------------------------------------------
    def _body(self, request: httpx.Request) -> dict[str, Any]:
        body = wire.loads(request.content or b"{}")
        return body if isinstance(body, dict) else {}

    def _identify(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        query = dict(request.url.params.items())
        if len(query) != 1 or next(iter(query)) not in ("email", "external_id"):
            return refusal("invalid_request", "one of email, external_id", 400)
        (kind, value), = query.items()
        for member_id, member in self.members.items():
            if member["identifiers"].get(kind) == value:
                return answer({"ok": True, "member": {"id": member_id, "tier": member["tier"],
                                                      "points": member["points"], "cashback": member["cashback"]}})
        return answer({"ok": True, "member": None})

    def _voucher_error(self, code: str, customer_id: str | None, subtotal: Decimal | None) -> str | None:
        voucher = self.vouchers.get(code)
        if voucher is None:
            return "voucher_not_found"
        if voucher["expires_at"] is not None and voucher["expires_at"] < datetime.now(UTC):
            return "voucher_expired"
        if voucher["owner_id"] is not None and voucher["owner_id"] != customer_id:
            return "voucher_not_owned"
        limit = voucher["usage_limit"]
        if limit is not None and voucher["used"] >= limit:
            return "voucher_used" if limit == 1 else "usage_limit_reached"
        if voucher["min_basket"] is not None and subtotal is not None and subtotal < voucher["min_basket"]:
            return "basket_below_minimum"
        return None

    def _evaluate(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = self._body(request)
        lines = body.get("lines") or []
        subtotal = sum((D(line["price"]) * D(line["qty"]) for line in lines), D(0))
        discounts: list[dict[str, Any]] = []
        for rule in self.rules:
            if rule.min_subtotal is not None and subtotal < rule.min_subtotal.amount:
                continue
            if rule.kind == "order_percent" and rule.percent is not None:
                discounts.append({"amount": subtotal * rule.percent / 100, "label": rule.label})
            elif rule.kind == "order_fixed" and rule.amount is not None:
                discounts.append({"amount": rule.amount.amount, "label": rule.label})
            elif rule.kind == "line_percent" and rule.percent is not None:
                for line in lines:
                    if line["sku"] == rule.sku:
                        amount = D(line["price"]) * D(line["qty"]) * rule.percent / 100
                        discounts.append({"amount": amount, "label": rule.label, "line": line["id"]})
        codes = []
        for code in body.get("codes", []):
            error = self._voucher_error(code, body.get("customer_id"), subtotal)
            codes.append({"code": code, "error": error})
            if error is None:
                discounts.append({"amount": self.vouchers[code]["amount"], "label": code, "code": code})
        return answer({"ok": True, "discounts": discounts, "codes": codes})

    def _replay(self, body: dict[str, Any]) -> httpx.Response | None:
        seen = self.keys.get(body.get("key") or "")
        return answer({**seen, "replayed": True}) if seen is not None else None

    def _remember(self, body: dict[str, Any], result: dict[str, Any]) -> httpx.Response:
        if body.get("key"):
            self.keys[body["key"]] = result
        return answer(result)

    def _redeem(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = self._body(request)
        if (replay := self._replay(body)) is not None:
            return replay
        if not body.get("code") or not body.get("order_ref"):
            return refusal("invalid_request", "code and order_ref are required", 400)
        error = self._voucher_error(body["code"], body.get("customer_id"), None)
        if error:
            return refusal(error, "the voucher cannot be redeemed")
        voucher = self.vouchers[body["code"]]
        voucher["used"] += 1
        return self._remember(body, {"ok": True, "id": f"r{len(self.keys) + 1}", "amount": voucher["amount"]})

    def _spend(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        # README § Endpoints: no de-duplication; the same reference posted twice spends twice.
        body = self._body(request)
        member = self.members.get(body.get("customer_id") or "")
        if member is None:
            return refusal("member_not_found", "no such member")
        try:
            amount = D(body["amount"])
        except (KeyError, ArithmeticError, ValueError, TypeError):
            return refusal("invalid_request", "amount is required", 400)
        if amount > member["cashback"]:
            return refusal("insufficient_balance", "the balance does not cover the spend")
        member["cashback"] -= amount
        record = {"id": f"s{len(self.spends) + 1}", "amount": amount, "remaining": member["cashback"],
                  "reference": body.get("reference"), "customer_id": body["customer_id"]}
        self.spends.append(record)
        return answer({"ok": True, "id": record["id"], "amount": amount, "remaining": record["remaining"]})

    def _find_spends(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        reference = request.url.params.get("reference")
        found = [{"id": s["id"], "amount": s["amount"], "remaining": s["remaining"]}
                 for s in self.spends if reference and s["reference"] == reference]
        return answer({"ok": True, "spends": found})

    def _export(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = self._body(request)
        results = []
        for order in body.get("orders", []):
            if order["ref"] in self.orders and order.get("key"):
                results.append({"ref": order["ref"], "status": "duplicate"})
                continue
            member = self.members.get(order.get("customer_id") or "")
            if member is None:
                results.append({"ref": order["ref"], "status": "rejected", "reason": "unknown customer"})
                continue
            points = (D(order["total"]) * self.earn_per_unit).quantize(D(1))
            member["points"] += points
            self.orders.append(order["ref"])
            self.order_points[order["ref"]] = (order["customer_id"], points)
            results.append({"ref": order["ref"], "status": "accepted", "points": points})
        return answer({"ok": True, "results": results})

    def _reverse(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = self._body(request)
        if (replay := self._replay(body)) is not None:
            return replay
        returned = D(0)
        member = self.members.get(body.get("customer_id") or "")
        for spend_id in body.get("spends", []):
            spent = next((s for s in self.spends if s["id"] == spend_id and not s.get("returned")), None)
            if spent is not None and member is not None:
                member["cashback"] += spent["amount"]
                returned += spent["amount"]
                spent["returned"] = True
        reinstated = []
        for code in body.get("vouchers", []):
            if code in self.vouchers and self.vouchers[code]["used"] > 0:
                self.vouchers[code]["used"] -= 1
                reinstated.append(code)
        clawed = D(0)
        if body.get("ref") in self.order_points:
            customer_id, points = self.order_points[body["ref"]]
            clawed = (points * D(str(body.get("fraction", 1)))).quantize(D(1))
            self.members[customer_id]["points"] -= clawed
        return self._remember(body, {"ok": True, "returned": returned, "clawed": clawed, "reinstated": reinstated})

    # -- seeding (the harness and the demo seed use these) -------------------------------------------
    def add_member(self, member_id: str, identifiers: dict[str, str], *, tier: str | None = None,
                   points: Decimal = D(0), cashback: Decimal = D(0)) -> None:
        with self.lock:
            self.members[member_id] = {"identifiers": dict(identifiers), "tier": tier,
                                       "points": D(points), "cashback": D(cashback)}

    def add_voucher(self, code: str, amount: Decimal, *, owner_id: str | None = None,
                    expires_at: datetime | None = None, usage_limit: int | None = 1,
                    min_basket: Decimal | None = None) -> None:
        with self.lock:
            self.vouchers[code] = {"amount": D(amount), "owner_id": owner_id, "expires_at": expires_at,
                                   "usage_limit": usage_limit, "used": 0, "min_basket": min_basket}

    def state(self) -> str:
        with self.lock:
            return json.dumps({"members": self.members, "vouchers": self.vouchers, "spends": self.spends,
                               "orders": self.orders, "keys": self.keys}, default=str, sort_keys=True)

    def snapshot(self) -> str:
        return self.state()


def make_fake(seed: str = "demo") -> ReferenceEngine:
    """A fake, empty (``seed="empty"``) or with demo data (``"demo"``): two members and vouchers."""
    fake = ReferenceEngine()
    if seed == "demo":
        fake.add_member("m1", {"email": "ann@example.com", "external_id": "ext-1"}, tier="gold",
                        points=D(120), cashback=D("15.00"))
        fake.add_member("m2", {"email": "bob@example.com"}, cashback=D("2.50"))
        fake.add_voucher("WELCOME5", D("5.00"), usage_limit=None)
        fake.add_voucher("ANN10", D("10.00"), owner_id="m1")
        fake.rules.append(RuleSpec(kind="order_percent", percent=D(10), label="10% off",
                                   min_subtotal=None))
        fake.earn_per_unit = D(1)
    elif seed != "empty":
        raise ValueError(f"unknown seed {seed!r} (demo, empty)")
    return fake
