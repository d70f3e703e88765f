"""loyaltykit: loyalty and promotions at checkout, against any loyalty engine.

The public names below are imported on first use (module ``__getattr__``), so ``import loyaltykit``
stays cheap for tools that only need plugin discovery or the CLI; ``from loyaltykit import Loyalty``
works exactly as an eager import would.
"""

from __future__ import annotations

import importlib

# Not ``from typing import TYPE_CHECKING``: importing typing (and re, collections) at start-up is
# a measurable part of ``import loyaltykit``; type checkers treat this name the same way.
TYPE_CHECKING = False

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
    "PointsLine": "models",
    "OfferKind": "models",
    "Order": "models",
    "OrderExportResult": "models",
    "Product": "models",
    "ProductPrice": "models",
    "ProductQuery": "models",
    "ProductSyncReport": "models",
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
    "Consent": "members",
    "Enrolment": "members",
    "EnrolmentResult": "members",
    "IssuedVouchers": "members",
    "VoucherIssue": "members",
    "MemberField": "members",
    "MemberUpdate": "members",
    "Statement": "members",
    "StatementEntry": "members",
    "StatementEntryKind": "members",
    "StatementQuery": "members",
    "Wallet": "members",
    "WalletQuery": "members",
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


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports ("X as X": re-exported under mypy --strict)
    from typing import Any

    from . import wire as wire
    from .adapter import EngineAdapter as EngineAdapter
    from .capabilities import Capabilities as Capabilities, Capability as Capability
    from .errors import (
        ERROR_CODES as ERROR_CODES,
        AuthFailedError as AuthFailedError,
        CircuitOpenError as CircuitOpenError,
        ConfigError as ConfigError,
        CurrencyMismatchError as CurrencyMismatchError,
        CustomerNotFoundError as CustomerNotFoundError,
        EngineError as EngineError,
        EngineTimeoutError as EngineTimeoutError,
        EngineUnavailableError as EngineUnavailableError,
        InsufficientBalanceError as InsufficientBalanceError,
        InvalidDataError as InvalidDataError,
        InvalidRequestError as InvalidRequestError,
        LoyaltyError as LoyaltyError,
        MalformedResponseError as MalformedResponseError,
        NotSupportedError as NotSupportedError,
        OrderInFlightError as OrderInFlightError,
        OutcomeUnknownError as OutcomeUnknownError,
        RateLimitedError as RateLimitedError,
        UsageLimitReachedError as UsageLimitReachedError,
        VoucherAlreadyRedeemedError as VoucherAlreadyRedeemedError,
        VoucherConditionsNotMetError as VoucherConditionsNotMetError,
        VoucherError as VoucherError,
        VoucherExpiredError as VoucherExpiredError,
        VoucherNotFoundError as VoucherNotFoundError,
        VoucherNotOwnedError as VoucherNotOwnedError,
    )
    from .facade import AsyncLoyalty as AsyncLoyalty, Loyalty as Loyalty
    from .flows import CallContext as CallContext, EngineRequest as EngineRequest, Flow as Flow
    from .hookspecs import hookimpl as hookimpl
    from .http import EngineClientConfig as EngineClientConfig, RetryPolicy as RetryPolicy, Service as Service
    from .members import (
        Consent as Consent,
        Enrolment as Enrolment,
        EnrolmentResult as EnrolmentResult,
        IssuedVouchers as IssuedVouchers,
        MemberField as MemberField,
        MemberUpdate as MemberUpdate,
        Statement as Statement,
        StatementEntry as StatementEntry,
        StatementEntryKind as StatementEntryKind,
        StatementQuery as StatementQuery,
        VoucherIssue as VoucherIssue,
        Wallet as Wallet,
        WalletQuery as WalletQuery,
    )
    from .models import (
        Balance as Balance,
        BalanceKind as BalanceKind,
        Basket as Basket,
        CashbackSpend as CashbackSpend,
        CatalogItem as CatalogItem,
        CodeResult as CodeResult,
        CodeStatus as CodeStatus,
        Customer as Customer,
        CustomerIdentifier as CustomerIdentifier,
        Discount as Discount,
        DiscountTarget as DiscountTarget,
        Earn as Earn,
        Evaluation as Evaluation,
        ExportReport as ExportReport,
        ExportStatus as ExportStatus,
        FreeItem as FreeItem,
        IdentifierKind as IdentifierKind,
        Line as Line,
        LineAllocation as LineAllocation,
        Message as Message,
        Offer as Offer,
        OfferKind as OfferKind,
        Order as Order,
        OrderExportResult as OrderExportResult,
        PointsLine as PointsLine,
        Product as Product,
        ProductPrice as ProductPrice,
        ProductQuery as ProductQuery,
        ProductSyncReport as ProductSyncReport,
        Receipt as Receipt,
        RedemptionResult as RedemptionResult,
        RedemptionStatus as RedemptionStatus,
        RefundBreakdown as RefundBreakdown,
        RefundedLine as RefundedLine,
        RefundLine as RefundLine,
        Reversal as Reversal,
        ReversalKind as ReversalKind,
        ReversalResult as ReversalResult,
        SpendResult as SpendResult,
        UnmappedEffect as UnmappedEffect,
        VoucherRedemption as VoucherRedemption,
    )
    from .money import Money as Money
    from .settings import LoyaltySettings as LoyaltySettings
