"""Pure mapping between kit models and Salesforce Loyalty Management JSON. No I/O.

Numbers from Salesforce are parsed as Decimal from the JSON text (never float). Field names,
paths and envelopes follow the public reference; where it marks a shape UNCONFIRMED the parsing
is defensive and driven by settings.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
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
)
from loyaltykit import wire
from loyaltykit.engine_errors import ErrorTable
from loyaltykit.errors import (
    LoyaltyError,
    MalformedResponseError,
)

from .settings import SalesforceSettings

ENGINE = "salesforce"

# -------------------------------------------------------------------------------------------
# Paths (three families; each resource keeps its own prefix)
# -------------------------------------------------------------------------------------------


def seg(value: str) -> str:
    """One URL path segment: program, process, member and voucher names are URL-encoded."""
    return quote(value, safe="")


def data_path(settings: SalesforceSettings, rest: str) -> str:
    return f"/services/data/v{settings.api_version}/{rest}"


def profile_path(s: SalesforceSettings) -> str:
    return data_path(s, f"loyalty-programs/{seg(s.program_name)}/members")


def query_path(s: SalesforceSettings) -> str:
    return data_path(s, "query")


def vouchers_path(s: SalesforceSettings, membership: str) -> str:
    return data_path(s, f"loyalty/programs/{seg(s.program_name)}/members/{seg(membership)}/vouchers")


def redeem_path(s: SalesforceSettings, membership: str, code: str) -> str:
    return vouchers_path(s, membership) + f"/{seg(code)}/redeem"


def ledger_path(s: SalesforceSettings, membership: str) -> str:
    return data_path(
        s, f"loyalty/programs/{seg(s.program_name)}/members/{seg(membership)}/transaction-ledger-summary"
    )


def realtime_path(s: SalesforceSettings) -> str:
    return data_path(s, f"connect/realtime/loyalty/programs/{seg(s.program_name)}")


def process_path(s: SalesforceSettings, process: str) -> str:
    return data_path(s, f"connect/loyalty/programs/{seg(s.program_name)}/program-processes/{seg(process)}")


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
    return wire.number(value, path, engine=ENGINE)


def soql_literal(value: str) -> str:
    """A SOQL string literal: backslash and quote escaped, control characters refused."""
    if any(ord(ch) < 32 for ch in value):
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


#: Codes Salesforce documents with one meaning whatever the resource (403 with this code is the
#: org's API request limit, not a permission problem).
DOCUMENTED_ERROR_CODES: dict[str, str] = {"REQUEST_LIMIT_EXCEEDED": "rate_limited"}


@functools.lru_cache(maxsize=16)
def _table(patterns: frozenset[tuple[str, str]]) -> ErrorTable:
    # The error_patterns setting holds errorCodes and message phrases alike: both columns get it.
    entries = dict(patterns)
    return ErrorTable(ENGINE, codes={**DOCUMENTED_ERROR_CODES, **entries}, phrases=entries)


def error_table(patterns: Mapping[str, str]) -> ErrorTable:
    """The core classifier's table for this adapter: documented codes plus the setting's entries."""
    return _table(frozenset(patterns.items()))


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


# -------------------------------------------------------------------------------------------
# Identify
# -------------------------------------------------------------------------------------------

MEMBER_FIELDS = "Id, MembershipNumber, MemberStatus, ContactId"


def member_query(program: str, field: str, value: str) -> str:
    """SOQL for a LoyaltyProgramMember by contact e-mail (or contact Id), within one program."""
    if field not in ("Contact.Email", "ContactId"):
        raise ValueError(f"unsupported member look-up field {field}")
    return (
        f"SELECT {MEMBER_FIELDS} FROM LoyaltyProgramMember "
        f"WHERE {field} = {soql_literal(value)} AND Program.Name = {soql_literal(program)}"
    )


def records(body: Any) -> list[Mapping[str, Any]]:
    """Rows of a /query answer: {"totalSize", "done", "records": [...]}."""
    if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
        raise MalformedResponseError("query answer has no records list", engine=ENGINE)
    return [r for r in body["records"] if isinstance(r, Mapping)]


def membership_numbers(body: Any) -> list[str]:
    return [r["MembershipNumber"] for r in records(body) if isinstance(r.get("MembershipNumber"), str)]


def _points_currency(currencies: list[Mapping[str, Any]], wanted: str | None) -> Mapping[str, Any] | None:
    if wanted is not None:
        return next((c for c in currencies if c.get("loyaltyMemberCurrencyName") == wanted), None)
    for currency in currencies:
        if "qualifying" not in str(currency.get("loyaltyMemberCurrencyName") or "").lower():
            return currency
    return None


def customer_from_profile(body: Any, settings: SalesforceSettings) -> Customer:
    """Member Profile (camelCase, as recorded from a live org) -> Customer keyed by membership number."""
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
    tiers = [t for t in body.get("memberTiers") or [] if isinstance(t, Mapping)]
    contact = body.get("associatedContact") if isinstance(body.get("associatedContact"), Mapping) else {}
    names = [contact.get("firstName"), contact.get("lastName")]
    display = " ".join(n for n in names if isinstance(n, str) and n) or None
    raw = {k: v for k, v in body.items() if k not in ("associatedContact", "associatedAccount")}
    return Customer(
        id=body["membershipNumber"],
        membership_number=body["membershipNumber"],
        tier=_str(tiers[0].get("loyaltyMemberTierName")) if tiers else None,
        status=_str(body.get("memberStatus")),
        balances=tuple(balances),
        email=_str(contact.get("email")),
        display_name=display,
        raw=_plain(raw),
    )


def _plain(value: Any) -> Any:
    """Decimals to strings so ``raw`` stays JSON-friendly without passing through float."""
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

    def problem(self, now: datetime | None = None) -> str | None:
        """Why this voucher cannot be used now (a kit error code), or None."""
        now = now or _now()
        if self.status == "Redeemed" or self.status == "Reserved":
            return "voucher_already_redeemed"
        if self.status == "Expired" or (self.expires is not None and now > self.expires):
            return "voucher_expired"
        if self.status != "Issued":
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
            return number(item[key], key) if item.get(key) is not None else None

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
            )
        )
    return found


def offer_from_voucher(voucher: SfVoucher, currency: str) -> Offer:
    if voucher.type == "DiscountPercentage":
        kind, percent, amount = OfferKind.PERCENT_OFF_CHECK, voucher.percent, None
    elif voucher.type == "FixedValue":
        value = voucher.remaining if voucher.remaining is not None else voucher.face_value
        kind, percent, amount = OfferKind.FIXED_OFF_CHECK, None, Money.of(value or 0, currency)
    else:
        kind, percent, amount = OfferKind.OTHER, None, None
    return Offer(
        id=voucher.voucher_id, kind=kind, label=voucher.definition, percent=percent, amount=amount,
        code=voucher.code, expires_at=voucher.expires, applicable=True,
    )


def voucher_discount(voucher: SfVoucher, basket: Basket, room: Money) -> Discount | None:
    """The order discount a usable member voucher gives this basket (capped by ``room``)."""
    if voucher.type == "FixedValue":
        value = voucher.remaining if voucher.remaining is not None else voucher.face_value
        amount, percent = Money.of(value or 0, basket.currency), None
    elif voucher.type == "DiscountPercentage" and voucher.percent is not None:
        amount, percent = basket.subtotal * (voucher.percent / 100), voucher.percent
    else:
        return None
    return Discount(
        target=DiscountTarget.ORDER, amount=amount.min(room).max(Money.zero(basket.currency)), percent=percent,
        engine_id=voucher.voucher_id, label=voucher.definition, code=voucher.code,
    )


def apply_codes(
    basket: Basket, vouchers: list[SfVoucher] | None
) -> tuple[list[Discount], list[CodeResult]]:
    """Basket codes are member voucher codes; each is accepted or rejected with a kit reason."""
    discounts: list[Discount] = []
    results: list[CodeResult] = []
    room = basket.subtotal
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


def voucher_query(code: str) -> str:
    """SOQL: does a voucher with this code exist for anyone (to tell not-owned from not-found)?"""
    return f"SELECT Id, Status FROM Voucher WHERE VoucherCode = {soql_literal(code)}"


def redeem_body(settings: SalesforceSettings, action: str | None, reservation_key: str | None) -> dict[str, Any]:
    if action is None:  # before v62 the body is optional; whole value redeemed
        return {}
    body: dict[str, Any] = {"action": action}
    if reservation_key is not None:
        body["reservationKey"] = reservation_key
    return body


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


def external_number(settings: SalesforceSettings, key: str) -> str:
    """The deterministic ExternalTransactionNumber of a write, derived from its idempotency key."""
    return f"{settings.external_number_prefix}{key}"


def journals_query(program: str, numbers: Iterable[str]) -> str:
    values = ", ".join(soql_literal(n) for n in numbers)
    return (
        "SELECT Id, ExternalTransactionNumber, Status, JournalType.Name FROM TransactionJournal "
        f"WHERE ExternalTransactionNumber IN ({values}) AND LoyaltyProgram.Name = {soql_literal(program)}"
    )


@dataclass(frozen=True)
class SfJournal:
    id: str
    number: str
    status: str
    type: str | None


def journals_by_number(body: Any) -> dict[str, SfJournal]:
    """Rows of the journals query, by ExternalTransactionNumber (a cancelled one loses to a live one)."""
    found: dict[str, SfJournal] = {}
    for row in records(body):
        number, ident = row.get("ExternalTransactionNumber"), row.get("Id")
        if not isinstance(number, str) or not isinstance(ident, str):
            raise MalformedResponseError("journal row without Id or ExternalTransactionNumber", engine=ENGINE)
        jtype = row.get("JournalType")
        journal = SfJournal(ident, number, str(row.get("Status") or ""),
                            _str(jtype.get("Name")) if isinstance(jtype, Mapping) else None)
        if number not in found or found[number].status == "Cancelled":
            found[number] = journal
    return found


def _journal_base(settings: SalesforceSettings, number: str, membership: str, when: datetime) -> dict[str, Any]:
    return {
        "ActivityDate": _iso(when),
        "ExternalTransactionNumber": number,
        "LoyaltyProgramName": settings.program_name,
        "MembershipNumber": membership,
    }


def accrual_journal(settings: SalesforceSettings, order: Order, number: str) -> dict[str, Any]:
    """An Accrual journal for a placed order (TransactionAmount as a string, as documented)."""
    assert order.customer_id is not None
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
        journal["VoucherCode"] = order.voucher_codes[0]
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
        return name == wanted
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


# -------------------------------------------------------------------------------------------
# Global Promotions Management
# -------------------------------------------------------------------------------------------


def cart_request(basket: Basket, membership: str | None, execution: bool) -> dict[str, Any]:
    """Cart input: products named by code (the SKU), amounts as JSON numbers."""
    lines = []
    for line in basket.lines:
        item: dict[str, Any] = {
            "cartLineProductCode": line.sku,
            "cartLineItemQuantity": line.quantity,
            "cartLineItemAmount": line.subtotal.amount,
        }
        if execution:
            item["cartLineItemId"] = line.id
            item["cartLineNetUnitPrice__std"] = line.unit_price.amount
        if line.category:
            item["cartLineProductCategory"] = line.category
        lines.append(item)
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


def discounts_from_execution(body: Any, basket: Basket) -> tuple[list[Discount], list[UnmappedEffect]]:
    """promotion-execution output -> cart-level and line-level discounts; other rewards kept raw."""
    if not isinstance(body, Mapping) or not isinstance(body.get("cartDetails"), list):
        raise MalformedResponseError("promotion-execution answer without cartDetails", engine=ENGINE)
    currency = basket.currency
    discounts: list[Discount] = []
    unmapped: list[UnmappedEffect] = []
    line_ids = {line.id for line in basket.lines}
    for cart in body["cartDetails"]:
        if not isinstance(cart, Mapping):
            continue
        for promo in cart.get("appliedCartPromotionDetails") or []:
            amount = promo.get("cartLevelDiscountAmount")
            if amount is not None and number(amount, "cartLevelDiscountAmount") > 0:
                discounts.append(
                    Discount(target=DiscountTarget.ORDER, amount=Money.of(number(amount, "cartLevelDiscountAmount"), currency),
                             engine_id=_str(promo.get("promotionId")), label=_str(promo.get("displayName")))
                )
            rewards = promo.get("nonPricingRewards")
            if rewards:
                unmapped.append(UnmappedEffect(type="nonPricingRewards", raw=_plain(dict(promo))))
        for line in cart.get("cartLineDetails") or []:
            if not isinstance(line, Mapping):
                continue
            before, after = line.get("cartLineItemAmountBeforeDiscount"), line.get("cartLineItemAmountAfterDiscount")
            if before is None or after is None:
                continue
            cut = number(before, "cartLineItemAmountBeforeDiscount") - number(after, "cartLineItemAmountAfterDiscount")
            if cut <= 0:
                continue
            line_id = line.get("cartLineItemId")
            applied = [p for p in line.get("appliedCartLinePromotionDetails") or [] if isinstance(p, Mapping)]
            if line_id not in line_ids:
                unmapped.append(UnmappedEffect(type="line_discount_unknown_line", raw=_plain(dict(line))))
                continue
            discounts.append(
                Discount(target=DiscountTarget.LINE, line_id=line_id, amount=Money.of(cut, currency),
                         engine_id=_str(applied[0].get("promotionId")) if applied else None,
                         label=_str(applied[0].get("displayName")) if applied else None)
            )
    return discounts, unmapped


def messages_from_eligible(body: Any) -> tuple[list[Message], list[UnmappedEffect]]:
    """eligible-promotions: list only (top-level shape UNCONFIRMED); names as messages, all kept raw."""
    if not isinstance(body, Mapping | list):
        raise MalformedResponseError("eligible-promotions answer is not JSON object or array", engine=ENGINE)
    messages: list[Message] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            name = node.get("promotionName") or node.get("displayName")
            if isinstance(name, str) and "promotionId" in node:
                messages.append(Message(text=name, kind="promotion"))
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body)
    raw = dict(body) if isinstance(body, Mapping) else {"items": list(body)}
    return messages, [UnmappedEffect(type="eligible_promotions", raw=_plain(raw))] if messages else []


def earn(points: Decimal) -> list[Earn]:
    return [Earn(kind=BalanceKind.POINTS, points=points)] if points > 0 else []


def dumps(value: Any) -> str:
    """JSON text of a parsed body (for tests and debugging), Decimals exact."""
    return json.dumps(_plain(value), sort_keys=True)
