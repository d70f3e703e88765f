"""A deadline for a whole HTTP exchange on the sync client.

httpx's timeouts bound each socket operation, not the exchange: an engine that trickles a byte
now and then keeps a sync call alive for as long as it likes. The async runner bounds the whole
exchange with ``asyncio.wait_for``; threads cannot be cancelled that way, so the sync runner
installs :class:`DeadlineBackend` under its connection pool instead. Every socket read, write and
connect then waits at most until the deadline of the exchange in progress (set with
:func:`exchange_deadline`), and fails with the matching httpcore timeout once it has passed.
Outside an exchange (no deadline set) the sockets behave exactly as before.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("loyaltykit_exchange_deadline", default=None)


class exchange_deadline:  # lower case: used as a function, ``with exchange_deadline(at):``
    """Bound every socket operation in the block by ``deadline`` (a ``time.monotonic()`` value).

    A class rather than a generator context manager: it runs once per request."""

    __slots__ = ("_deadline", "_token")

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __enter__(self) -> None:
        self._token = _deadline.set(self._deadline)

    def __exit__(self, *exc: object) -> None:
        _deadline.reset(self._token)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise error("the deadline of the exchange was reached")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """Wraps httpcore's network backend so that every stream honours the exchange deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, bounded, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def deadline_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's own transport (same defaults as ``httpx.Client`` builds), its sockets deadline-bound."""
    transport = httpx.HTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)  # httpx exposes no public hook for the network backend
    backend = getattr(pool, "_network_backend", None)
    if pool is not None and backend is not None:  # an httpx that moved it keeps per-read timeouts (the deadline tests say so)
        pool._network_backend = DeadlineBackend(backend)
    return transport
