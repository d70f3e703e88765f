"""JSON on the wire without floats, and the readers every adapter parses engine answers with.

The stdlib encoder writes numbers only from int and float, so a Decimal amount would have to pass
through a float on its way out. :func:`dumps` writes a Decimal's own digits instead, and
:func:`loads` parses every non-integer number as a Decimal. The runner encodes request bodies with
:func:`dumps`.

Reading an answer: :func:`json_body` parses a response (or raw bytes) and :func:`at`,
:func:`number`, :func:`text`, :func:`mapping` and :func:`items` read values from it, and
:func:`model` validates a part of it as a pydantic model (for adapters that type their bodies). Every reader
takes the *path* of the value in the body (``"payload.points[0].amount"``) and raises
:class:`~loyaltykit.errors.MalformedResponseError` naming that path, never a ``KeyError`` or a
``decimal.InvalidOperation``. The path names fields only; values never reach the message, since
they may be customer data.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import secrets
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pydantic

from .errors import MalformedResponseError

if TYPE_CHECKING:
    import httpx

_MISSING: Any = object()
M = TypeVar("M", bound=pydantic.BaseModel)


# A marker no body can contain by chance (random per process), and the pattern that finds it,
# compiled once. A Decimal travels through the encoder as the string marker + its digits.
_MARKER = f"__decimal_{secrets.token_hex(8)}_"
_MARKED = re.compile(f'"{_MARKER}(-?[0-9.]+)"')
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_FLOAT = re.compile(r"\.|\d[eE]")  # outside strings, only a float writes a point or an exponent
# A number of compact JSON follows a key's '":', a ',' or a '[': where no such number has a point
# or an exponent there is no float, and the exact check above need not run. (One pattern per
# literal start, which the regex engine scans for quickly; a character class or an alternation
# as the start is ten times slower.)
_MAYBE_FLOAT = (re.compile(r'":-?\d+[.eE]'), re.compile(r",-?\d+[.eE]"), re.compile(r"\[-?\d+[.eE]"))
# The encoder's fallback for what it cannot encode itself, as a C-level callable (no Python frame
# per Decimal, the bulk of a large body): the marker and str() of the value. str() of a Decimal is
# its digits unless it writes an exponent (1E+2, 1E-7); then, as for anything whose str() is no
# plain number (a date, NaN), the marker survives the split below and the checking encoder runs.
_FAST_MARKER = (_MARKER + "%s").__mod__


def _marker(item: Any) -> str:  # the checking fallback, for the exact error when the fast one fails
    if isinstance(item, Decimal):
        if not item.is_finite():
            raise ValueError("NaN and infinity have no JSON form")
        return _MARKER + format(item, "f")
    if type(item) is Records:
        return _MARKER + str(item)
    raise TypeError(f"{type(item).__name__} is not JSON serializable")


# ---------------------------------------------------------------------------------------------
# Records: a list of objects written to JSON text while the body is built
# ---------------------------------------------------------------------------------------------

_ESCAPE: Callable[[str], str] = json.encoder.encode_basestring  # what the encoder writes a str with
_LIVE: weakref.WeakValueDictionary[int, Records] = weakref.WeakValueDictionary()
_RECORDS = re.compile(f'"{_MARKER}@([0-9]+)"')


def _decimal_text(value: Decimal) -> str:
    text = str(value)
    if "E" in text or not value.is_finite():  # as dumps writes it: the exact digits, never an exponent
        if not value.is_finite():
            raise ValueError("NaN and infinity have no JSON form")
        text = format(value, "f")
    return text


def _value_text(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _ESCAPE(value)
    if kind is Decimal:
        return _decimal_text(value)
    if kind is int:
        return int.__repr__(value)
    return dumps(value).decode()  # anything else exactly as dumps writes it (and refuses a float)


# A finite Decimal's format "f" is what dumps writes (its digits, an exponent written out).
_WRITERS: dict[type, Callable[[Any], str]] = {str: _ESCAPE, int: int.__repr__, Decimal: "{:f}".format}


class _Checking(dict[type, Callable[[Any], str]]):
    def __missing__(self, kind: type) -> Callable[[Any], str]:
        return _value_text


_CHECKING_WRITERS = _Checking({str: _ESCAPE, int: int.__repr__, Decimal: _decimal_text})


def _write_columns(fields: tuple[str, ...], columns: Sequence[Sequence[Any]]) -> str | None:
    """The objects written column by column (``columns[i]`` holds every object's ``fields[i]``),
    each column by one C-level writer, then every object at once by one join; None where a
    column holds more than one type, another type or OMIT (the caller then writes row by row)."""
    if len(columns) != len(fields) or not columns:
        return None
    count = len(columns[0])
    if not count:
        return None
    written = []
    numbers = []
    for column in columns:
        if len(column) != count:
            return None
        if type(column[0]) is str:
            try:  # the C escaper refuses anything but text, and writes a str subclass as the encoder does
                texts = list(map(_ESCAPE, column))
            except TypeError:
                return None
            written.append(texts)
            continue
        kinds = set(map(type, column))
        if len(kinds) != 1:
            return None
        kind = kinds.pop()
        if kind is Decimal:
            texts = list(map(Decimal.__str__, column))  # its digits, three times quicker than format "f"
            numbers.append(texts)
        elif kind is int:
            texts = list(map(int.__repr__, column))
        else:
            return None
        written.append(texts)
    if numbers:
        joined = "".join(itertools.chain.from_iterable(numbers))
        if "E" in joined or "N" in joined or "I" in joined:  # an exponent, NaN or Infinity: the checking way
            return None
    # Each value after its key, the objects one after the other, joined once: no formatting call per
    # object. The first key's head opens every object but the first with "},{" (cut off below).
    heads = [itertools.repeat(head, count) for head in _heads(fields)]
    parts = itertools.chain.from_iterable(zip(*itertools.chain.from_iterable(zip(heads, written, strict=True)), strict=True))
    return "[{" + "".join(parts)[3:] + "}]"


@functools.lru_cache(maxsize=256)  # a few field tuples per adapter
def _heads(fields: tuple[str, ...]) -> tuple[str, ...]:
    keys = _keys(fields)
    return ("},{" + keys[0], *("," + key for key in keys[1:]))


@functools.lru_cache(maxsize=256)
def _keys(fields: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_ESCAPE(field) + ":" for field in fields)


class Records:
    """A list of JSON objects already written as text, placed in a body that :func:`dumps` encodes.

    Built while a body is built (one object per basket line), so the encoder does not call its
    fallback for each Decimal of each line. ``dumps`` writes exactly the bytes it would write for
    the same list of dicts. :meth:`rows` parses it back (numbers as Decimal), for checking.
    """

    __slots__ = ("__weakref__", "text")

    def __init__(self, fields: tuple[str, ...], rows: Iterable[Sequence[Any]]) -> None:
        """One object per row: ``fields[i]`` is written with ``row[i]``; a value that is
        :data:`OMIT` leaves its field out of that object."""
        rows = rows if isinstance(rows, list | tuple) else list(rows)
        columns = list(zip(*rows, strict=True)) if rows and set(map(len, rows)) == {len(fields)} else []
        self.text = _write_columns(fields, columns) or self._by_rows(fields, rows)

    @classmethod
    def of_columns(cls, fields: tuple[str, ...], columns: Sequence[Sequence[Any]]) -> Records:
        """The same objects given column by column: ``columns[i][n]`` is object ``n``'s ``fields[i]``
        (columns of equal length). Read off a basket's lines with C-level getters, a column costs
        less than a tuple per line."""
        records = object.__new__(cls)
        text = _write_columns(fields, columns)
        if text is None:
            if len({len(column) for column in columns}) > 1:
                raise ValueError("columns of different lengths")
            text = cls._by_rows(fields, list(zip(*columns, strict=True)))
        records.text = text
        return records

    @classmethod
    def _by_rows(cls, fields: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> str:
        keys = _keys(fields)
        try:  # str, int and Decimal by C-level writers, looked up by exact type
            text = cls._write(keys, rows, _WRITERS)
            if "NaN" in text or "Infinity" in text:  # a NaN or infinite Decimal, or such words in a text
                text = cls._write(keys, rows, _CHECKING_WRITERS)
        except KeyError:  # some other type (None, bool, a subclass, a nested value): the checking way
            text = cls._write(keys, rows, _CHECKING_WRITERS)
        return text

    @staticmethod
    def _write(keys: tuple[str, ...], rows: Sequence[Sequence[Any]], writers: Mapping[type, Callable[[Any], str]]) -> str:
        return "[" + ",".join([
            "{" + ",".join([key + writers[type(item)](item) for key, item in zip(keys, row, strict=True)
                            if item is not OMIT]) + "}"
            for row in rows
        ]) + "]"

    def __str__(self) -> str:  # what the encoder's fallback writes after the marker: a key for dumps
        _LIVE[id(self)] = self  # registered when encoded, so a copy of a body encodes as well
        return f"@{id(self)}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Records) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:  # values may be customer data
        return "Records(...)"

    def rows(self) -> list[Any]:
        return loads(self.text)  # type: ignore[no-any-return]


OMIT: Any = object()  # a field left out of one object of Records


def _encoder(default: Any) -> Callable[[Any], str]:
    # One encoder per fallback, built once: json.dumps with options builds one per call. An
    # encoder keeps nothing between calls (its circular-reference check is per call).
    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C encoder: the encoder's own (pure Python) way
        return encode
    escape = getattr(json.encoder, "c_encode_basestring", None) or _ESCAPE

    def encode_in_c(value: Any) -> str:
        # What encode() does with these options, without its Python steps around the C encoder:
        # that encoder made with a fresh circular-reference table, as encode() makes it per call.
        return "".join(make({}, default, escape, None, ":", ",", False, False, False)(value, 0))

    return encode_in_c if encode_in_c({"a": [1, "é", None, True]}) == encode({"a": [1, "é", None, True]}) else encode


_encode_fast = _encoder(_FAST_MARKER)
_encode_exact = _encoder(_marker)


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8. A Decimal is written as a JSON number with exactly its digits."""
    if isinstance(value, float):
        raise TypeError("floats are not sent to engines; use Decimal")
    text = _encode_fast(value)
    # Decimals are still quoted markers here, so any point or exponent left outside a string is a float's.
    maybe = any(pattern.search(text) for pattern in _MAYBE_FLOAT)
    if maybe and _FLOAT.search(_STRING.sub("", text)):
        raise TypeError("floats are not sent to engines; use Decimal")
    if _MARKER not in text:  # no Decimal in the body (most small ones): nothing to unquote
        return text.encode()
    # One pass: split keeps each marker's digits (the captured group) and drops its quotes and prefix.
    out = "".join(_MARKED.split(text))
    if _MARKER in out:  # Records, an exponent, NaN, infinity or an object that is no number
        out = _with_records(out)
        if _MARKER in out:  # the exact way
            out = _with_records("".join(_MARKED.split(_encode_exact(value))))
    return out.encode()


def _with_records(text: str) -> str:
    parts = _RECORDS.split(text)
    if len(parts) == 1:
        return text
    for n in range(1, len(parts), 2):  # odd parts: the key written by Records.__str__
        parts[n] = _LIVE[int(parts[n])].text  # alive: the body being encoded holds it
    return "".join(parts)


# One decoder for every answer: json.loads(..., parse_float=Decimal) builds a decoder and its
# scanner per call, which cost as much as parsing a small answer. Decoders keep no state between calls.
_DECODER = json.JSONDecoder(parse_float=Decimal)


def loads(content: bytes | str) -> Any:
    """Parse JSON with every non-integer number as a Decimal (what ``json.loads`` accepts and raises)."""
    if isinstance(content, bytes | bytearray):
        content = content.decode(json.detect_encoding(content), "surrogatepass")
    elif not isinstance(content, str):
        raise TypeError(f"the JSON object must be str, bytes or bytearray, not {type(content).__name__}")
    elif content.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", content, 0)
    return _DECODER.decode(content)


# ---------------------------------------------------------------------------------------------
# Readers of engine answers
# ---------------------------------------------------------------------------------------------


def _malformed(path: str, problem: str, engine: str | None) -> MalformedResponseError:
    where = path or "body"
    return MalformedResponseError(f"{where}: {problem}", engine=engine, field=where)


def json_body(answer: httpx.Response | bytes | str, *, engine: str | None = None) -> Any:
    """Parse an engine's answer as JSON, numbers as Decimal.

    A body that is empty or not JSON is a :class:`MalformedResponseError` (path ``body``).
    """
    content = answer if isinstance(answer, bytes | str) else answer.content
    status = None if isinstance(answer, bytes | str) else answer.status_code
    try:
        return loads(content)
    except (ValueError, UnicodeDecodeError):
        said = f"HTTP {status} with " if status is not None else ""
        raise _malformed("body", f"{said}a body that is not JSON", engine) from None


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@functools.lru_cache(maxsize=4096)  # adapters read the same few paths in every answer
def _steps(path: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    for part in path.replace("]", "").replace("[", ".").split("."):
        if part == "":
            continue
        steps.append(int(part) if part.lstrip("-").isdigit() else part)
    return tuple(steps)


def at(body: Any, path: str, default: Any = _MISSING, *, engine: str | None = None) -> Any:
    """The value at ``path`` (``"a.b[0].c"``); ``default`` when absent or null, else an error.

    ``path`` may start with a prefix the caller already walked: only its steps are looked up.
    """
    value, walked = body, ""
    for step in _steps(path):
        here = _join(walked, step)
        if isinstance(step, int):
            # type() first: a parsed body holds plain lists and dicts, and the ABC checks are slow
            if type(value) is not list and (not isinstance(value, Sequence) or isinstance(value, str | bytes)):
                raise _malformed(walked, "expected a list", engine)
            if not -len(value) <= step < len(value):
                if default is not _MISSING:
                    return default
                raise _malformed(here, "missing", engine)
            value = value[step]
        else:
            if type(value) is not dict and not isinstance(value, Mapping):
                raise _malformed(walked, "expected an object", engine)
            if step not in value:
                if default is not _MISSING:
                    return default
                raise _malformed(here, "missing", engine)
            value = value[step]
        walked = here
    if value is None and default is not _MISSING:
        return default
    return value


@overload
def number(value: Any, path: str, *, engine: str | None = ...) -> Decimal: ...
@overload
def number(value: Any, path: str, *, engine: str | None = ..., optional: bool) -> Decimal | None: ...
def number(value: Any, path: str, *, engine: str | None = None, optional: bool = False) -> Decimal | None:
    """A finite number read from an answer: a JSON number (Decimal or int) or a numeric string.

    ``None`` is an error unless ``optional``; booleans, NaN and infinities always are. A float
    (a body parsed without :func:`loads`) is read from its shortest repr, its JSON digits.
    """
    if type(value) is Decimal and value.is_finite():  # what loads() parsed: the common case
        return value
    if value is None:
        if optional:
            return None
        raise _malformed(path, "missing number", engine)
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise _malformed(path, "expected a number", engine)
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _malformed(path, "not a number", engine) from None
    if not result.is_finite():
        raise _malformed(path, "not a finite number", engine)
    return result


def number_at(body: Any, path: str, default: Any = _MISSING, *, engine: str | None = None) -> Any:
    """:func:`number` of :func:`at`; ``default`` (returned as given) when the value is absent."""
    value = at(body, path, None if default is not _MISSING else _MISSING, engine=engine)
    if value is None and default is not _MISSING:
        return default
    return number(value, path, engine=engine)


@overload
def text(value: Any, path: str, *, engine: str | None = ...) -> str: ...
@overload
def text(value: Any, path: str, *, engine: str | None = ..., optional: bool) -> str | None: ...
def text(value: Any, path: str, *, engine: str | None = None, optional: bool = False) -> str | None:
    """A non-empty string (a number is accepted and written as its digits: ids are often numbers)."""
    if value is None or value == "":
        if optional:
            return None
        raise _malformed(path, "missing text", engine)
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise _malformed(path, "expected text", engine)


def mapping(value: Any, path: str, *, engine: str | None = None) -> Mapping[str, Any]:
    """An object."""
    if not isinstance(value, Mapping):
        raise _malformed(path, "expected an object", engine)
    return value


def items(value: Any, path: str, *, engine: str | None = None, optional: bool = False) -> list[Any]:
    """A list (``[]`` for an absent one when ``optional``)."""
    if value is None and optional:
        return []
    if not isinstance(value, list):
        raise _malformed(path, "expected a list", engine)
    return value


def model(value: Any, cls: type[M], path: str, *, engine: str | None = None) -> M:
    """``value`` (found at ``path``) validated as the pydantic model ``cls``.

    A mismatch is a :class:`MalformedResponseError` naming the path of the first bad field
    (``body.transaction.amount``) and what is wrong with it; the value itself is never quoted.
    """
    try:
        return cls.model_validate(value)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        where = path
        for step in first["loc"]:
            where = _join(where, step)
        raise _malformed(where, first["msg"], engine) from None
