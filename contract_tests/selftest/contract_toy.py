"""A deliberately small engine, adapter and harness for the suite's self-test.

It speaks a made-up JSON wire format over :class:`loyaltykit.testing.FakeEngine`, with OAuth2
tokens, an HTTP-200 error envelope (``{"ok": false, "error": ...}``) and idempotency keys, and
declares only part of the capabilities, so the self-test can check both "a declared capability
must work" and "an undeclared one must be refused". ``broken_adapters()`` returns the three
mutations the suite must catch.
"""

from __future__ import annotations

import copy
import json
import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import SecretStr

from loyaltykit import (
    Balance,
    BalanceKind,
    Capabilities,
    CodeResult,
    CodeStatus,
    Customer,
    Discount,
    DiscountTarget,
    EngineAdapter,
    EngineClientConfig,
    EngineRequest,
    Evaluation,
    ExportReport,
    ExportStatus,
    IdentifierKind,
    Money,
    OrderExportResult,
    RedemptionResult,
    RedemptionStatus,
    Receipt,
    ReversalResult,
    Service,
    SpendResult,
)
from loyaltykit.auth import OAuth2ClientCredentials
from loyaltykit.errors import ERROR_CODES, EngineError, MalformedResponseError, OutcomeUnknownError
from loyaltykit.testing import EngineBalances, FakeEngine, Fault, RuleSpec, SeededCustomer, VoucherSpec, json_response

BASE = "https://toy.example"
CURRENCY = "EUR"
D = Decimal


class ToyEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.token = "tok-0"
        self.tokens = itertools.count(1)
        self.members: dict[str, dict[str, Any]] = {}
        self.vouchers: dict[str, dict[str, Any]] = {}
        self.rules: list[RuleSpec] = []
        self.earn_per_unit = D(0)
        self.keys: dict[str, Any] = {}  # idempotency key -> stored answer
        self.orders: list[str] = []
        self.order_points: dict[str, tuple[str, Decimal]] = {}
        self.route("POST", "/oauth/token", "token", self._token)
        self.route("GET", "/members", "identify", self._identify)
        self.route("POST", "/evaluate", "evaluate", self._evaluate)
        self.route("POST", "/redeem", "redeem", self._redeem)
        self.route("POST", "/spend", "spend", self._spend)
        self.route("POST", "/orders", "export", self._export)
        self.route("POST", "/reverse", "reverse", self._reverse)

    # -- engine answers ----------------------------------------------------------------------------
    def error_body(self, route: str) -> httpx.Response:
        return json_response({"ok": False, "error": "injected"})

    def authorize(self, request: httpx.Request, route: str) -> bool:
        return route == "token" or request.headers.get("Authorization") == f"Bearer {self.token}"

    def _token(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        return json_response({"access_token": self.token})

    def _identify(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        (kind, value), = request.url.params.items()
        for member_id, member in self.members.items():
            if member["identifiers"].get(kind) == value:
                return json_response({"ok": True, "member": {"id": member_id, **self._public(member)}})
        return json_response({"ok": True, "member": None})

    def _public(self, member: dict[str, Any]) -> dict[str, Any]:
        return {"points": str(member["points"]), "cashback": str(member["cashback"]), "tier": member["tier"]}

    def _voucher_error(self, code: str, customer_id: str | None) -> str | None:
        voucher = self.vouchers.get(code)
        if voucher is None:
            return "voucher_not_found"
        now = datetime.now(UTC)
        if voucher["expires_at"] is not None and voucher["expires_at"] < now:
            return "voucher_expired"
        if voucher["owner_id"] is not None and voucher["owner_id"] != customer_id:
            return "voucher_not_owned"
        limit = voucher["usage_limit"]
        if limit is not None and voucher["used"] >= limit:
            return "voucher_already_redeemed" if limit == 1 else "usage_limit_reached"
        return None

    def _evaluate(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        subtotal = sum(D(line["price"]) * D(line["qty"]) for line in body["lines"])
        discounts = []
        for rule in self.rules:
            if rule.min_subtotal is not None and subtotal < rule.min_subtotal.amount:
                continue
            if rule.kind == "order_percent":
                discounts.append({"amount": str(subtotal * rule.percent / 100), "label": rule.label})
            elif rule.kind == "order_fixed":
                discounts.append({"amount": str(rule.amount.amount), "label": rule.label})
            elif rule.kind == "line_percent":
                for line in body["lines"]:
                    if line["sku"] == rule.sku:
                        amount = D(line["price"]) * D(line["qty"]) * rule.percent / 100
                        discounts.append({"amount": str(amount), "label": rule.label, "line": line["id"]})
        codes = []
        for code in body.get("codes", []):
            error = self._voucher_error(code, body.get("customer_id"))
            codes.append({"code": code, "error": error})
            if error is None:
                discounts.append({"amount": str(self.vouchers[code]["amount"]), "label": code, "code": code})
        return json_response({"ok": True, "discounts": discounts, "codes": codes})

    def _keyed(self, body: dict[str, Any]) -> Any:
        key = body.get("key")
        return self.keys.get(key) if key else None

    def _remember(self, body: dict[str, Any], answer: dict[str, Any]) -> httpx.Response:
        if body.get("key"):
            self.keys[body["key"]] = answer
        return json_response(answer)

    def _redeem(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        if (seen := self._keyed(body)) is not None:
            return json_response({**seen, "replayed": True})
        error = self._voucher_error(body["code"], body.get("customer_id"))
        if error:
            return json_response({"ok": False, "error": error})
        voucher = self.vouchers[body["code"]]
        voucher["used"] += 1
        voucher["redemptions"].append(body.get("order_ref"))
        return self._remember(body, {"ok": True, "id": f"r{len(self.keys)}", "amount": str(voucher["amount"])})

    def _spend(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        if (seen := self._keyed(body)) is not None:
            return json_response({**seen, "replayed": True})
        member = self.members.get(body["customer_id"])
        if member is None:
            return json_response({"ok": False, "error": "customer_not_found"})
        amount = D(body["amount"])
        if amount > member["cashback"]:
            return json_response({"ok": False, "error": "insufficient_balance"})
        member["cashback"] -= amount
        return self._remember(
            body, {"ok": True, "id": f"s{len(self.keys)}", "spent": str(amount), "remaining": str(member["cashback"])}
        )

    def _export(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        results = []
        for order in body["orders"]:
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
            results.append({"ref": order["ref"], "status": "accepted", "points": str(points)})
        return json_response({"ok": True, "results": results})

    def _reverse(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        body = json.loads(request.content)
        if (seen := self._keyed(body)) is not None:
            return json_response({**seen, "replayed": True})
        returned = D(0)
        for spend_ref in body.get("spends", []):
            spent = next((a for a in self.keys.values() if a.get("id") == spend_ref), None)
            if spent is not None and body.get("customer_id") in self.members:
                member = self.members[body["customer_id"]]
                # the spend's amount is what the balance lost: recover it from the stored answer
                amount = D(spent.get("spent", "0"))
                member["cashback"] += amount
                returned += amount
        reinstated = []
        for code in body.get("vouchers", []):
            if code in self.vouchers and self.vouchers[code]["used"] > 0:
                self.vouchers[code]["used"] -= 1
                reinstated.append(code)
        clawed = D(0)
        if body["ref"] in self.order_points:
            customer_id, points = self.order_points[body["ref"]]
            clawed = (points * D(body["fraction"])).quantize(D(1))
            self.members[customer_id]["points"] -= clawed
        return self._remember(
            body, {"ok": True, "returned": str(returned), "clawed": str(clawed), "reinstated": reinstated}
        )


class ToyAdapter(EngineAdapter):
    name = "toy"
    version = "0.1.0"
    capabilities = Capabilities(
        identify_by=frozenset({IdentifierKind.EMAIL, IdentifierKind.EXTERNAL_ID}),
        evaluate=True,
        redeem_voucher=True,
        spend=frozenset({BalanceKind.CASHBACK}),
        export_orders=True,
        cancel=True,
        refund=True,
    )
    send_keys = True  # mutations switch these off
    retry_unkeyed = False
    trust_200 = False

    def client_config(self) -> EngineClientConfig:
        if not hasattr(self, "_config"):
            auth = OAuth2ClientCredentials(f"{BASE}/oauth/token", "toy-client", SecretStr("toy-secret"))
            self._config = EngineClientConfig(engine=self.name, services={"default": Service(BASE, auth)})
        return self._config

    # -- wire helpers ------------------------------------------------------------------------------
    def _check(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code == 401:
            from loyaltykit.errors import AuthFailedError

            raise AuthFailedError("engine refused the credentials")
        payload = response.json()
        if not isinstance(payload, dict):
            raise MalformedResponseError("not an object")
        if payload.get("ok") is False and not self.trust_200:
            error = payload.get("error", "")
            raise ERROR_CODES.get(error, EngineError)(f"engine refused: {error}", engine_code=error)
        return payload

    def _write(self, path: str, body: dict[str, Any], key: str, route: str) -> EngineRequest:
        if self.send_keys:
            return EngineRequest("POST", path, json={**body, "key": key}, write=True, idempotency_key=key, route=route)
        if self.retry_unkeyed:  # claims a key it never sends: the runner re-posts blindly
            return EngineRequest("POST", path, json=body, write=True, idempotency_key=key, route=route)
        return EngineRequest("POST", path, json=body, write=True, route=route)

    # -- operations --------------------------------------------------------------------------------
    def identify(self, identifier, ctx):
        response = yield EngineRequest("GET", "/members", params={identifier.kind.value: identifier.value},
                                       route="identify")
        member = self._check(response)["member"]
        if member is None:
            return None
        return Customer(
            id=member["id"],
            tier=member["tier"],
            balances=(
                Balance(kind=BalanceKind.POINTS, points=D(member["points"])),
                Balance(kind=BalanceKind.CASHBACK, money=Money.of(member["cashback"], CURRENCY)),
            ),
        )

    def evaluate_basket(self, basket, ctx):
        response = yield EngineRequest(
            "POST", "/evaluate", route="evaluate",
            json={"customer_id": basket.customer_id, "codes": list(basket.coupon_codes),
                  "lines": [{"id": l.id, "sku": l.sku, "qty": str(l.quantity), "price": str(l.unit_price.amount)}
                            for l in basket.lines]},
        )
        payload = self._check(response)
        return Evaluation(
            engine=self.name, basket_id=basket.id, currency=basket.currency, customer_id=basket.customer_id,
            subtotal=basket.subtotal,
            discounts=tuple(
                Discount(target=DiscountTarget.LINE if d.get("line") else DiscountTarget.ORDER, line_id=d.get("line"),
                         amount=Money.of(d["amount"], basket.currency), label=d["label"], code=d.get("code"))
                for d in payload["discounts"]
            ),
            codes=tuple(CodeResult(code=c["code"], status=CodeStatus.REJECTED if c["error"] else CodeStatus.ACCEPTED,
                                   reason=c["error"]) for c in payload["codes"]),
        )

    def redeem_voucher(self, redemption, ctx):
        request = self._write("/redeem", {"code": redemption.code, "customer_id": redemption.customer_id,
                                          "order_ref": redemption.order_ref}, redemption.key, "redeem")
        try:
            response = yield request
        except OutcomeUnknownError:
            if not self.retry_unkeyed:
                raise
            response = yield request  # re-post blindly after a lost response
        payload = self._check(response)
        return RedemptionResult(
            code=redemption.code, status=RedemptionStatus.REDEEMED,
            discount=Money.of(payload.get("amount", "0"), CURRENCY),
            receipt=Receipt(operation="redeem_voucher", engine=self.name, idempotency_key=redemption.key,
                            engine_ref=payload.get("id"), code=redemption.code,
                            replayed=bool(payload.get("replayed"))),
        )

    def spend_cashback(self, spend, ctx):
        request = self._write("/spend", {"customer_id": spend.customer_id, "amount": str(spend.amount.amount)}, spend.key, "spend")
        response = yield request
        payload = self._check(response)
        return SpendResult(
            kind=BalanceKind.CASHBACK, amount=spend.amount,
            remaining=Balance(kind=BalanceKind.CASHBACK, money=Money.of(payload["remaining"], CURRENCY))
            if "remaining" in payload else None,
            receipt=Receipt(operation="spend_cashback", engine=self.name, idempotency_key=spend.key,
                            engine_ref=payload.get("id"), amount=spend.amount),
        )

    def export_orders(self, orders, ctx):
        key = "|".join(o.key for o in orders)[:128] if self.send_keys else None
        body = {"orders": [{"ref": o.ref, "customer_id": o.customer_id, "total": str(o.total.amount),
                            **({"key": o.key} if self.send_keys else {})} for o in orders]}
        response = yield EngineRequest("POST", "/orders", json=body, write=True, idempotency_key=key, route="export")
        payload = self._check(response)
        return ExportReport(engine=self.name, results=tuple(
            OrderExportResult(order_ref=r["ref"], status=ExportStatus(r["status"]), reason=r.get("reason"),
                              points_earned=D(r["points"]) if "points" in r else None)
            for r in payload["results"]))

    def reverse(self, reversal, ctx):
        spends = [r.engine_ref for r in reversal.order.receipts if r.operation == "spend_cashback"]
        vouchers = [r.code for r in reversal.order.receipts if r.operation == "redeem_voucher"]
        body = {"ref": reversal.order.ref, "customer_id": reversal.order.customer_id, "spends": spends,
                "vouchers": vouchers,
                "fraction": str(reversal.refunded_fraction())}
        response = yield self._write("/reverse", body, reversal.key, "reverse")
        payload = self._check(response)
        return ReversalResult(order_ref=reversal.order.ref, kind=reversal.kind,
                              points_clawed_back=D(payload["clawed"]),
                              vouchers_reinstated=tuple(payload.get("reinstated", ())),
                              cashback_returned=Money.of(payload["returned"], CURRENCY))


class BurnsTwiceOnRetry(ToyAdapter):
    send_keys = False
    retry_unkeyed = True


class DropsIdempotencyKey(ToyAdapter):
    send_keys = False


class SwallowsErrorBody(ToyAdapter):
    trust_200 = True


class ToyHarness:
    engine = "toy"
    currency = CURRENCY
    adapter_class: type[ToyAdapter] = ToyAdapter

    def __init__(self) -> None:
        self.fake = ToyEngine()
        self.ids = itertools.count(1)

    def make_adapter(self) -> ToyAdapter:
        return self.adapter_class()

    def broken_adapters(self) -> dict[str, Any]:
        return {
            "burns_twice_on_retry": BurnsTwiceOnRetry,
            "drops_idempotency_key": DropsIdempotencyKey,
            "swallows_error_body": SwallowsErrorBody,
        }

    def sync_transport(self) -> httpx.BaseTransport:
        return self.fake.transport()

    def async_transport(self) -> httpx.AsyncBaseTransport:
        return self.fake.transport()

    def create_customer(self, *, identifiers, tier=None, points=D(0), cashback=None) -> SeededCustomer:
        member_id = f"m{next(self.ids)}"
        with self.fake.lock:
            self.fake.members[member_id] = {
                "identifiers": dict(identifiers), "tier": tier, "points": D(points),
                "cashback": cashback.amount if cashback is not None else D(0),
            }
        return SeededCustomer(member_id, dict(identifiers))

    def issue_voucher(self, spec: VoucherSpec) -> str:
        if spec.kind != "fixed":
            raise NotImplementedError("toy vouchers are fixed amounts")
        with self.fake.lock:
            self.fake.vouchers[spec.code] = {
                "amount": spec.amount.amount, "owner_id": spec.owner_id, "expires_at": spec.expires_at,
                "usage_limit": spec.usage_limit, "used": 0, "redemptions": [],
            }
        return spec.code

    def issue_offer(self, customer_id, spec):
        raise NotImplementedError("the toy engine has no wallet")

    def define_earn_rule(self, points_per_unit: Decimal) -> None:
        self.fake.earn_per_unit = points_per_unit

    def define_rule(self, spec: RuleSpec) -> None:
        if spec.kind not in ("order_percent", "order_fixed", "line_percent"):
            raise NotImplementedError(f"the toy engine has no {spec.kind} rules")
        self.fake.rules.append(spec)

    def balances(self, customer_id: str) -> EngineBalances:
        member = self.fake.members[customer_id]
        return EngineBalances(points=member["points"], cashback=Money.of(member["cashback"], CURRENCY))

    def voucher_redemptions(self, code: str) -> int:
        return self.fake.vouchers[code]["used"]

    def orders_received(self) -> list[str]:
        return list(self.fake.orders)

    def snapshot(self) -> Any:
        with self.fake.lock:
            return copy.deepcopy((self.fake.members, self.fake.vouchers, self.fake.orders, self.fake.keys))

    def inject(self, route: str, fault: Fault) -> None:
        self.fake.inject(route, fault)

    def clear_faults(self) -> None:
        self.fake.clear_faults()

    def expire_token(self) -> None:
        self.fake.token = f"tok-{next(self.fake.tokens)}"

    def request_count(self, route: str | None = None) -> int:
        return self.fake.request_count(route)

    def close(self) -> None:
        pass


def make_harness() -> ToyHarness:
    return ToyHarness()


class BareAdapter(ToyAdapter):
    """The toy adapter with nothing declared: every scenario must find NotSupportedError."""

    name = "bare"
    capabilities = Capabilities()


class BareHarness(ToyHarness):
    engine = "bare"
    adapter_class = BareAdapter


def make_bare_harness() -> BareHarness:
    return BareHarness()
