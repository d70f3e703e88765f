"""A per-engine circuit breaker.

Small on purpose (consecutive-failure count, open for ``reset_after`` seconds, then one trial call):
the general-purpose breaker libraries wrap a callable, and our unit of work is a step of a flow
driven by either a sync or an async runner, which they do not fit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    reset_after: float = 30.0
    clock: object = time.monotonic
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _trial_in_flight: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.reset_after:  # type: ignore[operator]
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a request be sent now? In half-open state exactly one trial goes through."""
        if self._opened_at is None:  # closed (one attribute read, atomic): no lock needed to say yes
            return True
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        if self._failures == 0 and self._opened_at is None and not self._trial_in_flight:
            return  # nothing to reset (the common case); a failure recorded meanwhile stands, as if after
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._opened_at is not None or self._failures >= self.failure_threshold:
                self._opened_at = self.clock()  # type: ignore[operator]
