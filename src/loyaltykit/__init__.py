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
    from . import wire as wire
    from .adapter import EngineAdapter as EngineAdapter
    from .capabilities import Capabilities as Capabilities
    from .capabilities import Capability as Capability
    from .errors import (
        ERROR_CODES as ERROR_CODES,
    )
    from .errors import (
        AuthFailedError as AuthFailedError,
    )
    from .errors import (
        CircuitOpenError as CircuitOpenError,
    )
    from .errors import (
        ConfigError as ConfigError,
    )
    from .errors import (
        CurrencyMismatchError as CurrencyMismatchError,
    )
    from .errors import (
        CustomerNotFoundError as CustomerNotFoundError,
    )
    from .errors import (
        EngineError as EngineError,
    )
    from .errors import (
        EngineTimeoutError as EngineTimeoutError,
    )
    from .errors import (
        EngineUnavailableError as EngineUnavailableError,
    )
    from .errors import (
        InsufficientBalanceError as InsufficientBalanceError,
    )
    from .errors import (
        InvalidDataError as InvalidDataError,
    )
    from .errors import (
        InvalidRequestError as InvalidRequestError,
    )
    from .errors import (
        LoyaltyError as LoyaltyError,
    )
    from .errors import (
        MalformedResponseError as MalformedResponseError,
    )
    from .errors import (
        NotSupportedError as NotSupportedError,
    )
    from .errors import (
        OrderInFlightError as OrderInFlightError,
    )
    from .errors import (
        OutcomeUnknownError as OutcomeUnknownError,
    )
    from .errors import (
        RateLimitedError as RateLimitedError,
    )
    from .errors import (
        UsageLimitReachedError as UsageLimitReachedError,
    )
    from .errors import (
        VoucherAlreadyRedeemedError as VoucherAlreadyRedeemedError,
    )
    from .errors import (
        VoucherConditionsNotMetError as VoucherConditionsNotMetError,
    )
    from .errors import (
        VoucherError as VoucherError,
    )
    from .errors import (
        VoucherExpiredError as VoucherExpiredError,
    )
    from .errors import (
        VoucherNotFoundError as VoucherNotFoundError,
    )
    from .errors import (
        VoucherNotOwnedError as VoucherNotOwnedError,
    )
    from .facade import AsyncLoyalty as AsyncLoyalty
    from .facade import Loyalty as Loyalty
    from .flows import CallContext as CallContext
    from .flows import EngineRequest as EngineRequest
    from .flows import Flow as Flow
    from .hookspecs import hookimpl as hookimpl
    from .http import EngineClientConfig as EngineClientConfig
    from .http import RetryPolicy as RetryPolicy
    from .http import Service as Service
    from .members import (
        Consent as Consent,
    )
    from .members import (
        Enrolment as Enrolment,
    )
    from .members import (
        EnrolmentResult as EnrolmentResult,
    )
    from .members import (
        MemberUpdate as MemberUpdate,
    )
    from .members import (
        Statement as Statement,
    )
    from .members import (
        StatementEntry as StatementEntry,
    )
    from .members import (
        StatementEntryKind as StatementEntryKind,
    )
    from .members import (
        StatementQuery as StatementQuery,
    )
    from .members import (
        Wallet as Wallet,
    )
    from .members import (
        WalletQuery as WalletQuery,
    )
    from .models import (
        Balance as Balance,
    )
    from .models import (
        BalanceKind as BalanceKind,
    )
    from .models import (
        Basket as Basket,
    )
    from .models import (
        CashbackSpend as CashbackSpend,
    )
    from .models import (
        CatalogItem as CatalogItem,
    )
    from .models import (
        CodeResult as CodeResult,
    )
    from .models import (
        CodeStatus as CodeStatus,
    )
    from .models import (
        Customer as Customer,
    )
    from .models import (
        CustomerIdentifier as CustomerIdentifier,
    )
    from .models import (
        Discount as Discount,
    )
    from .models import (
        DiscountTarget as DiscountTarget,
    )
    from .models import (
        Earn as Earn,
    )
    from .models import (
        Evaluation as Evaluation,
    )
    from .models import (
        ExportReport as ExportReport,
    )
    from .models import (
        ExportStatus as ExportStatus,
    )
    from .models import (
        FreeItem as FreeItem,
    )
    from .models import (
        IdentifierKind as IdentifierKind,
    )
    from .models import (
        Line as Line,
    )
    from .models import (
        LineAllocation as LineAllocation,
    )
    from .models import (
        Message as Message,
    )
    from .models import (
        Offer as Offer,
    )
    from .models import (
        OfferKind as OfferKind,
    )
    from .models import (
        Order as Order,
    )
    from .models import (
        OrderExportResult as OrderExportResult,
    )
    from .models import (
        Product as Product,
    )
    from .models import (
        ProductPrice as ProductPrice,
    )
    from .models import (
        ProductQuery as ProductQuery,
    )
    from .models import (
        ProductSyncReport as ProductSyncReport,
    )
    from .models import (
        Receipt as Receipt,
    )
    from .models import (
        RedemptionResult as RedemptionResult,
    )
    from .models import (
        RedemptionStatus as RedemptionStatus,
    )
    from .models import (
        RefundBreakdown as RefundBreakdown,
    )
    from .models import (
        RefundedLine as RefundedLine,
    )
    from .models import (
        RefundLine as RefundLine,
    )
    from .models import (
        Reversal as Reversal,
    )
    from .models import (
        ReversalKind as ReversalKind,
    )
    from .models import (
        ReversalResult as ReversalResult,
    )
    from .models import (
        SpendResult as SpendResult,
    )
    from .models import (
        UnmappedEffect as UnmappedEffect,
    )
    from .models import (
        VoucherRedemption as VoucherRedemption,
    )
    from .money import Money as Money
    from .settings import LoyaltySettings as LoyaltySettings
