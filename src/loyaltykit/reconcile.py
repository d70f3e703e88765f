"""Exactly-once writes on engines without native idempotency, and per-order export outcomes.

:func:`reconcile` is the flow helper for a write whose effect can be looked up by its key (a
journal carrying a number derived from the idempotency key, a voucher's status...): look the
effect up, send only when it is absent, and after a lost or unreadable answer look again and
re-send only when the engine still has nothing. What the engine recorded comes back as it was
recorded (amounts included), never recomputed from the request.

A look-up followed by a post is a race between two calls with the same key. The runner closes it
within a process: it holds a lock per idempotency key (:class:`KeyLocks`) for the whole call, so
one call per key is in flight at a time and the second one finds the first one's effect.

**Across processes** the process lock does not hold. An engine that de-duplicates by key (an
idempotency header, a derived request id) stays exactly-once on its own. For one that does not
(look-up then post), give every process the same :class:`KeyLocks` implementation backed by a
shared store through ``EngineClientConfig.key_locks``: :class:`FileKeyLocks` for the processes of
one host (the ``key_lock_dir`` kit setting: gunicorn or uvicorn workers), a database lock (a
PostgreSQL advisory lock per key, the sidecar) across hosts. With the default, two *processes*
sending the same key at the same instant can both find nothing and both post.

:func:`export_result_from_error` is the one rule for an order whose export raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from .errors import (
    UNAVAILABLE_ERRORS,
    AuthFailedError,
    CircuitOpenError,
    ConfigError,
    EngineUnavailableError,
    LoyaltyError,
    MalformedResponseError,
    OutcomeUnknownError,
)
from .flows import Flow

if TYPE_CHECKING:
    from .models import OrderExportResult

S = TypeVar("S")
F = TypeVar("F")

__all__ = [
    "PROCESS_KEY_LOCKS",
    "FileKeyLocks",
    "KeyLocks",
    "ends_batch",
    "export_result_from_error",
    "reconcile",
]


def reconcile(
    send: Callable[[], Flow[S]],
    look_up: Callable[[], Flow[F | None]],
    *,
    look_first: bool = False,
    look_after_loss: bool = True,
    unavailable_may_have_applied: bool = False,
) -> Flow[tuple[S | None, F | None]]:
    """Send a write at most once per effect: ``(sent, None)`` or ``(None, found)``.

    ``send()`` makes the write (and parses its answer); ``look_up()`` returns the engine's
    recorded effect for this key, or ``None`` when there is none. With ``look_first`` the effect
    is looked up before anything is sent. After an :class:`OutcomeUnknownError` (lost answer) or
    a :class:`MalformedResponseError` (unreadable answer) the effect is looked up: found, it is
    returned; absent, the write is sent again, once. When that look-up fails, the write's
    outcome stays unknown: the original ``OutcomeUnknownError`` is raised.
    ``look_after_loss=False`` skips that look-up (tests of a deliberately broken adapter).
    ``unavailable_may_have_applied`` treats an "unavailable" answer (a 503 some engines send after
    committing) as a lost one: look up before sending again (never for an open circuit, which sent
    nothing).
    """
    if look_first:
        found = yield from look_up()
        if found is not None:
            return None, found
    try:
        return (yield from send()), None
    except (OutcomeUnknownError, MalformedResponseError, EngineUnavailableError) as exc:
        if isinstance(exc, EngineUnavailableError) and (
            not unavailable_may_have_applied or isinstance(exc, CircuitOpenError)
        ):
            raise
        lost = exc if isinstance(exc, OutcomeUnknownError) else _unknown_from(exc)
        if look_after_loss:
            try:
                found = yield from look_up()
            except LoyaltyError:
                raise lost from None
            if found is not None:
                return None, found
        return (yield from send()), None


def _unknown_from(exc: LoyaltyError) -> OutcomeUnknownError:
    return OutcomeUnknownError(
        f"the answer to a write could not be read ({exc.code})", engine=exc.engine, operation=exc.operation
    )


# ---------------------------------------------------------------------------------------------
# One in-flight call per key
# ---------------------------------------------------------------------------------------------


class KeyLocks:
    """Locks by idempotency key, created on demand and dropped when nobody holds or waits.

    Used by both runners: ``hold`` blocks a thread, ``hold_async`` waits without blocking the
    event loop. Both give up at ``timeout`` seconds with ``TimeoutError``. Keys are taken in
    sorted order, so two calls holding several keys cannot deadlock.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, users]

    def _enter(self, key: str) -> threading.Lock:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
            return entry[0]  # type: ignore[no-any-return]

    def _leave(self, key: str) -> None:
        with self._guard:
            entry = self._locks[key]
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)

    @contextmanager
    def hold(self, keys: Iterable[str], timeout: float) -> Iterator[None]:
        taken: list[tuple[str, threading.Lock]] = []
        deadline = time.monotonic() + timeout
        try:
            for key in sorted(set(keys)):
                lock = self._enter(key)
                taken.append((key, lock))
                if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    taken.pop()
                    self._leave(key)
                    raise TimeoutError(key)
            yield
        finally:
            for key, lock in reversed(taken):
                lock.release()
                self._leave(key)

    @asynccontextmanager
    async def hold_async(self, keys: Iterable[str], timeout: float) -> AsyncIterator[None]:
        taken: list[tuple[str, threading.Lock]] = []
        deadline = time.monotonic() + timeout
        try:
            for key in sorted(set(keys)):
                lock = self._enter(key)
                taken.append((key, lock))
                pause = 0.001
                # A thread lock shared with sync callers and other loops: poll, never block the loop.
                while not lock.acquire(blocking=False):
                    if time.monotonic() >= deadline:
                        taken.pop()
                        self._leave(key)
                        raise TimeoutError(key)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.02)
            yield
        finally:
            for key, lock in reversed(taken):
                lock.release()
                self._leave(key)


