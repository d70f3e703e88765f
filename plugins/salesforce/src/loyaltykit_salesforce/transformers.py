"""Pure mapping between kit models and Salesforce Loyalty Management JSON. No I/O.

Numbers from Salesforce are parsed as Decimal from the JSON text (never float). Field names,
paths and envelopes follow the public reference; where it marks a shape UNCONFIRMED the parsing
is defensive and driven by settings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from loyaltykit import (
    Balance,
    BalanceKind,
    Basket,
    CashbackSpend,
    CodeResult,
    CodeStatus,
    Customer,
    Discount,
    DiscountTarget,
    Earn,
    Message,
    Money,
    Offer,
    OfferKind,
    Order,
    UnmappedEffect,
    wire,
)
from loyaltykit.engine_errors import ErrorTable
from loyaltykit.errors import (
    LoyaltyError,
    MalformedResponseError,
)
from loyaltykit.members import StatementEntry, StatementEntryKind
from loyaltykit.models import line_columns, line_ids
from loyaltykit.money import exponent

if TYPE_CHECKING:
    from .settings import SalesforceSettings

ENGINE = "salesforce"

# -------------------------------------------------------------------------------------------
# Paths (three families; each resource keeps its own prefix)
# -------------------------------------------------------------------------------------------


def seg(value: str) -> str:
    """One URL path segment: program, process, member and voucher names are URL-encoded."""
    return quote(value, safe="")


@functools.lru_cache(maxsize=64)  # settings values (program and process names), never a member's
def _setting_seg(value: str) -> str:
    return seg(value)


def data_path(settings: SalesforceSettings, rest: str) -> str:
    return f"/services/data/v{settings.api_version}/{rest}"


def enrollment_path(s: SalesforceSettings) -> str:
    return data_path(s, f"loyalty-programs/{_setting_seg(s.program_name)}/individual-member-enrollments")


def enrollment_body(enrolment: Any, s: SalesforceSettings, now: datetime) -> dict[str, Any]:
    """Individual Member Enrollment request (reference § 2c). The membership number is the
    enrolment's, else its external id: one member per external id. Booleans as real booleans
    (the SDK's way; the API accepts both)."""
    contact: dict[str, Any] = {"lastName": enrolment.last_name, "allowDuplicateRecords": False}
    if enrolment.first_name is not None:
        contact["firstName"] = enrolment.first_name
    if enrolment.email is not None:
        contact["email"] = enrolment.email
    if enrolment.phone is not None:
        contact["additionalContactFieldValues"] = {"attributes": {"Phone": enrolment.phone}}
    consent = next((c for c in enrolment.consents if c.purpose == s.enrol_promotions_consent), None)
    return {
        "enrollmentDate": _iso(enrolment.enrolled_at or now),
        "membershipNumber": enrolment.membership or enrolment.external_id,
        "associatedContactDetails": contact,
        "memberStatus": "Active",
        "createTransactionJournals": True,
        "enrollmentChannel": s.enrollment_channel,
        "canReceivePromotions": bool(consent and consent.granted),
        "canReceivePartnerPromotions": False,
        "additionalMemberFieldValues": {"attributes": dict(enrolment.profile)},
    }


def profile_path(s: SalesforceSettings) -> str:
    return data_path(s, f"loyalty-programs/{_setting_seg(s.program_name)}/members")


def query_path(s: SalesforceSettings) -> str:
    return data_path(s, "query")


def vouchers_path(s: SalesforceSettings, membership: str) -> str:
    return data_path(s, f"loyalty/programs/{_setting_seg(s.program_name)}/members/{seg(membership)}/vouchers")


def redeem_path(s: SalesforceSettings, membership: str, code: str) -> str:
    return vouchers_path(s, membership) + f"/{seg(code)}/redeem"


def ledger_path(s: SalesforceSettings, membership: str) -> str:
    return data_path(
        s, f"loyalty/programs/{_setting_seg(s.program_name)}/members/{seg(membership)}/transaction-ledger-summary"
    )


def realtime_path(s: SalesforceSettings) -> str:
    return data_path(s, f"connect/realtime/loyalty/programs/{_setting_seg(s.program_name)}")


def process_path(s: SalesforceSettings, process: str) -> str:
    return data_path(s, f"connect/loyalty/programs/{_setting_seg(s.program_name)}/program-processes/{_setting_seg(process)}")


def promotions_path(s: SalesforceSettings) -> str:
    name = "promotion-execution" if s.promotions_api == "promotion_execution" else "eligible-promotions"
    return data_path(s, f"global-promotions-management/{name}")


def cancel_path(s: SalesforceSettings, accrual: bool) -> str:
    return data_path(s, "actions/standard/" + ("cancelAccrual" if accrual else "cancelRedemption"))


# -------------------------------------------------------------------------------------------
# Numbers and JSON
# -------------------------------------------------------------------------------------------


def parse_json(response: httpx.Response) -> Any:
    """The body of a Salesforce answer (numbers as Decimal); not JSON is a malformed answer."""
    return wire.json_body(response, engine=ENGINE)


def number(value: Any, path: str) -> Decimal:
    """A Salesforce number (JSON number, int or numeric string) read with the core's reader."""
    if type(value) is Decimal and value.is_finite():  # what the parser gave: read per cart line, 500 times
        return value
    return wire.number(value, path, engine=ENGINE)


_CONTROL = re.compile(r"[\x00-\x1f]")  # what ord(ch) < 32 tests


def soql_literal(value: str) -> str:
    """A SOQL string literal: backslash and quote escaped, control characters refused."""
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed in a query value")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -------------------------------------------------------------------------------------------
# Errors: a JSON array of {errorCode, message}, or HTTP 200 with status:false
# -------------------------------------------------------------------------------------------


#: Message fragments of a ``status:false`` process or engine output (which carries no errorCode)
#: -> kit error codes. Salesforce documents that such outputs carry a ``message`` but not its texts
#: (UNCONFIRMED), so the mapping is a setting. Answers with an errorCode are classified by the
#: documented table in ``transformers.DOCUMENTED_ERRORS`` only, never by these fragments.
DEFAULT_ERROR_PATTERNS: dict[str, str] = {
    "insufficient points": "insufficient_balance",
    "insufficient balance": "insufficient_balance",
    "not enough points": "insufficient_balance",
    "no member found": "customer_not_found",
    "member not found": "customer_not_found",
}


#: Documented error codes and texts -> kit error code, as plain data (errorCode, message fragment,
#: kit code). A row matches when the errorCode is equal (None: any) and the lower-cased message
#: contains the fragment (None: any). Sources: Redeem Voucher resource, "HTTP response code
#: descriptions unique to this resource" (developer.salesforce.com/docs/atlas.en-us.loyalty.meta/
#: loyalty/connect_resources_redeem_voucher.htm, v51+), and the error-code list of the REST API
#: (../shared/reference/salesforce_loyalty.md section 8). Permission codes are auth failures: they
#: must never read as a business refusal such as insufficient_balance.
DOCUMENTED_ERRORS: tuple[tuple[str | None, str | None, str], ...] = (
    ("ALREADY_REDEEMED_VOUCHER", None, "voucher_already_redeemed"),  # 409
    ("INVALID_API_INPUT", "voucher is expired", "voucher_expired"),
    ("INVALID_API_INPUT", "voucher is canceled", "voucher_invalid"),
    ("INVALID_API_INPUT", "voucher is cancelled", "voucher_invalid"),
    ("INVALID_API_INPUT", "specify a valid voucher code", "voucher_not_found"),
    ("INVALID_API_INPUT", "valid loyalty program membership number", "customer_not_found"),
    ("INVALID_API_INPUT", "voucher definition", "voucher_invalid"),  # "must be active" rule
    ("INSUFFICIENT_ACCESS_OR_READONLY", None, "auth_failed"),
    ("INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", None, "auth_failed"),
    ("FUNCTIONALITY_NOT_ENABLED", None, "auth_failed"),
    ("API_DISABLED_FOR_ORG", None, "auth_failed"),
    ("INVALID_SESSION_ID", None, "auth_failed"),
    ("REQUEST_LIMIT_EXCEEDED", None, "rate_limited"),
)


def _first_error(body: Any) -> tuple[str | None, str | None]:
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0]
        if "errorCode" in first or "message" in first:
            return _str(first.get("errorCode")), _str(first.get("message"))
        if first.get("isSuccess") is False:  # invocable-action output
            return _action_error(first)
    if isinstance(body, Mapping):
        if body.get("isSuccess") is False:
            return _action_error(body)
        if body.get("status") is False:
            return _str(body.get("errorCode")), _str(body.get("message"))
    return None, None


