"""Rule evaluation: pure functions from (program, basket, customer facts, vouchers, time) to a quote.

Nothing here touches the database or the clock; :mod:`loyaltykit_local.service` gathers the facts
in a transaction and calls in. The order of work, which is also the documented stacking order:

1. **Rules**, highest ``priority`` first (ties keep file order). Each rule whose ``when`` holds
   applies all its ``then`` actions; ``stop = true`` (or ``hit_policy = "first"``) ends the walk.
   Line actions reduce the line's running net price; order actions take a share of what is left
   after the line discounts and earlier order discounts. No discount ever takes a line or the
   order below zero.
2. **Codes** (vouchers, promo codes, wallet offers) in the order the basket lists them, on what the
   rules left.
3. **Earning** on what the customer pays per line (order discounts spread over lines pro rata):
   fixed points per unit for a SKU, else the SKU's rate, else the category's, else the program's
   rate per currency unit; times the tier multiplier, rounded down to whole points; plus bonus
   points from rules (not multiplied). Cashback: ``earn_percent`` of the amount paid, if it
   reaches ``earn_min_order``, capped at ``earn_max_per_order``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import NamedTuple, TypeVar, cast

from loyaltykit import (
    Balance,
    BalanceKind,
    CatalogItem,
    CodeResult,
    CodeStatus,
    Discount,
    DiscountTarget,
    Earn,
    Evaluation,
    FreeItem,
    Line,
    Message,
    Money,
    Offer,
    OfferKind,
    ProductPrice,
    UsageLimitReachedError,
    VoucherAlreadyRedeemedError,
    VoucherConditionsNotMetError,
    VoucherError,
    VoucherExpiredError,
    VoucherNotOwnedError,
)
from loyaltykit.models import Basket, Order
from loyaltykit.money import built, quantize, to_decimal

from .program import (
    BASE,
    Action,
    BonusPoints,
    CategoryEarn,
    Conditions,
    FixedOffLine,
    FixedOffOrder,
    FreeGift,
    FreeShipping,
    IssueOffer,
    PercentOffLine,
    PercentOffOrder,
    ProductEarn,
    ProductsCondition,
    Program,
    Rule,
    ShowMessage,
    SpecialPrice,
    VoucherDef,
    amount_in,
)

ENGINE = "local"
HUNDRED = Decimal(100)
ZERO = Decimal(0)


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerFacts:
    """What the rules may know about the customer, read in one transaction."""

    id: str
    tier: str | None = None
    role: str | None = None
    segments: frozenset[str] = frozenset()
    ordered_before: bool = False  # an earlier order of the customer's is recorded (what first_order asks)
    granted_rules: frozenset[str] = frozenset()
    points: int = 0  # spendable now (expired points already left out)
    cashback: Decimal = ZERO  # spendable, in the basket's currency


# A NamedTuple, not a frozen dataclass: as immutable and compared by value, built faster, and its
# class is made without compiling generated methods at import.
class VoucherFacts(NamedTuple):
    definition: VoucherDef
    uses: int = 0
    offer_kind: str | None = None  # set for wallet offers
    held: bool = False  # already redeemed for this very order: usage is not checked again


class BasketView(NamedTuple):
    """The parts of a Basket or an Order that rules look at."""

    id: str
    currency: str
    lines: Sequence[Line]
    customer_id: str | None = None
    shipping: Decimal | None = None
    channel: str | None = None
    codes: Sequence[str] = ()

    @classmethod
    def of_basket(cls, basket: Basket) -> BasketView:
        return cls(basket.id, basket.currency, basket.lines, basket.customer_id,
                   basket.shipping.amount if basket.shipping else None, basket.channel, basket.coupon_codes)

    @classmethod
    def of_order(cls, order: Order) -> BasketView:
        return cls(order.ref, order.currency, order.lines, order.customer_id,
                   order.shipping.amount if order.shipping else None, order.channel, order.voucher_codes)


# ---------------------------------------------------------------------------------------------
# The compiled program: rules sorted and indexed once, so a basket only meets its candidates
# ---------------------------------------------------------------------------------------------


def _gate(when: Conditions) -> tuple[str, list[str]]:
    """The one fact a rule is filed under: a value the basket or the customer must have for the rule
    to hold. Products first (the most selective), then customer facts, then the channel."""
    for kind, products in (("sku", when.skus), ("category", when.categories)):
        if products is not None:
            # Every name in ``all`` is required, so one of them is enough; else any of ``any``.
            return kind, products.all[:1] or list(dict.fromkeys(products.any))
    for kind, names in (("role", when.role), ("segment", when.segment), ("tier", when.tier),
                        ("channel", when.channel)):
        if names is not None:
            return kind, list(dict.fromkeys(names))
    if when.first_order is not None or when.not_previously_granted:
        return "customer", []  # holds for some customers, never for a guest
    return "always", []


@dataclass(eq=False, repr=False)  # an index, never compared or printed: fewer methods made at import
class CompiledProgram:
    program: Program
    rules: list[Rule]  # in evaluation order
    always: list[int]  # positions of rules filed under no fact: visited for every basket
    by_sku: dict[str, list[int]]
    by_category: dict[str, list[int]]
    sku_earn: dict[str, ProductEarn]
    category_earn: dict[str, CategoryEarn]
    catalog_price: dict[str, int]
    tier_multiplier: dict[str, Decimal]
    compiled: list[_Rule] = field(default_factory=list)  # ``rules`` ready to run, same order
    bonus_earn: dict[tuple[str, int], Earn] = field(default_factory=dict)  # made on first use
    # Rules filed under a customer fact or the channel (see _gate), visited only when it matches.
    by_role: dict[str, list[int]] = field(default_factory=dict)
    by_segment: dict[str, list[int]] = field(default_factory=dict)
    by_tier: dict[str, list[int]] = field(default_factory=dict)
    by_channel: dict[str, list[int]] = field(default_factory=dict)
    customers_only: list[int] = field(default_factory=list)  # other customer conditions: never for a guest

    @classmethod
    def build(cls, program: Program) -> CompiledProgram:
        ordered = [rule for _, rule in sorted(enumerate(program.rules), key=lambda p: (-p[1].priority, p[0]))]
        always: list[int] = []
        customers_only: list[int] = []
        index: dict[str, dict[str, list[int]]] = {
            kind: defaultdict(list) for kind in ("sku", "category", "role", "segment", "tier", "channel")}
        for position, rule in enumerate(ordered):
            # A rule can only hold where its gate's fact is present: file it under that fact's values.
            kind, values = _gate(rule.when)
            if kind == "always":
                always.append(position)
            elif kind == "customer":
                customers_only.append(position)
            else:
                for value in values:
                    index[kind][value].append(position)
        prices = {p.sku: p.points_price for p in program.products if p.points_price is not None}
        prices.update({c.sku: c.points_price for c in program.catalog})
        return cls(
            program=program,
            rules=ordered,
            always=always,
            by_sku=dict(index["sku"]),
            by_category=dict(index["category"]),
            sku_earn={p.sku: p for p in program.products},
            category_earn={c.category: c for c in program.categories},
            catalog_price=prices,
            tier_multiplier={t.name: t.multiplier for t in program.tiers},
            compiled=[_Rule.of(rule, program.currency) for rule in ordered],
            by_role=dict(index["role"]),
            by_segment=dict(index["segment"]),
            by_tier=dict(index["tier"]),
            by_channel=dict(index["channel"]),
            customers_only=customers_only,
        )

    def candidates(self, skus: Iterable[str], categories: Iterable[str], customer: CustomerFacts | None = None,
                   channel: str | None = None) -> list[int]:
        """Positions, in evaluation order, of the rules whose gate fact this basket and customer have."""
        found = set(self.always)
        by_sku, by_category = self.by_sku, self.by_category
        for sku in skus:
            if sku in by_sku:
                found.update(by_sku[sku])
        for category in categories:
            if category in by_category:
                found.update(by_category[category])
        if channel is not None and channel in self.by_channel:
            found.update(self.by_channel[channel])
        if customer is not None:
            found.update(self.customers_only)
            if customer.role is not None and customer.role in self.by_role:
                found.update(self.by_role[customer.role])
            if customer.tier is not None and customer.tier in self.by_tier:
                found.update(self.by_tier[customer.tier])
            for segment in customer.segments:
                if segment in self.by_segment:
                    found.update(self.by_segment[segment])
        return sorted(found)


# ---------------------------------------------------------------------------------------------
# The quote
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)  # working state of one evaluation, never compared
class Quote:
    currency: str
    subtotal: Decimal
    discounts: list[Discount] = field(default_factory=list)
    free_items: list[FreeItem] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    codes: list[CodeResult] = field(default_factory=list)
    accepted_codes: list[str] = field(default_factory=list)
    applied_rules: list[str] = field(default_factory=list)
    free_shipping: bool = False
    free_shipping_by: list[str] = field(default_factory=list)
    line_paid: dict[str, Decimal] = field(default_factory=dict)
    points_earned: int = 0
    bonus: list[tuple[str, int]] = field(default_factory=list)  # (label, points)
    cashback_earned: Decimal = ZERO
    issued: list[tuple[str, str]] = field(default_factory=list)  # (rule id, offer template id), on export

    @property
    def total_points(self) -> int:
        return self.points_earned + sum(points for _, points in self.bonus)

    def discount_for(self, code: str) -> Decimal:
        return sum((d.amount.amount for d in self.discounts if d.code == code), ZERO)


class _Basket:
    """Mutable working state of one evaluation."""

    __slots__ = ("at_category", "at_sku", "base", "currency", "lines_total", "net", "order_discount", "qty_cat",
                 "qty_sku", "subtotal", "view")

    def __init__(self, view: BasketView, base: str) -> None:
        self.view = view
        self.currency = view.currency
        self.base = base
        currency = view.currency
        net: dict[str, Decimal] = {}
        qty_sku: dict[str, Decimal] = {}
        qty_cat: dict[str, Decimal] = {}
        # Positions of the lines per SKU and per category, for the actions that target them.
        at_sku: dict[str, list[int]] = {}
        at_category: dict[str, list[int]] = {}
        subtotal = ZERO
        # One pass, plain dicts (a defaultdict's Decimal() per new key cost as much as the rest).
        for position, line in enumerate(view.lines):
            quantity = line.quantity
            amount = quantize(line.unit_price.amount * quantity, currency)
            net[line.id] = amount
            subtotal += amount
            sku = line.sku
            held = qty_sku.get(sku)
            if held is None:
                qty_sku[sku] = quantity
                at_sku[sku] = [position]
            else:
                qty_sku[sku] = held + quantity
                at_sku[sku].append(position)
            category = line.category
            if category is not None:
                held = qty_cat.get(category)
                if held is None:
                    qty_cat[category] = quantity
                    at_category[category] = [position]
                else:
                    qty_cat[category] = held + quantity
                    at_category[category].append(position)
        self.net = net
        self.qty_sku = qty_sku
        self.qty_cat = qty_cat
        self.at_sku = at_sku
        self.at_category = at_category
        self.subtotal = subtotal
        self.lines_total = subtotal  # sum of the line nets, kept as line discounts are taken
        self.order_discount = ZERO

    def remaining(self) -> Decimal:
        return self.lines_total - self.order_discount

    def amount(self, amounts: dict[str, Decimal] | None) -> Decimal | None:
        return amount_in(amounts, self.currency, self.base)


def _products_hold(condition: tuple[tuple[str, ...], tuple[str, ...], Decimal], quantities: dict[str, Decimal]) -> bool:
    every, some, minimum = condition
    for key in every:
        if quantities.get(key, ZERO) < minimum:
            return False
    if not some:
        return True
    total = ZERO
    for key in some:
        found = quantities.get(key)
        if found is not None:
            total += found
            if total >= minimum:  # quantities are positive: the rest can only add
                return True
    return False


def _products(condition: ProductsCondition | None) -> tuple[tuple[str, ...], tuple[str, ...], Decimal] | None:
    return None if condition is None else (tuple(condition.all), tuple(condition.any), condition.min_quantity)


def _names(names: list[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)


def _per_currency(amounts: dict[str, Decimal] | None, base: str) -> dict[str, Decimal] | None:
    """An amount table resolved once: ``amount_in(amounts, currency, base)`` is ``.get(currency)``."""
    if amounts is None:
        return None
    resolved = {currency: value for currency, value in amounts.items() if currency != BASE}
    if base not in resolved and BASE in amounts:
        resolved[base] = amounts[BASE]
    return resolved


# The compiled rule's parts are compared by identity and never printed: no __eq__, __hash__ or
# __repr__ to generate at import.
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _When:
    """A rule's conditions, read once from the program into sets and tuples."""

    valid_from: datetime | None
    valid_until: datetime | None
    amount_min: dict[str, Decimal] | None  # per currency, resolved (see _per_currency)
    amount_max: dict[str, Decimal] | None
    skus: tuple[tuple[str, ...], tuple[str, ...], Decimal] | None
    categories: tuple[tuple[str, ...], tuple[str, ...], Decimal] | None
    channel: frozenset[str] | None
    role: frozenset[str] | None
    tier: frozenset[str] | None
    segment: frozenset[str] | None
    first_order: bool | None
    not_previously_granted: bool
    needs_customer: bool

    @classmethod
    def of(cls, when: Conditions, base: str) -> _When:
        amounts = when.basket_amount
        return cls(
            when.valid_from, when.valid_until, _per_currency(amounts.min if amounts else None, base),
            _per_currency(amounts.max if amounts else None, base),
            _products(when.skus), _products(when.categories), _names(when.channel), _names(when.role),
            _names(when.tier), _names(when.segment), when.first_order, when.not_previously_granted,
            needs_customer=(when.role is not None or when.tier is not None or when.segment is not None
                            or when.first_order is not None or when.not_previously_granted),
        )

    def holds(self, rule_id: str, state: _Basket, customer: CustomerFacts | None, now: datetime) -> bool:
        if self.needs_customer:
            if customer is None:
                return False
            if self.role is not None and customer.role not in self.role:
                return False
            if self.tier is not None and customer.tier not in self.tier:
                return False
            if self.segment is not None and customer.segments.isdisjoint(self.segment):
                return False
            # A guest's history is unknown (above): neither "first order" nor "returning" can be claimed.
            if self.first_order is not None and customer.ordered_before == self.first_order:
                return False
            if self.not_previously_granted and rule_id in customer.granted_rules:
                return False
        if self.valid_from is not None and now < self.valid_from:
            return False
        if self.valid_until is not None and now >= self.valid_until:
            return False
        if self.channel is not None and state.view.channel not in self.channel:
            return False
        if self.amount_min is not None:
            low = self.amount_min.get(state.currency)
            if low is None or state.subtotal < low:
                return False
        if self.amount_max is not None:
            high = self.amount_max.get(state.currency)
            if high is None or state.subtotal > high:
                return False
        if self.skus is not None and not _products_hold(self.skus, state.qty_sku):
            return False
        return self.categories is None or _products_hold(self.categories, state.qty_cat)


