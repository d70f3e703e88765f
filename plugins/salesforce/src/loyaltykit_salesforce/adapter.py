"""The Salesforce Loyalty Management adapter: flows (which calls, in which order, with which keys).

Salesforce documents no idempotency. Every journal this adapter writes carries a deterministic
ExternalTransactionNumber derived from the kit's idempotency key; before a journal write it looks
the number up (SOQL on TransactionJournal), and after a lost response it looks again and re-sends
only when the journal is absent. Vouchers are reconciled by re-listing the member's vouchers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import httpx

from loyaltykit import (
    BalanceKind,
    Capabilities,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    EngineAdapter,
    EngineClientConfig,
    EngineRequest,
    Evaluation,
    ExportReport,
    ExportStatus,
    Flow,
    IdentifierKind,
    Money,
    Order,
    OrderExportResult,
    Receipt,
    RedemptionResult,
    RedemptionStatus,
    Reversal,
    ReversalResult,
    Service,
    SpendResult,
    VoucherRedemption,
)
from loyaltykit.auth import OAuth2ClientCredentials
from loyaltykit.errors import (
    ERROR_CODES,
    CurrencyMismatchError,
    CustomerNotFoundError,
    InsufficientBalanceError,
    InvalidRequestError,
    LoyaltyError,
    NotSupportedError,
    OutcomeUnknownError,
    VoucherError,
    VoucherNotFoundError,
    VoucherNotOwnedError,
)
from loyaltykit.flows import CallContext
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
from loyaltykit.models import Balance, Basket, Earn
from loyaltykit.reconcile import ends_batch, export_result_from_error, reconcile

from . import __version__, transformers as tf
from .settings import SalesforceSettings

_log = logging.getLogger("loyaltykit.salesforce")

_QUERY_CHUNK = 100  # ExternalTransactionNumbers per SOQL IN (...), keeps the URL short
_NOT_APPLIED_RESENDS = 2


class SalesforceAdapter(EngineAdapter):
    name = "salesforce"
    version = __version__
    capabilities = Capabilities(
        identify_by=frozenset({IdentifierKind.MEMBERSHIP, IdentifierKind.EMAIL}),
        evaluate=True,
        wallet_offers=True,
        earn_preview=True,
        redeem_voucher=True,
        spend=frozenset({BalanceKind.POINTS}),
        export_orders=True,
        cancel=True,
        refund=True,
        wallet=True,
        statement=True,
        enrol_member=True,
        issue_voucher=True,
        points_catalog=False,  # no points-priced catalog in the engine's documentation
    )
    settings_model = SalesforceSettings
    settings: SalesforceSettings

    # Seams the harness's deliberately broken adapters override; see testing.py.
    _reconcile_lost_writes = True
    _status_flag = True

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        s = self.settings
        updates: dict[str, Any] = {}
        if s.cashback_currency is not None:  # cashback is a program currency only when configured
            updates["spend"] = frozenset({BalanceKind.POINTS, BalanceKind.CASHBACK})
        if not s.simulate_earn:
            updates["earn_preview"] = False
        if s.change_tier_process is not None:  # a tier change is the one member update Salesforce documents
            updates["update_member"] = True
            updates["member_fields"] = frozenset({MemberField.TIER})
        if updates:
            self.capabilities = type(self).capabilities.model_copy(update=updates)

    def client_config(self) -> EngineClientConfig:
        s = self.settings
        auth = OAuth2ClientCredentials(
            token_url=s.resolved_token_url,
            client_id=s.client_id,
            client_secret=s.client_secret,
            credentials_in=s.credentials_in,
            base_url_field="instance_url",
        )
        return EngineClientConfig(
            engine="salesforce",
            services={"default": Service(base_url=s.my_domain_url, auth=auth)},
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
        )

    # -- small helpers ----------------------------------------------------------------------------
    def _checked(self, response: httpx.Response, ctx: CallContext, not_found: type[LoyaltyError] | None = None) -> Any:
        return tf.checked(
            response, ctx.operation, self.settings.error_patterns, not_found=not_found, status_flag=self._status_flag
        )

    def _external_number(self, key: str) -> str:
        return tf.external_number(self.settings, key)

    def _query(self, soql: str) -> EngineRequest:
        return EngineRequest("GET", tf.query_path(self.settings), params={"q": soql}, route="lookup")

    def _find_journals(self, numbers: Iterable[str], ctx: CallContext) -> Flow[dict[str, tf.SfJournal]]:
        wanted = list(dict.fromkeys(numbers))
        found: dict[str, tf.SfJournal] = {}
        for start in range(0, len(wanted), _QUERY_CHUNK):
            chunk = wanted[start : start + _QUERY_CHUNK]
            response = yield self._query(tf.journals_query(self.settings, chunk))
            found.update(tf.journals_by_number(
                self._checked(response, ctx), self.settings.cancelled_journal_status, self.settings.journal_amount_field
            ))
        return found

    def _profile(
        self, membership: str | None, ctx: CallContext, missing_ok: bool, member_id: str | None = None
    ) -> Flow[Customer | None]:
        body = yield from self._profile_body(membership, ctx, missing_ok, member_id)
        return None if body is None else tf.customer_from_profile(body, self.settings)

    def _balances(self, membership: str, ctx: CallContext) -> Flow[tuple[Balance, ...]]:
        """A member's balances from their profile (the same request and checks as ``_profile``)."""
        body = yield from self._profile_body(membership, ctx, missing_ok=False)
        return tf.balances_from_profile(body, self.settings)

    def _profile_body(
        self, membership: str | None, ctx: CallContext, missing_ok: bool, member_id: str | None = None
    ) -> Flow[Any]:
        params = {"memberId": member_id} if member_id is not None else {"membershipNumber": membership}
        response = yield EngineRequest("GET", tf.profile_path(self.settings), params=params, route="identify")
        try:
            return self._checked(response, ctx, not_found=CustomerNotFoundError)
        except CustomerNotFoundError:
            if missing_ok:
                return None
            raise

    def _vouchers(self, membership: str, ctx: CallContext) -> Flow[list[tf.SfVoucher]]:
        vouchers: list[tf.SfVoucher] = []
        page = 1
        while True:  # 200 per page, ordered by creation date
            params = {"pageNumber": page} if page > 1 else None
            response = yield EngineRequest(
                "GET", tf.vouchers_path(self.settings, membership), params=params, route="wallet"
            )
            batch = tf.vouchers_from_list(self._checked(response, ctx, not_found=CustomerNotFoundError))
            vouchers.extend(batch)
            if len(batch) < 200 or page >= 50:
                return vouchers
            page += 1

    def enrol_member(self, enrolment: Enrolment, ctx: CallContext) -> Flow[EnrolmentResult]:
        """Individual Member Enrollment (reference § 2c), once per membership number (the
        enrolment's, else its external id): the profile look-up first, and again after a refusal (a
        concurrent enrolment may have won). Salesforce has no idempotency key for it."""
        s = self.settings
        if enrolment.last_name is None:  # required by the enrolment resource (SDK model)
            raise InvalidRequestError("enrolment.last_name: Salesforce enrolment needs a last name",
                                      field="enrolment.last_name", engine=self.name)
        membership = enrolment.membership or enrolment.external_id
        known = yield from self._profile(membership, ctx, missing_ok=True)
        if known is not None:
            return EnrolmentResult(customer=known, created=False)
        response = yield self._write(tf.enrollment_path(s), tf.enrollment_body(enrolment, s, tf._now()), "enrol")
        try:
            self._checked(response, ctx)
        except LoyaltyError as exc:
            known = yield from self._profile(membership, ctx, missing_ok=True)
            if known is not None:
                return EnrolmentResult(customer=known, created=False)
            if exc.engine_code in s.enrol_duplicate_email_codes:
                raise InvalidRequestError("enrolment.email: another contact holds this email",
                                          field="enrolment.email", engine=self.name) from None
            raise
        created = yield from self._profile(membership, ctx, missing_ok=False)
        return EnrolmentResult(customer=created, created=True)

    def member_statement(self, query: StatementQuery, ctx: CallContext) -> Flow[Statement]:
        """Transaction Ledger Summary (reference § 5d), 200 journals per engine page; the kit's
        cursor is (engine page, offset in it)."""
        page, offset = 1, 0
        if query.cursor is not None:
            try:
                position = decode_cursor(query.cursor)
                page, offset = int(position["page"]), int(position["offset"])
                if position.get("member") != query.customer_id or page < 1 or offset < 0:
                    raise ValueError("another member's cursor")
            except (ValueError, KeyError, TypeError):
                raise InvalidRequestError("query.cursor: not a cursor of this statement", field="query.cursor",
                                          engine=self.name) from None
        response = yield EngineRequest(
            "GET", tf.ledger_path(self.settings, query.customer_id),
            params=tf.ledger_params(self.settings, page, query.since, query.until), route="lookup",
        )
        entries, journals = tf.statement_entries(
            self._checked(response, ctx, not_found=CustomerNotFoundError), self.settings)
        if query.currency is not None:
            entries = [e for e in entries if e.money is None or e.money.currency == query.currency]
        chosen = entries[offset: offset + query.page_size]
        following = None
        if offset + query.page_size < len(entries):
            following = {"page": page, "offset": offset + query.page_size}
        elif journals >= tf.LEDGER_PAGE:
            following = {"page": page + 1, "offset": 0}
        cursor = encode_cursor({**following, "member": query.customer_id}) if following else None
        return Statement(customer_id=query.customer_id, entries=tuple(chosen), next_cursor=cursor)

    def member_wallet(self, query: WalletQuery, ctx: CallContext) -> Flow[Wallet]:
        """Member Vouchers (reference § 4a): the member's usable vouchers, every page."""
        vouchers = yield from self._vouchers(query.customer_id, ctx)
        currency = query.currency or self.settings.cashback_iso_currency
        return Wallet(customer_id=query.customer_id,
                      offers=tuple(tf.wallet_offer(v, currency) for v in vouchers if v.problem() is None))

    def issue_voucher(self, issue: VoucherIssue, ctx: CallContext) -> Flow[IssuedVouchers]:
        """The org's issue-voucher program process (reference 4c, 6a), once per key. Salesforce has no
        idempotency for it: each unit's voucher code is derived from the key, so the member's voucher
        list (4a) shows what an earlier send issued. It is read before sending, and after a lost answer
        before sending again; the runner's key lock keeps one call per key in flight (``key_lock_dir``
        extends it to the processes of a host)."""
        s = self.settings
        key = ctx.idempotency_key or issue.key
        codes = tf.issued_codes(s, key, issue.quantity)
        held = yield from self._issued(issue.customer_id, codes, ctx)
        created = False
        for code in codes:
            if code in held:
                continue
            request = self._write(tf.process_path(s, s.issue_voucher_process), tf.issue_process_body(s, issue, code),
                                  "issue")

            def applied(code: str = code) -> Flow[tf.SfVoucher | None]:
                found = yield from self._issued(issue.customer_id, [code], ctx)
                return found.get(code)

            try:
                response, _ = yield from self._reconciled(request, applied)
            except OutcomeUnknownError as exc:
                raise self._unknown(exc, key) from None
            if response is not None:
                try:
                    self._checked(response, ctx, not_found=CustomerNotFoundError)
                except LoyaltyError as exc:
                    said = f"{exc.engine_message or ''} {exc.message}".lower()
                    if any(phrase.lower() in said for phrase in s.issue_unknown_definition_phrases):
                        raise InvalidRequestError("issue.definition_id: the program has no such active voucher"
                                                  " definition", field="issue.definition_id", engine=self.name) from None
                    raise
            created = True
        held = yield from self._issued(issue.customer_id, codes, ctx)
        if any(code not in held for code in codes):  # the process answered but issued nothing we can see
            raise self._unconfirmed("issue_voucher", key)
        currency = issue.face_value.currency if issue.face_value is not None else s.cashback_iso_currency
        return IssuedVouchers(customer_id=issue.customer_id, definition_id=issue.definition_id,
                              vouchers=tuple(tf.wallet_offer(held[code], currency) for code in codes), created=created)

    def _issued(self, member: str, codes: list[str], ctx: CallContext) -> Flow[dict[str, tf.SfVoucher]]:
        """The member's vouchers carrying these codes (the first issued of each, cancelled ones aside)."""
        vouchers = yield from self._vouchers(member, ctx)
        wanted, found = set(codes), dict[str, tf.SfVoucher]()
        for voucher in sorted(vouchers, key=lambda v: v.number or ""):
            if voucher.code in wanted and voucher.status != "Cancelled":
                found.setdefault(voucher.code, voucher)
        return found

    # -- member updates ---------------------------------------------------------------------------
    def update_member(self, update: MemberUpdate, ctx: CallContext) -> Flow[Customer]:
        """A tier change through the org's ChangeMemberTier program process (reference 6a, 7).

        Segments and roles have no documented Loyalty resource: refused before any engine call.
        The member's ``memberTiers`` are read first, so the same target tier again sends nothing;
        after a lost answer the profile is read again before anything is re-sent."""
        s = self.settings
        self.capabilities.check_member_update(update, self.name)
        if update.tier is None or s.change_tier_process is None:  # unreachable: the fields are declared
            raise NotSupportedError("no tier change process configured", engine=self.name,
                                    operation="update_member", field="update.tier")
        tier = update.tier
        current = yield from self._member(update.customer_id, ctx)
        if tier in tf.member_tier_names(current):
            return current
        request = self._write(tf.process_path(s, s.change_tier_process),
                              tf.change_tier_request(s, current, tier, update.reason), "update_member")

        def applied() -> Flow[Customer | None]:
            now = yield from self._profile(update.customer_id, ctx, missing_ok=True)
            return now if now is not None and tier in tf.member_tier_names(now) else None

        response, found = yield from self._reconciled(request, applied)
        if isinstance(found, Customer):
            return found
        if response is None:  # reconcile returns one of the two
            raise self._unconfirmed("update_member", ctx.idempotency_key)
        if tf.refuses_unknown_tier(response, s.unknown_tier_phrases):
            raise InvalidRequestError(f"update.tier: the program has no tier {tier!r}", field="update.tier",
                                      engine=self.name, operation="update_member")
        body = self._checked(response, ctx)  # a 404 here is a missing or inactive process, not the member
        if not tf.confirmed(body):
            raise self._unconfirmed("update_member", ctx.idempotency_key)
        after = yield from self._member(update.customer_id, ctx)
        if tier not in tf.member_tier_names(after):
            raise OutcomeUnknownError("the engine accepted the tier change but the member's profile does not show it",
                                      engine=self.name, operation="update_member", idempotency_key=ctx.idempotency_key)
        return after

    def _member(self, membership: str, ctx: CallContext) -> Flow[Customer]:
        found = yield from self._profile(membership, ctx, missing_ok=False)
        if found is None:  # missing_ok=False raises first; this keeps the type exact
            raise CustomerNotFoundError(engine=self.name, operation=ctx.operation)
        return found

    def _write(self, path: str, body: Any, route: str, params: Any = None) -> EngineRequest:
        # No idempotency_key: Salesforce has no de-duplication, so the runner must never re-post.
        return EngineRequest("POST", path, json=body, params=params, write=True, route=route)

    def _send(self, request: EngineRequest) -> Flow[httpx.Response]:
        return (yield request)

    def _reconciled(
        self, request: EngineRequest, applied: Callable[[], Flow[Any]], key: str | None = None
    ) -> Flow[tuple[httpx.Response | None, Any]]:
        """Send a write; after a lost answer ``applied()`` looks the effect up (the core's
        reconcile-before-resend): ``(response, None)`` when sent, ``(None, found)`` when found."""
        return (
            yield from reconcile(lambda: self._send(request), applied, look_after_loss=self._reconcile_lost_writes,
                      unavailable_may_have_applied=True)
        )

    def _unknown(self, cause: LoyaltyError, key: str | None, message: str | None = None) -> OutcomeUnknownError:
        if isinstance(cause, OutcomeUnknownError) and message is None:
            if key and not cause.idempotency_key:
                cause.idempotency_key = key
            return cause
        return OutcomeUnknownError(
            message or f"the write's outcome is unknown ({cause.message})", engine=self.name,
            operation=cause.operation, idempotency_key=key, engine_code=cause.engine_code,
        )

    def _unconfirmed(self, operation: str, key: str | None) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            "the engine's answer carries no documented success marker: the write's outcome is unknown",
            engine=self.name, operation=operation, idempotency_key=key,
        )

    # -- identify ---------------------------------------------------------------------------------
    def identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Flow[Customer | None]:
        s = self.settings
        if identifier.kind is IdentifierKind.MEMBERSHIP:
            membership = identifier.value
        elif identifier.kind is IdentifierKind.EMAIL:
            response = yield self._query(tf.member_query(s, identifier.value))
            ids = tf.member_ids(self._checked(response, ctx))
            if not ids:
                return None
            return (yield from self._profile(None, ctx, missing_ok=True, member_id=ids[0]))
        else:
            raise NotSupportedError(f"cannot identify by {identifier.kind.value}", engine=self.name)
        return (yield from self._profile(membership, ctx, missing_ok=True))

    # -- evaluate ---------------------------------------------------------------------------------
    def evaluate_basket(self, basket: Basket, ctx: CallContext) -> Flow[Evaluation]:
        s = self.settings
        member = basket.customer_id
        spendable: tuple[Balance, ...] = ()
        vouchers: list[tf.SfVoucher] | None = None
        if member is not None:
            spendable = yield from self._balances(member, ctx)
            vouchers = yield from self._vouchers(member, ctx)
        discounts, unmapped, messages = [], [], []
        if s.promotions_api != "none":
            execution = s.promotions_api == "promotion_execution"
            params = {"ruleLibraryApiName": s.rule_library_api_name} if execution and s.rule_library_api_name else None
            request = EngineRequest(
                "POST", tf.promotions_path(s), json=tf.cart_request(basket, member, execution, s.cart_sku_field),
                params=params, route="evaluate", write=execution and not s.retry_promotion_execution,
            )
            body = self._checked((yield request), ctx)
            if execution:
                found, raw = tf.discounts_from_execution(body, basket)
                discounts.extend(found)
            else:
                notes, raw = tf.messages_from_eligible(body)
                messages.extend(notes)
            unmapped.extend(raw)
        promoted = sum((d.amount for d in discounts), Money.zero(basket.currency))
        room = (basket.subtotal - promoted).max(Money.zero(basket.currency))
        voucher_discounts, codes = tf.apply_codes(basket, vouchers, room)
        discounts.extend(voucher_discounts)
        earn: list[Earn] = []
        if member is not None and s.simulate_earn:
            total = sum((d.amount for d in discounts), Money.zero(basket.currency))
            payable = (basket.subtotal - total).max(Money.zero(basket.currency))
            simulation = tf.simulation_request(s, basket, member)
            simulation["transactionJournals"][0]["TransactionAmount"] = str(payable.amount)
            body = self._checked((yield EngineRequest("POST", tf.realtime_path(s), json=simulation, route="evaluate")), ctx)
            points, raw = tf.earn_from_simulation(body, s)
            earn = tf.earn(points)
            unmapped.extend(raw)
        wallet = [tf.offer_from_voucher(v, basket.currency) for v in vouchers or () if v.problem() is None]
        return Evaluation(
            engine=self.name,
            basket_id=basket.id,
            currency=basket.currency,
            customer_id=member,
            subtotal=basket.subtotal,
            discounts=tuple(discounts),
            earn=tuple(earn),
            spendable=spendable,
            wallet=tuple(wallet),
            codes=tuple(codes),
            messages=tuple(messages),
            unmapped=tuple(unmapped),
        )

    # -- redeem voucher ---------------------------------------------------------------------------
    def redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
        member = redemption.customer_id
        if member is None:
            raise InvalidRequestError(
                "redemption.customer_id: Salesforce vouchers belong to a member", field="redemption.customer_id"
            )
        basket = redemption.basket
        amount, voucher, replayed = yield from self._burn(member, redemption.code, redemption.key, basket, ctx)
        discount = None
        if basket is not None and amount is not None:  # a whole voucher worth more than the basket gives the basket
            discount = Money.of(min(amount, basket.subtotal.amount), basket.currency)
        if discount is None and basket is not None:
            found = tf.voucher_discount(voucher, basket, basket.subtotal)
            discount = found.amount if found else None
        return RedemptionResult(
            code=redemption.code,
            status=RedemptionStatus.REDEEMED,
            discount=discount,
            label=voucher.definition,
            receipt=Receipt(
                operation="redeem_voucher", engine=self.name, idempotency_key=redemption.key,
                engine_ref=voucher.voucher_id, code=redemption.code, amount=discount, replayed=replayed,
            ),
        )

    def _burn(
        self, member: str, code: str, key: str, basket: Basket | None, ctx: CallContext, whole_only: bool = False
    ) -> Flow[tuple[Decimal | None, tf.SfVoucher, bool]]:
        """Redeem one member voucher under ``key``: (value taken, the voucher, replayed).

        The value is what the engine recorded: for a partially redeemable FixedValue voucher the
        ``redeemAmount`` sent (what is due, at most what is left); for a whole FixedValue voucher its
        value left before; on a replay (the voucher already Redeemed under this key) its
        ``redeemedValue``. None for a percentage voucher (its value depends on the basket).
        """
        s = self.settings
        voucher = yield from self._usable_voucher(member, code, ctx)
        params = {"voucherNumber": voucher.number} if voucher.number else None
        path = tf.redeem_path(s, member, code)
        reservation = tf.reservation_key(key)
        replayed = voucher.status == "Redeemed"
        partial_value = voucher.partial and voucher.type == "FixedValue" and voucher.status == "Issued"
        due = None
        if partial_value and basket is not None:
            due = yield from self._due(basket, ctx)
        if partial_value and due is None:
            if whole_only:
                # A store's partial use has no amount on the order: not burned, said in the log.
                _log.warning("a partially redeemable voucher used outside this shop was not burned on "
                             "export: the order does not say how much of it was used")
                raise VoucherError("partial voucher without an amount", engine=self.name)
            raise InvalidRequestError(
                "redemption.basket: a partially redeemable voucher takes only what is due; send the basket",
                field="redemption.basket", engine=self.name,
            )
        partial = tf.redeem_amount(voucher, due)
        currency = due.currency if due is not None else None
        if s.two_phase:
            if voucher.status == "Issued":
                yield from self._voucher_action(path, params, "Reserve", reservation, member, code, ctx,
                                                amount=partial, currency=currency, key=key)
            yield from self._voucher_action(path, params, "Redeem", reservation, member, code, ctx,
                                            amount=partial, currency=currency, key=key)
        else:
            yield from self._voucher_action(path, params, None, None, member, code, ctx,
                                            amount=partial, currency=currency, key=key)
        if voucher.type != "FixedValue":
            return None, voucher, replayed
        if replayed:
            return voucher.redeemed_value if voucher.redeemed_value is not None else voucher.face_value, voucher, True
        if partial is not None:
            return partial, voucher, False
        return voucher.value_left, voucher, False

    def _due(self, basket: Basket, ctx: CallContext) -> Flow[Money]:
        """What the basket owes after the engine's promotions (the same promotion-execution read as
        the quote), so a partially redeemable voucher gives no more than the quote showed."""
        s = self.settings
        zero = Money.zero(basket.currency)
        if s.promotions_api != "promotion_execution":
            return basket.subtotal
        params = {"ruleLibraryApiName": s.rule_library_api_name} if s.rule_library_api_name else None
        request = EngineRequest(
            "POST", tf.promotions_path(s), json=tf.cart_request(basket, basket.customer_id, True, s.cart_sku_field),
            params=params, route="evaluate", write=not s.retry_promotion_execution,
        )
        found, _ = tf.discounts_from_execution(self._checked((yield request), ctx), basket)
        promoted = sum((d.amount for d in found), zero)
        return (basket.subtotal - promoted).max(zero)

    def _usable_voucher(self, member: str, code: str, ctx: CallContext) -> Flow[tf.SfVoucher]:
        """The member's voucher to act on; typed errors before anything is sent."""
        s = self.settings
        vouchers = yield from self._vouchers(member, ctx)
        candidates = [v for v in vouchers if v.code == code]
        if not candidates:
            if s.voucher_owner_lookup and (yield from self._voucher_exists(code, ctx)):
                raise VoucherNotOwnedError("the voucher belongs to another member", engine=self.name)
            raise VoucherNotFoundError("the member has no voucher with this code", engine=self.name)
        usable = next((v for v in candidates if v.problem() is None), None)
        if usable is None and s.two_phase:
            # A reservation left by an earlier attempt: Redeem with our key (the engine checks it).
            usable = next((v for v in candidates if v.status == "Reserved"), None)
        if usable is None and s.two_phase and s.replay_redeem_with_reservation_key:
            # Maybe redeemed by an earlier call with this key: Redeem with the same key tells.
            usable = next((v for v in candidates if v.status == "Redeemed"), None)
        if usable is None:
            reason = candidates[0].problem() or "voucher_invalid"
            raise ERROR_CODES[reason]("the voucher cannot be redeemed", engine=self.name, engine_code=candidates[0].status)
        return usable

    def _voucher_exists(self, code: str, ctx: CallContext) -> Flow[bool]:
        try:
            response = yield self._query(tf.voucher_query(self.settings, code))
            return bool(tf.records(self._checked(response, ctx)))
        except LoyaltyError:
            return False  # unknowable: report the plainer voucher_not_found

    def _voucher_action(
        self, path: str, params: Any, action: str | None, reservation: str | None, member: str, code: str,
        ctx: CallContext, *, amount: Decimal | None = None, currency: str | None = None, key: str | None = None,
    ) -> Flow[Any]:
        """One Redeem Voucher call. Success is HTTP 201 whose ``status`` is the one the action
        documents (Reserved / Redeemed / Issued, reference 4b); before v62 (no action) a 201 with
        ``remainingAmount``. Reinstate answered ``{"status": "Expired"}`` is not a reinstatement:
        it returns that body and the caller does not count the voucher as reinstated."""
        body = tf.redeem_body(self.settings, action, reservation, amount, currency)
        route = "release" if action == "Reinstate" else "redeem"
        wanted = tf.ACTION_STATUS.get(action or "Redeem", "Redeemed")

        def applied() -> Flow[str | None]:
            vouchers = yield from self._vouchers(member, ctx)
            return next((v.status for v in vouchers if v.code == code and v.status == wanted), None)

        response, found = yield from self._reconciled(self._write(path, body, route, params), applied, key)
        if response is None:
            return {"status": found, "_reconciled": True}
        result = self._checked(response, ctx, not_found=VoucherNotFoundError)
        status = tf.redeem_status(result)
        if action == "Reinstate" and status == "Expired":
            return result
        if response.status_code not in (200, 201):
            raise self._unconfirmed(ctx.operation, key)
        if action is not None and status != wanted:
            raise self._unconfirmed(ctx.operation, key)
        if action is None and status not in (None, wanted):
            raise self._unconfirmed(ctx.operation, key)
        return result

    # -- spend points / cashback ------------------------------------------------------------------
    def spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
        s = self.settings
        if spend.kind is BalanceKind.CASHBACK:
            if s.cashback_currency is None:
                raise NotSupportedError("cashback is not configured (cashback_currency)", engine=self.name)
            if spend.amount is None:
                raise AssertionError("spend.amount is set here")
            if spend.amount.currency != s.cashback_iso_currency:
                raise CurrencyMismatchError(
                    f"cashback is held in {s.cashback_iso_currency}", engine=self.name, field="spend.amount.currency"
                )
            process, wanted = s.debit_cashback_process, spend.amount.amount
        else:
            if spend.points is None:
                raise AssertionError("spend.points is set here")
            process, wanted = s.debit_points_process, spend.points
        existing = yield from self._find_journals([self._external_number(spend.key)], ctx)
        if existing:
            journal = next(iter(existing.values()))
            taken = yield from self._recorded_spend(spend, journal, ctx)
            return self._spend_result(spend, taken, None, journal.number, replayed=True)
        balance: Balance | None = None
        if s.check_balance_before_spend:
            balances = yield from self._balances(spend.customer_id, ctx)
            balance = next((b for b in balances if b.kind is spend.kind), None)
            have = (balance.points if spend.kind is BalanceKind.POINTS else balance.money.amount) if balance else Decimal(0)  # type: ignore[union-attr]
            if have is None or have < wanted:
                raise InsufficientBalanceError("the balance does not cover the spend", engine=self.name)
        number = self._external_number(spend.key)
        body = tf.debit_request(s, spend, number)
        path = tf.process_path(s, process)
        response, found = yield from self._reconciled(
            self._write(path, body, "spend"), lambda: self._journal(spend.key, ctx), spend.key
        )
        if response is None:
            taken = yield from self._recorded_spend(spend, found, ctx)
            return self._spend_result(spend, taken, balance, found.number, replayed=False)
        result = self._checked(response, ctx, not_found=CustomerNotFoundError)
        if self._status_flag and not tf.confirmed(result):
            raise self._unconfirmed(ctx.operation, spend.key)
        debited = tf.debited(result, s.debit_result_field)
        return self._spend_result(spend, debited if debited is not None else wanted, balance, number, replayed=False)

    def _recorded_spend(self, spend: CashbackSpend, journal: tf.SfJournal, ctx: CallContext) -> Flow[Decimal]:
        """What the engine debited under this key (not what this call asked): the journal's points
        change in the transaction ledger, else (cashback) its TransactionAmount."""
        s = self.settings
        currency = s.cashback_currency if spend.kind is BalanceKind.CASHBACK else s.points_currency
        response = yield EngineRequest(
            "GET", tf.ledger_path(s, spend.customer_id),
            params={"journalTypeName": s.redemption_journal_type}, route="lookup",
        )
        change = tf.ledger_points(self._checked(response, ctx), journal.id, currency)
        if change is not None and change != 0:
            return abs(change)
        if spend.kind is BalanceKind.CASHBACK and journal.amount is not None:
            return journal.amount
        raise OutcomeUnknownError(
            "the engine has the spend's journal but its amount could not be read", engine=self.name,
            operation=ctx.operation, idempotency_key=spend.key,
        )

    def _journal(self, key: str, ctx: CallContext) -> Flow[tf.SfJournal | None]:
        """The journal written under this idempotency key, if the engine has it."""
        number = self._external_number(key)
        found = yield from self._find_journals([number], ctx)
        return found.get(number)

    def _spend_result(
        self, spend: CashbackSpend, taken: Decimal, before: Balance | None, ref: str, replayed: bool
    ) -> SpendResult:
        remaining = None
        if spend.kind is BalanceKind.POINTS:
            amount, points = None, taken
            if before is not None and before.points is not None:
                remaining = Balance(kind=BalanceKind.POINTS, name=before.name, points=max(before.points - taken, Decimal(0)))
        else:
            if spend.amount is None:
                raise AssertionError("spend.amount is set here")
            amount, points = Money.of(taken, spend.amount.currency), None
            if before is not None and before.money is not None:
                left = (before.money - amount).max(Money.zero(amount.currency))
                remaining = Balance(kind=BalanceKind.CASHBACK, name=before.name, money=left)
        return SpendResult(
            kind=spend.kind, amount=amount, points=points, remaining=remaining,
            receipt=Receipt(
                operation="spend_cashback", engine=self.name, idempotency_key=spend.key, engine_ref=ref,
                amount=amount, points=points, replayed=replayed,
            ),
        )

    # -- export orders ----------------------------------------------------------------------------
    def export_orders(self, orders: list[Order], ctx: CallContext) -> Flow[ExportReport]:
        s = self.settings
        results: dict[str, OrderExportResult] = {}
        members = [o for o in orders if o.customer_id is not None]
        for order in orders:
            if order.customer_id is None:
                results[order.ref] = OrderExportResult(
                    order_ref=order.ref, status=ExportStatus.REJECTED, error_code="invalid_request",
                    reason="an accrual journal needs a member (customer_id)",
                )
        existing = yield from self._find_journals([self._external_number(o.key) for o in members], ctx)
        for order in members:
            journal = existing.get(self._external_number(order.key))
            if journal is not None and journal.status != s.cancelled_journal_status:
                results[order.ref] = OrderExportResult(
                    order_ref=order.ref, status=ExportStatus.DUPLICATE, engine_ref=journal.id
                )
                continue
            results[order.ref] = yield from self._export_one(order, ctx)
        return ExportReport(engine=self.name, results=tuple(results[o.ref] for o in orders))

    def _store_codes(self, order: Order) -> list[str]:
        """The order's voucher codes no online redemption of this engine covers (used in a store)."""
        burned = {r.code for r in order.receipts
                  if r.operation == "redeem_voucher" and r.engine == self.name and r.code}
        return [c for c in dict.fromkeys(order.voucher_codes) if c not in burned]

    def _export_one(self, order: Order, ctx: CallContext) -> Flow[OrderExportResult]:
        s = self.settings
        number = self._external_number(order.key)
        journals = tf.accrual_journals(s, order, number)
        numbers = tf.accrual_numbers(s, order, number)
        path = tf.realtime_path(s)
        if order.customer_id is None:
            raise AssertionError("order.customer_id is set here")
        try:
            if s.burn_store_codes_on_export:
                for code in self._store_codes(order):
                    # Keyed by order and code: a re-export replays instead of burning twice. A code
                    # that is no usable voucher (already burned by the store, not a voucher at all)
                    # cannot be given online either, and must not keep the order from accruing.
                    try:
                        yield from self._burn(order.customer_id, code, f"{order.key}:{code}"[:128], None, ctx,
                                              whole_only=True)
                    except (VoucherError, InvalidRequestError):
                        continue

            def applied() -> Flow[tf.SfJournal | None]:
                found = yield from self._find_journals(numbers, ctx)
                return found.get(number) if all(n in found for n in numbers) else None

            response, found = yield from self._reconciled(
                self._write(path, tf.accrual_request(journals), "export"), applied, order.key
            )
            if response is None:
                return OrderExportResult(order_ref=order.ref, status=ExportStatus.ACCEPTED, engine_ref=found.id)
            result = self._checked(response, ctx, not_found=CustomerNotFoundError)
            if self._status_flag and not tf.confirmed(result):
                raise self._unconfirmed(ctx.operation, order.key)
            journal_id, points = tf.realtime_result(result, s.points_currency)
        except LoyaltyError as exc:
            if ends_batch(exc):
                raise  # the whole batch stays queued
            return export_result_from_error(order.ref, exc)
        return OrderExportResult(
            order_ref=order.ref, status=ExportStatus.ACCEPTED, engine_ref=journal_id,
            points_earned=max(points, Decimal(0)),
        )

    # -- reverse ----------------------------------------------------------------------------------
    def reverse(self, reversal: Reversal, ctx: CallContext) -> Flow[ReversalResult]:
        s = self.settings
        if not reversal.is_full:
            raise NotSupportedError("a journal is cancelled whole: no partial refunds", engine=self.name)
        order = reversal.order
        reason = (reversal.reason or f"order {reversal.kind.value}")[:255]
        spends = [r for r in order.receipts if r.operation == "spend_cashback" and r.engine == self.name]
        redeems = [r for r in order.receipts if r.operation == "redeem_voucher" and r.engine == self.name and r.code]
        numbers = {self._external_number(r.idempotency_key): r for r in spends}
        accrual_number = None
        if reversal.exported and order.customer_id is not None:
            accrual_number = self._external_number(order.key)
        journals = yield from self._find_journals([*numbers, *([accrual_number] if accrual_number else [])], ctx)
        receipts: list[Receipt] = []
        points_returned, cashback = Decimal(0), None
        for number, receipt in numbers.items():
            journal = journals.get(number)
            if journal is None:
                continue
            yield from self._cancel(journal, accrual=False, reason=reason, ctx=ctx)
            receipts.append(self._reverse_receipt(reversal, journal.number))
            if receipt.points is not None:
                points_returned += receipt.points
            if receipt.amount is not None:
                cashback = receipt.amount if cashback is None else cashback + receipt.amount
        clawed = Decimal(0)
        accrual = journals.get(accrual_number) if accrual_number else None
        if accrual is not None and order.customer_id is not None:
            clawed = yield from self._earned(order.customer_id, accrual.id, ctx)
            yield from self._cancel(accrual, accrual=True, reason=reason, ctx=ctx)
            receipts.append(self._reverse_receipt(reversal, accrual.number))
        reinstated: list[str] = []
        if redeems and s.can_reinstate and order.customer_id is not None:
            reinstated = yield from self._reinstate(order.customer_id, [r.code for r in redeems if r.code], ctx)
        return ReversalResult(
            order_ref=order.ref, kind=reversal.kind, points_returned=points_returned,
            points_clawed_back=max(clawed, Decimal(0)), cashback_returned=cashback,
            vouchers_reinstated=tuple(reinstated), receipts=tuple(receipts),
        )

    def _reverse_receipt(self, reversal: Reversal, ref: str) -> Receipt:
        return Receipt(operation="reverse", engine=self.name, idempotency_key=reversal.key, engine_ref=ref)

    def _cancel(self, journal: tf.SfJournal, accrual: bool, reason: str, ctx: CallContext) -> Flow[None]:
        if journal.status == self.settings.cancelled_journal_status:
            return  # cancelled by an earlier call: nothing to do twice
        path = tf.cancel_path(self.settings, accrual)
        body = tf.cancel_request(journal.id, reason)

        def applied() -> Flow[tf.SfJournal | None]:
            found = yield from self._find_journals([journal.number], ctx)
            now = found.get(journal.number)
            return now if now is not None and now.status == self.settings.cancelled_journal_status else None

        response, _ = yield from self._reconciled(self._write(path, body, "reverse"), applied, ctx.idempotency_key)
        if response is None:
            return
        result = self._checked(response, ctx)
        if self._status_flag and not tf.confirmed(result, "isSuccess"):
            raise self._unconfirmed(ctx.operation, ctx.idempotency_key)
        tf.cancel_result(result)

    def _earned(self, member: str, journal_id: str, ctx: CallContext) -> Flow[Decimal]:
        """Points an accrual journal credited, from the member's transaction ledger summary."""
        response = yield EngineRequest(
            "GET", tf.ledger_path(self.settings, member),
            params={"journalTypeName": self.settings.accrual_journal_type}, route="lookup",
        )
        found = tf.ledger_points(self._checked(response, ctx), journal_id, self.settings.points_currency)
        return found or Decimal(0)

    def _reinstate(self, member: str, codes: list[str], ctx: CallContext) -> Flow[list[str]]:
        vouchers = yield from self._vouchers(member, ctx)
        done: list[str] = []
        for code in codes:
            voucher = next((v for v in vouchers if v.code == code and v.status in ("Redeemed", "Reserved")), None)
            if voucher is None:
                if any(v.code == code and v.status == "Issued" for v in vouchers):
                    done.append(code)  # reinstated by an earlier call
                continue
            params = {"voucherNumber": voucher.number} if voucher.number else None
            result = yield from self._voucher_action(
                tf.redeem_path(self.settings, member, code), params, "Reinstate", None, member, code, ctx,
                key=ctx.idempotency_key,
            )
            if result.get("status") == "Issued":
                done.append(code)  # {"status": "Expired"} means it could not come back
        return done
