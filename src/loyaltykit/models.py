"""The kit's data model: what a shop sends and what every adapter returns (pydantic v2, frozen).

Limits (each violation is an error naming the field; no engine is called):

=====================  ======================================================
lines per basket/order  1 .. ``MAX_LINES`` (500)
quantity                > 0 and <= ``MAX_QUANTITY`` (10 000); Decimal, so weighed goods work
unit price              >= 0, finite, <= ``money.MAX_AMOUNT``
coupon codes            <= ``MAX_CODES`` (20), unique, 1..64 printable characters
ids, SKUs, references   1..128 printable characters, no control characters
orders per export       1 .. ``MAX_EXPORT_BATCH`` (500)
attributes per line     <= 32, keys and values <= 128 characters
=====================  ======================================================
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from .money import MAX_AMOUNT, Money, is_currency, to_decimal, total

MAX_LINES = 500
MAX_QUANTITY = Decimal(10_000)
MAX_CODES = 20
MAX_EXPORT_BATCH = 500
MAX_ATTRIBUTES = 32
MAX_POINTS = Decimal(10) ** 12

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Ident = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), AfterValidator(_printable)
]
Code = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(_printable)
]
Label = Annotated[str, StringConstraints(max_length=500)]


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not is_currency(value):
        raise ValueError(f"unknown ISO 4217 currency {value!r}")
    return value


Currency = Annotated[str, AfterValidator(_currency)]


def _points(value: Any) -> Decimal:
    result = to_decimal(value)
    if abs(result) > MAX_POINTS:
        raise ValueError(f"points exceed the kit's limit of {MAX_POINTS}")
    return result


Points = Annotated[Decimal, Field(ge=0), AfterValidator(_points)]


class KitModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        # Decimal fields would accept a float silently; refuse it so money never passes through float.
        if isinstance(value, float):
            raise ValueError("floats are not accepted; use Decimal, int or str")
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # JSON keeps UTC offsets to the minute only; historical zones (LMT) have seconds in theirs.
    # Storing aware timestamps in UTC keeps the instant exact through a JSON round trip.
    return value.astimezone(UTC) if value.tzinfo is not None else value


Timestamp = Annotated[datetime, AfterValidator(_utc)]


# ---------------------------------------------------------------------------------------------
# Customers
# ---------------------------------------------------------------------------------------------


class IdentifierKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    MEMBERSHIP = "membership"
    EXTERNAL_ID = "external_id"


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_CARD = re.compile(r"^[0-9A-Za-z]{4,32}$")


class CustomerIdentifier(KitModel):
    """How the shop knows the customer. ``value`` is kept out of repr and logs."""

    kind: IdentifierKind
    value: str = Field(repr=False, max_length=254)

    @model_validator(mode="after")
    def _check(self) -> CustomerIdentifier:
        value = self.value.strip()
        if not value:
            raise ValueError("value must not be empty")
        if self.kind is IdentifierKind.EMAIL:
            value = value.lower()
            if not _EMAIL.match(value):
                raise ValueError("value is not an e-mail address")
        elif self.kind is IdentifierKind.PHONE:
            value = re.sub(r"[\s().-]", "", value)
            if not _PHONE.match(value):
                raise ValueError("value is not a phone number (digits, optional leading +, 6-15 digits)")
        elif self.kind is IdentifierKind.CARD:
            value = value.replace(" ", "")
            if not _CARD.match(value):
                raise ValueError("value is not a card number (4-32 letters or digits)")
        else:
            _printable(value)
            if len(value) > 128:
                raise ValueError("value is longer than 128 characters")
        object.__setattr__(self, "value", value)
        return self

    @classmethod
    def email(cls, value: str) -> CustomerIdentifier:
        return cls(kind=IdentifierKind.EMAIL, value=value)

    @classmethod
    def phone(cls, value: str) -> CustomerIdentifier:
        return cls(kind=IdentifierKind.PHONE, value=value)

    @classmethod
    def card(cls, value: str) -> CustomerIdentifier:
        return cls(kind=IdentifierKind.CARD, value=value)

    @classmethod
    def membership(cls, value: str) -> CustomerIdentifier:
        return cls(kind=IdentifierKind.MEMBERSHIP, value=value)

    @classmethod
    def external_id(cls, value: str) -> CustomerIdentifier:
        return cls(kind=IdentifierKind.EXTERNAL_ID, value=value)


class BalanceKind(StrEnum):
    POINTS = "points"
    CASHBACK = "cashback"


class Balance(KitModel):
    """A spendable balance: points (a count) or cashback (money)."""

    kind: BalanceKind
    name: str = "points"
    points: Points | None = None
    money: Money | None = None

    @model_validator(mode="after")
    def _shape(self) -> Balance:
        if self.kind is BalanceKind.POINTS and (self.points is None or self.money is not None):
            raise ValueError("a points balance carries points, not money")
        if self.kind is BalanceKind.CASHBACK and (self.money is None or self.points is not None):
            raise ValueError("a cashback balance carries money, not points")
        return self


class Customer(KitModel):
    """A loyalty member as the engine knows them. ``id`` is what the adapter addresses them by."""

    id: Ident
    membership_number: str | None = Field(default=None, repr=False)
    tier: str | None = None
    status: str | None = None
    segments: tuple[str, ...] = ()
    balances: tuple[Balance, ...] = ()
    email: str | None = Field(default=None, repr=False)
    display_name: str | None = Field(default=None, repr=False)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    def balance(self, kind: BalanceKind | str) -> Balance | None:
        kind = BalanceKind(kind)
        return next((b for b in self.balances if b.kind is kind), None)

    @property
    def points(self) -> Decimal:
        found = self.balance(BalanceKind.POINTS)
        return found.points if found and found.points is not None else Decimal(0)

    def cashback(self, currency: str) -> Money:
        found = self.balance(BalanceKind.CASHBACK)
        return found.money if found and found.money is not None else Money.zero(currency)


# ---------------------------------------------------------------------------------------------
# Baskets
# ---------------------------------------------------------------------------------------------


class Line(KitModel):
    id: Ident
    sku: Ident
    quantity: Annotated[Decimal, Field(gt=0, le=MAX_QUANTITY)]
    unit_price: Money
    category: Ident | None = None
    name: Label | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("quantity", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Decimal:
        return to_decimal(value)

    @field_validator("unit_price")
    @classmethod
    def _price(cls, value: Money) -> Money:
        if value.amount < 0:
            raise ValueError("unit price must not be negative")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
        for key, item in value.items():
            if not key or len(key) > 128 or len(item) > 128:
                raise ValueError("attribute keys and values are 1..128 characters")
        return value

    @property
    def subtotal(self) -> Money:
        cached = self.__dict__.get("_subtotal_of")
        if cached is None or cached[0] is not self.unit_price or cached[1] is not self.quantity:
            cached = (self.unit_price, self.quantity, self.unit_price * self.quantity)
            self.__dict__["_subtotal_of"] = cached
        return cached[2]


def _lines_subtotal(model: Basket | Order) -> Money:
    """Sum of the line subtotals, computed once per tuple of lines rather than on every read.

    Kept beside the fields, keyed on the very objects it was computed from, so that a copy with
    other lines (``model_copy(update=...)``) recomputes instead of reading a stale sum; pydantic
    compares, hashes and dumps fields only.
    """
    cached = model.__dict__.get("_subtotal_of")
    if cached is None or cached[0] is not model.lines:
        cached = (model.lines, total([line.subtotal for line in model.lines], model.currency))
        model.__dict__["_subtotal_of"] = cached
    return cached[1]


def _check_lines(lines: Iterable[Line], currency: str) -> None:
    seen: set[str] = set()
    subtotal = Decimal(0)
    for index, line in enumerate(lines):
        if line.unit_price.currency != currency:
            raise ValueError(
                f"lines.{index}.unit_price: currency {line.unit_price.currency} differs from {currency}"
            )
        if line.id in seen:
            raise ValueError(f"lines.{index}.id: duplicate line id")
        seen.add(line.id)
        # Each line is within limits, yet together they may not be: refuse here rather than let
        # ``subtotal`` (and every quote built on it) fail later on an accepted basket.
        subtotal += line.unit_price.amount * line.quantity
        if subtotal > MAX_AMOUNT:
            raise ValueError(f"lines: the subtotal exceeds the kit's limit of {MAX_AMOUNT}")


class Basket(KitModel):
    """What the shopper is about to buy. Evaluating it has no side effect."""

    id: Ident
    currency: Currency
    lines: Annotated[tuple[Line, ...], Field(min_length=1, max_length=MAX_LINES)]
    customer_id: Ident | None = None
    shipping: Money | None = None
    channel: Ident | None = None
    store_id: Ident | None = None
    coupon_codes: Annotated[tuple[Code, ...], Field(max_length=MAX_CODES)] = ()
    created_at: Timestamp | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Basket:
        _check_lines(self.lines, self.currency)
        if self.shipping is not None:
            if self.shipping.currency != self.currency:
                raise ValueError(f"shipping: currency {self.shipping.currency} differs from {self.currency}")
            if self.shipping.amount < 0:
                raise ValueError("shipping: must not be negative")
        if len(set(self.coupon_codes)) != len(self.coupon_codes):
            raise ValueError("coupon_codes: duplicate code")
        return self

    @property
    def subtotal(self) -> Money:
        return _lines_subtotal(self)

    def line(self, line_id: str) -> Line:
        for line in self.lines:
            if line.id == line_id:
                return line
        raise KeyError(line_id)


class ProductQuery(KitModel):
    """Products shown on a listing or product page, to be priced for one customer (no side effect)."""

    currency: Currency
    products: Annotated[tuple[Line, ...], Field(min_length=1, max_length=MAX_LINES)]
    customer_id: Ident | None = None
    channel: Ident | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ProductQuery:
        _check_lines(self.products, self.currency)
        return self


class ProductPrice(KitModel):
    sku: str
    price: Money
    discounted_price: Money
    points_to_earn: Points = Decimal(0)
    points_price: Points | None = None
    labels: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Evaluation (a quote)
# ---------------------------------------------------------------------------------------------


class DiscountTarget(StrEnum):
    ORDER = "order"
    LINE = "line"
    SHIPPING = "shipping"


class Discount(KitModel):
    target: DiscountTarget
    amount: Money
    line_id: str | None = None
    percent: Decimal | None = None  # metadata only; ``amount`` is authoritative
    engine_id: str | None = None
    label: str | None = None
    code: str | None = None  # the coupon code that produced it, if any

    @model_validator(mode="after")
    def _shape(self) -> Discount:
        if self.amount.amount < 0:
            raise ValueError("amount: a discount is not negative")
        if (self.target is DiscountTarget.LINE) != (self.line_id is not None):
            raise ValueError("line_id: required for line discounts and only for them")
        return self


class FreeItem(KitModel):
    sku: str
    quantity: Decimal = Decimal(1)
    label: str | None = None
    engine_id: str | None = None


class Earn(KitModel):
    """Points or cashback the order would earn."""

    kind: BalanceKind
    points: Points | None = None
    money: Money | None = None
    label: str | None = None


class OfferKind(StrEnum):
    PERCENT_OFF_CHECK = "percent_off_check"
    FIXED_OFF_CHECK = "fixed_off_check"
    FIXED_OFF_ITEM = "fixed_off_item"
    OTHER = "other"


class Offer(KitModel):
    """An offer in the customer's wallet."""

    id: str
    kind: OfferKind
    label: str | None = None
    percent: Decimal | None = None
    amount: Money | None = None
    sku: str | None = None
    code: str | None = None
    expires_at: Timestamp | None = None
    applicable: bool = True


class CodeStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class CodeResult(KitModel):
    code: str
    status: CodeStatus
    reason: str | None = None  # an error code from loyaltykit.errors when rejected
    message: str | None = None


class Message(KitModel):
    text: str
    kind: Literal["info", "promotion", "warning"] = "info"


class CatalogItem(KitModel):
    """A product that can be bought with points only (points-only catalog)."""

    sku: str
    name: str | None = None
    points_price: Points
    affordable: bool = True


class UnmappedEffect(KitModel):
    """An engine effect the adapter could not map, kept raw so nothing is silently dropped."""

    type: str
    raw: dict[str, Any]


class Evaluation(KitModel):
    """The engine's quote for a basket. No side effect was applied to produce it."""

    engine: str
    basket_id: str
    currency: Currency
    customer_id: str | None = None
    subtotal: Money
    discounts: tuple[Discount, ...] = ()
    free_items: tuple[FreeItem, ...] = ()
    earn: tuple[Earn, ...] = ()
    spendable: tuple[Balance, ...] = ()
    wallet: tuple[Offer, ...] = ()
    codes: tuple[CodeResult, ...] = ()
    messages: tuple[Message, ...] = ()
    catalog: tuple[CatalogItem, ...] = ()
    unmapped: tuple[UnmappedEffect, ...] = ()
    free_shipping: bool = False
    degraded: bool = False
    degraded_reason: str | None = None

    @model_validator(mode="after")
    def _currencies(self) -> Evaluation:
        for index, discount in enumerate(self.discounts):
            if discount.amount.currency != self.currency:
                raise ValueError(f"discounts.{index}.amount: currency differs from {self.currency}")
        return self

    @property
    def discount_total(self) -> Money:
        """Discounts on the goods (order and line); shipping discounts are apart, see below."""
        return total([d.amount for d in self.discounts if d.target is not DiscountTarget.SHIPPING], self.currency)

    @property
    def shipping_discount_total(self) -> Money:
        return total([d.amount for d in self.discounts if d.target is DiscountTarget.SHIPPING], self.currency)

    @property
    def total(self) -> Money:
        """Subtotal less goods discounts, never below zero (shipping excluded)."""
        return (self.subtotal - self.discount_total).max(Money.zero(self.currency))

    def shipping_due(self, shipping: Money | None) -> Money:
        """What the shopper pays for shipping: waived by ``free_shipping``, reduced by shipping discounts."""
        if shipping is None or self.free_shipping:
            return Money.zero(self.currency)
        return (shipping - self.shipping_discount_total).max(Money.zero(self.currency))

    @property
    def points_to_earn(self) -> Decimal:
        return sum((e.points or Decimal(0) for e in self.earn if e.kind is BalanceKind.POINTS), Decimal(0))

    @classmethod
    def degraded_for(cls, basket: Basket, engine: str, reason: str) -> Evaluation:
        """The fail-open quote: full price, nothing applied, ``degraded`` with the reason."""
        return cls(
            engine=engine,
            basket_id=basket.id,
            currency=basket.currency,
            customer_id=basket.customer_id,
            subtotal=basket.subtotal,
            codes=tuple(
                CodeResult(code=c, status=CodeStatus.REJECTED, reason="engine_unavailable")
                for c in basket.coupon_codes
            ),
            degraded=True,
            degraded_reason=reason,
        )


