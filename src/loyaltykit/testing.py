"""Test support for adapter authors: the harness protocol, fault injection and a fake-engine base.

The contract suite states its scenarios in engine-neutral terms through :class:`EngineHarness`.
An adapter's test package provides one harness object; the harness seeds its fake engine, reads
the engine side back, and injects faults per *route* — an engine-neutral operation name from
:data:`ROUTES` that the fake maps onto its own paths.

:class:`FakeEngine` is the base of the HTTP fakes: a stateful handler ``httpx.Request ->
httpx.Response`` with one lock around state (the fake behaves like a database), a request log, a
per-route fault queue, the generic faults and the token plumbing implemented once. It plugs into
httpx as ``fake.transport()`` (sync and async alike) and can be served over real HTTP with
:func:`serve`.

:class:`HarnessBase` is the base of every adapter's harness: adapter construction (and the
adapters broken on purpose), transports, fault injection and the seeding/read-back helpers live
there, so a harness keeps only what its engine does differently. :class:`FacadeDriver` drives a
harness's adapter through the sync or the async facade with the same calls, for an adapter's own
flow tests (its pytest fixtures are in :mod:`loyaltykit_contract.fixtures`, beside the contract suite).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qs

import httpx

from .errors import LoyaltyError
from .facade import AsyncLoyalty, Loyalty
from .money import Money
from .settings import LoyaltySettings

if TYPE_CHECKING:
    from .adapter import EngineAdapter

#: Engine-neutral route names used for fault injection and request counting.
ROUTES = ("token", "identify", "evaluate", "wallet", "redeem", "release", "spend", "export", "reverse", "lookup")


class FaultKind(StrEnum):
    DELAY = "delay"  # answer normally after ``seconds``
    TIMEOUT_BEFORE = "timeout_before"  # the client times out; the engine never applied the request
    TIMEOUT_AFTER = "timeout_after"  # the engine applied it, the response was lost
    STATUS = "status"  # answer ``status`` (5xx) without applying
    RATE_LIMIT = "rate_limit"  # 429 with ``Retry-After: retry_after``, not applied
    RESET = "reset"  # connection reset before the engine applied anything
    MALFORMED = "malformed"  # HTTP 200 with a body that is not JSON (applied: no)
    ERROR_BODY = "error_body"  # HTTP 200 with the engine's own error envelope, not applied
    HANG = "hang"  # sleep ``seconds`` (beyond the deadline), then time out; not applied


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    seconds: float = 0.0
    status: int = 503
    retry_after: float | None = None
    times: int = 1  # how many matching requests it affects


@dataclass(frozen=True)
class SeededCustomer:
    id: str  # the engine id the adapter returns as Customer.id
    identifiers: dict[str, str]  # IdentifierKind value -> identifier value


@dataclass(frozen=True)
class VoucherSpec:
    code: str
    kind: Literal["percent", "fixed", "item"] = "fixed"
    percent: Decimal | None = None
    amount: Money | None = None
    sku: str | None = None  # for "item": the product it discounts
    owner_id: str | None = None  # engine customer id; None = open code
    valid_from: datetime | None = None
    expires_at: datetime | None = None
    usage_limit: int | None = 1  # None = unlimited
    min_basket: Money | None = None


@dataclass(frozen=True)
class OfferSpec:
    kind: Literal["percent_off_check", "fixed_off_check", "fixed_off_item"]
    percent: Decimal | None = None
    amount: Money | None = None
    sku: str | None = None
    label: str = "Offer"


@dataclass(frozen=True)
class RuleSpec:
    """A simple promotion rule the contract suite may ask a fake to define."""

    kind: Literal["order_percent", "order_fixed", "line_percent", "message"]
    percent: Decimal | None = None
    amount: Money | None = None
    sku: str | None = None
    min_subtotal: Money | None = None
    message: str | None = None
    label: str = "Promotion"


@dataclass(frozen=True)
class EngineBalances:
    points: Decimal
    cashback: Money | None


@runtime_checkable
class EngineHarness(Protocol):
    """What an adapter's test package gives the contract suite.

    Seeding methods raise ``NotImplementedError`` for features the engine lacks; the suite only
    calls those its scenarios' declared capabilities need. A harness whose adapter declares
    ``points_catalog`` also offers ``define_points_product(sku, points)`` (a product sold for
    ``points`` per unit when sent at 0.00); it is not part of this protocol, so others need not.
    """

    engine: str
    currency: str

    def make_adapter(self) -> EngineAdapter:
        """A fresh adapter configured against this harness's fake (or store)."""

    def sync_transport(self) -> httpx.BaseTransport | None:
        """The transport the sync facade uses (``None`` for an in-process engine)."""

    def async_transport(self) -> httpx.AsyncBaseTransport | None:
        """The transport the async facade uses (``None`` for an in-process engine)."""

    def create_customer(
        self,
        *,
        identifiers: dict[str, str],
        tier: str | None = None,
        points: Decimal = Decimal(0),
        cashback: Money | None = None,
    ) -> SeededCustomer: ...

    def issue_voucher(self, spec: VoucherSpec) -> str: ...

    def issue_offer(self, customer_id: str, spec: OfferSpec) -> str: ...

    def define_earn_rule(self, points_per_unit: Decimal) -> None: ...

    def define_rule(self, spec: RuleSpec) -> None: ...

    def balances(self, customer_id: str) -> EngineBalances: ...

    def voucher_redemptions(self, code: str) -> int: ...

    def orders_received(self) -> list[str]:
        """Every order ref the engine recorded, once per record (a duplicate shows twice)."""

    def snapshot(self) -> Any:
        """A comparable picture of the engine's state (for "evaluate changed nothing")."""

    def inject(self, route: str, fault: Fault) -> None: ...

    def expire_token(self) -> None: ...

    def request_count(self, route: str | None = None) -> int: ...

    def close(self) -> None: ...

    # Optional: ``broken_adapters() -> dict[str, Callable[[], EngineAdapter]]`` — adapters broken on
    # purpose (e.g. "burns_twice_on_retry", "drops_idempotency_key", "swallows_error_body"), each
    # configured against this harness's fake. The suite's self-test runs against them and must fail.
    #
    # Optional (required when the adapter declares ``issue_voucher``): ``define_issuable(spec:
    # OfferSpec) -> str`` — a voucher definition or offer the engine can issue to a member; returns
    # the id a ``VoucherIssue.definition_id`` names it by.
    # Optional: ``member_tiers: tuple[str, ...]`` — two or more tiers of the fake's program (the
    # first is a new member's), needed when the adapter declares tier updates (``member_fields``).
    #
    # Optional: ``define_cashback_rule(percent: Decimal) -> None`` — members earn ``percent`` % of
    # the amount paid as cashback (money) on each order. A harness whose engine (or fake) does not
    # model cashback earning leaves it out or raises ``NotImplementedError``: the cashback-earn
    # scenario is then not applicable.


