"""The kit's data model: what a shop sends and what every adapter returns (pydantic v2, frozen).

Limits (each violation is an error naming the field; no engine is called):

=====================  ======================================================
lines per basket/order  1 .. ``MAX_LINES`` (500)
quantity                > 0 and <= ``MAX_QUANTITY`` (10 000); Decimal, so weighed goods work
unit price              >= 0, finite, <= ``money.MAX_AMOUNT``
coupon codes            <= ``MAX_CODES`` (20), unique, 1..64 printable characters
ids, SKUs, references   1..128 printable characters (no control, format or other non-printable
                        Unicode: zero-width spaces, bidi overrides and line separators are refused)
orders per export       1 .. ``MAX_EXPORT_BATCH`` (500)
attributes per line     <= 32, keys and values <= 128 characters
every Decimal           at most ``money.MAX_PLACES`` (8) decimal places and ``money.MAX_DIGITS`` (24)
                        significant digits: ``1E-20000`` is refused, ``2.500000000000`` is ``2.5``
=====================  ======================================================

Money figures have one name and one meaning each, on the quote (:class:`Evaluation`) and on the
placed order (:class:`Order`) alike:

``subtotal``                 unit price x quantity, summed over the lines (before any discount)
``discount_total``           discounts on the goods (line and order discounts; never shipping)
``shipping``                 the shipping charge before shipping discounts (None: no shipping)
``shipping_total``           shipping the shopper pays: waived by ``free_shipping``, less shipping discounts
``total``                    ``subtotal - discount_total + shipping_total``: what the order costs in money
``points_lines``             the points-priced lines (points catalog): each line id and what it costs in points
``points_due``               the points the points-priced lines cost, summed: paid by a points spend, not in money
``balance_paid`` (Order)     paid with cashback or points (the spend receipts' money value)
``amount_due`` (Order)       ``total - balance_paid``: what the shop collects from the card
``allocations`` (Order)      every line's share of the discounts and what it really cost (``net``, and ``points``)

Points catalog: a product the program sells for points is sent as a line at 0.00 (its money price);
the quote names it in ``points_lines`` with its cost in points. Such a line contributes 0.00 to every
money figure above (subtotal, total, amount due, allocations, refunds), earns nothing, takes no share
of an order discount, and is paid by one points spend that names its line ids
(:meth:`CashbackSpend.for_points_lines`). An order whose points lines that spend does not pay is
refused before anything is sent; a refund gives the points of the returned units back
(``RefundBreakdown.line_points``, prorated by quantity).
"""

# No ``from __future__ import annotations``: pydantic would compile and evaluate every field's
# annotation string when the models are built at import (start-up time).
import hashlib
import itertools
import operator
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any, Literal, NamedTuple, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from .errors import CurrencyMismatchError, InvalidRequestError
from .money import (
    MAX_AMOUNT,
    KitBase,
    Money,
    allocate,
    built,
    is_currency,
    new_money,
    prorate,
    quantize_all,
    to_decimal,
    total,
    zero_amount,
)

MAX_LINES = 500
MAX_QUANTITY = Decimal(10_000)
MAX_CODES = 20
MAX_EXPORT_BATCH = 500
MAX_ATTRIBUTES = 32
MAX_POINTS = Decimal(10) ** 12
_set = object.__setattr__

def _printable(value: str) -> str:
    # str.isprintable() refuses control and format characters (zero-width, bidi overrides),
    # separators other than the space, surrogates and unassigned code points.
    if not value.isprintable():
        raise ValueError("must contain printable characters only (no control or invisible characters)")
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


def _points_limit(value: Decimal) -> Decimal:
    # the value is already a bounded Decimal (to_decimal ran before the bound)
    if abs(value) > MAX_POINTS:
        raise ValueError(f"points exceed the kit's limit of {MAX_POINTS}")
    return value


Points = Annotated[Decimal, BeforeValidator(to_decimal), Field(ge=0), AfterValidator(_points_limit)]
#: A bounded Decimal (see the limits above).
Number = Annotated[Decimal, BeforeValidator(to_decimal)]
Quantity = Annotated[Decimal, BeforeValidator(to_decimal), Field(gt=0, le=MAX_QUANTITY)]


_NO_FLOAT_TYPES = frozenset({str, int, bool, Decimal, dict, list, tuple, type(None), datetime, Money})


class KitModel(KitBase):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _no_float(cls, data: Any) -> Any:
        # Decimal fields would accept a float silently; refuse it so money never passes through float.
        # One pass over the input rather than one validator call per field, in C when every value is
        # of a type that is no float (what JSON and the kit's own models give); otherwise each value is
        # looked at, subclasses of float included.
        if type(data) is dict and not _NO_FLOAT_TYPES.issuperset(map(type, data.values())):
            for name, value in data.items():
                if isinstance(value, float) and name in cls.__pydantic_fields__:
                    raise ValueError(f"{name}: floats are not accepted; use Decimal, int or str")
        return data


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


# Patterns, not compiled ones: ``re`` compiles (and caches) them on the first identifier checked
# instead of at import.
_EMAIL = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"
_PHONE = r"^\+?[0-9]{6,15}$"
_CARD = r"^[0-9A-Za-z]{4,32}$"


class CustomerIdentifier(KitModel):
    """How the shop knows the customer. ``value`` is kept out of repr and logs."""

    kind: IdentifierKind
    value: str = Field(repr=False, max_length=254)

    @model_validator(mode="after")
    def _check(self) -> Self:
        value = self.value.strip()
        if not value:
            raise ValueError("value must not be empty")
        if self.kind is IdentifierKind.EMAIL:
            value = value.lower()
            if not re.match(_EMAIL, value):
                raise ValueError("value is not an e-mail address")
        elif self.kind is IdentifierKind.PHONE:
            value = re.sub(r"[\s().-]", "", value)
            if not re.match(_PHONE, value):
                raise ValueError("value is not a phone number (digits, optional leading +, 6-15 digits)")
        elif self.kind is IdentifierKind.CARD:
            value = value.replace(" ", "")
            if not re.match(_CARD, value):
                raise ValueError("value is not a card number (4-32 letters or digits)")
        else:
            _printable(value)
            if len(value) > 128:
                raise ValueError("value is longer than 128 characters")
        object.__setattr__(self, "value", value)
        return self

    @classmethod
    def email(cls, value: str) -> "CustomerIdentifier":
        return cls(kind=IdentifierKind.EMAIL, value=value)

    @classmethod
    def phone(cls, value: str) -> "CustomerIdentifier":
        return cls(kind=IdentifierKind.PHONE, value=value)

    @classmethod
    def card(cls, value: str) -> "CustomerIdentifier":
        return cls(kind=IdentifierKind.CARD, value=value)

    @classmethod
    def membership(cls, value: str) -> "CustomerIdentifier":
        return cls(kind=IdentifierKind.MEMBERSHIP, value=value)

    @classmethod
    def external_id(cls, value: str) -> "CustomerIdentifier":
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
    value: Money | None = None  # what the balance pays when spent (points: at the engine's rate), if known

    def value_of(self, points: Decimal) -> Money | None:
        """The money ``points`` of this points balance pay, at the engine's rate (None when unknown)."""
        if self.value is None or not self.points:
            return None
        return self.value * (to_decimal(points) / self.points)

    @model_validator(mode="after")
    def _shape(self) -> Self:
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

    @property
    def cashback(self) -> Money | None:
        """The cashback wallet's balance (None when the engine reports no cashback wallet)."""
        found = self.balance(BalanceKind.CASHBACK)
        return found.money if found else None

    def cashback_in(self, currency: str) -> Money:
        """The cashback balance in ``currency``, zero when there is none in it."""
        found = self.cashback
        return found if found is not None and found.currency == currency else Money.zero(currency)