def _action_error(item: Mapping[str, Any]) -> tuple[str | None, str | None]:
    errors = item.get("errors") or []
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        return _str(errors[0].get("statusCode") or errors[0].get("errorCode")), _str(errors[0].get("message"))
    return None, None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def is_failure(status: int, body: Any) -> bool:
    """A 4xx, an HTTP-200 ``status:false`` body, or an action with ``isSuccess:false``."""
    if status >= 400:
        return True
    if isinstance(body, Mapping):
        return body.get("status") is False or body.get("isSuccess") is False
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        return body[0].get("isSuccess") is False
    return False


def _documented_table() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    codes: dict[str, str] = {}
    scoped: dict[str, dict[str, str]] = {}
    for code, fragment, kit_code in DOCUMENTED_ERRORS:
        if code is not None and fragment is None:
            codes[code] = kit_code
        elif code is not None and fragment is not None:
            scoped.setdefault(code, {})[fragment] = kit_code
    return codes, scoped


@functools.lru_cache(maxsize=16)
def _table(patterns: frozenset[tuple[str, str]]) -> ErrorTable:
    # Documented codes, and texts read only under their documented code; the error_patterns setting
    # holds errorCodes and message phrases alike, so both columns get it.
    codes, scoped = _documented_table()
    entries = dict(patterns)
    return ErrorTable(ENGINE, codes={**codes, **entries}, phrases=entries, code_phrases=scoped,
                      phrases_only_without_code=True)


def error_table(patterns: Mapping[str, str]) -> ErrorTable:
    """The core classifier's table for this adapter: documented codes plus the setting's entries."""
    return _table(frozenset(patterns.items()))


def documented_kit_code(code: str | None, message: str | None) -> str | None:
    """The kit code the documented table alone assigns to an errorCode and text (None: unknown)."""
    return error_table({}).kit_code(200, code, message)


def classify_error(
    status: int, body: Any, operation: str, patterns: Mapping[str, str], *, not_found: type[LoyaltyError] | None = None
) -> LoyaltyError:
    """The kit error for a failed Salesforce answer (the core's table-driven classifier)."""
    code, message = _first_error(body)
    return error_table(patterns).classify(status, code, message, operation=operation, not_found=not_found)


def checked(
    response: httpx.Response,
    operation: str,
    patterns: Mapping[str, str],
    *,
    not_found: type[LoyaltyError] | None = None,
    status_flag: bool = True,
) -> Any:
    """Parse a response and raise the kit error when it reports a failure.

    ``status_flag=False`` ignores an HTTP-200 failure envelope (only for tests of broken adapters).
    """
    body = parse_json(response)
    failed = response.status_code >= 400 or (status_flag and is_failure(response.status_code, body))
    if failed:
        raise classify_error(response.status_code, body, operation, patterns, not_found=not_found)
    return body


def confirmed(body: Any, marker: str = "status") -> bool:
    """Whether a write's answer carries the documented success marker.

    Realtime engine and program-process outputs say ``"status": true``; invocable actions say
    ``"isSuccess": true`` (an object, or an array of them). Anything else proves nothing.
    """
    item = body[0] if isinstance(body, list) and body else body
    return isinstance(item, Mapping) and item.get(marker) is True


# -------------------------------------------------------------------------------------------
# Identify
# -------------------------------------------------------------------------------------------

def member_query(settings: SalesforceSettings, value: str) -> str:
    """SOQL for a program member by contact e-mail, within one program (object and fields: settings)."""
    s = settings
    return (
        f"SELECT Id, MembershipNumber, MemberStatus FROM {s.member_object} "
        f"WHERE {s.member_email_field} = {soql_literal(value)} AND {s.member_program_field} = {soql_literal(s.program_name)}"
    )


def member_ids(body: Any) -> list[str]:
    """Record Ids of a member query: the profile is then read by memberId, so no membership
    number travels in a request line."""
    return [r["Id"] for r in records(body) if isinstance(r.get("Id"), str)]


def records(body: Any) -> list[Mapping[str, Any]]:
    """Rows of a /query answer: {"totalSize", "done", "records": [...]}."""
    if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
        raise MalformedResponseError("query answer has no records list", engine=ENGINE)
    return [r for r in body["records"] if isinstance(r, Mapping)]


def _points_currency(currencies: list[Mapping[str, Any]], wanted: str | None) -> Mapping[str, Any] | None:
    if wanted is not None:
        return next((c for c in currencies if c.get("loyaltyMemberCurrencyName") == wanted), None)
    for currency in currencies:
        if "qualifying" not in str(currency.get("loyaltyMemberCurrencyName") or "").lower():
            return currency
    return None


