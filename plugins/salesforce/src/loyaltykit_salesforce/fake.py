"""A stateful fake of Salesforce Loyalty Management at the HTTP level.

It speaks the documented paths and bodies (the reference's example responses are its templates),
keeps members, currencies, vouchers and transaction journals, enforces bearer tokens that can be
expired on demand, and inherits per-route fault injection from :class:`loyaltykit.testing.FakeEngine`.

Like Salesforce (as far as anything is documented) it does not de-duplicate journals by
ExternalTransactionNumber: a blind re-post is recorded twice, which is what the tests look for.
Documented rules (the Redeem Voucher error table, partial redemption, cart-level distribution,
required fields) are followed with the source cited beside each. Where the reference marks a shape
UNCONFIRMED (simulation ``actionResultSummary``, the eligible-promotions list's top level,
process refusal texts) the fake picks one and the adapter reads it through settings. Serve it over HTTP with ``loyaltykit.testing.serve(fake.handle)``.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import httpx

from loyaltykit import wire
from loyaltykit.money import quantize
from loyaltykit.testing import FakeEngine, form_fields

_V = r"/services/data/v(?P<ver>[0-9]{2}\.[0-9])"
_P = r"(?P<program>[^/]+)"
_M = r"(?P<member>[^/]+)"


def sf_json(payload: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=wire.dumps(payload), headers={"Content-Type": "application/json;charset=UTF-8"}
    )


def sf_error(status: int, code: str, message: str) -> httpx.Response:
    return sf_json([{"message": message, "errorCode": code}], status)


def _d(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError("not a number")
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _distribute(total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """``total`` spread over ``weights`` in minor units, largest remainder first, summing exactly."""
    from loyaltykit.money import exponent

    scale = 10 ** exponent(currency)
    units, parts = int(total * scale), [int(w * scale) for w in weights]
    base = sum(parts)
    if base == 0 or units == 0:
        return [Decimal(0) for _ in weights]
    floors = [units * p // base for p in parts]
    for i in sorted(range(len(parts)), key=lambda i: (units * parts[i]) % base, reverse=True)[: units - sum(floors)]:
        floors[i] += 1
    return [Decimal(f) / scale for f in floors]


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass
class FakeMember:
    id: str
    membership_number: str
    contact_id: str
    email: str | None
    first_name: str = "Member"
    last_name: str = "Test"
    tier: str | None = "Bronze"
    status: str = "Active"
    balances: dict[str, Decimal] = field(default_factory=dict)
    accrued: dict[str, Decimal] = field(default_factory=dict)
    redeemed: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class FakeVoucher:
    id: str
    code: str
    number: str
    member: str
    type: str  # FixedValue | DiscountPercentage
    face_value: Decimal | None
    percent: Decimal | None
    remaining: Decimal | None
    currency: str
    effective: date
    expiration: date | None
    definition: str = "Voucher"
    status: str = "Issued"
    reservation_key: str | None = None
    redeemed_key: str | None = None  # the reservation key the redemption consumed
    use_date: date | None = None
    redemptions: int = 0  # in effect now (a reinstated redemption no longer counts)
    partial: bool = False  # isVoucherPartiallyRedeemable
    reserved_value: Decimal | None = None
    definition_active: bool = True  # isVoucherDefinitionActive

    def live_status(self) -> str:
        if self.status == "Issued" and self.expiration is not None and _today() > self.expiration:
            return "Expired"
        return self.status


@dataclass
class FakeVoucherDefinition:
    """A voucher definition an issue process can issue (type, value, validity, active)."""

    name: str
    type: str  # FixedValue | DiscountPercentage
    face_value: Decimal | None = None
    percent: Decimal | None = None
    valid_days: int | None = 30
    active: bool = True


@dataclass
class FakeJournal:
    id: str
    number: str | None
    type: str
    subtype: str | None
    member: str
    amount: Decimal | None
    currency: str | None
    status: str
    changes: dict[str, Decimal]
    activity: str
    order_ref: str | None = None
    cancelled_by: str | None = None


@dataclass
class FakeRule:
    id: str
    kind: str  # order_percent | order_fixed | line_percent
    percent: Decimal | None
    amount: Decimal | None
    currency: str | None
    sku: str | None
    min_subtotal: Decimal | None
    label: str


class SalesforceFake(FakeEngine):
    """The fake org. ``processes`` maps debit process names to the currency each debits."""

    issues_tokens = True  # OAuth 2.0 client-credentials bearer tokens

    def __init__(
        self,
        *,
        program: str = "NTO Insider",
        client_id: str = "fake-consumer-key",
        client_secret: str = "fake-consumer-secret",
        points_currency: str = "Points",
        qualifying_currency: str = "NTO Qualifying Points",
        cashback_currency: str | None = None,
        processes: dict[str, str] | None = None,
        debit_parameter: str = "PointsToDebit",
        debit_result: str = "PointsDebited",
        order_ref_field: str | None = None,
        currency: str = "EUR",
        replay_redeem_with_key: bool = True,
        issue_process: str = "Issue Voucher",
        tiers: tuple[str, ...] = ("Bronze", "Silver", "Gold"),
        tier_process: str = "update Tier",
    ) -> None:
        super().__init__()
        self.program = program
        self.client_id = client_id
        self.client_secret = client_secret
        self.points_currency = points_currency
        self.qualifying_currency = qualifying_currency
        self.cashback_currency = cashback_currency
        self.processes = processes or {"Debit Points": points_currency}
        self.debit_parameter = debit_parameter
        self.debit_result = debit_result
        self.order_ref_field = order_ref_field
        self.currency = currency
        # UNCONFIRMED engine behaviour, switchable: a repeated Redeem with the reservation key that
        # was redeemed answers 201 again instead of "already redeemed".
        self.replay_redeem_with_key = replay_redeem_with_key
        self.members: dict[str, FakeMember] = {}
        self.vouchers: list[FakeVoucher] = []
        self.issue_process = issue_process
        self.definitions: dict[str, FakeVoucherDefinition] = {}
        self.journals: list[FakeJournal] = []
        self.rules: list[FakeRule] = []
        self.earn_rate: Decimal | None = None
        self.token_count = 0
        self._ids = itertools.count(1)
        self._after_commit: dict[str, list[int]] = {}
        self._no_marker: dict[str, int] = {}

        self._member_update_routes(tiers, tier_process)
        self.route("POST", r"/services/oauth2/token", "token", self._token)
        self.route("GET", _V + rf"/loyalty-programs/{_P}/members", "identify", self._profile)
        self.route("POST", _V + rf"/loyalty-programs/{_P}/individual-member-enrollments", "enrol", self._enrol)
        self.route("GET", _V + r"/query", "lookup", self._query)
        base = _V + rf"/loyalty/programs/{_P}/members/{_M}"
        self.route("GET", base + r"/vouchers", "wallet", self._voucher_list)
        self.route("POST", base + r"/vouchers/(?P<code>[^/]+)/redeem", "release", self._redeem)
        self.route("POST", base + r"/vouchers/(?P<code>[^/]+)/redeem", "redeem", self._redeem)
        self.route("GET", base + r"/transaction-ledger-summary", "lookup", self._ledger)
        self.route("POST", _V + rf"/connect/realtime/loyalty/programs/{_P}", "evaluate", self._realtime)
        self.route("POST", _V + rf"/connect/realtime/loyalty/programs/{_P}", "export", self._realtime)
        self.route("POST", _V + rf"/connect/loyalty/programs/{_P}/program-processes/(?P<process>[^/]+)",
                   "spend", self._process)
        self.route("POST", _V + rf"/connect/loyalty/programs/{_P}/program-processes/(?P<process>[^/]+)",
                   "issue", self._process)
        self.route("POST", _V + r"/global-promotions-management/(?P<kind>promotion-execution|eligible-promotions)",
                   "evaluate", self._promotions)
        self.route("POST", _V + r"/actions/standard/(?P<action>cancelAccrual|cancelRedemption)", "reverse", self._cancel)

    # -- ids ------------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):0>12}"[:18].ljust(18, "A")

    # -- dispatch: one path can serve two engine-neutral routes (chosen by the body) ------------
    def fail_after_commit(self, route: str, status: int = 503, times: int = 1) -> None:
        """The org applies the next ``times`` requests of ``route`` and then answers ``status``
        (a 503 is documented as "unavailable / rate limit", reference 8, and proves nothing about
        whether the write was committed)."""
        with self.lock:
            self._after_commit.setdefault(route, []).extend([status] * times)

    def drop_success_marker(self, route: str, times: int = 1) -> None:
        """The next ``times`` answers of ``route`` are applied but carry no ``status``/``isSuccess``
        member (an answer the adapter must not take as success)."""
        with self.lock:
            self._no_marker[route] = self._no_marker.get(route, 0) + times

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = self._body(request)
        for candidate in self._routes:
            if candidate.method != request.method:
                continue
            match = candidate.pattern.match(path)
            if match and self._accepts(candidate.name, path, body):
                response = self._dispatch(candidate, request, dict(match.groupdict()))
                with self.lock:
                    pending = self._after_commit.get(candidate.name)
                    status = pending.pop(0) if pending and response.status_code < 400 else None
                    strip = self._no_marker.get(candidate.name, 0) > 0 and response.status_code < 400
                    if strip:
                        self._no_marker[candidate.name] -= 1
                if status is not None:
                    return self.server_error(status)
                if strip:
                    body = json.loads(response.content, parse_float=Decimal)
                    for item in body if isinstance(body, list) else [body]:
                        item.pop("status", None)
                        item.pop("isSuccess", None)
                    return sf_json(body, response.status_code)
                return response
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist")

    @staticmethod
    def _body(request: httpx.Request) -> Any:
        try:
            return json.loads(request.content, parse_float=Decimal) if request.content else None
        except ValueError:
            return None

    def _accepts(self, name: str, path: str, body: Any) -> bool:
        if "/program-processes/" in path:
            issuing = unquote(path.rsplit("/", 1)[-1]) == self.issue_process
            return (name == "issue") == issuing
        if "/connect/realtime/" in path:
            simulate = isinstance(body, dict) and (body.get("runSetting") or {}).get("isSimulation") is True
            return (name == "evaluate") == simulate
        if path.endswith("/redeem"):
            reinstate = isinstance(body, dict) and body.get("action") == "Reinstate"
            return (name == "release") == reinstate
        return True

    # -- engine-specific answers --------------------------------------------------------------
    def error_body(self, route: str) -> httpx.Response:
        if route == "reverse":
            return sf_json([{"actionName": "cancelAccrual", "errors": [
                {"statusCode": "UNKNOWN_EXCEPTION", "message": "The action failed.", "fields": []}],
                "isSuccess": False, "outputValues": None}])
        if route == "token":
            return sf_json({"error": "invalid_grant", "error_description": "authentication failure"})
        return sf_json({"message": "The request couldn't be processed.", "status": False})

    def unauthorized(self) -> httpx.Response:
        return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def server_error(self, status: int) -> httpx.Response:
        if status == 401:
            return self.unauthorized()
        if status == 429:
            return sf_error(429, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return sf_error(status, "UNKNOWN_EXCEPTION", "An unexpected error occurred.")

    def authorize(self, request: httpx.Request, route: str) -> bool:
        if route == "token":
            return True
        return self.bearer_token_honoured(request)

    # -- seeding ----------------------------------------------------------------------------------
    def add_member(
        self, *, membership_number: str, email: str | None = None, contact_id: str | None = None,
        tier: str | None = "Bronze", points: Decimal = Decimal(0), cashback: Decimal | None = None,
    ) -> FakeMember:
        with self.lock:
            member = FakeMember(
                id=self._id("0lM"), membership_number=membership_number,
                contact_id=contact_id or self._id("003"), email=email.lower() if email else None, tier=tier,
            )
            member.balances = {self.qualifying_currency: Decimal(0), self.points_currency: Decimal(points)}
            if self.cashback_currency is not None:
                member.balances[self.cashback_currency] = Decimal(cashback or 0)
            self.members[membership_number] = member
            return member

    def add_voucher(
        self, *, member: str, code: str, type: str, face_value: Decimal | None = None,
        percent: Decimal | None = None, effective: date | None = None, expiration: date | None = None,
        definition: str = "Voucher", currency: str | None = None, partial: bool = False,
        definition_active: bool = True,
    ) -> FakeVoucher:
        with self.lock:
            voucher = FakeVoucher(
                id=self._id("0kD"), code=code, number=f"{next(self._ids):08d}", member=member, type=type,
                face_value=face_value, percent=percent, remaining=face_value, currency=currency or self.currency,
                effective=effective or date(2020, 1, 1), expiration=expiration, definition=definition,
                partial=partial, definition_active=definition_active,
            )
            self.vouchers.append(voucher)
            return voucher

    def add_definition(self, definition: FakeVoucherDefinition) -> FakeVoucherDefinition:
        with self.lock:
            self.definitions[definition.name] = definition
            return definition

    def add_rule(self, rule: FakeRule) -> None:
        with self.lock:
            self.rules.append(rule)

    # -- token ------------------------------------------------------------------------------------
    def _token(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        form = form_fields(request)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return sf_json({"error": "unsupported_grant_type", "error_description": "grant type not supported"}, 400)
        if client_id != self.client_id or secret != self.client_secret:
            return sf_json({"error": "invalid_client", "error_description": "invalid client credentials"}, 400)
        self.token_count += 1
        token = f"00DFAKE0000000001!AR8AQ{self.token_count}{secrets.token_hex(8)}"
        self.tokens.add(token)
        instance = f"{request.url.scheme}://{request.url.netloc.decode()}"
        return sf_json({
            "access_token": token, "signature": "nUFHfake=", "token_format": "opaque",
            "instance_url": instance, "id": "https://login.salesforce.com/id/00Dd0000000fake/005d0000000fake",
            "token_type": "Bearer", "issued_at": str(int(datetime.now(UTC).timestamp() * 1000)),
            "scope": "api", "api_instance_url": "https://api.salesforce.com",
        })

    def _program_ok(self, params: dict[str, str]) -> bool:
        return params.get("program") == self.program

    # -- member profile ---------------------------------------------------------------------------
    def _profile(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if not self._program_ok(params):
            return sf_error(404, "NOT_FOUND", "The loyalty program doesn't exist.")
        number = request.url.params.get("membershipNumber")
        member_id = request.url.params.get("memberId")
        if not number and not member_id:
            return sf_error(400, "INVALID_INPUT", "Specify the membershipNumber or memberId parameter.")
        member = self.members.get(number or "") or next(
            (m for m in self.members.values() if m.id == member_id), None
        )
        if member is None:
            return sf_error(404, "NOT_FOUND", "Member not found.")
        return sf_json(self.profile_body(member))

    def profile_body(self, member: FakeMember) -> dict[str, Any]:
        currencies = []
        for name, balance in member.balances.items():
            currencies.append({
                "additionalLoyaltyMemberCurrencyFields": {}, "escrowPointsBalance": Decimal(0),
                "expirablePoints": Decimal(0), "lastAccrualProcessedDate": None, "lastEscrowProcessedDate": None,
                "lastExpirationProcessRunDate": None, "lastPointsAggregationDate": None,
                "lastPointsResetDate": None, "loyaltyMemberCurrencyName": name,
                "loyaltyProgramCurrencyId": "0lcJ8000000CaR7IAK", "loyaltyProgramCurrencyName": None,
                "memberCurrencyId": "0lzJ8000000CaRMIA0", "nextQualifyingPointsResetDate": None,
                "pointsBalance": balance, "qualifyingPointsBalanceBeforeReset": Decimal(0),
                "totalEscrowPointsAccrued": Decimal(0), "totalEscrowRolloverPoints": Decimal(0),
                "totalPointsAccrued": member.accrued.get(name, Decimal(0)), "totalPointsExpired": Decimal(0),
                "totalPointsRedeemed": member.redeemed.get(name, Decimal(0)),
            })
        tiers = []
        if member.tier:
            tiers.append({
                "additionalLoyaltyMemberTierFields": {}, "areTierBenefitsAssigned": False,
                "loyaltyMemberTierId": "0lyJ8000000CaRMIA0", "loyaltyMemberTierName": member.tier,
                "tierChangeReason": None, "tierChangeReasonType": None,
                "tierEffectiveDate": "2021-01-01T00:00:00.000Z", "tierExpirationDate": None,
                "tierGroupId": "0ltJ8000000CaR8IAK", "tierGroupName": None, "tierId": "0lgJ80000008OI5IAM",
                "tierSequenceNumber": 10,
            })
        return {
            "additionalLoyaltyProgramMemberFields": {}, "associatedAccount": None,
            "associatedContact": {"contactId": member.contact_id, "email": member.email,
                                  "firstName": member.first_name, "lastName": member.last_name},
            "canReceivePartnerPromotions": True, "canReceivePromotions": True, "enrollmentChannel": "Email",
            "enrollmentDate": "2021-01-01T00:00:00.000Z", "groupCreatedByMember": None, "groupName": None,
            "lastActivityDate": None, "loyaltyProgramMemberId": member.id, "loyaltyProgramName": self.program,
            "memberCurrencies": currencies, "memberStatus": member.status, "memberTiers": tiers,
            "memberType": "Individual", "membershipEndDate": None, "membershipLastRenewalDate": None,
            "membershipNumber": member.membership_number, "referredBy": None,
            "relatedCorporateMembershipNumber": None, "transactionJournalStatementFrequency": "Monthly",
            "transactionJournalStatementLastGeneratedDate": None, "transactionJournalStatementMethod": "Mail",
        }

    # -- SOQL (the few shapes the adapter sends) -------------------------------------------------
    _SELECT = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)(?:\s+WHERE\s+(?P<where>.+?))?\s*$", re.S | re.I)
    _LIT = r"'(?:[^'\\]|\\.)*'"
    _COND = re.compile(rf"(?P<field>[\w.]+)\s*(?:(?P<eq>=)\s*(?P<value>{_LIT})|IN\s*\((?P<values>\s*{_LIT}(?:\s*,\s*{_LIT})*)\s*\))", re.I)

    @staticmethod
    def _unquote(literal: str) -> str:
        return re.sub(r"\\(.)", r"\1", literal[1:-1])

    def _query(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        soql = request.url.params.get("q") or ""
        match = self._SELECT.match(soql)
        if not match:
            return sf_error(400, "MALFORMED_QUERY", "unexpected token")
        fields = [f.strip() for f in match["fields"].split(",")]
        conditions: list[tuple[str, set[str]]] = []
        where = match["where"] or ""
        position = 0
        while where[position:].strip():
            cond = self._COND.match(where, position)
            if not cond:
                return sf_error(400, "MALFORMED_QUERY", "unexpected token in WHERE")
            if cond["eq"]:
                wanted = {self._unquote(cond["value"])}
            else:
                wanted = {self._unquote(v) for v in re.findall(self._LIT, cond["values"])}
            conditions.append((cond["field"], wanted))
            position = cond.end()
            rest = re.match(r"\s+AND\s+", where[position:], re.I)
            if rest:
                position += rest.end()
            elif where[position:].strip():
                return sf_error(400, "MALFORMED_QUERY", "unexpected token after condition")
        obj = match["obj"]
        if obj == "LoyaltyProgramMember":
            rows = [self._member_row(m) for m in self.members.values()]
        elif obj == "Voucher":
            rows = [{"Id": v.id, "VoucherCode": v.code, "Status": v.live_status()} for v in self.vouchers]
        elif obj == "TransactionJournal":
            rows = [self._journal_row(j) for j in self.journals]
        else:
            return sf_error(400, "INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        for name in [*fields, *(c[0] for c in conditions)]:
            if rows and name not in rows[0] and name not in self._known_fields(obj):
                return sf_error(400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj}'.")
        selected = [r for r in rows if all(r.get(f) in wanted for f, wanted in conditions)]
        out = []
        for row in selected:
            record: dict[str, Any] = {"attributes": {"type": obj, "url": f"/services/data/v65.0/sobjects/{obj}/{row['Id']}"}}
            for name in fields:
                if "." in name:
                    head, tail = name.split(".", 1)
                    record.setdefault(head, {"attributes": {"type": head}})[tail] = row.get(name)
                else:
                    record[name] = row.get(name)
            out.append(record)
        return sf_json({"totalSize": len(out), "done": True, "records": out})

    @staticmethod
    def _known_fields(obj: str) -> set[str]:
        if obj == "LoyaltyProgramMember":
            return {"Id", "MembershipNumber", "MemberStatus", "MemberType", "ContactId", "Contact.Email",
                    "ProgramId", "Program.Name"}
        if obj == "Voucher":
            return {"Id", "VoucherCode", "Status"}
        return {"Id", "ExternalTransactionNumber", "Status", "JournalType.Name", "LoyaltyProgram.Name",
                "Member.MembershipNumber", "TransactionAmount"}

    def _member_row(self, m: FakeMember) -> dict[str, Any]:
        return {"Id": m.id, "MembershipNumber": m.membership_number, "MemberStatus": m.status,
                "MemberType": "Individual", "ContactId": m.contact_id, "Contact.Email": m.email,
                "ProgramId": "0lpT10000004CdN", "Program.Name": self.program}

    def _journal_row(self, j: FakeJournal) -> dict[str, Any]:
        return {"Id": j.id, "ExternalTransactionNumber": j.number, "Status": j.status, "JournalType.Name": j.type,
                "LoyaltyProgram.Name": self.program, "Member.MembershipNumber": j.member,
                "TransactionAmount": j.amount}

    # -- vouchers ---------------------------------------------------------------------------------
    def _voucher_body(self, v: FakeVoucher) -> dict[str, Any]:
        body: dict[str, Any] = {
            "effectiveDate": v.effective.isoformat(), "effectiveDateTime": f"{v.effective.isoformat()}T00:00:00.000Z",
            "expirationDate": v.expiration.isoformat() if v.expiration else None,
            "expirationDateTime": f"{v.expiration.isoformat()}T23:59:59.000Z" if v.expiration else None,
            "isVoucherDefinitionActive": v.definition_active, "isVoucherPartiallyRedeemable": v.partial,
            "hasTimeBasedVoucherPeriod": v.expiration is not None, "status": v.live_status(), "type": v.type,
            "voucherCode": v.code, "voucherDefinition": v.definition, "voucherId": v.id, "voucherNumber": v.number,
        }
        if v.type == "FixedValue":
            body.update({"faceValue": v.face_value, "redeemedValue": (v.face_value or 0) - (v.remaining or 0),
                         "remainingValue": v.remaining})
        else:
            body["discountPercent"] = v.percent
        if v.use_date:
            body["useDate"] = v.use_date.isoformat()
        return body

    def _voucher_list(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if not self._program_ok(params) or params["member"] not in self.members:
            return sf_error(404, "NOT_FOUND", "Member not found.")
        statuses = request.url.params.get("voucherStatus")
        wanted = set(statuses.split(",")) if statuses else None
        mine = [v for v in self.vouchers if v.member == params["member"] and (wanted is None or v.live_status() in wanted)]
        page = int(request.url.params.get("pageNumber") or 1)
        chunk = mine[(page - 1) * 200 : page * 200]
        return sf_json({"voucherCount": len(mine), "vouchers": [self._voucher_body(v) for v in chunk]})

    # Redeem Voucher (reference 4b; developer.salesforce.com/docs/atlas.en-us.loyalty.meta/loyalty/
    # connect_resources_redeem_voucher.htm). Error rows are the resource's documented table
    # ("HTTP response code descriptions unique to this resource", v51 page and later): 400
    # INVALID_API_INPUT with these texts, and 409 ALREADY_REDEEMED_VOUCHER.
    _E_EXPIRED = "The voucher is expired. Specify a voucher that hasn't expired."
    _E_CANCELED = "The voucher is canceled. Specify a voucher that hasn't canceled."
    _E_CODE = "Specify a valid voucher code and try again."
    _E_PROGRAM = "Specify a valid loyalty program name and try again."
    _E_MEMBER = "Specify a valid loyalty program membership number and try again."
    # UNCONFIRMED text; the rule itself is documented: "The voucher definition associated with the
    # voucher code must be active to redeem the voucher."
    _E_DEFINITION = "The voucher definition isn't active. Specify a voucher with an active voucher definition."

    def _redeem(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if not self._program_ok(params):
            return sf_error(400, "INVALID_API_INPUT", self._E_PROGRAM)
        if params["member"] not in self.members:
            return sf_error(400, "INVALID_API_INPUT", self._E_MEMBER)
        body = self._body(request) or {}
        if not isinstance(body, dict):
            return sf_error(400, "JSON_PARSER_ERROR", "The request body is not a JSON object.")
        number = request.url.params.get("voucherNumber")
        candidates = [v for v in self.vouchers if v.member == params["member"] and v.code == params["code"]
                      and (number is None or v.number == number)]
        if not candidates:
            return sf_error(400, "INVALID_API_INPUT", self._E_CODE)
        v = candidates[0]
        action = body.get("action")
        two_phase = float(params["ver"]) >= 62
        # "action ... Required" from v62 (Redeem Voucher input, v62+).
        if two_phase and action not in ("Reserve", "Redeem", "Reinstate"):
            return sf_error(400, "INVALID_API_INPUT", "Specify a valid action: Reserve, Redeem or Reinstate.")
        amount_key = "reservedValue" if action == "Reserve" else "redeemAmount"
        asked = body.get(amount_key)
        if asked is not None:
            try:
                asked = _d(asked)
            except (ValueError, ArithmeticError):
                return sf_error(400, "JSON_PARSER_ERROR", f"{amount_key} is not a number.")
            # redeemAmount: "only applicable for vouchers issued using Fixed Value voucher definitions";
            # partial amounts need a partially redeemable definition (isVoucherPartiallyRedeemable).
            if v.type != "FixedValue" or (not v.partial and asked != v.remaining):
                return sf_error(400, "INVALID_API_INPUT", "The voucher can't be partially redeemed.")
            if asked <= 0 or asked > (v.remaining or Decimal(0)):
                return sf_error(400, "INVALID_API_INPUT", "The redeem amount exceeds the voucher's remaining value.")
        status = v.live_status()
        if action == "Reinstate":
            if status not in ("Reserved", "Redeemed"):
                return sf_error(400, "INVALID_API_INPUT", "The voucher isn't reserved or redeemed.")
            if status == "Redeemed":
                v.redemptions -= 1
            v.status, v.reservation_key, v.redeemed_key, v.use_date = "Issued", None, None, None
            v.remaining = v.face_value
            if v.live_status() == "Expired":
                return sf_json({"status": "Expired"}, 201)  # documented: Reinstate after expiry
            return sf_json({"remainingAmount": v.remaining or Decimal(0), "status": "Issued"}, 201)
        if not v.definition_active:
            return sf_error(400, "INVALID_API_INPUT", self._E_DEFINITION)
        if status == "Reserved" and action == "Redeem":
            if body.get("reservationKey") != v.reservation_key:
                return sf_error(400, "INVALID_API_INPUT", "The reservation key doesn't match the reserved voucher.")
        elif status == "Redeemed":
            key = body.get("reservationKey")
            if action == "Redeem" and self.replay_redeem_with_key and key and key == v.redeemed_key:
                return sf_json({"remainingAmount": v.remaining or Decimal(0), "status": "Redeemed",
                                "currencyIsoCode": v.currency}, 201)
            return sf_error(409, "ALREADY_REDEEMED_VOUCHER", "The voucher is already redeemed.")
        elif status == "Reserved":
            # A voucher reserved under another key: the answer for this case is UNCONFIRMED.
            return sf_error(409, "ALREADY_REDEEMED_VOUCHER", "The voucher is reserved.")
        elif status == "Expired":
            return sf_error(400, "INVALID_API_INPUT", self._E_EXPIRED)
        elif status == "Cancelled":
            return sf_error(400, "INVALID_API_INPUT", self._E_CANCELED)
        elif status != "Issued":
            return sf_error(400, "INVALID_API_INPUT", self._E_CODE)
        elif _today() < v.effective:
            return sf_error(400, "INVALID_API_INPUT", "The voucher isn't effective yet.")
        if action == "Reserve":
            v.status, v.reservation_key = "Reserved", body.get("reservationKey")
            v.reserved_value = asked
            return sf_json({"reservationKey": v.reservation_key, "reservedValue": asked if asked is not None else (v.remaining or Decimal(0)),
                            "status": "Reserved", "currencyIsoCode": v.currency}, 201)
        if asked is None and status == "Reserved":
            asked = v.reserved_value
        v.redeemed_key = v.reservation_key if status == "Reserved" else None
        v.reservation_key, v.use_date = None, _today()
        if v.remaining is not None:
            # "If omitted, the whole value is redeemed and remaining becomes 0."
            v.remaining = v.remaining - asked if asked is not None else Decimal(0)
        # A partially redeemed voucher with value left stays usable (Issued); UNCONFIRMED status name.
        v.status = "Issued" if v.remaining is not None and v.remaining > 0 else "Redeemed"
        v.redemptions += 1
        if not two_phase:
            return sf_json({"remainingAmount": v.remaining or Decimal(0), "currencyIsoCode": v.currency}, 201)
        return sf_json({"remainingAmount": v.remaining or Decimal(0), "status": "Redeemed",
                        "currencyIsoCode": v.currency}, 201)

    # -- transaction journals -----------------------------------------------------------------
    def _journal_member(self, journal: dict[str, Any]) -> FakeMember | None:
        number = journal.get("MembershipNumber")
        if number in self.members:
            return self.members[number]
        return next((m for m in self.members.values() if m.id == journal.get("MemberId")), None)

    def _earn(self, amount: Decimal) -> Decimal:
        return amount * self.earn_rate if self.earn_rate is not None else Decimal(0)

    def _realtime(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if not self._program_ok(params):
            return sf_error(404, "NOT_FOUND", "The loyalty program doesn't exist.")
        body = self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("transactionJournals"), list) or not body["transactionJournals"]:
            return sf_error(400, "JSON_PARSER_ERROR", "transactionJournals is required.")
        simulate = (body.get("runSetting") or {}).get("isSimulation") is True
        journals = body["transactionJournals"]
        for journal in journals:
            # ActivityDate is required on TransactionJournal (sforce_api_objects_transactionjournal.htm;
            # reference 5a). Business refusals answer HTTP 200 with status:false and a message
            # (Loyalty Engine Realtime Output: "status ... whether the request succeeded").
            if not isinstance(journal, dict) or not journal.get("ActivityDate"):
                return sf_error(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [ActivityDate]")
            if self._journal_member(journal) is None:
                return self._failed("No member found for the transaction journal.")
            if journal.get("LoyaltyProgramName") not in (None, self.program):
                return self._failed("The loyalty program doesn't match.")
            if journal.get("JournalTypeName") != "Accrual":
                return self._failed("No active realtime process matches the journal type.")
            try:
                _d(journal.get("TransactionAmount"))
            except (ValueError, ArithmeticError):
                return sf_error(400, "INVALID_INPUT", "TransactionAmount is not a number.")
        if simulate:
            return sf_json(self._simulation(journals))
        results, balances = [], {}
        for journal in journals:
            member = self._journal_member(journal)
            assert member is not None
            points = self._earn(_d(journal["TransactionAmount"]))
            changes = {self.points_currency: points, self.qualifying_currency: points}
            record = self._record(journal, member, "Accrual", "Processed", changes)
            results.append({
                "id": record.id,
                "changeInMemberPoints": [{"changeInMemberCurrencies": [
                    {"changeInEscrowPointsBalance": Decimal("0.0"), "changeInPointsBalance": delta,
                     "currencyName": name, "currencyType": "Qualifying" if name == self.qualifying_currency else "NonQualifying",
                     "promotionId": "NA"} for name, delta in changes.items()], "memberShipNumber": member.membership_number}],
                "voucherResult": None,
            })
            balances[member.membership_number] = member
        return sf_json({
            "message": None,
            "processResult": {
                "memberPointsBalance": [{"memberCurrencies": [
                    {"currencyName": name, "currencyType": "Qualifying" if name == self.qualifying_currency else "NonQualifying",
                     "escrowPointsBalance": Decimal("0.0"), "pointsBalance": value}
                    for name, value in m.balances.items()], "memberShipNumber": number} for number, m in balances.items()],
                "transactionJournalResult": results,
            },
            "programName": self.program,
            "simulationResults": None,
            "status": True,
        })

    def _simulation(self, journals: list[dict[str, Any]]) -> dict[str, Any]:
        out = []
        for journal in journals:
            points = self._earn(_d(journal["TransactionAmount"]))
            rules: list[dict[str, Any]] = []
            if self.earn_rate is not None:
                # actionResultSummary's shape is UNCONFIRMED; this is the shape the settings default to.
                rules.append({"processRuleName": "Earn Points", "previousRuleName": None, "promotionName": None,
                              "executionStatus": "Success", "errorMessage": None, "executionSummary": None,
                              "ruleSteps": [], "actionResultSummary": {"currencyName": self.points_currency,
                                                                       "points": points}})
            out.append({"processId": "0lpT10000004CdN", "processName": "Accrual Process",
                        "errorMessage": None if rules else "No rules are configured for the process.",
                        "executionSummary": None, "processRules": rules})
        return {"message": None, "processResult": None, "programName": self.program,
                "simulationResults": {"transactionJournals": out}, "status": True}

    def _failed(self, message: str) -> httpx.Response:
        return sf_json({"message": message, "processResult": None, "programName": self.program,
                        "simulationResults": None, "status": False})

    def _record(self, journal: dict[str, Any], member: FakeMember, jtype: str, status: str,
                changes: dict[str, Decimal]) -> FakeJournal:
        for name, delta in changes.items():
            member.balances[name] = member.balances.get(name, Decimal(0)) + delta
            book = member.accrued if delta > 0 else member.redeemed
            book[name] = book.get(name, Decimal(0)) + abs(delta)
        amount = journal.get("TransactionAmount")
        record = FakeJournal(
            id=self._id("0lV"), number=journal.get("ExternalTransactionNumber"), type=jtype,
            subtype=journal.get("JournalSubTypeName"), member=member.membership_number,
            amount=_d(amount) if amount not in (None, "") else None, currency=journal.get("CurrencyIsoCode"),
            status=status, changes=dict(changes), activity=str(journal.get("ActivityDate")),
            order_ref=journal.get(self.order_ref_field) if self.order_ref_field else None,
        )
        self.journals.append(record)
        return record

    # -- program processes (debit) ------------------------------------------------------------
    # Loyalty Program Process (connect_resources_process_name.htm; reference 6a, 5c): input
    # {"processParameters": [...]}, output {message, outputParameters.outputParameters.results,
    # simulationDetails, status}; a refusal is HTTP 200 with status:false and a message (texts
    # UNCONFIRMED: these are the fake's, matched by the adapter's error_patterns setting).
    def _process(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if not self._program_ok(params):
            return sf_error(404, "NOT_FOUND", "The loyalty program doesn't exist.")
        if params["process"] == self.issue_process:
            return self._issue(request)
        currency = self.processes.get(params["process"])
        if currency is None:
            return sf_error(404, "NOT_FOUND", "The program process doesn't exist or isn't active.")
        body = self._body(request)
        try:
            inputs = body["processParameters"][0]
            journal = inputs["TransactionJournal"]
            amount = _d(inputs[self.debit_parameter])
        except (KeyError, IndexError, TypeError, ValueError, ArithmeticError):
            return sf_error(400, "INVALID_INPUT", "The process parameters are invalid.")
        member = self._journal_member(journal)
        if member is None:
            return self._process_failed("No member found with the specified membership number.")
        if amount <= 0:
            return self._process_failed("Points to debit must be greater than zero.")
        if member.balances.get(currency, Decimal(0)) < amount:
            return self._process_failed("Insufficient points balance for the member.")
        self._record(journal, member, journal.get("JournalTypeName") or "Redemption", "Processed", {currency: -amount})
        return sf_json({"message": None, "outputParameters": {"outputParameters": {"results": [
            {self.debit_result: amount}]}}, "simulationDetails": {}, "status": True})

    # The issue-voucher process (reference 4c, 6a): an org-configured process, so its parameter names are
    # the org's. The fake takes the public SFCC cartridge's ("Issue Voucher" with MemberId, VoucherCode,
    # VoucherFaceValue, VoucherExpirationDate; MembershipNumber by the interchangeable-field rule, § 0)
    # plus VoucherDefinition naming what to issue (UNCONFIRMED, the adapter's settings default). The
    # member and the definition are required; a missing one is the documented 400 of bad input (§ 8),
    # an unknown one a status:false refusal (§ 6a; texts UNCONFIRMED). Voucher codes may repeat (4b:
    # "voucherNumber when several vouchers share one code"), so the fake never refuses a known code.
    # The output's result fields are UNCONFIRMED: the fake answers VoucherId, VoucherCode, VoucherNumber.
    _E_DEFINITION_UNKNOWN = "The voucher definition doesn't exist or isn't active."

    def _issue(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        try:
            inputs = body["processParameters"][0]
            member_ref = inputs.get("MembershipNumber") or inputs.get("MemberId")
            definition_name = inputs["VoucherDefinition"]
            if not member_ref or not isinstance(definition_name, str) or not definition_name:
                raise KeyError("required")
            face_value = _d(inputs["VoucherFaceValue"]) if inputs.get("VoucherFaceValue") is not None else None
            expiry = inputs.get("VoucherExpirationDate")
            expiration = date.fromisoformat(expiry) if expiry is not None else None
        except (KeyError, IndexError, TypeError, ValueError, ArithmeticError, AttributeError):
            return sf_error(400, "INVALID_INPUT", "The process parameters are invalid.")
        with self.lock:
            member = self.members.get(member_ref) or next(
                (m for m in self.members.values() if m.id == member_ref), None)
            if member is None:
                return self._process_failed("No member found with the specified membership number.")
            definition = self.definitions.get(definition_name)
            if definition is None or not definition.active:
                return self._process_failed(self._E_DEFINITION_UNKNOWN)
            if face_value is not None and (definition.type != "FixedValue" or face_value <= 0):
                return self._process_failed("The voucher face value is invalid for this voucher definition.")
            if expiration is None and definition.valid_days is not None:
                expiration = _today() + timedelta(days=definition.valid_days)
            code = inputs.get("VoucherCode") or f"V{next(self._ids):09d}"
            voucher = self.add_voucher(
                member=member.membership_number, code=str(code), type=definition.type,
                face_value=face_value if face_value is not None else definition.face_value,
                percent=definition.percent, effective=_today(), expiration=expiration, definition=definition.name,
            )
        return sf_json({"message": None, "outputParameters": {"outputParameters": {"results": [
            {"VoucherId": voucher.id, "VoucherCode": voucher.code, "VoucherNumber": voucher.number}]}},
            "simulationDetails": {}, "status": True})

    @staticmethod
    def _process_failed(message: str) -> httpx.Response:
        return sf_json({"message": message, "outputParameters": None, "simulationDetails": {}, "status": False})

    # -- member updates: the ChangeMemberTier program process ---------------------------------
    # Reference 6a (Loyalty Program Process, connect_resources_process_name.htm) and 7 ("Change a
    # tier with the ChangeMemberTier process ... {"processParameters":[{"MemberId":"0lM...",
    # "NewTier":"Gold","ReasonForChange":"..."}]}", a mirrored copy of the Salesforce doc). The
    # process runs under the name an admin gave it, and only while active (6a, slysly LEARNINGS.md);
    # MemberId and MembershipNumber are interchangeable (0, loyalty-connect-interchangeable-request-
    # fields). Its output and refusal texts are UNCONFIRMED: the fake answers the documented
    # process envelope (status, message) with its own texts.
    def _member_update_routes(self, tiers: tuple[str, ...], tier_process: str) -> None:
        self.tiers = tiers
        self.tier_process = tier_process
        self.tier_process_active = True
        self.tier_changes: list[tuple[str, str, str]] = []  # (membership number, tier, reason)
        # Registered before the generic process route so this process name is served here.
        self.route("POST", _V + rf"/connect/loyalty/programs/{_P}/program-processes/{re.escape(tier_process)}",
                   "update_member", self._change_tier)

    def _change_tier(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if not self._program_ok(params):
            return sf_error(404, "NOT_FOUND", "The loyalty program doesn't exist.")
        if not self.tier_process_active:  # 6a: the process and its rule must be active
            return sf_error(404, "NOT_FOUND", "The program process doesn't exist or isn't active.")
        body = self._body(request)
        try:
            inputs = body["processParameters"][0]
            member_key = inputs.get("MemberId") or inputs.get("MembershipNumber")
            # The documented example sends all three inputs and says none is optional: each is required here.
            tier, reason = inputs["NewTier"], inputs["ReasonForChange"]
            if not all(isinstance(v, str) and v for v in (member_key, tier, reason)):
                raise ValueError("missing parameter")
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            return sf_error(400, "INVALID_INPUT", "The process parameters are invalid.")
        member = self.members.get(member_key) or next((m for m in self.members.values() if m.id == member_key), None)
        if member is None:
            return self._process_failed("No member found with the specified member ID.")
        if tier not in self.tiers:
            return self._process_failed("The specified tier doesn't exist in the program's tier group.")
        member.tier = tier
        self.tier_changes.append((member.membership_number, tier, reason))
        return sf_json({"message": None, "outputParameters": {"outputParameters": {"results": [{}]}},
                        "simulationDetails": {}, "status": True})

    # -- cancellation actions -----------------------------------------------------------------
    def _cancel(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        action = params["action"]
        body = self._body(request)
        try:
            inputs = body["inputs"][0]
            journal_id = inputs["TransactionJournalId"]
        except (KeyError, IndexError, TypeError):
            return self._action_failed(action, "REQUIRED_FIELD_MISSING", "TransactionJournalId is required.", 400)
        # cancelAccrual / cancelRedemption inputs: TransactionJournalId and CancellationReason
        # (loyalty-actions-cancel-accrual.html, loyalty-actions-cancel-redemption.html; reference 7).
        if not inputs.get("CancellationReason"):
            return self._action_failed(action, "REQUIRED_FIELD_MISSING", "CancellationReason is required.", 400)
        journal = next((j for j in self.journals if j.id == journal_id), None)
        if journal is None:
            return self._action_failed(action, "INVALID_ID_FIELD", "The transaction journal doesn't exist.", 400)
        expected = "Accrual" if action == "cancelAccrual" else "Redemption"
        if journal.type != expected:
            return self._action_failed(action, "INVALID_INPUT", f"The journal isn't a {expected} journal.", 400)
        if journal.status == "Cancelled":
            return self._action_failed(action, "INVALID_INPUT", "The transaction journal is already cancelled.", 400)
        member = self.members[journal.member]
        reversal = {name: -delta for name, delta in journal.changes.items()}
        record = self._record({"ActivityDate": datetime.now(UTC).isoformat()}, member, "Cancellation", "Processed", reversal)
        journal.status, journal.cancelled_by = "Cancelled", record.id
        return sf_json([{"actionName": action, "errors": None, "isSuccess": True,
                         "outputValues": {"CancellationTransactionJournalId": record.id}}])

    @staticmethod
    def _action_failed(action: str, code: str, message: str, status: int) -> httpx.Response:
        return sf_json([{"actionName": action, "errors": [{"statusCode": code, "message": message, "fields": []}],
                         "isSuccess": False, "outputValues": None}], status)

    # -- enrolment ------------------------------------------------------------------------------
    # Individual Member Enrollment (../shared/reference/salesforce_loyalty.md § 2c): the SDK model
    # requires enrollmentDate, membershipNumber, associatedContactDetails.lastName, memberStatus and
    # additionalMemberFieldValues; the answer carries contactId, loyaltyProgramMemberId,
    # membershipNumber and the enrolment journal (201: status UNCONFIRMED). A taken membership
    # number and a duplicate contact (allowDuplicateRecords false) are refused with the fake's codes
    # DUPLICATE_VALUE / DUPLICATES_DETECTED (UNCONFIRMED; the adapter's enrol_duplicate_email_codes).
    def _enrol(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if not self._program_ok(params):
            return sf_error(404, "NOT_FOUND", "The loyalty program doesn't exist.")
        body = self._body(request)
        contact = body.get("associatedContactDetails") if isinstance(body, dict) else None
        required = ("enrollmentDate", "membershipNumber", "memberStatus", "additionalMemberFieldValues")
        if not isinstance(contact, dict) or not contact.get("lastName") or any(not body.get(k) and body.get(k) != {}
                                                                                 for k in required):
            return sf_error(400, "INVALID_INPUT", "Required fields are missing: enrollment details.")
        number = str(body["membershipNumber"])
        email = str(contact.get("email") or "").lower() or None
        with self.lock:
            if number in self.members:
                return sf_error(400, "DUPLICATE_VALUE", "A member with this membership number already exists.")
            allow = str(contact.get("allowDuplicateRecords", "false")).lower() == "true"
            if email and not allow and any(m.email == email for m in self.members.values()):
                return sf_error(400, "DUPLICATES_DETECTED", "Use one of these records?")
            member = self.add_member(membership_number=number, email=email)
            member.first_name = contact.get("firstName") or member.first_name
            member.last_name = contact["lastName"]
        return sf_json({
            "contactId": member.contact_id, "loyaltyProgramMemberId": member.id, "loyaltyProgramName": self.program,
            "membershipNumber": number,
            "transactionJournals": [{"activityDate": body["enrollmentDate"], "journalSubType": "Member Enrollment",
                                     "journalType": "Accrual", "loyaltyProgram": self.program,
                                     "loyaltyProgramMember": number, "referredMember": None, "status": "Pending",
                                     "transactionJournalId": self._id("0lV")}],
        }, 201)

    # -- ledger summary -------------------------------------------------------------------------
    def _ledger(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if not self._program_ok(params) or params["member"] not in self.members:
            return sf_error(404, "NOT_FOUND", "Member not found.")
        # Reference § 5d: journalTypeName filter, pageNumber (200 per page), and
        # additionalTransactionJournalAttributes naming journal fields returned as
        # additionalAttributes [{fieldName, value}] (connect-resources-transaction-ledger).
        query = request.url.params
        jtype = query.get("journalTypeName")
        try:
            page = int(query.get("pageNumber", "1"))
        except ValueError:
            return sf_error(400, "INVALID_INPUT", "pageNumber must be a number.")
        if page < 1:
            return sf_error(400, "INVALID_INPUT", "pageNumber must be a number.")
        wanted = [f for f in (query.get("additionalTransactionJournalAttributes") or "").split(",") if f]
        rows = [j for j in self.journals if j.member == params["member"] and (jtype is None or j.type == jtype)]
        rows = list(reversed(rows))[(page - 1) * 200: page * 200]

        def attributes(j: FakeJournal) -> list[dict[str, Any]]:
            return [{"fieldName": f, "value": j.order_ref} for f in wanted
                    if f == self.order_ref_field and j.order_ref is not None]

        return sf_json({
            "message": None, "status": True, "transactionJournalCount": len(rows), "externalTransactionNumber": None,
            "transactionJournals": [{
                "activityDate": j.activity, "additionalAttributes": attributes(j), "journalTypeName": j.type,
                "journalSubTypeName": j.subtype,
                "pointsChange": [{"changeInPoints": str(delta), "loyaltyMemberCurrency": name}
                                 for name, delta in j.changes.items()],
                "transactionJournalId": j.id, "transactionJournalNumber": j.id[-8:],
            } for j in rows],
        })

    # -- Global Promotions Management -----------------------------------------------------------
    def _promotions(self, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        if float(params["ver"]) < (65 if params["kind"] == "promotion-execution" else 60):
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        body = self._body(request)
        try:
            cart = body["cart"]["cartDetails"][0]
            lines = cart["cartLineDetails"]
            currency = cart["currencyISOCode"]
            subtotal = _d(cart["transactionAmount"])
        except (KeyError, IndexError, TypeError, ValueError, ArithmeticError):
            return sf_error(400, "INVALID_INPUT", "The cart is invalid.")
        rules = [r for r in self.rules if r.currency in (None, currency)
                 and (r.min_subtotal is None or subtotal >= r.min_subtotal)]
        if params["kind"] == "eligible-promotions":
            # Items follow Promotion Details (connect_responses_promotion_details.htm, v60: id,
            # displayName, description, currencyIsoCode, ...); the list's top-level key is
            # UNCONFIRMED (reference 6c) and the adapter keeps the whole answer raw.
            return sf_json({"promotions": [{"id": r.id, "displayName": r.label, "description": None,
                                            "currencyIsoCode": r.currency or currency} for r in rules]})
        # Cart Line Details (connect_responses_cart_line_details.htm, v65; reference 6c): a line's
        # AmountAfterDiscount is after every current promotion, so it includes the line's share of
        # cart-level discounts (totalCartPromotionsDistributedDiscountAmount); the line promotions'
        # part is totalCartLinePromotionsDiscountAmount; both add up to totalCartLineItemDiscountAmount.
        out_lines, afters = [], []
        sku_keys = ("cartLineProductCode", "cartLineProductStockKeepingUnit", "cartLineProductId", "cartLineProduct")
        for line in lines:
            before = _d(line["cartLineItemAmount"])
            sku = next((line[k] for k in sku_keys if line.get(k)), None)
            after, applied = before, []
            for rule in rules:
                if rule.kind == "line_percent" and rule.sku == sku:
                    cut = quantize(after * (rule.percent or 0) / 100, currency)
                    applied.append({"cartLineItemAmountAfterDiscount": after - cut,
                                    "cartLineItemAmountBeforeDiscount": after, "cartLineItemDiscountAmount": cut,
                                    "currencyIsoCode": currency, "displayName": rule.label, "isAutomatic": True,
                                    "promotionId": rule.id})
                    after -= cut
            afters.append(after)
            out_lines.append({"appliedCartLinePromotionDetails": applied, "cartLineItemAmountBeforeDiscount": before,
                              "cartLineItemId": line.get("cartLineItemId"),
                              "cartLineItemQuantity": line.get("cartLineItemQuantity"), "cartLineProduct": sku,
                              "totalCartLinePromotionsDiscountAmount": before - after})
        base = sum(afters, Decimal(0))
        applied_cart, cart_cut = [], Decimal(0)
        for rule in rules:
            if rule.kind == "order_percent":
                cut = quantize((base - cart_cut) * (rule.percent or 0) / 100, currency)
            elif rule.kind == "order_fixed":
                cut = min(rule.amount or Decimal(0), base - cart_cut)
            else:
                continue
            applied_cart.append({"cartAmountAfterDiscount": base - cart_cut - cut, "cartAmountBeforeDiscount": base - cart_cut,
                                 "cartLevelDiscountAmount": cut, "displayName": rule.label, "isAutomatic": True,
                                 "nonPricingRewards": {}, "promotionId": rule.id})
            cart_cut += cut
        shares = _distribute(cart_cut, afters, currency)
        for out, after, share in zip(out_lines, afters, shares, strict=True):
            out["totalCartPromotionsDistributedDiscountAmount"] = share
            out["cartLineItemAmountAfterDiscount"] = after - share
            out["totalCartLineItemDiscountAmount"] = out["totalCartLinePromotionsDiscountAmount"] + share
        # The Cart output wraps cartDetails in "cart" (connect_responses_cart.htm, v65).
        return sf_json({"cart": {"cartDetails": [{"cartHeaderId__std": cart.get("cartHeaderId__std"),
                                                  "adjustedCartAmount": base - cart_cut,
                                                  "appliedCartPromotionDetails": applied_cart,
                                                  "cartLineDetails": out_lines}]}})

    # -- inspection -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy({
                "members": {k: (m.balances, m.tier, m.status) for k, m in self.members.items()},
                "vouchers": [(v.code, v.member, v.live_status(), v.remaining, v.redemptions) for v in self.vouchers],
                "journals": [(j.id, j.number, j.type, j.status, j.changes) for j in self.journals],
            })
