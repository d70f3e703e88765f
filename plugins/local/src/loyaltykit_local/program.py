"""The loyalty program: a TOML file a marketer can read, validated into frozen pydantic models.

Everything the engine does is described here as data: currencies, points earning and expiry,
tiers, the points-only catalog, cashback, vouchers, offer templates and IF/THEN rules. Rules are
declarative (a ``when`` table of conditions, a ``then`` table or list of actions); nothing is
evaluated as code. A malformed file raises :class:`loyaltykit.ConfigError` naming the file, the
location (``rules[3].then.percent``) and the problem.

Money amounts in the file are plain numbers in the program's ``currency``; an amount may instead be
a table per currency (``min = { EUR = 20, USD = 22 }``) for programs accepting several currencies.
An amount with no value for the basket's currency makes its condition false and its action a no-op.
"""

# No ``from __future__ import annotations``: pydantic would compile and evaluate every field's
# annotation string when the classes are built, a measurable part of the engine's start-up.
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from loyaltykit import ConfigError
from loyaltykit.money import is_currency

BASE = "*"  # key of an amount written as a plain number: the program's own currency


def _amounts(value: Any) -> Any:
    if isinstance(value, dict):
        for code in value:
            if code != BASE and not is_currency(code):
                raise ValueError(f"unknown ISO 4217 currency {code!r}")
        return value
    return {BASE: value}


def _aware(value: Any) -> Any:
    # TOML local date-times carry no zone: read them as UTC so comparisons are well defined.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


NonNegative = Annotated[Decimal, Field(ge=0)]
Amounts = Annotated[dict[str, NonNegative], BeforeValidator(_amounts)]
Percent = Annotated[Decimal, Field(gt=0, le=100)]
Instant = Annotated[datetime, BeforeValidator(_aware)]
Name = Annotated[str, Field(min_length=1, max_length=128)]


class ProgramModel(BaseModel):
    # Validators are built when a program is first validated, not at import: one schema for the
    # whole program instead of one per class (a shop's process validates only ``Program``).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def amount_in(amounts: dict[str, Decimal] | None, currency: str, base: str) -> Decimal | None:
    """The amount for ``currency``, or None when the program gives none for it."""
    if amounts is None:
        return None
    found = amounts.get(currency)
    if found is None and currency == base:
        found = amounts.get(BASE)
    return found


# ---------------------------------------------------------------------------------------------
# Points, tiers, products, catalog, cashback
# ---------------------------------------------------------------------------------------------


class PointsPolicy(ProgramModel):
    name: Name = "points"
    per_currency_unit: NonNegative = Decimal(0)  # base earn rate on the net amount paid per line
    expire_after_days: Annotated[int, Field(ge=1)] | None = None
    expire_on: Instant | None = None  # a fixed date on which every point earned before it expires
    spend_value: Amounts | None = None  # what one point pays when spent, per currency (e.g. { EUR = 0.01 })
    # Tiers count the points earned in the last N days (None: ever); a member whose points age out
    # moves down, recorded by the nightly expire_points() and by the next write.
    qualifying_days: Annotated[int, Field(ge=1)] | None = None


class Tier(ProgramModel):
    name: Name
    threshold: Annotated[int, Field(ge=0)] = 0  # qualifying points needed
    multiplier: Annotated[Decimal, Field(gt=0, le=100)] = Decimal(1)


class ProductEarn(ProgramModel):
    sku: Name
    points: NonNegative | None = None  # fixed points earned per unit (replaces the rate)
    per_currency_unit: NonNegative | None = None  # a rate for this SKU
    points_price: Annotated[int, Field(gt=0)] | None = None  # redeemable: what it costs in points


class CategoryEarn(ProgramModel):
    category: Name
    points: NonNegative | None = None
    per_currency_unit: NonNegative | None = None


class CatalogEntry(ProgramModel):
    sku: Name
    name: str | None = None
    points_price: Annotated[int, Field(gt=0)]


class CashbackPolicy(ProgramModel):
    earn_percent: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(0)
    earn_min_order: Amounts | None = None  # an order below this earns no cashback
    earn_max_per_order: Amounts | None = None  # cap on what one order earns
    spend_min: Amounts | None = None  # smallest cashback payment per transaction
    spend_max: Amounts | None = None  # largest cashback payment per transaction


# ---------------------------------------------------------------------------------------------
# Vouchers and offers
# ---------------------------------------------------------------------------------------------

VoucherKind = Literal["percent", "fixed", "item"]


def _limit(value: Any) -> Any:
    # TOML has no null: "unlimited" spells it out (and leaving the key out means single use).
    return None if value == "unlimited" else value


class VoucherDef(ProgramModel):
    """A promo code or voucher: single use by default, ``usage_limit = n`` or ``"unlimited"``."""

    code: Annotated[str, Field(min_length=1, max_length=64)]
    kind: VoucherKind
    percent: Percent | None = None
    amount: Amounts | None = None
    sku: Name | None = None  # for kind "item": the product it takes ``amount`` off (per unit)
    label: str | None = None
    owner: Name | None = None  # customer id; absent means anyone may use it
    usage_limit: Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_limit)] = 1
    valid_from: Instant | None = None
    valid_until: Instant | None = None
    min_basket: Amounts | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        _check_value(self.kind, self.percent, self.amount, self.sku)
        return self