# ---------------------------------------------------------------------------------------------
# Baskets
# ---------------------------------------------------------------------------------------------


class Line(KitModel):
    id: Ident
    sku: Ident
    quantity: Quantity
    unit_price: Money
    category: Ident | None = None
    name: Label | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

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


# Models given every field (a stored order is written out whole) share one set of field names per
# model instead of a set each: an order read back from the outbox lives for a whole export batch, and
# each set was one more object for the garbage collector to track and traverse meanwhile. The models
# are frozen: pydantic never adds to the set of a frozen model, and a copy copies it first.
_ALL_LINE_FIELDS = set(Line.__pydantic_fields__)


def _share_fields_sets(lines: tuple[Line, ...]) -> None:
    for line in lines:
        if line.__pydantic_fields_set__ == _ALL_LINE_FIELDS:
            _set(line, "__pydantic_fields_set__", _ALL_LINE_FIELDS)


class LineColumns(NamedTuple):
    """A basket's (or an order's) lines read column by column, the n-th entry of each the n-th line's."""

    ids: list[str]
    skus: list[str]
    quantities: list[Decimal]
    unit_prices: list[Decimal]  # unit_price.amount
    subtotals: list[Decimal]  # subtotal.amount

    def subtotal(self) -> Decimal:
        """The amount of ``Basket.subtotal`` / ``Order.subtotal``: each line already rounded as Money
        rounds it, so their sum is exact and needs no rounding of its own."""
        return sum(self.subtotals, Decimal(0))


_ID, _SKU, _QUANTITY = operator.attrgetter("id"), operator.attrgetter("sku"), operator.attrgetter("quantity")
_UNIT_AMOUNT = operator.attrgetter("unit_price.amount")


def line_ids(lines: Sequence[Line]) -> set[str]:
    """The lines' ids, read in C (an adapter checks an answer's line ids against them)."""
    return set(map(_ID, lines))


def line_columns(lines: Sequence[Line], currency: str) -> LineColumns:
    """The lines' ids, SKUs, quantities, unit amounts and subtotal amounts (unit price x quantity,
    rounded as Money rounds it), read and multiplied in C, without a tuple or a Money per line (request
    bodies with one object per line, :meth:`loyaltykit.wire.Records.of_columns`). ``lines`` are one
    basket's or one order's, ``currency`` theirs: validated together, no product is beyond the limit."""
    quantities = list(map(_QUANTITY, lines))
    prices = list(map(_UNIT_AMOUNT, lines))
    subtotals = quantize_all(map(operator.mul, prices, quantities), currency)
    return LineColumns(list(map(_ID, lines)), list(map(_SKU, lines)), quantities, prices, subtotals)


def _lines_subtotal(model: "Basket | Order") -> Money:
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


_PRICE_CURRENCY = operator.attrgetter("unit_price.currency")


def _check_lines(lines: Sequence[Line], currency: str) -> tuple[set[str], list[Decimal]]:
    """Refuse lines in another currency, a duplicate line id, and lines that are each within limits
    but together beyond them (rather than let ``subtotal``, and every quote built on it, fail later on
    an accepted basket). Returns the lines' ids and each line's unit price x quantity (not rounded)."""
    ids = set(map(_ID, lines))
    products = list(map(operator.mul, map(_UNIT_AMOUNT, lines), map(_QUANTITY, lines)))
    # Checked in C when all is well: with no product below zero the running sum never falls, so it
    # passes the limit at some line exactly when the whole sum does. Otherwise the line-by-line walk
    # below names the first fault, in line order.
    if (len(ids) == len(lines) and all(map(operator.eq, map(_PRICE_CURRENCY, lines), itertools.repeat(currency)))
            and (not products or min(products) >= 0) and sum(products, Decimal(0)) <= MAX_AMOUNT):
        return ids, products
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
        subtotal += line.unit_price.amount * line.quantity
        if subtotal > MAX_AMOUNT:
            raise ValueError(f"lines: the subtotal exceeds the kit's limit of {MAX_AMOUNT}")
    return ids, products


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
    def _consistent(self) -> Self:
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
    def _consistent(self) -> Self:
        _check_lines(self.products, self.currency)
        return self


class ProductPrice(KitModel):
    sku: str
    price: Money
    discounted_price: Money
    points_to_earn: Points = Decimal(0)
    points_price: Points | None = None
    labels: tuple[str, ...] = ()


MAX_SYNC_PRODUCTS = 10_000


class Product(KitModel):
    """A catalogue product pushed to the engine so its rules know it (product sync)."""

    sku: Ident
    name: Label | None = None
    category: Ident | None = None
    brand: Ident | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class ProductSyncReport(KitModel):
    """What a product sync did: the SKUs the engine accepted, and in how many engine calls."""

    engine: str
    synced: tuple[str, ...]
    batches: int = 0


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
    percent: Number | None = None  # metadata only; ``amount`` is authoritative
    engine_id: str | None = None
    label: str | None = None
    code: str | None = None  # the coupon code that produced it, if any

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.amount.amount < 0:
            raise ValueError("amount: a discount is not negative")
        if (self.target is DiscountTarget.LINE) != (self.line_id is not None):
            raise ValueError("line_id: required for line discounts and only for them")
        return self


class FreeItem(KitModel):
    """A gift the engine adds to the order (the shop ships it at no charge)."""

    sku: str
    quantity: Quantity = Decimal(1)
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
    percent: Number | None = None
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


class PointsLine(KitModel):
    """A basket line paid in points (a points-catalog product, sent at 0.00): what it costs in points."""

    line_id: Ident
    sku: str | None = None
    quantity: Quantity = Decimal(1)
    points: Points  # the whole line's cost in points