def conditions_hold(when: Conditions, rule_id: str, state: _Basket, customer: CustomerFacts | None,
                    now: datetime) -> bool:
    return _When.of(when, state.base).holds(rule_id, state, customer, now)


def _targets(state: _Basket, skus: frozenset[str], categories: frozenset[str]) -> Sequence[Line]:
    if not skus and not categories:
        return state.view.lines
    found: set[int] = set()
    for sku in skus:
        found.update(state.at_sku.get(sku, ()))
    for category in categories:
        found.update(state.at_category.get(category, ()))
    lines = state.view.lines
    return [lines[position] for position in sorted(found)]


def _money(amount: Decimal, currency: str) -> Money:
    # Amounts computed here come from validated Money in an accepted currency: quantized like any
    # Money, without a pydantic validation run per discount (most of an evaluation's cost).
    return Money._exact(amount, currency)


_M = TypeVar("_M", Discount, Message, Earn, Evaluation, Money)
_DISCOUNT_FIELDS: dict[str, object] = dict.fromkeys(Discount.model_fields)
_MESSAGE_FIELDS: dict[str, object] = dict.fromkeys(Message.model_fields)
_EARN_FIELDS: dict[str, object] = dict.fromkeys(Earn.model_fields)
# Defaults of the fields to_evaluation leaves out (immutable: no field has a default factory).
_EVALUATION_FIELDS: dict[str, object] = {name: None if info.is_required() else info.get_default()
                                         for name, info in Evaluation.model_fields.items()}