#: The adapters broken on purpose the contract suite's self-test runs (each must make it fail):
#: a blind re-send after a lost answer, a write that loses its idempotency key, and an HTTP-200
#: error envelope read as success.
BROKEN_VARIANTS = ("burns_twice_on_retry", "drops_idempotency_key", "swallows_error_body")



class HarnessBase:
    """The parts of an :class:`EngineHarness` every adapter's harness shares; subclass it.

    A subclass sets ``engine``, ``currency`` and ``adapter_class``, creates ``self.fake`` (a
    :class:`FakeEngine`) and ``self.settings`` (the adapter's settings, pointing at the fake) in
    ``__init__``, names its adapters broken on purpose in ``broken_adapter_classes``, and
    implements the seeding and read-back methods its declared capabilities need (see the adapter
    guide). What the engine lacks stays ``NotImplementedError`` and its scenarios are reported not
    applicable.
    """

    engine: str = ""
    currency: str = "EUR"
    adapter_class: type[EngineAdapter]
    fake: FakeEngine
    #: The adapter's settings; tests may change them before :meth:`make_adapter`.
    settings: dict[str, Any]
    #: ``{variant: adapter subclass}`` for the variants of :data:`BROKEN_VARIANTS` the harness
    #: offers (usually ``HarnessBase.broken_variants(...)``).
    broken_adapter_classes: ClassVar[dict[str, type[EngineAdapter]]] = {}
    #: Two or more tiers of the fake's program, for the tier-update scenario (first: a new member's).
    member_tiers: tuple[str, ...] = ()

    @staticmethod
    def broken_variants(
        burns_twice_on_retry: type[EngineAdapter],
        drops_idempotency_key: type[EngineAdapter],
        swallows_error_body: type[EngineAdapter],
    ) -> dict[str, type[EngineAdapter]]:
        """``broken_adapter_classes`` from the adapter subclass the harness offers per broken variant."""
        variants = (burns_twice_on_retry, drops_idempotency_key, swallows_error_body)
        return dict(zip(BROKEN_VARIANTS, variants, strict=True))

    # -- adapters and transports -------------------------------------------------------------------
    def adapter_settings(self) -> dict[str, Any]:
        """Settings pointing the adapter at ``self.fake`` (a copy of ``self.settings``)."""
        return dict(getattr(self, "settings", {}))

    def adapter_options(self) -> dict[str, Any]:
        """Keyword arguments the adapter takes beside its settings (none by default)."""
        return {}

    def make_adapter(self, adapter_class: type[EngineAdapter] | None = None) -> EngineAdapter:
        """A new adapter (``adapter_class``, a subclass, or the harness's own) against the fake."""
        return (adapter_class or self.adapter_class)(self.adapter_settings(), **self.adapter_options())

    def broken_adapters(self) -> dict[str, Callable[[], EngineAdapter]]:
        """Adapters broken on purpose, for the contract suite's self-test, built like :meth:`make_adapter`."""
        return {name: functools.partial(self.make_adapter, cls) for name, cls in self.broken_adapter_classes.items()}

    def sync_transport(self) -> httpx.BaseTransport | None:
        return self.fake.transport()

    def async_transport(self) -> httpx.AsyncBaseTransport | None:
        return self.fake.transport()

    # -- seeding: NotImplementedError until the engine has it ----------------------------------------
    def issue_voucher(self, spec: VoucherSpec) -> str:
        raise NotImplementedError(f"the {self.engine} engine has no voucher codes")

    def issue_offer(self, customer_id: str, spec: OfferSpec) -> str:
        raise NotImplementedError(f"the {self.engine} engine has no offer wallet")

    def define_earn_rule(self, points_per_unit: Decimal) -> None:
        raise NotImplementedError(f"the {self.engine} fake has no earn rules")

    def define_issuable(self, spec: OfferSpec) -> str:
        raise NotImplementedError(f"the {self.engine} engine has no issuable vouchers")

    def define_cashback_rule(self, percent: Decimal) -> None:
        raise NotImplementedError(f"the {self.engine} fake models no cashback earning")

    def define_rule(self, spec: RuleSpec) -> None:
        raise NotImplementedError(f"the {self.engine} fake has no promotion rules")

    # -- seeding and read-back helpers ---------------------------------------------------------------
    def amount_in_currency(self, money: Money | None) -> Decimal | None:
        """The amount of ``money`` (``None`` stays ``None``); a fake holds one currency, the harness's,
        so money in another currency is a feature it lacks (``NotImplementedError``)."""
        if money is None:
            return None
        if money.currency != self.currency:
            raise NotImplementedError(f"the {self.engine} fake holds {self.currency} only, not {money.currency}")
        return money.amount

    def engine_balances(self, points: Decimal, cashback: Decimal | None) -> EngineBalances:
        """What :meth:`balances` returns: ``points``, and ``cashback`` (an amount held in the
        harness currency, or ``None`` where the engine holds no cashback) as money."""
        return EngineBalances(points=Decimal(points),
                              cashback=Money.of(cashback, self.currency) if cashback is not None else None)

    def snapshot(self) -> Any:
        return self.fake.snapshot()

    # -- faults ------------------------------------------------------------------------------------
    def expire_token(self) -> None:
        self.fake.expire_tokens()

    def inject(self, route: str, fault: Fault) -> None:
        self.fake.inject(route, fault)

    def clear_faults(self) -> None:
        self.fake.clear_faults()

    def request_count(self, route: str | None = None) -> int:
        return self.fake.request_count(route)

    def close(self) -> None:
        """Drop pending faults (an in-memory fake holds nothing else)."""
        self.fake.clear_faults()


