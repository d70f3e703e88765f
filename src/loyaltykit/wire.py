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
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
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
    raise TypeError(f"{type(item).__name__} is not JSON serializable")


def _encoder(default: Any) -> Callable[[Any], str]:
    # One encoder per fallback, built once: json.dumps with options builds one per call. An
    # encoder keeps nothing between calls (its circular-reference check is per call).
    return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default).encode


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
    if _MARKER in out:  # an exponent, NaN, infinity or an object that is no number: the exact way
        out = "".join(_MARKED.split(_encode_exact(value)))
    return out.encode()


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