def _instance(cls: type[_M], data: dict[str, object], given: set[str]) -> _M:
    # The same instance pydantic would build from data this module made from the validated program
    # (every field, in declaration order; the given ones marked set): no validation run.
    return built(cls, data, given)


def _rounded_money(amount: Decimal, currency: str) -> Money:
    # ``amount`` came out of quantize() for this currency and is at most a validated line's or
    # basket's amount: the Money its constructor would build, without rounding it a second time.
    return _instance(Money, {"amount": amount, "currency": currency}, {"amount", "currency"})


def _built(cls: type[_M], fields: dict[str, object], values: dict[str, object]) -> _M:
    data = dict(fields)
    data.update(values)
    return _instance(cls, data, set(values))


def _discount(**values: object) -> Discount:
    # Every discount here is positive with a line id exactly when it targets a line (the model's
    # own checks); ``percent`` still goes through the model's coercion.
    percent = values.get("percent")
    if percent is not None:
        try:
            values["percent"] = to_decimal(percent)
        except ValueError:
            return Discount(**values)  # refused as the model refuses it
    return _built(Discount, _DISCOUNT_FIELDS, values)


def _message(text: str, kind: str) -> Message:
    return _built(Message, _MESSAGE_FIELDS, {"text": text, "kind": kind})


