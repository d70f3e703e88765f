"""Request bodies carry Decimal amounts as exact JSON numbers; no float on the way."""

import json
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from loyaltykit import wire


def test_decimals_are_written_with_their_own_digits():
    body = {"amount": Decimal("19.990"), "lines": [{"qty": Decimal("1E+2")}, Decimal("0.1")], "n": 3, "s": "19.99"}
    assert wire.dumps(body) == b'{"amount":19.990,"lines":[{"qty":100},0.1],"n":3,"s":"19.99"}'


def test_a_string_that_looks_like_the_marker_is_left_alone():
    assert wire.loads(wire.dumps({"a": "__decimal_0", "b": Decimal("1.5")})) == {"a": "__decimal_0", "b": Decimal("1.5")}


def test_floats_and_non_finite_amounts_are_refused():
    with pytest.raises(TypeError):
        wire.dumps({"amount": 19.99})
    with pytest.raises(ValueError):
        wire.dumps({"amount": Decimal("NaN")})


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**12, max_value=10**12))
def test_round_trip_is_exact(value):
    assert wire.loads(wire.dumps({"v": value}))["v"] == value


def test_many_decimals_each_land_in_their_own_place():
    # Markers _1 and _10.._19 share a prefix: each number must still go to its own slot.
    body = {"lines": [{"n": index, "amount": Decimal(index) / 100} for index in range(120)]}
    assert wire.loads(wire.dumps(body)) == body


@pytest.mark.parametrize("body", [{"a": 1.0}, {"a": [1e20]}, {"a": {"b": -0.5}}, 2.5, [1, 2.0], {"a": [{"b": [3.25]}]}])
def test_a_float_anywhere_is_refused(body):
    with pytest.raises(TypeError):
        wire.dumps(body)


def test_strings_that_look_like_floats_are_text_not_floats():
    body = {"note": "a:1.5, [2e5", "quoted": 'say "3.5"', "amount": Decimal("1.50")}
    assert wire.dumps(body) == b'{"note":"a:1.5, [2e5","quoted":"say \\"3.5\\"","amount":1.50}'


@pytest.mark.parametrize(("value", "error"), [
    (Decimal("Infinity"), ValueError), (Decimal("-Infinity"), ValueError), (Decimal("sNaN"), ValueError),
    (object(), TypeError), ({1, 2}, TypeError),
])
def test_what_is_no_json_number_is_refused_with_its_own_error(value, error):
    from datetime import UTC, date, datetime

    with pytest.raises(error):
        wire.dumps({"lines": [{"a": Decimal("1.5"), "b": value}]})
    for day in (date(2026, 1, 2), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)):  # their str() is text, not a number
        with pytest.raises(TypeError, match="not JSON serializable"):
            wire.dumps({"at": day, "amount": Decimal("2.50")})


def test_a_float_after_a_comma_or_in_a_list_is_refused_among_many_decimals():
    lines = [{"id": f"l{n}", "price": Decimal(n) / 7, "qty": n} for n in range(200)]
    for body in ({"lines": lines, "tail": [1, 2, 3.5]}, {"lines": [*lines, 0.25]}, {"lines": lines, "x": -1e-7}):
        with pytest.raises(TypeError):
            wire.dumps(body)


@pytest.mark.parametrize("content", [
    b'{"a":1.50,"b":[1,2e3,-0.0]}', '{"a":"\u00fc"}', "\ufeff{}", b"\xef\xbb\xbf[1.5]", '{"a":', b"", "NaN",
    '{"a":"x"}'.encode("utf-16"), bytearray(b"[1.1]"), 5,
])
def test_loads_parses_and_refuses_as_json_loads_with_decimals(content):
    """The shared decoder accepts and refuses exactly what json.loads(parse_float=Decimal) does."""
    def outcome(parse):
        try:
            return "parsed", parse(content)
        except (ValueError, TypeError) as exc:
            return type(exc).__name__, str(exc)

    assert outcome(wire.loads) == outcome(lambda c: json.loads(c, parse_float=Decimal))


# -- Records: objects written to text while a body is built -------------------------------------

