"""A stateful fake of MAXXING at the HTTP level, for tests, demos and benchmarks.

Written from the reference notes (``maxxing.md``), not from the adapter:

* **Confirmed** (§1.2, from public Java code calling a MAXXING tenant and the Cohort integration
  page https://docs.getcohort.com/integrations/apps/maxxing): REST calls are
  ``POST /MPCM/Web/api/rest/<apiVersion>/<Server>/<operation>`` with ``Content-Type:
  application/json`` and ``Authorization: Basic base64(user:password)``; each integration API
  user may call only the endpoints whitelisted for it; ``getCustomerByCardKey`` takes
  ``{"storeChain", "card_key"}`` and answers ``{"customer": {"cust_id", "card_key",
  "account_key"}}``; ``getCustomers`` finds customers by e-mail; a customer has a card key and an
  account key; an integration has a store number.
* **Assumed** (§1.3: not public): every other operation, every error code and the error
  envelope ``{"errorCode", "errorMessage"}`` (answered with HTTP 200). These follow the default
  shapes of ``wire.py`` and the default operation names of ``settings.py``; the README lists them.
  Like (as far as anyone publicly knows) MAXXING, the fake does **not** de-duplicate transaction
  keys: a blind re-post burns twice, which is what the contract suite must catch.

State: customers (card and account keys, e-mail, cashback and points on the account), vouchers
(owner, channel issued in, validity, usage limit, burns with the channel burned in), promotion
rules, earn rates, and transactions by key. Faults come from :class:`loyaltykit.testing.FakeEngine`.

Serve it as a process: ``python -m loyaltykit_maxxing.fake --port 8765``.
"""

from __future__ import annotations

import base64
import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, overload

import httpx

from loyaltykit import wire as kit_wire
from loyaltykit.testing import FakeEngine, json_response

from .settings import DEFAULT_OPERATIONS, Operation

CENT = Decimal("0.01")
REST_PREFIX = "/MPCM/Web/api/rest/"

#: Which fault-injection route each named operation answers on.
ROUTE_OF = {
    "customer_by_card": "identify", "customers": "identify", "balances": "lookup",
    "compute": "evaluate", "price_products": "evaluate", "burn_voucher": "redeem", "burn_cashback": "spend",
    "confirm": "export", "cancel": "reverse", "refund": "reverse", "get_transaction": "lookup",
}