def customer_from_profile(body: Any, settings: SalesforceSettings) -> Customer:
    """Member Profile (camelCase, as recorded from a live org) -> Customer keyed by membership number."""
    balances = balances_from_profile(body, settings)
    tiers = [t for t in body.get("memberTiers") or [] if isinstance(t, Mapping)]
    found_contact = body.get("associatedContact")
    contact: Mapping[str, Any] = found_contact if isinstance(found_contact, Mapping) else {}
    names = [contact.get("firstName"), contact.get("lastName")]
    display = " ".join(n for n in names if isinstance(n, str) and n) or None
    raw = {k: v for k, v in body.items() if k not in ("associatedContact", "associatedAccount")}
    return Customer(
        id=body["membershipNumber"],
        membership_number=body["membershipNumber"],
        tier=_str(tiers[0].get("loyaltyMemberTierName")) if tiers else None,
        status=_str(body.get("memberStatus")),
        balances=balances,
        email=_str(contact.get("email")),
        display_name=display,
        raw=_plain(raw),
    )


def balances_from_profile(body: Any, settings: SalesforceSettings) -> tuple[Balance, ...]:
    """The balances of a Member Profile, as ``customer_from_profile`` reads them: what evaluate and
    spend need, without the customer's raw copy and model."""
    if not isinstance(body, Mapping) or not isinstance(body.get("membershipNumber"), str):
        raise MalformedResponseError("member profile without membershipNumber", engine=ENGINE)
    currencies = [c for c in body.get("memberCurrencies") or [] if isinstance(c, Mapping)]
    balances: list[Balance] = []
    points = _points_currency(currencies, settings.points_currency)
    if points is not None:
        amount = number(points.get("pointsBalance", 0), "pointsBalance")
        balances.append(
            Balance(kind=BalanceKind.POINTS, name=str(points.get("loyaltyMemberCurrencyName") or "points"),
                    points=max(amount, Decimal(0)))
        )
    elif settings.points_currency is None:
        balances.append(Balance(kind=BalanceKind.POINTS, points=Decimal(0)))
    if settings.cashback_currency is not None:
        found = next(
            (c for c in currencies if c.get("loyaltyMemberCurrencyName") == settings.cashback_currency), None
        )
        amount = number(found.get("pointsBalance", 0), "pointsBalance") if found else Decimal(0)
        balances.append(
            Balance(kind=BalanceKind.CASHBACK, name=settings.cashback_currency,
                    money=Money.of(max(amount, Decimal(0)), settings.cashback_iso_currency or "EUR"))
        )
    return tuple(balances)


_LEAVES = frozenset({str, int, bool, type(None)})  # what a parsed body holds that _plain keeps as is


def _plain(value: Any) -> Any:
    """Decimals to strings so ``raw`` stays JSON-friendly without passing through float."""
    # A parsed body is plain dicts, lists and leaves: those are walked without a call per leaf
    # (a member profile is a hundred values, read on every evaluate and spend).
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _LEAVES else _plain(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _LEAVES else _plain(v) for v in value]
    if kind in _LEAVES:
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -------------------------------------------------------------------------------------------
# Vouchers
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SfVoucher:
    voucher_id: str
    code: str
    number: str | None
    status: str
    type: str
    face_value: Decimal | None
    remaining: Decimal | None
    percent: Decimal | None
    definition: str | None
    effective: datetime | None
    expires: datetime | None
    partial: bool = False  # isVoucherPartiallyRedeemable
    definition_active: bool = True  # isVoucherDefinitionActive
    redeemed_value: Decimal | None = None

    @property
    def value_left(self) -> Decimal | None:
        """What a FixedValue voucher can still give: remainingValue, else faceValue."""
        return self.remaining if self.remaining is not None else self.face_value

    def problem(self, now: datetime | None = None) -> str | None:
        """Why this voucher cannot be used now (a kit error code), or None."""
        now = now or _now()
        if self.status == "Redeemed" or self.status == "Reserved":
            return "voucher_already_redeemed"
        if self.status == "Expired" or (self.expires is not None and now > self.expires):
            return "voucher_expired"
        if self.status != "Issued" or not self.definition_active:
            return "voucher_invalid"
        if self.effective is not None and now < self.effective:
            return "voucher_invalid"
        return None


def _moment(item: Mapping[str, Any], dt_key: str, date_key: str, end_of_day: bool) -> datetime | None:
    raw = item.get(dt_key)
    if isinstance(raw, str) and raw:
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
    raw = item.get(date_key)
    if isinstance(raw, str) and raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            return None
        if end_of_day:
            return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    return None


def vouchers_from_list(body: Any) -> list[SfVoucher]:
    """Member Vouchers list: {"voucherCount", "vouchers": [...]}."""
    if not isinstance(body, Mapping) or not isinstance(body.get("vouchers", []), list):
        raise MalformedResponseError("voucher list without a vouchers array", engine=ENGINE)
    found = []
    for item in body.get("vouchers") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("voucherCode"), str):
            raise MalformedResponseError("voucher without voucherCode", engine=ENGINE)

        def opt(key: str) -> Decimal | None:
            return number(item[key], key) if item.get(key) is not None else None  # noqa: B023 (used within this iteration)

        found.append(
            SfVoucher(
                voucher_id=str(item.get("voucherId") or item["voucherCode"]),
                code=item["voucherCode"],
                number=_str(item.get("voucherNumber")),
                status=str(item.get("status") or ""),
                type=str(item.get("type") or ""),
                face_value=opt("faceValue"),
                remaining=opt("remainingValue"),
                percent=opt("discountPercent"),
                definition=_str(item.get("voucherDefinition")),
                effective=_moment(item, "effectiveDateTime", "effectiveDate", end_of_day=False),
                expires=_moment(item, "expirationDateTime", "expirationDate", end_of_day=True),
                partial=item.get("isVoucherPartiallyRedeemable") is True,
                definition_active=item.get("isVoucherDefinitionActive") is not False,
                redeemed_value=opt("redeemedValue"),
            )
        )
    return found


def offer_from_voucher(voucher: SfVoucher, currency: str) -> Offer:
    if voucher.type == "DiscountPercentage":
        kind, percent, amount = OfferKind.PERCENT_OFF_CHECK, voucher.percent, None
    elif voucher.type == "FixedValue":
        kind, percent, amount = OfferKind.FIXED_OFF_CHECK, None, Money.of(voucher.value_left or 0, currency)
    else:
        kind, percent, amount = OfferKind.OTHER, None, None
    return Offer(
        id=voucher.voucher_id, kind=kind, label=voucher.definition, percent=percent, amount=amount,
        code=voucher.code, expires_at=voucher.expires, applicable=True,
    )