def _check_points_lines(points_lines: tuple[PointsLine, ...], lines: tuple[Line, ...] | None, name: str) -> None:
    """Point lines are unique and, when the lines are known, name lines sent at 0.00."""
    seen: set[str] = set()
    by_id = {line.id: line for line in lines} if lines is not None else None
    for index, entry in enumerate(points_lines):
        if entry.line_id in seen:
            raise ValueError(f"{name}.{index}.line_id: duplicate points line")
        seen.add(entry.line_id)
        if by_id is None:
            continue
        line = by_id.get(entry.line_id)
        if line is None:
            raise ValueError(f"{name}.{index}.line_id: not one of the lines")
        if not line.unit_price.is_zero():
            raise ValueError(f"{name}.{index}.line_id: a points-priced line is sent at 0.00 (its money price)")


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
    shipping: Money | None = None  # the basket's shipping charge; the facade fills it in from the basket
    discounts: tuple[Discount, ...] = ()
    free_items: tuple[FreeItem, ...] = ()
    earn: tuple[Earn, ...] = ()
    spendable: tuple[Balance, ...] = ()
    wallet: tuple[Offer, ...] = ()
    codes: tuple[CodeResult, ...] = ()
    messages: tuple[Message, ...] = ()
    catalog: tuple[CatalogItem, ...] = ()
    #: the basket's points-priced lines (sent at 0.00): paid by a points spend, never in money
    points_lines: Annotated[tuple[PointsLine, ...], Field(max_length=MAX_LINES)] = ()
    unmapped: tuple[UnmappedEffect, ...] = ()
    free_shipping: bool = False
    degraded: bool = False
    degraded_reason: str | None = None

    @model_validator(mode="after")
    def _currencies(self) -> Self:
        _check_points_lines(self.points_lines, None, "points_lines")
        for index, discount in enumerate(self.discounts):
            if discount.amount.currency != self.currency:
                raise ValueError(f"discounts.{index}.amount: currency differs from {self.currency}")
        for name in ("subtotal", "shipping"):
            value = getattr(self, name)
            if value is not None and value.currency != self.currency:
                raise ValueError(f"{name}: currency {value.currency} differs from {self.currency}")
        return self

    @property
    def discount_total(self) -> Money:
        """Discounts on the goods (order and line); shipping discounts are apart, see below."""
        return total([d.amount for d in self.discounts if d.target is not DiscountTarget.SHIPPING], self.currency)

    @property
    def shipping_discount_total(self) -> Money:
        return total([d.amount for d in self.discounts if d.target is DiscountTarget.SHIPPING], self.currency)

    @property
    def shipping_total(self) -> Money:
        """Shipping the shopper pays: waived by ``free_shipping``, less shipping discounts, never below zero."""
        return _shipping_total(self.shipping, self.free_shipping, self.shipping_discount_total, self.currency)

    @property
    def total(self) -> Money:
        """What the order would cost in money: goods after discounts (never below zero) plus
        ``shipping_total``. Before any cashback or points pay part of it: that is the amount due to
        spend against. Points-priced lines are sent at 0.00, so they add nothing here (``points_due``)."""
        goods = (self.subtotal - self.discount_total).max(Money.zero(self.currency))
        return goods + self.shipping_total

    @property
    def points_due(self) -> Decimal:
        """The points the points-priced lines cost together (a points spend pays them, not money)."""
        return sum((entry.points for entry in self.points_lines), Decimal(0))

    @property
    def points_to_earn(self) -> Decimal:
        return sum((e.points or Decimal(0) for e in self.earn if e.kind is BalanceKind.POINTS), Decimal(0))

    @classmethod
    def degraded_for(cls, basket: Basket, engine: str, reason: str) -> "Evaluation":
        """The fail-open quote: full price, nothing applied, ``degraded`` with the reason."""
        return cls(
            engine=engine,
            basket_id=basket.id,
            currency=basket.currency,
            customer_id=basket.customer_id,
            subtotal=basket.subtotal,
            shipping=basket.shipping,
            codes=tuple(
                CodeResult(code=c, status=CodeStatus.REJECTED, reason="engine_unavailable")
                for c in basket.coupon_codes
            ),
            degraded=True,
            degraded_reason=reason,
        )


def _shipping_total(shipping: Money | None, free: bool, discounts: Money, currency: str) -> Money:
    if shipping is None or free:
        return Money.zero(currency)
    return (shipping - discounts).max(Money.zero(currency))


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
    line_ids: tuple[str, ...] = ()  # a points spend's points-priced lines (points catalog)
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
    """Pay part or all of an order with cashback (``amount``) or points (``points``).

    ``amount_due`` is what the order still costs when the spend is made (the quote's ``total``, less
    earlier spends): a spend worth more than it is refused before any engine is called. A points
    spend says what its points are worth in money (``points_value``): that is what the till deducts,
    what the order's ``amount_due`` goes down by, and what a refund gives back. The ``value`` of a
    spend is its ``amount`` (cashback) or ``points_value`` (points).

    A points spend for points-priced lines (the points catalog) names them: ``line_ids`` are the
    lines it pays and ``points_lines`` the quote's points-priced lines (``Evaluation.points_lines``)
    they are checked against. It must name every one of them and nothing else, and its ``points`` are
    exactly their cost; its money value is 0.00 (those lines cost nothing in money). Build it with
    :meth:`for_points_lines`. Spend more points as a payment in a separate spend.
    """

    customer_id: Ident
    order_ref: Ident
    kind: BalanceKind = BalanceKind.CASHBACK
    amount: Money | None = None
    points: Points | None = None
    points_value: Money | None = None
    amount_due: Money | None = None
    idempotency_key: IdempotencyKey | None = None
    #: the basket the spend pays for; engines that settle a spend against an itemised purchase
    #: (CRM.COM's front-end reduction) need it, the others ignore it
    basket: Basket | None = None
    #: points catalog: the points-priced lines this spend pays, and the quote's points-priced lines
    line_ids: Annotated[tuple[Ident, ...], Field(max_length=MAX_LINES)] = ()
    points_lines: Annotated[tuple[PointsLine, ...], Field(max_length=MAX_LINES)] = ()

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.line_ids or self.points_lines:
            self._check_points_lines()
        if self.basket is not None and self.amount is not None and self.basket.currency != self.amount.currency:
            raise ValueError(f"basket.currency: {self.basket.currency} differs from the amount's {self.amount.currency}")
        if self.kind is BalanceKind.CASHBACK:
            if self.amount is None or self.points is not None or self.points_value is not None:
                raise ValueError("amount: a cashback spend carries a money amount (and no points)")
            if self.amount.amount <= 0:
                raise ValueError("amount: must be positive")
        else:
            if self.points is None or self.amount is not None:
                raise ValueError("points: a points spend carries points (and no money amount)")
            if self.points <= 0:
                raise ValueError("points: must be positive")
            if self.points_value is not None and self.points_value.amount < 0:
                raise ValueError("points_value: must not be negative")
        if self.amount_due is not None:
            if self.amount_due.amount < 0:
                raise ValueError("amount_due: must not be negative")
            value = self.value
            if value is None:
                raise ValueError("points_value: a points spend against an amount due says what its points are worth")
            if value.currency != self.amount_due.currency:
                raise ValueError(f"amount_due: currency {self.amount_due.currency} differs from {value.currency}")
            if value > self.amount_due:
                name = "amount" if self.kind is BalanceKind.CASHBACK else "points_value"
                raise ValueError(f"{name}: {value} is more than the amount due ({self.amount_due})")
        return self

    def _check_points_lines(self) -> None:
        if self.kind is not BalanceKind.POINTS:
            raise ValueError("line_ids: only a points spend pays points-priced lines")
        if not self.points_lines:
            raise ValueError("points_lines: give the quote's points-priced lines (Evaluation.points_lines)")
        _check_points_lines(self.points_lines, self.basket.lines if self.basket else None, "points_lines")
        priced = {entry.line_id: entry.points for entry in self.points_lines}
        if len(set(self.line_ids)) != len(self.line_ids):
            raise ValueError("line_ids: duplicate line id")
        for index, line_id in enumerate(self.line_ids):
            if line_id not in priced:
                raise ValueError(f"line_ids.{index}: not a points-priced line of the quote")
        missing = [line_id for line_id in priced if line_id not in self.line_ids]
        if missing:
            raise ValueError(f"line_ids: does not cover the points-priced lines {missing}")
        due = sum(priced.values(), Decimal(0))
        if self.points != due:
            raise ValueError(f"points: the points-priced lines cost {due} points; spend exactly that "
                             "(spend more points as a payment in a separate spend)")
        if self.points_value is not None and not self.points_value.is_zero():
            raise ValueError("points_value: points-priced lines cost 0.00 in money; their points pay nothing else")

    @classmethod
    def for_points_lines(cls, quote: Evaluation, *, customer_id: str, order_ref: str,
                         idempotency_key: str | None = None, basket: Basket | None = None) -> "CashbackSpend":
        """The points spend that pays the quote's points-priced lines (``InvalidRequestError`` when it has none)."""
        if not quote.points_lines:
            raise InvalidRequestError("evaluation.points_lines: the quote has no points-priced lines",
                                      field="evaluation.points_lines")
        return cls(customer_id=customer_id, order_ref=order_ref, kind=BalanceKind.POINTS, points=quote.points_due,
                   points_value=Money.zero(quote.currency), line_ids=tuple(p.line_id for p in quote.points_lines),
                   points_lines=quote.points_lines, idempotency_key=idempotency_key, basket=basket)

    @property
    def value(self) -> Money | None:
        """The money this spend pays: the cashback amount, or the points' money value."""
        return self.amount if self.kind is BalanceKind.CASHBACK else self.points_value

    @property
    def key(self) -> str:
        if self.line_ids:  # apart from a points payment on the same order
            return self.idempotency_key or derive_key(self.order_ref, "spend", "points_lines")
        return self.idempotency_key or derive_key(self.order_ref, "spend", self.kind.value)


