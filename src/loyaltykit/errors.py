"""One error vocabulary for every engine.

Every error has a stable ``code`` (part of the public API: shops switch on it), the ``engine`` and
``operation`` it came from, whether a later retry may succeed (``retryable``), and the engine's own
code and message. Messages are scrubbed of secrets and customer data before they are stored, so
``str(err)`` and ``repr(err)`` are safe to log.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LoyaltyError(Exception):
    """Base of every error the kit raises."""

    code: ClassVar[str] = "engine_error"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        engine: str | None = None,
        operation: str | None = None,
        retryable: bool | None = None,
        engine_code: str | None = None,
        engine_message: str | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        from .scrub import scrub_text  # local: scrub imports nothing from here, but keep it lazy

        self.message = scrub_text(message or self.code.replace("_", " "))
        self.engine = engine
        self.operation = operation
        self.retryable = self.default_retryable if retryable is None else retryable
        self.engine_code = engine_code
        self.engine_message = scrub_text(engine_message) if engine_message else None
        self.field = field
        self.details = details or {}
        super().__init__(self.message)

    def with_context(self, *, engine: str | None = None, operation: str | None = None) -> LoyaltyError:
        """Fill in engine/operation where the raiser did not know them."""
        if self.engine is None:
            self.engine = engine
        if self.operation is None:
            self.operation = operation
        return self

    def __str__(self) -> str:
        parts = [f"[{self.code}] {self.message}"]
        if self.field:
            parts.append(f"field={self.field}")
        if self.engine:
            parts.append(f"engine={self.engine}")
        if self.operation:
            parts.append(f"operation={self.operation}")
        if self.engine_code:
            parts.append(f"engine_code={self.engine_code}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, retryable={self.retryable})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "engine": self.engine,
            "operation": self.operation,
            "retryable": self.retryable,
            "engine_code": self.engine_code,
            "engine_message": self.engine_message,
            "field": self.field,
        }


class InvalidRequestError(LoyaltyError, ValueError):
    """The input is malformed; nothing was sent to the engine. ``field`` names the culprit."""

    code = "invalid_request"


class InvalidDataError(InvalidRequestError):
    """A kit model was built from bad data (pydantic's error, in the kit's vocabulary).

    ``field`` is the path inside the model (``lines.0.quantity``); :meth:`under` prefixes it with the
    argument's name when the facade converts a mapping. Raised while reading an engine's answer, the
    facade reports it as a :class:`MalformedResponseError` instead (the shop's input was fine).
    """

    def __init__(self, message: str = "", *, reason: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason or self.message

    def under(self, prefix: str) -> InvalidDataError:
        field = f"{prefix}.{self.field}" if self.field else prefix
        return InvalidDataError(f"{field}: {self.reason}", field=field, reason=self.reason, details=self.details)


def invalid_data(exc: Exception, prefix: str = "") -> InvalidDataError:
    """Turn a pydantic ``ValidationError`` into an :class:`InvalidDataError` naming the first bad field.

    The input value is never echoed (it may be a customer's identifier or a code)."""
    first = exc.errors(include_url=False, include_input=False)[0]  # type: ignore[attr-defined]
    parts = [str(part) for part in (prefix, *first["loc"]) if part != ""]
    inner = (first.get("ctx") or {}).get("error")
    if isinstance(inner, InvalidDataError):
        # a nested kit model refused its data: its own error already names the field inside it
        if inner.field:
            parts.append(inner.field)
        message = inner.reason
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
        # Model-level validators put the field path at the start of their message ("lines.1.id: ..."),
        # relative to the model that raised it, which may be nested (``redemption.basket``).
        if ": " in message and first["type"] == "value_error":
            head, _, tail = message.partition(": ")
            if head.replace(".", "").replace("_", "").isalnum():
                parts.append(head)
                message = tail
    loc = ".".join(parts)
    return InvalidDataError(f"{loc}: {message}" if loc else message, field=loc or None, reason=message)


class ConfigError(LoyaltyError):
    """Settings, plugin selection or a program file is wrong."""

    code = "config_error"


class CurrencyMismatchError(InvalidRequestError):
    code = "currency_mismatch"


class NotSupportedError(LoyaltyError):
    """The engine (or this adapter) does not offer the operation or option."""

    code = "not_supported"


class CustomerNotFoundError(LoyaltyError):
    code = "customer_not_found"


class VoucherError(LoyaltyError):
    """Base of voucher rejections; ``reason`` equals ``code``."""

    code = "voucher_invalid"

    @property
    def reason(self) -> str:
        return self.code


class VoucherNotFoundError(VoucherError):
    code = "voucher_not_found"


class VoucherExpiredError(VoucherError):
    code = "voucher_expired"


class VoucherAlreadyRedeemedError(VoucherError):
    code = "voucher_already_redeemed"


class VoucherNotOwnedError(VoucherError):
    code = "voucher_not_owned"


class UsageLimitReachedError(VoucherError):
    code = "usage_limit_reached"


class VoucherConditionsNotMetError(VoucherError):
    """The voucher exists and is valid, but the basket does not qualify (e.g. minimum spend)."""

    code = "voucher_conditions_not_met"


class InsufficientBalanceError(LoyaltyError):
    code = "insufficient_balance"


class EngineError(LoyaltyError):
    """The engine refused the request for a reason with no kit code; see ``engine_code``."""

    code = "engine_error"


class MalformedResponseError(EngineError):
    """The engine's answer could not be understood (bad JSON, missing fields)."""

    code = "malformed_response"


class AuthFailedError(LoyaltyError):
    code = "auth_failed"


class EngineUnavailableError(LoyaltyError):
    """The engine could not be reached or answered 5xx; nothing was applied."""

    code = "engine_unavailable"
    default_retryable = True


class CircuitOpenError(EngineUnavailableError):
    """The circuit breaker is open: calls to this engine are refused without being sent."""


class EngineTimeoutError(LoyaltyError):
    """A read timed out, or the per-call deadline ran out; for reads only (writes: OutcomeUnknown)."""

    code = "timeout"
    default_retryable = True


class RateLimitedError(LoyaltyError):
    code = "rate_limited"
    default_retryable = True

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class OutcomeUnknownError(LoyaltyError):
    """A write was sent but its result could not be established within the deadline.

    It may or may not have been applied. ``idempotency_key`` and ``reconcile`` carry what is needed
    to find out (or to retry safely, when the engine honours the key). Never re-post blindly.
    """

    code = "outcome_unknown"

    def __init__(
        self,
        message: str = "",
        *,
        idempotency_key: str | None = None,
        reconcile: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.idempotency_key = idempotency_key
        self.reconcile = reconcile or {}


class OrderInFlightError(LoyaltyError):
    """The order is being exported right now (a worker holds it): it can be cancelled once that
    export has finished. Call the same cancel again shortly; it is keyed, so it is applied once."""

    code = "order_in_flight"
    default_retryable = True


#: Every stable code, for documentation and for tests that check the vocabulary is complete.
ERROR_CODES: dict[str, type[LoyaltyError]] = {
    cls.code: cls
    for cls in (
        LoyaltyError,
        InvalidRequestError,
        ConfigError,
        CurrencyMismatchError,
        NotSupportedError,
        CustomerNotFoundError,
        VoucherError,
        VoucherNotFoundError,
        VoucherExpiredError,
        VoucherAlreadyRedeemedError,
        VoucherNotOwnedError,
        UsageLimitReachedError,
        VoucherConditionsNotMetError,
        InsufficientBalanceError,
        EngineError,
        MalformedResponseError,
        AuthFailedError,
        EngineUnavailableError,
        EngineTimeoutError,
        RateLimitedError,
        OutcomeUnknownError,
        OrderInFlightError,
    )
}

#: Errors after which an evaluation falls back to a degraded quote (fail open).
UNAVAILABLE_ERRORS: tuple[type[LoyaltyError], ...] = (
    EngineUnavailableError,
    EngineTimeoutError,
    RateLimitedError,
    AuthFailedError,
    OutcomeUnknownError,
    MalformedResponseError,
)
