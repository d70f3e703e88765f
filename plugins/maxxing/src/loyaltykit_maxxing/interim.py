"""Helpers the core's adapter toolkit is meant to provide, kept here (and only here) until it does.

When the toolkit lands, this module is replaced mechanically: the flows import these names.

* reading engine answers: JSON with Decimal numbers, typed wire models, errors naming the body path;
* the error table as plain data (engine code -> kit error code) and the error built from it;
* the per-order export result for an error (retry later, rejected, or the whole batch stops);
* :func:`keyed_write`: look a write up by its transaction key, send it only if absent, reconcile
  after a lost answer, with at most one call per key in flight within the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from loyaltykit import wire
from loyaltykit.errors import (
    ERROR_CODES,
    AuthFailedError,
    CircuitOpenError,
    ConfigError,
    EngineError,
    EngineTimeoutError,
    EngineUnavailableError,
    LoyaltyError,
    MalformedResponseError,
    OutcomeUnknownError,
    RateLimitedError,
)
from loyaltykit.flows import EngineRequest
from loyaltykit.models import ExportStatus, OrderExportResult
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# -- reading answers ---------------------------------------------------------------------------


def json_body(response: httpx.Response, engine: str) -> Any:
    """The answer's JSON (non-integers as Decimal), or ``MalformedResponseError``."""
    try:
        return wire.loads(response.content)
    except ValueError:
        raise MalformedResponseError(
            f"body: not JSON (HTTP {response.status_code})", engine=engine, engine_code=str(response.status_code)
        ) from None


def parse_model(model: type[M], data: Any, engine: str, path: str = "body") -> M:
    """Validate ``data`` as ``model``; a mismatch names the body path (``body.transaction.amount``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join([path, *(str(p) for p in first["loc"])])
        raise MalformedResponseError(f"{where}: {first['msg']}", engine=engine) from None


# -- the error table ---------------------------------------------------------------------------

#: Engine error code -> kit error code. UNCONFIRMED for MAXXING: no error code is public; these
#: are the codes the fake answers with (see the README). Extended or overridden by a setting.
DEFAULT_ERROR_CODES: dict[str, str] = {
    "CUSTOMER_NOT_FOUND": "customer_not_found",
    "CARD_NOT_FOUND": "customer_not_found",
    "VOUCHER_NOT_FOUND": "voucher_not_found",
    "VOUCHER_EXPIRED": "voucher_expired",
    "VOUCHER_NOT_YET_VALID": "voucher_expired",
    "VOUCHER_ALREADY_BURNT": "voucher_already_redeemed",
    "VOUCHER_NOT_OWNED": "voucher_not_owned",
    "VOUCHER_USAGE_LIMIT_REACHED": "usage_limit_reached",
    "VOUCHER_CONDITIONS_NOT_MET": "voucher_conditions_not_met",
    "INSUFFICIENT_BALANCE": "insufficient_balance",
    "AMOUNT_EXCEEDS_DUE": "invalid_request",
    "CURRENCY_MISMATCH": "currency_mismatch",
    "INVALID_REQUEST": "invalid_request",
    "MISSING_FIELD": "invalid_request",
    "TRANSACTION_NOT_FOUND": "engine_error",
    "ACCESS_DENIED": "auth_failed",
    "SERVICE_UNAVAILABLE": "engine_unavailable",
}


def error_from_table(
    table: dict[str, str], engine_code: str, message: str | None, *, engine: str, status: int,
    patterns: dict[str, str] | None = None,
) -> LoyaltyError:
    """The kit error for an engine error code, else for the first message fragment in ``patterns``
    (lower-case fragment -> kit code); otherwise ``EngineError`` carrying the engine's code."""
    kit_code = table.get(engine_code.strip().upper())
    if kit_code is None and message and patterns:
        lowered = message.lower()
        kit_code = next((code for fragment, code in patterns.items() if fragment in lowered), None)
    cls = ERROR_CODES.get(kit_code, EngineError) if kit_code else EngineError
    text = f"engine refused the request: {engine_code} (HTTP {status})"
    return cls(text, engine=engine, engine_code=engine_code, engine_message=message)


# -- export results ----------------------------------------------------------------------------

#: Errors after which an order stays queued and is sent again later.
RETRY_LATER_ERRORS = (OutcomeUnknownError, EngineUnavailableError, EngineTimeoutError, RateLimitedError,
                      MalformedResponseError)
#: Errors that stop the whole batch (nothing after them can succeed either).
BATCH_STOPPING_ERRORS = (AuthFailedError, ConfigError, CircuitOpenError)


def export_result_from_error(order_ref: str, exc: LoyaltyError) -> OrderExportResult:
    if isinstance(exc, BATCH_STOPPING_ERRORS):
        raise exc
    status = ExportStatus.RETRY_LATER if isinstance(exc, RETRY_LATER_ERRORS) else ExportStatus.REJECTED
    return OrderExportResult(order_ref=order_ref, status=status, reason=exc.message,
                             error_code=exc.engine_code or exc.code)


# -- reconcile before re-sending ---------------------------------------------------------------

_in_flight: set[tuple[str, str]] = set()
_in_flight_lock = threading.Lock()


@contextmanager
def one_in_flight(scope: str, key: str) -> Iterator[None]:
    """At most one call per (scope, key) at a time in this process; a second one is told to retry.

    Refusing (rather than waiting) keeps async flows off a blocking lock; the caller retries with
    the same key and the look-up then answers it.
    """
    token = (scope, key)
    with _in_flight_lock:
        if token in _in_flight:
            raise OutcomeUnknownError(
                "another call with this idempotency key is in flight; retry with the same key",
                idempotency_key=key, retryable=True,
            )
        _in_flight.add(token)
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight.discard(token)


def keyed_write(
    *,
    scope: str,
    key: str,
    write: EngineRequest,
    lookup: EngineRequest,
    parse_write: Callable[[httpx.Response], T],
    parse_lookup: Callable[[httpx.Response], T | None],
) -> Generator[EngineRequest, httpx.Response, tuple[T, bool]]:
    """Send a write the engine does not de-duplicate, exactly once per key.

    Returns ``(result, replayed)``. The effect is looked up by its key first (a repeated call is
    answered from it, ``replayed=True``); after a lost answer it is looked up again and re-sent
    once only if absent. If the look-up fails, the original ``OutcomeUnknownError`` propagates.
    """
    with one_in_flight(scope, key):
        existing = parse_lookup((yield lookup))
        if existing is not None:
            return existing, True
        try:
            response = yield write
        except OutcomeUnknownError as lost:
            try:
                existing = parse_lookup((yield lookup))
            except LoyaltyError:
                raise lost from None
            if existing is not None:
                return existing, False
            response = yield write  # absent: not applied; a second loss propagates as unknown
        return parse_write(response), False
