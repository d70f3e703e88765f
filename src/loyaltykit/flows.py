"""Sans-IO flows: how one adapter implementation serves both the sync and the async facade.

An adapter operation is a *flow*: a generator that yields :class:`EngineRequest` descriptions and
receives ``httpx.Response`` objects back (or has a kit error thrown into it), and finally returns
the kit result::

    def identify(self, identifier, ctx):
        response = yield EngineRequest("GET", "/members", params={"membershipNumber": ...})
        return transformers.customer_from_profile(response.json())

The core drives the generator with ``httpx.Client`` (sync facade) or ``httpx.AsyncClient`` (async
facade); the adapter never does I/O itself, so the two facades cannot drift apart. A flow may
catch an error thrown into it (``OutcomeUnknownError`` after a lost response, say) and yield a
look-up to reconcile before deciding what to do.

An in-process engine (the embedded one) writes flows that yield nothing: they compute and return.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import pydantic

if TYPE_CHECKING:  # the in-process engine must not load the HTTP stack for a type alias
    import httpx

T = TypeVar("T")
P = ParamSpec("P")

#: Exceptions an adapter's parsing code raises on a body it did not expect (ArithmeticError covers
#: decimal.InvalidOperation, e.g. comparing a "NaN" amount, which is not a ValueError).
PARSE_ERRORS: tuple[type[Exception], ...] = (
    KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError, pydantic.ValidationError
)

Flow = Generator["EngineRequest", "httpx.Response", T]


@dataclass(frozen=True)
class EngineRequest:
    """One HTTP exchange an adapter wants, described, not performed.

    ``write`` marks a request that changes engine state. A write is retried only when
    ``idempotency_key`` is set *and* the engine de-duplicates by it (the adapter put the key in
    the engine's field); otherwise a lost response surfaces as ``OutcomeUnknownError``.
    """

    method: str
    path: str  # relative to the service's base URL, or an absolute URL
    service: str = "default"
    # Bodies, query and headers may carry credentials or customer data: keep them out of repr.
    params: Mapping[str, Any] | None = field(default=None, repr=False)
    json: Any = field(default=None, repr=False)
    data: Mapping[str, Any] | None = field(default=None, repr=False)  # form-encoded body
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    write: bool = False
    idempotency_key: str | None = None
    authenticate: bool = True
    route: str = ""  # a short name for logs and fault injection, e.g. "redeem"

    @property
    def retry_safe(self) -> bool:
        return not self.write or self.idempotency_key is not None


@dataclass
class CallContext:
    """Per-call facts shared by the facade, the runner and the adapter."""

    engine: str
    operation: str
    deadline_seconds: float
    # 16 random hex digits (what uuid4().hex[:16] gave, without the UUID object: 2.1 -> 0.5 us)
    request_id: str = field(default_factory=lambda: os.urandom(8).hex())
    started: float = field(default_factory=time.monotonic)
    scrub_values: tuple[str, ...] = ()  # customer identifiers of this call, masked in errors
    idempotency_key: str | None = None
    #: further keys held for the call (an export's order keys): one call per key in flight
    exclusive_keys: tuple[str, ...] = ()

    @property
    def deadline(self) -> float:
        return self.started + self.deadline_seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def run_in_process(flow: Flow[T]) -> T:
    """Drive a flow that must not perform HTTP (an in-process engine's)."""
    try:
        request = next(flow)
    except StopIteration as stop:
        result: T = stop.value
        return result
    flow.close()
    raise RuntimeError(f"in-process flow yielded an HTTP request: {request.method} {request.path}")


def in_process(fn: Callable[P, T]) -> Callable[P, Flow[T]]:
    """Turn a plain method into a flow that does its work when driven, not when created.

    The async facade creates the flow on the event loop and drives in-process flows in a worker
    thread; a lazy body keeps blocking work (database I/O) off the loop.
    """

    @functools.wraps(fn)
    def flow(*args: P.args, **kwargs: P.kwargs) -> Flow[T]:
        return fn(*args, **kwargs)
        yield  # unreachable: makes this a generator function

    return flow