def _take_line(state: _Basket, line_id: str, wanted: Decimal) -> Decimal:
    # Capped by the line and by the order: earlier order discounts already spoke for part of it.
    # (Comparisons rather than min(): the same first-of-equals choice, without the call.)
    taken = quantize(wanted, state.currency)
    left = state.net[line_id]
    if taken > left:
        taken = left
    remaining = state.lines_total - state.order_discount
    if taken > remaining:
        taken = remaining
    if taken > 0:
        state.net[line_id] = left - taken
        state.lines_total -= taken
    return taken


def _take_order(state: _Basket, wanted: Decimal) -> Decimal:
    taken = quantize(wanted, state.currency)
    remaining = state.lines_total - state.order_discount
    if taken > remaining:
        taken = remaining
    if taken > 0:
        state.order_discount += taken
        return taken
    return ZERO


# The Discount fields each kind of action gives (the rest keep their defaults), as the handlers
# gave them to the model before: ``model_dump(exclude_unset=True)`` is unchanged.
_GIVES: dict[type, tuple[DiscountTarget, tuple[str, ...]]] = {
    PercentOffOrder: (DiscountTarget.ORDER, ("target", "amount", "percent", "engine_id", "label")),
    FixedOffOrder: (DiscountTarget.ORDER, ("target", "amount", "engine_id", "label")),
    PercentOffLine: (DiscountTarget.LINE, ("target", "amount", "line_id", "percent", "engine_id", "label")),
    FixedOffLine: (DiscountTarget.LINE, ("target", "amount", "line_id", "percent", "engine_id", "label")),
    SpecialPrice: (DiscountTarget.LINE, ("target", "amount", "line_id", "engine_id", "label")),
}


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _Step:
    """One action ready to run: its handler, the SKUs and categories it targets, and the fixed part
    of the Discount it gives (target, percent coerced as the model coerces it, rule id and label)."""

    run: Callable[[_Step, _Rule, _Basket, Quote], None]
    action: Action
    skus: frozenset[str]
    categories: frozenset[str]
    template: dict[str, object]
    gives: frozenset[str]
    checked: bool  # False: the percent is one the Discount model refuses (it raises when used)
    message: Message | None  # a message action's (frozen) Message, built once
    bonus: tuple[str, int] | None  # a bonus action's (label, points)
    amounts: dict[str, Decimal] | None  # a fixed amount's or special price's table, resolved per currency

    @classmethod
    def of(cls, action: Action, rule_id: str, label: str, base: str) -> _Step:
        target, gives = _GIVES.get(type(action), (DiscountTarget.ORDER, ()))
        template = dict(_DISCOUNT_FIELDS)
        template.update(target=target, engine_id=rule_id, label=label)
        percent = getattr(action, "percent", None)
        checked = True
        if percent is not None:
            try:
                template["percent"] = to_decimal(percent)
            except ValueError:
                template["percent"], checked = percent, False
        message = _message(action.text, "promotion") if isinstance(action, ShowMessage) else None
        bonus = (label, action.points) if isinstance(action, BonusPoints) else None
        amounts = action.price if isinstance(action, SpecialPrice) else getattr(action, "amount", None)
        return cls(_HANDLERS[type(action)], action, frozenset(getattr(action, "skus", ())),
                   frozenset(getattr(action, "categories", ())), template, frozenset(gives), checked, message, bonus,
                   _per_currency(amounts, base))

    def discount(self, taken: Decimal, currency: str, line_id: str | None = None) -> Discount:
        data = self.template.copy()
        data["amount"] = _rounded_money(taken, currency)
        data["line_id"] = line_id
        if not self.checked:
            return Discount(**{name: data[name] for name in self.gives})  # refused as the model refuses it
        return _instance(Discount, data, set(self.gives))


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _Rule:
    """A rule ready to run: conditions as sets, actions as steps."""

    id: str
    label: str
    stop: bool
    when: _When
    then: tuple[_Step, ...]

    @classmethod
    def of(cls, rule: Rule, base: str) -> _Rule:
        label = rule.label or rule.id
        return cls(rule.id, label, rule.stop, _When.of(rule.when, base),
                   tuple(_Step.of(action, rule.id, label, base) for action in rule.then))


