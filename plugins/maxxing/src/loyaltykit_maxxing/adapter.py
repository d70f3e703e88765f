"""The MAXXING adapter: which calls, in which order, with which keys. Mapping is in transformers.

Confirmed calls (reference ``maxxing.md`` §1.2) are made exactly as documented:
``POST /MPCM/Web/api/rest/<api_version>/CustomerInformationServer/getCustomerByCardKey`` with
``{"storeChain", "card_key"}`` and HTTP Basic auth, and ``getCustomers`` to find a customer by
e-mail. Every other operation is named in the settings (``operations``) with its body in
``wire.py``; this module only sequences them.

Idempotency (assumed, see the README): MAXXING is not known to de-duplicate anything, so no write
is marked retry-safe for the runner. Each write carries a deterministic transaction key (prefix +
the kit's idempotency key, itself the order number and the operation): it is looked up by that key
first (found: a replay), and otherwise sent through the core's
:func:`~loyaltykit.reconcile.reconcile`, which looks it up again after a lost or unreadable answer
before sending it once more. The runner holds one call per idempotency key in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import httpx

from loyaltykit import (
    BalanceKind,
    Capabilities,
    EngineAdapter,
    EngineClientConfig,
    EngineRequest,
    ExportReport,
    IdentifierKind,
    Service,
)
from loyaltykit.auth import BasicAuth
from loyaltykit.errors import (
    CustomerNotFoundError,
    EngineError,
    InvalidRequestError,
    LoyaltyError,
    MalformedResponseError,
    NotSupportedError,
)
from loyaltykit.flows import CallContext, Flow
from loyaltykit.models import (
    Balance,
    Basket,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    Evaluation,
    Order,
    ProductPrice,
    ProductQuery,
    RedemptionResult,
    Reversal,
    ReversalKind,
    ReversalResult,
    SpendResult,
    VoucherRedemption,
    derive_key,
)
from loyaltykit.reconcile import ends_batch, export_result_from_error, reconcile

from . import __version__, transformers as tf, wire
from .settings import MaxxingSettings

Sub = Generator[EngineRequest, httpx.Response, Any]


class MaxxingAdapter(EngineAdapter):
    """MAXXING Promotion Engine over its REST API (backoffice and compute URLs)."""

    name = "maxxing"
    version = __version__
    capabilities = Capabilities(
        identify_by=frozenset({IdentifierKind.CARD, IdentifierKind.EMAIL}),
        evaluate=True,
        earn_preview=True,
        price_products=True,
        redeem_voucher=True,
        spend=frozenset({BalanceKind.CASHBACK}),
        export_orders=True,
        cancel=True,
        refund=True,
        partial_refund=True,
        points_catalog=False,  # no points-priced catalog in the engine's documentation
    )
    settings_model = MaxxingSettings

    def __init__(self, settings: MaxxingSettings | dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        s: MaxxingSettings = self.settings
        refunds = s.refund_mode == "lines"
        self.capabilities = type(self).capabilities.model_copy(
            update={"currencies": frozenset({s.currency}), "refund": refunds, "partial_refund": refunds}
        )

    def client_config(self) -> EngineClientConfig:
        s: MaxxingSettings = self.settings
        auth = BasicAuth(s.username, s.password)
        return EngineClientConfig(
            engine=self.name,
            services={"compute": Service(s.base_url("compute"), auth),
                      "backoffice": Service(s.base_url("backoffice"), auth)},
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
        )

    # -- request builder and answer reader (seams the broken test adapters override) -------------
    def _call(self, operation: str, body: dict[str, Any], route: str, *, write: bool = False) -> EngineRequest:
        service, path = self.settings.path(operation)
        # Never ``idempotency_key=``: the engine is not known to de-duplicate (see module doc).
        return EngineRequest("POST", path, service=service, json=body, write=write, route=route,
                             headers={"Content-Type": "application/json"})

    def _answer(self, response: httpx.Response, model: type[tf.M]) -> tf.M:
        return tf.answer(response, model, self.settings)

    def _transaction(self, response: httpx.Response) -> wire.TransactionRecord:
        record = self._answer(response, wire.TransactionAnswer).transaction
        if record is None:
            raise MalformedResponseError("body.transaction: missing from a write's answer", engine=self.name)
        return record

    def _found(self, response: httpx.Response) -> wire.TransactionRecord | None:
        try:
            return self._answer(response, wire.TransactionAnswer).transaction
        except EngineError as exc:
            if (exc.engine_code or "").upper() == "TRANSACTION_NOT_FOUND":
                return None
            raise

    def _write_once(self, operation: str, body: dict[str, Any], route: str, key: str,
                    check: Callable[[wire.TransactionRecord], None] | None = None) -> Sub:
        """One keyed write, looked up first and reconciled after a lost answer; returns
        ``(record, replayed)`` (replayed: the first look-up found it)."""
        s: MaxxingSettings = self.settings

        def look_up() -> Sub:
            response = yield self._call("get_transaction", tf.get_transaction(s, key), "lookup")
            record = self._found(response)
            if record is not None and check is not None:
                check(record)
            return record

        def send() -> Sub:
            return self._transaction((yield self._call(operation, body, route, write=True)))

        earlier = yield from look_up()
        if earlier is not None:
            return earlier, True
        sent, found = yield from reconcile(send, look_up)
        return (sent if sent is not None else found), False

    # -- identify --------------------------------------------------------------------------------
    def identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Flow[Customer | None]:
        s: MaxxingSettings = self.settings
        try:
            if identifier.kind is IdentifierKind.CARD:
                response = yield self._call("customer_by_card", tf.card_lookup(s, identifier.value), "identify")
                record = self._answer(response, wire.CustomerAnswer).customer
            else:
                response = yield self._call("customers", tf.customer_search(s, identifier.value), "identify")
                record = tf.single_customer(self._answer(response, wire.CustomerSearchAnswer), identifier.value)
        except CustomerNotFoundError:
            return None
        if record is None:
            return None
        balances: tuple[Balance, ...] = ()
        if s.identify_reads_balances:
            response = yield self._call("balances", tf.balances_request(s, record.cust_id), "lookup")
            balances = tf.kit_balances(self._answer(response, wire.BalancesAnswer).balances, s.currency)
        return tf.customer(record, balances)

    # -- evaluate and price ----------------------------------------------------------------------
    def evaluate_basket(self, basket: Basket, ctx: CallContext) -> Flow[Evaluation]:
        response = yield self._call("compute", tf.compute_request(self.settings, basket), "evaluate")
        return tf.evaluation(basket, self._answer(response, wire.ComputeAnswer), self.settings)

    def price_products(self, query: ProductQuery, ctx: CallContext) -> Flow[list[ProductPrice]]:
        response = yield self._call("price_products", tf.price_request(self.settings, query), "evaluate")
        return tf.product_prices(query, self._answer(response, wire.PriceProductsAnswer))

    # -- redeem ----------------------------------------------------------------------------------
    def redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
        s: MaxxingSettings = self.settings
        kit_key = ctx.idempotency_key or redemption.key
        key = tf.transaction_key(s, kit_key)

        def same_voucher(record: wire.TransactionRecord) -> None:
            if record.code != redemption.code or record.status != wire.CONFIRMED:
                raise InvalidRequestError("idempotency_key: already used for another or a cancelled redemption",
                                          field="idempotency_key", engine=self.name)

        record, replayed = yield from self._write_once(
            "burn_voucher", tf.burn_voucher_request(s, redemption, key), "redeem", key, same_voucher)
        currency = redemption.basket.currency if redemption.basket else s.currency
        return tf.redemption_result(record, redemption, kit_key, replayed, currency)

    # -- spend -----------------------------------------------------------------------------------
    def spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
        s: MaxxingSettings = self.settings
        if spend.kind is not BalanceKind.CASHBACK or spend.amount is None:
            raise NotSupportedError("MAXXING pays with cashback only", engine=self.name, operation="spend_cashback")
        kit_key = ctx.idempotency_key or spend.key
        key = tf.transaction_key(s, kit_key)
        wanted = spend.amount

        def same_spend(record: wire.TransactionRecord) -> None:
            if record.amount != wanted.amount or record.status != wire.CONFIRMED:
                raise InvalidRequestError("idempotency_key: already used for another or a cancelled spend",
                                          field="idempotency_key", engine=self.name)

        # The order's amount due is not on today's CashbackSpend; when it is, pass it here.
        record, replayed = yield from self._write_once(
            "burn_cashback", tf.burn_cashback_request(s, spend, key, amount_due=None), "spend", key, same_spend)
        return tf.spend_result(record, spend, kit_key, replayed)

    # -- export ----------------------------------------------------------------------------------
    def export_orders(self, orders: list[Order], ctx: CallContext) -> Flow[ExportReport]:
        s: MaxxingSettings = self.settings
        results = []
        for order in orders:
            key = tf.transaction_key(s, order.key)
            try:
                record, replayed = yield from self._write_once("confirm", tf.confirm_request(s, order, key), "export", key)
            except LoyaltyError as exc:
                if ends_batch(exc):
                    raise
                results.append(export_result_from_error(order.ref, exc))
            else:
                results.append(tf.export_result(order, record, replayed))
        return ExportReport(engine=self.name, results=tuple(results))

    # -- reverse ---------------------------------------------------------------------------------
    def reverse(self, reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
        s: MaxxingSettings = self.settings
        kit_key = ctx.idempotency_key or reversal.key
        order = reversal.order
        export_key = tf.transaction_key(s, order.key)
        records = []
        if reversal.kind is ReversalKind.REFUND:
            if s.refund_mode == "none":
                raise NotSupportedError("refunds are disabled (refund_mode)", engine=self.name, operation="reverse")
            if not reversal.exported:
                raise InvalidRequestError("exported: a refund reverses an exported order; cancel an unexported one",
                                          field="exported", engine=self.name)
            key = tf.transaction_key(s, kit_key)
            records.append((yield from self._write_once(
                "refund", tf.refund_request(s, reversal, key, export_key), "reverse", key)))
            return tf.reversal_result(reversal, records, kit_key)
        # Cancel: every write of this order on this engine, then the confirmed sale if exported.
        originals = [r.engine_ref or tf.transaction_key(s, r.idempotency_key) for r in order.receipts
                     if r.engine == self.name and r.operation in ("redeem_voucher", "spend_cashback")]
        if reversal.exported:
            # Check the sale is there before reversing anything, so a cancel never half-happens.
            response = yield self._call("get_transaction", tf.get_transaction(s, export_key), "lookup")
            if self._found(response) is None:
                raise InvalidRequestError("exported: the engine has no sale for this order",
                                          field="exported", engine=self.name)
            originals.append(export_key)
        for original in originals:
            key = tf.transaction_key(s, derive_key(kit_key, original))
            records.append((yield from self._write_once(
                "cancel", tf.cancel_request(s, reversal, key, original), "reverse", key)))
        return tf.reversal_result(reversal, records, kit_key)