# ---------------------------------------------------------------------------------------------
# Writes: redemption, spend, order export, reversal
# ---------------------------------------------------------------------------------------------


def derive_key(*parts: str) -> str:
    """Default idempotency key: stable fields joined; hashed when too long for engines' fields."""
    key = ":".join(parts)
    if len(key) <= 100:
        return key
    return f"{parts[0][:40]}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@/+=-]+$")
]


class Receipt(KitModel):
    """What a write did on the engine: its reference there, so it can be reversed or reconciled."""

    operation: str
    engine: str
    idempotency_key: str
    engine_ref: str | None = None
    code: str | None = None  # voucher code, for redemptions
    amount: Money | None = None
    points: Points | None = None
    replayed: bool = False  # the engine recognised the key and returned the earlier result


class VoucherRedemption(KitModel):
    """Burn (or reserve) a voucher, promo code or wallet offer for an order."""

    code: Code
    order_ref: Ident
    customer_id: Ident | None = None
    basket: Basket | None = None
    idempotency_key: IdempotencyKey | None = None

    @property
    def key(self) -> str:
        return self.idempotency_key or derive_key(self.order_ref, "redeem", self.code)


class RedemptionStatus(StrEnum):
    REDEEMED = "redeemed"
    RESERVED = "reserved"  # held for the order; completed when the order is exported