_RECORD_FIELDS = ("id", "sku", "qty", "price", "odd%key")
_record_values = st.one_of(
    st.text(max_size=8), st.integers(-10**6, 10**6),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.none(), st.booleans(), st.just(wire.OMIT), st.lists(st.decimals(allow_nan=False, allow_infinity=False), max_size=2),
)


@given(st.lists(st.tuples(*[_record_values] * len(_RECORD_FIELDS)), max_size=6))
def test_records_are_written_as_dumps_writes_the_same_dicts(rows):
    dicts = [{k: v for k, v in zip(_RECORD_FIELDS, row, strict=True) if v is not wire.OMIT} for row in rows]
    records = wire.Records(_RECORD_FIELDS, rows)
    assert wire.dumps({"a": Decimal("1.50"), "items": records}) == wire.dumps({"a": Decimal("1.50"), "items": dicts})
    assert records.rows() == wire.loads(wire.dumps(dicts))
    columns = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in _RECORD_FIELDS]
    assert wire.Records.of_columns(_RECORD_FIELDS, columns) == records


def test_records_of_columns_match_dumps_byte_for_byte():
    rows = [(f"l{n}", f'SKU "{n}" é', n, Decimal(n) / 8, Decimal("-0.00")) for n in range(1, 40)]
    dicts = [dict(zip(_RECORD_FIELDS, row, strict=True)) for row in rows]
    columns = [list(column) for column in zip(*rows, strict=True)]
    assert wire.dumps([wire.Records.of_columns(_RECORD_FIELDS, columns)]) == wire.dumps([dicts])
    columns[2][3] = True  # a bool among ints: the row-by-row checking writer, as dumps writes it
    dicts[3]["qty"] = True
    assert wire.dumps(wire.Records.of_columns(_RECORD_FIELDS, columns)) == wire.dumps(dicts)
    with pytest.raises(ValueError):
        wire.Records.of_columns(("a", "b"), [["x", "y"], [Decimal(1)]])
    with pytest.raises(ValueError):
        wire.Records.of_columns(("a", "b"), [["x"]])
    with pytest.raises(TypeError, match="floats are not sent"):
        wire.Records.of_columns(("a",), [[Decimal(1), 1.5]])


def test_records_of_plain_columns_match_dumps_byte_for_byte():
    rows = [(f"l{n}", f'SKU "{n}" é', n, Decimal(n) / 8, Decimal("-0.00")) for n in range(1, 40)]
    dicts = [dict(zip(_RECORD_FIELDS, row, strict=True)) for row in rows]
    assert wire._write_columns(_RECORD_FIELDS, list(zip(*rows, strict=True))) is not None  # the column-wise writer is the one checked
    assert wire.dumps([wire.Records(_RECORD_FIELDS, rows)]) == wire.dumps([dicts])
    # an exponent in a column: the row-by-row writer, still the digits dumps writes
    rows[5] = (*rows[5][:4], Decimal("1E+2"))
    assert wire._write_columns(_RECORD_FIELDS, list(zip(*rows, strict=True))) is None
    assert wire.dumps([wire.Records(_RECORD_FIELDS, rows)]) == wire.dumps([[dict(zip(_RECORD_FIELDS, r, strict=True)) for r in rows]])
    assert b'"odd%key":100}' in wire.dumps(wire.Records(_RECORD_FIELDS, rows))


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN")])
def test_records_refuse_what_dumps_refuses(value):
    with pytest.raises(ValueError, match="NaN and infinity"):
        wire.Records(("a",), [(Decimal(1),), (value,)])
    with pytest.raises(TypeError, match="floats are not sent"):
        wire.Records(("a",), [(1.5,)])
    with pytest.raises(ValueError):  # a row of the wrong length
        wire.Records(("a", "b"), [(1, 2), (1,)])


def test_records_never_show_their_values():
    records = wire.Records(("email",), [("someone@shop.example",)])
    assert "someone" not in repr(records) and "someone" not in str(records)


def test_a_copied_body_with_records_encodes_the_same():
    import copy

    body = {"items": wire.Records(("a", "b"), [("x", Decimal("1.50")), ("y", 2)])}
    expected = b'{"items":[{"a":"x","b":1.50},{"a":"y","b":2}]}'
    assert wire.dumps(body) == expected
    for copied in (copy.deepcopy(body), copy.copy(body)):
        assert wire.dumps(copied) == expected and copied == body