class SpendResult(KitModel):
    kind: BalanceKind
    amount: Money | None = None
    points: Points | None = None
    value: Money | None = None  # the money the spend paid (cashback amount or points' value); set by the core
    remaining: Balance | None = None
    receipt: Receipt


class LineAllocation(KitModel):
    """One line's share of the order's discounts, and what it really cost (for VAT, invoices, returns)."""

    line_id: str
    quantity: Quantity
    subtotal: Money  # unit price x quantity
    line_discount: Money  # discounts the engine gave this line
    order_discount: Money  # its share of the order-level discounts (largest remainder, minor units)
    net: Money  # subtotal - line_discount - order_discount: what the shopper paid for the line
    points: Points = Decimal(0)  # what the line cost in points (points-priced lines; its net is 0.00)

    @property
    def discount_total(self) -> Money:
        return self.line_discount + self.order_discount


def _plus(value: Decimal, currency: str) -> Decimal:
    # a step of Money arithmetic done on the Decimals: refused beyond the limit as Money refuses it
    if abs(value) > MAX_AMOUNT:
        Money._exact(value, currency)
    return value


def _amount_in(money: Money, currency: str, op: str) -> Decimal:
    if money.currency != currency:  # what Money arithmetic raises
        raise CurrencyMismatchError(f"cannot {op} {currency} and {money.currency}", field="currency")
    return money.amount


def _split(lines: tuple[Line, ...], subtotals: Iterable[Decimal], discounts: tuple[Discount, ...], pool: Decimal,
           currency: str) -> tuple[dict[str, Decimal], list[Decimal], Decimal]:
    """Line discounts stay on their line (capped at its subtotal; any excess joins the order pool);
    the pool (order discounts + ``pool``, the extra discount) is capped at what the lines still cost.
    ``subtotals`` are the lines' subtotal amounts, read as the lines are (in line order). Returns each
    line's own discount, each line's value after it, and the capped pool, as amounts in ``currency``
    (quantized amounts: the sums are exact, the limit is checked at each step)."""
    zero = zero_amount(currency)
    if not discounts and (type(subtotals) is list and (not subtotals or min(subtotals) >= zero)):
        # no discount of its own on any line, none above its subtotal: each line's value after them
        # is its subtotal (``subtotal - 0``, the same Decimal), the pool is ``pool``
        whole = _plus(sum(subtotals, zero), currency)
        return dict.fromkeys(map(_ID, lines), zero), subtotals, min(pool, whole)
    own = {line.id: zero for line in lines}
    for discount in discounts:
        amount = _amount_in(discount.amount, currency, "add")
        if discount.target is DiscountTarget.LINE and discount.line_id in own:
            own[discount.line_id] = _plus(own[discount.line_id] + amount, currency)
        elif discount.target is not DiscountTarget.SHIPPING:
            pool = _plus(pool + amount, currency)
    after: list[Decimal] = []
    for line, subtotal in zip(lines, subtotals, strict=True):
        if own[line.id] > subtotal:
            pool = _plus(pool + (own[line.id] - subtotal), currency)
            own[line.id] = subtotal
        after.append(subtotal - own[line.id])
    whole = _plus(sum(after, zero), currency)  # every value is >= 0: the last sum is the largest
    return own, after, min(pool, whole)


def _summed(amounts: list[Decimal], currency: str) -> Decimal:
    """:func:`loyaltykit.money.total` on amounts already in ``currency``: the same sum, refused at the
    same step beyond the limit, without a Money."""
    value: Decimal = sum(amounts, zero_amount(currency))
    if -MAX_AMOUNT <= value <= MAX_AMOUNT and (not amounts or min(amounts) >= 0 or max(amounts) <= 0):
        return value  # terms of one sign: every running sum lies between zero and the whole sum
    value = zero_amount(currency)
    for amount in amounts:
        value = _plus(value + amount, currency)
    return value


def _allocations(lines: tuple[Line, ...], discounts: tuple[Discount, ...], extra: Money, currency: str,
                 points_lines: tuple[PointsLine, ...] = ()) -> tuple[LineAllocation, ...]:
    """Each line's own discounts (see ``_split``), and its share of the pool, allocated by largest
    remainder in proportion to each line's value after its own discounts."""
    subtotals = (_amount_in(line.subtotal, currency, "compare") for line in lines)
    own, after, pool = _split(lines, subtotals, discounts, _amount_in(extra, currency, "add"), currency)
    rests = [Money._exact(rest, currency) for rest in after]
    shares = allocate(Money._exact(pool, currency), rests)
    points = {entry.line_id: entry.points for entry in points_lines}
    # Built from validated figures (a line's quantity and subtotal, Money arithmetic, a points
    # line's points), so each allocation is valid by construction: no validation run.
    return tuple(
        built(LineAllocation, {"line_id": line.id, "quantity": line.quantity, "subtotal": line.subtotal,
                               "line_discount": Money._exact(own[line.id], currency), "order_discount": share,
                               "net": rest - share, "points": points.get(line.id, _NO_POINTS)})
        for line, rest, share in zip(lines, rests, shares, strict=True)
    )


_NO_POINTS = Decimal(0)


def _money(amount: Decimal, currency: str) -> Money:
    # a figure computed from validated amounts in one currency (quantized, within the limit)
    return new_money(amount, currency)


