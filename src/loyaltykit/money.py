"""Money: a Decimal amount with an ISO 4217 currency.

Amounts are quantized in exactly one place, :func:`quantize`, to the currency's minor-unit
exponent with ``ROUND_HALF_UP`` (half a cent rounds away from zero, as a shopper expects on a
receipt). Arithmetic between two currencies raises :class:`CurrencyMismatchError`; floats are
refused outright, because a float has already lost the cent before we see it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from .errors import CurrencyMismatchError, invalid_data

ROUNDING = ROUND_HALF_UP

# ISO 4217 active codes whose minor unit is not 2. Every other code listed in _CODES has 2.
_EXPONENTS = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"], 0
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}
_CODES = frozenset(
    ["AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG"]
)

#: Largest absolute amount accepted anywhere in the kit (a basket total of a trillion is a bug).
MAX_AMOUNT = Decimal("1000000000000")
#: Most decimal places a Decimal input may carry (quantities, prices, amounts, points, percents).
#: ``1E-20000`` is not something a shop means, and it would blow up every body and sum built on it.
MAX_PLACES = 8
#: Most significant digits a Decimal input may carry.
MAX_DIGITS = 24


def is_currency(code: str) -> bool:
    return code in _CODES


def exponent(currency: str) -> int:
    """Minor-unit exponent of an ISO 4217 currency (EUR 2, JPY 0, KWD 3)."""
    if currency not in _CODES:
        raise ValueError(f"unknown ISO 4217 currency {currency!r}")
    return _EXPONENTS.get(currency, 2)


@functools.cache
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """The one place where amounts are rounded: to the currency's exponent, ROUND_HALF_UP."""
    return amount.quantize(_quantum(currency), ROUNDING)  # positional: a keyword costs as much again


def quantize_all(amounts: Iterable[Decimal], currency: str) -> list[Decimal]:
    """:func:`quantize` of each amount (the same rounding), mapped in C: no Python call per amount."""
    return list(map(Decimal.quantize, amounts, itertools.repeat(_quantum(currency)), itertools.repeat(ROUNDING)))


_ONE = Decimal(1)
_CENT = Decimal("0.01")
_WIDE = Decimal(10) ** (MAX_DIGITS - 2)


def to_decimal(value: Any) -> Decimal:
    """Coerce int/str/Decimal to a finite Decimal. Floats and NaN/inf are refused."""
    if isinstance(value, (bool, float)):
        raise ValueError("amounts must be Decimal, int or str, never float")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a decimal amount: {value!r}") from exc
    if not result.is_finite():
        raise ValueError("amount must be finite (no NaN or infinity)")
    return bounded(result)


def bounded(value: Decimal) -> Decimal:
    """Refuse a Decimal with more than ``MAX_PLACES`` places or ``MAX_DIGITS`` digits (trailing zeros
    aside), and return it without trailing zeros beyond the point ("2.50" stays "2.50")."""
    if (value.same_quantum(_ONE) or value.same_quantum(_CENT)) and -_WIDE < value < _WIDE:
        return value  # the common cases (0 or 2 places, at most 22 digits before the point): within both limits
    _sign, digits, exp = value.as_tuple()
    if not isinstance(exp, int):
        raise AssertionError("exp is an int here")
    if -MAX_PLACES <= exp <= 0 and len(digits) <= MAX_DIGITS:
        return value  # within both limits as written, so normalised too
    if exp > 32:  # 1E+40: far beyond any limit; checked before normalising it
        raise ValueError("number is too large")
    normal = value.normalize()
    _, ndigits, nexp = normal.as_tuple()
    if not isinstance(nexp, int):
        raise AssertionError("nexp is an int here")
    if -nexp > MAX_PLACES:
        raise ValueError(f"at most {MAX_PLACES} decimal places")
    if len(ndigits) > MAX_DIGITS:
        raise ValueError(f"at most {MAX_DIGITS} significant digits")
    if exp < -MAX_PLACES or len(digits) > MAX_DIGITS + MAX_PLACES:
        # trailing zeros only ("1.000000000000"): keep the value, drop the padding
        return normal if nexp <= 0 else normal.quantize(Decimal(1))
    return value


