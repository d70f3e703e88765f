"""Scrubbing of secrets and customer PII from anything that may be logged or shown.

Two layers:

* **Known values.** Every secret the kit loads (``SecretStr`` settings, OAuth tokens it obtains) and
  every customer identifier it is handed is registered here, and replaced wherever it appears.
* **Patterns.** E-mail addresses, card-like digit runs, phone-like numbers, ``Authorization``
  values and ``password=``/``secret=``/``token=`` pairs are masked even when nobody registered them.

:class:`ScrubbingFilter` applies both to stdlib log records; errors scrub their own messages.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from urllib.parse import quote, quote_plus

MASK = "***"

@functools.cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    """The PII patterns, compiled on the first scrub rather than at import (~1.5 ms of every start,
    and most starts scrub nothing)."""
    return [
        # First: "Authorization: Bearer <token>" would otherwise lose only the word "Bearer" to the pair below.
        (re.compile(r"(?i)\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=!-]+"), r"\1 " + MASK),
        # key=value and "key": "value" pairs whose key names a secret.
        (
            re.compile(
                r"""(?ix)
                ((?:client_secret|secret|password|passwd|api_key|apikey|token|access_token|
                   refresh_token|authorization|assertion)["']?\s*[:=]\s*["']?)
                ([^"'&,\s}]+)
                """
            ),
            r"\1" + MASK,
        ),
        (re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), MASK),  # e-mail, raw or URL-encoded
        (re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)"), MASK),  # card-like numbers
        (re.compile(r"(?:\+|%2B)\d[\d ()-]{6,}\d"), MASK),  # international phone numbers, raw or URL-encoded
    ]

# Identifiers of the call in progress (set by the runner and the facade), masked in every record
# logged meanwhile, including httpx's own request lines. None: no kit call is in progress. The
# values are kept as given; their URL-encoded forms are made only when a record is scrubbed.
_call_values: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("loyaltykit_scrub", default=None)


class _Scrubbing:
    __slots__ = ("_token", "_values")

    def __init__(self, values: tuple[str, ...]) -> None:
        self._values = values

    def __enter__(self) -> None:
        self._token = _call_values.set(self._values)

    def __exit__(self, *exc: object) -> None:
        _call_values.reset(self._token)


def scrubbing(values: Iterable[str]) -> AbstractContextManager[None]:
    """Mask ``values`` (and their URL-encoded forms) in anything logged inside the block."""
    return _Scrubbing(values if type(values) is tuple else tuple(values))


def _expanded(values: Iterable[str]) -> set[str]:
    expanded: set[str] = set()
    for value in values:
        if value and len(value) >= _MIN_KNOWN:
            expanded.update({value, quote(value, safe=""), quote_plus(value)})
    return expanded


_lock = threading.Lock()
_known: set[str] = set()
_known_longest_first: tuple[str, ...] = ()  # _known, sorted once per registration, not per record
_MIN_KNOWN = 4  # shorter values would mask ordinary words and digits


def register_secret(*values: str | None) -> None:
    """Register values that must never appear in logs, reprs or error messages."""
    global _known_longest_first
    with _lock:
        for value in values:
            if value and len(value) >= _MIN_KNOWN:
                _known.add(value)
        _known_longest_first = tuple(sorted(_known, key=len, reverse=True))


def registered_count() -> int:
    return len(_known)


def scrub_text(text: str | None, extra: Iterable[str] = ()) -> str:
    """Return ``text`` with registered secrets, ``extra`` values and PII patterns masked."""
    if not text:
        return text or ""
    candidates = [v for v in (*extra, *_expanded(_call_values.get() or ())) if v and len(v) >= _MIN_KNOWN]
    known: Sequence[str]
    if candidates:
        with _lock:
            known = sorted(_known.union(candidates), key=len, reverse=True)
    else:
        known = _known_longest_first
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _patterns():
        text = pattern.sub(replacement, text)
    return text


class ScrubbingFilter(logging.Filter):
    """A logging filter that renders the message and scrubs it (args are folded in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        record.msg = scrub_text(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class KitCallsFilter(ScrubbingFilter):
    """For a library's logger (httpx, httpcore): scrubs the records logged while a kit call is in
    progress; the shop's own traffic on that logger passes untouched, at the cost of one lookup."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _call_values.get() is None:
            return True
        return super().filter(record)


def get_logger(name: str, *, kit_calls_only: bool = False) -> logging.Logger:
    """A logger with the scrubbing filter attached (filters are not inherited by child loggers,
    so every logger the kit writes to gets its own). ``kit_calls_only`` is for loggers the kit
    shares with the shop: only records logged during a kit call are scrubbed."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, ScrubbingFilter) for f in logger.filters):
        logger.addFilter(KitCallsFilter() if kit_calls_only else ScrubbingFilter())
    return logger