class RedemptionResult(KitModel):
    code: str
    status: RedemptionStatus
    discount: Money | None = None
    label: str | None = None
    receipt: Receipt


class CashbackSpend(KitModel):
    """Pay part or all of an order with cashback (``amount``) or points (``points``)."""

    customer_id: Ident
    order_ref: Ident
    kind: BalanceKind = BalanceKind.CASHBACK
    amount: Money | None = None
    points: Points | None = None
    idempotency_key: IdempotencyKey | None = None

    @model_validator(mode="after")
    def _shape(self) -> CashbackSpend:
        if self.kind is BalanceKind.CASHBACK:
            if self.amount is None or self.points is not None:
                raise ValueError("amount: a cashback spend carries a money amount (and no points)")
            if self.amount.amount <= 0:
                raise ValueError("amount: must be positive")
        else:
            if self.points is None or self.amount is not None:
                raise ValueError("points: a points spend carries points (and no money amount)")
            if self.points <= 0:
                raise ValueError("points: must be positive")
        return self

    @property
    def key(self) -> str:
        return self.idempotency_key or derive_key(self.order_ref, "spend", self.kind.value)


class SpendResult(KitModel):
    kind: BalanceKind
    amount: Money | None = None
    points: Points | None = None
    remaining: Balance | None = None
    receipt: Receipt


