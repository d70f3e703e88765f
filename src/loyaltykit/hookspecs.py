"""Hook specifications: the operations of a checkout, one hook each.

Every operation hook is **first result wins** and is answered by exactly one engine adapter; the
facade refuses to start when zero or several non-wrapper implementations claim one (pluggy's
registration order never decides who burns a voucher). Other plugins observe calls with
``@hookimpl(wrapper=True)``: they receive the adapter's flow and may wrap it (see
:func:`loyaltykit.observe.observe_flow`).

Each hook returns a *flow* (see :mod:`loyaltykit.flows`): a generator that yields engine requests
and returns the result named below. The facade validates the input before the hook is called, so
implementations receive valid models only, and the facade checks the declared capability, so an
adapter is only called for what it declared. ``ctx`` is a :class:`loyaltykit.flows.CallContext`.

These docstrings are the hook contract; ``docs/hooks.md`` is generated from them
(``python -m loyaltykit.hookdoc``) and a test fails when the two differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from .operations import OPERATIONS

if TYPE_CHECKING:
    from .flows import CallContext, Flow
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

PROJECT = "loyaltykit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The operation hooks, in checkout order (from the operation table). Each must be answered by
#: exactly one adapter.
OPERATION_HOOKS = tuple(op.hook for op in OPERATIONS)


@hookspec(firstresult=True)
def loyaltykit_identify(identifier: CustomerIdentifier, ctx: CallContext) -> Flow[Customer | None]:
    """Find the loyalty member behind an identifier.

    First result wins; answered by exactly one engine adapter.

    :param identifier: a validated :class:`~loyaltykit.models.CustomerIdentifier` (email, phone,
        card, membership number or external id) of a kind the adapter declared in
        ``capabilities.identify_by``. The value is normalised (e-mail lower-cased, phone without
        separators).
    :param ctx: the :class:`~loyaltykit.flows.CallContext` of this call.
    :return: a flow returning a :class:`~loyaltykit.models.Customer` (engine id, tier, balances),
        or ``None`` when the engine has no such member. Unknown is ``None``, not an error.

    Side effects: none. Idempotency: a read; the runner retries it freely.
    Raises: ``EngineUnavailableError``, ``EngineTimeoutError``, ``RateLimitedError``,
    ``AuthFailedError``, ``MalformedResponseError``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def loyaltykit_evaluate_basket(basket: Basket, ctx: CallContext) -> Flow[Evaluation]:
    """Quote a basket: discounts, free items, points and cashback to earn, wallet, messages.

    First result wins; answered by exactly one engine adapter.

    :param basket: a validated :class:`~loyaltykit.models.Basket`; ``basket.customer_id`` is the
        engine id from :func:`loyaltykit_identify`, or ``None`` for a guest;
        ``basket.coupon_codes`` are checked and reported per code (accepted / rejected + reason).
    :param ctx: the call context; its deadline is the evaluation latency budget.
    :return: a flow returning an :class:`~loyaltykit.models.Evaluation`. Engine effects the
        adapter cannot map go to ``Evaluation.unmapped`` with their raw payload, never dropped.
        An adapter declaring ``points_catalog`` names the basket's points-priced lines (sent at
        0.00) in ``Evaluation.points_lines`` with their cost in points.

    Side effects: **none** — evaluating must not burn a code, reserve stock or change a balance
    (simulation endpoints only). Idempotency: a read.
    Raises: the errors of :func:`loyaltykit_identify`; ``CustomerNotFoundError`` for an unknown
    ``customer_id``. The facade turns unavailability, garbage and unclassified engine errors into a
    ``degraded`` quote (fail open).

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def loyaltykit_price_products(query: ProductQuery, ctx: CallContext) -> Flow[list[ProductPrice]]:
    """Price products for a listing or product page, for one customer (or a guest).

    First result wins; answered by exactly one engine adapter declaring ``price_products``.

    :param query: a validated :class:`~loyaltykit.models.ProductQuery`.
    :param ctx: the call context.
    :return: a flow returning a list of :class:`~loyaltykit.models.ProductPrice`, one per product
        in query order: discounted price, points to earn, points price where the product is in
        the points-only catalog.

    Side effects: none. Idempotency: a read.
    Raises: as :func:`loyaltykit_evaluate_basket`.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def loyaltykit_redeem_voucher(redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
    """Burn — or reserve for the order — a voucher, promo code or wallet offer.

    First result wins; answered by exactly one engine adapter declaring ``redeem_voucher``.

    :param redemption: a validated :class:`~loyaltykit.models.VoucherRedemption`. Its ``key``
        (explicit, or derived from order reference + ``redeem`` + code) is the idempotency key.
    :param ctx: the call context; ``ctx.idempotency_key`` equals ``redemption.key``.
    :return: a flow returning a :class:`~loyaltykit.models.RedemptionResult` with status
        ``redeemed`` or ``reserved`` (completed when the order is exported), the discount, and a
        ``receipt`` carrying the engine reference needed to reverse it.

    Side effects: yes, exactly once per idempotency key. The adapter maps the key to the engine's
    mechanism, or looks the effect up before re-sending after a lost response.
    Raises: ``VoucherNotFoundError``, ``VoucherExpiredError``, ``VoucherAlreadyRedeemedError``,
    ``VoucherNotOwnedError``, ``UsageLimitReachedError``, ``VoucherConditionsNotMetError``,
    ``CustomerNotFoundError``; ``OutcomeUnknownError`` when the result cannot be established
    within the deadline. Writes fail closed: no error is ever turned into success.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def loyaltykit_spend_cashback(spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
    """Pay part or all of an order with the customer's cashback (money) or points.

    First result wins; answered by exactly one engine adapter declaring the balance kind in
    ``capabilities.spend``.

    :param spend: a validated :class:`~loyaltykit.models.CashbackSpend`; its ``key`` (derived
        from order reference + ``spend`` + kind by default) is the idempotency key.
    :param ctx: the call context.
    :return: a flow returning a :class:`~loyaltykit.models.SpendResult` with the amount taken,
        the remaining balance when the engine reports it, and a receipt.

    A points spend with ``line_ids`` pays the quote's points-priced lines (adapters declaring
    ``points_catalog`` only); the core has checked it names exactly them and their points, and
    puts ``line_ids`` on the receipt. Such lines earn nothing.

    Side effects: yes, exactly once per idempotency key; never overdraws, even under concurrency.
    Raises: ``InsufficientBalanceError``, ``CustomerNotFoundError``, ``CurrencyMismatchError``,
    ``OutcomeUnknownError``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def loyaltykit_export_orders(orders: list[Order], ctx: CallContext) -> Flow[ExportReport]:
    """Send placed orders to the engine so it records points earned and redemptions.

    First result wins; answered by exactly one engine adapter declaring ``export_orders``.

    :param orders: a list of validated :class:`~loyaltykit.models.Order` (1..500, unique refs).
        Each order's ``key`` (order ref + ``export``) is its idempotency key.
    :param ctx: the call context.
    :return: a flow returning an :class:`~loyaltykit.models.ExportReport` with one result per
        order: ``accepted``, ``duplicate`` (the engine already had it; no second effect),
        ``rejected`` with a reason, or ``retry_later``. One bad order must not sink the batch.

    Side effects: yes; the engine sees each order once however often it is exported.
    Raises: only for failures of the whole call; the facade reports every order of a batch that
    raised ``EngineUnavailableError``/``OutcomeUnknownError`` as ``retry_later``, so none is lost.
    An order whose own export raised is reported by
    :func:`loyaltykit.reconcile.export_result_from_error`. Keep orders in
    :class:`loyaltykit.outbox.Outbox` to get this durably.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def loyaltykit_reverse(reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
    """Cancel an order, or refund it in full or in part.

    First result wins; answered by exactly one engine adapter declaring ``cancel``, ``refund``
    or ``partial_refund`` as the reversal requires.

    :param reversal: a validated :class:`~loyaltykit.models.Reversal`: the order as placed (with
        the receipts of its redemptions and spends), the kind, the refunded lines (``None`` for
        all) and a reference distinguishing successive partial refunds. Idempotency key:
        ``"{order_ref}:{kind}:{reference}"``.
    :param ctx: the call context; ``ctx.idempotency_key`` equals ``reversal.key``.
    :return: a flow returning a :class:`~loyaltykit.models.ReversalResult`: burned points and
        cashback returned, earned ones clawed back in proportion, vouchers reinstated.

    Side effects: yes, exactly once per idempotency key.
    Raises: ``NotSupportedError`` for a reversal the engine cannot do; ``OutcomeUnknownError``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def loyaltykit_sync_products(products: list[Product], ctx: CallContext) -> Flow[ProductSyncReport]:
    """Create or update catalogue products on the engine, so its rules know every SKU sold.

    First result wins; answered by exactly one engine adapter declaring ``sync_products``.

    :param products: a validated, non-empty list of :class:`~loyaltykit.models.Product` with
        unique SKUs. The adapter splits it into the engine's batch size.
    :param ctx: the call context.
    :return: a flow returning a :class:`~loyaltykit.models.ProductSyncReport`: the SKUs the
        engine accepted and the number of engine calls.

    Side effects: yes; create-or-update, so sending the same products again changes nothing.
    Idempotency: by SKU on the engine; a repeat is safe.
    Raises: ``EngineUnavailableError``, ``EngineTimeoutError``, ``RateLimitedError``,
    ``AuthFailedError``, ``MalformedResponseError``, ``EngineError`` when the engine refuses a
    batch; ``OutcomeUnknownError`` when a batch's answer was lost (sending it again is safe).

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def loyaltykit_enrol_member(enrolment: Enrolment, ctx: CallContext) -> Flow[EnrolmentResult]:
    """Enrol a member: identifiers, profile fields and consents; once per external id.

    First result wins; answered by exactly one engine adapter declaring ``enrol_member``.

    :param enrolment: a validated :class:`~loyaltykit.members.Enrolment`; its identifiers are
        normalised (e-mail lower-cased, phone without separators). ``enrolment.key``
        (``"enrol:{external_id}"``) is the idempotency key.
    :param ctx: the call context; ``ctx.idempotency_key`` equals ``enrolment.key``.
    :return: a flow returning an :class:`~loyaltykit.members.EnrolmentResult`: the member as
        :func:`loyaltykit_identify` would return it, and ``created`` — ``False`` when a member
        with this external id already existed (the earlier member is returned, nothing changes).

    Side effects: yes, one member per external id however often it is sent, even concurrently.
    Raises: ``InvalidRequestError`` (naming the field) when another member already holds one of
    the identifiers, or the engine refuses a profile field or tier; ``OutcomeUnknownError`` when the
    answer was lost (sending the same enrolment again is safe).

    .. versionadded:: 0.3
    """


@hookspec(firstresult=True)
def loyaltykit_update_member(update: MemberUpdate, ctx: CallContext) -> Flow[Customer]:
    """Change a member's tier, segments or role, where the engine allows it.

    First result wins; answered by exactly one engine adapter declaring ``update_member``.

    :param update: a validated :class:`~loyaltykit.members.MemberUpdate`; only the fields given
        change (``segments`` replaces the member's set of segments).
    :param ctx: the call context.
    :return: a flow returning the updated :class:`~loyaltykit.models.Customer`.

    Side effects: yes; setting the same values again changes nothing (idempotent by value). A
    tier change is recorded where the engine keeps tier history (it appears in the statement).
    Raises: ``CustomerNotFoundError``; ``InvalidRequestError`` (``field="tier"``) for a tier the
    program does not have; ``NotSupportedError`` for a field the engine cannot change;
    ``OutcomeUnknownError``.

    .. versionadded:: 0.3
    """


@hookspec(firstresult=True)
def loyaltykit_member_statement(query: StatementQuery, ctx: CallContext) -> Flow[Statement]:
    """A page of a member's statement: points and cashback earned, spent, expired and reversed.

    First result wins; answered by exactly one engine adapter declaring ``statement``.

    :param query: a validated :class:`~loyaltykit.members.StatementQuery`: the member, the page
        size, the cursor of the previous page (``None`` for the first), an optional time window.
    :param ctx: the call context.
    :return: a flow returning a :class:`~loyaltykit.members.Statement`: at most ``page_size``
        :class:`~loyaltykit.members.StatementEntry`, newest first, each with its date, signed
        amount, order reference and the rule or campaign that caused it where the engine says;
        ``next_cursor`` is ``None`` on the last page. Pages do not overlap or skip entries.

    Side effects: none. Idempotency: a read.
    Raises: ``CustomerNotFoundError``; ``InvalidRequestError`` (``field="query.cursor"``) for a
    cursor that did not come from this statement; the errors of :func:`loyaltykit_identify`.

    .. versionadded:: 0.3
    """


@hookspec(firstresult=True)
def loyaltykit_member_wallet(query: WalletQuery, ctx: CallContext) -> Flow[Wallet]:
    """The member's usable offers and vouchers, outside a basket ("my offers").

    First result wins; answered by exactly one engine adapter declaring ``wallet``.

    :param query: a validated :class:`~loyaltykit.members.WalletQuery`.
    :param ctx: the call context.
    :return: a flow returning a :class:`~loyaltykit.members.Wallet`: each owned offer or voucher
        that is still valid and has uses left, as an :class:`~loyaltykit.models.Offer` with its
        code (what the shop sends to redeem it in any channel) and expiry.

    Side effects: none — listing the wallet never claims or activates an offer.
    Raises: ``CustomerNotFoundError``; the errors of :func:`loyaltykit_identify`.

    .. versionadded:: 0.3
    """


@hookspec(firstresult=True)
def loyaltykit_issue_voucher(issue: VoucherIssue, ctx: CallContext) -> Flow[IssuedVouchers]:
    """Issue a voucher or offer to a member outside a checkout; once per idempotency key.

    First result wins; answered by exactly one engine adapter declaring ``issue_voucher``.

    :param issue: a validated :class:`~loyaltykit.members.VoucherIssue`: the member, the engine's
        voucher definition or offer id, the quantity, and an optional face value and expiry.
    :param ctx: the call context; ``ctx.idempotency_key`` equals ``issue.idempotency_key``.
    :return: a flow returning :class:`~loyaltykit.members.IssuedVouchers`: one
        :class:`~loyaltykit.models.Offer` per unit issued, each with the id and code the shop
        redeems it with (in any channel) and its expiry; ``created`` is ``False`` when this key had
        already issued (the earlier vouchers, nothing new). The vouchers then appear in
        :func:`loyaltykit_member_wallet` and can be redeemed once each.

    Side effects: yes; one issue per key however often it is sent, even concurrently (the adapter
    maps the key to the engine's mechanism or looks the earlier issue up before sending).
    Raises: ``CustomerNotFoundError``; ``InvalidRequestError`` (``field="definition_id"``) for a
    definition the engine does not know, or naming the field the engine refuses;
    ``NotSupportedError`` for an override (face value, expiry) the engine cannot apply;
    ``OutcomeUnknownError`` when the answer was lost (sending the same issue again is safe).

    .. versionadded:: 0.3
    """
