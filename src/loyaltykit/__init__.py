"""loyaltykit: loyalty and promotions at checkout, against any loyalty engine."""

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
    InvalidRequestError,
    LoyaltyError,
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

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_")]
