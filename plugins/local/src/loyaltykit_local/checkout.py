"""The checkout operations of the embedded engine: identify, evaluate, price products, redeem,
spend, export and reverse, each one a transaction around the pure rules in :mod:`.rules`.

Exports are keyed by order reference and order key in ``lk_orders``; the other writes go through
the keyed writes of :class:`~.accounts.Accounts`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from loyaltykit import (
    Balance,
    BalanceKind,
    Basket,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    Evaluation,
    ExportReport,
    ExportStatus,
    InsufficientBalanceError,
    InvalidRequestError,
    LoyaltyError,
    Money,
    Order,
    OrderExportResult,
    ProductPrice,
    ProductQuery,
    Receipt,
    RedemptionResult,
    RedemptionStatus,
    RefundLine,
    Reversal,
    ReversalResult,
    SpendResult,
    UsageLimitReachedError,
    VoucherAlreadyRedeemedError,
    VoucherConditionsNotMetError,
    VoucherNotFoundError,
    VoucherRedemption,
)
from loyaltykit.models import MAX_POINTS
from loyaltykit.money import built

from . import rules
from .accounts import (
    _CUSTOMER_LOCKED_DUE,
    _INSERT_GRANT,
    _INSERT_LEDGER,
    _INSERT_ORDER,
    _ORDER_SEEN,
    _SET_HISTORY,
    CASHBACK,
    CUSTOMER_BY,
    CUSTOMER_EXISTS,
    ENGINE,
    POINTS,
    Accounts,
    _fingerprint,
    _major,
    _minor,
    _span,
    _whole_points,
)
from .catalog import points_lines, spend_problem, unpaid_reason
from .ledger import capped_clawback, expiry_for
from .members import after_export, record_rule_costs
from .program import VoucherDef, amount_in
from .rules import BasketView, CustomerFacts, VoucherFacts
from .store import Bound, IntegrityError, OperationalError, Prepared, to_db

if TYPE_CHECKING:
    from .accounts import AnyRow
    from .store import Connection

_VOUCHER_LOCKED = Prepared("voucher_locked")
_VOUCHER_USE = Prepared("voucher_use")
_VOUCHER_RELEASE = Prepared("voucher_release")
_INSERT_REDEMPTION = Prepared("redemption_insert")
_REDEMPTIONS_OF_ORDER = Prepared("redemptions_of_order")
_REINSTATE = Prepared("redemption_reinstate")
_REVERSALS_OF_ORDER = Prepared("reversals_of_order")
_LEDGER_OF_ORDER = Prepared("ledger_of_order")
_ORDER_BY_REF = Prepared("order_by_ref")


#: customers whose facts an engine keeps from their last export (for _plan_export)
_FACTS_KEPT = 10_000


#: orders an export call writes in one transaction (a writer holds the lock for all of them)
_ORDERS_PER_TRANSACTION = 50


def _failed(order: Order, exc: LoyaltyError) -> OrderExportResult:
    status = ExportStatus.RETRY_LATER if exc.retryable else ExportStatus.REJECTED
    return OrderExportResult(order_ref=order.ref, status=status, reason=exc.message, error_code=exc.code)


def _busy(order: Order) -> OrderExportResult:
    return OrderExportResult(order_ref=order.ref, status=ExportStatus.RETRY_LATER, reason="database busy",
                             error_code="engine_unavailable")


_ACCEPTED_SET = {"order_ref", "status", "engine_ref", "points_earned"}


def _accepted(order_ref: str, engine_ref: str, points: int) -> OrderExportResult:
    """An accepted order's result from what the engine validated (the order's ref) and wrote, without a
    validation run; points beyond the model's limit take the validating path, which refuses them."""
    if 0 <= points <= MAX_POINTS:
        return built(OrderExportResult, {"order_ref": order_ref, "status": ExportStatus.ACCEPTED, "reason": None,
                                         "error_code": None, "engine_ref": engine_ref,
                                         "points_earned": Decimal(points)}, _ACCEPTED_SET)
    return OrderExportResult(order_ref=order_ref, status=ExportStatus.ACCEPTED, engine_ref=engine_ref,
                             points_earned=Decimal(points))