SPEND = "spend_cashback"
REDEEM = "redeem_voucher"


def _unpaid_points_lines(points_lines: tuple[PointsLine, ...], receipts: tuple[Receipt, ...]) -> list[str]:
    covered: set[str] = set()
    cost = {entry.line_id: entry.points for entry in points_lines}
    for receipt in receipts:
        if receipt.operation != SPEND or not receipt.line_ids or receipt.points is None:
            continue
        named = [line_id for line_id in receipt.line_ids if line_id in cost]
        if receipt.points >= sum((cost[line_id] for line_id in named), Decimal(0)):
            covered.update(named)
    return [line_id for line_id in cost if line_id not in covered]


class Order(KitModel):
    """A placed order, as exported to the engine so it records points earned and redemptions.

    Build it with :meth:`from_evaluation` from the basket and the quote the shopper accepted: the
    order then carries the quote's discounts, free items and shipping, and ``total`` is computed.
    An order built by hand may give ``total`` instead of ``discounts``: the difference from
    ``subtotal + shipping`` is then one order-level discount, allocated to the lines like any other.
    """

    ref: Ident
    currency: Currency
    lines: Annotated[tuple[Line, ...], Field(min_length=1, max_length=MAX_LINES)]
    total: Money | None = None  # computed when omitted: subtotal - discount_total + shipping_total
    customer_id: Ident | None = None
    shipping: Money | None = None  # the shipping charge before shipping discounts
    discounts: Annotated[tuple[Discount, ...], Field(max_length=MAX_LINES + MAX_CODES + 50)] = ()
    free_shipping: bool = False
    free_items: Annotated[tuple[FreeItem, ...], Field(max_length=MAX_LINES)] = ()
    voucher_codes: Annotated[tuple[Code, ...], Field(max_length=MAX_CODES)] = ()
    receipts: tuple[Receipt, ...] = ()
    #: the points-priced lines (points catalog, sent at 0.00): a points spend receipt must pay them
    points_lines: Annotated[tuple[PointsLine, ...], Field(max_length=MAX_LINES)] = ()
    placed_at: Timestamp = Field(default_factory=utcnow)
    channel: Ident | None = None
    store_id: Ident | None = None
    idempotency_key: IdempotencyKey | None = None

    @model_validator(mode="before")
    @classmethod
    def _earlier_payload(cls, data: Any) -> Any:
        # Orders queued by an earlier version carry ``discount_total`` (now derived from ``total``).
        if isinstance(data, dict) and "discount_total" in data and "discounts" not in data:
            data = {k: v for k, v in data.items() if k != "discount_total"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        currency, lines, discounts, order_total = self.currency, self.lines, self.discounts, self.total
        ids, products = _check_lines(lines, currency)
        for name, value in (("total", order_total), ("shipping", self.shipping)):
            if value is None:
                continue
            if value.currency != currency:
                raise ValueError(f"{name}: currency {value.currency} differs from {currency}")
            if value.amount < 0:
                raise ValueError(f"{name}: must not be negative")
        for index, discount in enumerate(discounts):
            if discount.amount.currency != currency:
                raise ValueError(f"discounts.{index}.amount: currency differs from {currency}")
            if discount.line_id is not None and discount.line_id not in ids:
                raise ValueError(f"discounts.{index}.line_id: not a line of the order")
        # Every amount is now known to be in ``currency`` and quantized to its exponent, so the figures
        # below are sums and differences of amounts: exact on the Decimals, each step refused beyond the
        # limit where Money arithmetic refuses it (``_plus``), in the same order. A Money is built only
        # for the stored total and for error messages.
        zero = zero_amount(currency)
        shipping_discounts = zero
        if discounts:
            shipping_discounts = _summed(
                [d.amount.amount for d in discounts if d.target is DiscountTarget.SHIPPING], currency)
        shipping_total = zero
        if self.shipping is not None and not self.free_shipping:
            shipping_total = max(self.shipping.amount - shipping_discounts, zero)  # Money.max: the first when equal
        # The lines' subtotals as ``Line.subtotal`` rounds them (unit price x quantity, quantized).
        subtotals = quantize_all(products, currency)
        extra = zero
        if order_total is not None and not discounts:
            # A hand-built order with its total: the difference is one order-level discount.
            subtotal = _summed(subtotals, currency)
            charged = _plus(subtotal + shipping_total, currency)
            extra = _plus(charged - order_total.amount, currency)
            if extra < 0:
                raise ValueError(f"total: more than the lines and shipping ({_money(charged, currency)})")
            if extra > subtotal:
                raise ValueError("total: less than the shipping charge")
        if self.points_lines:
            _check_points_lines(self.points_lines, lines, "points_lines")
            unpaid = self.unpaid_points_lines()
            if unpaid:
                raise ValueError(f"receipts: the points-priced lines {unpaid} are not paid; spend their points "
                                 "first (CashbackSpend.for_points_lines) and give its receipt with the order")
        # The allocations themselves are computed on first use (``allocations``): their nets sum to
        # what the goods cost after discounts (the allocated shares sum exactly to the capped pool),
        # which is all the checks need.
        _own, after, pool = _split(lines, subtotals, discounts, extra, currency)
        goods_net = _plus(sum(after, zero) - pool, currency)
        computed = _plus(goods_net + shipping_total, currency)
        if order_total is None:
            object.__setattr__(self, "total", _money(computed, currency))
        elif type(order_total) is not Money or computed != order_total.amount:  # Money equality: same type too
            raise ValueError(f"total: {order_total} differs from subtotal - discounts + shipping "
                             f"({_money(computed, currency)})")
        paid = zero
        if self.receipts:
            paid = _summed([r.amount.amount for r in self.receipts if r.operation == SPEND and r.amount is not None
                            and r.amount.currency == currency], currency)
        if paid > computed:
            raise ValueError(f"receipts: cashback and points pay {_money(paid, currency)}, more than the order's "
                             f"total ({_money(computed, currency)})")
        _share_fields_sets(lines)
        if self.__pydantic_fields_set__ == _ALL_ORDER_FIELDS:
            _set(self, "__pydantic_fields_set__", _ALL_ORDER_FIELDS)
        return self

    def _shipping_discounts(self) -> Money:
        return total([d.amount for d in self.discounts if d.target is DiscountTarget.SHIPPING], self.currency)

    @property
    def subtotal(self) -> Money:
        return _lines_subtotal(self)

    @property
    def allocations(self) -> tuple[LineAllocation, ...]:
        """Every line's share of the discounts and its net paid, in line order; nets sum to the goods total."""
        # Computed once, and kept beside the fields keyed on the very objects they rest on, so that a
        # copy made without validation (model_copy(update=...)) that changes them recomputes.
        basis = (self.lines, self.discounts, self.total, self.shipping, self.points_lines, self.free_shipping,
                 self.currency)
        cached = self.__dict__.get("_allocations_of")
        if cached is None or any(a is not b for a, b in zip(cached[0], basis, strict=True)):
            extra = Money.zero(self.currency)
            if self.total is not None and not self.discounts:
                shipping = _shipping_total(self.shipping, self.free_shipping, self._shipping_discounts(), self.currency)
                extra = (self.subtotal + shipping - self.total).max(Money.zero(self.currency))
            cached = (basis, _allocations(self.lines, self.discounts, extra, self.currency, self.points_lines))
            self.__dict__["_allocations_of"] = cached
        return cached[1]

    def allocation(self, line_id: str) -> LineAllocation:
        for allocation in self.allocations:
            if allocation.line_id == line_id:
                return allocation
        raise KeyError(line_id)

    @property
    def discount_total(self) -> Money:
        """Discounts on the goods, as applied (never more than the lines cost)."""
        return total([a.discount_total for a in self.allocations], self.currency)

    @property
    def shipping_total(self) -> Money:
        if self.total is None:
            raise AssertionError("self.total is set here")
        return self.total - total([a.net for a in self.allocations], self.currency)

    @property
    def balance_paid(self) -> Money:
        """What cashback and points paid (the money value of the spend receipts in the order's currency)."""
        return total([r.amount for r in self.receipts
                      if r.operation == SPEND and r.amount is not None and r.amount.currency == self.currency],
                     self.currency)

    @property
    def points_spent(self) -> Decimal:
        """Every point spent on the order: as a payment and for points-priced lines."""
        return sum((r.points for r in self.receipts if r.operation == SPEND and r.points is not None), Decimal(0))

    @property
    def points_paid(self) -> Decimal:
        """Points spent as a payment (worth money); points-priced lines' points are ``points_due``."""
        return sum((r.points for r in self.receipts if r.operation == SPEND and r.points is not None
                    and not r.line_ids), Decimal(0))

    @property
    def points_due(self) -> Decimal:
        """What the points-priced lines cost in points."""
        return sum((entry.points for entry in self.points_lines), Decimal(0))

    def unpaid_points_lines(self) -> list[str]:
        """Points-priced lines no points spend receipt pays (a receipt names its lines and pays their cost)."""
        return _unpaid_points_lines(self.points_lines, self.receipts)

    @property
    def amount_due(self) -> Money:
        """What the shop collects from the shopper's card: ``total - balance_paid``."""
        if self.total is None:
            raise AssertionError("self.total is set here")
        return self.total - self.balance_paid

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
    ) -> "Order":
        """Build the order a shop places from its basket and the quote it accepted.

        The order carries the quote's discounts, free items and free shipping, so ``total`` and the
        line ``allocations`` are the quote's. A discount that came from a code (voucher, promo code,
        wallet offer) needs the code's redemption receipt among ``receipts``: otherwise the discount
        would be given while the code stays usable, so this refuses with an ``InvalidRequestError``
        (field ``evaluation.discounts.N``; the code itself is in ``details``, not in the message).
        Redeem the code first, or quote the basket again without it. Codes the quote rejected are
        not carried to the order. The quote's points-priced lines go with the order and need the
        receipt of the points spend that paid them (``CashbackSpend.for_points_lines``): otherwise
        this refuses with an ``InvalidRequestError`` (field ``receipts``).
        """
        receipts = tuple(receipts)
        if evaluation is None:
            return cls(ref=ref, currency=basket.currency, lines=basket.lines, customer_id=basket.customer_id,
                       shipping=basket.shipping, voucher_codes=basket.coupon_codes, receipts=receipts,
                       channel=basket.channel, store_id=basket.store_id, **extra)
        if evaluation.currency != basket.currency:
            raise InvalidRequestError(f"evaluation: currency {evaluation.currency} differs from the basket's",
                                      field="evaluation.currency")
        if evaluation.basket_id != basket.id or evaluation.subtotal != basket.subtotal:
            raise InvalidRequestError("evaluation: the quote is for another basket (or the basket changed since); "
                                      "evaluate this basket again", field="evaluation.basket_id")
        redeemed = {r.code for r in receipts if r.operation == REDEEM and r.code}
        for index, discount in enumerate(evaluation.discounts):
            if discount.code is not None and discount.code not in redeemed:
                raise InvalidRequestError(
                    f"evaluation.discounts.{index}: this discount comes from a code that was not redeemed; "
                    "redeem it first (its receipt goes with the order) or quote the basket without it",
                    field=f"evaluation.discounts.{index}.code", details={"code": discount.code},
                )
        if evaluation.points_lines:
            unpaid = _unpaid_points_lines(evaluation.points_lines, receipts)
            if unpaid:
                raise InvalidRequestError(
                    f"receipts: the quote's points-priced lines {unpaid} are not paid; spend their points first "
                    "(CashbackSpend.for_points_lines) and give its receipt with the order",
                    field="receipts", details={"points_due": str(evaluation.points_due)},
                )
        rejected = {c.code for c in evaluation.codes if c.status is CodeStatus.REJECTED}
        return cls(
            ref=ref,
            currency=basket.currency,
            lines=basket.lines,
            customer_id=basket.customer_id,
            shipping=basket.shipping,
            discounts=evaluation.discounts,
            free_shipping=evaluation.free_shipping,
            free_items=evaluation.free_items,
            voucher_codes=tuple(c for c in basket.coupon_codes if c not in rejected or c in redeemed),
            receipts=receipts,
            points_lines=evaluation.points_lines,
            channel=basket.channel,
            store_id=basket.store_id,
            **extra,
        )


