"""The facade a shop talks to: :class:`Loyalty` (sync) and :class:`AsyncLoyalty` (async).

Both share everything but the last step: input validation, capability checks, routing to the one
engine adapter, call contexts and deadlines, fail-open evaluation and the export report's
completeness live in :class:`_Facade`; the subclasses only drive the adapter's flow with
``httpx.Client`` or ``httpx.AsyncClient``.

Policies:

* **evaluate fails open**: if the engine is unavailable, slow beyond ``evaluate_budget``, rate
  limiting, refusing our credentials, answering garbage or refusing with an unclassified engine
  error, the shop gets a full-price quote with
  ``degraded=True`` and the reason, and keeps selling;
* **writes fail closed**: redeem, spend, export and reverse never turn an error into success;
* **export loses nothing**: every order of the batch gets a status; an order the engine could not
  take is ``retry_later`` (keep it queued — see :mod:`loyaltykit.outbox`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy
import pydantic

from .adapter import EngineAdapter, validate_adapter_class
from .capabilities import Capability
from .errors import (
    UNAVAILABLE_ERRORS,
    ConfigError,
    CurrencyMismatchError,
    EngineError,
    EngineTimeoutError,
    InvalidDataError,
    InvalidRequestError,
    LoyaltyError,
    MalformedResponseError,
    NotSupportedError,
    OrderInFlightError,
    OutcomeUnknownError,
    invalid_data,
)
from .flows import PARSE_ERRORS, CallContext, Flow, run_in_process
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
    MAX_EXPORT_BATCH,
    MAX_SYNC_PRODUCTS,
    Basket,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    Evaluation,
    ExportReport,
    ExportStatus,
    IdentifierKind,
    Order,
    OrderExportResult,
    Product,
    ProductPrice,
    ProductQuery,
    ProductSyncReport,
    RedemptionResult,
    Reversal,
    ReversalKind,
    ReversalResult,
    SpendResult,
    VoucherRedemption,
    _check_points_lines,
)
from .operations import OPERATIONS
from .plugins import check_routing, discover, make_plugin_manager
from .scrub import scrub_text, scrubbing
from .settings import LoyaltySettings

if TYPE_CHECKING:
    import httpx

    from .capabilities import Capabilities

M = TypeVar("M", bound=pydantic.BaseModel)
R = TypeVar("R")  # what a prepared call returns

_WRITE_OPERATIONS = frozenset(op.name for op in OPERATIONS if op.write)

_PARSE_ERRORS = PARSE_ERRORS


def coerce(model: type[M], value: Any, name: str) -> M:
    """Accept a model instance or a mapping; turn a validation error into one naming the field."""
    if isinstance(value, model):
        return value
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{name} must be a {model.__name__} or a mapping", field=name)
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        error = invalid_data(exc, name)
    except InvalidDataError as exc:
        error = exc.under(name)
    # the shop's own input: a plain InvalidRequestError (InvalidDataError is kept for engine answers)
    raise InvalidRequestError(error.message, field=error.field) from None


def invalid_from_pydantic(exc: pydantic.ValidationError, prefix: str) -> InvalidRequestError:
    return invalid_data(exc, prefix)


def _ids(*values: str | None) -> tuple[str, ...]:
    """Customer ids of a call (often membership numbers, and path segments of engine URLs): scrubbed
    from its log lines and error messages like identify's identifier."""
    return tuple(dict.fromkeys(v for v in values if v))


@dataclass
class _Call(Generic[R]):
    """One prepared call: how to get the flow, its context, and how to finish."""

    operation: str
    make_flow: Callable[[], Flow[Any]]
    ctx: CallContext
    expect: type | tuple[type, ...]
    on_result: Callable[[Any], R] = field(default=lambda result: result)
    on_error: Callable[[LoyaltyError], R] | None = None