def wallet_offer(voucher: SfVoucher, currency: str | None) -> Offer:
    """A usable member voucher as a wallet offer. Without a currency (no basket, none asked for, no
    cashback_iso_currency) a fixed voucher's face value cannot be stated as money: it is left out."""
    if voucher.type == "FixedValue" and currency is None:
        return Offer(id=voucher.voucher_id, kind=OfferKind.FIXED_OFF_CHECK, label=voucher.definition,
                     code=voucher.code, expires_at=voucher.expires, applicable=True)
    return offer_from_voucher(voucher, currency or "EUR")  # the currency is not used by other kinds


def voucher_discount(voucher: SfVoucher, basket: Basket, room: Money) -> Discount | None:
    """The order discount a usable member voucher gives this basket (capped by ``room``)."""
    if voucher.type == "FixedValue":
        amount, percent = Money.of(voucher.value_left or 0, basket.currency), None
    elif voucher.type == "DiscountPercentage" and voucher.percent is not None:
        amount, percent = basket.subtotal * (voucher.percent / 100), voucher.percent
    else:
        return None
    return Discount(
        target=DiscountTarget.ORDER, amount=amount.min(room).max(Money.zero(basket.currency)), percent=percent,
        engine_id=voucher.voucher_id, label=voucher.definition, code=voucher.code,
    )


def apply_codes(
    basket: Basket, vouchers: list[SfVoucher] | None, room: Money | None = None
) -> tuple[list[Discount], list[CodeResult]]:
    """Basket codes are member voucher codes; each is accepted or rejected with a kit reason.
    ``room``: what is left to discount after the engine's promotions (default: the subtotal)."""
    discounts: list[Discount] = []
    results: list[CodeResult] = []
    room = room if room is not None else basket.subtotal
    for code in basket.coupon_codes:
        if vouchers is None:
            results.append(CodeResult(code=code, status=CodeStatus.REJECTED, reason="voucher_not_owned",
                                      message="member vouchers need an identified member"))
            continue
        candidates = [v for v in vouchers if v.code == code]
        usable = next((v for v in candidates if v.problem() is None), None)
        if usable is None:
            reason = candidates[0].problem() if candidates else "voucher_not_found"
            results.append(CodeResult(code=code, status=CodeStatus.REJECTED, reason=reason))
            continue
        discount = voucher_discount(usable, basket, room)
        if discount is None:
            results.append(CodeResult(code=code, status=CodeStatus.REJECTED, reason="voucher_invalid",
                                      message=f"unsupported voucher type {usable.type}"))
            continue
        room = room - discount.amount
        discounts.append(discount)
        results.append(CodeResult(code=code, status=CodeStatus.ACCEPTED))
    return discounts, results


def voucher_query(settings: SalesforceSettings, code: str) -> str:
    """SOQL: does a voucher with this code exist for anyone (to tell not-owned from not-found)?"""
    return f"SELECT Id, Status FROM {settings.voucher_object} WHERE VoucherCode = {soql_literal(code)}"


def redeem_amount(voucher: SfVoucher, due: Money | None) -> Decimal | None:
    """The value to take from a partially redeemable FixedValue voucher: what is due, at most what
    is left. None: redeem whole (a voucher that is not partially redeemable, or nothing known due).

    Redeem Voucher input: ``redeemAmount`` "Specify a value when a member hasn't redeemed the full
    value of the voucher. This value is only applicable for vouchers issued using Fixed Value
    voucher definitions." (connect_requests_redeem_voucher_input.htm; reference 4b).
    """
    if not voucher.partial or voucher.type != "FixedValue" or due is None or voucher.value_left is None:
        return None
    return min(due.amount, voucher.value_left)