_ALL_ORDER_FIELDS = set(Order.__pydantic_fields__)


# -- an order the kit dumped itself, read back without a validation run --------------------------
#
# ``order_from_dump`` is for text the kit has proven it wrote itself from a validated order (the
# outbox keeps a digest of each payload it writes): every value is then what validation left, written
# out by ``model_dump_json``, so reading it back is a conversion of each value to its type, no check.
# Anything not shaped exactly as such a dump (another set of fields, another type) gives None, and
# the caller validates the data in full. Each model is built as a validation run leaves it (its
# fields in order, every field marked set, nothing extra or private).


def _trusted(cls: type[KitModel], data: dict[str, Any], fields: set[str]) -> Any:
    model = object.__new__(cls)
    _set(model, "__dict__", data)
    _set(model, "__pydantic_fields_set__", fields)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _number(value: Any) -> Decimal:
    if type(value) is not str:  # a dump writes every Decimal as text
        raise TypeError("not a dumped number")
    return Decimal(value)


def _dumped_money(data: dict[str, Any]) -> Money:
    if data.keys() != _MONEY_KEYS:
        raise LookupError("not a dumped Money")
    return new_money(_number(data["amount"]), _text(data["currency"]))


def _maybe(convert: Any) -> Any:
    return lambda value: None if value is None else convert(value)


