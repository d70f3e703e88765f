"""The contract-suite harness for the embedded engine (entry point ``loyaltykit.harness``: ``local``).

The engine runs in-process, so there is no HTTP to fake or to break:

* ``sync_transport()`` and ``async_transport()`` return ``None``;
* ``inject()`` and ``expire_token()`` raise ``NotImplementedError`` — there is no wire to fault and
  no token to expire; the suite's fault scenarios do not apply to an in-process engine;
* ``request_count(route)`` counts the operations the engine served, by route name
  (identify, evaluate, redeem, spend, export, reverse).

Everything else works against the real store: a fresh SQLite database in a temporary directory per
harness, seeded through the engine's admin API and read back from its tables.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from loyaltykit import Basket, Line, Money
from loyaltykit.flows import CallContext, Flow
from loyaltykit.models import CashbackSpend, Evaluation, RedemptionResult, SpendResult, VoucherRedemption
from loyaltykit.testing import (
    EngineBalances,
    Fault,
    OfferSpec,
    RuleSpec,
    SeededCustomer,
    VoucherSpec,
)

from .adapter import LocalAdapter
from .program import CatalogEntry, OfferTemplate, Program, Rule, VoucherDef
from .service import LocalEngine
from .store import Store


def _amounts(money: Money | None) -> dict[str, Decimal] | None:
    return {money.currency: money.amount} if money is not None else None


class LocalHarness:
    """An :class:`loyaltykit.testing.EngineHarness` over a fresh embedded engine."""

    engine = "local"
    currency = "EUR"
    member_tiers = ("Silver", "Gold")  # the default program has no tiers, so any name is accepted

    def __init__(self, database_url: str | None = None, program: Program | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="loyaltykit-local-")
        self.store = Store(database_url or f"sqlite:///{self._tmp.name}/engine.sqlite3")
        self.service = LocalEngine(self.store, program or Program(currency=self.currency))
        self._adapters: list[LocalAdapter] = []

    # -- adapter and transports -----------------------------------------------------------------
    def make_adapter(self) -> LocalAdapter:
        adapter = LocalAdapter(engine=self.service)
        self._adapters.append(adapter)
        return adapter

    def sync_transport(self) -> None:
        return None

    def async_transport(self) -> None:
        return None

    # -- seeding --------------------------------------------------------------------------------
    def create_customer(self, *, identifiers: dict[str, str], tier: str | None = None,
                        points: Decimal = Decimal(0), cashback: Money | None = None) -> SeededCustomer:
        customer_id = self.service.create_customer(identifiers=identifiers, tier=tier, points=int(points),
                                                   cashback=cashback)
        return SeededCustomer(id=customer_id, identifiers=dict(identifiers))

    def issue_voucher(self, spec: VoucherSpec) -> str:
        voucher = VoucherDef(
            code=spec.code, kind=spec.kind, percent=spec.percent, amount=_amounts(spec.amount), sku=spec.sku,
            owner=spec.owner_id, usage_limit=spec.usage_limit, valid_from=spec.valid_from,
            valid_until=spec.expires_at, min_basket=_amounts(spec.min_basket), label=spec.code,
        )
        return self.service.issue_voucher(voucher)

    def issue_offer(self, customer_id: str, spec: OfferSpec) -> str:
        template = OfferTemplate(id="OFFER", kind=spec.kind, percent=spec.percent, amount=_amounts(spec.amount),
                                 sku=spec.sku, label=spec.label)
        return self.service.issue_offer(customer_id, template)

    def define_issuable(self, spec: OfferSpec) -> str:
        """An offer template in the program, which ``issue_voucher`` names by its id."""
        template = OfferTemplate(id=f"ISSUE-{len(self.service.program.offers) + 1}", kind=spec.kind,
                                 percent=spec.percent, amount=_amounts(spec.amount), sku=spec.sku, label=spec.label)
        program = self.service.program
        self.service.set_program(program.model_copy(update={"offers": [*program.offers, template]}))
        return template.id

    def define_earn_rule(self, points_per_unit: Decimal) -> None:
        program = self.service.program
        points = program.points.model_copy(update={"per_currency_unit": Decimal(points_per_unit)})
        self.service.set_program(program.model_copy(update={"points": points}))

    def define_points_product(self, sku: str, points: Decimal) -> None:
        """A points-catalog product: sent at 0.00, it costs ``points`` per unit."""
        program = self.service.program
        entry = CatalogEntry(sku=sku, points_price=int(points))
        self.service.set_program(program.model_copy(update={"catalog": [*program.catalog, entry]}))

    def define_cashback_rule(self, percent: Decimal) -> None:
        program = self.service.program
        cashback = program.cashback.model_copy(update={"earn_percent": Decimal(percent)})
        self.service.set_program(program.model_copy(update={"cashback": cashback}))

    def define_rule(self, spec: RuleSpec) -> None:
        program = self.service.program
        when: dict[str, Any] = {}
        if spec.min_subtotal is not None:
            when["basket_amount"] = {"min": _amounts(spec.min_subtotal)}
        if spec.kind == "order_percent":
            then: dict[str, Any] = {"action": "percent_off_order", "percent": spec.percent}
        elif spec.kind == "order_fixed":
            then = {"action": "fixed_off_order", "amount": _amounts(spec.amount)}
        elif spec.kind == "line_percent":
            then = {"action": "percent_off_line", "percent": spec.percent, "skus": [spec.sku] if spec.sku else []}
            if spec.sku:
                when["skus"] = {"any": [spec.sku]}
        else:
            then = {"action": "message", "text": spec.message or spec.label}
        rule = Rule.model_validate({"id": f"rule-{len(program.rules) + 1}", "label": spec.label, "when": when,
                                    "then": then})
        self.service.set_program(program.model_copy(update={"rules": [*program.rules, rule]}))

    # -- reading back ---------------------------------------------------------------------------
    def balances(self, customer_id: str) -> EngineBalances:
        points, cashback = self.service.balances(customer_id, self.currency)
        return EngineBalances(points=Decimal(points), cashback=cashback)

    def voucher_redemptions(self, code: str) -> int:
        return self.service.voucher_uses(code)

    def orders_received(self) -> list[str]:
        return self.service.orders_received()

    def snapshot(self) -> Any:
        return self.service.snapshot()

    # -- faults: none in-process ----------------------------------------------------------------
    def inject(self, route: str, fault: Fault) -> None:
        raise NotImplementedError("the embedded engine runs in-process: there is no HTTP to fault")

    def expire_token(self) -> None:
        raise NotImplementedError("the embedded engine runs in-process: it has no token")

    def request_count(self, route: str | None = None) -> int:
        calls = self.service.calls
        return sum(calls.values()) if route is None else calls[route]

    def broken_adapters(self) -> dict[str, Callable[[], LocalAdapter]]:
        """Adapters broken on purpose, for the contract suite's self-test (each must fail it)."""
        return {
            "drops_idempotency_key": lambda: _DropsIdempotencyKey(engine=self.service),
            "evaluate_has_side_effects": lambda: _EvaluateWrites(engine=self.service),
            "swallows_voucher_errors": lambda: _SwallowsVoucherErrors(engine=self.service),
        }

    def close(self) -> None:
        self.store.dispose()
        self._tmp.cleanup()


