"""The SessionM adapter: which calls, in which order, with which keys. Mapping is in transformers.

Families and services: ``core`` (customer profiles), ``connect`` (offers wallet, points), ``pos``
(look-up with a basket, lock/unlock/redeem/reinstate, send_transaction). Each has its own Basic
credentials. Engine-side idempotency:

* POS ``request_id`` = UUIDv5 of the kit key (+ operation): a repeat replays the stored answer;
* Connect spend ``idempotency_id`` = UUIDv5 of the kit key: the engine de-duplicates the spend.

Only those writes carry ``idempotency_key=`` for the runner; the Connect ``deposit`` has no
documented de-duplication, so a lost answer to it surfaces as ``OutcomeUnknownError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from loyaltykit import (
    Balance,
    BalanceKind,
    Capabilities,
    CodeResult,
    CodeStatus,
    CustomerIdentifier,
    EngineAdapter,
    EngineClientConfig,
    EngineRequest,
    Evaluation,
    ExportReport,
    ExportStatus,
    IdentifierKind,
    OrderExportResult,
    Receipt,
    ReversalKind,
    ReversalResult,
    Service,
)
from loyaltykit.auth import BasicAuth
from loyaltykit.errors import (
    EngineTimeoutError,
    EngineUnavailableError,
    InvalidRequestError,
    LoyaltyError,
    MalformedResponseError,
    NotSupportedError,
    OutcomeUnknownError,
    RateLimitedError,
    VoucherNotOwnedError,
)
from loyaltykit.flows import CallContext, Flow
from loyaltykit.members import (
    Enrolment,
    EnrolmentResult,
    IssuedVouchers,
    MemberField,
    MemberUpdate,
    Statement,
    StatementQuery,
    VoucherIssue,
    Wallet,
    WalletQuery,
    decode_cursor,
    encode_cursor,
)
from loyaltykit.models import (
    Basket,
    CashbackSpend,
    Customer,
    Order,
    RedemptionResult,
    Reversal,
    SpendResult,
    VoucherRedemption,
)
from loyaltykit.reconcile import ends_batch, export_result_from_error
from loyaltykit.scrub import register_secret

from . import __version__, transformers as tf
from .settings import SessionMSettings

Sub = Generator[EngineRequest, httpx.Response, Any]


class SessionMAdapter(EngineAdapter):
    """SessionM over its Core, Connect and POS APIs."""

    name = "sessionm"
    version = __version__
    capabilities = Capabilities(
        identify_by=frozenset(
            {IdentifierKind.EMAIL, IdentifierKind.EXTERNAL_ID, IdentifierKind.PHONE, IdentifierKind.CARD}
        ),
        evaluate=True,
        wallet_offers=True,
        redeem_voucher=True,
        reserve_voucher=True,
        spend=frozenset({BalanceKind.POINTS}),
        export_orders=True,
        cancel=True,
        wallet=True,
        enrol_member=True,
        update_member=True,
        member_fields=frozenset({MemberField.SEGMENTS}),  # and TIER with tier_system_id (see __init__)
        statement=True,
        issue_voucher=True,
        points_catalog=False,  # no points-priced catalog in the engine's documentation
    )
    settings_model = SessionMSettings

    def __init__(self, settings: SessionMSettings | dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        s: SessionMSettings = self.settings
        register_secret(s.core_api_key.get_secret_value())  # it is a path segment of Core URLs
        # The tenant has one currency (transactions carry none); "redeem" mode burns, never reserves.
        # Segments live on a profile attribute; a tier moves only within a configured tier system.
        fields = {MemberField.SEGMENTS} | ({MemberField.TIER} if s.tier_system_id is not None else set())
        self.capabilities = type(self).capabilities.model_copy(
            update={"currencies": frozenset({s.currency}), "reserve_voucher": s.redeem_mode == "lock",
                    "refund": s.refunds, "partial_refund": s.refunds, "member_fields": frozenset(fields)}
        )

    def client_config(self) -> EngineClientConfig:
        s: SessionMSettings = self.settings
        return EngineClientConfig(
            engine=self.name,
            services={
                "core": Service(s.core_base_url, BasicAuth(s.core_api_key.get_secret_value(), s.core_api_secret)),
                "connect": Service(s.connect_base_url, BasicAuth(s.connect_key, s.connect_secret)),
                "pos": Service(s.pos_base_url, BasicAuth(s.pos_key, s.pos_secret)),
            },
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
        )

    # -- request builders ------------------------------------------------------------------------
    def _core_get(self, path: str, route: str, params: dict[str, str] | None = None) -> EngineRequest:
        key = quote(self.settings.core_api_key.get_secret_value(), safe="")
        return EngineRequest("GET", f"/priv/v1/apps/{key}/{path}", service="core", params=params, route=route)

    def _connect(self, path: str, body: dict[str, Any], route: str, *, write: bool = False,
                 idempotency_key: str | None = None) -> EngineRequest:
        return EngineRequest(
            "POST",
            path,
            service="connect",
            json={"retailer_id": self.settings.retailer_id, **body},
            write=write,
            idempotency_key=idempotency_key,
            route=route,
        )

    def _pos(self, operation: str, payload: dict[str, Any], route: str, request_id: str, *,
             write: bool = False, idempotency_key: str | None = None, store_id: str | None = None) -> EngineRequest:
        return EngineRequest(
            "POST",
            f"/api/2.0/{operation}",
            service="pos",
            json=tf.pos_envelope(self.settings, request_id, payload, store_id),
            write=write,
            idempotency_key=idempotency_key,
            route=route,
        )

    # -- seams: idempotency and classification (the broken test adapters override these) ---------
    def _request_id(self, key: str, purpose: str) -> str:
        return tf.derived_id(key, purpose)

    def _runner_key(self, key: str) -> str | None:
        return key

    def _send_write(self, build: Callable[[str], EngineRequest], key: str, purpose: str) -> Sub:
        """Send a de-duplicated write; the runner retries it with the same engine id."""
        return (yield build(self._request_id(key, purpose)))

    def _core_result(self, response: httpx.Response) -> dict[str, Any]:
        return tf.core_result(response.status_code, response.content, self.settings.error_codes)

    def _connect_payload(self, response: httpx.Response) -> dict[str, Any]:
        return tf.connect_payload(response.status_code, response.content, self.settings.error_codes)

    def _pos_payload(self, response: httpx.Response) -> dict[str, Any]:
        return tf.pos_payload(response.status_code, response.content, self.settings.error_codes)

    # -- identify --------------------------------------------------------------------------------
    def identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Flow[Customer | None]:
        s: SessionMSettings = self.settings
        kind, value = identifier.kind, identifier.value
        if kind is IdentifierKind.EXTERNAL_ID:
            request = self._core_get(f"external/users/{quote(value, safe='')}", "identify", tf.CORE_USER_QUERY)
        elif kind is IdentifierKind.EMAIL and s.identify_email_via == "core":
            request = self._core_get("users/search", "identify", {"email": value})
        else:
            criteria = {
                IdentifierKind.EMAIL: ("email", value),
                IdentifierKind.PHONE: ("phone", re.sub(r"\D", "", value)),  # the POS wants digits only
                IdentifierKind.CARD: ("external_customer_id", value),
            }[kind]
            # A read: a fresh request_id per call is right (a repeat would replay a stale answer).
            request = self._pos("lookup", {criteria[0]: criteria[1]}, "identify", tf.derived_id(ctx.request_id, "lookup"))
        response = yield request
        try:
            if request.service == "core":
                user = self._core_result(response).get("user")
            else:
                user = self._pos_payload(response).get(s.lookup_user_key)
        except LoyaltyError as exc:
            if tf.is_not_found(exc):
                return None
            raise
        return tf.customer_from_user(user, s)

    # -- members ---------------------------------------------------------------------------------
    def enrol_member(self, enrolment: Enrolment, ctx: CallContext) -> Flow[EnrolmentResult]:
        """Core create customer (reference § 3.1), once per external id: the external-id look-up
        first; after a refusal, the look-up again (a concurrent enrolment may have won)."""
        s: SessionMSettings = self.settings
        by_external_id = CustomerIdentifier(kind=IdentifierKind.EXTERNAL_ID, value=enrolment.external_id)
        known = yield from self.identify(by_external_id, ctx)
        if known is not None:
            return EnrolmentResult(customer=known, created=False)
        key = quote(s.core_api_key.get_secret_value(), safe="")
        response = yield EngineRequest("POST", f"/priv/v1/apps/{key}/users", service="core",
                                       json=tf.user_from_enrolment(enrolment, s), write=True, route="enrol")
        try:
            user = self._core_result(response).get("user")
        except LoyaltyError as exc:
            known = yield from self.identify(by_external_id, ctx)
            if known is not None:
                return EnrolmentResult(customer=known, created=False)
            if exc.engine_code in s.enrol_email_taken_codes:
                raise InvalidRequestError("enrolment.email: another member holds this email",
                                          field="enrolment.email", engine=self.name) from None
            raise
        return EnrolmentResult(customer=tf.customer_from_user(user, s), created=True)

    def update_member(self, update: MemberUpdate, ctx: CallContext) -> Flow[Customer]:
        """Segments: Core update customer (reference § 3.4) on a custom profile attribute; tier:
        Incentives move_user (§ 5.4) in the configured tier system. A role has no documented home."""
        s: SessionMSettings = self.settings
        # No role; a tier only within tier_system_id: member_fields says so (set in __init__).
        self.capabilities.check_member_update(update, self.name)
        user_id = quote(update.customer_id, safe="")
        key = quote(s.core_api_key.get_secret_value(), safe="")
        if update.segments is not None:
            response = yield EngineRequest("PUT", f"/priv/v1/apps/{key}/users/{user_id}", service="core",
                                           json=tf.user_update(update, s), write=True, route="update")
            self._core_result(response)
        if update.tier is not None:
            response = yield self._connect("/incentives/api/1.0/movement/move_user",
                                           tf.move_user(update.customer_id, update.tier, s), "update", write=True)
            self._connect_payload(response)
        response = yield self._core_get(f"users/{user_id}", "identify", tf.CORE_USER_QUERY)
        return tf.customer_from_user(self._core_result(response).get("user"), s)

    def issue_voucher(self, issue: VoucherIssue, ctx: CallContext) -> Flow[IssuedVouchers]:
        """acquisition/issue (reference § 4.3), once per key: the wallet is searched for user offers
        tagged with the key first; each new user offer is tagged (acquisition/update custom_data,
        § 4.4); the runner's key lock keeps one call per key in flight. SessionM takes neither a face
        value nor an expiry at issue."""
        s: SessionMSettings = self.settings
        for name in ("face_value", "expires_at"):
            if getattr(issue, name) is not None:
                raise NotSupportedError(f"SessionM issues an offer as defined: {name} cannot be set",
                                        field=f"issue.{name}", engine=self.name)
        key = ctx.idempotency_key or issue.key
        earlier = yield from self._tagged(issue.customer_id, key)
        if earlier:
            if len(earlier) != issue.quantity:  # another issue under this key, or some already redeemed
                raise InvalidRequestError(
                    f"issue.idempotency_key: this key issued offers before and {len(earlier)} are in the wallet",
                    field="issue.idempotency_key", engine=self.name)
            return IssuedVouchers(customer_id=issue.customer_id, definition_id=issue.definition_id,
                                  vouchers=earlier, created=False)
        response = yield self._connect("/offers/api/2.0/offers/acquisition/issue", tf.issue_request(issue),
                                       "issue", write=True)
        try:
            ids = tf.issued_user_offer_ids(self._connect_payload(response), s.error_codes)
        except LoyaltyError as exc:
            if exc.engine_code in s.issue_offer_unknown_codes:
                raise InvalidRequestError("issue.definition_id: SessionM has no such offer",
                                          field="issue.definition_id", engine=self.name) from None
            raise
        for user_offer_id in ids:
            response = yield self._connect(
                "/offers/api/2.0/offers/acquisition/update",
                {"user_id": issue.customer_id, "user_offer_id": user_offer_id, "custom_data": tf.issue_tag(key),
                 "remain_pending_extended_data": False, "update_redemption_dates": False},
                "issue", write=True)
            self._connect_payload(response)
        issued = yield from self._tagged(issue.customer_id, key)
        return IssuedVouchers(customer_id=issue.customer_id, definition_id=issue.definition_id,
                              vouchers=issued, created=True)

    def _tagged(self, user_id: str, key: str) -> Sub:
        entries = yield from self._wallet_entries(user_id)
        mine = [e for e in entries if tf.tagged_with(e, key, self.settings)]
        return tf.wallet_offers({"user_offers": mine}, self.settings)

    def member_statement(self, query: StatementQuery, ctx: CallContext) -> Flow[Statement]:
        """Point audit logs (reference § 5.4), paged by skip/take; the cursor is the skip."""
        skip = 0
        if query.cursor is not None:
            try:
                position = decode_cursor(query.cursor)
                skip = int(position["skip"])
                if position.get("user") != query.customer_id or skip < 0:
                    raise ValueError("another member's cursor")
            except (ValueError, KeyError, TypeError):
                raise InvalidRequestError("query.cursor: not a cursor of this statement", field="query.cursor",
                                          engine=self.name) from None
        response = yield self._connect(
            "/incentives/api/2.0/user_points/fetch_point_audit_logs",
            {"user_id": query.customer_id, "exclude_specified_modification_types": True, "skip": skip,
             "take": query.page_size}, "lookup",
        )
        entries = tf.statement_entries(self._connect_payload(response), self.settings)
        if query.since is not None:
            entries = [e for e in entries if e.at >= query.since]
        if query.until is not None:
            entries = [e for e in entries if e.at < query.until]
        entries.sort(key=lambda e: e.at, reverse=True)
        following = None
        if len(entries) >= query.page_size:
            following = encode_cursor({"skip": skip + query.page_size, "user": query.customer_id})
        return Statement(customer_id=query.customer_id, entries=tuple(entries[: query.page_size]),
                         next_cursor=following)

    # -- evaluate --------------------------------------------------------------------------------
    def evaluate_basket(self, basket: Basket, ctx: CallContext) -> Flow[Evaluation]:
        s: SessionMSettings = self.settings
        if basket.customer_id is None:
            # SessionM offers live in a member's wallet: a guest basket has nothing to look up.
            return Evaluation(
                engine=self.name,
                basket_id=basket.id,
                currency=basket.currency,
                subtotal=basket.subtotal,
                codes=tuple(
                    CodeResult(code=c, status=CodeStatus.REJECTED, reason="voucher_not_found",
                               message="wallet offers need an identified customer")
                    for c in basket.coupon_codes
                ),
            )
        user_id = basket.customer_id
        transaction = tf.transaction_from_basket(basket, basket.id, s)
        lookup = yield self._pos(
            "lookup", {"user_id": user_id, "transaction": transaction}, "evaluate",
            tf.derived_id(ctx.request_id, "lookup"), store_id=basket.store_id,
        )
        eligible = tf.eligible_discounts(self._pos_payload(lookup), basket, s)
        entries = yield from self._wallet_entries(user_id)
        wallet = tf.wallet_offers({"user_offers": entries}, s, eligible=eligible.keys())
        balances = yield self._connect(
            "/incentives/api/1.0/user_points/all_balances", {"user_id": user_id, "culture": s.culture}, "lookup"
        )
        points, _ = tf.points_from_balances(self._connect_payload(balances), s)
        discounts, codes = tf.code_results(basket.coupon_codes, eligible, [o.code or o.id for o in wallet],
                                           apply_all=s.evaluate_applies == "eligible")
        return Evaluation(
            engine=self.name,
            basket_id=basket.id,
            currency=basket.currency,
            customer_id=user_id,
            subtotal=basket.subtotal,
            discounts=discounts,
            spendable=(Balance(kind=BalanceKind.POINTS, name="points", points=max(points, Decimal(0))),),
            wallet=wallet,
            codes=codes,
        )

    def member_wallet(self, query: WalletQuery, ctx: CallContext) -> Flow[Wallet]:
        """The user's ISSUED offers (get_user_offers, reference § 4.2), outside a basket."""
        entries = yield from self._wallet_entries(query.customer_id)
        return Wallet(customer_id=query.customer_id,
                      offers=tf.wallet_offers({"user_offers": entries}, self.settings))

    def _wallet_entries(self, user_id: str) -> Sub:
        """Every ISSUED user offer: get_user_offers pages by skip/take (take at most 1000)."""
        s: SessionMSettings = self.settings
        entries: list[Any] = []
        for page in range(s.wallet_max_pages):
            response = yield self._connect(
                "/offers/api/2.0/offers/get_user_offers",
                {"user_id": user_id, "skip": page * s.wallet_page_size, "take": s.wallet_page_size,
                 "include_pending_extended_data": False, "culture": s.culture},
                "wallet",
            )
            payload = self._connect_payload(response)
            batch = [e for e in payload.get("user_offers") or () if isinstance(e, dict)]
            entries.extend(batch)
            total = payload.get("total_records")
            done = len(batch) < s.wallet_page_size
            if total is not None:
                done = done or len(entries) >= int(tf.decimal(total, "total_records"))
            if done:
                break
        return entries

    # -- redeem ----------------------------------------------------------------------------------
    def redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
        s: SessionMSettings = self.settings
        key = ctx.idempotency_key or redemption.key
        if redemption.basket is not None:
            transaction = tf.transaction_from_basket(redemption.basket, redemption.order_ref, s)
        else:
            transaction = {"transaction_id": redemption.order_ref, "is_closed": False, "is_voided": False,
                           "subtotal": 0, "items": [], "payments": [], "discounts": []}
        lock = s.redeem_mode == "lock"
        operation = "lock" if lock else "redeem"
        payload = {"offer_lookup_code": redemption.code, "offer_lookup_type": s.offer_lookup_type,
                   "transaction": transaction}

        store = redemption.basket.store_id if redemption.basket is not None else None

        def build(request_id: str) -> EngineRequest:
            return self._pos(operation, payload, "redeem", request_id, write=True,
                             idempotency_key=self._runner_key(key), store_id=store)

        response = yield from self._send_write(build, key, operation)
        discount = self._pos_payload(response)
        owner = discount.get("user_id")
        if redemption.customer_id and owner and str(owner) != redemption.customer_id:
            # Another member's offer: give it straight back (keyed, so safe to repeat), then refuse.
            # Unlock/reinstate name the lock's user offer id, never the TTL code that found it.
            yield from self._release(str(discount.get("reference_id") or redemption.code), key, "foreign", unlock=lock,
                                     store_id=store)
            raise VoucherNotOwnedError("the offer belongs to another customer", engine=self.name)
        return tf.redemption_from_discount(discount, redemption.code, key, s, reserved=lock)

    def _release(self, user_offer_id: str, key: str, purpose: str, *, unlock: bool, store_id: str | None = None) -> Sub:
        operation = "unlock" if unlock else "reinstate"
        payload = {"user_offer_id": user_offer_id, "employee_id": self.settings.employee_id}

        def build(request_id: str) -> EngineRequest:
            route = "release" if unlock else "reverse"
            return self._pos(operation, payload, route, request_id, write=True, idempotency_key=self._runner_key(key),
                             store_id=store_id)

        response = yield from self._send_write(build, key, f"{operation}:{purpose}:{user_offer_id}")
        self._pos_payload(response)

    # -- points ----------------------------------------------------------------------------------
    def _point_account(self, user_id: str) -> Sub:
        s: SessionMSettings = self.settings
        if s.point_account_id:
            return s.point_account_id
        response = yield self._connect(
            "/incentives/api/1.0/user_points/all_balances", {"user_id": user_id, "culture": s.culture}, "lookup"
        )
        _, account = tf.points_from_balances(self._connect_payload(response), s)
        return account

    def _spend_multiple(self, user_id: str, points: Decimal, account: str | None, key: str, order_ref: str,
                        *, purpose: str, is_return: bool, route: str) -> Sub:
        s: SessionMSettings = self.settings

        def build(idempotency_id: str) -> EngineRequest:
            body = tf.spend_request(s, user_id=user_id, points=points, point_account_id=account, key=key,
                                    order_ref=order_ref, idempotency_id=idempotency_id, is_return=is_return)
            body.pop("retailer_id")  # _connect puts it first
            return self._connect("/incentives/api/1.0/user_points/spend_multiple", body, route, write=True,
                                 idempotency_key=self._runner_key(key))

        response = yield from self._send_write(build, key, purpose)
        return tf.spend_detail(self._connect_payload(response), s.error_codes)

    def spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
        if spend.kind is not BalanceKind.POINTS or spend.points is None:
            raise NotSupportedError("SessionM spends points only", engine=self.name, operation="spend_cashback")
        key = ctx.idempotency_key or spend.key
        account = yield from self._point_account(spend.customer_id)
        detail = yield from self._spend_multiple(spend.customer_id, spend.points, account, key, spend.order_ref,
                                                 purpose="spend", is_return=False, route="spend")
        return tf.spend_result(detail, spend.points, key)

    # -- export ----------------------------------------------------------------------------------
    def export_orders(self, orders: list[Order], ctx: CallContext) -> Flow[ExportReport]:
        s: SessionMSettings = self.settings
        results: list[OrderExportResult] = []
        for order in orders:
            key = order.key
            transaction = tf.transaction_from_order(order, s)

            def build(request_id: str, transaction: dict[str, Any] = transaction, key: str = key,
                      store: str | None = order.store_id) -> EngineRequest:
                return self._pos("send_transaction", transaction, "export", request_id, write=True,
                                 idempotency_key=self._runner_key(key), store_id=store)

            try:
                response = yield from self._send_write(build, key, "send_transaction")
                payload = self._pos_payload(response)
            except LoyaltyError as exc:
                if ends_batch(exc):
                    raise  # the whole batch stays queued (the facade reports it retry_later or raises)
                results.append(export_result_from_error(order.ref, exc))
            else:
                ref = payload.get("transaction_id") or order.ref
                results.append(OrderExportResult(order_ref=order.ref, status=ExportStatus.ACCEPTED, engine_ref=str(ref)))
        return ExportReport(engine=self.name, results=tuple(results))

    # -- reverse ---------------------------------------------------------------------------------
    def reverse(self, reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
        s: SessionMSettings = self.settings
        if reversal.kind is not ReversalKind.CANCEL:
            return (yield from self._refund(reversal, ctx))
        order = reversal.order
        key = ctx.idempotency_key or reversal.key
        redemptions = tf.redemption_receipts(order)
        spends = [r for r in order.receipts
                  if r.engine == self.name and r.operation == "spend_cashback" and r.points]
        # Refuse before any write, so a cancel never half-happens for a missing setting.
        if spends and s.points_return == "none":
            raise NotSupportedError("returning spent points needs the points_return setting",
                                    engine=self.name, operation="reverse")
        if spends and not order.customer_id:
            raise NotSupportedError("returning spent points needs the order's customer_id",
                                    engine=self.name, operation="reverse")
        if reversal.exported and not s.void_on_cancel:
            raise NotSupportedError("cancelling an exported order needs the void_on_cancel setting",
                                    engine=self.name, operation="reverse")
        done: list[str] = []  # what this call applied, for an honest partial-failure report
        try:
            return (yield from self._cancel(reversal, key, redemptions, spends, done))
        except (EngineUnavailableError, EngineTimeoutError, RateLimitedError, MalformedResponseError) as exc:
            if not done or isinstance(exc, OutcomeUnknownError):
                raise
            # Some steps were applied: "engine unavailable" would promise nothing was. Every step is
            # keyed (POS request_id, spend idempotency_id), so a retry with the same key replays the
            # applied ones and finishes the rest exactly once.
            raise OutcomeUnknownError(
                f"the cancel was applied in part ({', '.join(done)}) before the engine failed; "
                "retry with the same idempotency key to finish it",
                engine=self.name, operation="reverse", idempotency_key=key, retryable=True,
                engine_code=exc.engine_code, reconcile={"applied": list(done)},
            ) from None

    def _cancel(self, reversal: Reversal, key: str, redemptions: list[Receipt], spends: list[Receipt],
                done: list[str]) -> Flow[ReversalResult]:
        s: SessionMSettings = self.settings
        order = reversal.order
        reinstated: list[str] = []
        for receipt in redemptions:
            if receipt.code is None:
                raise AssertionError("receipt.code is set here")
            unlock = s.redeem_mode == "lock" and not reversal.exported
            yield from self._release(tf.user_offer_of(receipt), key, "cancel", unlock=unlock, store_id=order.store_id)
            reinstated.append(receipt.code)
            done.append(f"{'unlock' if unlock else 'reinstate'} of an offer")  # no code: codes stay out of errors
        returned = Decimal(0)
        receipts: list[Receipt] = []
        for receipt in spends:
            if receipt.points is None or order.customer_id is None:
                raise AssertionError("receipt.points and order.customer_id are set here")
            account = yield from self._point_account(order.customer_id)
            if s.points_return == "spend_is_return":
                detail = yield from self._spend_multiple(
                    order.customer_id, receipt.points, account, key, order.ref,
                    purpose=f"return:{receipt.idempotency_key}", is_return=True, route="reverse",
                )
                ref = detail.get("tracking_id") or detail.get("idempotency_id")
            else:
                # No documented de-duplication for deposits: unkeyed, a lost answer is OutcomeUnknown.
                response = yield self._connect(
                    "/incentives/api/2.0/user_points/deposit",
                    {k: v for k, v in tf.deposit_request(s, user_id=order.customer_id, points=receipt.points,
                                                         point_account_id=account).items() if k != "retailer_id"},
                    "reverse",
                    write=True,
                )
                self._connect_payload(response)
                ref = None
            returned += receipt.points
            done.append(f"return {receipt.points} points")
            receipts.append(Receipt(operation="reverse", engine=self.name, idempotency_key=key,
                                    engine_ref=str(ref) if ref else None, points=receipt.points))
        if reversal.exported:
            voided = tf.transaction_from_order(order, s, voided=True)

            def build(request_id: str) -> EngineRequest:
                return self._pos("send_transaction", voided, "reverse", request_id, write=True,
                                 idempotency_key=self._runner_key(key), store_id=order.store_id)

            response = yield from self._send_write(build, key, "void")
            self._pos_payload(response)
            done.append("void transaction")
        return ReversalResult(
            order_ref=order.ref,
            kind=ReversalKind.CANCEL,
            points_returned=returned,
            vouchers_reinstated=tuple(reinstated),
            receipts=tuple(receipts),
        )

    def _refund(self, reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
        """A refund as a return transaction on send_transaction (opt-in: its wire format is UNCONFIRMED).

        Only the transaction goes out; the engine's rules decide the loyalty outcome of a return
        ([D-POS-SEND], "Manage Return and Adjust Related Loyalty Outcome"). Spent points and
        redeemed offers are not given back by a refund.
        """
        s: SessionMSettings = self.settings
        if not s.refunds:
            raise NotSupportedError("refunds need the refunds setting (SessionM's return format is UNCONFIRMED)",
                                    engine=self.name, operation="reverse")
        if not reversal.exported:
            raise NotSupportedError("a refund returns an exported order; cancel one that was not exported",
                                    engine=self.name, operation="reverse")
        order = reversal.order
        key = ctx.idempotency_key or reversal.key
        from loyaltykit.money import quantize

        if order.total is None:
            raise AssertionError("order.total is set once the order is validated")
        total = quantize(order.total.amount * reversal.refunded_fraction(), order.currency)
        transaction = tf.return_transaction(order, reversal, s, total)

        def build(request_id: str) -> EngineRequest:
            return self._pos("send_transaction", transaction, "reverse", request_id, write=True,
                             idempotency_key=self._runner_key(key), store_id=order.store_id)

        response = yield from self._send_write(build, key, f"return:{reversal.reference}")
        payload = self._pos_payload(response)
        ref = payload.get("transaction_id") or transaction["transaction_id"]
        return ReversalResult(
            order_ref=order.ref, kind=reversal.kind,
            receipts=(Receipt(operation="reverse", engine=self.name, idempotency_key=key, engine_ref=str(ref)),),
        )
