"""The base class of engine adapters.

An adapter subclasses :class:`EngineAdapter`, declares ``name``, ``version`` and
``capabilities``, overrides the operations it supports as flows, and returns its HTTP
configuration from :meth:`client_config`. It is published under the ``loyaltykit`` entry-point
group. The hook implementations live here, once, and delegate to the operation methods, so an
adapter author never touches pluggy::

    class AcmeAdapter(EngineAdapter):
        name = "acme"
        capabilities = Capabilities(identify_by={IdentifierKind.EMAIL})
        settings_model = AcmeSettings

        def client_config(self):
            return EngineClientConfig(engine=self.name, services={"default": Service(...)})

        def identify(self, identifier, ctx):
            response = yield EngineRequest("GET", "/members", params={"email": identifier.value})
            return transformers.customer(response)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

from .capabilities import Capabilities, Capability
from .errors import ConfigError, NotSupportedError
from .flows import CallContext, Flow
from .hookspecs import hookimpl
from .members import (
    Enrolment,
    EnrolmentResult,
    IssuedVouchers,
    MemberUpdate,
    Statement,
    StatementQuery,
    VoucherIssue,
    Wallet,
    WalletQuery,
)
from .models import (
    Basket,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    Evaluation,
    ExportReport,
    Order,
    Product,
    ProductPrice,
    ProductQuery,
    ProductSyncReport,
    RedemptionResult,
    Reversal,
    ReversalResult,
    SpendResult,
    VoucherRedemption,
)
from .operations import OPERATIONS

if TYPE_CHECKING:  # only an annotation here; importing pydantic_settings costs ~90 ms
    from pydantic_settings import BaseSettings

    from .http import EngineClientConfig  # the HTTP stack loads only for engines that speak HTTP

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")

#: capability -> the operation method that must be overridden to claim it (from the operation table)
_METHOD_FOR = {Capability(cap): op.name for op in OPERATIONS for cap in op.capabilities}


def _unsupported(adapter: EngineAdapter, operation: str) -> Flow[Any]:
    raise NotSupportedError(f"{adapter.name} does not support {operation}", engine=adapter.name, operation=operation)
    yield  # pragma: no cover - makes this a generator


class EngineAdapter:
    """Base of every engine adapter. Override the operations you support; declare them."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    #: the declaration; an instance may narrow or widen it from its settings (set in ``__init__``)
    capabilities: Capabilities = Capabilities()
    #: True for engines that run inside the shop's process (no HTTP): the async facade then runs
    #: the flow in a worker thread.
    in_process: ClassVar[bool] = False
    #: pydantic-settings model for this adapter's settings (``[engines.<name>]`` in the TOML file,
    #: ``LOYALTYKIT_<NAME>_*`` in the environment, by the model's own configuration).
    settings_model: ClassVar[type[BaseSettings] | None] = None
    #: An instance of ``settings_model`` (what was given when there is none). Typed ``Any`` because
    #: each adapter has its own model; adapters annotate it locally (``s: MySettings = self.settings``).
    settings: Any

    def __init__(self, settings: BaseModel | dict[str, Any] | None = None) -> None:
        if self.settings_model is not None:
            if isinstance(settings, self.settings_model):
                self.settings = settings
            else:
                try:
                    # another model is refused at run time (TypeError), as a ConfigError below
                    self.settings = self.settings_model(**(settings or {}))  # type: ignore[arg-type]
                except ValidationError as exc:
                    # Name the fields, never echo the values: a misspelt key may carry a secret.
                    problems = "; ".join(
                        f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
                        for error in exc.errors(include_url=False, include_input=False)
                    )
                    raise ConfigError(f"invalid settings for {self.name}: {problems}", engine=self.name) from None
                except Exception as exc:
                    raise ConfigError(f"invalid settings for {self.name}: {exc}", engine=self.name) from None
        else:
            self.settings = settings

    # -- configuration -------------------------------------------------------------------------
    def client_config(self) -> EngineClientConfig | None:
        """HTTP configuration (base URLs, auth, timeouts). ``None`` for in-process engines."""
        return None

    def close(self) -> None:
        """Release resources the adapter holds itself (database connections, say)."""

    # -- operations (flows); the defaults refuse -------------------------------------------------
    def identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Flow[Customer | None]:
        return _unsupported(self, "identify")

    def evaluate_basket(self, basket: Basket, ctx: CallContext) -> Flow[Evaluation]:
        return _unsupported(self, "evaluate_basket")

    def price_products(self, query: ProductQuery, ctx: CallContext) -> Flow[list[ProductPrice]]:
        return _unsupported(self, "price_products")

    def redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
        return _unsupported(self, "redeem_voucher")

    def spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
        return _unsupported(self, "spend_cashback")

    def export_orders(self, orders: list[Order], ctx: CallContext) -> Flow[ExportReport]:
        return _unsupported(self, "export_orders")

    def reverse(self, reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
        return _unsupported(self, "reverse")

    def sync_products(self, products: list[Product], ctx: CallContext) -> Flow[ProductSyncReport]:
        return _unsupported(self, "sync_products")

    def enrol_member(self, enrolment: Enrolment, ctx: CallContext) -> Flow[EnrolmentResult]:
        return _unsupported(self, "enrol_member")

    def update_member(self, update: MemberUpdate, ctx: CallContext) -> Flow[Customer]:
        return _unsupported(self, "update_member")

    def member_statement(self, query: StatementQuery, ctx: CallContext) -> Flow[Statement]:
        return _unsupported(self, "member_statement")

    def member_wallet(self, query: WalletQuery, ctx: CallContext) -> Flow[Wallet]:
        return _unsupported(self, "member_wallet")

    def issue_voucher(self, issue: VoucherIssue, ctx: CallContext) -> Flow[IssuedVouchers]:
        return _unsupported(self, "issue_voucher")

    # -- hook implementations: written once, here ----------------------------------------------
    @hookimpl
    def loyaltykit_identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Flow[Customer | None]:
        return self.identify(identifier, ctx)

    @hookimpl
    def loyaltykit_evaluate_basket(self, basket: Basket, ctx: CallContext) -> Flow[Evaluation]:
        return self.evaluate_basket(basket, ctx)

    @hookimpl
    def loyaltykit_price_products(self, query: ProductQuery, ctx: CallContext) -> Flow[list[ProductPrice]]:
        return self.price_products(query, ctx)

    @hookimpl
    def loyaltykit_redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
        return self.redeem_voucher(redemption, ctx)

    @hookimpl
    def loyaltykit_spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
        return self.spend_cashback(spend, ctx)

    @hookimpl
    def loyaltykit_export_orders(self, orders: list[Order], ctx: CallContext) -> Flow[ExportReport]:
        return self.export_orders(orders, ctx)

    @hookimpl
    def loyaltykit_reverse(self, reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
        return self.reverse(reversal, ctx)

    @hookimpl
    def loyaltykit_sync_products(self, products: list[Product], ctx: CallContext) -> Flow[ProductSyncReport]:
        return self.sync_products(products, ctx)

    @hookimpl
    def loyaltykit_enrol_member(self, enrolment: Enrolment, ctx: CallContext) -> Flow[EnrolmentResult]:
        return self.enrol_member(enrolment, ctx)

    @hookimpl
    def loyaltykit_update_member(self, update: MemberUpdate, ctx: CallContext) -> Flow[Customer]:
        return self.update_member(update, ctx)

    @hookimpl
    def loyaltykit_member_statement(self, query: StatementQuery, ctx: CallContext) -> Flow[Statement]:
        return self.member_statement(query, ctx)

    @hookimpl
    def loyaltykit_member_wallet(self, query: WalletQuery, ctx: CallContext) -> Flow[Wallet]:
        return self.member_wallet(query, ctx)

    @hookimpl
    def loyaltykit_issue_voucher(self, issue: VoucherIssue, ctx: CallContext) -> Flow[IssuedVouchers]:
        return self.issue_voucher(issue, ctx)

    def __repr__(self) -> str:  # settings may hold secrets: never show them
        return f"<{type(self).__name__} engine={self.name!r} version={self.version!r}>"


def validate_adapter_class(cls: type[EngineAdapter]) -> None:
    """Registration-time checks: a name, a coherent declaration, and code behind every claim."""
    if not (isinstance(cls, type) and issubclass(cls, EngineAdapter)):
        raise ConfigError(f"{cls!r} is not an EngineAdapter subclass")
    if not _NAME.match(cls.name or ""):
        raise ConfigError(f"adapter {cls.__name__} needs a name matching {_NAME.pattern}")
    if not isinstance(cls.capabilities, Capabilities):
        raise ConfigError(f"adapter {cls.name}: capabilities must be a Capabilities instance", engine=cls.name)
    problems = cls.capabilities.validate_consistency()
    for capability, method in _METHOD_FOR.items():
        if cls.capabilities.supports(capability) and getattr(cls, method) is getattr(EngineAdapter, method):
            problems.append(f"declares {capability.value} but does not implement {method}()")
    if not cls.in_process and cls.client_config is EngineAdapter.client_config:
        problems.append("an HTTP adapter must implement client_config()")
    if problems:
        raise ConfigError(f"adapter {cls.name} is invalid: " + "; ".join(problems), engine=cls.name)
