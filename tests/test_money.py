"""Money: Decimal + ISO 4217 currency, quantized once with ROUND_HALF_UP, never mixed, never float."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from loyaltykit import CurrencyMismatchError, InvalidRequestError, LoyaltyError, Money
from loyaltykit.money import MAX_AMOUNT, exponent, quantize, to_decimal, total

CURRENCIES = ["EUR", "USD", "JPY", "KWD", "GBP", "BHD", "CLF"]

amounts = st.decimals(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT, allow_nan=False, allow_infinity=False, places=6)


@pytest.mark.parametrize(("currency", "expected"), [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3)])
def test_exponent_of_currency(currency, expected):
    assert exponent(currency) == expected


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("0.005", "EUR", "0.01"),  # half a cent rounds up
        ("0.004", "EUR", "0.00"),
        ("-0.005", "EUR", "-0.01"),  # away from zero, not toward +inf
        ("2.675", "EUR", "2.68"),  # a float would make this 2.67
        ("0.5", "JPY", "1"),
        ("1.5", "JPY", "2"),
        ("2.5", "JPY", "3"),  # not banker's rounding
        ("0.0005", "KWD", "0.001"),
        ("1.2344", "KWD", "1.234"),
        ("10", "EUR", "10.00"),
    ],
)
def test_quantization_is_round_half_up_at_currency_exponent(raw, currency, expected):
    money = Money.of(raw, currency)
    assert money.amount == Decimal(expected)
    assert money.amount.as_tuple().exponent == -exponent(currency)


@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_construction_quantizes_exactly_once_and_is_idempotent(amount, currency):
    money = Money.of(amount, currency)
    assert money.amount == quantize(amount, currency)
    assert Money.of(money.amount, currency) == money
    assert -exponent(currency) == money.amount.as_tuple().exponent
    # Never more than half a minor unit away from the exact amount.
    assert abs(money.amount - amount) <= Decimal(1).scaleb(-exponent(currency)) / 2


@given(a=amounts, b=amounts, currencies=st.lists(st.sampled_from(CURRENCIES), min_size=2, max_size=2, unique=True))
def test_arithmetic_never_mixes_currencies(a, b, currencies):
    x = Money.of(a, currencies[0])
    y = Money.of(b, currencies[1])
    for op in (
        lambda: x + y,
        lambda: x - y,
        lambda: x < y,
        lambda: x <= y,
        lambda: x > y,
        lambda: x >= y,
        lambda: x.min(y),
        lambda: x.max(y),
        lambda: total([x, y], currencies[0]),
    ):
        with pytest.raises(CurrencyMismatchError) as info:
            op()
        assert info.value.code == "currency_mismatch"
        assert isinstance(info.value, InvalidRequestError)


@given(a=st.decimals(min_value=-10**9, max_value=10**9, places=2), b=st.decimals(min_value=-10**9, max_value=10**9, places=2))
def test_same_currency_arithmetic_is_exact(a, b):
    x, y = Money.of(a, "EUR"), Money.of(b, "EUR")
    assert (x + y).amount == a + b
    assert (x - y).amount == a - b
    assert (x + y).currency == "EUR"
    assert (x < y) == (a < b)


def test_multiplication_quantizes_and_refuses_float_and_money():
    assert (Money.of("0.99", "EUR") * 3).amount == Decimal("2.97")
    assert (Money.of("10.00", "EUR") * Decimal("0.333")).amount == Decimal("3.33")
    assert (Money.of("0.01", "EUR") * Decimal("0.5")).amount == Decimal("0.01")  # half up
    with pytest.raises(ValueError):
        Money.of("1.00", "EUR") * 1.5
    with pytest.raises(TypeError):
        Money.of("1.00", "EUR") * Money.of("1.00", "EUR")
    with pytest.raises(TypeError):
        Money.of("1.00", "EUR") + 1


@pytest.mark.parametrize("bad", [0.1, 1.0, float("nan"), float("inf"), float("-inf"), "NaN", "nan", "Infinity",
                                 "-inf", "sNaN", Decimal("NaN"), Decimal("Infinity"), Decimal("sNaN"), True,
                                 "abc", "", None, [1]])
def test_floats_nan_inf_and_garbage_refused(bad):
    with pytest.raises(InvalidRequestError) as info:
        Money.of(bad, "EUR")
    assert info.value.field == "amount" and isinstance(info.value, LoyaltyError)
    if not isinstance(bad, str | None | list):
        with pytest.raises(ValueError):
            to_decimal(bad)


@pytest.mark.parametrize("currency", ["eur", "EURO", "XXX", "ABC", "", None, 978])
def test_unknown_currency_refused(currency):
    with pytest.raises(InvalidRequestError) as info:
        Money.of("1.00", currency)
    assert info.value.field == "currency"


def test_absurd_amount_refused():
    Money.of(MAX_AMOUNT, "EUR")
    with pytest.raises(InvalidRequestError):
        Money.of(MAX_AMOUNT + 1, "EUR")


def test_minor_units_round_trip():
    assert Money.of("12.34", "EUR").minor_units() == 1234
    assert Money.of("1234", "JPY").minor_units() == 1234
    assert Money.of("1.234", "KWD").minor_units() == 1234
    assert Money.from_minor_units(1234, "KWD") == Money.of("1.234", "KWD")
    assert Money.from_minor_units(-5, "EUR").amount == Decimal("-0.05")


def test_money_is_frozen():
    money = Money.of("1.00", "EUR")
    with pytest.raises(InvalidRequestError):
        money.amount = Decimal(2)  # type: ignore[misc]


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10**9, max_value=10**9),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10**3, max_value=10**3),
    st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_arithmetic_results_are_the_money_the_constructor_builds(a, b, currency):
    """Arithmetic skips re-validating a known currency; its results must be indistinguishable."""
    x, y = Money.of(a, currency), Money.of(b, currency)
    for result, amount in ((x + y, x.amount + y.amount), (x - y, x.amount - y.amount),
                           (x * b, x.amount * b), (-x, -x.amount)):
        built = Money.of(amount, currency)
        assert result == built and hash(result) == hash(built)
        assert result.amount.as_tuple() == built.amount.as_tuple()  # same digits, same exponent
        assert result.model_dump() == built.model_dump() and result.model_dump_json() == built.model_dump_json()
        assert result.model_fields_set == built.model_fields_set


def test_arithmetic_beyond_the_limit_is_refused_like_construction():
    with pytest.raises(InvalidRequestError) as info:
        Money.of(MAX_AMOUNT, "EUR") + Money.of("0.01", "EUR")
    assert info.value.field == "amount"
    with pytest.raises(InvalidRequestError) as info:
        Money.of(MAX_AMOUNT, "EUR") * 2
    assert info.value.field == "amount"


@given(st.one_of(st.decimals(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**14, max_value=10**14)),
       st.sampled_from(["EUR", "JPY", "KWD", "CLF", "XXX", "eur"]))
def test_of_is_the_constructor(amount, currency):
    """Money.of's quick path gives exactly what the validating constructor gives, errors included."""
    from loyaltykit.errors import InvalidDataError

    try:
        expected = Money(amount=amount, currency=currency)
    except InvalidDataError as exc:
        with pytest.raises(InvalidDataError) as raised:
            Money.of(amount, currency)
        assert (raised.value.field, raised.value.message) == (exc.field, exc.message)
    else:
        got = Money.of(amount, currency)
        assert got == expected and str(got.amount) == str(expected.amount)
        assert got.model_fields_set == expected.model_fields_set