class _DropsIdempotencyKey(LocalAdapter):
    def redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
        import uuid

        ctx.idempotency_key = uuid.uuid4().hex
        return super().redeem_voucher(redemption.model_copy(update={"order_ref": uuid.uuid4().hex}), ctx)

    def spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Flow[SpendResult]:
        import uuid

        ctx.idempotency_key = uuid.uuid4().hex
        return super().spend_cashback(spend, ctx)


class _EvaluateWrites(LocalAdapter):
    def evaluate_basket(self, basket: Basket, ctx: CallContext) -> Flow[Evaluation]:
        from .store import to_db
        from .tables import ledger

        if basket.customer_id:
            with self.engine.store.sqlalchemy_write() as conn:
                conn.execute(ledger.insert().values(customer_id=basket.customer_id, balance="points", entry="earn",
                                                    amount=1, created_at=to_db(self.engine.now())))
        return super().evaluate_basket(basket, ctx)


class _SwallowsVoucherErrors(LocalAdapter):
    def redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Flow[RedemptionResult]:
        from loyaltykit import Receipt, RedemptionStatus, VoucherError

        def flow() -> Flow[RedemptionResult]:
            try:
                return (yield from super(_SwallowsVoucherErrors, self).redeem_voucher(redemption, ctx))
            except VoucherError:
                return RedemptionResult(code=redemption.code, status=RedemptionStatus.REDEEMED,
                                        receipt=Receipt(operation="redeem_voucher", engine="local",
                                                        idempotency_key=redemption.key))

        return flow()


# ---------------------------------------------------------------------------------------------
# Small builders for tests of code running on the embedded engine
# ---------------------------------------------------------------------------------------------


class Clock:
    """A settable clock (pass it as ``LocalEngine(clock=...)``): date windows and expiry without waiting."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


#: Program rules (TOML) that ask about a customer's history: 50 points on a first order, 100 once per
#: customer. Tests of what a checkout reads and records about earlier orders and grants use them.
HISTORY_RULES = """
[[rules]]
id = "welcome"
when = { first_order = true }
then = { action = "bonus_points", points = 50 }

[[rules]]
id = "once"
when = { not_previously_granted = true }
then = { action = "bonus_points", points = 100 }
"""


def eur(amount: str | int) -> Money:
    return Money.of(amount, "EUR")


def line(id: str, sku: str, price: str, quantity: int | str = 1, category: str | None = None) -> Line:
    return Line(id=id, sku=sku, quantity=quantity, unit_price=eur(price), category=category)


def basket(*lines: Line, customer_id: str | None = None, codes: tuple[str, ...] = (), channel: str | None = None,
           shipping: str | None = None, id: str = "cart-1") -> Basket:
    return Basket(id=id, currency="EUR", lines=lines, customer_id=customer_id, coupon_codes=codes, channel=channel,
                  shipping=eur(shipping) if shipping is not None else None)


def make_harness() -> LocalHarness:
    """A fresh harness (fresh database) for one contract-suite scenario."""
    return LocalHarness()