#: The default: one lock table for every runner of this process.
PROCESS_KEY_LOCKS = KeyLocks()


class FileKeyLocks(KeyLocks):
    """Key locks shared by every process of one host: an exclusive ``flock`` on a lock file.

    Keys are spread over ``stripes`` files in ``directory`` (a hash picks the file), so the
    directory stays small however many keys pass; two keys on one stripe merely wait for each
    other. For processes on several hosts use a shared database's locks instead (a PostgreSQL
    advisory lock per key). POSIX only. Select it with the ``key_lock_dir`` kit setting.
    """

    def __init__(self, directory: str | os.PathLike[str], stripes: int = 256) -> None:
        super().__init__()
        if fcntl is None:  # pragma: no cover - Windows
            raise ConfigError("file key locks need POSIX flock; leave key_lock_dir unset on this platform")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stripes = stripes

    def _file(self, key: str) -> Path:
        stripe = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % self.stripes
        return self.directory / f"key-{stripe:04d}.lock"

    def _paths(self, keys: Iterable[str]) -> list[Path]:
        return sorted({self._file(key) for key in keys})

    @staticmethod
    def _try(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    @contextmanager
    def hold(self, keys: Iterable[str], timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        handles: list[IO[bytes]] = []
        try:
            for path in self._paths(keys):
                handle = path.open("a+b")
                handles.append(handle)
                pause = 0.001
                while not self._try(handle):
                    if time.monotonic() >= deadline:
                        raise TimeoutError(path.name)
                    time.sleep(pause)
                    pause = min(pause * 2, 0.02)
            yield
        finally:
            for opened in reversed(handles):
                opened.close()  # closing releases the flock

    @asynccontextmanager
    async def hold_async(self, keys: Iterable[str], timeout: float) -> AsyncIterator[None]:
        deadline = time.monotonic() + timeout
        handles: list[IO[bytes]] = []
        try:
            for path in self._paths(keys):
                handle = path.open("a+b")
                handles.append(handle)
                pause = 0.001
                while not self._try(handle):
                    if time.monotonic() >= deadline:
                        raise TimeoutError(path.name)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.02)
            yield
        finally:
            for opened in reversed(handles):
                opened.close()


# ---------------------------------------------------------------------------------------------
# Export outcomes
# ---------------------------------------------------------------------------------------------

#: Errors that are about the connection to the engine, not the order: stop the batch (the facade
#: reports every order of it ``retry_later``, or raises for a configuration error).
BATCH_ERRORS: tuple[type[LoyaltyError], ...] = (AuthFailedError, CircuitOpenError, ConfigError)


def ends_batch(exc: LoyaltyError) -> bool:
    """True when the error concerns every order of the batch, not the one that raised it."""
    return isinstance(exc, BATCH_ERRORS)


def export_result_from_error(order_ref: str, exc: LoyaltyError) -> OrderExportResult:
    """The :class:`~loyaltykit.models.OrderExportResult` for an order whose export raised ``exc``.

    The engine unreachable, slow, rate limiting, answering garbage or with an unknown outcome:
    ``retry_later`` (the order is fine; keep it queued). Any other refusal: ``rejected``, with the
    kit code in ``error_code`` and the (scrubbed) message in ``reason``.
    """
    from .models import ExportStatus, OrderExportResult  # models is heavy; the flows need it anyway

    retry = isinstance(exc, UNAVAILABLE_ERRORS)
    return OrderExportResult(
        order_ref=order_ref,
        status=ExportStatus.RETRY_LATER if retry else ExportStatus.REJECTED,
        reason=exc.message,
        error_code=exc.code,
    )