class _Planned(NamedTuple):
    compiled: rules.CompiledProgram
    facts: CustomerFacts
    now: datetime
    view: BasketView
    result: rules.Quote
    writes: _Writes


class _Writes(NamedTuple):
    """What an accepted export inserts (see Checkout._export_writes)."""

    order: Bound
    grants: Bound | None
    history: dict[str, object] | None
    ledger: Bound | None
    points: int


class Checkout(Accounts):
    """The operations the adapter's checkout hooks call (the six operations plus product pricing)."""

    def identify(self, identifier: CustomerIdentifier) -> Customer | None:
        self.calls["identify"] += 1
        with self.store.read() as conn:
            row = CUSTOMER_BY[identifier.kind].run(conn, {"value": identifier.value}).first()
            if row is None:
                return None
            return self._customer_model(conn, row)

    def evaluate(self, basket: Basket) -> Evaluation:
        self.calls["evaluate"] += 1
        self._check_currency(basket.currency, "evaluate_basket")
        now = self.now()
        compiled = self.compiled
        view = BasketView.of_basket(basket)
        with self.store.read() as conn:
            facts = self._facts(conn, basket.customer_id, basket.currency, now) if basket.customer_id else None
            found = self._voucher_facts(conn, basket.coupon_codes, basket.id)
            wallet = self._wallet(conn, basket.customer_id) if basket.customer_id else []
        result = rules.quote(compiled, view, facts, found, now)
        evaluation = rules.to_evaluation(compiled, view, facts, result, wallet, now)
        priced = points_lines(compiled, view)
        if priced:
            evaluation = evaluation.model_copy(update={"points_lines": priced})
        return evaluation

    def price_products(self, query: ProductQuery) -> list[ProductPrice]:
        self.calls["evaluate"] += 1
        self._check_currency(query.currency, "price_products")
        now = self.now()
        compiled = self.compiled
        facts = None
        if query.customer_id:
            with self.store.read() as conn:
                facts = self._facts(conn, query.customer_id, query.currency, now)
        return [rules.price_product(compiled, line, query.currency, facts, query.channel, now) for line in query.products]

    def redeem(self, redemption: VoucherRedemption, key: str) -> RedemptionResult:
        self.calls["redeem"] += 1
        basket = redemption.basket
        customer_id = redemption.customer_id or (basket.customer_id if basket else None)
        if basket is not None:
            self._check_currency(basket.currency, "redeem_voucher")
        fingerprint = _fingerprint("redeem", redemption.code, redemption.order_ref, customer_id)

        def work(conn: Connection, now: datetime) -> RedemptionResult:
            if customer_id is not None:
                self._require_customer(conn, customer_id)
            row = _VOUCHER_LOCKED.run(conn, {"code": redemption.code}).first()
            if row is None:
                raise VoucherNotFoundError(f"no voucher or promo code {redemption.code}", engine=ENGINE)
            voucher = VoucherFacts(VoucherDef.model_validate(row.definition), row.uses, row.offer_kind)
            view = BasketView.of_basket(basket) if basket is not None else None
            definition = voucher.definition
            if view is None and definition.min_basket is not None:
                raise VoucherConditionsNotMetError(
                    f"voucher {definition.code} has a minimum basket: send the basket with the redemption", engine=ENGINE)
            problem = rules.voucher_problem(voucher, customer_id, view, now, self.program.currency)
            if problem is not None:
                raise problem.with_context(engine=ENGINE, operation="redeem_voucher")
            # The conditional UPDATE is the guard: of many racing redemptions, only as many as the
            # limit allows find a row to update.
            claimed = _VOUCHER_USE.run(conn, {"voucher_code": redemption.code}).rowcount
            if claimed != 1:
                if definition.usage_limit == 1:
                    raise VoucherAlreadyRedeemedError(f"voucher {definition.code} has already been redeemed", engine=ENGINE)
                raise UsageLimitReachedError(f"voucher {definition.code} reached its limit of uses", engine=ENGINE)
            ref = _INSERT_REDEMPTION.run(conn, {
                "code": redemption.code, "order_ref": redemption.order_ref, "customer_id": customer_id,
                "write_key": key, "status": "redeemed", "created_at": to_db(now)}).inserted_id
            discount = self._redemption_discount(conn, definition, view, customer_id, now)
            return RedemptionResult(
                code=redemption.code, status=RedemptionStatus.REDEEMED, discount=discount,
                label=definition.label,
                receipt=Receipt(operation="redeem_voucher", engine=ENGINE, idempotency_key=key,
                                engine_ref=f"RDM-{ref}", code=redemption.code, amount=discount),
            )

        return self._keyed("redeem_voucher", key, fingerprint, redemption.order_ref, RedemptionResult, work)

    def _redemption_discount(self, conn: Connection, definition: VoucherDef, view: BasketView | None,
                             customer_id: str | None, now: datetime) -> Money | None:
        if view is None:
            amount = amount_in(definition.amount, self.program.currency, self.program.currency)
            if definition.kind == "fixed" and amount is not None:
                return Money(amount=amount, currency=self.program.currency)
            return None
        # The same figure the evaluation shows: rules first, then this code on what they left.
        facts = self._facts(conn, customer_id, view.currency, now) if customer_id else None
        just_this = BasketView(view.id, view.currency, view.lines, customer_id, view.shipping, view.channel,
                               (definition.code,))
        result = rules.quote(self.compiled, just_this, facts, {definition.code: VoucherFacts(definition, held=True)}, now)
        return Money(amount=result.discount_for(definition.code), currency=view.currency)

    def spend(self, spend: CashbackSpend, key: str) -> SpendResult:
        self.calls["spend"] += 1
        if spend.kind is BalanceKind.CASHBACK:
            if spend.amount is None:
                raise AssertionError("spend.amount is set here")
            self._check_currency(spend.amount.currency, "spend_cashback")
            wanted = spend.amount.minor_units()
            currency: str | None = spend.amount.currency
            self._check_spend_policy(spend.amount)
        else:
            if spend.points is None:
                raise AssertionError("spend.points is set here")
            wanted = _whole_points(spend.points, "points")
            currency = None
        value = self._spend_value(spend)
        # the lines a spend pays join its fingerprint only when named: earlier keys keep theirs
        fingerprint = _fingerprint("spend", spend.customer_id, spend.order_ref, spend.kind.value, wanted, currency,
                                   *([list(spend.line_ids)] if spend.line_ids else []))

        def work(conn: Connection, now: datetime) -> SpendResult:
            row = self._lock_customer(conn, spend.customer_id)
            self._record_expiry(conn, spend.customer_id, now, row)
            balance = POINTS if spend.kind is BalanceKind.POINTS else CASHBACK
            available = self._sum(conn, spend.customer_id, balance, currency)
            if wanted > available:
                shown = (f"{available} points" if currency is None else str(Money(amount=_major(available, currency), currency=currency)))
                raise InsufficientBalanceError(
                    f"the {balance} balance ({shown}) does not cover the spend", engine=ENGINE, operation="spend_cashback")
            entry = self._append(conn, spend.customer_id, balance, currency, "burn", -wanted, now,
                                 order_ref=spend.order_ref, write_key=key, label=f"paid order {spend.order_ref}")
            left = available - wanted
            if currency is None:
                remaining = Balance(kind=BalanceKind.POINTS, name=self.program.points.name, points=Decimal(left))
            else:
                remaining = Balance(kind=BalanceKind.CASHBACK, name="cashback",
                                    money=Money(amount=_major(left, currency), currency=currency))
            return SpendResult(
                kind=spend.kind, amount=spend.amount, points=spend.points, value=value, remaining=remaining,
                receipt=Receipt(operation="spend_cashback", engine=ENGINE, idempotency_key=key,
                                engine_ref=f"SPD-{entry}", amount=value, points=spend.points,
                                line_ids=spend.line_ids),
            )

        return self._keyed("spend_cashback", key, fingerprint, spend.order_ref, SpendResult, work)

    def _spend_value(self, spend: CashbackSpend) -> Money | None:
        """The money the spend pays: its cashback amount, or its points at the program's rate. A points
        value the shop states must match the program's rate when the program has one."""
        if spend.kind is BalanceKind.CASHBACK:
            return spend.amount
        if spend.points is None:
            raise AssertionError("spend.points is set here")
        if spend.line_ids:  # points-priced lines: paid in points, worth nothing in money
            problem = spend_problem(self.compiled, spend)
            if problem is not None:
                raise InvalidRequestError(f"{problem[0]}: {problem[1]}", field=problem[0], engine=ENGINE,
                                          operation="spend_cashback")
            return spend.points_value or Money.zero(spend.basket.currency if spend.basket else self.program.currency)
        currency = (spend.points_value or spend.amount_due or Money.zero(self.program.currency)).currency
        priced = rules.points_value(self.program, spend.points, currency)
        if priced is None:
            return spend.points_value
        if spend.points_value is not None and spend.points_value != priced:
            raise InvalidRequestError(f"points_value: the program values these points at {priced}",
                                      field="points_value", engine=ENGINE, operation="spend_cashback")
        if spend.amount_due is not None and priced > spend.amount_due:
            raise InvalidRequestError(f"points: worth {priced}, more than the amount due ({spend.amount_due})",
                                      field="points", engine=ENGINE, operation="spend_cashback")
        return priced

    def _check_spend_policy(self, amount: Money) -> None:
        policy = self.program.cashback
        low = amount_in(policy.spend_min, amount.currency, self.program.currency)
        high = amount_in(policy.spend_max, amount.currency, self.program.currency)
        if low is not None and amount.amount < low:
            raise InvalidRequestError(f"amount: the program's smallest cashback payment is {low} {amount.currency}",
                                      field="amount", engine=ENGINE, operation="spend_cashback")
        if high is not None and amount.amount > high:
            raise InvalidRequestError(f"amount: the program's largest cashback payment is {high} {amount.currency}",
                                      field="amount", engine=ENGINE, operation="spend_cashback")

    # -- export ----------------------------------------------------------------------------------
    def export(self, batch: list[Order]) -> ExportReport:
        self.calls["export"] += 1
        results: list[OrderExportResult] = []
        for first in range(0, len(batch), _ORDERS_PER_TRANSACTION):
            part = batch[first:first + _ORDERS_PER_TRANSACTION]
            together = self._export_together(part) if len(part) > 1 else None
            results.extend(together if together is not None else map(self._export_alone, part))
        # the results are models already: the report a validation run would build around them
        return built(ExportReport, {"engine": ENGINE, "results": tuple(results)})

    def _export_alone(self, order: Order) -> OrderExportResult:
        try:
            return self._export_one(order)
        except LoyaltyError as exc:
            return _failed(order, exc)
        except OperationalError:
            return _busy(order)

    def _export_together(self, batch: list[Order]) -> list[OrderExportResult] | None:
        """Several orders in one write transaction (one commit, one wait for the lock), each in a
        savepoint of its own: an order that fails is undone alone and reported as it would be on its
        own. None: the transaction could not be completed; each order then gets its own."""
        plans = [self._plan_export(order) for order in batch]
        try:
            with self.store.write() as conn:
                results = []
                for order, planned in zip(batch, plans, strict=True):
                    key = order.key
                    try:
                        try:
                            with self.store.savepoint(conn):
                                result = self._export_in(conn, order, key, look_first=self.store.dialect != "sqlite",
                                                         planned=planned)
                        except IntegrityError:  # recorded before (or twice in this batch): say so
                            with self.store.savepoint(conn):
                                result = self._export_in(conn, order, key, look_first=True, planned=planned)
                    except LoyaltyError as exc:
                        result = _failed(order, exc)
                    results.append(result)
                return results
        except IntegrityError:
            return None
        except OperationalError:
            # the database was locked or unreachable past the busy timeout: nothing was written
            return [_busy(order) for order in batch]

    def _export_one(self, order: Order) -> OrderExportResult:
        key = order.key
        planned = self._plan_export(order)
        for attempt in range(3):
            try:
                with self.store.write() as conn:
                    # The unique ref and key make a second record impossible; looking first is only
                    # needed after an insert lost that race (or for an engine with many writers).
                    return self._export_in(conn, order, key, look_first=attempt > 0 or self.store.dialect != "sqlite",
                                           planned=planned)
            except IntegrityError:
                continue  # a concurrent export of the same order won: report it as a duplicate
        raise InvalidRequestError("order could not be recorded", engine=ENGINE)

    def _plan_export(self, order: Order) -> _Planned | None:
        """The order's evaluation, worked out before its write transaction from what the last export
        of this customer left the facts at: the transaction reads the facts as always and uses the
        plan only if they are the very facts it was made from (else it evaluates again), so writers
        hold the database's lock for their statements, not for the rules."""
        customer_id = order.customer_id
        if customer_id is None or order.voucher_codes or order.currency not in self.program.accepted_currencies:
            return None
        compiled = self.compiled
        known = self._export_facts.get(customer_id)
        if known is None or known[0] is not compiled:
            return None
        view = BasketView.of_order(order)
        facts, now = known[1], self.now()
        result = rules.quote(compiled, view, facts, {}, order.placed_at)
        return _Planned(compiled, facts, now, view, result, self._export_writes(order, order.key, facts, result, now))

    def _remember_facts(self, compiled: rules.CompiledProgram, facts: CustomerFacts, applied: list[str],
                        raw: tuple[Any, ...] | None) -> None:
        """The customer's facts once this export is in: one more order, its rules granted. ``raw``:
        the customer's row as read, when this export did not change it (else None)."""
        if compiled.program.tiers:
            self._export_facts.pop(facts.id, None)  # the tier follows the points earned: read it again
            return
        if raw is None:
            # (the constructor, not dataclasses.replace: that looks the fields up again on every call)
            facts = CustomerFacts(id=facts.id, tier=facts.tier, role=facts.role, segments=facts.segments,
                                  ordered_before=True, granted_rules=facts.granted_rules.union(applied),
                                  points=facts.points, cashback=facts.cashback)
        if len(self._export_facts) >= _FACTS_KEPT:
            self._export_facts.clear()
        self._export_facts[facts.id] = (compiled, facts, raw)

    def _export_writes(self, order: Order, key: str, facts: CustomerFacts | None, result: rules.Quote,
                       now: datetime) -> _Writes:
        """The rows an accepted export writes, bound to the driver's values: for a planned export this
        runs before the transaction, which then only reads, checks and inserts."""
        points = result.total_points if facts else 0
        cashback = result.cashback_earned if facts else Decimal(0)
        if order.total is None:
            raise AssertionError("order.total is set once the order is validated")
        driver = self.store.on_driver
        ref, currency, at, customer_id = order.ref, order.currency, to_db(now), order.customer_id
        cashback_minor = _minor(cashback, currency)
        written = _INSERT_ORDER.bind(driver=driver, params={
            "ref": ref, "write_key": key, "customer_id": customer_id, "currency": currency,
            "total_minor": order.total.minor_units(), "points_earned": points,
            "cashback_earned_minor": cashback_minor, "rules": result.applied_rules,
            "placed_at": to_db(order.placed_at), "created_at": at,
        })
        if customer_id is None:
            return _Writes(written, None, None, None, points)
        # A rule's first grant to the customer only (each order's own rules are in its row's
        # ``rules``); the customer's row keeps the history the facts were read from.
        before = facts.granted_rules if facts is not None else frozenset()
        granted = [{"customer_id": customer_id, "rule_id": rule_id, "order_ref": ref, "created_at": at}
                   for rule_id in result.applied_rules if rule_id not in before]
        history = None
        if granted or (facts is not None and not facts.ordered_before):
            history = {"customer_id": customer_id, "ordered": True, "granted_rules": sorted(
                before.union(result.applied_rules))}
        # the order's earn rows, as Accounts._entry writes them
        expires = to_db(expiry_for(self.program.points, now))
        earned = [(f"order {ref}", result.points_earned)] if result.points_earned else []
        entries = [{"customer_id": customer_id, "balance": POINTS, "currency": None, "entry": "earn",
                    "amount": amount, "order_ref": ref, "write_key": key, "label": label, "created_at": at,
                    "expires_at": expires} for label, amount in (*earned, *result.bonus)]
        if cashback > 0:
            entries.append({"customer_id": customer_id, "balance": CASHBACK, "currency": currency, "entry": "earn",
                            "amount": cashback_minor, "order_ref": ref, "write_key": key,
                            "label": f"cashback on order {ref}", "created_at": at, "expires_at": None})
        return _Writes(written, _INSERT_GRANT.bind(granted, driver=driver) if granted else None, history,
                       _INSERT_LEDGER.bind(entries, driver=driver) if entries else None, points)

    def _export_in(self, conn: Connection, order: Order, key: str, look_first: bool = True,
                   planned: _Planned | None = None) -> OrderExportResult:
        earlier = _ORDER_SEEN.run(conn, {"ref": order.ref, "key": key}).first() if look_first else None
        if earlier is not None:
            return OrderExportResult(order_ref=order.ref, status=ExportStatus.DUPLICATE, engine_ref=f"ORD-{earlier.id}",
                                     points_earned=Decimal(earlier.points_earned))
        if order.currency not in self.program.accepted_currencies:
            return OrderExportResult(order_ref=order.ref, status=ExportStatus.REJECTED, error_code="currency_mismatch",
                                     reason=f"the program does not accept {order.currency}")
        compiled = self.compiled
        now = planned.now if planned is not None else self.now()
        customer_id = order.customer_id
        facts = None
        raw = None  # the customer's row as the driver read it (on a SQLite file)
        if customer_id is not None:
            params = {"customer_id": customer_id, "now": to_db(now)}
            if self.store.on_driver:
                raw = _CUSTOMER_LOCKED_DUE.first_raw(conn, params)  # type: ignore[arg-type]
                known = self._export_facts.get(customer_id)
                if raw is not None and known is not None and known[2] == raw and known[0] is compiled:
                    # the very row this customer's last export left (no expiry due then, nor now):
                    # the same facts, not decoded again
                    facts = known[1]
                row = _CUSTOMER_LOCKED_DUE.row_of(raw) if raw is not None and facts is None else None
            else:
                row = _CUSTOMER_LOCKED_DUE.run(conn, params).first()
            if facts is None:
                if row is None:
                    self._export_facts.pop(customer_id, None)
                    return OrderExportResult(order_ref=order.ref, status=ExportStatus.REJECTED,
                                             error_code="customer_not_found", reason="no such customer")
                if row.expiry_due:
                    raw = None
                    self._record_expiry(conn, customer_id, now, row, due=True)
                # The history is read from the locked row itself: on PostgreSQL a row another export
                # changed while this one waited for the lock is read as that export left it.
                facts = self._facts(conn, customer_id, order.currency, now, row=row, balances=False)
        if planned is not None and (planned.compiled is not compiled or (
                planned.facts is not facts and planned.facts != facts)):
            planned = None  # the facts moved since the plan (another writer, a new program): evaluate again
        view = planned.view if planned is not None else BasketView.of_order(order)
        unpaid = unpaid_reason(compiled, conn, view, customer_id) if compiled.catalog_price else None
        if unpaid is not None:
            return OrderExportResult(order_ref=order.ref, status=ExportStatus.REJECTED,
                                     error_code="insufficient_balance", reason=unpaid)
        found = self._voucher_facts(conn, order.voucher_codes, order.ref) if order.voucher_codes else {}
        # Codes the shop applied without redeeming them first are redeemed now, if still usable.
        for code, voucher in list(found.items()):
            if voucher.held or rules.voucher_problem(voucher, customer_id, view, order.placed_at, self.program.currency):
                continue
            claimed = _VOUCHER_USE.run(conn, {"voucher_code": code}).rowcount
            if claimed == 1:
                _INSERT_REDEMPTION.run(conn, {"code": code, "order_ref": order.ref, "customer_id": customer_id,
                                              "write_key": f"{key}:{code}", "status": "redeemed",
                                              "created_at": to_db(now)})
                found[code] = VoucherFacts(voucher.definition, voucher.uses + 1, voucher.offer_kind, held=True)
        if planned is not None:
            result, writes = planned.result, planned.writes
        else:
            result = rules.quote(compiled, view, facts, found, order.placed_at)
            writes = self._export_writes(order, key, facts, result, now)
        order_id = writes.order.run(conn).inserted_id
        record_rule_costs(conn, order.ref, order.currency, result.discounts, now)
        if customer_id is not None:
            if writes.grants is not None:
                writes.grants.run(conn)
            if writes.history is not None:
                _SET_HISTORY.run(conn, writes.history)
            if writes.ledger is not None:
                writes.ledger.run(conn)  # one executemany for the order's earn rows
            after_export(self, conn, customer_id, facts.tier if facts else None, result.issued, order.ref, now)
            if facts is not None and not order.voucher_codes:
                self._remember_facts(compiled, facts, result.applied_rules, raw if writes.history is None else None)
        points = writes.points
        return _accepted(order.ref, f"ORD-{order_id}", points)

    # -- reverse ---------------------------------------------------------------------------------
    def _refunded_before(self, conn: Connection, order_ref: str) -> tuple[RefundLine, ...]:
        """The quantities earlier reversals of the order returned, from their recorded results:
        this engine's own record, whatever references or ``already_refunded`` the shop sends."""
        rows = _REVERSALS_OF_ORDER.run(conn, {"order_ref": order_ref})
        total: defaultdict[str, Decimal] = defaultdict(Decimal)
        for row in rows:
            refund = (row.result or {}).get("refund") or {}
            for line in refund.get("lines") or ():
                total[line["line_id"]] += Decimal(str(line["quantity"]))
        return tuple(RefundLine(line_id=line_id, quantity=quantity) for line_id, quantity in total.items())

    def reverse(self, reversal: Reversal, key: str) -> ReversalResult:
        self.calls["reverse"] += 1
        order = reversal.order
        lines = [(r.line_id, str(r.quantity)) for r in reversal.lines or ()]
        fingerprint = _fingerprint("reverse", order.ref, reversal.kind.value, reversal.reference, lines)

        def work(conn: Connection, now: datetime) -> ReversalResult:
            try:
                effective = Reversal(order=order, kind=reversal.kind, lines=reversal.lines,
                                     already_refunded=self._refunded_before(conn, order.ref),
                                     reference=reversal.reference, exported=reversal.exported,
                                     reason=reversal.reason, idempotency_key=reversal.idempotency_key)
            except InvalidRequestError as exc:
                raise InvalidRequestError(f"reversal.{exc.message}", field=f"reversal.{exc.field}",
                                          engine=ENGINE, operation="reverse") from None
            breakdown = effective.breakdown
            complete = breakdown.share_after == 1
            rows = _LEDGER_OF_ORDER.run(conn, {"order_ref": order.ref}).rows
            stored = _ORDER_BY_REF.run(conn, {"ref": order.ref}).first()
            customer_id = (stored.customer_id if stored is not None else None) or order.customer_id
            if customer_id is None and rows:
                customer_id = rows[0].customer_id
            moved: dict[tuple[str, str | None, str], int] = {}
            if customer_id is not None and CUSTOMER_EXISTS.run(conn, {"customer_id": customer_id}).first():
                row = self._lock_customer(conn, customer_id)
                self._record_expiry(conn, customer_id, now, row)
                moved = self._reverse_ledger(conn, customer_id, effective, rows, complete, key, now)
            reinstated: list[str] = []
            if complete:
                reinstated = self._reinstate_vouchers(conn, order.ref)
            currency = order.currency
            # One receipt, no figure on it: returned and clawed-back amounts flow in opposite
            # directions and are reported apart below, never summed.
            receipt = Receipt(operation="reverse", engine=ENGINE, idempotency_key=key,
                              engine_ref=f"REV-{_fingerprint(key)[:12].upper()}")
            return ReversalResult(
                order_ref=order.ref, kind=reversal.kind,
                points_returned=Decimal(moved.get((POINTS, None, "return"), 0)),
                points_clawed_back=Decimal(moved.get((POINTS, None, "claw"), 0)),
                cashback_returned=Money(amount=_major(moved.get((CASHBACK, currency, "return"), 0), currency),
                                        currency=currency),
                cashback_clawed_back=Money(amount=_major(moved.get((CASHBACK, currency, "claw"), 0), currency),
                                           currency=currency),
                vouchers_reinstated=tuple(reinstated), refund=breakdown, receipts=(receipt,),
            )

        return self._keyed("reverse", key, fingerprint, order.ref, ReversalResult, work)

    def _reverse_ledger(self, conn: Connection, customer_id: str, reversal: Reversal, rows: Sequence[AnyRow],
                        complete: bool,
                        key: str, now: datetime) -> dict[tuple[str, str | None, str], int]:
        """Give back what the order burned, as the core's breakdown says (``to_cashback``, ``points``),
        and take back what it earned in proportion to the net paid returned (``share_before`` ->
        ``share_after``). Never more than the order moved, whatever earlier reversals did."""
        order = reversal.order
        breakdown = reversal.breakdown
        burned: Counter[tuple[str, str | None]] = Counter()
        earned: Counter[tuple[str, str | None]] = Counter()
        returned: Counter[tuple[str, str | None]] = Counter()
        clawed: Counter[tuple[str, str | None]] = Counter()
        for row in rows:
            if row.customer_id != customer_id:
                continue
            account = (row.balance, row.currency)
            if row.entry == "burn":
                burned[account] += -row.amount
            elif row.entry == "earn":
                earned[account] += row.amount
            elif row.entry == "reverse" and row.amount > 0:
                returned[account] += row.amount
            elif row.entry == "reverse" and row.amount < 0:
                clawed[account] += -row.amount
        spends = [r for r in order.receipts if r.operation == "spend_cashback"]
        moved: dict[tuple[str, str | None, str], int] = {}
        label = f"{reversal.kind.value} {order.ref} ({reversal.reference})"
        # Give back what was burned first, so a claw-back can be taken from it.
        for account, total in burned.items():
            left = total - returned[account]
            balance, currency = account
            if complete:
                share = left
            elif balance == POINTS and any(r.points is not None for r in spends):
                share = int(breakdown.points)
            elif balance == CASHBACK and currency == order.currency and any(r.points is None for r in spends):
                share = breakdown.to_cashback.minor_units()
            else:  # the order does not carry its spend receipts: follow the net paid returned
                share = _span(total, breakdown.share_before, breakdown.share_after)
            share = min(left, share)
            if share > 0:
                expires = expiry_for(self.program.points, now) if balance == POINTS else None
                self._append(conn, customer_id, balance, currency, "reverse", share, now, order_ref=order.ref,
                             write_key=key, label=label, expires_at=expires)
                moved[(*account, "return")] = share
        for account, total in earned.items():
            left = total - clawed[account]
            share = left if complete else min(left, _span(total, breakdown.share_before, breakdown.share_after))
            balance, currency = account
            available = (self._points_available(conn, customer_id, now) if balance == POINTS
                         else self._sum(conn, customer_id, CASHBACK, currency))
            share = capped_clawback(share, available)
            if share > 0:
                self._append(conn, customer_id, balance, currency, "reverse", -share, now, order_ref=order.ref,
                             write_key=key, label=label)
                moved[(*account, "claw")] = share
        return moved

    def _reinstate_vouchers(self, conn: Connection, order_ref: str) -> list[str]:
        rows = _REDEMPTIONS_OF_ORDER.run(conn, {"order_ref": order_ref}).rows
        for row in rows:
            _REINSTATE.run(conn, {"redemption_id": row.id})
            _VOUCHER_RELEASE.run(conn, {"voucher_code": row.code})
        return [row.code for row in rows]

