"""Money: a Decimal amount with an ISO 4217 currency.

Amounts are quantized in exactly one place, :func:`quantize`, to the currency's minor-unit
exponent with ``ROUND_HALF_UP`` (half a cent rounds away from zero, as a shopper expects on a
receipt). Arithmetic between two currencies raises :class:`CurrencyMismatchError`; floats are
refused outright, because a float has already lost the cent before we see it.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from .errors import CurrencyMismatchError

ROUNDING = ROUND_HALF_UP

# ISO 4217 active codes whose minor unit is not 2. Every other code listed in _CODES has 2.
_EXPONENTS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}
_CODES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF
    XPF YER ZAR ZMW ZWG
    """.split()
)

#: Largest absolute amount accepted anywhere in the kit (a basket total of a trillion is a bug).
MAX_AMOUNT = Decimal("1000000000000")


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
    return amount.quantize(_quantum(currency), rounding=ROUNDING)


def to_decimal(value: Any) -> Decimal:
    """Coerce int/str/Decimal to a finite Decimal. Floats and NaN/inf are refused."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("amounts must be Decimal, int or str, never float")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a decimal amount: {value!r}") from exc
    if not result.is_finite():
        raise ValueError("amount must be finite (no NaN or infinity)")
    return result


class Money(BaseModel):
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

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        return cls(amount=amount, currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    @classmethod
    def _exact(cls, amount: Decimal, currency: str) -> Money:
        """The result of arithmetic on valid Money: rounded by :func:`quantize` like any Money,
        without a pydantic validation run: the currency is already known valid."""
        if abs(amount) > MAX_AMOUNT:
            return cls(amount=amount, currency=currency)  # refused as the constructor refuses it
        money = object.__new__(cls)
        object.__setattr__(money, "__dict__", {"amount": quantize(amount, currency), "currency": currency})
        object.__setattr__(money, "__pydantic_fields_set__", {"amount", "currency"})
        object.__setattr__(money, "__pydantic_extra__", None)
        object.__setattr__(money, "__pydantic_private__", None)
        return money

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
        return cls(amount=Decimal(units).scaleb(-exponent(currency)), currency=currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def total(amounts: list[Money], currency: str) -> Money:
    """Sum of amounts in one currency (zero when empty)."""
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
