"""A stateful fake of CRM.COM's Gen A Web API, written from the public wire reference.

Every documented behaviour cites its source: ``ref §x`` is a section of the reference
(``shared/reference/crmcom.md`` in the project's shared notes) and the key after it (ATL:…, MOCK)
is the vendor page or public mock it cites. Where the reference marks a fact UNCONFIRMED the fake
follows the reference's suggestion (named ``UNCONFIRMED`` beside it) and the adapter keeps it a
setting.

State: accounts (with an access token each, and a wallet), purchases, spend requests, products,
session tokens. Token expiry on demand, a conflict on a duplicate reference, and the generic
faults of :class:`loyaltykit.testing.FakeEngine`.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from loyaltykit import wire
from loyaltykit.testing import FakeEngine

PREFIX = "/crmapi/rest/v2/"  # ref §2.1 [ATL:490411]: http(s)://{host}/crmapi/rest/$version/{module}/{action}
DATE = "%Y-%m-%dT%H:%M:%S"  # ref §2.1 [ATL:491668]; the request format is UNCONFIRMED, assumed the same
CENT = Decimal("0.01")


def _get_path(body: dict[str, Any], path: str) -> Any:
    node: Any = body
    for name in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def guid() -> str:
    return uuid.uuid4().hex.upper()  # ref §2.1 [MOCK]: 32-char uppercase hex ids


def envelope(data: Any, message: str | None = None) -> httpx.Response:
    # ref §2.1 [ATL:500609, MOCK]: {"status": {"code": "OK", "message", "description"}, "data"}
    body = {"status": {"code": "OK", "message": message, "description": None}, "data": data}
    return httpx.Response(200, content=wire.dumps(body), headers={"Content-Type": "application/json"})


class Refused(Exception):
    """A business refusal, answered with the error envelope."""

    def __init__(self, message: str, description: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.description = description


@dataclass
class Account:
    id: str
    number: str
    participant_id: str
    participant_number: str
    wallet_id: str
    wallet_number: str
    balance: Decimal = Decimal(0)
    name: str = "Customer"


@dataclass
class AccessToken:
    id: str
    number: str
    authentication_code: str
    account_id: str
    life_cycle_state: str = "EFFECTIVE"


@dataclass
class Purchase:
    body: dict[str, Any]
    account_id: str
    award: Decimal
    spent: Decimal = Decimal(0)
    inline_spent: Decimal = Decimal(0)  # the spend made with the purchase (create_spend, R17+ create)

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def total(self) -> Decimal:
        return sum((Decimal(line["total_amount"]) for line in self.body["products_set"]), Decimal(0))


@dataclass
class Spend:
    body: dict[str, Any]
    account_id: str
    purchase_id: str


@dataclass(frozen=True)
class InstantOffer:
    """A reward offer whose award is spent instantly on the purchase (ref §1: "instant spend /
    instant discount, driven by an offer"); it shows in the preview's total_instant_spend_amount."""

    percent: Decimal | None = None
    amount: Decimal | None = None
    min_total: Decimal | None = None


@dataclass
class FakeSettings:
    """The fake's own choices where the reference is silent (each UNCONFIRMED)."""

    release: int = 16  # R5-R16: performed_by_unit_identifier is mandatory (ref §2.5 [ATL:520062])
    products_key: str = "products_set"  # UNCONFIRMED request key (ref §2.5 suggestion)
    products_sync_key: str = "products_set"  # UNCONFIRMED (ref §2.9)
    purchase_lookup_filter: str = "reference_number"  # UNCONFIRMED list filter
    spend_lookup_filter: str = "external_system_reference_number"  # UNCONFIRMED
    purchase_cancel_field: str = "customer_event_identifier"  # UNCONFIRMED (ref §2.6)
    cancel_reverses_awards: bool = True  # UNCONFIRMED (ref §2.6)
    cancel_reverses_spends: bool = True  # UNCONFIRMED (ref §2.6): gives back a spend made with the purchase
    create_spend_amount_path: str = "spend_amount"  # UNCONFIRMED body of purchases/create_spend (ref §2.6)
    inside_create_spend_path: str = "spend_request.amount"  # UNCONFIRMED R17+ parameter (ref §2.6, §3)
    error_status: int = 200  # UNCONFIRMED: business errors answer HTTP 200 (ref §2.1 suggestion)
    default_product_code: str = "DEFAULT_PRODUCT"  # ref §1 [MOCK]


class CrmcomFake(FakeEngine):
    """CRM.COM Gen A Web API at the HTTP level."""

    issues_tokens = True  # session tokens from login (ref §2.2); expire_tokens(): the 2 h absolute expiry, on demand

    def __init__(self, web_api_keys: tuple[str, ...] = (), users: dict[str, str] | None = None,
                 settings: FakeSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or FakeSettings()
        self.web_api_keys = set(web_api_keys)
        self.users = dict(users or {})  # username -> password
        self.released: list[str] = []
        self.accounts: dict[str, Account] = {}
        self.access_tokens: dict[str, AccessToken] = {}  # authentication_code -> token
        self.purchases: list[Purchase] = []
        self.spends: list[Spend] = []
        self.products: dict[str, dict[str, Any]] = {}
        self.product_writes: list[str] = []
        self.cashback_percent = Decimal(0)
        self.minimum_spend: Decimal | None = None
        self.maximum_spend: Decimal | None = None
        self.allow_spending = True
        self.instant_offers: list[InstantOffer] = []
        self._numbers = itertools.count(1)
        routes = {
            "authentication/web_api_key/token": ("token", self._web_api_key_token),
            "authentication/token": ("token", self._login),
            "authentication/token/release": ("token_release", self._release),
            "access_tokens/show": ("identify", self._access_token_show),
            "wallets/get_balance": ("wallet", self._get_balance),
            "customer_events/purchases/preview": ("evaluate", self._preview),
            "customer_events/purchases/create": ("export", self._purchase_create),
            "customer_events/purchases/create_spend": ("spend", self._purchase_create_spend),
            "customer_events/purchases/list": ("lookup", self._purchase_list),
            "customer_events/purchases/cancel": ("reverse", self._purchase_cancel),
            "customer_events/spend_requests/create": ("spend", self._spend_create),
            "customer_events/spend_requests/list": ("lookup", self._spend_list),
            "customer_events/spend_requests/cancel": ("reverse", self._spend_cancel),
            "products/synchronise": ("products", self._synchronise),
        }
        for action, (name, handler) in routes.items():
            self.route("POST", re.escape(PREFIX + action), name, self._wrap(handler))

    # -- plumbing --------------------------------------------------------------------------------
    def _dispatch(self, route: Any, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        # From R17 a purchase create that carries a spend is the spend (ref §2.6): faults injected on
        # the "spend" route reach it.
        if route.name == "export" and self.settings.release >= 17:
            try:
                body = wire.loads(request.content) if request.content else None
            except ValueError:
                body = None
            if isinstance(body, dict) and self._inline_spend(body) is not None:
                route = dataclasses.replace(route, name="spend")
        return super()._dispatch(route, request, params)

    def _wrap(self, handler: Callable[[httpx.Request, dict[str, Any]], httpx.Response]
              ) -> Callable[[httpx.Request, dict[str, str]], httpx.Response]:
        def run(request: httpx.Request, params: dict[str, str]) -> httpx.Response:
            try:
                body = wire.loads(request.content) if request.content else {}
            except ValueError:
                return self._refusal(Refused("The request body is not valid JSON"))
            if not isinstance(body, dict):
                return self._refusal(Refused("The request body must be a JSON object"))
            try:
                return handler(request, body)
            except Refused as exc:
                return self._refusal(exc)
        return run

    def _refusal(self, exc: Refused) -> httpx.Response:
        # UNCONFIRMED error envelope (ref §2.1 fake-server suggestion): a code other than "OK".
        body = {"status": {"code": "ERROR", "message": exc.message, "description": exc.description}, "data": None}
        return httpx.Response(self.settings.error_status, content=wire.dumps(body),
                              headers={"Content-Type": "application/json"})

    def error_body(self, route: str) -> httpx.Response:
        return self._refusal(Refused("Injected failure", "fault injection"))

    def unauthorized(self) -> httpx.Response:
        # An unknown or expired session token: the envelope with a failure code (UNCONFIRMED).
        return self._refusal(Refused("Invalid token", "the token is unknown or has expired"))

    def server_error(self, status: int) -> httpx.Response:
        return httpx.Response(status, json={"error": f"injected {status}"})

    def authorize(self, request: httpx.Request, route: str) -> bool:
        if route in ("token",):
            return True
        # ref §2.2 [ATL:491371]: after login the token goes in every request body as "token".
        try:
            token = wire.loads(request.content).get("token")
        except (ValueError, AttributeError):
            return False
        return token in self.tokens

    def _number(self, prefix: str) -> str:
        return f"{prefix}{next(self._numbers):010d}"

    @staticmethod
    def _mandatory(body: dict[str, Any], *names: str) -> None:
        for name in names:
            if body.get(name) in (None, "", [], {}):
                raise Refused(f"{name} is mandatory")

    @staticmethod
    def _amount(value: Any, name: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise Refused(f"{name} must be a number")
        try:
            return Decimal(value)
        except ArithmeticError:
            raise Refused(f"{name} must be a number") from None

    @staticmethod
    def _date(value: Any, name: str) -> None:
        try:
            datetime.strptime(str(value), DATE)  # noqa: DTZ007 (a format check only)
        except ValueError:
            raise Refused(f"{name} must be a date formatted YYYY-MM-DDTHH:MM:SS") from None

    # -- seeding --------------------------------------------------------------------------------
    def add_account(self, authentication_code: str, balance: Decimal = Decimal(0), name: str = "Customer",
                    state: str = "EFFECTIVE") -> Account:
        with self.lock:
            account = Account(id=guid(), number=self._number("ACR"), participant_id=guid(),
                              participant_number=self._number("RP"), wallet_id=guid(),
                              wallet_number=self._number("W"), balance=balance, name=name)
            self.accounts[account.id] = account
            self.access_tokens[authentication_code] = AccessToken(
                id=guid(), number=self._number("AT"), authentication_code=authentication_code,
                account_id=account.id, life_cycle_state=state)
            return account

    def account_of(self, authentication_code: str) -> Account:
        return self.accounts[self.access_tokens[authentication_code].account_id]

    # -- authentication (ref §2.2) --------------------------------------------------------------
    def _web_api_key_token(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # [ATL:494531, ATL:x/1IsH]: the Web API key is the Basic user name with an empty password.
        # Wire quirk (ref §2.2, public PHP clients): base64(KEY) without the colon is accepted too.
        header = request.headers.get("Authorization", "")
        key = None
        if header.startswith("Basic "):
            try:
                key = base64.b64decode(header[6:]).decode().removesuffix(":")
            except ValueError:
                key = None
        if key not in self.web_api_keys:
            raise Refused("Invalid Web API key")
        return self._issue()

    def _login(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # [ATL:494531]: {"username", "password", "organisation", "unit"?} -> data.token
        self._mandatory(body, "username", "password", "organisation")
        if self.users.get(body["username"]) != body["password"]:
            raise Refused("Invalid username or password")
        return self._issue()

    def _issue(self) -> httpx.Response:
        token = secrets.token_hex(32)  # [ATL:532580]: longer than 32 characters
        self.tokens.add(token)
        return envelope({"token": token})

    def _release(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # [ATL:500609]: {"token"} invalidates the token.
        self.tokens.discard(body.get("token"))
        self.released.append(str(body.get("token")))
        return envelope(None)

    # -- customers (ref §2.3, §2.7) -----------------------------------------------------------
    def _resolve(self, body: dict[str, Any]) -> Account:
        # ref §2.3 [ATL:x/5O8H, ATL:974164]: accounts_receivable_identifier with id | number |
        # access_token_identifier {authentication_code}; rewards_participant_identifier is the
        # semi-optional alternative before R17 [ATL:520062].
        ident = body.get("accounts_receivable_identifier")
        if not isinstance(ident, dict):
            ident = body.get("rewards_participant_identifier")
            if not isinstance(ident, dict):
                raise Refused("accounts_receivable_identifier is mandatory")
        medium = ident.get("access_token_identifier")
        if isinstance(medium, dict):
            token = self.access_tokens.get(str(medium.get("authentication_code")))
            if token is None or token.life_cycle_state != "EFFECTIVE":
                raise Refused("Access token not found")
            return self.accounts[token.account_id]
        for account in self.accounts.values():
            if ident.get("id") in (account.id, account.participant_id) or \
                    ident.get("number") in (account.number, account.participant_number):
                return account
        raise Refused("Accounts receivable not found")

    def _access_token_show(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # [ATL:496721]: {token, access_token_identifier, fields_set?} -> the access token
        self._mandatory(body, "access_token_identifier")
        code = body["access_token_identifier"].get("authentication_code")
        token = self.access_tokens.get(str(code))
        if token is None:
            raise Refused("Access token not found")
        return envelope({
            "id": token.id, "number": token.number, "life_cycle_state": token.life_cycle_state,
            "authentication_code": token.authentication_code, "identifier": None,
            "card_masked_number": "*" * max(len(token.authentication_code) - 4, 0) + token.authentication_code[-4:],
        })

    def _get_balance(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # [ATL:490490, ATL:517999]: wallet_identifier | accounts_receivable_identifier -> id, balance
        if isinstance(body.get("wallet_identifier"), dict):
            wanted = body["wallet_identifier"]
            matches = [a for a in self.accounts.values() if wanted.get("id") == a.wallet_id
                       or wanted.get("number") == a.wallet_number]
            if not matches:
                raise Refused("Wallet not found")
            account = matches[0]
        else:
            account = self._resolve(body)
        return envelope({"id": account.wallet_id, "number": account.wallet_number, "balance": account.balance,
                         "alternative_balance": Decimal(0)})

    # -- purchases (ref §2.4, §2.5) -------------------------------------------------------------
    def _lines(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        key = self.settings.products_key
        lines = body.get(key)
        if not isinstance(lines, list) or not lines:
            raise Refused(f"{key} is mandatory")
        result = []
        for index, line in enumerate(lines):
            # ref §2.5 [ATL:x/-4YO]: net_amount, vat_amount, total_amount mandatory; quantity
            # optional, default 1; product_identifier optional from R14 (default product).
            if not isinstance(line, dict):
                raise Refused(f"{key}[{index}] must be an object")
            for name in ("net_amount", "vat_amount", "total_amount"):
                if line.get(name) is None:
                    raise Refused(f"{key}[{index}].{name} is mandatory")
            amounts = {name: self._amount(line[name], f"{key}[{index}].{name}")
                       for name in ("net_amount", "vat_amount", "total_amount")}
            quantity = self._amount(line.get("quantity", 1), f"{key}[{index}].quantity")
            code = (line.get("product_identifier") or {}).get("code")
            product = self.products.get(str(code)) if code else None
            item: dict[str, Any] = {"id": guid(), "quantity": quantity, **amounts}
            if product is None:
                # ref §1 [ATL:499844, MOCK]: an unknown code is booked on the default product and
                # the original value is kept as intended_product_value (R14 [ATL:952096]).
                default = self.settings.default_product_code
                item["product"] = {"id": "DEFAULT", "code": default, "alternative_code": "SRDP",
                                   "description": default}
                item["intended_product_identifier"] = "CODE"
                item["intended_product_value"] = code
            else:
                item["product"] = {"id": product["id"], "code": product["code"],
                                   "alternative_code": product.get("alternative_code"),
                                   "description": product.get("description")}
            result.append(item)
        return result

    def _award(self, lines: list[dict[str, Any]]) -> Decimal:
        total = sum((line["total_amount"] for line in lines), Decimal(0))
        return (total * self.cashback_percent / 100).quantize(CENT, ROUND_HALF_UP)

    def _instant(self, lines: list[dict[str, Any]]) -> Decimal:
        total = sum((line["total_amount"] for line in lines), Decimal(0))
        instant = Decimal(0)
        for offer in self.instant_offers:
            if offer.min_total is not None and total < offer.min_total:
                continue
            if offer.percent is not None:
                instant += (total * offer.percent / 100).quantize(CENT, ROUND_HALF_UP)
            elif offer.amount is not None:
                instant += offer.amount
        return min(instant, total)

    def _check_purchase(self, body: dict[str, Any], *, create: bool) -> tuple[Account, list[dict[str, Any]]]:
        # ref §2.5 [ATL:514482, ATL:520062, ATL:971740]: performed_on mandatory; reference_number
        # mandatory in later revisions; performed_by_unit_identifier mandatory before R17.
        self._mandatory(body, "performed_on")
        self._date(body["performed_on"], "performed_on")
        if create:
            self._mandatory(body, "reference_number")
        if self.settings.release < 17:
            self._mandatory(body, "performed_by_unit_identifier")
        account = self._resolve(body)
        return account, self._lines(body)

    def _preview(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # ref §2.4 [ATL:491359, ATL:x/XIQO, ATL:951388]: input as purchases/create (UNCONFIRMED).
        account, lines = self._check_purchase(body, create=False)
        instant = self._instant(lines)
        total = sum((line["total_amount"] for line in lines), Decimal(0)) - instant
        additional = min(account.balance, total) if self.allow_spending else Decimal(0)
        if self.maximum_spend is not None:
            additional = min(additional, self.maximum_spend)
        return envelope({
            "total_award_amount": self._award(lines),
            "total_award_alternative_amount": Decimal(0),
            "total_instant_spend_amount": instant,
            "total_automatic_spend_amount": Decimal(0),
            "total_additional_spend_amount": max(additional, Decimal(0)),
            "minimum_spend_amount_per_transaction": self.minimum_spend,
            "maximum_spend_amount_per_transaction": self.maximum_spend,
            "reduction_method": "FRONT_END_REDUCTION",
            "rewards_participant_id": account.participant_id,
            "rewards_participant_name": account.name,
            "wallet_balance": account.balance,
            "wallet_alternative_balance": Decimal(0),
            "allow_spending": self.allow_spending,
            "voucher_types_set": [],
        })

    def _purchase_create(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # ref §2.5 [ATL:491359]: creates a POSTED purchase; reward offers award transactions.
        # ref §2.6 [ATL:490411]: from R17 "spending an awarded amount will be available from the
        # existing POST customer_events/purchases/create"; the parameter is UNCONFIRMED (a setting).
        # Before R17 the parameter does not exist, so the fake ignores it as an unknown field.
        spend = self._inline_spend(body) if self.settings.release >= 17 else None
        return self._create(body, spend, "The purchase was created successfully")

    def _purchase_create_spend(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # ref §2.6 [ATL:519072, ATL:490508]: R9 to R16 (deprecated in R17, so still answered) creates
        # the purchase and its spend request together; if either fails, neither is created. Its body
        # is UNCONFIRMED: the purchase's parameters plus the spend amount at a configurable path,
        # optional as spend_requests/create's spend_amount is (default: the purchase total).
        if self.settings.release < 9:
            raise Refused("The method customer_events/purchases/create_spend is not available")
        amount = _get_path(body, self.settings.create_spend_amount_path)
        return self._create(body, "TOTAL" if amount is None else amount, "The purchase was created successfully")

    def _inline_spend(self, body: dict[str, Any]) -> Any:
        return _get_path(body, self.settings.inside_create_spend_path)

    def _create(self, body: dict[str, Any], spend: Any, message: str) -> httpx.Response:
        account, lines = self._check_purchase(body, create=True)
        reference = str(body["reference_number"])
        if any(p.body["reference_number"] == reference for p in self.purchases):
            # UNCONFIRMED whether a repeated reference is refused (ref §5): the fake refuses it,
            # as the reference recommends, so the adapter's reconciliation path is exercised.
            raise Refused("Reference number already exists", "a purchase with this reference_number exists")
        total = sum((line["total_amount"] for line in lines), Decimal(0))
        instant = self._instant(lines)
        amount = Decimal(0)
        if spend is not None:
            # Every check before any change: the purchase and its spend are created together or not at all.
            amount = total - instant if spend == "TOTAL" else self._amount(spend, "spend amount")
            self._check_spend(account, amount, total - instant)
        award = self._award(lines)
        account.balance += award - amount
        awards = []
        if award > 0:
            # MOCK body of ref §2.5: award_reward_transactions_set
            awards.append({"id": guid(), "number": str(next(self._numbers)), "life_cycle_state": "POSTED",
                           "amount": award, "rewards_participant": {
                               "id": account.participant_id, "number": account.participant_number,
                               "accounts_receivable": {"id": account.id, "number": account.number,
                                                       "name": account.name, "life_cycle_state": "ACTIVE"}}})
        data = {
            "id": guid(), "number": self._number("CE"), "life_cycle_state": "POSTED",
            "reference_number": reference,
            "external_system_reference_number": body.get("external_system_reference_number"),
            "performed_on": body["performed_on"],
            "total_awarded_amount": award, "total_spend_amount": Decimal(0),
            "products_set": lines, "award_reward_transactions_set": awards,
        }
        self.purchases.append(Purchase(body=data, account_id=account.id, award=award, spent=instant + amount,
                                       inline_spent=amount))
        return envelope(self._purchase_view(self.purchases[-1]), message)

    def _check_spend(self, account: Account, amount: Decimal, payable: Decimal) -> None:
        # Spend rules (ref §2.4 [ATL:x/XIQO]: allow_spending, the per-transaction minimum and
        # maximum; ref §2.6: a spend settles its purchase, so never more than it costs). The
        # refusal texts are UNCONFIRMED (ref §2.1).
        if amount <= 0:
            raise Refused("spend_amount must be greater than zero")
        if not self.allow_spending:
            raise Refused("Spending is not allowed")
        if self.minimum_spend is not None and amount < self.minimum_spend:
            raise Refused("Spend amount is less than the minimum spend amount per transaction")
        if self.maximum_spend is not None and amount > self.maximum_spend:
            raise Refused("Spend amount is greater than the maximum spend amount per transaction")
        if amount > payable:
            raise Refused("Spend amount is greater than the purchase amount")
        if amount > account.balance:
            raise Refused("Spend amount exceeds the wallet balance")

    def _purchase_view(self, purchase: Purchase) -> dict[str, Any]:
        return {**purchase.body, "total_spend_amount": purchase.spent}

    def _find_purchase(self, ident: Any) -> Purchase:
        if not isinstance(ident, dict):
            raise Refused("purchase_customer_request_identifier is mandatory")
        for purchase in self.purchases:
            if ident.get("id") == purchase.id or ident.get("number") == purchase.body["number"]:
                return purchase
        raise Refused("Purchase customer event not found")

    def _list(self, body: dict[str, Any], filter_name: str, items: list[dict[str, Any]]) -> httpx.Response:
        # ref §2.1 [ATL:499839]: number_of_results at most 50, oldest first.
        size = int(self._amount(body.get("number_of_results", 50), "number_of_results"))
        if not 1 <= size <= 50:
            raise Refused("number_of_results must be between 1 and 50")
        wanted = body.get(filter_name)
        matching = [item for item in items if wanted is None or item.get(filter_name) == wanted]
        return envelope(matching[:size])

    def _purchase_list(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return self._list(body, self.settings.purchase_lookup_filter,
                          [self._purchase_view(p) for p in self.purchases])

    def _purchase_cancel(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # ref §2.6 [ATL:491359]: only POSTED events, one per call. Parameter name UNCONFIRMED.
        name = self.settings.purchase_cancel_field
        self._mandatory(body, name)
        purchase = self._find_purchase(body[name])
        if purchase.body["life_cycle_state"] != "POSTED":
            raise Refused("The customer event is not POSTED")
        purchase.body["life_cycle_state"] = "CANCELLED"
        if self.settings.cancel_reverses_awards:  # UNCONFIRMED what cancel reverses (ref §2.6)
            self.accounts[purchase.account_id].balance -= purchase.award
        if self.settings.cancel_reverses_spends and purchase.inline_spent:  # UNCONFIRMED too
            self.accounts[purchase.account_id].balance += purchase.inline_spent
            purchase.spent -= purchase.inline_spent
            purchase.inline_spent = Decimal(0)
        return envelope(self._purchase_view(purchase))

    # -- spends (ref §2.6) ------------------------------------------------------------------------
    def _spend_create(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # [ATL:512467, ATL:411140301, ATL:490411]: performed_by_unit_identifier and performed_on
        # mandatory; purchase_customer_request_identifier mandatory (the purchase it settles);
        # spend_amount optional (default: the purchase total).
        self._mandatory(body, "performed_by_unit_identifier", "performed_on", "purchase_customer_request_identifier")
        self._date(body["performed_on"], "performed_on")
        account = self._resolve(body)
        purchase = self._find_purchase(body["purchase_customer_request_identifier"])
        if purchase.account_id != account.id:
            raise Refused("The purchase customer event belongs to another accounts receivable")
        if purchase.body["life_cycle_state"] != "POSTED":
            raise Refused("The purchase customer event is not POSTED")
        reference = body.get("external_system_reference_number")
        if reference and any(s.body.get("external_system_reference_number") == reference for s in self.spends):
            raise Refused("Reference number already exists", "a spend request with this reference exists")
        amount = self._amount(body.get("spend_amount", purchase.total), "spend_amount")
        self._check_spend(account, amount, purchase.total - purchase.spent)
        account.balance -= amount
        purchase.spent += amount
        # [ATL:951532, ATL:971433]: the spend request object
        data = {"id": guid(), "number": self._number("SR"), "type": "SPEND REQUEST", "life_cycle_state": "POSTED",
                "performed_on": body["performed_on"], "spend_amount": amount, "instant_spend": False,
                "automatic_spend": False, "reduction_method": "FRONT_END_REDUCTION",
                "external_system": body.get("external_system"), "external_system_reference_number": reference}
        self.spends.append(Spend(body=data, account_id=account.id, purchase_id=purchase.id))
        return envelope(data)

    def _spend_list(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # The list method and its filter are UNCONFIRMED (ref §5 recommends a look-up by reference).
        return self._list(body, self.settings.spend_lookup_filter, [s.body for s in self.spends])

    def _spend_cancel(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # [ATL:490417]: {"token", "customer_event_identifier": {"number"}} -> CANCELLED
        self._mandatory(body, "customer_event_identifier")
        ident = body["customer_event_identifier"]
        spend = next((s for s in self.spends if isinstance(ident, dict)
                      and (ident.get("id") == s.body["id"] or ident.get("number") == s.body["number"])), None)
        if spend is None:
            raise Refused("Spend request not found")
        if spend.body["life_cycle_state"] != "POSTED":
            raise Refused("The customer event is not POSTED")
        spend.body["life_cycle_state"] = "CANCELLED"
        self.accounts[spend.account_id].balance += spend.body["spend_amount"]
        purchase = next(p for p in self.purchases if p.id == spend.purchase_id)
        purchase.spent -= spend.body["spend_amount"]
        return envelope(spend.body)

    # -- products (ref §2.9) ----------------------------------------------------------------------
    def _synchronise(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        # [ATL:495111, ATL:503915, ATL:513419]: create or update, at most 1000 products; code mandatory.
        key = self.settings.products_sync_key
        products = body.get(key)
        if not isinstance(products, list) or not products:
            raise Refused(f"{key} is mandatory")
        if len(products) > 1000:
            raise Refused("At most 1000 products can be synchronised per call")
        for index, product in enumerate(products):
            if not isinstance(product, dict) or not product.get("code"):
                raise Refused(f"{key}[{index}].code is mandatory")
        for product in products:
            existing = self.products.get(product["code"])
            self.products[product["code"]] = {**(existing or {"id": guid()}), **product}
            self.product_writes.append(product["code"])
        return envelope([{"id": self.products[p["code"]]["id"], "code": p["code"]} for p in products])

    # -- reading back -----------------------------------------------------------------------------
    def snapshot(self) -> Any:
        with self.lock:
            return (
                sorted((a.id, a.balance) for a in self.accounts.values()),
                [(p.id, p.body["life_cycle_state"], p.spent) for p in self.purchases],
                [(s.body["id"], s.body["life_cycle_state"]) for s in self.spends],
                sorted(self.products),
            )


__all__ = ["CrmcomFake", "FakeSettings"]
