"""Generic adapter helpers, kept in one place: engine-answer parsing, the error table, the per-order
export result of an error, and reconcile-before-resend with one in-flight call per key.

Nothing here knows CRM.COM. The core's adapter toolkit is meant to provide these; when it lands,
this module is replaced by imports from it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from loyaltykit import wire
from loyaltykit.errors import (
    ERROR_CODES,
    UNAVAILABLE_ERRORS,
    AuthFailedError,
    CircuitOpenError,
    ConfigError,
    EngineError,
    LoyaltyError,
    MalformedResponseError,
    OutcomeUnknownError,
)
from loyaltykit.flows import EngineRequest
from loyaltykit.models import ExportStatus, OrderExportResult

Sub = Generator[EngineRequest, httpx.Response, Any]


# -- parsing engine answers ------------------------------------------------------------------------


def json_body(response: httpx.Response, engine: str) -> Any:
    """The body as JSON with Decimal numbers, or MalformedResponseError naming the HTTP status."""
    try:
        return wire.loads(response.content)
    except ValueError:
        raise MalformedResponseError(
            f"engine answered HTTP {response.status_code} with a body that is not JSON", engine=engine
        ) from None


def field(body: Any, path: str, engine: str, *, optional: bool = False) -> Any:
    """``body`` at a dotted ``path`` ("data.products_set.0.total_amount"); a missing field is a
    MalformedResponseError naming the path (or ``None`` when ``optional``)."""
    value = body
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            if optional:
                return None
            raise MalformedResponseError(f"the engine's answer has no {path}", engine=engine)
    return value


def number(value: Any, path: str, engine: str, *, optional: bool = False) -> Decimal | None:
    """A JSON number (or numeric string) as a finite Decimal; anything else names ``path``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise MalformedResponseError(f"{path} is not a number", engine=engine)
    try:
        result = Decimal(value)
    except (InvalidOperation, ValueError):
        raise MalformedResponseError(f"{path} is not a number", engine=engine) from None
    if not result.is_finite():
        raise MalformedResponseError(f"{path} is not a finite number", engine=engine)
    return result


# -- the error table -------------------------------------------------------------------------------


class DuplicateReferenceError(EngineError):
    """The engine refused a write because its reference is already used: reconcile, do not resend."""


class AlreadyCancelledError(EngineError):
    """The engine refused a cancel of something already cancelled: the cancel has happened."""


_LOCAL = {"duplicate_reference": DuplicateReferenceError, "already_cancelled": AlreadyCancelledError}


class ErrorTable:
    """(regex, kit error code) pairs as data; the first pattern matching the engine's code or
    message picks the kit error class. No match: ``EngineError`` with the engine's code."""

    def __init__(self, patterns: Iterable[tuple[str, str]], engine: str) -> None:
        self.engine = engine
        self.rules: list[tuple[re.Pattern[str], type[LoyaltyError]]] = []
        for pattern, code in patterns:
            cls = _LOCAL.get(code) or ERROR_CODES.get(code)
            if cls is None:
                raise ConfigError(f"error_patterns: unknown kit error code {code!r}", engine=engine)
            try:
                self.rules.append((re.compile(pattern, re.IGNORECASE), cls))
            except re.error as exc:
                raise ConfigError(f"error_patterns: bad regex {pattern!r}: {exc}", engine=engine) from None

    def error(self, code: str, message: str, *, operation: str | None = None) -> LoyaltyError:
        text = f"{code} {message}"
        cls: type[LoyaltyError] = EngineError
        for pattern, candidate in self.rules:
            if pattern.search(text):
                cls = candidate
                break
        return cls(
            f"engine refused the request: {message or code}",
            engine=self.engine, operation=operation, engine_code=code, engine_message=message or None,
        )


# -- export results ----------------------------------------------------------------------------------


def export_result(order_ref: str, exc: LoyaltyError) -> OrderExportResult:
    """The per-order result of a failed export: unavailability keeps the order queued
    (retry_later); a refusal of the order itself rejects it. Batch-wide failures re-raise."""
    if isinstance(exc, AuthFailedError | ConfigError | CircuitOpenError):
        raise exc
    status = ExportStatus.RETRY_LATER if isinstance(exc, UNAVAILABLE_ERRORS) else ExportStatus.REJECTED
    # A classified refusal keeps the kit's code; an unclassified one the engine's own.
    code = exc.engine_code if type(exc) is EngineError and exc.engine_code else exc.code
    return OrderExportResult(order_ref=order_ref, status=status, reason=exc.message, error_code=code)


# -- reconcile before resend -------------------------------------------------------------------------


class InFlight:
    """One in-flight write per key within a process. A second caller with the same key does not
    wait (a flow may run on an event loop): it is told the outcome is not known yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()

    @contextmanager
    def hold(self, key: str, engine: str) -> Iterator[None]:
        with self._lock:
            if key in self._keys:
                raise OutcomeUnknownError(
                    "another call with this idempotency key is in flight; retry with the same key",
                    engine=engine, retryable=True, idempotency_key=key,
                )
            self._keys.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._keys.discard(key)


def reconciled(send: Callable[[], Sub], find: Callable[[], Sub], *, enabled: bool = True) -> Sub:
    """Send a write the engine does not de-duplicate. After a lost answer (OutcomeUnknownError)
    or a duplicate-reference refusal, look the effect up by its reference: found -> return it;
    not found -> send once more. A failed look-up re-raises the original error: never re-post
    blind. Returns ``(sent_result, None)`` or ``(None, found)``."""
    try:
        return (yield from send()), None
    except (OutcomeUnknownError, DuplicateReferenceError) as lost:
        if not enabled:
            if isinstance(lost, OutcomeUnknownError):
                return (yield from send()), None
            raise
        try:
            found = yield from find()
        except LoyaltyError:
            raise lost from None
        if found is not None:
            return None, found
        if isinstance(lost, DuplicateReferenceError):
            raise
        return (yield from send()), None