def _text(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("not text")
    return value


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError("not a bool")
    return value


def _texts(value: list[Any]) -> tuple[str, ...]:
    return tuple(map(_text, value))


_MONEY_KEYS = {"amount", "currency"}
# Each nested model of an order: its fields and how each is read (a field not listed is text or None).
_NESTED: dict[type[KitModel], dict[str, Any]] = {
    Discount: {"target": DiscountTarget, "amount": _dumped_money, "percent": _maybe(_number)},
    FreeItem: {"quantity": _number},
    Receipt: {"amount": _maybe(_dumped_money), "points": _maybe(_number), "line_ids": _texts, "replayed": _flag},
    PointsLine: {"quantity": _number, "points": _number},
}
_NESTED_FIELDS = {cls: set(cls.__pydantic_fields__) for cls in _NESTED}
_OPTIONAL_TEXT = _maybe(_text)


def _dumped_models(cls: type[KitModel], items: list[Any]) -> tuple[Any, ...]:
    if not items:
        return ()
    readers, fields = _NESTED[cls], _NESTED_FIELDS[cls]
    models = []
    for data in items:
        if data.keys() != fields:
            raise LookupError(f"not a dumped {cls.__name__}")
        for name, value in data.items():
            data[name] = readers.get(name, _OPTIONAL_TEXT)(value)
        models.append(_trusted(cls, data, set(fields)))
    return tuple(models)


def _dumped_line(data: dict[str, Any]) -> Line:
    # ``_dumped_money`` and ``_number`` inlined: one call per line of a stored order
    price = data["unit_price"]
    if data.keys() != _ALL_LINE_FIELDS or type(price) is not dict or price.keys() != _MONEY_KEYS:
        raise LookupError("not a dumped Line")
    quantity, amount, currency = data["quantity"], price["amount"], price["currency"]
    if (type(quantity) is not str or type(amount) is not str or type(currency) is not str
            or type(data["id"]) is not str or type(data["sku"]) is not str or type(data["attributes"]) is not dict):
        raise TypeError("not a dumped Line")
    data["quantity"] = Decimal(quantity)
    data["unit_price"] = new_money(Decimal(amount), currency)
    return _trusted(Line, data, _ALL_LINE_FIELDS)  # type: ignore[no-any-return]


def order_from_dump(data: Any) -> Order | None:
    """The order ``data`` holds when it is ``Order.model_dump_json()`` of a validated order read back
    by :func:`loyaltykit.wire.loads`, built without a validation run; None when it is shaped otherwise
    (then validate it). Only for text the kit proved it wrote itself: never for input. ``data`` is
    consumed (its dicts become the models')."""
    try:
        if type(data) is not dict or data.keys() != _ALL_ORDER_FIELDS:
            return None
        data["lines"] = tuple(map(_dumped_line, data["lines"]))
        data["total"] = _dumped_money(data["total"])
        if data["shipping"] is not None:
            data["shipping"] = _dumped_money(data["shipping"])
        data["discounts"] = _dumped_models(Discount, data["discounts"])
        data["free_items"] = _dumped_models(FreeItem, data["free_items"])
        data["voucher_codes"] = _texts(data["voucher_codes"])
        data["receipts"] = _dumped_models(Receipt, data["receipts"])
        data["points_lines"] = _dumped_models(PointsLine, data["points_lines"])
        data["free_shipping"] = _flag(data["free_shipping"])
        placed = datetime.fromisoformat(data["placed_at"])
        data["placed_at"] = placed if placed.tzinfo is None else placed.astimezone(UTC)
        if type(data["ref"]) is not str or type(data["currency"]) is not str or not data["lines"]:
            return None
    except (LookupError, TypeError, ValueError, ArithmeticError, AttributeError):
        return None
    return _trusted(Order, data, _ALL_ORDER_FIELDS)  # type: ignore[no-any-return]


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
    quantity: Quantity


class RefundedLine(KitModel):
    """What one line gives back in a reversal: its quantity and the net paid for it."""

    line_id: str
    quantity: Quantity
    amount: Money
    points: Points = Decimal(0)  # points given back for a points-priced line's returned units


class RefundBreakdown(KitModel):
    """Where the money of a reversal goes, computed once in the core for every engine.

    ``goods`` is the net paid for the returned quantities (discounts allocated to the lines are
    deducted; a line's last returned unit takes what its earlier refunds left, so refunds of a line
    sum exactly to its net). ``shipping`` comes back with a cancel or with the refund that returns
    the last unit. That sum goes back the way it was paid, pro rata: ``to_cashback`` (spent cashback,
    to the wallet), points worth ``points_value`` (points spent as a payment) and the rest ``to_card``.
    ``points`` is every point going back to the member: those of the payment plus ``line_points``,
    the points of the returned units of points-priced lines (prorated by quantity, rounded down
    except the line's last unit, so refunds of a line give back exactly what it cost; worth 0.00).
    ``share_before`` / ``share_after`` are the fractions of the order's goods value refunded before
    and after this reversal: engines claw back earned points and cashback between them.
    Earned points or cashback taken back are reported apart (``ReversalResult.points_clawed_back``):
    flows in opposite directions are never summed.
    """

    lines: tuple[RefundedLine, ...] = ()
    goods: Money
    shipping: Money
    to_card: Money
    to_cashback: Money
    points: Points = Decimal(0)
    points_value: Money
    line_points: Points = Decimal(0)
    share_before: Number
    share_after: Number

    @property
    def total(self) -> Money:
        """``goods + shipping`` = ``to_card + to_cashback + points_value``."""
        return self.goods + self.shipping


def _cumulative_line(allocation: LineAllocation, quantity: Decimal) -> Money:
    """Net paid for the first ``quantity`` units of a line (rounded half up; exact for the whole line)."""
    if quantity >= allocation.quantity:
        return allocation.net
    return prorate(allocation.net, Fraction(0), Fraction(quantity) / Fraction(allocation.quantity))


def _floor_share(amount: Money, fraction: Fraction) -> Money:
    units = amount.minor_units() * fraction
    return Money.from_minor_units(units.numerator // units.denominator, amount.currency)


def _points_share(points: Decimal, fraction: Fraction) -> Decimal:
    places = max(0, -int(points.as_tuple().exponent))
    scaled = Fraction(points) * fraction * 10**places
    return Decimal(scaled.numerator // scaled.denominator).scaleb(-places)


class Reversal(KitModel):
    """Cancel an order, or refund it fully or partly. ``lines=None`` means every line (what is left of it).

    ``already_refunded`` lists the quantities earlier refunds (under other references) returned, so a
    line is never refunded beyond what was bought and the breakdown continues where they stopped;
    an engine that keeps its own record of refunds checks it too.
    """

    order: Order
    kind: ReversalKind
    lines: tuple[RefundLine, ...] | None = None
    already_refunded: tuple[RefundLine, ...] = ()
    reference: Ident = "full"  # the refund document id: two partial refunds need two references
    exported: bool = True  # whether the order was exported before; cancel-before-export voids writes only
    reason: Label | None = None
    idempotency_key: IdempotencyKey | None = None

    @model_validator(mode="after")
    def _lines(self) -> Self:
        if self.kind is ReversalKind.CANCEL and self.lines is not None:
            raise ValueError("lines: a cancel reverses the whole order; use a refund for some lines")
        bought = {line.id: line.quantity for line in self.order.lines}
        before: dict[str, Decimal] = {}
        for index, earlier in enumerate(self.already_refunded):
            if earlier.line_id not in bought:
                raise ValueError(f"already_refunded.{index}.line_id: not a line of order")
            before[earlier.line_id] = before.get(earlier.line_id, Decimal(0)) + earlier.quantity
            if before[earlier.line_id] > bought[earlier.line_id]:
                raise ValueError(f"already_refunded.{index}.quantity: more than the order line's quantity")
        if self.lines is not None:
            if not self.lines:
                raise ValueError("lines: empty; omit it to refund every line")
            seen: set[str] = set()
            for index, refund in enumerate(self.lines):
                if refund.line_id not in bought:
                    raise ValueError(f"lines.{index}.line_id: not a line of order")
                if refund.line_id in seen:
                    raise ValueError(f"lines.{index}.line_id: duplicate")
                seen.add(refund.line_id)
                left = bought[refund.line_id] - before.get(refund.line_id, Decimal(0))
                if refund.quantity > bought[refund.line_id]:
                    raise ValueError(f"lines.{index}.quantity: more than the order line's quantity")
                if refund.quantity > left:
                    raise ValueError(f"lines.{index}.quantity: more than is left to refund ({left})")
        elif self.kind is ReversalKind.REFUND and before and all(
                before.get(line_id, Decimal(0)) >= quantity for line_id, quantity in bought.items()):
            raise ValueError("lines: every line was refunded already")
        return self

    @property
    def key(self) -> str:
        return self.idempotency_key or derive_key(self.order.ref, self.kind.value, self.reference)

    @property
    def is_full(self) -> bool:
        """Every line, all of it, in this one reversal."""
        if self.kind is ReversalKind.CANCEL:
            return True
        if self.already_refunded:
            return False
        if self.lines is None:
            return True
        wanted = {r.line_id: r.quantity for r in self.lines}
        return all(wanted.get(line.id) == line.quantity for line in self.order.lines)

    def returned_quantities(self) -> dict[str, Decimal]:
        """Per line, the quantity this reversal returns (what is left of it for ``lines=None``)."""
        before = self._before()
        if self.lines is None:
            left = {line.id: line.quantity - before.get(line.id, Decimal(0)) for line in self.order.lines}
            return {line_id: quantity for line_id, quantity in left.items() if quantity > 0}
        return {r.line_id: r.quantity for r in self.lines}

    def _before(self) -> dict[str, Decimal]:
        before: dict[str, Decimal] = {}
        for earlier in self.already_refunded:
            before[earlier.line_id] = before.get(earlier.line_id, Decimal(0)) + earlier.quantity
        return before

    @property
    def breakdown(self) -> RefundBreakdown:
        """What this reversal gives back, and where to (see :class:`RefundBreakdown`)."""
        order = self.order
        currency = order.currency
        zero = Money.zero(currency)
        before_q = self._before()
        now_q = self.returned_quantities()
        goods_before, goods_after = zero, zero
        refunded: list[RefundedLine] = []
        line_points = Decimal(0)
        complete = True
        for allocation in order.allocations:
            done = before_q.get(allocation.line_id, Decimal(0))
            now = now_q.get(allocation.line_id, Decimal(0))
            earlier = _cumulative_line(allocation, done)
            later = _cumulative_line(allocation, done + now)
            goods_before, goods_after = goods_before + earlier, goods_after + later
            if now > 0:
                back = Decimal(0)
                if allocation.points:  # a points-priced line: its points follow the returned quantity
                    whole = Fraction(allocation.quantity)
                    back = (_points_share(allocation.points, Fraction(done + now) / whole)
                            - _points_share(allocation.points, Fraction(done) / whole))
                    line_points += back
                refunded.append(RefundedLine(line_id=allocation.line_id, quantity=now, amount=later - earlier,
                                             points=back))
            complete = complete and done + now >= allocation.quantity
        shipping = order.shipping_total if complete else zero
        goods = goods_after - goods_before
        net_goods = total([a.net for a in order.allocations], currency)
        if order.total is None:
            raise AssertionError("order.total is set here")
        paid = order.total.minor_units()
        value_before = goods_before.minor_units()
        value_after = goods_after.minor_units() + shipping.minor_units()
        fb = Fraction(value_before, paid) if paid else Fraction(0)
        fa = Fraction(value_after, paid) if paid else Fraction(1 if complete else 0)
        # Tenders, nested so that every share is monotone in the refunded fraction: the card's
        # cumulative share is rounded down, the balances take the rest; within the balances,
        # cashback's is rounded down and points take the rest. Successive refunds therefore sum
        # exactly to what each tender paid, and no share of a refund is ever negative.
        cashback = total([r.amount for r in order.receipts if r.operation == SPEND and r.points is None
                          and r.amount is not None and r.amount.currency == currency], currency)
        points_value = total([r.amount for r in order.receipts if r.operation == SPEND and r.points is not None
                              and not r.line_ids and r.amount is not None and r.amount.currency == currency],
                             currency)
        card = order.total - cashback - points_value

        def split(fraction: Fraction, value: int) -> tuple[Money, Money, Money]:
            to_card = _floor_share(card, fraction)
            balances = Money.from_minor_units(value, currency) - to_card
            both = (cashback + points_value).minor_units()
            inner = Fraction(balances.minor_units(), both) if both else Fraction(0)
            to_cashback = _floor_share(cashback, inner)
            return to_card, to_cashback, balances - to_cashback

        card_b, cash_b, pts_b = split(fb, value_before)
        card_a, cash_a, pts_a = split(fa, value_after)
        spent_points = order.points_paid
        if points_value.is_zero():  # points spent with no money value: they follow the refunded fraction
            points = _points_share(spent_points, fa) - _points_share(spent_points, fb)
        else:
            pv = points_value.minor_units()
            points = (_points_share(spent_points, Fraction(pts_a.minor_units(), pv))
                      - _points_share(spent_points, Fraction(pts_b.minor_units(), pv)))
        goods_units = net_goods.minor_units()
        share_before = Fraction(goods_before.minor_units(), goods_units) if goods_units else Fraction(0)
        share_after = Fraction(goods_after.minor_units(), goods_units) if goods_units else Fraction(int(complete))
        return RefundBreakdown(
            lines=tuple(refunded), goods=goods, shipping=shipping,
            to_card=card_a - card_b, to_cashback=cash_a - cash_b, points=points + line_points,
            points_value=pts_a - pts_b, line_points=line_points,
            share_before=_fraction_decimal(share_before), share_after=_fraction_decimal(share_after),
        )

    def refunded_fraction(self) -> Decimal:
        """Share of the order's goods value (net paid) that this reversal gives back (1 for a cancel or
        full refund). Engines that prorate between two points should use ``breakdown`` instead."""
        if self.is_full:
            return Decimal(1)
        breakdown = self.breakdown
        return breakdown.share_after - breakdown.share_before


def _fraction_decimal(value: Fraction) -> Decimal:
    # a fraction shown with the kit's precision; 0 and 1 stay exact
    if value in (0, 1):
        return Decimal(int(value))
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("1E-8"))


class ReversalResult(KitModel):
    order_ref: str
    kind: ReversalKind
    points_returned: Points = Decimal(0)  # burned points given back to the customer
    points_clawed_back: Points = Decimal(0)  # earned points taken back
    cashback_returned: Money | None = None  # spent cashback given back to the wallet
    cashback_clawed_back: Money | None = None  # earned cashback taken back
    vouchers_reinstated: tuple[str, ...] = ()
    refund: RefundBreakdown | None = None  # the core's money breakdown (the facade fills it in)
    receipts: tuple[Receipt, ...] = ()
