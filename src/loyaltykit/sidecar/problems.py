"""Kit errors as RFC 9457 ``application/problem+json`` responses."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from http import HTTPStatus

from ..errors import (
    AuthFailedError,
    ConfigError,
    CustomerNotFoundError,
    EngineError,
    EngineTimeoutError,
    EngineUnavailableError,
    InsufficientBalanceError,
    InvalidRequestError,
    LoyaltyError,
    NotSupportedError,
    OrderInFlightError,
    OutcomeUnknownError,
    RateLimitedError,
    VoucherError,
    VoucherNotFoundError,
)
from ..scrub import scrub_text

PROBLEM_JSON = "application/problem+json"

# A problem document as sent: RFC 9457 members and the kit's extensions (see schemas.Problem).
ProblemBody = dict[str, str | int | bool]

# Most specific class first.
_STATUS: tuple[tuple[type[LoyaltyError], int], ...] = (
    (InvalidRequestError, 400),  # also currency_mismatch
    (CustomerNotFoundError, 404),
    (VoucherNotFoundError, 404),
    (VoucherError, 422),  # expired, already redeemed, not owned, usage limit, conditions not met
    (InsufficientBalanceError, 422),
    (NotSupportedError, 501),
    (OrderInFlightError, 409),  # a cancel while a worker exports the order: retry shortly
    (RateLimitedError, 429),
    (EngineUnavailableError, 503),  # also an open circuit
    (EngineTimeoutError, 504),
    (OutcomeUnknownError, 504),
    (AuthFailedError, 502),  # the engine refused *our* credentials: a gateway problem, not the caller's
    (EngineError, 502),  # also malformed_response
    (ConfigError, 500),
)


def status_of(error: LoyaltyError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 502


def problem(status: int, code: str, detail: str, request_id: str, *, retryable: bool = False,
            instance: str | None = None, **extra: str | int | None) -> ProblemBody:
    body: ProblemBody = {
        "type": f"urn:loyaltykit:error:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "retryable": retryable,
        "request_id": request_id,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


# Request fields whose values are customer data (codes, identifiers): masked in a problem's detail.
SENSITIVE_FIELDS = frozenset({"code", "codes", "coupon_codes", "voucher_codes", "value", "customer_id", "email",
                              "phone", "card", "membership", "external_id", "first_name", "last_name",
                              "display_name", "birth_date"})


def sensitive_values(body: bytes) -> tuple[str, ...]:
    """The customer data a request body carries (voucher and promo codes, identifiers): an engine's
    message may quote them ("voucher SUMMER-ANN-7 expired"), and a problem's detail must not."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return ()
    found: list[str] = []

    def walk(node: object, sensitive: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, key in SENSITIVE_FIELDS)
        elif isinstance(node, list):
            for item in node:
                walk(item, sensitive)
        elif sensitive and isinstance(node, str):
            found.append(node)

    walk(data, False)
    return tuple(found)


def from_error(error: LoyaltyError, request_id: str, instance: str | None = None,
               scrub: Iterable[str] = ()) -> tuple[int, ProblemBody, dict[str, str]]:
    """(status, problem body, extra headers) for a kit error. The kit scrubs its messages of what it
    knows; ``scrub`` adds the customer data of the request (an in-process engine may quote a code)."""
    status = status_of(error)
    headers: dict[str, str] = {}
    retry_after = None
    if isinstance(error, RateLimitedError):
        retry_after = max(1, math.ceil(error.retry_after or 1))
    elif isinstance(error, EngineUnavailableError):
        retry_after = 5
    elif isinstance(error, OrderInFlightError):
        retry_after = 1
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = problem(
        status, error.code, scrub_text(error.message, scrub), request_id, retryable=error.retryable, instance=instance,
        field=error.field, engine=error.engine, operation=error.operation, engine_code=error.engine_code,
        idempotency_key=getattr(error, "idempotency_key", None), retry_after=retry_after,
    )
    return status, body, headers


def dumps(body: ProblemBody) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