class _Facade:
    def __init__(
        self,
        settings: LoyaltySettings | None = None,
        *,
        adapter: EngineAdapter | None = None,
        plugins: Iterable[object] = (),
        load_entry_points: bool = True,
    ) -> None:
        if settings is None:
            settings = LoyaltySettings()  # a bad file or value is a ConfigError naming the file and field
        elif isinstance(settings, dict):
            settings = LoyaltySettings(**settings)
        elif not isinstance(settings, LoyaltySettings):
            raise ConfigError("settings: a LoyaltySettings, a mapping of settings, or None", field="settings")
        self.settings = settings
        discovered = (
            discover(settings.plugins_allow, settings.plugins_block) if load_entry_points else []
        )
        if adapter is None:
            # Only the selected engine's adapter is imported; other installed engines stay unloaded.
            adapters = {d.name: d for d in discovered if d.is_adapter}
            selected = adapters.get(settings.engine)
            if selected is None:
                available = ", ".join(sorted(adapters)) or "none installed"
                raise ConfigError(
                    f"no engine adapter named {settings.engine!r} (available: {available})"
                )
            adapter = selected.load()(settings.engine_section(settings.engine))
        else:
            validate_adapter_class(type(adapter))
        self.adapter: EngineAdapter = adapter
        self.engine = adapter.name
        self.pm = make_plugin_manager()
        try:
            self.pm.register(adapter, name=f"adapter:{adapter.name}")
            for item in discovered:
                if not item.is_adapter:
                    self.pm.register(item.load(), name=f"plugin:{item.name}")
            for plugin in plugins:
                self.pm.register(plugin)
        except pluggy.PluginValidationError as exc:
            raise ConfigError(f"a plugin's hook implementation does not match its spec: {exc}") from exc
        self.adapter = check_routing(self.pm)
        self._closed = False
        self.client_config = adapter.client_config()
        if self.client_config is not None:
            # the breaker and the cross-process key locks serve HTTP engines only: not loaded in process
            from .breaker import CircuitBreaker
            from .reconcile import FileKeyLocks

            self.client_config.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_reset)
            if settings.key_lock_dir is not None:
                self.client_config.key_locks = FileKeyLocks(settings.key_lock_dir)
        elif not adapter.in_process:
            raise ConfigError(f"adapter {adapter.name} has no HTTP configuration", engine=adapter.name)

    # -- shared preparation ---------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        return self.adapter.capabilities

    def _open(self, operation: str) -> None:
        if self._closed:
            raise ConfigError(f"this {type(self).__name__} is closed; build a new one to call {operation}",
                              engine=self.engine, operation=operation)

    def _prepare_cancel(self, order: Any, outbox: Any, reason: Any, reference: Any, exported: bool) -> Reversal:
        order = coerce(Order, order, "order")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
            raise InvalidRequestError("reason: 1..500 characters saying why the order is cancelled", field="reason")
        if outbox is not None:
            # Take the order out of the queue first: once dropped, no worker can export it, so the
            # engine never credits points or cashback for it. If it was not pending, ask why.
            if outbox.drop(order.ref, reason=reason):
                exported = False
            elif outbox.in_flight(order.ref):
                raise OrderInFlightError(
                    "the order is being exported right now; cancel it again once that export finished",
                    engine=self.engine, operation="reverse")
            else:
                entry = outbox.entry(order.ref)
                exported = entry is not None and entry.state == "done"
        return coerce(Reversal, {"order": order, "kind": ReversalKind.CANCEL, "exported": exported,
                                 "reason": reason, "reference": reference}, "reversal")

    def _require(self, capability: Capability, operation: str, detail: str = "") -> None:
        if not self.capabilities.supports(capability):
            raise NotSupportedError(
                f"{self.engine} does not support {capability.value}{detail}",
                engine=self.engine,
                operation=operation,
            )

    def _check_currency(self, currency: str, operation: str) -> None:
        allowed = self.capabilities.currencies
        if allowed is not None and currency not in allowed:
            raise CurrencyMismatchError(
                f"{self.engine} does not accept {currency}", engine=self.engine, operation=operation, field="currency"
            )

    def _ctx(self, operation: str, deadline: float, **kwargs: Any) -> CallContext:
        return CallContext(engine=self.engine, operation=operation, deadline_seconds=deadline, **kwargs)

    def _prepare_identify(self, identifier: Any, kwargs: dict[str, str | None]) -> _Call[Customer | None]:
        given = {k: v for k, v in kwargs.items() if v is not None}
        if identifier is None:
            if len(given) != 1:
                raise InvalidRequestError(
                    "identify takes one identifier: email, phone, card, membership or external_id",
                    field="identifier",
                )
            (kind, value), = given.items()
            identifier = coerce(CustomerIdentifier, {"kind": kind, "value": value}, "identifier")
        else:
            identifier = coerce(CustomerIdentifier, identifier, "identifier")
        if identifier.kind not in self.capabilities.identify_by:
            raise NotSupportedError(
                f"{self.engine} cannot identify customers by {identifier.kind.value}",
                engine=self.engine,
                operation="identify",
            )
        ctx = self._ctx("identify", self.settings.read_deadline, scrub_values=(identifier.value,))
        return _Call(
            "identify",
            lambda: self.pm.hook.loyaltykit_identify(identifier=identifier, ctx=ctx),
            ctx,
            (Customer, type(None)),
        )

    def _prepare_evaluate(self, basket: Any) -> _Call[Evaluation]:
        basket = coerce(Basket, basket, "basket")
        self._require(Capability.EVALUATE, "evaluate_basket")
        self._check_currency(basket.currency, "evaluate_basket")
        ctx = self._ctx("evaluate_basket", self.settings.evaluate_budget,
                        scrub_values=_ids(basket.customer_id, *basket.coupon_codes))

        def fail_open(exc: LoyaltyError) -> Evaluation:
            # An unclassified engine refusal of a *quote* must not stop the sale either; typed
            # refusals (unknown customer, bad input, not supported) still raise.
            if isinstance(exc, UNAVAILABLE_ERRORS) or type(exc) in (EngineError, MalformedResponseError):
                return Evaluation.degraded_for(basket, self.engine, f"{exc.code}: {exc.message}")
            raise exc

        def with_shipping(result: Evaluation) -> Evaluation:
            # The figures (shipping_total, total) are the core's: the quote carries the basket's charge.
            if result.points_lines:  # lines of this basket, sent at 0.00: they never count in money
                try:
                    _check_points_lines(result.points_lines, basket.lines, "points_lines")
                except ValueError as exc:  # a garbled quote fails open, like any malformed answer
                    return fail_open(MalformedResponseError(f"the quote's {exc}", engine=self.engine))
            if result.shipping is None and basket.shipping is not None:
                return result.model_copy(update={"shipping": basket.shipping})
            return result

        return _Call(
            "evaluate_basket",
            lambda: self.pm.hook.loyaltykit_evaluate_basket(basket=basket, ctx=ctx),
            ctx,
            Evaluation,
            on_result=with_shipping,
            on_error=fail_open,
        )

    def _prepare_price_products(self, query: Any) -> _Call[list[ProductPrice]]:
        query = coerce(ProductQuery, query, "query")
        self._require(Capability.PRICE_PRODUCTS, "price_products")
        self._check_currency(query.currency, "price_products")
        ctx = self._ctx("price_products", self.settings.read_deadline, scrub_values=_ids(query.customer_id))

        def check(result: list[ProductPrice]) -> list[ProductPrice]:
            if len(result) != len(query.products) or not all(isinstance(p, ProductPrice) for p in result):
                raise MalformedResponseError(
                    "adapter returned a price list that does not match the query", engine=self.engine
                )
            return result

        return _Call(
            "price_products",
            lambda: self.pm.hook.loyaltykit_price_products(query=query, ctx=ctx),
            ctx,
            list,
            on_result=check,
        )

    def _prepare_redeem(self, redemption: Any) -> _Call[RedemptionResult]:
        redemption = coerce(VoucherRedemption, redemption, "redemption")
        self._require(Capability.REDEEM_VOUCHER, "redeem_voucher")
        if redemption.basket is not None:
            self._check_currency(redemption.basket.currency, "redeem_voucher")
        ctx = self._ctx("redeem_voucher", self.settings.write_deadline, idempotency_key=redemption.key,
                        scrub_values=_ids(redemption.customer_id, redemption.code,
                                          redemption.basket.customer_id if redemption.basket else None))
        return _Call(
            "redeem_voucher",
            lambda: self.pm.hook.loyaltykit_redeem_voucher(redemption=redemption, ctx=ctx),
            ctx,
            RedemptionResult,
        )

    def _prepare_spend(self, spend: Any) -> _Call[SpendResult]:
        spend = coerce(CashbackSpend, spend, "spend")
        if spend.kind not in self.capabilities.spend:
            raise NotSupportedError(
                f"{self.engine} cannot spend {spend.kind.value}", engine=self.engine, operation="spend_cashback"
            )
        if spend.line_ids:
            self._require(Capability.POINTS_CATALOG, "spend_cashback", " (points-priced lines)")
        if spend.amount is not None:
            self._check_currency(spend.amount.currency, "spend_cashback")
        ctx = self._ctx("spend_cashback", self.settings.write_deadline, idempotency_key=spend.key,
                        scrub_values=_ids(spend.customer_id, spend.basket.customer_id if spend.basket else None))
        def with_value(result: SpendResult) -> SpendResult:
            # The money a spend paid is the core's figure for every engine: the receipt carries it,
            # so the order's balance_paid and amount_due, and a refund's breakdown, follow from it.
            # A spend for points-priced lines names them on its receipt: the order checks it pays them.
            value = result.value or spend.value
            receipt = result.receipt
            if spend.line_ids and not receipt.line_ids:
                receipt = receipt.model_copy(update={"line_ids": spend.line_ids})
            if value is None:
                return result if receipt is result.receipt else result.model_copy(update={"receipt": receipt})
            if receipt.amount is None:
                receipt = receipt.model_copy(update={"amount": value})
            return result.model_copy(update={"value": value, "receipt": receipt})

        return _Call(
            "spend_cashback",
            lambda: self.pm.hook.loyaltykit_spend_cashback(spend=spend, ctx=ctx),
            ctx,
            SpendResult,
            on_result=with_value,
        )

    def _prepare_export(self, orders: Any) -> _Call[ExportReport]:
        if isinstance(orders, Order | dict):
            orders = [orders]
        if orders is None or isinstance(orders, str | bytes) or not hasattr(orders, "__iter__"):
            raise InvalidRequestError("orders: an Order or an iterable of orders", field="orders")
        orders = list(orders)
        if not 1 <= len(orders) <= MAX_EXPORT_BATCH:
            raise InvalidRequestError(f"orders: 1 to {MAX_EXPORT_BATCH} per export", field="orders")
        # an Order is taken as it is; only other input goes through coerce (and gets its field name)
        orders = [order if type(order) is Order else coerce(Order, order, f"orders.{i}")
                  for i, order in enumerate(orders)]
        refs = [o.ref for o in orders]
        if len(set(refs)) != len(refs):
            raise InvalidRequestError("orders: duplicate order ref in one batch", field="orders")
        self._require(Capability.EXPORT_ORDERS, "export_orders")
        for currency in dict.fromkeys([order.currency for order in orders]):  # a batch has one or two
            self._check_currency(currency, "export_orders")
        ctx = self._ctx("export_orders", self.settings.write_deadline, exclusive_keys=tuple([o.key for o in orders]),
                        scrub_values=_ids(*[order.customer_id for order in orders]))

        def complete(report: ExportReport) -> ExportReport:
            # One result per order, in order; anything the adapter did not report stays queued.
            results = report.results
            if (type(report) is ExportReport and report.engine == self.engine and len(results) == len(refs)
                    and all(type(r) is OrderExportResult and r.order_ref == ref for r, ref in zip(results, refs, strict=True))):
                return report  # already exactly that report (a frozen model): no second one to build
            wanted = set(refs)
            by_ref = {r.order_ref: r for r in report.results if r.order_ref in wanted}
            results = tuple(
                by_ref.get(ref)
                or OrderExportResult(
                    order_ref=ref, status=ExportStatus.RETRY_LATER, reason="the adapter reported no result"
                )
                for ref in refs
            )
            return ExportReport(engine=self.engine, results=results)

        def all_retry_later(exc: LoyaltyError) -> ExportReport:
            if isinstance(exc, UNAVAILABLE_ERRORS):
                return ExportReport(
                    engine=self.engine,
                    results=tuple(
                        OrderExportResult(
                            order_ref=ref,
                            status=ExportStatus.RETRY_LATER,
                            reason=exc.message,
                            error_code=exc.code,
                        )
                        for ref in refs
                    ),
                )
            raise exc

        return _Call(
            "export_orders",
            lambda: self.pm.hook.loyaltykit_export_orders(orders=orders, ctx=ctx),
            ctx,
            ExportReport,
            on_result=complete,
            on_error=all_retry_later,
        )

    def _prepare_reverse(self, reversal: Any) -> _Call[ReversalResult]:
        reversal = coerce(Reversal, reversal, "reversal")
        if reversal.kind is ReversalKind.CANCEL:
            self._require(Capability.CANCEL, "reverse")
        elif reversal.is_full:
            self._require(Capability.REFUND, "reverse")
        else:
            self._require(Capability.PARTIAL_REFUND, "reverse", " (partial refund)")
        ctx = self._ctx("reverse", self.settings.write_deadline, idempotency_key=reversal.key,
                        scrub_values=_ids(reversal.order.customer_id))
        def with_refund(result: ReversalResult) -> ReversalResult:
            if result.refund is not None:
                return result
            return result.model_copy(update={"refund": reversal.breakdown})

        return _Call(
            "reverse",
            lambda: self.pm.hook.loyaltykit_reverse(reversal=reversal, ctx=ctx),
            ctx,
            ReversalResult,
            on_result=with_refund,
        )

    def _prepare_sync_products(self, products: Any) -> _Call[ProductSyncReport]:
        if isinstance(products, Product | dict):
            products = [products]
        products = list(products)
        if not 1 <= len(products) <= MAX_SYNC_PRODUCTS:
            raise InvalidRequestError(f"products: 1 to {MAX_SYNC_PRODUCTS} per sync", field="products")
        products = [coerce(Product, p, f"products.{i}") for i, p in enumerate(products)]
        skus = [p.sku for p in products]
        if len(set(skus)) != len(skus):
            raise InvalidRequestError("products: duplicate sku in one sync", field="products")
        self._require(Capability.SYNC_PRODUCTS, "sync_products")
        ctx = self._ctx("sync_products", self.settings.write_deadline)
        return _Call(
            "sync_products",
            lambda: self.pm.hook.loyaltykit_sync_products(products=products, ctx=ctx),
            ctx,
            ProductSyncReport,
        )

    def _prepare_enrol_member(self, enrolment: Any) -> _Call[EnrolmentResult]:
        enrolment = coerce(Enrolment, enrolment, "enrolment")
        self._require(Capability.ENROL_MEMBER, "enrol_member")
        ctx = self._ctx("enrol_member", self.settings.write_deadline, idempotency_key=enrolment.key,
                        scrub_values=_ids(*(i.value for i in enrolment.identifiers())))
        return _Call(
            "enrol_member",
            lambda: self.pm.hook.loyaltykit_enrol_member(enrolment=enrolment, ctx=ctx),
            ctx,
            EnrolmentResult,
        )

    def _prepare_update_member(self, update: Any) -> _Call[Customer]:
        update = coerce(MemberUpdate, update, "update")
        self._require(Capability.UPDATE_MEMBER, "update_member")
        self.capabilities.check_member_update(update, self.engine)
        ctx = self._ctx("update_member", self.settings.write_deadline, scrub_values=_ids(update.customer_id))
        return _Call(
            "update_member",
            lambda: self.pm.hook.loyaltykit_update_member(update=update, ctx=ctx),
            ctx,
            Customer,
        )

    def _prepare_statement(self, query: Any) -> _Call[Statement]:
        query = coerce(StatementQuery, query, "query")
        self._require(Capability.STATEMENT, "member_statement")
        ctx = self._ctx("member_statement", self.settings.read_deadline, scrub_values=_ids(query.customer_id))

        def check(result: Statement) -> Statement:
            if len(result.entries) > query.page_size:
                raise MalformedResponseError("adapter returned more entries than the page size", engine=self.engine)
            return result

        return _Call(
            "member_statement",
            lambda: self.pm.hook.loyaltykit_member_statement(query=query, ctx=ctx),
            ctx,
            Statement,
            on_result=check,
        )

    def _prepare_wallet(self, query: Any) -> _Call[Wallet]:
        if isinstance(query, str):
            query = {"customer_id": query}
        query = coerce(WalletQuery, query, "query")
        self._require(Capability.WALLET, "member_wallet")
        ctx = self._ctx("member_wallet", self.settings.read_deadline, scrub_values=_ids(query.customer_id))
        return _Call(
            "member_wallet",
            lambda: self.pm.hook.loyaltykit_member_wallet(query=query, ctx=ctx),
            ctx,
            Wallet,
        )

    def _prepare_issue_voucher(self, issue: Any) -> _Call[IssuedVouchers]:
        issue = coerce(VoucherIssue, issue, "issue")
        self._require(Capability.ISSUE_VOUCHER, "issue_voucher")
        if issue.face_value is not None:
            self._check_currency(issue.face_value.currency, "issue_voucher")
        ctx = self._ctx("issue_voucher", self.settings.write_deadline, idempotency_key=issue.key,
                        scrub_values=_ids(issue.customer_id))

        def check(result: IssuedVouchers) -> IssuedVouchers:
            if len(result.vouchers) != issue.quantity:
                raise MalformedResponseError(
                    f"the engine issued {len(result.vouchers)} voucher(s) for a quantity of {issue.quantity}",
                    engine=self.engine, operation="issue_voucher")
            return result

        return _Call(
            "issue_voucher",
            lambda: self.pm.hook.loyaltykit_issue_voucher(issue=issue, ctx=ctx),
            ctx,
            IssuedVouchers,
            on_result=check,
        )

    # -- shared finishing -----------------------------------------------------------------------
    def _adapter_bug(self, call: _Call[Any], exc: Exception) -> LoyaltyError:
        return MalformedResponseError(
            f"could not interpret the engine's answer ({type(exc).__name__})",
            engine=self.engine,
            operation=call.operation,
        )

    def _finish(self, call: _Call[R], result: Any) -> R:
        if not isinstance(result, call.expect):
            raise MalformedResponseError(
                f"adapter returned {type(result).__name__} for {call.operation}",
                engine=self.engine,
                operation=call.operation,
            )
        return call.on_result(result)

    def _failed(self, call: _Call[R], exc: LoyaltyError) -> R:
        exc.with_context(engine=self.engine, operation=call.operation)
        if call.ctx.scrub_values:  # the call's customer ids and codes never reach an error message
            exc.message = scrub_text(exc.message, call.ctx.scrub_values)
            exc.args = (exc.message,)
        if call.on_error is not None:
            return call.on_error(exc)
        raise exc