# ---------------------------------------------------------------------------------------------
# Driving a harness's adapter through either facade, for an adapter's own flow tests
# ---------------------------------------------------------------------------------------------

#: The two facades a flow test runs each scenario through.
FACADE_KINDS = ("sync", "async")


def open_facade(
    kind: str, harness: EngineHarness, adapter: EngineAdapter | None = None, **settings: Any
) -> Loyalty | AsyncLoyalty:
    """A ``Loyalty`` (``kind="sync"``) or ``AsyncLoyalty`` (``"async"``) over ``adapter`` (default:
    a new one from the harness), using the harness's transport of that kind. ``settings`` are
    :class:`~loyaltykit.LoyaltySettings` fields; ``engine`` defaults to the adapter's name."""
    if kind not in FACADE_KINDS:
        raise ValueError(f"facade kind must be one of {FACADE_KINDS}, not {kind!r}")
    adapter = adapter or harness.make_adapter()
    loyalty_settings = LoyaltySettings(**{"engine": adapter.name, **settings})
    if kind == "sync":
        return Loyalty(loyalty_settings, adapter=adapter, transport=harness.sync_transport(), load_entry_points=False)
    return AsyncLoyalty(loyalty_settings, adapter=adapter, transport=harness.async_transport(),
                        load_entry_points=False)