def _check_value(kind: str, percent: Any, amount: Any, sku: Any) -> None:
    if kind == "percent" and percent is None:
        raise ValueError("percent: required for a percent voucher")
    if kind in ("fixed", "item") and amount is None:
        raise ValueError(f"amount: required for a {kind} voucher")
    if kind == "item" and sku is None:
        raise ValueError("sku: required for an item voucher")


class OfferTemplate(ProgramModel):
    """An offer the shop issues into chosen customers' wallets (``issue_offer``)."""

    id: Name
    kind: Literal["percent_off_check", "fixed_off_check", "fixed_off_item"]
    percent: Percent | None = None
    amount: Amounts | None = None
    sku: Name | None = None
    label: str | None = None
    valid_days: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        kind = {"percent_off_check": "percent", "fixed_off_check": "fixed", "fixed_off_item": "item"}[self.kind]
        _check_value(kind, self.percent, self.amount, self.sku)
        return self


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


class AmountRange(ProgramModel):
    min: Amounts | None = None
    max: Amounts | None = None


class ProductsCondition(ProgramModel):
    """Presence or quantity of products: any of ``any`` (or all of ``all``) with a minimum quantity."""

    any: list[Name] = []
    all: list[Name] = []
    min_quantity: Annotated[Decimal, Field(gt=0)] = Decimal(1)

    @model_validator(mode="after")
    def _some(self) -> Self:
        if not self.any and not self.all:
            raise ValueError("give `any` or `all`")
        return self


class Conditions(ProgramModel):
    """Every condition given must hold (AND). An empty ``when`` always holds."""

    basket_amount: AmountRange | None = None
    skus: ProductsCondition | None = None
    categories: ProductsCondition | None = None
    role: list[Name] | None = None
    tier: list[Name] | None = None
    segment: list[Name] | None = None
    first_order: bool | None = None
    not_previously_granted: bool = False
    channel: list[Name] | None = None
    valid_from: Instant | None = None
    valid_until: Instant | None = None


class _Targets(ProgramModel):
    # Which lines a line action touches: matching SKUs or categories (none given: every line).
    skus: list[Name] = []
    categories: list[Name] = []


class PercentOffOrder(ProgramModel):
    action: Literal["percent_off_order"]
    percent: Percent


class FixedOffOrder(ProgramModel):
    action: Literal["fixed_off_order"]
    amount: Amounts


class PercentOffLine(_Targets):
    action: Literal["percent_off_line"]
    percent: Percent


class FixedOffLine(_Targets):
    action: Literal["fixed_off_line"]
    amount: Amounts  # per unit, never more than the unit price


class SpecialPrice(ProgramModel):
    action: Literal["special_price"]
    sku: Name
    price: Amounts  # unit price; applied only when below the line's price


class FreeGift(ProgramModel):
    action: Literal["free_gift"]
    sku: Name
    quantity: Annotated[Decimal, Field(gt=0)] = Decimal(1)
    name: str | None = None


class FreeShipping(ProgramModel):
    action: Literal["free_shipping"]


class BonusPoints(ProgramModel):
    action: Literal["bonus_points"]
    points: Annotated[int, Field(gt=0)]


class IssueOffer(ProgramModel):
    """Put an offer (one of the program's ``offers`` templates) into the member's wallet when the
    order is exported; usable in any channel. Nothing is issued by a quote."""

    action: Literal["issue_offer"]
    offer: Name


class ShowMessage(ProgramModel):
    action: Literal["message"]
    text: Annotated[str, Field(min_length=1, max_length=500)]


Action = Annotated[
    PercentOffOrder | FixedOffOrder | PercentOffLine | FixedOffLine | SpecialPrice | FreeGift
    | FreeShipping | BonusPoints | ShowMessage | IssueOffer,
    Field(discriminator="action"),
]
ACTION_NAMES = frozenset(
    ["percent_off_order", "fixed_off_order", "percent_off_line", "fixed_off_line", "special_price", "free_gift", "free_shipping", "bonus_points", "message", "issue_offer"]
)