def redeem_body(
    settings: SalesforceSettings, action: str | None, reservation_key: str | None,
    amount: Decimal | None = None, currency: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if action is not None:  # before v62 the body is optional; no action
        body["action"] = action
    if reservation_key is not None and action is not None:
        body["reservationKey"] = reservation_key
    if amount is not None and action != "Reinstate":
        body["reservedValue" if action == "Reserve" else "redeemAmount"] = amount
        if currency is not None and settings.version >= 55:
            body["currencyIsoCode"] = currency
    return body


#: The voucher status each documented action leaves on success (Redeem Voucher output, reference 4b).
ACTION_STATUS = {"Reserve": "Reserved", "Redeem": "Redeemed", "Reinstate": "Issued"}


def redeem_status(body: Any) -> str | None:
    """Redeem Voucher output: {"status": "Redeemed"|"Reserved"|"Issued"|"Expired", ...} (v62+)."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError("redeem answer is not an object", engine=ENGINE)
    status = body.get("status")
    return status if isinstance(status, str) else None


def reservation_key(key: str) -> str:
    # Deterministic per idempotency key: a re-sent Redeem after a lost answer holds the same key.
    return key[:255]


# -------------------------------------------------------------------------------------------
# Transaction journals
# -------------------------------------------------------------------------------------------


def issued_codes(settings: SalesforceSettings, key: str, quantity: int) -> list[str]:
    """The voucher codes an issue under ``key`` gives, one per unit: derived from the key, so the
    member's voucher list shows whether (and which units) an earlier send applied."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12].upper()
    return [f"{settings.issue_code_prefix}{digest}{unit:02d}" for unit in range(1, quantity + 1)]


def issue_process_body(settings: SalesforceSettings, issue: Any, code: str) -> dict[str, Any]:
    """The issue-voucher process input (reference 6a: {"processParameters": [{...}]})."""
    s = settings
    inputs: dict[str, Any] = {s.issue_member_parameter: issue.customer_id,
                              s.issue_definition_parameter: issue.definition_id, s.issue_code_parameter: code}
    if issue.face_value is not None:
        inputs[s.issue_face_value_parameter] = issue.face_value.amount
    if issue.expires_at is not None:
        inputs[s.issue_expiry_parameter] = issue.expires_at.astimezone(UTC).date().isoformat()
    return {"processParameters": [inputs]}


def external_number(settings: SalesforceSettings, key: str) -> str:
    """The deterministic ExternalTransactionNumber of a write, derived from its idempotency key."""
    return f"{settings.external_number_prefix}{key}"


def journals_query(settings: SalesforceSettings, numbers: Iterable[str]) -> str:
    s = settings
    values = ", ".join(soql_literal(n) for n in numbers)
    return (
        f"SELECT Id, ExternalTransactionNumber, Status, JournalType.Name, {s.journal_amount_field} "
        f"FROM {s.journal_object} WHERE ExternalTransactionNumber IN ({values}) "
        f"AND {s.journal_program_field} = {soql_literal(s.program_name)}"
    )


@dataclass(frozen=True)
class SfJournal:
    id: str
    number: str
    status: str
    type: str | None
    amount: Decimal | None = None


def journals_by_number(body: Any, cancelled: str = "Cancelled", amount_field: str = "TransactionAmount") -> dict[str, SfJournal]:
    """Rows of the journals query, by ExternalTransactionNumber (a cancelled one loses to a live one)."""
    found: dict[str, SfJournal] = {}
    for row in records(body):
        number, ident = row.get("ExternalTransactionNumber"), row.get("Id")
        if not isinstance(number, str) or not isinstance(ident, str):
            raise MalformedResponseError("journal row without Id or ExternalTransactionNumber", engine=ENGINE)
        jtype = row.get("JournalType")
        raw_amount = row.get(amount_field)
        journal = SfJournal(ident, number, str(row.get("Status") or ""),
                            _str(jtype.get("Name")) if isinstance(jtype, Mapping) else None,
                            wire.number(raw_amount, amount_field, engine=ENGINE) if raw_amount not in (None, "") else None)
        if number not in found or found[number].status == cancelled:
            found[number] = journal
    return found


def _journal_base(settings: SalesforceSettings, number: str, membership: str, when: datetime) -> dict[str, Any]:
    return {
        "ActivityDate": _iso(when),
        "ExternalTransactionNumber": number,
        "LoyaltyProgramName": settings.program_name,
        "MembershipNumber": membership,
    }


def accrual_journals(settings: SalesforceSettings, order: Order, number: str) -> list[dict[str, Any]]:
    """The order's Accrual journals: one for the order, or (``journal_product_field``) one per line
    with its product, numbered ``{number}`` then ``{number}-2``... Line amounts are the line's share
    of the order total (largest remainder in minor units, summing exactly to the total)."""
    journal = accrual_journal(settings, order, number)
    if settings.journal_product_field is None:
        return [journal]
    shares = _shares(order)
    out = []
    for index, (line, share) in enumerate(zip(order.lines, shares, strict=True)):
        item = dict(journal)
        item["ExternalTransactionNumber"] = number if index == 0 else f"{number}-{index + 1}"
        item["TransactionAmount"] = str(share)
        item[settings.journal_product_field] = line.sku
        if index:
            item.pop("VoucherCode", None)  # the order's codes ride on its first journal only
        out.append(item)
    return out


def accrual_numbers(settings: SalesforceSettings, order: Order, number: str) -> list[str]:
    if settings.journal_product_field is None:
        return [number]
    return [number if i == 0 else f"{number}-{i + 1}" for i in range(len(order.lines))]


def _shares(order: Order) -> list[Decimal]:
    # Largest remainder in minor units; the core has no allocation helper an adapter can call yet.
    scale = 10 ** exponent(order.currency)
    if order.total is None:
        raise AssertionError("order.total is set once the order is validated")
    goods = order.total.amount - (order.shipping.amount if order.shipping else Decimal(0))
    total = int(max(goods, Decimal(0)) * scale)
    weights = [int(line.subtotal.amount * scale) for line in order.lines]
    base = sum(weights)
    if base == 0:
        return [Decimal(0) for _ in weights]
    floors = [total * w // base for w in weights]
    rest = sorted(range(len(weights)), key=lambda i: (total * weights[i]) % base, reverse=True)
    for i in rest[: total - sum(floors)]:
        floors[i] += 1
    return [Decimal(f) / scale for f in floors]


def accrual_journal(settings: SalesforceSettings, order: Order, number: str) -> dict[str, Any]:
    """An Accrual journal for a placed order (TransactionAmount as a string, as documented)."""
    if order.customer_id is None or order.total is None:
        raise AssertionError("order.customer_id and order.total are set here")
    journal = _journal_base(settings, number, order.customer_id, order.placed_at)
    journal.update(
        {
            "JournalDate": _iso(order.placed_at),
            "JournalTypeName": settings.accrual_journal_type,
            "TransactionAmount": str(order.total.amount),
            "CurrencyIsoCode": order.currency,
            "Status": "Pending",
        }
    )
    if settings.accrual_journal_subtype:
        journal["JournalSubTypeName"] = settings.accrual_journal_subtype
    if order.store_id:
        journal["TransactionLocation"] = order.store_id
    if order.voucher_codes:
        journal["VoucherCode"] = settings.voucher_code_separator.join(order.voucher_codes)
    if settings.order_ref_field:
        journal[settings.order_ref_field] = order.ref
    return journal


def simulation_request(settings: SalesforceSettings, basket: Basket, membership: str) -> dict[str, Any]:
    """Transaction Journals Simulation: the would-be accrual of this basket, nothing committed."""
    journal = _journal_base(settings, f"{settings.external_number_prefix}sim-{basket.id}", membership, _now())
    journal.update(
        {
            "JournalTypeName": settings.accrual_journal_type,
            "TransactionAmount": str(basket.subtotal.amount),
            "CurrencyIsoCode": basket.currency,
        }
    )
    if settings.accrual_journal_subtype:
        journal["JournalSubTypeName"] = settings.accrual_journal_subtype
    return {"transactionJournals": [journal], "runSetting": {"isSimulation": True}}


def accrual_request(journals: list[dict[str, Any]]) -> dict[str, Any]:
    return {"transactionJournals": journals}


def realtime_result(body: Any, points_currency: str | None) -> tuple[str | None, Decimal]:
    """Loyalty Engine Realtime Output -> (first journal id, change in the points currency)."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError("realtime answer is not an object", engine=ENGINE)
    if body.get("processResult") is None:
        return None, Decimal(0)  # status:true without detail: the journal was taken, nothing credited
    if not isinstance(body["processResult"], Mapping):
        raise MalformedResponseError("realtime answer with a malformed processResult", engine=ENGINE)
    results = body["processResult"].get("transactionJournalResult") or []
    if not isinstance(results, list) or not results or not isinstance(results[0], Mapping):
        raise MalformedResponseError("realtime answer without transactionJournalResult", engine=ENGINE)
    first = results[0]
    change = Decimal(0)
    for member in first.get("changeInMemberPoints") or []:
        for item in member.get("changeInMemberCurrencies") or []:
            if _counts(item.get("currencyName"), item.get("currencyType"), points_currency):
                change += number(item.get("changeInPointsBalance", 0), "changeInPointsBalance")
    return _str(first.get("id")), change


def _counts(name: Any, ctype: Any, wanted: str | None) -> bool:
    if wanted is not None:
        return bool(name == wanted)
    return ctype != "Qualifying" and "qualifying" not in str(name or "").lower()


def earn_from_simulation(body: Any, settings: SalesforceSettings) -> tuple[Decimal, list[UnmappedEffect]]:
    """Points a simulated journal would credit: successful rules' actionResultSummary numbers.

    The summary's shape is UNCONFIRMED, so numeric values under ``simulation_points_keys`` are
    summed (skipping ones labelled with another currency) and anything else is kept raw.
    """
    if not isinstance(body, Mapping):
        raise MalformedResponseError("simulation answer is not an object", engine=ENGINE)
    sim = body.get("simulationResults")
    journals = sim.get("transactionJournals") if isinstance(sim, Mapping) else None
    if not isinstance(journals, list):
        raise MalformedResponseError("simulation answer without simulationResults", engine=ENGINE)
    points = Decimal(0)
    unmapped: list[UnmappedEffect] = []
    for journal in journals:
        if not isinstance(journal, Mapping):
            continue
        for rule in journal.get("processRules") or []:
            if not isinstance(rule, Mapping) or rule.get("executionStatus") != "Success":
                continue
            summary = rule.get("actionResultSummary")
            found = _summary_points(summary, settings)
            if found is None:
                if summary:
                    unmapped.append(UnmappedEffect(type="simulation_rule", raw=_plain(dict(rule))))
            else:
                points += found
    return max(points, Decimal(0)), unmapped


_CURRENCY_KEYS = ("currencyName", "loyaltyProgramCurrencyName", "loyaltyProgramCurrency", "CurrencyName")


def _summary_points(summary: Any, settings: SalesforceSettings) -> Decimal | None:
    if isinstance(summary, list):
        parts = [p for p in (_summary_points(s, settings) for s in summary) if p is not None]
        return sum(parts, Decimal(0)) if parts else None
    if not isinstance(summary, Mapping):
        return None
    currency = next((summary[k] for k in _CURRENCY_KEYS if isinstance(summary.get(k), str)), None)
    if currency is not None and not _counts(currency, None, settings.points_currency):
        return Decimal(0)
    total: Decimal | None = None
    for key, value in summary.items():
        if key in settings.simulation_points_keys and not isinstance(value, bool | Mapping | list):
            try:
                total = (total or Decimal(0)) + number(value, key)
            except MalformedResponseError:
                continue
        elif isinstance(value, Mapping | list):
            nested = _summary_points(value, settings)
            if nested is not None:
                total = (total or Decimal(0)) + nested
    return total


def debit_request(settings: SalesforceSettings, spend: CashbackSpend, number: str) -> dict[str, Any]:
    """DebitPointsFromMembers process input: a Redemption TransactionJournal plus the amount."""
    amount = spend.points if spend.points is not None else spend.amount.amount  # type: ignore[union-attr]
    journal = _journal_base(settings, number, spend.customer_id, _now())
    journal.update({"JournalTypeName": settings.redemption_journal_type, "Status": "Processed"})
    if spend.amount is not None:
        journal["TransactionAmount"] = str(spend.amount.amount)
        journal["CurrencyIsoCode"] = spend.amount.currency
    if settings.order_ref_field:
        journal[settings.order_ref_field] = spend.order_ref
    return {"processParameters": [{"TransactionJournal": journal, settings.debit_amount_parameter: amount}]}


def process_results(body: Any) -> list[Mapping[str, Any]]:
    """Loyalty Process Output: outputParameters.outputParameters.results (the nesting is real)."""
    try:
        results = body["outputParameters"]["outputParameters"]["results"]
    except (KeyError, TypeError):
        raise MalformedResponseError("process answer without outputParameters.results", engine=ENGINE) from None
    if not isinstance(results, list):
        raise MalformedResponseError("process results is not a list", engine=ENGINE)
    return [r for r in results if isinstance(r, Mapping)]


def debited(body: Any, field: str) -> Decimal | None:
    """The amount a debit process reports; None when it reports none (outputs are org-configured)."""
    if isinstance(body, Mapping) and body.get("outputParameters") is None:
        return None
    for result in process_results(body):
        if field in result:
            return number(result[field], field)
    return None


def cancel_request(journal_id: str, reason: str) -> dict[str, Any]:
    return {"inputs": [{"TransactionJournalId": journal_id, "CancellationReason": reason[:255]}]}


def cancel_result(body: Any) -> str | None:
    """Cancel action output; the docs show an object, the Actions API an array of them: accept both."""
    item = body[0] if isinstance(body, list) and body else body
    if not isinstance(item, Mapping) or "isSuccess" not in item:
        raise MalformedResponseError("cancel answer without isSuccess", engine=ENGINE)
    outputs = item.get("outputValues")
    if isinstance(outputs, Mapping):
        return _str(outputs.get("CancellationTransactionJournalId"))
    return None


def ledger_points(body: Any, journal_id: str, points_currency: str | None) -> Decimal | None:
    """Points a journal changed, from the Transaction Ledger Summary (changeInPoints: string or number)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("transactionJournals"), list):
        raise MalformedResponseError("ledger answer without transactionJournals", engine=ENGINE)
    for journal in body["transactionJournals"]:
        if isinstance(journal, Mapping) and journal.get("transactionJournalId") == journal_id:
            total = Decimal(0)
            for change in journal.get("pointsChange") or []:
                if _counts(change.get("loyaltyMemberCurrency"), None, points_currency):
                    total += number(change.get("changeInPoints", 0), "changeInPoints")
            return total
    return None


LEDGER_PAGE = 200  # journals per Transaction Ledger Summary page (reference § 5d)


def ledger_params(s: SalesforceSettings, page: int, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """Query of a statement page: page number, period, and the order-reference field when configured."""
    params: dict[str, Any] = {}
    if page > 1:
        params["pageNumber"] = page
    if since is not None:
        params["periodStartDate"] = _iso(since)
    if until is not None:
        params["periodEndDate"] = _iso(until)
    if s.order_ref_field:
        params["additionalTransactionJournalAttributes"] = s.order_ref_field
    return params


def statement_entries(body: Any, s: SalesforceSettings) -> tuple[list[StatementEntry], int]:
    """Statement entries of one ledger page (one per journal and currency counted), and how many
    journals the page held. Qualifying (tier) currencies are left out unless named as points."""
    if not isinstance(body, Mapping) or not isinstance(body.get("transactionJournals"), list):
        raise MalformedResponseError("ledger answer without transactionJournals", engine=ENGINE)
    entries: list[StatementEntry] = []
    journals = body["transactionJournals"]
    for journal in journals:
        if not isinstance(journal, Mapping):
            raise MalformedResponseError("ledger journal is not an object", engine=ENGINE)
        journal_id = _str(journal.get("transactionJournalId"))
        at = _moment(journal, "activityDate", "activityDate", end_of_day=False)
        if journal_id is None or at is None:
            raise MalformedResponseError("ledger journal without id or activityDate", engine=ENGINE)
        jtype = _str(journal.get("journalTypeName"))
        # The doc names the list additionalAttributes, the SDK mock additionalTransactionJournalAttributes.
        attributes = journal.get("additionalAttributes") or journal.get("additionalTransactionJournalAttributes") or []
        order_ref = None
        if s.order_ref_field:
            order_ref = next((_str(a.get("value")) for a in attributes
                              if isinstance(a, Mapping) and a.get("fieldName") == s.order_ref_field), None)
        for change in journal.get("pointsChange") or []:
            if not isinstance(change, Mapping):
                continue
            name = change.get("loyaltyMemberCurrency")
            delta = number(change.get("changeInPoints", 0), "changeInPoints")
            points = money = None
            if s.cashback_currency is not None and name == s.cashback_currency:
                if s.cashback_iso_currency is None:
                    continue
                money = Money.of(delta, s.cashback_iso_currency)
                balance = BalanceKind.CASHBACK
            elif _counts(name, None, s.points_currency):
                points, balance = delta, BalanceKind.POINTS
            else:
                continue
            if jtype == s.accrual_journal_type:
                kind = StatementEntryKind.EARN if delta >= 0 else StatementEntryKind.REVERSE
            elif jtype == s.redemption_journal_type:
                kind = StatementEntryKind.SPEND if delta <= 0 else StatementEntryKind.REVERSE
            else:
                kind = StatementEntryKind.ADJUST
            entries.append(StatementEntry(
                id=f"{journal_id}:{name}", at=at, kind=kind, balance=balance, points=points, money=money,
                order_ref=order_ref, label=_str(journal.get("journalSubTypeName")) or jtype,
            ))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries, len(journals)


# -------------------------------------------------------------------------------------------
# Global Promotions Management
# -------------------------------------------------------------------------------------------


_CATEGORY = operator.attrgetter("category")


def cart_request(
    basket: Basket, membership: str | None, execution: bool, sku_field: str = "cartLineProductCode"
) -> dict[str, Any]:
    """Cart input: products named by the sku in ``sku_field``, amounts as JSON numbers.

    The lines are written to JSON text as they are read (:class:`wire.Records`, the bytes of one
    dict per line); ``.rows()`` gives them back as dicts.
    """
    omit = wire.OMIT  # a line without a category sends no category field
    columns = line_columns(basket.lines, basket.currency)  # read in C, no tuple per line
    categories = [category or omit for category in map(_CATEGORY, basket.lines)]
    lines: wire.Records
    if execution:
        lines = wire.Records.of_columns(
            (sku_field, "cartLineItemQuantity", "cartLineItemAmount", "cartLineItemId", "cartLineNetUnitPrice__std",
             "cartLineProductCategory"),
            (columns.skus, columns.quantities, columns.subtotals, columns.ids, columns.unit_prices, categories),
        )
    else:
        lines = wire.Records.of_columns(
            (sku_field, "cartLineItemQuantity", "cartLineItemAmount", "cartLineProductCategory"),
            (columns.skus, columns.quantities, columns.subtotals, categories),
        )
    details: dict[str, Any] = {
        "activityStartDate": _iso(basket.created_at or _now()),
        "transactionAmount": basket.subtotal.amount,
        "currencyISOCode": basket.currency,
        "cartLineDetails": lines,
    }
    if execution:
        details["cartHeaderId__std"] = basket.id
    if membership is not None:
        details["membershipNumber"] = membership
    return {"cart": {"cartDetails": [details]}}


def _cart_details(body: Any) -> list[Any]:
    """``cartDetails`` of a promotion-execution answer: bare (Cart Details output) or wrapped in
    ``{"cart": ...}`` (Cart output, connect_responses_cart.htm) — both are documented."""
    if isinstance(body, Mapping) and isinstance(body.get("cart"), Mapping):
        body = body["cart"]
    if not isinstance(body, Mapping) or not isinstance(body.get("cartDetails"), list):
        raise MalformedResponseError("promotion-execution answer without cartDetails", engine=ENGINE)
    details: list[Any] = body["cartDetails"]
    return details


def _line_promotion_cut(line: Mapping[str, Any]) -> Decimal | None:
    """The part of a line's discount that line promotions gave (not its share of cart promotions).

    Cart Line Details (connect_responses_cart_line_details.htm, v65): ``cartLineItemAmountAfterDiscount``
    is the price after *all* current promotions, so it already includes the line's share of
    cart-level discounts, ``totalCartPromotionsDistributedDiscountAmount``; the line promotions
    alone are ``totalCartLinePromotionsDiscountAmount``.
    """
    if line.get("totalCartLinePromotionsDiscountAmount") is not None:
        return number(line["totalCartLinePromotionsDiscountAmount"], "totalCartLinePromotionsDiscountAmount")
    before, after = line.get("cartLineItemAmountBeforeDiscount"), line.get("cartLineItemAmountAfterDiscount")
    if before is not None and after is not None and line.get("totalCartPromotionsDistributedDiscountAmount") is not None:
        return (number(before, "cartLineItemAmountBeforeDiscount") - number(after, "cartLineItemAmountAfterDiscount")
                - number(line["totalCartPromotionsDistributedDiscountAmount"], "totalCartPromotionsDistributedDiscountAmount"))
    applied = [p for p in line.get("appliedCartLinePromotionDetails") or [] if isinstance(p, (dict, Mapping))]
    if applied and all(p.get("cartLineItemDiscountAmount") is not None for p in applied):
        return sum((number(p["cartLineItemDiscountAmount"], "cartLineItemDiscountAmount") for p in applied), Decimal(0))
    return None


_OWN_CUT = "totalCartLinePromotionsDiscountAmount"


def _lines_with_a_cut(details: Any) -> Any:
    """The cart lines that may carry a line-promotion cut: all but the objects whose own part was
    parsed as a Decimal zero (most lines: no line promotion), which take nothing. One light test per
    line (the full one below runs for the few that remain); anything but a list is given back whole."""
    if type(details) is not list:
        return details
    return [line for line in details
            if type(line) is not dict or (own := line.get(_OWN_CUT)) or type(own) is not Decimal]


def discounts_from_execution(body: Any, basket: Basket) -> tuple[list[Discount], list[UnmappedEffect]]:
    """promotion-execution output -> cart-level (order) and line-level discounts; other rewards raw.

    Each cart-level promotion is one order discount (``cartLevelDiscountAmount``); each line gets
    only what line promotions took off it, so a cart discount is never counted twice. A line whose
    line-promotion part cannot be told apart is kept raw in ``unmapped``.
    """
    currency = basket.currency
    discounts: list[Discount] = []
    unmapped: list[UnmappedEffect] = []
    known_lines: set[str] | None = None  # read when a line has a cut (few do)
    for cart in _cart_details(body):
        if not isinstance(cart, Mapping):
            continue
        cart_level = Decimal(0)
        for promo in cart.get("appliedCartPromotionDetails") or []:
            if not isinstance(promo, Mapping):
                continue
            amount = promo.get("cartLevelDiscountAmount")
            if amount is not None and number(amount, "cartLevelDiscountAmount") > 0:
                cart_level += number(amount, "cartLevelDiscountAmount")
                discounts.append(
                    Discount(target=DiscountTarget.ORDER, amount=Money.of(number(amount, "cartLevelDiscountAmount"), currency),
                             engine_id=_str(promo.get("promotionId")), label=_str(promo.get("displayName")))
                )
            if promo.get("nonPricingRewards"):
                unmapped.append(UnmappedEffect(type="nonPricingRewards", raw=_plain(dict(promo))))
        for line in _lines_with_a_cut(cart.get("cartLineDetails") or []):
            if type(line) is not dict and not isinstance(line, Mapping):  # a parsed body has no other mapping
                continue
            own = line.get("totalCartLinePromotionsDiscountAmount")  # what line promotions took, as parsed
            cut = own if type(own) is Decimal and own.is_finite() else _line_promotion_cut(line)
            if cut is None:
                before, after = line.get("cartLineItemAmountBeforeDiscount"), line.get("cartLineItemAmountAfterDiscount")
                whole = (number(before, "cartLineItemAmountBeforeDiscount") - number(after, "cartLineItemAmountAfterDiscount")) if before is not None and after is not None else Decimal(0)
                if whole > 0 and cart_level == 0:
                    cut = whole  # no cart promotion: the whole cut is the line's own
                elif whole > 0:
                    unmapped.append(UnmappedEffect(type="line_discount_not_separable", raw=_plain(dict(line))))
                    continue
                else:
                    continue
            if cut <= 0:
                continue
            line_id = line.get("cartLineItemId")
            applied = [p for p in line.get("appliedCartLinePromotionDetails") or [] if isinstance(p, (dict, Mapping))]
            if known_lines is None:
                known_lines = line_ids(basket.lines)
            if line_id not in known_lines:
                unmapped.append(UnmappedEffect(type="line_discount_unknown_line", raw=_plain(dict(line))))
                continue
            discounts.append(
                Discount(target=DiscountTarget.LINE, line_id=line_id, amount=Money.of(cut, currency),
                         engine_id=_str(applied[0].get("promotionId")) if applied else None,
                         label=_str(applied[0].get("displayName")) if applied else None,
                         code=_str(applied[0].get("couponCode")) if applied else None)
            )
    return discounts, unmapped


def messages_from_eligible(body: Any) -> tuple[list[Message], list[UnmappedEffect]]:
    """eligible-promotions: a list only (top-level shape UNCONFIRMED). Promotions named by
    ``promotionName``/``displayName`` beside ``promotionId``/``id`` become messages; the whole answer
    is always kept raw in ``unmapped`` (never dropped), so nothing the adapter cannot map is lost."""
    if not isinstance(body, Mapping | list):
        raise MalformedResponseError("eligible-promotions answer is not JSON object or array", engine=ENGINE)
    messages: list[Message] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            name = node.get("promotionName") or node.get("displayName") or node.get("name")
            if isinstance(name, str) and ("promotionId" in node or "id" in node):
                messages.append(Message(text=name, kind="promotion"))
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body)
    raw = dict(body) if isinstance(body, Mapping) else {"items": list(body)}
    return messages, [UnmappedEffect(type="eligible_promotions", raw=_plain(raw))]


def earn(points: Decimal) -> list[Earn]:
    return [Earn(kind=BalanceKind.POINTS, points=points)] if points > 0 else []


def dumps(value: Any) -> str:
    """JSON text of a parsed body (for tests and debugging), Decimals exact."""
    return json.dumps(_plain(value), sort_keys=True)


# -------------------------------------------------------------------------------------------
# Member updates: tier changes through the ChangeMemberTier program process
# -------------------------------------------------------------------------------------------

def member_tier_names(customer: Customer) -> set[str]:
    """Every tier the member holds (one per tier group), from the profile's ``memberTiers`` (2a)."""
    tiers = customer.raw.get("memberTiers")
    names = {t.get("loyaltyMemberTierName") for t in tiers if isinstance(t, Mapping)} if isinstance(tiers, list) else set()
    return {n for n in names if isinstance(n, str)} | ({customer.tier} if customer.tier else set())


def change_tier_request(settings: SalesforceSettings, customer: Customer, tier: str, reason: str | None) -> dict[str, Any]:
    """Loyalty Program Process input (reference 6a) for ChangeMemberTier (reference 7):
    ``{"processParameters":[{"MemberId":...,"NewTier":...,"ReasonForChange":...}]}``."""
    if settings.change_tier_member_parameter == "MemberId":
        member = customer.raw.get("loyaltyProgramMemberId")
        if not isinstance(member, str) or not member:
            raise MalformedResponseError("member profile without loyaltyProgramMemberId", engine=ENGINE)
    else:
        member = customer.membership_number or customer.id
    return {"processParameters": [{
        settings.change_tier_member_parameter: member,
        settings.change_tier_tier_parameter: tier,
        settings.change_tier_reason_parameter: reason or settings.change_tier_default_reason,
    }]}


def refuses_unknown_tier(response: httpx.Response, phrases: Iterable[str]) -> bool:
    """Whether a process answer is a refusal (``status: false`` or an error array, reference 8)
    whose message says the program has no such tier."""
    try:
        body = parse_json(response)
    except LoyaltyError:
        return False
    if not is_failure(response.status_code, body):
        return False
    _, message = _first_error(body)
    text = (message or "").lower()
    return any(phrase.lower() in text for phrase in phrases)