class FacadeDriver:
    """One facade (sync or async) over a harness, called the same way.

    ``driver.identify(...)`` calls the sync facade directly, or runs the async facade's coroutine
    to completion on the driver's own event loop, so a flow test is written once and run for both
    kinds (parametrise over :data:`FACADE_KINDS`). ``harness`` and ``fake`` stay at hand.
    """

    def __init__(self, harness: EngineHarness, kind: str, adapter: EngineAdapter | None = None,
                 **settings: Any) -> None:
        self.harness = harness
        self.fake: Any = getattr(harness, "fake", None)
        self.kind = kind
        self.facade = open_facade(kind, harness, adapter, **settings)
        self._runner = asyncio.Runner() if kind == "async" else None

    def __getattr__(self, operation: str) -> Any:
        if operation.startswith("_") or operation in ("facade", "kind", "harness", "fake"):
            raise AttributeError(operation)
        method = getattr(self.facade, operation)
        runner = self._runner
        if runner is None or not callable(method):
            return method
        return lambda *args, **kwargs: runner.run(method(*args, **kwargs))

    def attempt(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """The operation's result, or the kit error it raised (returned, not raised)."""
        try:
            return getattr(self, operation)(*args, **kwargs)
        except LoyaltyError as exc:
            return exc

    def close(self) -> None:
        if self._runner is None:
            self.facade.close()  # type: ignore[union-attr]
            return
        try:
            self._runner.run(self.facade.aclose())  # type: ignore[union-attr]
        finally:
            self._runner.close()


@contextlib.contextmanager
def facade_drivers(harness: EngineHarness, kind: str) -> Iterator[Callable[..., FacadeDriver]]:
    """A maker of :class:`FacadeDriver` of ``kind`` over ``harness`` (``make(adapter=None, **settings)``);
    every driver it made is closed on exit. The usual fixture::

        @pytest.fixture(params=FACADE_KINDS)
        def make_shop(request, harness):
            with facade_drivers(harness, request.param) as make:
                yield make
    """
    made: list[FacadeDriver] = []

    def make(adapter: EngineAdapter | None = None, **settings: Any) -> FacadeDriver:
        driver = FacadeDriver(harness, kind, adapter, **settings)
        made.append(driver)
        return driver

    try:
        yield make
    finally:
        for driver in made:
            driver.close()


# ---------------------------------------------------------------------------------------------
# Fake engine base
# ---------------------------------------------------------------------------------------------

#: Entry-point group of servable fakes: ``name = "package.module:factory"``, where
#: ``factory(seed: str) -> FakeEngine``. ``loyaltykit fake NAME --port N --seed demo`` serves one.
FAKES_GROUP = "loyaltykit.fakes"


Handler = Callable[[httpx.Request, dict[str, str]], httpx.Response]


@dataclass
class _Route:
    method: str
    pattern: Any  # compiled regex with named groups
    name: str
    handler: Handler


@dataclass
class RecordedRequest:
    route: str
    method: str
    path: str
    body: Any
    headers: dict[str, str] = field(repr=False, default_factory=dict)


class FakeEngine:
    """Base of stateful HTTP fakes. Subclasses add routes and state; faults come for free.

    Subclasses call :meth:`route` in ``__init__`` and implement :meth:`error_body` (the engine's
    HTTP-200 error envelope) and :meth:`unauthorized` (its 401 answer).
    """

    #: Whether the engine's auth issues tokens: the fake keeps those it honours in ``self.tokens``,
    #: and :meth:`expire_tokens` voids them all.
    issues_tokens: ClassVar[bool] = False

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.tokens: set[str] = set()

    # -- wiring --------------------------------------------------------------------------------
    def route(self, method: str, regex: str, name: str, handler: Handler) -> None:
        import re

        self._routes.append(_Route(method.upper(), re.compile(regex + r"$"), name, handler))

    def transport(self) -> httpx.MockTransport:
        """A transport for ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
        return httpx.MockTransport(self.handle)

    # -- fault injection -----------------------------------------------------------------------
    def inject(self, route: str, fault: Fault) -> None:
        with self.lock:
            for _ in range(fault.times):
                self._faults[route].append(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def request_count(self, route: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if route is None or r.route == route)

    # -- engine-specific answers (override) ----------------------------------------------------
    def error_body(self, route: str) -> httpx.Response:
        return json_response({"error": "injected"}, 200)

    def unauthorized(self) -> httpx.Response:
        return json_response({"error": "unauthorized"}, 401)

    def server_error(self, status: int) -> httpx.Response:
        return json_response({"error": f"injected {status}"}, status)

    def authorize(self, request: httpx.Request, route: str) -> bool:
        """Whether the request carries valid credentials (override; default: all valid)."""
        return True

    def expire_tokens(self) -> None:
        """Every token the fake issued stops being honoured (the engine's expiry, on demand)."""
        if not self.issues_tokens:
            raise NotImplementedError(f"{type(self).__name__}: the engine's auth issues no tokens")
        with self.lock:
            self.tokens.clear()

    def bearer_token_honoured(self, request: httpx.Request) -> bool:
        """Whether the request's ``Authorization: Bearer`` token is one of ``self.tokens``."""
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    def snapshot(self) -> Any:
        """A comparable picture of the fake's state (override)."""
        raise NotImplementedError(f"{type(self).__name__} takes no snapshot")

    def shop_settings(self, url: str) -> dict[str, str]:
        """Environment variables a shop sets to use this fake served at ``url`` (override)."""
        return {}

    # -- dispatch ------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        for candidate in self._routes:
            if candidate.method != request.method:
                continue
            match = candidate.pattern.match(path)
            if match:
                return self._dispatch(candidate, request, {k: v for k, v in match.groupdict().items()})
        return json_response({"error": f"no route {request.method} {path}"}, 404)

    def _dispatch(self, route: _Route, request: httpx.Request, params: dict[str, str]) -> httpx.Response:
        try:
            body = json.loads(request.content, parse_float=Decimal) if request.content else None
        except ValueError:
            body = request.content.decode(errors="replace")
        with self.lock:
            self.requests.append(RecordedRequest(route.name, request.method, request.url.path, body, dict(request.headers)))
            fault = self._faults[route.name].popleft() if self._faults.get(route.name) else None
        if fault is not None:
            early = self._apply_fault_before(fault, request, route)
            if early is not None:
                return early
        if not self.authorize(request, route.name):
            return self.unauthorized()
        with self.lock:
            response = route.handler(request, params)
        if fault is not None and fault.kind is FaultKind.TIMEOUT_AFTER:
            raise httpx.ReadTimeout("injected: response lost after the engine applied the request", request=request)
        return response

    def _apply_fault_before(self, fault: Fault, request: httpx.Request, route: _Route) -> httpx.Response | None:
        kind = fault.kind
        if kind is FaultKind.DELAY:
            time.sleep(fault.seconds)
            return None
        if kind is FaultKind.HANG:
            time.sleep(fault.seconds)
            raise httpx.ReadTimeout("injected: engine hung", request=request)
        if kind is FaultKind.TIMEOUT_BEFORE:
            raise httpx.ReadTimeout("injected: timed out before the engine applied the request", request=request)
        if kind is FaultKind.RESET:
            raise httpx.ConnectError("injected: connection reset", request=request)
        if kind is FaultKind.STATUS:
            return self.server_error(fault.status)
        if kind is FaultKind.RATE_LIMIT:
            response = self.server_error(429)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(int(fault.retry_after))
            return response
        if kind is FaultKind.MALFORMED:
            return httpx.Response(200, content=b"{not json", headers={"Content-Type": "application/json"})
        if kind is FaultKind.ERROR_BODY:
            return self.error_body(route.name)
        return None  # TIMEOUT_AFTER: applied below, then the response is lost


def form_fields(request: httpx.Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (the first value of each)."""
    return {name: values[0] for name, values in parse_qs(request.content.decode()).items()}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers)


# ---------------------------------------------------------------------------------------------
# Serving a fake (or any handler) over real HTTP, for demos, benchmarks and deadline tests
# ---------------------------------------------------------------------------------------------


class ServedEngine:
    """A handler served on 127.0.0.1 in a background thread. Use as a context manager."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response], port: int = 0) -> None:
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in one send (the server flushes after each response), and
            # Nagle is off: otherwise every response waits ~40 ms for the client's delayed ACK.
            wbufsize = 64 * 1024
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                content = self.rfile.read(length) if length else b""
                request = httpx.Request(
                    self.command,
                    f"http://{self.headers.get('Host', 'localhost')}{self.path}",
                    headers=list(self.headers.items()),
                    content=content,
                )
                try:
                    response = outer.handler(request)
                except httpx.TimeoutException:
                    self.close_connection = True
                    return  # say nothing: the client's own timeout fires
                except httpx.TransportError:
                    self.close_connection = True
                    return
                response.read()
                try:
                    self.send_response(response.status_code)
                    for key, value in response.headers.items():
                        if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(response.content)))
                    self.end_headers()
                    self.wfile.write(response.content)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up first (its deadline ran out): that is the scenario, not an error.
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ServedEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(handler: Callable[[httpx.Request], httpx.Response], port: int = 0) -> ServedEngine:
    """Serve ``handler`` (e.g. ``fake.handle``) over real HTTP on 127.0.0.1."""
    return ServedEngine(handler, port)