class Order(KitModel):
    """A placed order, as exported to the engine so it records points earned and redemptions."""

    ref: Ident
    currency: Currency
    lines: Annotated[tuple[Line, ...], Field(min_length=1, max_length=MAX_LINES)]
    total: Money  # what the order cost after discounts (cashback spent is a payment within it)
    customer_id: Ident | None = None
    shipping: Money | None = None
    discount_total: Money | None = None
    voucher_codes: Annotated[tuple[Code, ...], Field(max_length=MAX_CODES)] = ()
    receipts: tuple[Receipt, ...] = ()
    placed_at: Timestamp = Field(default_factory=utcnow)
    channel: Ident | None = None
    store_id: Ident | None = None
    idempotency_key: IdempotencyKey | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Order:
        _check_lines(self.lines, self.currency)
        for name in ("total", "shipping", "discount_total"):
            value = getattr(self, name)
            if value is None:
                continue
            if value.currency != self.currency:
                raise ValueError(f"{name}: currency {value.currency} differs from {self.currency}")
            if value.amount < 0:
                raise ValueError(f"{name}: must not be negative")
        return self

    @property
    def subtotal(self) -> Money:
        return _lines_subtotal(self)

    @property
    def key(self) -> str:
        return self.idempotency_key or derive_key(self.ref, "export")

    @classmethod
    def from_evaluation(
        cls,
        ref: str,
        basket: Basket,
        evaluation: Evaluation | None = None,
        receipts: Iterable[Receipt] = (),
        **extra: Any,
    ) -> Order:
        """Build the order a shop places from its basket and the quote it accepted."""
        zero = Money.zero(basket.currency)
        discount = evaluation.discount_total if evaluation else zero
        order_total = (basket.subtotal - discount).max(zero)
        if evaluation is not None:
            order_total = order_total + evaluation.shipping_due(basket.shipping)
        elif basket.shipping is not None:
            order_total = order_total + basket.shipping
        return cls(
            ref=ref,
            currency=basket.currency,
            lines=basket.lines,
            total=order_total,
            customer_id=basket.customer_id,
            shipping=basket.shipping,
            discount_total=discount,
            voucher_codes=basket.coupon_codes,
            receipts=tuple(receipts),
            channel=basket.channel,
            store_id=basket.store_id,
            **extra,
        )


class ExportStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the engine already had it; no second effect
    REJECTED = "rejected"  # the engine refused it; ``reason`` says why; do not resend unchanged
    RETRY_LATER = "retry_later"  # not recorded (or unknown); keep it queued and send again


class OrderExportResult(KitModel):
    order_ref: str
    status: ExportStatus
    reason: str | None = None
    error_code: str | None = None
    engine_ref: str | None = None
    points_earned: Points | None = None


class ExportReport(KitModel):
    engine: str
    results: tuple[OrderExportResult, ...]

    def by_status(self, status: ExportStatus | str) -> list[OrderExportResult]:
        status = ExportStatus(status)
        return [r for r in self.results if r.status is status]

    def status_of(self, order_ref: str) -> ExportStatus:
        for result in self.results:
            if result.order_ref == order_ref:
                return result.status
        raise KeyError(order_ref)


class ReversalKind(StrEnum):
    CANCEL = "cancel"  # the whole order is void (before or after export)
    REFUND = "refund"  # some or all lines came back


class RefundLine(KitModel):
    line_id: Ident
    quantity: Annotated[Decimal, Field(gt=0, le=MAX_QUANTITY)]

    @field_validator("quantity", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Decimal:
        return to_decimal(value)


class Reversal(KitModel):
    """Cancel an order, or refund it fully or partly. ``lines=None`` means every line, fully."""

    order: Order
    kind: ReversalKind
    lines: tuple[RefundLine, ...] | None = None
    reference: Ident = "full"  # the refund document id: two partial refunds need two references
    exported: bool = True  # whether the order was exported before; cancel-before-export voids writes only
    reason: Label | None = None
    idempotency_key: IdempotencyKey | None = None

    @model_validator(mode="after")
    def _lines(self) -> Reversal:
        if self.kind is ReversalKind.CANCEL and self.lines is not None:
            raise ValueError("lines: a cancel reverses the whole order; use a refund for some lines")
        if self.lines is not None:
            if not self.lines:
                raise ValueError("lines: empty; omit it to refund every line")
            seen: set[str] = set()
            for index, refund in enumerate(self.lines):
                try:
                    line = next(l for l in self.order.lines if l.id == refund.line_id)
                except StopIteration:
                    raise ValueError(f"lines.{index}.line_id: not a line of order") from None
                if refund.quantity > line.quantity:
                    raise ValueError(f"lines.{index}.quantity: more than the order line's quantity")
                if refund.line_id in seen:
                    raise ValueError(f"lines.{index}.line_id: duplicate")
                seen.add(refund.line_id)
        return self

    @property
    def key(self) -> str:
        return self.idempotency_key or derive_key(self.order.ref, self.kind.value, self.reference)

    @property
    def is_full(self) -> bool:
        if self.lines is None:
            return True
        wanted = {r.line_id: r.quantity for r in self.lines}
        return all(wanted.get(line.id) == line.quantity for line in self.order.lines)

    def refunded_fraction(self) -> Decimal:
        """Share of the order's line value that comes back (1 for a cancel or full refund)."""
        if self.is_full:
            return Decimal(1)
        subtotal = self.order.subtotal.amount
        if subtotal == 0:
            return Decimal(1)
        assert self.lines is not None
        back = sum(
            (self.order.lines[[l.id for l in self.order.lines].index(r.line_id)].unit_price.amount * r.quantity
             for r in self.lines),
            Decimal(0),
        )
        return back / subtotal


class ReversalResult(KitModel):
    order_ref: str
    kind: ReversalKind
    points_returned: Points = Decimal(0)  # burned points given back to the customer
    points_clawed_back: Points = Decimal(0)  # earned points taken back
    cashback_returned: Money | None = None
    cashback_clawed_back: Money | None = None
    vouchers_reinstated: tuple[str, ...] = ()
    receipts: tuple[Receipt, ...] = ()