# -- the quick construction paths give exactly what the validating path gives ----------------------

class _Validated(Money):
    """Money built by the validators alone: the quick paths are for ``Money`` itself only."""


def _validated(amount, currency):
    return _Validated(amount=amount, currency=currency)


def _same_money(got, expected):
    assert type(got) is Money
    assert (got.amount, got.currency) == (expected.amount, expected.currency)
    assert got.amount.as_tuple() == expected.amount.as_tuple()  # same digits, same exponent
    assert got.model_fields_set == expected.model_fields_set == {"amount", "currency"}
    assert got.model_dump_json() == expected.model_dump_json() and got.model_dump() == expected.model_dump()
    assert got.__pydantic_extra__ is None and got.__pydantic_private__ is None
    assert got == Money.model_construct(amount=expected.amount, currency=expected.currency)


@given(st.one_of(st.decimals(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**14, max_value=10**14),
                 st.decimals(allow_nan=False, allow_infinity=False).map(str), st.text(max_size=8)),
       st.sampled_from(["EUR", "JPY", "KWD", "CLF", "XXX", "eur"]))
def test_every_entry_point_builds_what_the_validators_build(amount, currency):
    """The constructor, a nested dict (a request body), JSON and ``of`` take a quick path for valid
    input; each must give the validators' result, and refuse what they refuse, naming the field."""
    from loyaltykit import Balance
    from loyaltykit.errors import InvalidDataError

    try:
        expected = _validated(amount, currency)
    except InvalidDataError as exc:
        field = exc.field
        for build in (lambda: Money(amount=amount, currency=currency), lambda: Money.of(amount, currency),
                      lambda: Money.model_validate({"amount": amount, "currency": currency})):
            with pytest.raises(InvalidDataError) as raised:
                build()
            assert raised.value.field == field
        with pytest.raises(InvalidDataError) as raised:
            Balance.model_validate({"kind": "cashback", "money": {"amount": amount, "currency": currency}})
        assert raised.value.field == f"money.{field}"
    else:
        _same_money(Money(amount=amount, currency=currency), expected)
        _same_money(Money.of(amount, currency), expected)
        _same_money(Money.model_validate({"amount": amount, "currency": currency}), expected)
        _same_money(Money.model_validate_json(expected.model_dump_json()), expected)
        balance = Balance.model_validate({"kind": "cashback", "money": {"amount": amount, "currency": currency}})
        _same_money(balance.money, expected)
        as_json = json.dumps({"kind": "cashback", "money": {"amount": str(amount), "currency": currency}})
        _same_money(Balance.model_validate_json(as_json).money, _validated(str(amount), currency))


