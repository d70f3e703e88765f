"""The CRM.COM Rewards adapter: the POS front-end reduction model.

identify (access token) -> evaluate (purchase preview) -> close the basket (purchase create: the
engine awards cashback) -> spend (a spend request against that purchase, or by release the spend
travels with the purchase: ``purchases/create_spend`` R9-R16, inside ``purchases/create`` R17+; the
POS deducts what was approved from the amount due) -> reverse (cancel the spend requests and the
purchase). Refunds are not supported: Gen A documents no return or per-line cancel.

CRM.COM documents no idempotency. Every write carries a deterministic reference (the order ref for a
purchase, a hash of the kit key for a spend), is looked up by it before it is sent, and after a lost
answer or a duplicate-reference refusal is looked up again before it is sent again (the core's
``loyaltykit.reconcile.reconcile``); the runner holds one call per idempotency key in flight. The wire
format lives behind ``self.backend`` (Gen A today).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from loyaltykit import (
    Balance,
    BalanceKind,
    Capabilities,
    CodeResult,
    CodeStatus,
    Discount,
    DiscountTarget,
    Earn,
    EngineAdapter,
    Evaluation,
    ExportReport,
    ExportStatus,
    IdentifierKind,
    OrderExportResult,
    Receipt,
    ReversalKind,
    ReversalResult,
    SpendResult,
    UnmappedEffect,
    wire,
)
from loyaltykit.errors import (
    EngineError,
    InsufficientBalanceError,
    InvalidRequestError,
    LoyaltyError,
    NotSupportedError,
)
from loyaltykit.flows import CallContext, Flow
from loyaltykit.http import EngineClientConfig
from loyaltykit.models import (
    Basket,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    Line,
    Order,
    Product,
    ProductSyncReport,
    Reversal,
)
from loyaltykit.money import Money
from loyaltykit.reconcile import ends_batch, export_result_from_error, reconcile

from . import __version__, transformers as tf
from .backend import Preview, Purchase, Sub
from .gen_a import GenABackend
from .settings import CrmcomSettings

log = logging.getLogger("loyaltykit.crmcom")


class CrmcomAdapter(EngineAdapter):
    """CRM.COM Rewards over the Gen A Web API (``/crmapi/rest/v2``)."""

    name = "crmcom"
    version = __version__
    capabilities = Capabilities(
        identify_by=frozenset({IdentifierKind.CARD}),
        evaluate=True,
        earn_preview=True,
        spend=frozenset({BalanceKind.CASHBACK}),
        export_orders=True,
        cancel=True,
        sync_products=True,
        points_catalog=False,  # no points-priced catalog in the engine's documentation
    )
    settings_model = CrmcomSettings
    _reconcile_lost_writes = True

    def __init__(self, settings: CrmcomSettings | dict[str, Any] | None = None, *,
                 release_transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(settings)
        s: CrmcomSettings = self.settings
        self.backend = GenABackend(s)
        self._release_transport = release_transport
        # Which media are access tokens is the tenant's choice; amounts carry no currency.
        self.capabilities = type(self).capabilities.model_copy(
            update={"identify_by": frozenset(s.access_token_kinds), "currencies": frozenset({s.currency})}
        )

    def client_config(self) -> EngineClientConfig:
        return self.backend.client_config()

    def close(self) -> None:
        """Release the session token (``authentication/token/release``), best effort. The facade has
        closed its client by now, so this one call uses its own short-lived one."""
        request = self.backend.release_request() if self.settings.release_token_on_close else None
        if request is None:
            return
        base = self.backend.client_config().service(request.service).base_url
        body = {**(request.json or {}), **self.backend.auth.body_fields()}  # the session token
        try:
            with httpx.Client(transport=self._release_transport, timeout=2.0) as client:
                client.post(base.rstrip("/") + "/" + request.path, content=wire.dumps(body),
                            headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            log.info("engine=crmcom token release failed: %s", type(exc).__name__)
        self.backend.auth.invalidate()

    # -- seams (the broken test adapters override these) ---------------------------------------
    def _spend_reference(self, key: str) -> str:
        return tf.reference_for(self.settings.spend_reference_prefix, key)

    # -- identify ------------------------------------------------------------------------------
    def identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Flow[Customer | None]:
        customer: Customer | None = yield from self.backend.find_customer(identifier)
        return customer

    # -- evaluate ------------------------------------------------------------------------------
    def evaluate_basket(self, basket: Basket, ctx: CallContext) -> Flow[Evaluation]:
        s: CrmcomSettings = self.settings
        codes = tuple(
            CodeResult(code=c, status=CodeStatus.REJECTED, reason="not_supported",
                       message="CRM.COM's Web API has no POS voucher-code redemption")
            for c in basket.coupon_codes
        )
        if basket.customer_id is None:
            # A preview needs the customer's account (mandatory from R17): a guest has nothing to earn.
            return Evaluation(engine=self.name, basket_id=basket.id, currency=basket.currency,
                              subtotal=basket.subtotal, codes=codes)
        preview = yield from self.backend.preview(basket.customer_id, basket.lines, basket.id)
        def money(amount: Decimal) -> Money:
            return Money.of(amount, s.currency)

        earn = (Earn(kind=BalanceKind.CASHBACK, money=money(preview.award), label="cashback"),) \
            if preview.award > 0 else ()
        spendable = money(max(self._spendable(preview, basket.subtotal.amount - preview.instant_spend), Decimal(0)))
        unmapped = [UnmappedEffect(type="spend_limits", raw={
            "minimum_spend_amount_per_transaction": preview.minimum_spend,
            "maximum_spend_amount_per_transaction": preview.maximum_spend,
            "wallet_balance": preview.wallet_balance,
            "reduction_method": preview.reduction_method,
            "allow_spending": preview.allow_spending,
        })]
        if preview.automatic_spend > 0:
            unmapped.append(UnmappedEffect(type="automatic_spend", raw={
                "total_automatic_spend_amount": preview.automatic_spend}))
        # Instant spend (an offer's award spent on the purchase at once) reduces what the shopper pays.
        instant = min(preview.instant_spend, basket.subtotal.amount)
        discounts = (Discount(target=DiscountTarget.ORDER, amount=money(instant), label="instant spend"),) \
            if instant > 0 else ()
        return Evaluation(
            engine=self.name, basket_id=basket.id, currency=basket.currency, customer_id=basket.customer_id,
            subtotal=basket.subtotal, earn=earn, discounts=discounts,
            spendable=(Balance(kind=BalanceKind.CASHBACK, name="wallet", money=spendable),),
            codes=codes, unmapped=tuple(unmapped),
        )

    @staticmethod
    def _spendable(preview: Preview, due: Decimal) -> Decimal:
        if not preview.allow_spending:
            return Decimal(0)
        limit = min(preview.additional_spend, due)
        if preview.maximum_spend is not None:
            limit = min(limit, preview.maximum_spend)
        return limit

    # -- close the basket: purchase create, found by reference first -----------------------------
    def _purchase(self, customer_id: str, lines: tuple[Line, ...], reference: str,
                  paid: Mapping[str, Decimal] | None = None) -> Sub:
        """The purchase for ``reference``: found, or created once (reconciled after a lost answer)."""
        existing = yield from self.backend.find_purchase(reference)
        if existing is not None:
            return existing, False
        created, found = yield from reconcile(
            lambda: self.backend.create_purchase(customer_id, lines, reference, paid),
            lambda: self.backend.find_purchase(reference),
            look_after_loss=self._reconcile_lost_writes,
        )
        return (created or found), True

    def export_orders(self, orders: list[Order], ctx: CallContext) -> Flow[ExportReport]:
        results: list[OrderExportResult] = []
        for order in orders:
            if order.customer_id is None:
                results.append(OrderExportResult(
                    order_ref=order.ref, status=ExportStatus.REJECTED, error_code="invalid_request",
                    reason="a CRM.COM purchase needs the customer's account (customer_id)"))
                continue
            try:
                # Each line at what it really cost: the core's allocation of the order's discounts.
                paid = {a.line_id: a.net.amount for a in order.allocations}
                purchase, created = yield from self._purchase(order.customer_id, order.lines, order.ref, paid)
            except LoyaltyError as exc:
                if ends_batch(exc):
                    raise
                results.append(export_result_from_error(order.ref, exc))
                continue
            default = self.settings.default_product_code
            defaulted = [line.intended_product or "(code not returned)" for line in purchase.lines
                         if line.intended_product or line.product_code == default]
            reason = f"booked on the default product: {', '.join(defaulted)}" if defaulted else None
            results.append(OrderExportResult(
                order_ref=order.ref, status=ExportStatus.ACCEPTED if created else ExportStatus.DUPLICATE,
                engine_ref=purchase.id, reason=reason))
        return ExportReport(engine=self.name, results=tuple(results))

    # -- spend: front-end reduction against the purchase -----------------------------------------
    def spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
        if spend.kind is not BalanceKind.CASHBACK or spend.amount is None:
            raise NotSupportedError("CRM.COM spends wallet money only", engine=self.name, operation="spend_cashback")
        key = ctx.idempotency_key or spend.key
        amount = spend.amount.amount
        reference = self._spend_reference(key)
        if self.settings.spend_mode != "spend_request":
            result: SpendResult | None = yield from self._spend_with_purchase(spend, key, amount, reference)
            if result is not None:
                return result
            # create_spend (R9-R16) and the order's purchase closed already: a spend request settles it.
        earlier = yield from self.backend.find_spend(reference)
        if earlier is not None:
            if earlier.state == "CANCELLED":
                raise self._cancelled_key()
            return self._spend_result(spend, key, earlier.id, earlier.amount, replayed=True)
        purchase = yield from self._settled_purchase(spend, amount)
        sent, found = yield from reconcile(
            lambda: self.backend.create_spend(spend.customer_id, purchase, amount, reference),
            lambda: self.backend.find_spend(reference),
            look_after_loss=self._reconcile_lost_writes,
        )
        request = sent or found
        if request is None:
            raise AssertionError("reconcile returns what was sent or what was found")
        return self._spend_result(spend, key, request.id, request.amount, replayed=False)

    def _cancelled_key(self) -> InvalidRequestError:
        return InvalidRequestError("the spend with this idempotency key was cancelled; use a new key",
                                   engine=self.name, field="spend.idempotency_key")

    def _spend_with_purchase(self, spend: CashbackSpend, key: str, amount: Decimal, reference: str) -> Sub:
        """The spend travels with the order's purchase (``create_spend`` R9-R16, atomic; or inside
        ``purchases/create`` from R17). The purchase's external reference is the spend's, so a look-up
        by the order ref tells a replay from an order closed without this spend. None: settle the
        closed purchase with a spend request instead (create_spend only)."""
        inline = self.settings.spend_mode == "inside_create"
        existing = yield from self.backend.find_purchase(spend.order_ref)
        if existing is not None:
            if existing.external_reference == reference:
                return self._inline_result(spend, key, existing, amount, replayed=True)
            if inline:
                raise self._closed_purchase()
            return None
        basket = spend.basket
        if basket is None:
            raise InvalidRequestError("a CRM.COM spend creates the order's purchase with it: pass the basket",
                                      engine=self.name, field="spend.basket")
        preview = yield from self.backend.preview(spend.customer_id, basket.lines, spend.order_ref)
        self._check_bounds(amount, preview, self._due(spend, basket.subtotal.amount - preview.instant_spend))
        sent, found = yield from reconcile(
            lambda: self.backend.create_purchase_with_spend(spend.customer_id, basket.lines, spend.order_ref,
                                                            amount, reference),
            lambda: self.backend.find_purchase(spend.order_ref),
            look_after_loss=self._reconcile_lost_writes,
        )
        purchase: Purchase | None = sent or found
        if purchase is None:
            raise AssertionError("reconcile returns what was sent or what was found")
        if purchase.external_reference != reference:  # an export of the order won the race
            if inline:
                raise self._closed_purchase()
            return None
        return self._inline_result(spend, key, purchase, amount, replayed=False)

    def _closed_purchase(self) -> InvalidRequestError:
        return InvalidRequestError(
            "the order's purchase is closed already; from R17 a spend travels inside the purchase, so spend "
            "before exporting the order", engine=self.name, field="spend.order_ref")

    def _inline_result(self, spend: CashbackSpend, key: str, purchase: Purchase, amount: Decimal, *, replayed: bool) -> SpendResult:
        if purchase.state == "CANCELLED":
            raise self._cancelled_key()
        if purchase.spent < amount:
            # The engine took the purchase but not the spend: the release or the spend parameter
            # (UNCONFIRMED, a setting) is not what the tenant runs. Nothing was spent.
            raise EngineError(
                f"the purchase was created without the spend (spend_mode {self.settings.spend_mode}: check the "
                "release and the spend path setting); nothing was deducted", engine=self.name)
        return self._spend_result(spend, key, purchase.id, amount, replayed=replayed)

    @staticmethod
    def _due(spend: CashbackSpend, payable: Decimal) -> Decimal:
        """What the spend may pay: what the purchase it settles still costs, and never more than the
        order's ``amount_due`` when the shop gives it (the core's figure: discounts, earlier spends)."""
        return payable if spend.amount_due is None else min(spend.amount_due.amount, payable)

    def _settled_purchase(self, spend: CashbackSpend, amount: Decimal) -> Sub:
        """Check the spend against the preview's bounds and the amount due, then find or create the
        purchase it settles."""
        basket = spend.basket
        if basket is None:
            purchase = yield from self.backend.find_purchase(spend.order_ref)
            if purchase is None:
                raise InvalidRequestError(
                    "a CRM.COM spend settles a purchase: pass the basket, or export the order first",
                    engine=self.name, field="spend.basket")
            self._check_due(amount, self._due(spend, purchase.total - purchase.spent))
            return purchase
        preview = yield from self.backend.preview(spend.customer_id, basket.lines, spend.order_ref)
        self._check_bounds(amount, preview, self._due(spend, basket.subtotal.amount - preview.instant_spend))
        purchase, _ = yield from self._purchase(spend.customer_id, basket.lines, spend.order_ref)
        self._check_due(amount, purchase.total - purchase.spent)
        return purchase

    def _check_bounds(self, amount: Decimal, preview: Preview, due: Decimal) -> None:
        if not preview.allow_spending:
            raise InsufficientBalanceError("the engine does not allow spending on this purchase", engine=self.name)
        if preview.wallet_balance is not None and amount > preview.wallet_balance:
            raise InsufficientBalanceError("the wallet balance does not cover the spend", engine=self.name)
        if preview.minimum_spend is not None and amount < preview.minimum_spend:
            raise InvalidRequestError(f"below the per-transaction minimum spend of {preview.minimum_spend}",
                                      engine=self.name, field="spend.amount")
        if preview.maximum_spend is not None and amount > preview.maximum_spend:
            raise InvalidRequestError(f"above the per-transaction maximum spend of {preview.maximum_spend}",
                                      engine=self.name, field="spend.amount")
        self._check_due(amount, due)

    def _check_due(self, amount: Decimal, due: Decimal) -> None:
        if amount > due:
            raise InvalidRequestError(f"more than the amount due ({due})", engine=self.name, field="spend.amount")

    def _spend_result(self, spend: CashbackSpend, key: str, engine_ref: str, amount: Decimal, *, replayed: bool) -> SpendResult:
        taken = Money.of(amount, self.settings.currency)
        return SpendResult(
            kind=BalanceKind.CASHBACK, amount=taken,
            receipt=Receipt(operation="spend_cashback", engine=self.name, idempotency_key=key,
                            engine_ref=engine_ref, amount=taken, replayed=replayed),
        )

    # -- reverse: cancel the spend requests and the purchase, then measure the wallet -------------
    def reverse(self, reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
        s: CrmcomSettings = self.settings
        if reversal.kind is not ReversalKind.CANCEL:
            raise NotSupportedError("CRM.COM Gen A documents no POS return; only cancel is supported",
                                    engine=self.name, operation="reverse")
        order = reversal.order
        key = ctx.idempotency_key or reversal.key
        spends = [r for r in order.receipts
                  if r.engine == self.name and r.operation == "spend_cashback" and r.engine_ref]
        purchase: Purchase | None = yield from self.backend.find_purchase(order.ref)
        if purchase is None and not spends:
            return ReversalResult(order_ref=order.ref, kind=ReversalKind.CANCEL)
        customer = order.customer_id
        before = (yield from self.backend.balance(customer)) if customer else None
        returned = Decimal(0)
        receipts = []
        # A spend made with the purchase (create_spend, inside_create) has the purchase as its ref:
        # only cancelling the purchase can give it back.
        inline = [r for r in spends if purchase is not None and r.engine_ref == purchase.id]
        for receipt in (r for r in spends if r not in inline):
            if receipt.engine_ref is None:
                raise AssertionError("receipt.engine_ref is set here")
            reference = self._spend_reference(receipt.idempotency_key)
            if (yield from self.backend.cancel_spend(receipt.engine_ref, reference)):
                returned += receipt.amount.amount if receipt.amount else Decimal(0)
                receipts.append(Receipt(operation="reverse", engine=self.name, idempotency_key=key,
                                        engine_ref=receipt.engine_ref, amount=receipt.amount))
        awarded = Decimal(0)
        if purchase is not None and purchase.state != "CANCELLED" and (
                yield from self.backend.cancel_purchase(purchase, order.ref)):
            awarded = purchase.awarded if s.cancel_reverses_awards else Decimal(0)
            if s.cancel_reverses_spends:
                returned += sum((r.amount.amount for r in inline if r.amount), Decimal(0))
            receipts.append(Receipt(operation="reverse", engine=self.name, idempotency_key=key,
                                    engine_ref=purchase.id))
        clawed = awarded
        if customer is not None and before is not None:
            after = yield from self.backend.balance(customer)
            measured = returned - (after - before)  # what the cancel took back, as the wallet shows it
            if measured != awarded:
                log.warning("engine=crmcom cancel moved the wallet by %s; expected %s", after - before,
                            returned - awarded)
            clawed = max(measured, Decimal(0))
        def money(amount: Decimal) -> Money:
            return Money.of(amount, s.currency)

        return ReversalResult(
            order_ref=order.ref, kind=ReversalKind.CANCEL,
            cashback_returned=money(returned) if returned else None,
            cashback_clawed_back=money(clawed) if clawed else None,
            receipts=tuple(receipts),
        )

    # -- product sync ----------------------------------------------------------------------------
    def sync_products(self, products: list[Product], ctx: CallContext) -> Flow[ProductSyncReport]:
        size = self.settings.product_sync_batch
        batches = 0
        for start in range(0, len(products), size):
            yield from self.backend.sync_products(products[start:start + size])
            batches += 1
        return ProductSyncReport(engine=self.name, synced=tuple(p.sku for p in products), batches=batches)