class Refused(Exception):
    """A business error, answered in the (assumed) MAXXING error envelope."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class FakeCustomer:
    cust_id: str
    card_key: str
    account_key: str
    email: str | None = None
    cashback: Decimal = Decimal(0)
    points: Decimal = Decimal(0)


@dataclass
class FakeVoucher:
    code: str
    kind: str  # "percent", "fixed" or "item"
    value: Decimal
    sku: str | None = None
    owner: str | None = None
    channel: str = "STORE"  # where it was earned
    valid_from: datetime | None = None
    expires_at: datetime | None = None
    usage_limit: int | None = 1
    min_basket: Decimal | None = None
    burns: list[dict[str, str]] = field(default_factory=list)  # {"transaction_key", "channel", "store"}


@dataclass
class FakeRule:
    kind: str  # order_percent, order_fixed, line_percent, message
    value: Decimal = Decimal(0)
    sku: str | None = None
    min_subtotal: Decimal | None = None
    message: str | None = None
    label: str = "Promotion"
    promo_id: str = ""


class MaxxingFake(FakeEngine):
    def __init__(self, *, username: str = "kit-api-user", password: str = "kit-api-password",
                 store_chain: str = "0", currency: str = "EUR",
                 operations: dict[str, Operation] | None = None,
                 whitelist: set[str] | None = None) -> None:
        super().__init__()
        self.username, self.password = username, password
        self.store_chain, self.currency = store_chain, currency
        #: Operations this API user may call (None: all); reference §1.2, per-user whitelists.
        self.whitelist = whitelist
        self.customers: dict[str, FakeCustomer] = {}
        self.vouchers: dict[str, FakeVoucher] = {}
        self.rules: list[FakeRule] = []
        self.points_per_unit = Decimal(0)
        self.cashback_percent = Decimal(0)
        self.transactions: list[dict[str, Any]] = []  # in order; a key may appear twice (no de-dup)
        self._ids = itertools.count(1)
        self.operations = {**DEFAULT_OPERATIONS, **(operations or {})}
        self._by_path: dict[str, str] = {}
        handlers = {
            "customer_by_card": self._customer_by_card, "customers": self._customers, "balances": self._balances,
            "compute": self._compute, "price_products": self._price_products, "burn_voucher": self._burn_voucher,
            "burn_cashback": self._burn_cashback, "confirm": self._confirm, "cancel": self._cancel,
            "refund": self._refund, "get_transaction": self._get_transaction,
        }
        for name, operation in self.operations.items():
            server, op = operation.path.split("/")
            regex = rf"{REST_PREFIX}(?P<version>[0-9.]+)/{server}/{op}"
            self.route("POST", regex, ROUTE_OF[name], self._wrap(name, handlers[name]))

    # -- seeding ---------------------------------------------------------------------------------
    def add_customer(self, *, card_key: str | None = None, email: str | None = None,
                     cashback: Decimal = Decimal(0), points: Decimal = Decimal(0)) -> FakeCustomer:
        with self.lock:
            n = next(self._ids)
            customer = FakeCustomer(cust_id=f"{100000 + n}", card_key=card_key or f"9250{n:08d}",
                                    account_key=f"A{n:07d}", email=email.lower() if email else None,
                                    cashback=Decimal(cashback), points=Decimal(points))
            self.customers[customer.cust_id] = customer
            return customer

    def add_voucher(self, voucher: FakeVoucher) -> FakeVoucher:
        with self.lock:
            self.vouchers[voucher.code] = voucher
            return voucher

    def add_rule(self, rule: FakeRule) -> FakeRule:
        with self.lock:
            rule.promo_id = rule.promo_id or f"PROMO-{next(self._ids)}"
            self.rules.append(rule)
            return rule

    # -- reading back ----------------------------------------------------------------------------
    def sales(self) -> list[str]:
        with self.lock:
            return [t["order_number"] for t in self.transactions if t["type"] == "SALE"]

    def snapshot(self) -> Any:
        with self.lock:
            return copy.deepcopy((self.customers, self.vouchers, self.transactions))

    # -- HTTP answers ----------------------------------------------------------------------------
    def error_body(self, route: str) -> httpx.Response:
        return json_response({"errorCode": "SERVICE_UNAVAILABLE", "errorMessage": "injected"}, 200)

    def unauthorized(self) -> httpx.Response:
        return json_response({"errorCode": "ACCESS_DENIED", "errorMessage": "Bad credentials"}, 401)

    def authorize(self, request: httpx.Request, route: str) -> bool:
        # Reference §1.2: HTTP Basic, base64(user:password), per integration API user.
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return bool(request.headers.get("Authorization") == f"Basic {expected}")

    def _wrap(self, name: str, handler: Any) -> Any:
        def handle(request: httpx.Request, params: dict[str, str]) -> httpx.Response:
            # Reference §1.2: the body is JSON (Content-Type: application/json).
            if not request.headers.get("Content-Type", "").startswith("application/json"):
                return json_response({"errorCode": "INVALID_REQUEST", "errorMessage": "JSON expected"}, 415)
            if self.whitelist is not None and name not in self.whitelist:
                return json_response({"errorCode": "ACCESS_DENIED", "errorMessage": "endpoint not allowed"}, 403)
            try:
                body = kit_wire.loads(request.content)
            except ValueError:
                return json_response({"errorCode": "INVALID_REQUEST", "errorMessage": "malformed JSON"}, 400)
            try:
                if not isinstance(body, dict):
                    raise Refused("INVALID_REQUEST", "a JSON object is expected")
                if str(body.get("storeChain", "")) != self.store_chain:
                    raise Refused("MISSING_FIELD", "storeChain is missing or unknown")
                return _decimal_json(handler(body))
            except Refused as refused:
                return json_response({"errorCode": refused.code, "errorMessage": refused.message}, 200)
        return handle

    # -- confirmed calls -------------------------------------------------------------------------
    def _customer_by_card(self, body: dict[str, Any]) -> dict[str, Any]:
        # Reference §1.2: body {"storeChain", "card_key"}; answer {"customer": {cust_id, card_key, account_key}}.
        card = _required(body, "card_key")
        found = next((c for c in self.customers.values() if c.card_key == card), None)
        if found is None:
            raise Refused("CARD_NOT_FOUND", "no customer with this card")  # assumed code
        return {"customer": _customer_json(found)}

    def _customers(self, body: dict[str, Any]) -> dict[str, Any]:
        # Reference §1.2: getCustomers finds customers by e-mail; body and answer keys are assumed.
        email = _required(body, "email").lower()
        return {"customers": [_customer_json(c) for c in self.customers.values() if c.email == email]}

    # -- assumed calls ---------------------------------------------------------------------------
    @overload
    def _customer(self, cust_id: Any, required: Literal[True] = True) -> FakeCustomer: ...
    @overload
    def _customer(self, cust_id: Any, required: bool) -> FakeCustomer | None: ...

    def _customer(self, cust_id: Any, required: bool = True) -> FakeCustomer | None:
        if cust_id in (None, ""):
            if required:
                raise Refused("MISSING_FIELD", "cust_id is required")
            return None
        customer = self.customers.get(str(cust_id))
        if customer is None:
            raise Refused("CUSTOMER_NOT_FOUND", "unknown customer")
        return customer

    def _balances(self, body: dict[str, Any]) -> dict[str, Any]:
        customer = self._customer(body.get("cust_id"))
        return {"account_key": customer.account_key, "balances": _balances_json(customer, self.currency)}

    def _currency(self, body: dict[str, Any]) -> None:
        if body.get("currency") != self.currency:
            raise Refused("CURRENCY_MISMATCH", f"the tenant runs in {self.currency}")

    def _lines(self, body: dict[str, Any], required: bool = True) -> list[dict[str, Any]]:
        lines = body.get("lines") or []
        if required and not lines:
            raise Refused("MISSING_FIELD", "lines are required")
        for line in lines:
            for key in ("line_id", "item_code", "quantity", "unit_price"):
                _required(line, key)
        return lines

    def _check_voucher(self, code: str, customer: FakeCustomer | None, lines: list[dict[str, Any]]) -> FakeVoucher:
        voucher = self.vouchers.get(code)
        now = datetime.now(UTC)
        if voucher is None:
            raise Refused("VOUCHER_NOT_FOUND", "unknown voucher")
        if voucher.valid_from and now < voucher.valid_from:
            raise Refused("VOUCHER_NOT_YET_VALID", "voucher not valid yet")
        if voucher.expires_at and now >= voucher.expires_at:
            raise Refused("VOUCHER_EXPIRED", "voucher expired")
        if voucher.owner is not None and (customer is None or customer.cust_id != voucher.owner):
            raise Refused("VOUCHER_NOT_OWNED", "voucher belongs to another customer")
        if voucher.usage_limit is not None and len(voucher.burns) >= voucher.usage_limit:
            if voucher.usage_limit == 1:
                raise Refused("VOUCHER_ALREADY_BURNT", "voucher already burnt")
            raise Refused("VOUCHER_USAGE_LIMIT_REACHED", "voucher used up")
        if voucher.min_basket is not None and lines and _subtotal(lines) < voucher.min_basket:
            raise Refused("VOUCHER_CONDITIONS_NOT_MET", "basket below the voucher's minimum")
        if voucher.kind == "item" and lines and not any(item["item_code"] == voucher.sku for item in lines):
            raise Refused("VOUCHER_CONDITIONS_NOT_MET", "the voucher's product is not in the basket")
        return voucher

    def _voucher_discount(self, voucher: FakeVoucher, lines: list[dict[str, Any]],
                          remaining: Decimal) -> dict[str, Any]:
        if voucher.kind == "item":
            line = next(item for item in lines if item["item_code"] == voucher.sku)
            amount = min(voucher.value, _line_total(line))
            return {"level": "LINE", "line_id": line["line_id"], "amount": money(amount), "code": voucher.code,
                    "label": f"Voucher {voucher.code}"}
        if voucher.kind == "percent":
            return {"level": "ORDER", "amount": money(remaining * voucher.value / 100), "percent": voucher.value,
                    "code": voucher.code, "label": f"Voucher {voucher.code}"}
        return {"level": "ORDER", "amount": money(min(voucher.value, remaining)), "code": voucher.code,
                "label": f"Voucher {voucher.code}"}

    def _promotions(self, lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        discounts, messages = [], []
        for rule in self.rules:
            if rule.kind == "line_percent":
                for line in lines:
                    if line["item_code"] == rule.sku:
                        discounts.append({"level": "LINE", "line_id": line["line_id"], "percent": rule.value,
                                          "amount": money(_line_total(line) * rule.value / 100),
                                          "promo_id": rule.promo_id, "label": rule.label})
        subtotal = _subtotal(lines) - sum((d["amount"] for d in discounts), Decimal(0))
        for rule in self.rules:
            if rule.min_subtotal is not None and _subtotal(lines) < rule.min_subtotal:
                continue
            if rule.kind == "order_percent":
                discounts.append({"level": "ORDER", "amount": money(subtotal * rule.value / 100), "percent": rule.value,
                                  "promo_id": rule.promo_id, "label": rule.label})
            elif rule.kind == "order_fixed":
                discounts.append({"level": "ORDER", "amount": money(min(rule.value, subtotal)),
                                  "promo_id": rule.promo_id, "label": rule.label})
            elif rule.kind == "message":
                messages.append({"text": rule.message or rule.label, "type": "PROMOTION"})
        return discounts, messages

    def _rewards(self, paid: Decimal) -> list[dict[str, Any]]:
        rewards = []
        if self.points_per_unit:
            rewards.append({"type": "POINTS", "amount": (paid * self.points_per_unit).quantize(Decimal(1), ROUND_HALF_UP)})
        if self.cashback_percent:
            rewards.append({"type": "CASHBACK", "amount": money(paid * self.cashback_percent / 100)})
        return rewards

    def _compute(self, body: dict[str, Any]) -> dict[str, Any]:
        self._currency(body)
        lines = self._lines(body)
        _required(body, "transaction_key")
        customer = self._customer(body.get("cust_id"), required=False)
        discounts, messages = self._promotions(lines)
        codes = []
        for code in body.get("codes") or []:
            remaining = _subtotal(lines) - sum((d["amount"] for d in discounts), Decimal(0))
            try:
                voucher = self._check_voucher(str(code), customer, lines)
            except Refused as refused:
                codes.append({"code": code, "status": "REJECTED", "reason_code": refused.code,
                              "message": refused.message})
                continue
            discounts.append(self._voucher_discount(voucher, lines, remaining))
            codes.append({"code": code, "status": "ACCEPTED"})
        paid = max(_subtotal(lines) - sum((d["amount"] for d in discounts), Decimal(0)), Decimal(0))
        return {"discounts": discounts, "codes": codes, "messages": messages, "rewards": self._rewards(paid),
                "balances": _balances_json(customer, self.currency) if customer else []}

    def _price_products(self, body: dict[str, Any]) -> dict[str, Any]:
        self._currency(body)
        products = body.get("products") or []
        if not products:
            raise Refused("MISSING_FIELD", "products are required")
        out = []
        for product in products:
            line = {"line_id": "1", "item_code": _required(product, "item_code"), "quantity": Decimal(1),
                    "unit_price": Decimal(_required(product, "unit_price"))}
            discounts, _ = self._promotions([line])
            line_off = sum((d["amount"] for d in discounts if d["level"] == "LINE"), Decimal(0))
            out.append({"item_code": line["item_code"], "price": line["unit_price"],
                        "discounted_price": line["unit_price"] - line_off,
                        "labels": [d["label"] for d in discounts if d["level"] == "LINE"]})
        return {"products": out}

    def _record(self, body: dict[str, Any], type_: str, **extra: Any) -> dict[str, Any]:
        record = {"transaction_key": _required(body, "transaction_key"), "type": type_, "status": "CONFIRMED",
                  "order_number": body.get("order_number"), "cust_id": body.get("cust_id"),
                  "store": body.get("store"), "channel": body.get("channel"), "rewards": [], "returned": [],
                  "clawed_back": [], "reinstated_codes": [], **extra}
        self.transactions.append(record)
        return record

    def _find(self, key: str) -> dict[str, Any] | None:
        return next((t for t in self.transactions if t["transaction_key"] == key), None)

    def _burn_voucher(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("transaction_key", "order_number", "code", "store", "channel"):
            _required(body, key)
        customer = self._customer(body.get("cust_id"), required=False)
        lines = self._lines(body, required=False)
        voucher = self._check_voucher(str(body["code"]), customer, lines)
        remaining = _subtotal(lines) if lines else voucher.value
        discount = self._voucher_discount(voucher, lines, remaining) if lines or voucher.kind == "fixed" else None
        amount = discount["amount"] if discount else None
        voucher.burns.append({"transaction_key": body["transaction_key"], "channel": body["channel"],
                              "store": str(body["store"])})
        record = self._record(body, "VOUCHER_BURN", code=voucher.code, amount=amount, label=f"Voucher {voucher.code}")
        return {"transaction": _public(record)}

    def _burn_cashback(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("transaction_key", "order_number", "amount", "store", "channel"):
            _required(body, key)
        if body.get("tender") != "CASHBACK":
            raise Refused("INVALID_REQUEST", "tender must be CASHBACK")
        self._currency(body)
        customer = self._customer(body.get("cust_id"))
        amount = Decimal(body["amount"])
        if amount <= 0 or money(amount) != amount:
            raise Refused("INVALID_REQUEST", "amount must be positive, in cents")
        if body.get("amount_due") is not None and amount > Decimal(body["amount_due"]):
            raise Refused("AMOUNT_EXCEEDS_DUE", "more cashback than the order owes")
        if customer.cashback < amount:
            raise Refused("INSUFFICIENT_BALANCE", "not enough cashback")
        customer.cashback -= amount
        record = self._record(body, "CASHBACK_BURN", amount=amount, balance=customer.cashback)
        return {"transaction": _public(record)}

    def _confirm(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("transaction_key", "order_number", "store", "channel", "total", "date"):
            _required(body, key)
        self._currency(body)
        lines = self._lines(body)
        customer = self._customer(body.get("cust_id"), required=False)
        shipping = Decimal(body.get("shipping") or 0)
        paid = max(Decimal(body["total"]) - shipping, Decimal(0))
        rewards = self._rewards(paid) if customer else []
        for reward in rewards:
            assert customer is not None  # rewards only for a known customer
            if reward["type"] == "POINTS":
                customer.points += reward["amount"]
            else:
                customer.cashback += reward["amount"]
        tenders = [dict(t) for t in body.get("tenders") or [] if t.get("type") == "CASHBACK"]
        record = self._record(body, "SALE", amount=Decimal(body["total"]), rewards=rewards,
                              lines=copy.deepcopy(lines), refunded={}, clawed={}, tenders=tenders)
        return {"transaction": _public(record)}

    def _original(self, body: dict[str, Any]) -> dict[str, Any]:
        original = self._find(str(_required(body, "original_transaction_key")))
        if original is None:
            raise Refused("TRANSACTION_NOT_FOUND", "no transaction with this key")
        if original["status"] == "CANCELLED":
            raise Refused("TRANSACTION_ALREADY_CANCELLED", "the transaction is already cancelled")
        return original

    def _claw(self, customer: FakeCustomer | None, original: dict[str, Any], fraction: Decimal) -> list[dict[str, Any]]:
        """Take back the share ``fraction`` (cumulative) of what a sale earned, less what was taken."""
        out = []
        for reward in original["rewards"]:
            kind = reward["type"]
            exp = Decimal(1) if kind == "POINTS" else CENT
            target = (reward["amount"] * fraction).quantize(exp, ROUND_HALF_UP)
            take = target - original["clawed"].get(kind, Decimal(0))
            if take <= 0:
                continue
            original["clawed"][kind] = target
            if customer is not None:
                if kind == "POINTS":
                    customer.points -= take
                else:
                    customer.cashback -= take
            out.append({"type": kind, "amount": take})
        return out

    def _return_tenders(self, customer: FakeCustomer | None, sale: dict[str, Any],
                        fraction: Decimal) -> list[dict[str, Any]]:
        """Give back the share ``fraction`` (cumulative) of the cashback that paid for a sale."""
        total = Decimal(0)
        for tender in sale["tenders"]:
            burn = self._find(str(tender.get("transaction_key")))
            if burn is None or burn["type"] != "CASHBACK_BURN" or burn["status"] == "CANCELLED":
                continue
            target = money(burn["amount"] * fraction)
            give = target - burn.get("refunded_amount", Decimal(0))
            if give <= 0:
                continue
            burn["refunded_amount"] = target
            total += give
        if total and customer is not None:
            customer.cashback += total
        return [{"type": "CASHBACK", "amount": total}] if total else []

    def _cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("transaction_key", "store", "channel"):
            _required(body, key)
        original = self._original(body)
        customer = self.customers.get(str(original.get("cust_id")))
        extra: dict[str, Any] = {"order_number": original.get("order_number")}
        if original["type"] == "VOUCHER_BURN":
            voucher = self.vouchers[original["code"]]
            voucher.burns = [b for b in voucher.burns if b["transaction_key"] != original["transaction_key"]]
            extra.update(code=original["code"], reinstated_codes=[original["code"]])
        elif original["type"] == "CASHBACK_BURN":
            back = original["amount"] - original.get("refunded_amount", Decimal(0))  # refunds gave some back
            assert customer is not None  # a cashback burn names its customer
            customer.cashback += back
            extra.update(amount=back, returned=[{"type": "CASHBACK", "amount": back}] if back else [])
        elif original["type"] == "SALE":
            extra.update(clawed_back=self._claw(customer, original, Decimal(1)))
        else:
            raise Refused("INVALID_REQUEST", f"a {original['type']} transaction cannot be cancelled")
        original["status"] = "CANCELLED"
        record = self._record(body, "CANCEL", **extra)
        record["cust_id"] = original.get("cust_id")
        return {"transaction": _public(record)}

    def _refund(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("transaction_key", "store", "channel", "amount"):
            _required(body, key)
        original = self._original(body)
        if original["type"] != "SALE":
            raise Refused("INVALID_REQUEST", "only a sale can be refunded")
        sold = {item["line_id"]: item for item in original["lines"]}
        wanted = body.get("lines") or []
        if not wanted:
            raise Refused("MISSING_FIELD", "lines are required")
        for line in wanted:
            line_id = str(_required(line, "line_id"))
            quantity = Decimal(_required(line, "quantity"))
            if line_id not in sold or quantity <= 0:
                raise Refused("INVALID_REQUEST", "unknown refund line")
            if original["refunded"].get(line_id, Decimal(0)) + quantity > Decimal(sold[line_id]["quantity"]):
                raise Refused("INVALID_REQUEST", "more refunded than sold")
        for line in wanted:
            line_id = str(line["line_id"])
            original["refunded"][line_id] = original["refunded"].get(line_id, Decimal(0)) + Decimal(line["quantity"])
        value = _subtotal(original["lines"])
        back = sum((Decimal(sold[k]["unit_price"]) * q for k, q in original["refunded"].items()), Decimal(0))
        fraction = back / value if value else Decimal(1)
        customer = self.customers.get(str(original.get("cust_id")))
        record = self._record(body, "REFUND", order_number=original.get("order_number"),
                              amount=Decimal(body["amount"]), clawed_back=self._claw(customer, original, fraction),
                              returned=self._return_tenders(customer, original, fraction))
        record["cust_id"] = original.get("cust_id")
        return {"transaction": _public(record)}

    def _get_transaction(self, body: dict[str, Any]) -> dict[str, Any]:
        record = self._find(str(_required(body, "transaction_key")))
        if record is None:
            raise Refused("TRANSACTION_NOT_FOUND", "no transaction with this key")
        return {"transaction": _public(record)}


# -- helpers -----------------------------------------------------------------------------------

_PUBLIC = ("transaction_key", "type", "status", "order_number", "cust_id", "code", "amount", "label", "balance",
           "rewards", "returned", "clawed_back", "reinstated_codes")


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(record[k]) for k in _PUBLIC if record.get(k) is not None}


def _required(body: dict[str, Any], key: str) -> Any:
    value = body.get(key)
    if value is None or value == "":
        raise Refused("MISSING_FIELD", f"{key} is required")
    return value


def _line_total(line: dict[str, Any]) -> Decimal:
    return Decimal(line["unit_price"]) * Decimal(line["quantity"])


def _subtotal(lines: list[dict[str, Any]]) -> Decimal:
    return sum((_line_total(item) for item in lines), Decimal(0))


def _customer_json(customer: FakeCustomer) -> dict[str, Any]:
    return {"cust_id": customer.cust_id, "card_key": customer.card_key, "account_key": customer.account_key,
            "email": customer.email}


def _balances_json(customer: FakeCustomer, currency: str) -> list[dict[str, Any]]:
    return [{"type": "CASHBACK", "amount": customer.cashback, "currency": currency},
            {"type": "POINTS", "amount": customer.points}]


def _decimal_json(value: Any, status: int = 200) -> httpx.Response:
    """Decimals as JSON numbers with their own digits (the kit's encoder), never through float."""
    return httpx.Response(status, content=kit_wire.dumps(value), headers={"Content-Type": "application/json"})


def main(argv: list[str] | None = None) -> None:
    """Serve the fake on 127.0.0.1 with one demo customer, until interrupted."""
    import argparse
    import time

    from loyaltykit.testing import serve

    parser = argparse.ArgumentParser(description="Serve a fake MAXXING engine over HTTP.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--username", default="kit-api-user")
    parser.add_argument("--password", default="kit-api-password")
    args = parser.parse_args(argv)
    fake = MaxxingFake(username=args.username, password=args.password)
    demo = fake.add_customer(card_key="925000000001", email="ann@example.com", cashback=Decimal("20.00"))
    fake.add_voucher(FakeVoucher(code="STORE5", kind="fixed", value=Decimal(5), owner=demo.cust_id))
    with serve(fake.handle, port=args.port) as served:
        print(f"fake MAXXING on {served.url} (compute and backoffice); demo card 925000000001", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
