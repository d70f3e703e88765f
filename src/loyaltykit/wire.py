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
# compiled once: a fresh pattern per body would cost more than the encoding.
_MARKER = f"__decimal_{secrets.token_hex(8)}_"
_MARKED = re.compile(f'"{_MARKER}(\\d+)"')
_PLAIN = (str, int, bool, type(None))


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8. A Decimal is written as a JSON number with exactly its digits."""
    numbers: list[str] = []

    def substitute(item: Any) -> Any:
        kind = type(item)
        if kind in _PLAIN:
            return item
        if kind is dict:
            return {key: substitute(val) for key, val in item.items()}
        if isinstance(item, Decimal):
            if not item.is_finite():
                raise ValueError("NaN and infinity have no JSON form")
            numbers.append(format(item, "f"))
            return f"{_MARKER}{len(numbers) - 1}"
        if isinstance(item, dict):
            return {key: substitute(val) for key, val in item.items()}
        if isinstance(item, list | tuple):
            return [substitute(val) for val in item]
        if isinstance(item, float):
            raise TypeError("floats are not sent to engines; use Decimal")
        return item

    text = json.dumps(substitute(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not numbers:
        return text.encode()
    # One pass over the body: the pieces between markers alternate with marker indexes.
    pieces = _MARKED.split(text)
    pieces[1::2] = [numbers[int(index)] for index in pieces[1::2]]
    return "".join(pieces).encode()


def loads(content: bytes | str) -> Any:
    """Parse JSON with every non-integer number as a Decimal."""
    return json.loads(content, parse_float=Decimal)
