"""The embedded engine as a loyaltykit adapter plugin (entry point ``local``).

Each operation is an in-process flow (:func:`loyaltykit.flows.in_process`): it does its work when
the facade drives it — on the calling thread for :class:`loyaltykit.Loyalty`, in a worker thread
for :class:`loyaltykit.AsyncLoyalty` — and never yields an HTTP request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from loyaltykit import (
    BalanceKind,
    Capabilities,
    EngineAdapter,
    EngineUnavailableError,
    IdentifierKind,
    MemberField,
    OutcomeUnknownError,
    flows,
)

from . import __version__

if TYPE_CHECKING:  # the engine loads when an adapter is built, not when plugins are discovered
    from loyaltykit.flows import CallContext
    from loyaltykit.members import (
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
    from loyaltykit.models import (
        Basket,
        CashbackSpend,
        Customer,
        CustomerIdentifier,
        Evaluation,
        ExportReport,
        Order,
        ProductPrice,
        ProductQuery,
        RedemptionResult,
        Reversal,
        ReversalResult,
        SpendResult,
        VoucherRedemption,
    )

    from .program import Program
    from .service import LocalEngine

DEFAULT_DATABASE_URL = "sqlite:///.loyaltykit/local.sqlite3"

F = TypeVar("F", bound=Callable[..., Any])


def database_errors(operation: str, *, write: bool) -> Callable[[F], F]:
    """A broken, locked or vanished database is an engine outage in the kit's vocabulary, never a raw
    database error: a read (evaluate then fails open) or a write whose transaction rolled back is
    ``EngineUnavailableError``; a write that lost its connection mid-way (it may have committed) is
    ``OutcomeUnknownError`` with its idempotency key. The driver's message is not passed on (it may
    quote parameters)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: LocalAdapter, payload: Any, ctx: Any) -> Any:
            from .store import DatabaseError, database_error

            try:
                return fn(self, payload, ctx)
            except DatabaseError as exc:
                error = exc
            except Exception as exc:  # SQLAlchemy's own (a pool timeout), where it runs
                found = database_error(exc)
                if found is None:
                    raise
                error = found
            kind = type(error.orig).__name__
            if write and error.connection_invalidated:
                raise OutcomeUnknownError(
                    f"the database connection was lost during the write ({kind})", engine="local",
                    operation=operation, idempotency_key=ctx.idempotency_key) from None
            raise EngineUnavailableError(
                f"the engine's database failed ({kind}); nothing was written", engine="local",
                operation=operation) from None

        return wrapper  # type: ignore[return-value]

    return decorate


class LocalSettings(BaseSettings):
    """Settings of the embedded engine: ``[engines.local]`` in loyaltykit.toml or ``LOYALTYKIT_LOCAL_*``."""

    model_config = SettingsConfigDict(env_prefix="LOYALTYKIT_LOCAL_", extra="forbid")

    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL),
        description="SQLAlchemy URL. SQLite (WAL) by default; a postgresql+psycopg:// URL works the same way.",
    )
    program_file: Path | None = Field(
        default=None, description="The program (TOML). None: an empty program (no earning, no rules)."
    )
    busy_timeout_ms: int = Field(default=30_000, ge=0, le=600_000, description="How long a writer waits for the SQLite lock.")
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="NORMAL",
        description="SQLite durability. NORMAL in WAL mode survives a process crash; FULL also a power cut.",
    )
    pool_size: int = Field(default=10, ge=1, le=200, description="Database connections kept open.")
    create_schema: bool = Field(
        default=False,
        description="Create or upgrade the schema at start. Off: run `loyaltykit-local migrate` once per release.",
    )


class LocalAdapter(EngineAdapter):
    """The embedded loyalty engine. Pass ``engine=`` to share one :class:`LocalEngine` (tests, demo)."""

    name = "local"
    version = __version__
    in_process = True
    settings_model = LocalSettings
    capabilities = Capabilities(
        identify_by=frozenset(IdentifierKind),
        evaluate=True,
        wallet_offers=True,
        earn_preview=True,
        price_products=True,
        redeem_voucher=True,
        spend=frozenset({BalanceKind.POINTS, BalanceKind.CASHBACK}),
        export_orders=True,
        cancel=True,
        refund=True,
        partial_refund=True,
        enrol_member=True,
        update_member=True,
        member_fields=frozenset(MemberField),
        statement=True,
        wallet=True,
        issue_voucher=True,
        points_catalog=True,
    )

    def __init__(self, settings: LocalSettings | dict[str, Any] | None = None, *, engine: LocalEngine | None = None,
                 program: Program | None = None) -> None:
        super().__init__(settings)
        self._owns_engine = engine is None
        if engine is None:
            from .program import load_program
            from .service import LocalEngine
            from .store import Store

            config: LocalSettings = self.settings
            if program is None and config.program_file is not None:
                program = load_program(config.program_file)
            store = Store(
                config.database_url.get_secret_value(),
                create=config.create_schema,
                busy_timeout_ms=config.busy_timeout_ms,
                synchronous=config.sqlite_synchronous,
                pool_size=config.pool_size,
            )
            if not config.create_schema:
                try:
                    store.check_schema()
                except BaseException:
                    store.dispose()
                    raise
            engine = LocalEngine(store, program)
        elif program is not None:
            engine.set_program(program)
        self.engine = engine

    def close(self) -> None:
        if self._owns_engine:
            self.engine.store.dispose()

    @flows.in_process
    @database_errors("identify", write=False)
    def identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Customer | None:
        return self.engine.identify(identifier)

    @flows.in_process
    @database_errors("evaluate_basket", write=False)
    def evaluate_basket(self, basket: Basket, ctx: CallContext) -> Evaluation:
        return self.engine.evaluate(basket)

    @flows.in_process
    @database_errors("price_products", write=False)
    def price_products(self, query: ProductQuery, ctx: CallContext) -> list[ProductPrice]:
        return self.engine.price_products(query)

    @flows.in_process
    @database_errors("redeem_voucher", write=True)
    def redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> RedemptionResult:
        return self.engine.redeem(redemption, ctx.idempotency_key or redemption.key)

    @flows.in_process
    @database_errors("spend_cashback", write=True)
    def spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> SpendResult:
        return self.engine.spend(spend, ctx.idempotency_key or spend.key)

    @flows.in_process
    @database_errors("export_orders", write=True)
    def export_orders(self, orders: list[Order], ctx: CallContext) -> ExportReport:
        return self.engine.export(list(orders))

    @flows.in_process
    @database_errors("reverse", write=True)
    def reverse(self, reversal: Reversal, ctx: CallContext) -> ReversalResult:
        return self.engine.reverse(reversal, ctx.idempotency_key or reversal.key)

    @flows.in_process
    def enrol_member(self, enrolment: Enrolment, ctx: CallContext) -> EnrolmentResult:
        from . import members

        return members.enrol(self.engine, enrolment)

    @flows.in_process
    def update_member(self, update: MemberUpdate, ctx: CallContext) -> Customer:
        from . import members

        return members.update_member(self.engine, update)

    @flows.in_process
    def member_statement(self, query: StatementQuery, ctx: CallContext) -> Statement:
        from . import members

        return members.statement(self.engine, query)

    @flows.in_process
    def member_wallet(self, query: WalletQuery, ctx: CallContext) -> Wallet:
        from . import members

        return members.wallet(self.engine, query)

    @flows.in_process
    @database_errors("issue_voucher", write=True)
    def issue_voucher(self, issue: VoucherIssue, ctx: CallContext) -> IssuedVouchers:
        from . import members

        return members.issue_vouchers(self.engine, issue)
