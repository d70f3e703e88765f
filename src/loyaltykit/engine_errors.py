"""One table-driven classifier from an engine's refusal to a kit error, for every adapter.

An adapter describes its engine's documented error codes and message phrases as *data* (an
:class:`ErrorTable`); a setting may extend the table. :meth:`ErrorTable.classify` decides, in this
order, and never by substring:

1. the engine's error code, matched **exactly** (trimmed, case-insensitive, spaces as ``_``):
   ``transaction_not_found`` is not ``not_found``; a generic code (``INVALID_API_INPUT``) may be
   refined by phrases that count only under that code (``code_phrases``);
2. HTTP 401 and 403 (unless a code matched): ``auth_failed``, before any message phrase, so
   "Session expired" never reads as an expired voucher;
3. a message phrase, matched as whole words (``_`` and letters are word characters), so
   ``insufficient`` matches "Insufficient points" but not ``INSUFFICIENT_ACCESS_OR_READONLY``;
4. the ``not_found`` class the caller names for an HTTP 404 (a look-up of one record);
5. otherwise ``engine_error`` (:class:`~loyaltykit.errors.EngineError`), carrying the engine's own
   code and message.

The engine's text goes to ``engine_message`` (scrubbed), never into the kit message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from .errors import (
    ERROR_CODES,
    AuthFailedError,
    ConfigError,
    EngineError,
    LoyaltyError,
    OutcomeUnknownError,
)

__all__ = ["ErrorTable", "normalize_code"]


def normalize_code(code: str) -> str:
    """The form engine codes are compared in: trimmed, lower case, spaces and dashes as ``_``."""
    return re.sub(r"[\s-]+", "_", code.strip().lower())


def _check(engine: str, table: Mapping[str, str], what: str) -> None:
    bad = sorted({kit for kit in table.values() if kit not in ERROR_CODES})
    if bad:
        raise ConfigError(f"{engine}: {what} map to unknown kit error codes {bad}", engine=engine)


def _patterns(phrases: Mapping[str, str]) -> list[tuple[re.Pattern[str], str]]:
    # Whole words only: "insufficient" must not match INSUFFICIENT_ACCESS_OR_READONLY.
    patterns = []
    for phrase, kit in phrases.items():
        words = r"\s+".join(re.escape(word) for word in phrase.lower().split())
        if words:
            patterns.append((re.compile(rf"(?<![\w]){words}(?![\w])"), kit))
    return patterns


def _first_match(patterns: Iterable[tuple[re.Pattern[str], str]], message: str | None) -> str | None:
    if message:
        lowered = message.lower()
        for pattern, kit in patterns:
            if pattern.search(lowered):
                return kit
    return None


@dataclass(frozen=True)
class ErrorTable:
    """An engine's documented error vocabulary: ``codes`` and message ``phrases`` -> kit codes.

    Kit codes are the keys of :data:`loyaltykit.errors.ERROR_CODES` (``"voucher_expired"``...);
    ``"outcome_unknown"`` is allowed for codes that mean "still processing".
    """

    engine: str
    codes: Mapping[str, str] = field(default_factory=dict)
    phrases: Mapping[str, str] = field(default_factory=dict)
    #: code -> {phrase: kit code}: phrases read only when the engine answered with that code
    code_phrases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: read ``phrases`` only on an answer without an error code of its own (an engine whose codes
    #: are authoritative: its texts then only refine codeless failures)
    phrases_only_without_code: bool = False
    auth_statuses: frozenset[int] = frozenset({401, 403})

    def __post_init__(self) -> None:
        _check(self.engine, self.codes, "error codes")
        _check(self.engine, self.phrases, "message phrases")
        for scoped in self.code_phrases.values():
            _check(self.engine, scoped, "code-scoped message phrases")

    def extended(self, codes: Mapping[str, str] | None = None, phrases: Mapping[str, str] | None = None) -> ErrorTable:
        """A copy with entries added or overridden (an adapter setting feeds this)."""
        return ErrorTable(
            self.engine,
            codes={**self.codes, **(codes or {})},
            phrases={**self.phrases, **(phrases or {})},
            code_phrases=self.code_phrases,
            phrases_only_without_code=self.phrases_only_without_code,
            auth_statuses=self.auth_statuses,
        )

    @cached_property
    def _by_code(self) -> dict[str, str]:
        return {normalize_code(code): kit for code, kit in self.codes.items()}

    @cached_property
    def _phrase_patterns(self) -> list[tuple[re.Pattern[str], str]]:
        return _patterns(self.phrases)

    @cached_property
    def _code_phrase_patterns(self) -> dict[str, list[tuple[re.Pattern[str], str]]]:
        return {normalize_code(code): _patterns(scoped) for code, scoped in self.code_phrases.items()}

    def kit_code(self, status: int, code: str | None, message: str | None) -> str | None:
        """The kit code the table assigns, or ``None`` for an unknown refusal."""
        if code:
            found = self._by_code.get(normalize_code(code))
            if found is not None:
                return found
            scoped = _first_match(self._code_phrase_patterns.get(normalize_code(code), ()), message)
            if scoped is not None:
                return scoped
        if status in self.auth_statuses:
            return AuthFailedError.code
        if code and self.phrases_only_without_code:
            return None
        return _first_match(self._phrase_patterns, message)

    def classify(
        self,
        status: int,
        code: str | None,
        message: str | None,
        *,
        operation: str | None = None,
        not_found: type[LoyaltyError] | None = None,
        idempotency_key: str | None = None,
    ) -> LoyaltyError:
        """The kit error for one engine refusal (``status`` is the HTTP status, 200 for envelopes)."""
        kit = self.kit_code(status, code, message)
        said = code or f"HTTP {status}"
        common = {
            "engine": self.engine,
            "operation": operation,
            "engine_code": code or str(status),
            "engine_message": message,
        }
        if kit == OutcomeUnknownError.code:
            return OutcomeUnknownError(
                f"{self.engine} has not finished processing the request ({said})",
                idempotency_key=idempotency_key,
                retryable=True,
                **common,  # type: ignore[arg-type]
            )
        if kit is not None:
            return ERROR_CODES[kit](f"{self.engine} refused the request ({kit})", **common)  # type: ignore[arg-type]
        if status == 404 and not_found is not None:
            return not_found(f"{self.engine} has no such record (HTTP 404)", **common)  # type: ignore[arg-type]
        return EngineError(f"{self.engine} refused the request ({said})", **common)  # type: ignore[arg-type]
