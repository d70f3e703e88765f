"""loyaltykit: loyalty and promotions at checkout, against any loyalty engine.

The public names below are imported on first use (module ``__getattr__``), so ``import loyaltykit``
stays cheap for tools that only need plugin discovery or the CLI; ``from loyaltykit import Loyalty``
works exactly as an eager import would.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> submodule defining it
_EXPORTS: dict[str, str] = {
    "EngineAdapter": "adapter",
    "Capabilities": "capabilities",
    "Capability": "capabilities",
    "ERROR_CODES": "errors",
    "AuthFailedError": "errors",
    "CircuitOpenError": "errors",
    "ConfigError": "errors",
    "CurrencyMismatchError": "errors",
    "CustomerNotFoundError": "errors",
    "EngineError": "errors",
    "EngineTimeoutError": "errors",
    "EngineUnavailableError": "errors",
    "InsufficientBalanceError": "errors",
    "InvalidDataError": "errors",
    "InvalidRequestError": "errors",
    "OrderInFlightError": "errors",
    "LoyaltyError": "errors",
    "MalformedResponseError": "errors",
    "NotSupportedError": "errors",
    "OutcomeUnknownError": "errors",
    "RateLimitedError": "errors",
    "UsageLimitReachedError": "errors",
    "VoucherAlreadyRedeemedError": "errors",
    "VoucherConditionsNotMetError": "errors",
    "VoucherError": "errors",
    "VoucherExpiredError": "errors",
    "VoucherNotFoundError": "errors",
    "VoucherNotOwnedError": "errors",
    "AsyncLoyalty": "facade",
    "Loyalty": "facade",
    "CallContext": "flows",
    "EngineRequest": "flows",
    "Flow": "flows",
    "hookimpl": "hookspecs",
    "EngineClientConfig": "http",
    "RetryPolicy": "http",
    "Service": "http",
    "Balance": "models",
    "BalanceKind": "models",
    "Basket": "models",
    "CashbackSpend": "models",
    "CatalogItem": "models",
    "CodeResult": "models",
    "CodeStatus": "models",
    "Customer": "models",
    "CustomerIdentifier": "models",
    "Discount": "models",
    "DiscountTarget": "models",
    "Earn": "models",
    "Evaluation": "models",
    "ExportReport": "models",
    "ExportStatus": "models",
    "FreeItem": "models",
    "IdentifierKind": "models",
    "Line": "models",
    "Message": "models",
    "Offer": "models",
    "OfferKind": "models",
    "Order": "models",
    "OrderExportResult": "models",
    "ProductPrice": "models",
    "ProductQuery": "models",
    "Receipt": "models",
    "RedemptionResult": "models",
    "RedemptionStatus": "models",
    "LineAllocation": "models",
    "RefundBreakdown": "models",
    "RefundedLine": "models",
    "RefundLine": "models",
    "Reversal": "models",
    "ReversalKind": "models",
    "ReversalResult": "models",
    "SpendResult": "models",
    "UnmappedEffect": "models",
    "VoucherRedemption": "models",
    "Money": "money",
    "LoyaltySettings": "settings",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    try:  # a submodule: loyaltykit.plugins, loyaltykit.testing, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from .adapter import EngineAdapter
    from .capabilities import Capabilities, Capability
    from .errors import (
        ERROR_CODES,
        AuthFailedError,
        CircuitOpenError,
        ConfigError,
        CurrencyMismatchError,
        CustomerNotFoundError,
        EngineError,
        EngineTimeoutError,
        EngineUnavailableError,
        InsufficientBalanceError,
        InvalidDataError,
        InvalidRequestError,
        LoyaltyError,
        OrderInFlightError,
        MalformedResponseError,
        NotSupportedError,
        OutcomeUnknownError,
        RateLimitedError,
        UsageLimitReachedError,
        VoucherAlreadyRedeemedError,
        VoucherConditionsNotMetError,
        VoucherError,
        VoucherExpiredError,
        VoucherNotFoundError,
        VoucherNotOwnedError,
    )
    from .facade import AsyncLoyalty, Loyalty
    from .flows import CallContext, EngineRequest, Flow
    from .hookspecs import hookimpl
    from .http import EngineClientConfig, RetryPolicy, Service
    from .models import (
        Balance,
        BalanceKind,
        Basket,
        CashbackSpend,
        CatalogItem,
        CodeResult,
        CodeStatus,
        Customer,
        CustomerIdentifier,
        Discount,
        DiscountTarget,
        Earn,
        Evaluation,
        ExportReport,
        ExportStatus,
        FreeItem,
        IdentifierKind,
        Line,
        Message,
        Offer,
        OfferKind,
        Order,
        OrderExportResult,
        ProductPrice,
        ProductQuery,
        Receipt,
        RedemptionResult,
        RedemptionStatus,
        LineAllocation,
        RefundBreakdown,
        RefundedLine,
        RefundLine,
        Reversal,
        ReversalKind,
        ReversalResult,
        SpendResult,
        UnmappedEffect,
        VoucherRedemption,
    )
    from .money import Money
    from .settings import LoyaltySettings