class KitBase(BaseModel):
    """Base of every kit model: bad data raises the kit's ``InvalidDataError`` (an
    ``InvalidRequestError`` naming the field), never pydantic's ``ValidationError``."""

    # Never validated itself: no validator built for it at import (every subclass sets its own config).
    model_config = ConfigDict(defer_build=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid_data(exc) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:  # assigning to a frozen model
            raise invalid_data(exc) from None

    # Validation of nested data must not call the __init__ above: it would validate each model a
    # second time (pydantic calls a custom __init__ per nested model). Errors are translated where
    # validation starts instead: __init__, model_validate and model_validate_json.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise invalid_data(exc) from None

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            raise invalid_data(exc) from None


class Money(KitBase):
    """An amount in one currency. Frozen; quantized on construction."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    amount: Decimal
    currency: str

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: Any) -> str:
        if not isinstance(value, str) or not is_currency(value):
            raise ValueError(f"unknown ISO 4217 currency {value!r}")
        return value

    @field_validator("amount", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Decimal:
        result = to_decimal(value)
        if abs(result) > MAX_AMOUNT:
            raise ValueError(f"amount exceeds the kit's limit of {MAX_AMOUNT}")
        return result

    def model_post_init(self, __context: Any) -> None:
        object.__setattr__(self, "amount", quantize(self.amount, self.currency))

    # Already-valid input (a Decimal, int or str amount; a known currency; within the limits) is
    # built without a pydantic run, through the very checks of the validators above (``_checked``);
    # anything else takes the validating path, which raises the error naming the field.
    def __init__(self, /, **data: Any) -> None:
        if len(data) == 2 and type(self) is Money:
            currency = data.get("currency")
            value = _checked(data.get("amount", _MISSING), currency)
            if value is not None:
                _fill(self, {"amount": value, "currency": currency}, _MONEY_FIELDS)
                return
        super().__init__(**data)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="wrap")
    @classmethod
    def _fast(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # nested Money given as a plain dict (a request body, a stored order): the same quick path
        if type(data) is dict and len(data) == 2 and cls is Money:
            currency = data.get("currency")
            value = _checked(data.get("amount", _MISSING), currency)
            if value is not None:
                return new_money(value, currency)  # type: ignore[arg-type]
        return handler(data)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        return cls(amount=amount, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        if type(currency) is str and currency in _CODES:
            return new_money(zero_amount(currency), currency)
        return cls(amount=Decimal(0), currency=currency)  # refused, naming the field

    @classmethod
    def _exact(cls, amount: Decimal, currency: str) -> Money:
        """The result of arithmetic on valid Money: rounded by :func:`quantize` like any Money,
        without a pydantic validation run: the currency is already known valid."""
        if abs(amount) > MAX_AMOUNT:
            return cls(amount=amount, currency=currency)  # refused as the constructor refuses it
        return new_money(quantize(amount, currency), currency)

    # -- arithmetic ---------------------------------------------------------------------------
    def _same(self, other: Any, op: str) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {op} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(
                f"cannot {op} {self.currency} and {other.currency}",
                field="currency",
            )
        return other

    def __add__(self, other: Any) -> Money:
        other = self._same(other, "add")
        return Money._exact(self.amount + other.amount, self.currency)

    def __sub__(self, other: Any) -> Money:
        other = self._same(other, "subtract")
        return Money._exact(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Any) -> Money:
        if isinstance(factor, Money):
            raise TypeError("cannot multiply Money by Money")
        return Money._exact(self.amount * to_decimal(factor), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money._exact(-self.amount, self.currency)

    def __lt__(self, other: Any) -> bool:
        return self.amount < self._same(other, "compare").amount

    def __le__(self, other: Any) -> bool:
        return self.amount <= self._same(other, "compare").amount

    def __gt__(self, other: Any) -> bool:
        return self.amount > self._same(other, "compare").amount

    def __ge__(self, other: Any) -> bool:
        return self.amount >= self._same(other, "compare").amount

    def min(self, other: Money) -> Money:
        return self if self <= other else other

    def max(self, other: Money) -> Money:
        return self if self >= other else other

    def is_zero(self) -> bool:
        return self.amount == 0

    def minor_units(self) -> int:
        """The amount in minor units (cents), for engines that speak integers."""
        return int(self.amount.scaleb(exponent(self.currency)))

    @classmethod
    def from_minor_units(cls, units: int, currency: str) -> Money:
        if type(units) is int and type(currency) is str and currency in _CODES:
            return cls._exact(Decimal(units).scaleb(-_EXPONENTS.get(currency, 2)), currency)
        return cls(amount=Decimal(units).scaleb(-exponent(currency)), currency=currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


_MISSING = object()
_set = object.__setattr__


def _checked(amount: Any, currency: Any) -> Decimal | None:
    """The amount quantized, when both fields are what the validators accept as they are (a plain
    Decimal, int or str amount within the limits; a known currency); None otherwise, and the
    validating path then raises the error naming the field."""
    if type(currency) is not str or currency not in _CODES:
        return None
    kind = type(amount)
    if kind is Decimal:
        value = amount
    elif kind is int:
        value = Decimal(amount)
    elif kind is str:
        try:
            value = Decimal(amount)
        except InvalidOperation:
            return None
    else:
        return None
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        return None
    result: Decimal = value.quantize(_quantum(currency), ROUNDING)
    if result == value and value:
        # no more places than the currency has, and within MAX_AMOUNT: within MAX_PLACES and
        # MAX_DIGITS once normalised, so the places/digits check passes (zero may carry an absurd
        # exponent, 0E+40, which that check refuses: it takes the check)
        return result
    try:
        bounded(value)
    except ValueError:
        return None
    return result


def _fill(model: BaseModel, data: dict[str, Any], given: set[str]) -> None:
    # what a validation run leaves on an instance: its fields, those given marked set, no extra, no private
    _set(model, "__dict__", data)
    _set(model, "__pydantic_fields_set__", given)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)


_M = TypeVar("_M", bound=BaseModel)


def built(cls: type[_M], data: dict[str, Any], given: set[str] | None = None) -> _M:
    """An instance of the kit model ``cls`` from values that are valid by construction (every field,
    as a validation run would leave them; ``given``: the fields marked set, all by default), without
    the validation run. Only for figures the kit derives itself from validated ones, never for input."""
    model = object.__new__(cls)
    _fill(model, data, set(data) if given is None else given)
    return model


# Every Money has both fields set, and Money is frozen (pydantic never adds to the set of a frozen
# model; ``model_copy`` copies it first): one set serves them all. A set per Money was one more
# object for the garbage collector to track and traverse for as long as the Money lives (the
# amounts of a batch of orders, for a whole export).
_MONEY_FIELDS = {"amount", "currency"}


def new_money(amount: Decimal, currency: str) -> Money:
    """A Money from an amount already quantized to ``currency``, a known currency (what ``built``
    does, inlined: Money is built this way for every amount read or computed)."""
    money = object.__new__(Money)
    _set(money, "__dict__", {"amount": amount, "currency": currency})
    _set(money, "__pydantic_fields_set__", _MONEY_FIELDS)
    _set(money, "__pydantic_extra__", None)
    _set(money, "__pydantic_private__", None)
    return money


@functools.cache
def zero_amount(currency: str) -> Decimal:
    """The amount of ``Money.zero(currency)`` (a known currency), without the Money."""
    return quantize(Decimal(0), currency)


def allocate(amount: Money, weights: Sequence[Decimal | Money]) -> list[Money]:
    """Split ``amount`` over ``weights`` by largest remainder, in minor units.

    The parts sum exactly to ``amount``; each part is proportional to its weight, rounded down, and
    the units left over go one each to the largest remainders (ties: the earlier weight). A part
    never exceeds its weight when the amount does not exceed the weights' sum. Weights of zero get
    nothing, unless every weight is zero (then the amount is spread evenly).
    """
    currency = amount.currency
    values = [w.amount if isinstance(w, Money) else to_decimal(w) for w in weights]
    if not values:
        raise ValueError("allocate needs at least one weight")
    if any(v < 0 for v in values):
        raise ValueError("allocation weights are not negative")
    units = amount.minor_units()
    if sum(values) == 0:
        values = [Decimal(1)] * len(values)
    # Exact integer arithmetic: every weight over one common denominator, so that each quota
    # |units|·w/W is a quotient and a remainder of integers (ordered as the fractions would be).
    ratios = [v.as_integer_ratio() for v in values]
    common = math.lcm(*(d for _, d in ratios))
    scaled = [n * (common // d) for n, d in ratios]
    whole = sum(scaled)
    sign = -1 if units < 0 else 1
    magnitude = abs(units)
    parts: list[int] = []
    rests: list[int] = []
    for w in scaled:
        part, rest = divmod(magnitude * w, whole)
        parts.append(part)
        rests.append(rest)
    left = magnitude - sum(parts)
    if left:
        for i in sorted(range(len(rests)), key=lambda i: (-rests[i], i))[:left]:
            parts[i] += 1
    return [Money.from_minor_units(sign * p, currency) for p in parts]


def prorate(amount: Money, before: Fraction, after: Fraction) -> Money:
    """The share of ``amount`` between two cumulative fractions, rounded so that successive shares
    (0 → f1 → f2 → … → 1) sum exactly to ``amount``: each is round(amount·after) - round(amount·before)."""
    if not 0 <= before <= after <= 1:
        raise ValueError("prorate needs 0 <= before <= after <= 1")
    return _share(amount, after) - _share(amount, before)


def _share(amount: Money, fraction: Fraction) -> Money:
    units = Fraction(amount.minor_units()) * fraction
    whole = int(units)  # toward zero
    rest = units - whole
    if abs(rest) * 2 >= 1:  # ROUND_HALF_UP, away from zero
        whole += 1 if units > 0 else -1
    return Money.from_minor_units(whole, amount.currency)


def total(amounts: list[Money], currency: str) -> Money:
    """Sum of amounts in one currency (zero when empty)."""
    result = Money.zero(currency)  # an unknown currency is refused here, naming the field
    # Money's own addition, step by step, on the Decimals: the same checks (type, currency, the limit
    # after each step) and the same sum, with one Money built at the end instead of one per step.
    value = result.amount
    for amount in amounts:
        value += result._same(amount, "add").amount
        if abs(value) > MAX_AMOUNT:
            return Money._exact(value, currency)  # refused as the constructor refuses it
    return new_money(quantize(value, currency), currency) if amounts else result