class Rule(ProgramModel):
    id: Name
    label: str | None = None
    priority: int = 0  # higher runs first; ties keep file order
    stop: bool = False  # when this rule applies, no lower-priority rule does
    when: Conditions = Conditions.model_construct()  # the defaults, without building a validator
    then: list[Action]

    @field_validator("then", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("then")
    @classmethod
    def _not_empty(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("a rule needs at least one action")
        return value


class Promotions(ProgramModel):
    hit_policy: Literal["all", "first"] = "all"  # "first": only the highest-priority matching rule


# ---------------------------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------------------------


class Program(ProgramModel):
    name: str = "Loyalty program"
    currency: str = "EUR"
    currencies: list[str] = []  # accepted basket currencies; default: just ``currency``
    points: PointsPolicy = PointsPolicy.model_construct()  # the defaults, without building a validator
    tiers: list[Tier] = []
    products: list[ProductEarn] = []
    categories: list[CategoryEarn] = []
    catalog: list[CatalogEntry] = []
    cashback: CashbackPolicy = CashbackPolicy.model_construct()  # the defaults, without building a validator
    vouchers: list[VoucherDef] = []
    offers: list[OfferTemplate] = []
    promotions: Promotions = Promotions.model_construct()  # the defaults, without building a validator
    rules: list[Rule] = []

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not is_currency(value):
            raise ValueError(f"unknown ISO 4217 currency {value!r}")
        return value

    @field_validator("currencies")
    @classmethod
    def _currencies(cls, value: list[str]) -> list[str]:
        for code in value:
            if not is_currency(code):
                raise ValueError(f"unknown ISO 4217 currency {code!r}")
        return value

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for field, key in (("rules", "id"), ("vouchers", "code"), ("offers", "id"), ("tiers", "name"),
                           ("products", "sku"), ("catalog", "sku"), ("categories", "category")):
            seen: set[str] = set()
            for index, item in enumerate(getattr(self, field)):
                value = getattr(item, key)
                if value in seen:
                    raise ValueError(f"{field}[{index}].{key}: duplicate {value!r}")
                seen.add(value)
        offer_ids = {offer.id for offer in self.offers}
        for index, rule in enumerate(self.rules):
            for position, action in enumerate(rule.then):
                if isinstance(action, IssueOffer) and action.offer not in offer_ids:
                    raise ValueError(f"rules[{index}].then[{position}].offer: no offer template {action.offer!r}")
        if not self.currencies:
            object.__setattr__(self, "currencies", [self.currency])
        elif self.currency not in self.currencies:
            raise ValueError("currencies: must include the program's currency")
        return self

    @property
    def accepted_currencies(self) -> frozenset[str]:
        return frozenset(self.currencies)

    def tiers_by_threshold(self) -> list[Tier]:
        return sorted(self.tiers, key=lambda tier: tier.threshold)

    def offer_template(self, template_id: str) -> OfferTemplate:
        for offer in self.offers:
            if offer.id == template_id:
                return offer
        raise ConfigError(f"program has no offer template {template_id!r}")


def empty_program() -> Program:
    """The empty program (no earning, no rules), equal to ``Program()`` but made without building the
    program's validator: a process that runs it never validates a program."""
    program = Program.model_construct()
    object.__setattr__(program, "currencies", [program.currency])  # what Program's own check sets
    return program


# ---------------------------------------------------------------------------------------------
# Loading, with errors that name the file, the location and the field
# ---------------------------------------------------------------------------------------------


def _location(loc: tuple[Any, ...], data: Any = None) -> str:
    out = ""
    node = data
    for index, part in enumerate(loc):
        if isinstance(part, int):
            # A single `then` table is read as a one-action list; point at the table the reader wrote.
            if not (isinstance(node, dict) and part == 0 and index > 0 and loc[index - 1] == "then"):
                out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        node = node.get(part) if isinstance(node, dict) else None
        if part == BASE:
            continue
        # pydantic puts the tag of a discriminated union (the action name) in the path; a reader
        # looking at the file sees `then.percent`, not `then.percent_off_order.percent`.
        if part in ACTION_NAMES and index > 0 and (loc[index - 1] == "then" or isinstance(loc[index - 1], int)):
            continue
        if part.startswith("function-") or part in ("list", "dict"):
            continue
        out += f".{part}" if out else str(part)
    return out


def program_error(exc: ValidationError, source: str, data: Any = None) -> ConfigError:
    first = exc.errors(include_url=False, include_input=False)[0]
    location = _location(tuple(first["loc"]), data)
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        location = f"{location}.action"
    message = str(first["msg"]).removeprefix("Value error, ")
    # Model-level checks name their own field at the head of the message ("percent: required ...").
    head, sep, tail = message.partition(": ")
    if sep and head.replace("_", "").replace("[", "").replace("]", "").replace(".", "").isalnum() and " " not in head:
        location = f"{location}.{head}" if location else head
        message = tail
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return ConfigError(f"program file {source}: {location or '(top level)'}: {message}{suffix}", field=location or None)


def parse_program(text: str, source: str = "<program>") -> Program:
    """Parse and validate program TOML text; ``source`` names the file in errors."""
    import tomllib  # only a program file needs the TOML parser, not the empty program

    try:
        # Decimals straight from the text: a rate of 1.1 must stay 1.1, not a float near it.
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"program file {source}: not valid TOML: {exc}") from None
    return program_from_dict(data, source)


def program_from_dict(data: dict[str, Any], source: str = "<program>") -> Program:
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        raise program_error(exc, source, data) from None


def load_program(path: str | Path) -> Program:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"program file {path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    return parse_program(text, str(path))