def _percent_off_order(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    action = cast(PercentOffOrder, step.action)
    taken = _take_order(state, state.remaining() * action.percent / HUNDRED)
    if taken > 0:
        quote.discounts.append(step.discount(taken, state.currency))


def _fixed_off_order(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    value = cast(dict[str, Decimal], step.amounts).get(state.currency)
    taken = _take_order(state, value) if value is not None else ZERO
    if taken > 0:
        quote.discounts.append(step.discount(taken, state.currency))


def _percent_off_line(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    value = cast(PercentOffLine, step.action).percent
    net = state.net
    currency = state.currency
    for line in _targets(state, step.skus, step.categories):
        taken = _take_line(state, line.id, net[line.id] * value / HUNDRED)
        if taken > 0:
            quote.discounts.append(step.discount(taken, currency, line.id))


def _fixed_off_line(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    value = cast(dict[str, Decimal], step.amounts).get(state.currency)
    if value is None:
        return
    for line in _targets(state, step.skus, step.categories):
        taken = _take_line(state, line.id, value * line.quantity)
        if taken > 0:
            quote.discounts.append(step.discount(taken, state.currency, line.id))


def _special_price(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    action = cast(SpecialPrice, step.action)
    price = cast(dict[str, Decimal], step.amounts).get(state.currency)
    if price is None:
        return
    lines = state.view.lines
    for line in (lines[position] for position in state.at_sku.get(action.sku, ())):
        if line.unit_price.amount > price:
            taken = _take_line(state, line.id, (line.unit_price.amount - price) * line.quantity)
            if taken > 0:
                quote.discounts.append(step.discount(taken, state.currency, line.id))


def _free_gift(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    action = cast(FreeGift, step.action)
    quote.free_items.append(FreeItem(sku=action.sku, quantity=action.quantity,
                                     label=action.name or rule.label, engine_id=rule.id))


def _free_shipping(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    # Only the flag: the core's Evaluation.total and Order.from_evaluation count every discount
    # against the goods, so a shipping-target discount would also be taken off the lines.
    quote.free_shipping = True
    quote.free_shipping_by.append(rule.label)


def _bonus_points(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    quote.bonus.append(cast(tuple[str, int], step.bonus))


def _show_message(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    quote.messages.append(cast(Message, step.message))


def _issue_offer(step: _Step, rule: _Rule, state: _Basket, quote: Quote) -> None:
    quote.issued.append((rule.id, cast(IssueOffer, step.action).offer))


_HANDLERS: dict[type, Callable[[_Step, _Rule, _Basket, Quote], None]] = {
    PercentOffOrder: _percent_off_order,
    FixedOffOrder: _fixed_off_order,
    PercentOffLine: _percent_off_line,
    FixedOffLine: _fixed_off_line,
    SpecialPrice: _special_price,
    FreeGift: _free_gift,
    FreeShipping: _free_shipping,
    BonusPoints: _bonus_points,
    ShowMessage: _show_message,
    IssueOffer: _issue_offer,
}


# ---------------------------------------------------------------------------------------------
# Vouchers
# ---------------------------------------------------------------------------------------------


def voucher_problem(voucher: VoucherFacts, customer_id: str | None, view: BasketView | None,
                    now: datetime, base: str) -> VoucherError | None:
    """Why ``voucher`` cannot be used now by this customer on this basket (None: it can)."""
    definition = voucher.definition
    code = definition.code
    if definition.valid_from is not None and now < definition.valid_from:
        return VoucherConditionsNotMetError(f"voucher {code} is not valid before {definition.valid_from:%Y-%m-%d}")
    if definition.valid_until is not None and now >= definition.valid_until:
        return VoucherExpiredError(f"voucher {code} expired on {definition.valid_until:%Y-%m-%d}")
    if definition.owner is not None and definition.owner != customer_id:
        return VoucherNotOwnedError(f"voucher {code} belongs to another customer")
    if not voucher.held and definition.usage_limit is not None and voucher.uses >= definition.usage_limit:
        if definition.usage_limit == 1:
            return VoucherAlreadyRedeemedError(f"voucher {code} has already been redeemed")
        return UsageLimitReachedError(f"voucher {code} reached its limit of {definition.usage_limit} uses")
    if view is not None:
        if definition.min_basket is not None:
            minimum = amount_in(definition.min_basket, view.currency, base)
            subtotal = sum((line.unit_price.amount * line.quantity for line in view.lines), ZERO)
            if minimum is None:
                return VoucherConditionsNotMetError(f"voucher {code} is not valid in {view.currency}")
            if subtotal < minimum:
                return VoucherConditionsNotMetError(f"voucher {code} needs a basket of at least {minimum} {view.currency}")
        if definition.kind in ("fixed", "item") and amount_in(definition.amount, view.currency, base) is None:
            return VoucherConditionsNotMetError(f"voucher {code} is not valid in {view.currency}")
        if definition.kind == "item" and not any(line.sku == definition.sku for line in view.lines):
            return VoucherConditionsNotMetError(f"voucher {code} needs {definition.sku} in the basket")
    return None


def _apply_voucher(definition: VoucherDef, state: _Basket, quote: Quote) -> None:
    code = definition.code
    label = definition.label or code
    currency = state.currency
    if definition.kind == "percent":
        if definition.percent is None:
            raise AssertionError("definition.percent is set here")
        taken = _take_order(state, state.remaining() * definition.percent / HUNDRED)
        if taken > 0:
            quote.discounts.append(_discount(target=DiscountTarget.ORDER, amount=_money(taken, currency),
                                            percent=definition.percent, engine_id=code, label=label, code=code))
    elif definition.kind == "fixed":
        taken = _take_order(state, state.amount(definition.amount) or ZERO)
        if taken > 0:
            quote.discounts.append(_discount(target=DiscountTarget.ORDER, amount=_money(taken, currency),
                                            engine_id=code, label=label, code=code))
    else:
        per_unit = state.amount(definition.amount) or ZERO
        for line in state.view.lines:
            if line.sku == definition.sku:
                taken = _take_line(state, line.id, per_unit * line.quantity)
                if taken > 0:
                    quote.discounts.append(_discount(target=DiscountTarget.LINE, amount=_money(taken, currency),
                                                    line_id=line.id, engine_id=code, label=label, code=code))


# ---------------------------------------------------------------------------------------------
# Earning
# ---------------------------------------------------------------------------------------------


def _line_points(compiled: CompiledProgram, line: Line, paid: Decimal) -> Decimal:
    if line.unit_price.amount == 0 and line.sku in compiled.catalog_price:
        return ZERO  # bought with points (sent at 0.00): earns nothing
    product = compiled.sku_earn.get(line.sku)
    if product is not None:
        if product.points is not None:
            return product.points * line.quantity
        if product.per_currency_unit is not None:
            return product.per_currency_unit * paid
    category = compiled.category_earn.get(line.category) if line.category is not None else None
    if category is not None:
        if category.points is not None:
            return category.points * line.quantity
        if category.per_currency_unit is not None:
            return category.per_currency_unit * paid
    return compiled.program.points.per_currency_unit * paid


def whole_points(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def _earn(compiled: CompiledProgram, state: _Basket, customer: CustomerFacts | None, quote: Quote) -> None:
    program = compiled.program
    lines_total = state.lines_total
    # Order-level discounts are spread over the lines in proportion to what is left on each.
    factor = max(lines_total - state.order_discount, ZERO) / lines_total if lines_total > 0 else ZERO
    points = ZERO
    paid_total = ZERO
    net, line_paid = state.net, quote.line_paid
    # _line_points, with the lookups it needs bound once (the same terms, summed in the same order).
    catalog_price, sku_earn, category_earn = compiled.catalog_price, compiled.sku_earn, compiled.category_earn
    rate = program.points.per_currency_unit
    for line in state.view.lines:
        line_id = line.id
        paid = net[line_id] * factor
        line_paid[line_id] = paid
        paid_total += paid
        sku = line.sku
        if sku in sku_earn or sku in catalog_price or line.category in category_earn:
            points += _line_points(compiled, line, paid)
        else:
            points += rate * paid
    if customer is None:
        return  # guests earn nothing: there is no account to credit
    multiplier = compiled.tier_multiplier.get(customer.tier, Decimal(1)) if customer.tier else Decimal(1)
    quote.points_earned = whole_points(points * multiplier)
    cashback = program.cashback
    if cashback.earn_percent > 0:
        minimum = state.amount(cashback.earn_min_order)
        if cashback.earn_min_order is not None and (minimum is None or paid_total < minimum):
            return
        earned = quantize(paid_total * cashback.earn_percent / HUNDRED, state.currency)
        cap = state.amount(cashback.earn_max_per_order)
        if cap is not None:
            earned = min(earned, cap)
        quote.cashback_earned = max(earned, ZERO)


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def quote(compiled: CompiledProgram, view: BasketView, customer: CustomerFacts | None,
          vouchers: dict[str, VoucherFacts], now: datetime) -> Quote:
    """Evaluate rules, then codes, then earning, for one basket (or order)."""
    program = compiled.program
    state = _Basket(view, program.currency)
    result = Quote(currency=view.currency, subtotal=state.subtotal)
    first_only = program.promotions.hit_policy == "first"
    ready = compiled.compiled
    for position in compiled.candidates(state.qty_sku.keys(), state.qty_cat.keys(), customer, view.channel):
        rule = ready[position]
        if not rule.when.holds(rule.id, state, customer, now):
            continue
        result.applied_rules.append(rule.id)
        for step in rule.then:
            step.run(step, rule, state, result)
        if rule.stop or first_only:
            break
    customer_id = customer.id if customer else None
    for code in view.codes:
        voucher = vouchers.get(code)
        if voucher is None:
            result.codes.append(CodeResult(code=code, status=CodeStatus.REJECTED, reason="voucher_not_found",
                                           message=f"no voucher or promo code {code}"))
            continue
        problem = voucher_problem(voucher, customer_id, view, now, program.currency)
        if problem is not None:
            result.codes.append(CodeResult(code=code, status=CodeStatus.REJECTED, reason=problem.code,
                                           message=problem.message))
            continue
        _apply_voucher(voucher.definition, state, result)
        result.accepted_codes.append(code)
        result.codes.append(CodeResult(code=code, status=CodeStatus.ACCEPTED,
                                       message=voucher.definition.label))
    _earn(compiled, state, customer, result)
    return result


_OFFER_KIND = {
    "percent_off_check": OfferKind.PERCENT_OFF_CHECK,
    "fixed_off_check": OfferKind.FIXED_OFF_CHECK,
    "fixed_off_item": OfferKind.FIXED_OFF_ITEM,
}


def points_value(program: Program, points: Decimal, currency: str) -> Money | None:
    """What ``points`` pay when spent, at the program's ``points.spend_value`` (None without one)."""
    rate = amount_in(program.points.spend_value, currency, program.currency)
    return _money(points * rate, currency) if rate is not None else None


def to_evaluation(compiled: CompiledProgram, view: BasketView, customer: CustomerFacts | None,
                  result: Quote, wallet: Iterable[VoucherFacts], now: datetime) -> Evaluation:
    currency = view.currency
    base = compiled.program.currency
    earn: list[Earn] = []
    spendable: tuple[Balance, ...] = ()
    offers: list[Offer] = []
    catalog: list[CatalogItem] = []
    if customer is not None:
        earn.append(Earn(kind=BalanceKind.POINTS, points=Decimal(result.points_earned),
                         label=compiled.program.points.name))
        # One entry per bonus (hundreds with many rules): built once per program from whole points and
        # rule labels the program file already validated (frozen models, so safely shared).
        made = compiled.bonus_earn
        for bonus in result.bonus:
            bonus_earn = made.get(bonus)
            if bonus_earn is None:
                label, points = bonus
                bonus_earn = made.setdefault(bonus, _built(Earn, _EARN_FIELDS, {
                    "kind": BalanceKind.POINTS, "points": Decimal(points), "label": label}))
            earn.append(bonus_earn)
        if result.cashback_earned > 0:
            earn.append(Earn(kind=BalanceKind.CASHBACK, money=_money(result.cashback_earned, currency), label="cashback"))
        spendable = (
            Balance(kind=BalanceKind.POINTS, name=compiled.program.points.name, points=Decimal(customer.points),
                    value=points_value(compiled.program, Decimal(customer.points), currency)),
            Balance(kind=BalanceKind.CASHBACK, name="cashback", money=_money(customer.cashback, currency)),
        )
        for voucher in wallet:
            definition = voucher.definition
            amount = amount_in(definition.amount, currency, base)
            offers.append(Offer(
                id=definition.code, kind=_OFFER_KIND.get(voucher.offer_kind or "", OfferKind.OTHER),
                label=definition.label, percent=definition.percent,
                amount=_money(amount, currency) if amount is not None else None, sku=definition.sku,
                code=definition.code, expires_at=definition.valid_until,
                applicable=voucher_problem(voucher, customer.id, view, now, base) is None,
            ))
    for entry in compiled.program.catalog:
        catalog.append(CatalogItem(sku=entry.sku, name=entry.name, points_price=Decimal(entry.points_price),
                                   affordable=customer is not None and customer.points >= entry.points_price))
    # Every part is already a typed, validated instance in ``currency`` (the model's own checks): the
    # Evaluation around them is built as its validation would build it, without re-walking them.
    return _built(Evaluation, _EVALUATION_FIELDS, dict(
        engine=ENGINE,
        basket_id=view.id,
        currency=currency,
        customer_id=customer.id if customer else None,
        subtotal=_money(result.subtotal, currency),
        discounts=tuple(result.discounts),
        free_items=tuple(result.free_items),
        earn=tuple(earn),
        spendable=spendable,
        wallet=tuple(offers),
        codes=tuple(result.codes),
        messages=tuple(result.messages),
        catalog=tuple(catalog),
        free_shipping=result.free_shipping,
    ))


def price_product(compiled: CompiledProgram, line: Line, currency: str, customer: CustomerFacts | None,
                  channel: str | None, now: datetime) -> ProductPrice:
    """Price one product as if bought alone: line-level rule discounts and the points it earns."""
    view = BasketView(id=f"product:{line.sku}", currency=currency, lines=(line,),
                      customer_id=customer.id if customer else None, channel=channel)
    result = quote(compiled, view, customer, {}, now)
    line_discount = sum((d.amount.amount for d in result.discounts if d.target is DiscountTarget.LINE), ZERO)
    quantity = line.quantity
    unit_discount = quantize(line_discount / quantity, currency) if quantity else ZERO
    discounted = max(line.unit_price.amount - unit_discount, ZERO)
    points = ZERO
    if customer is not None:
        multiplier = compiled.tier_multiplier.get(customer.tier, Decimal(1)) if customer.tier else Decimal(1)
        per_unit_paid = discounted
        points = Decimal(whole_points(_line_points(compiled, line.model_copy(update={"quantity": Decimal(1)}),
                                                   per_unit_paid) * multiplier))
    labels = tuple(dict.fromkeys(d.label for d in result.discounts if d.target is DiscountTarget.LINE and d.label))
    price = compiled.catalog_price.get(line.sku)
    return ProductPrice(
        sku=line.sku,
        price=line.unit_price,
        discounted_price=_money(discounted, currency),
        points_to_earn=points,
        points_price=Decimal(price) if price is not None else None,
        labels=labels,
    )


def split_points(total: int, fraction: Decimal) -> int:
    """Whole points for a share of ``total`` (half up), never more than ``total``."""
    return min(total, math.floor(Decimal(total) * fraction + Decimal("0.5")))
