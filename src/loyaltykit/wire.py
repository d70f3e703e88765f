"""JSON on the wire without floats: Decimal in, Decimal out.

The stdlib encoder writes numbers only from int and float, so a Decimal amount would have to pass
through a float on its way out. :func:`dumps` writes a Decimal's own digits instead, and
:func:`loads` parses every non-integer number as a Decimal. The runner encodes request bodies with
:func:`dumps`; adapters parse engine bodies with :func:`loads`.
"""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any


# A marker no body can contain by chance (random per process), and the pattern that finds it,
# compiled once. A Decimal travels through the encoder as the string marker + its digits.
_MARKER = f"__decimal_{secrets.token_hex(8)}_"
_MARKED = re.compile(f'"{_MARKER}(-?[0-9.]+)"')
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_FLOAT = re.compile(r"\.|\d[eE]")  # outside strings, only a float writes a point or an exponent
# A number of compact JSON follows a key's '":', a ',' or a '[': where no such number has a point
# or an exponent there is no float, and the exact check above need not run. (Two patterns, each
# with a literal start that the regex engine scans for quickly; one alternation is twice as slow.)
_MAYBE_FLOAT = (re.compile(r'":-?\d+[.eE]'), re.compile(r"[,\[]-?\d+[.eE]"))


def _marker(item: Any) -> str:  # called by the C encoder for what it cannot encode itself
    if isinstance(item, Decimal):
        if not item.is_finite():
            raise ValueError("NaN and infinity have no JSON form")
        return _MARKER + format(item, "f")
    raise TypeError(f"{type(item).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8. A Decimal is written as a JSON number with exactly its digits."""
    if isinstance(value, float):
        raise TypeError("floats are not sent to engines; use Decimal")
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_marker)
    # Decimals are still quoted markers here, so any point or exponent left outside a string is a float's.
    maybe = any(pattern.search(text) for pattern in _MAYBE_FLOAT)
    if maybe and _FLOAT.search(_STRING.sub("", text)):
        raise TypeError("floats are not sent to engines; use Decimal")
    # One pass: split keeps each marker's digits (the captured group) and drops its quotes and prefix.
    return "".join(_MARKED.split(text)).encode()


def loads(content: bytes | str) -> Any:
    """Parse JSON with every non-integer number as a Decimal."""
    return json.loads(content, parse_float=Decimal)