class Loyalty(_Facade):
    """The synchronous facade (Django, Flask, scripts). Thread-safe; share one per process."""

    def __init__(self, settings: LoyaltySettings | None = None, *, transport: httpx.BaseTransport | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        if self.client_config:  # the HTTP stack is imported only by engines that speak HTTP
            from .http import SyncRunner
        self._runner = SyncRunner(self.client_config, transport) if self.client_config else None
        self._evaluations: concurrent.futures.ThreadPoolExecutor | None = None

    def _in_process_evaluation(self, flow: Flow[Any], call: _Call[Any]) -> Any:
        # The evaluation budget holds for an in-process engine too: the quote runs in a worker thread
        # and the shop stops waiting when the budget is spent (a quote writes nothing, so it may
        # finish unseen). The call's context (its scrubbed identifiers) goes with it.
        if self._evaluations is None:
            self._evaluations = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="loyaltykit-evaluate")
        context = contextvars.copy_context()
        future = self._evaluations.submit(context.run, run_in_process, flow)
        try:
            return future.result(timeout=max(0.0, call.ctx.remaining()))
        except concurrent.futures.TimeoutError:
            raise EngineTimeoutError("the evaluation budget ran out", engine=self.engine,
                                     operation=call.operation) from None

    def _execute(self, call: _Call[R]) -> R:
        self._open(call.operation)
        try:
            flow = call.make_flow()
            if self._runner is None:
                with scrubbing(call.ctx.scrub_values):
                    if call.operation == "evaluate_basket":
                        result = self._in_process_evaluation(flow, call)
                    else:
                        result = run_in_process(flow)
            else:
                result = self._runner.run(flow, call.ctx)
        except InvalidDataError as exc:
            # the shop's input was validated before the call: a model built from the engine's answer failed
            return self._failed(call, self._adapter_bug(call, exc))
        except LoyaltyError as exc:
            return self._failed(call, exc)
        except _PARSE_ERRORS as exc:
            return self._failed(call, self._adapter_bug(call, exc))
        return self._finish(call, result)

    def identify(self, identifier: CustomerIdentifier | dict[str, Any] | None = None, *, email: str | None = None,
                 phone: str | None = None, card: str | None = None, membership: str | None = None,
                 external_id: str | None = None) -> Customer | None:
        kinds = {"email": email, "phone": phone, "card": card, "membership": membership, "external_id": external_id}
        return self._execute(self._prepare_identify(identifier, kinds))

    def evaluate(self, basket: Basket | dict[str, Any]) -> Evaluation:
        return self._execute(self._prepare_evaluate(basket))

    def price_products(self, query: ProductQuery | dict[str, Any]) -> list[ProductPrice]:
        return self._execute(self._prepare_price_products(query))

    def redeem_voucher(self, redemption: VoucherRedemption | dict[str, Any]) -> RedemptionResult:
        return self._execute(self._prepare_redeem(redemption))

    def spend_cashback(self, spend: CashbackSpend | dict[str, Any]) -> SpendResult:
        return self._execute(self._prepare_spend(spend))

    def export_orders(self, orders: Iterable[Order | dict[str, Any]] | Order) -> ExportReport:
        return self._execute(self._prepare_export(orders))

    def reverse(self, reversal: Reversal | dict[str, Any]) -> ReversalResult:
        return self._execute(self._prepare_reverse(reversal))

    def sync_products(self, products: Iterable[Product | dict[str, Any]] | Product) -> ProductSyncReport:
        return self._execute(self._prepare_sync_products(products))

    def cancel_order(self, order: Order | dict[str, Any], *, outbox: Any = None, reason: str = "payment declined",
                     reference: str = "cancel", exported: bool = False) -> ReversalResult:
        """Cancel a placed order whose payment failed (or that the shop voids), in one call.

        The order is dropped from ``outbox`` first (marked ``dropped`` with ``reason``), so it is never
        exported and the engine never credits points or cashback for it; then the order is cancelled on
        the engine: redeemed vouchers are reinstated and spent cashback and points go back to the
        customer. ``result.refund`` says how much: ``to_card`` is what the card was charged (nothing to
        give back when the payment was declined), ``to_cashback`` and ``points`` what goes back to the
        balances. The cancel is keyed (``order ref`` + ``cancel`` + ``reference``): calling it again
        after an error is safe. An order a worker is exporting at this moment raises
        :class:`~loyaltykit.errors.OrderInFlightError` (retryable): call again once the export finished.
        With an outbox, the outbox says whether the order was exported; without one, ``exported``
        does (False by default: a declined payment is usually cancelled before any export).
        """
        self._open("reverse")
        return self.reverse(self._prepare_cancel(order, outbox, reason, reference, exported))
    def enrol_member(self, enrolment: Enrolment | dict[str, Any]) -> EnrolmentResult:
        return self._execute(self._prepare_enrol_member(enrolment))

    def update_member(self, update: MemberUpdate | dict[str, Any]) -> Customer:
        return self._execute(self._prepare_update_member(update))

    def statement(self, query: StatementQuery | dict[str, Any]) -> Statement:
        return self._execute(self._prepare_statement(query))

    def wallet(self, query: WalletQuery | dict[str, Any] | str) -> Wallet:
        return self._execute(self._prepare_wallet(query))

    def issue_voucher(self, issue: VoucherIssue | dict[str, Any]) -> IssuedVouchers:
        return self._execute(self._prepare_issue_voucher(issue))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            self._runner.close()
        if self._evaluations is not None:
            self._evaluations.shutdown(wait=True)
        self.adapter.close()

    def __enter__(self) -> Loyalty:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLoyalty(_Facade):
    """The asynchronous facade (FastAPI, aiohttp). Same behaviour as :class:`Loyalty`."""

    def __init__(self, settings: LoyaltySettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._transport = transport
        if self.client_config:  # the HTTP stack is imported only by engines that speak HTTP
            from .http import AsyncRunner
        self._runner = AsyncRunner(self.client_config, transport) if self.client_config else None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _check_loop(self) -> None:
        # httpx.AsyncClient's connections belong to the event loop that opened them: using them on
        # another loop fails deep inside the transport. Say what to do instead.
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif (loop is not self._loop and self._loop.is_closed() and self._runner is not None
              and self.client_config is not None):  # a runner exists only with a client configuration
            # The first loop is gone (asyncio.run called again, a test per loop): follow the new
            # one with a fresh HTTP client; the breaker and the cached token are kept.
            from .http import AsyncRunner

            self._runner = AsyncRunner(self.client_config, self._transport)
            self._loop = loop
        elif loop is not self._loop and self._runner is not None:
            raise ConfigError(
                "this AsyncLoyalty was first used on another event loop; create it inside the loop that "
                "uses it (FastAPI: in the lifespan function, closed with `await loyalty.aclose()`), "
                "one per event loop",
                engine=self.engine,
            )

    async def _execute(self, call: _Call[R]) -> R:
        self._open(call.operation)
        self._check_loop()
        try:
            flow = call.make_flow()
            if self._runner is None:
                # In-process engines block: run them off the event loop (to_thread copies the
                # context, so the call's identifiers are scrubbed in the worker thread too).
                with scrubbing(call.ctx.scrub_values):
                    if call.operation == "evaluate_basket":  # the budget holds in process too
                        async with asyncio.timeout(max(0.0, call.ctx.remaining())):
                            result = await asyncio.to_thread(run_in_process, flow)
                    else:
                        result = await asyncio.to_thread(run_in_process, flow)
            else:
                async with asyncio.timeout(max(0.001, call.ctx.remaining()) + 0.05):
                    result = await self._runner.run(flow, call.ctx)
        except TimeoutError:
            return self._failed(call, self._late(call))
        except InvalidDataError as exc:
            # the shop's input was validated before the call: a model built from the engine's answer failed
            return self._failed(call, self._adapter_bug(call, exc))
        except LoyaltyError as exc:
            return self._failed(call, exc)
        except _PARSE_ERRORS as exc:
            return self._failed(call, self._adapter_bug(call, exc))
        return self._finish(call, result)

    def _late(self, call: _Call[Any]) -> LoyaltyError:
        # Same classification as the sync runner: a read that ran out of time is a timeout; a write
        # may have been sent, so its outcome is unknown.
        if call.operation in _WRITE_OPERATIONS:
            return OutcomeUnknownError(
                "the deadline ran out before the write's outcome was known",
                engine=self.engine, operation=call.operation, idempotency_key=call.ctx.idempotency_key,
            )
        return EngineTimeoutError("the deadline ran out", engine=self.engine, operation=call.operation)

    async def identify(self, identifier: CustomerIdentifier | dict[str, Any] | None = None, *, email: str | None = None,
                       phone: str | None = None, card: str | None = None, membership: str | None = None,
                       external_id: str | None = None) -> Customer | None:
        kinds = {"email": email, "phone": phone, "card": card, "membership": membership, "external_id": external_id}
        return await self._execute(self._prepare_identify(identifier, kinds))

    async def evaluate(self, basket: Basket | dict[str, Any]) -> Evaluation:
        return await self._execute(self._prepare_evaluate(basket))

    async def price_products(self, query: ProductQuery | dict[str, Any]) -> list[ProductPrice]:
        return await self._execute(self._prepare_price_products(query))

    async def redeem_voucher(self, redemption: VoucherRedemption | dict[str, Any]) -> RedemptionResult:
        return await self._execute(self._prepare_redeem(redemption))

    async def spend_cashback(self, spend: CashbackSpend | dict[str, Any]) -> SpendResult:
        return await self._execute(self._prepare_spend(spend))

    async def export_orders(self, orders: Iterable[Order | dict[str, Any]] | Order) -> ExportReport:
        return await self._execute(self._prepare_export(orders))

    async def reverse(self, reversal: Reversal | dict[str, Any]) -> ReversalResult:
        return await self._execute(self._prepare_reverse(reversal))

    async def sync_products(self, products: Iterable[Product | dict[str, Any]] | Product) -> ProductSyncReport:
        return await self._execute(self._prepare_sync_products(products))

    async def cancel_order(self, order: Order | dict[str, Any], *, outbox: Any = None, reason: str = "payment declined",
                           reference: str = "cancel", exported: bool = False) -> ReversalResult:
        """Cancel a placed order whose payment failed, in one call: see :meth:`Loyalty.cancel_order`."""
        self._open("reverse")
        reversal = await asyncio.to_thread(self._prepare_cancel, order, outbox, reason, reference, exported)
        return await self.reverse(reversal)
    async def enrol_member(self, enrolment: Enrolment | dict[str, Any]) -> EnrolmentResult:
        return await self._execute(self._prepare_enrol_member(enrolment))

    async def update_member(self, update: MemberUpdate | dict[str, Any]) -> Customer:
        return await self._execute(self._prepare_update_member(update))

    async def statement(self, query: StatementQuery | dict[str, Any]) -> Statement:
        return await self._execute(self._prepare_statement(query))

    async def wallet(self, query: WalletQuery | dict[str, Any] | str) -> Wallet:
        return await self._execute(self._prepare_wallet(query))

    async def issue_voucher(self, issue: VoucherIssue | dict[str, Any]) -> IssuedVouchers:
        return await self._execute(self._prepare_issue_voucher(issue))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            await self._runner.aclose()
        self.adapter.close()

    async def __aenter__(self) -> AsyncLoyalty:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["AsyncLoyalty", "IdentifierKind", "Loyalty"]