@pytest.mark.parametrize(("data", "field"), [
    ({"amount": "1.00", "currency": "EUR", "note": "x"}, "note"),  # extra field: still refused
    ({"amount": "1.00"}, "currency"),
    ({"currency": "EUR"}, "amount"),
    ({"amount": 1.5, "currency": "EUR"}, "amount"),
    ({"amount": "1.000000001", "currency": "EUR"}, "amount"),  # more than MAX_PLACES places
    ({"amount": "1" * 25, "currency": "EUR"}, "amount"),
    ({"amount": str(MAX_AMOUNT + 1), "currency": "EUR"}, "amount"),
    ({"amount": "1.00", "currency": "XXX"}, "currency"),
])
def test_a_bad_nested_money_names_its_field(data, field):
    from loyaltykit import Line

    with pytest.raises(InvalidRequestError) as info:
        Line.model_validate({"id": "1", "sku": "S", "quantity": 1, "unit_price": data})
    assert info.value.field == f"unit_price.{field}"
    with pytest.raises(InvalidRequestError) as info:
        Money(**data)
    assert info.value.field == field


@pytest.mark.parametrize("currency", ["XXX", "eur", None, 978])
def test_zero_and_minor_units_refuse_an_unknown_currency(currency):
    for build in (lambda: Money.zero(currency), lambda: Money.from_minor_units(5, currency)):
        with pytest.raises((InvalidRequestError, ValueError)) as info:
            build()
        if isinstance(info.value, InvalidRequestError):
            assert info.value.field == "currency"


@given(st.integers(min_value=-10**16, max_value=10**16), st.sampled_from(CURRENCIES))
def test_zero_and_minor_units_are_the_constructor(units, currency):
    from loyaltykit.errors import InvalidDataError

    _same_money(Money.zero(currency), _validated(Decimal(0), currency))
    amount = Decimal(units).scaleb(-exponent(currency))
    try:
        expected = _validated(amount, currency)
    except InvalidDataError:
        with pytest.raises(InvalidDataError) as raised:
            Money.from_minor_units(units, currency)
        assert raised.value.field == "amount"
    else:
        _same_money(Money.from_minor_units(units, currency), expected)


def test_total_is_the_sum_and_refuses_mixed_currencies_and_the_limit():
    euros = [Money.of("0.10", "EUR")] * 3
    assert total(euros, "EUR") == Money.of("0.30", "EUR")
    assert total([], "JPY") == Money.zero("JPY")
    with pytest.raises(CurrencyMismatchError):
        total([*euros, Money.of("1", "USD")], "EUR")
    with pytest.raises(InvalidRequestError):
        total([Money.of(MAX_AMOUNT, "EUR"), Money.of(MAX_AMOUNT, "EUR"), -Money.of(MAX_AMOUNT, "EUR")], "EUR")


def _bounded_as_specified(value: Decimal) -> Decimal:
    """The places/digits rule written plainly: refuse beyond the limits (trailing zeros aside),
    drop padding beyond them, keep anything else exactly as written."""
    from loyaltykit.money import MAX_DIGITS, MAX_PLACES

    _sign, digits, exp = value.as_tuple()
    if exp > 32:
        raise ValueError("number is too large")
    normal = value.normalize()
    _, ndigits, nexp = normal.as_tuple()
    if -nexp > MAX_PLACES or len(ndigits) > MAX_DIGITS:
        raise ValueError("beyond the limits")
    if exp < -MAX_PLACES or len(digits) > MAX_DIGITS + MAX_PLACES:
        return normal if nexp <= 0 else normal.quantize(Decimal(1))
    return value


@given(st.one_of(st.decimals(allow_nan=False, allow_infinity=False),
                 st.decimals(allow_nan=False, allow_infinity=False, places=2),
                 st.integers(min_value=-10**26, max_value=10**26).map(Decimal),
                 st.integers(min_value=-10**26, max_value=10**26).map(lambda n: Decimal(n).scaleb(-2))))
def test_bounded_keeps_refuses_and_trims_as_specified(value):
    from loyaltykit.money import bounded

    try:
        expected = _bounded_as_specified(value)
    except ValueError:
        with pytest.raises(ValueError):
            bounded(value)
    else:
        assert bounded(value).as_tuple() == expected.as_tuple()


def test_money_share_no_state_through_their_fields_set():
    """Money built on the quick paths share one fields set: frozen, pydantic never adds to it, and a
    copy gets a set of its own before its changes are marked."""
    a, b = Money.of("1.00", "EUR"), Money.zero("EUR") + Money.of("2.00", "EUR")
    odd = a.model_copy(update={"note": "x"})
    assert odd.model_fields_set == {"amount", "currency", "note"}
    assert a.model_fields_set == b.model_fields_set == Money.of("3", "JPY").model_fields_set == {"amount", "currency"}
    with pytest.raises(InvalidRequestError):
        b.note = "x"  # type: ignore[attr-defined]
    assert b.model_fields_set == {"amount", "currency"}
