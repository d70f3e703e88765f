"""The HTTP engine client shared by every adapter: it drives flows over httpx.

What it guarantees, for both :class:`SyncRunner` and :class:`AsyncRunner`:

* one ``httpx.Client``/``AsyncClient`` per engine (connection reuse), finite timeouts, and a
  per-call deadline that bounds every attempt and every back-off sleep;
* tenacity retries with jittered exponential back-off on connect errors, 429 and 502/503/504,
  honouring ``Retry-After`` when it fits inside the deadline. Reads are always retry-safe; writes
  only when they carry an idempotency key the engine honours (``EngineRequest.retry_safe``).
  A connect error is retried even for unkeyed writes, because nothing was sent;
* authentication per service, with exactly one token refresh after a 401;
* status mapping: >= 500 and exhausted retries become kit errors; 2xx/3xx/4xx go back to the flow,
  whose adapter classifies them (including HTTP-200 error bodies);
* a lost response on a write (read timeout, dropped connection, 500/502/504) becomes
  :class:`OutcomeUnknownError`, thrown into the flow so it can reconcile — never a blind re-post;
* a circuit breaker per engine, and one scrubbed log line per attempt with the call's request id.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import re
import time
import urllib.parse
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import httpx
import tenacity
from tenacity import (
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from . import wire
from .auth import Auth
from .breaker import CircuitBreaker
from .deadlines import deadline_transport, exchange_deadline
from .errors import (
    AuthFailedError,
    CircuitOpenError,
    ConfigError,
    EngineTimeoutError,
    EngineUnavailableError,
    LoyaltyError,
    MalformedResponseError,
    OutcomeUnknownError,
    RateLimitedError,
)
from .flows import PARSE_ERRORS, CallContext, EngineRequest, Flow
from .reconcile import PROCESS_KEY_LOCKS, KeyLocks
from .scrub import get_logger, scrub_text, scrubbing

log = get_logger("loyaltykit.http")
# httpx and httpcore log full URLs (query strings may hold an e-mail) and response headers: scrub
# their records too. Logger filters do not apply to child loggers, so name every one httpcore uses.
for _name in ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
              "httpcore.proxy", "httpcore.socks"):
    get_logger(_name, kit_calls_only=True)  # the shop's own httpx calls are not ours to scrub or slow

T = TypeVar("T")

_REFRESH = object()  # steps of _Exchange.plan
_SEND = object()

RETRY_STATUSES = frozenset({429, 502, 503, 504})
UNKNOWN_OUTCOME_STATUSES = frozenset({500, 502, 504})  # the engine may have applied the write


@dataclass
class Service:
    """One base URL with its authentication (SessionM has three, most engines one)."""

    base_url: str
    auth: Auth = field(default_factory=Auth)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff_base: float = 0.1  # seconds; jittered exponential: random(0, base * 2**n), capped
    backoff_max: float = 2.0


@dataclass
class EngineClientConfig:
    engine: str
    services: dict[str, Service]
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    request_id_header: str | None = "X-Request-ID"
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    max_connections: int = 20
    #: one in-flight call per idempotency key; replace with a shared-store implementation to
    #: extend that across processes (see :mod:`loyaltykit.reconcile`)
    key_locks: KeyLocks = field(default_factory=lambda: PROCESS_KEY_LOCKS)

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise ConfigError(f"no service named {name!r} configured", engine=self.engine) from None


# ---------------------------------------------------------------------------------------------
# Pieces shared by both runners (pure: no I/O)
# ---------------------------------------------------------------------------------------------


class _RetryableStatus(Exception):
    """Internal: a response whose status asks for a retry (429, 502-504)."""

    def __init__(self, response: httpx.Response, retry_after: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# Parsing a URL string is most of what building a request costs httpx (it checks the URL
# character by character in Python). Only an engine's origin (scheme, host, port) is parsed once
# and kept; the path and query, which may hold a member's number, are set onto it per request and
# never kept. That is done only for a path and query httpx would keep exactly as written (no
# escaping, no dot segment to resolve), and only while this httpx builds its URLs from the parts
# checked below; any other URL is parsed by httpx as given.
_PLAIN_PATH = re.compile(r"(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+")  # httpx keeps a %XX
_PLAIN_QUERY = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")  # as httpx writes a query


@functools.lru_cache(maxsize=64)  # a few engine origins per process
def _origin(origin: str) -> Any:
    parsed = httpx.URL(origin + "/")
    reference = getattr(parsed, "_uri_reference", None)
    if reference is None or parsed.raw_path != b"/" or str(parsed) != origin + "/":
        return None
    # (parts class, scheme, userinfo, host, port): the path, no query and no fragment follow
    return type(reference), tuple(reference)[:4]


_new_url = httpx.URL.__new__
_new_parts = tuple.__new__


def _url_with_path(origin: tuple[Any, tuple[Any, ...]], path: str, query: str | None = None) -> httpx.URL:
    url = _new_url(httpx.URL)
    url._uri_reference = _new_parts(origin[0], (*origin[1], path, query, None))
    return url


def _target(url: str) -> str | httpx.URL:
    """``url`` as httpx would parse it, from the parsed origin, the plain path and plain query."""
    slash = url.find("/", url.find("://") + 3)
    if slash < 3 or not _SETS_PATH:
        return url
    path, mark, query = url[slash:].partition("?")
    if "/." in path or not _PLAIN_PATH.fullmatch(path) or (mark and not _PLAIN_QUERY.fullmatch(query)):
        return url
    origin = _origin(url[:slash])
    return url if origin is None else _url_with_path(origin, path, query if mark else None)


def _sets_path() -> bool:  # this httpx's URL is its parsed parts, as assumed above
    try:
        sample = "https://engine.example:8443/a/b-1/c@d"
        origin = _origin("https://engine.example:8443")
        return origin is not None and _url_with_path(origin, "/a/b-1/c@d") == httpx.URL(sample)
    except Exception:  # another httpx: it parses every URL
        return False


_SETS_PATH = _sets_path()


def _query(params: Mapping[str, Any]) -> str:
    """``str(httpx.QueryParams(params))``: httpx writes a query with urllib's urlencode after turning
    each value into text; plain str and int values (no bool, None or list, which httpx writes its own
    way) are that text already, so urlencode is called on them directly (1.4 instead of 3.8 us)."""
    if type(params) is dict and all(type(value) is str or type(value) is int for value in params.values()) \
            and all(type(key) is str for key in params):
        return urllib.parse.urlencode(params)
    return str(httpx.QueryParams(params))


def _with_defaults(defaults: httpx.Headers, headers: dict[str, str]) -> list[tuple[Any, Any]]:
    """The client's default headers updated with ``headers``, as httpx merges them: a default
    named again (in any case) is dropped, the request's own follow in their order."""
    named = {key.lower().encode() for key in headers}
    merged: list[tuple[Any, Any]] = [(key, value) for key, value in defaults.raw if key.lower() not in named]
    merged.extend(headers.items())
    return merged


_NO_BODY_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})
_LENGTH_ZERO = (b"Content-Length", b"content-length", b"0")
_APPLY_HEADER = Auth.apply_header


def _request(method: str, url: str | httpx.URL, headers: list[tuple[Any, Any]], content: bytes | None,
             extensions: dict[str, Any], extra: tuple[str, str] | None = None) -> httpx.Request | None:
    """``httpx.Request(method, url, headers=headers, content=content, extensions=extensions)``,
    ``extra`` then set as a header, built directly: the same request (a check below compares them)
    without httpx normalising its headers twice and looking each one up again (~20 us a request).
    None where httpx would do more than that: a URL still to parse, a header httpx writes itself
    (Host, Content-Length) given, or ``extra`` naming a header already there."""
    if type(url) is not httpx.URL or not _DIRECT:
        return None
    triples = []
    for key, value in headers:  # as httpx normalises them: bytes kept, str in ASCII, anything else its way
        if type(key) is str:
            key = key.encode("ascii")
        if type(value) is str:
            value = value.encode("ascii")
        if type(key) is not bytes or type(value) is not bytes:
            return None
        triples.append((key, key.lower(), value))
    names = {lower.decode("ascii") for _, lower, _ in triples}
    if not names.isdisjoint(_NO_BODY_HEADERS) or (extra is not None and extra[0].lower() in names):
        return None
    host = url.netloc
    if not host:
        return None
    method = method.upper()
    if content:  # encode_content's Content-Length, set after the given headers
        triples.append((b"Content-Length", b"content-length", str(len(content)).encode("ascii")))
        ahead = [(b"Host", b"host", host)]
    else:
        content = b""
        ahead = [(b"Host", b"host", host), _LENGTH_ZERO] if method in ("POST", "PUT", "PATCH") else [(b"Host", b"host", host)]
    if extra is not None:
        raw_key = extra[0].encode("ascii")
        triples.append((raw_key, raw_key.lower(), extra[1].encode("ascii")))
    built_headers = _new_headers(httpx.Headers)
    built_headers._list = ahead + triples
    built_headers._encoding = None
    built = _new_request(httpx.Request)
    built.method = method
    built.url = url
    built.headers = built_headers
    built.extensions = extensions
    built.stream = _ByteStream(content)
    built._content = content
    return built


_new_headers = httpx.Headers.__new__
_new_request = httpx.Request.__new__
_ByteStream = httpx.ByteStream


_DIRECT = True  # until the check below says otherwise


def _builds_requests() -> bool:  # this httpx's Request is what _request sets, as assumed above
    try:
        url = httpx.URL("https://engine.example:8443/a/b")
        for method, content in (("POST", b'{"a":1}'), ("GET", None), ("POST", None), ("DELETE", b"x")):
            headers: list[tuple[Any, Any]] = [(b"Accept", b"*/*"), ("X-Request-ID", "abc"), ("content-type", "application/json")]
            ours = _request(method, url, headers, content, {"timeout": {"read": 1.0}}, ("Authorization", "Basic eA=="))
            theirs = httpx.Request(method, url, headers=headers, content=content, extensions={"timeout": {"read": 1.0}})
            theirs.headers["Authorization"] = "Basic eA=="
            if (ours is None or ours.headers.raw != theirs.headers.raw or ours.content != theirs.content
                    or vars(ours).keys() != vars(theirs).keys() or ours.method != theirs.method
                    or ours.url != theirs.url or ours.extensions != theirs.extensions
                    or type(ours.stream) is not type(theirs.stream) or ours.read() != theirs.read()):
                return False
        return True
    except Exception:  # another httpx: it builds every request
        return False


_DIRECT = _builds_requests()


class _Cookies(httpx.Cookies):
    """The client's cookie jar, updated only from an answer that sets a cookie. httpx hands every
    answer to the stdlib cookie jar, which builds a urllib request and response around it to find
    no Set-Cookie header: ~15 us per answer, more than the runner's own bookkeeping."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:  # what the stdlib jar reads
            super().extract_cookies(response)


def _no_cookies(client: httpx.Client | httpx.AsyncClient) -> bool:
    # The stdlib jar keeps its cookies in a dict by domain: an empty dict is an empty jar, seen
    # without walking it (``not client.cookies`` walks it with a generator, per request).
    if getattr(client.cookies.jar, "_cookies", None) == {}:
        return True
    return not client.cookies


def _cookie_jar(client: httpx.Client | httpx.AsyncClient) -> None:
    # httpx takes no jar class; its own attribute is replaced when it is there (else left as is).
    if type(getattr(client, "_cookies", None)) is httpx.Cookies:
        client._cookies = _Cookies(client.cookies)


def _is_not_sent(exc: BaseException) -> bool:
    # No byte of the request left this machine: safe to retry any request.
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


class _Exchange:
    """Everything about one EngineRequest that does not depend on sync vs async."""

    def __init__(self, config: EngineClientConfig, request: EngineRequest, ctx: CallContext) -> None:
        self.config = config
        self.request = request
        self.ctx = ctx
        self.service = config.service(request.service)
        self.sent = False  # at least one attempt may have reached the engine
        self.refreshed = False
        self.generation = 0  # the token generation the last attempt was sent with

    # -- building ------------------------------------------------------------------------------
    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        req = self.request
        remaining = self.ctx.remaining()
        if remaining <= 0:
            raise self.deadline_error()
        read = min(self.config.read_timeout, remaining)
        # what httpx.Timeout(read, connect=...) gives, in the form the transport reads
        timeout = {"connect": min(self.config.connect_timeout, remaining), "read": read, "write": read, "pool": read}
        url = req.path
        if not url.startswith(("http://", "https://")):
            base = self.service.auth.base_url() or self.service.base_url
            url = base.rstrip("/") + "/" + url.lstrip("/")
        params = req.params
        if params and "?" not in url:
            # The query written once into the URL string: httpx would parse the URL, then parse and
            # merge it again for the params (same encoding, QueryParams is what it uses).
            url = f"{url}?{_query(params)}"  # an empty query keeps its '?', as httpx writes it
            params = None
        target = _target(url)
        body = req.json
        if req.authenticate and isinstance(body, dict) and self.service.auth.body_fields():
            body = {**body, **self.service.auth.body_fields()}
        headers = {"Accept": "application/json", **self.service.headers, **(req.headers or {})}
        if self.config.request_id_header:
            headers[self.config.request_id_header] = self.ctx.request_id
        content = None
        if body is not None:
            content = wire.dumps(body)  # Decimal-exact: amounts never pass through float
            headers.setdefault("Content-Type", "application/json")
        extensions = {"timeout": timeout}
        auth = self.service.auth if req.authenticate else None
        if auth is not None:
            self.generation = auth.generation
        if params is None and req.data is None and _no_cookies(client):
            # What build_request gives when the client has no base URL, query or cookies to merge
            # (the runners' clients have none of the first two), without its copies of them.
            merged = _with_defaults(client.headers, headers)
            if auth is not None and type(auth).apply is _APPLY_HEADER:  # the header is written in too
                built = _request(req.method, target, merged, content, extensions, auth.request_header())
                if built is not None:
                    return built
            built = _request(req.method, target, merged, content, extensions) or httpx.Request(
                req.method, target, headers=merged, content=content, extensions=extensions)
        else:
            built = client.build_request(req.method, target, params=params, content=content, data=req.data,
                                         headers=headers, extensions=extensions)
        if auth is not None:
            auth.apply(built)
        return built

    def plan(self) -> Generator[object, httpx.Response | None, httpx.Response]:
        """The authentication protocol of one request, sans-IO: yields ``_REFRESH`` (the runner
        makes sure a token is there, refreshing under the strategy's lock) or ``_SEND`` (the runner
        sends with retries and replies with the response)."""
        if self.needs_token():
            yield _REFRESH
        response = yield _SEND
        if response is None:
            raise AssertionError("response is set here")
        if self.should_refresh(response):
            yield _REFRESH
            response = yield _SEND
            if response is None:
                raise AssertionError("response is set here")
            if self.service.auth.refused(response):
                raise self._err(
                    AuthFailedError, f"engine refused the refreshed token (HTTP {response.status_code})"
                )
        return response

    def needs_token(self) -> bool:
        return self.request.authenticate and self.service.auth.needs_token()

    def token_exchange(self) -> _Exchange:
        return _Exchange(self.config, self.service.auth.token_request(), self.ctx)

    def accept_token(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise AuthFailedError(
                f"token endpoint refused the credentials (HTTP {response.status_code})",
                engine=self.config.engine,
                operation=self.ctx.operation,
            )
        self.service.auth.accept_token(response)

    def should_refresh(self, response: httpx.Response) -> bool:
        """A refused token (401, or the strategy's refusal body) on an authenticated call: refresh
        once; the second refusal is final."""
        if not self.request.authenticate or not self.service.auth.refused(response):
            return False
        if not self.service.auth.refreshable or self.refreshed:
            return False
        self.refreshed = True
        self.service.auth.invalidate(self.generation)  # a newer token than ours stays
        return True

    # -- tenacity policy -----------------------------------------------------------------------
    def retry_kwargs(self) -> dict[str, Any]:
        policy = self.config.retry
        jitter = wait_random_exponential(multiplier=policy.backoff_base, max=policy.backoff_max)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
                return exc.retry_after
            return jitter(state)

        def retryable(exc: BaseException) -> bool:
            if _is_not_sent(exc):
                return True
            if not self.request.retry_safe:
                return False
            return isinstance(exc, _RetryableStatus | httpx.TransportError)

        return {
            "retry": retry_if_exception(retryable),
            "wait": wait,
            "stop": stop_after_attempt(policy.max_attempts)
            | stop_before_delay(max(0.0, self.ctx.remaining())),
            "reraise": True,
        }

    # -- outcome classification ----------------------------------------------------------------
    def check(self, response: httpx.Response) -> httpx.Response:
        """Raise for statuses the runner owns; return the rest to the flow."""
        status = response.status_code
        if status in RETRY_STATUSES:
            raise _RetryableStatus(response, parse_retry_after(response.headers.get("Retry-After")))
        if status >= 500:
            raise self.status_error(response)
        return response

    def error_for(self, exc: BaseException) -> LoyaltyError:
        """The kit error for whatever ended the attempts."""
        if isinstance(exc, LoyaltyError):
            return exc
        if isinstance(exc, _RetryableStatus):
            return self.status_error(exc.response, exc.retry_after)
        if _is_not_sent(exc) and not self.sent:
            return self._err(EngineUnavailableError, f"could not connect: {type(exc).__name__}")
        if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
            if self.request.write:
                return self.unknown(f"no response to the write ({type(exc).__name__})")
            return self._err(EngineTimeoutError, f"no response in time ({type(exc).__name__})")
        return self._err(EngineUnavailableError, f"unexpected transport failure: {type(exc).__name__}")

    def status_error(self, response: httpx.Response, retry_after: float | None = None) -> LoyaltyError:
        status = response.status_code
        if status == 429:
            return self._err(
                RateLimitedError, "rate limited by the engine (HTTP 429)", retry_after=retry_after
            )
        if self.request.write and status in UNKNOWN_OUTCOME_STATUSES:
            return self.unknown(f"HTTP {status} to a write: it may have been applied")
        return self._err(EngineUnavailableError, f"engine answered HTTP {status}", engine_code=str(status))

    def deadline_error(self) -> LoyaltyError:
        if self.request.write and self.sent:
            return self.unknown("the deadline ran out before the write's outcome was known")
        return self._err(EngineTimeoutError, f"deadline of {self.ctx.deadline_seconds:.2f}s exceeded")

    def unknown(self, message: str) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            message,
            engine=self.config.engine,
            operation=self.ctx.operation,
            retryable=self.request.idempotency_key is not None,
            idempotency_key=self.request.idempotency_key or self.ctx.idempotency_key,
            reconcile={
                "route": self.request.route,
                "method": self.request.method,
                "path": scrub_text(self.request.path, self.ctx.scrub_values),
                "request_id": self.ctx.request_id,
            },
        )

    def _err(self, cls: type[LoyaltyError], message: str, **kwargs: Any) -> LoyaltyError:
        return cls(message, engine=self.config.engine, operation=self.ctx.operation, **kwargs)

    # -- bookkeeping ---------------------------------------------------------------------------
    def admit(self) -> None:
        if not self.config.breaker.allow():
            raise self._err(CircuitOpenError, "circuit open: the engine failed repeatedly; not sent")

    def record(self, started: float, response: httpx.Response | None, exc: BaseException | None, attempt: int) -> None:
        breaker = self.config.breaker
        if response is not None and response.status_code < 500:
            breaker.record_success()
        elif exc is None or not isinstance(exc, LoyaltyError):
            breaker.record_failure()
        if not log.isEnabledFor(logging.INFO):  # skip scrubbing and formatting nobody will read
            return
        elapsed_ms = (time.monotonic() - started) * 1000
        outcome = str(response.status_code) if response is not None else type(exc).__name__
        path = self.request.path.split("?", 1)[0]
        log.info(
            "engine=%s op=%s route=%s request_id=%s %s %s -> %s %.1fms attempt=%d",
            self.config.engine,
            self.ctx.operation,
            self.request.route or "-",
            self.ctx.request_id,
            self.request.method,
            scrub_text(path, self.ctx.scrub_values),
            outcome,
            elapsed_ms,
            attempt,
        )


def _lock_keys(config: EngineClientConfig, ctx: CallContext) -> list[str]:
    """The call's idempotency keys, namespaced by engine: one call per key in flight at a time."""
    keys = [ctx.idempotency_key, *ctx.exclusive_keys] if ctx.idempotency_key else list(ctx.exclusive_keys)
    return [f"{config.engine}:{key}" for key in keys]


def _busy(config: EngineClientConfig, ctx: CallContext) -> LoyaltyError:
    # Another call with the same key was still in flight at our deadline: it may apply the effect.
    return OutcomeUnknownError(
        "another call with the same idempotency key was still in flight at the deadline",
        engine=config.engine, operation=ctx.operation, retryable=True, idempotency_key=ctx.idempotency_key,
    )


_UNREADABLE: tuple[type[Exception], ...] = (MalformedResponseError, *PARSE_ERRORS)


def _answer(
    config: EngineClientConfig, flow: Flow[T], request: EngineRequest, response: httpx.Response, ctx: CallContext
) -> EngineRequest:
    """Hand a response to the flow. An answer to a write the flow could not read (garbled body,
    no status) leaves the write's outcome unknown, for every adapter: never a plain failure."""
    try:
        return flow.send(response)
    except StopIteration:
        raise
    except _UNREADABLE as exc:
        if not request.write or (isinstance(exc, LoyaltyError) and not isinstance(exc, MalformedResponseError)):
            raise
        lost = _Exchange(config, request, ctx).unknown(
            f"the answer to the write could not be read ({type(exc).__name__}); it may have been applied"
        )
        raise lost from None


def _finish(ctx: CallContext, exc: LoyaltyError) -> LoyaltyError:
    exc.with_context(engine=ctx.engine, operation=ctx.operation)
    if ctx.scrub_values:
        exc.message = scrub_text(exc.message, ctx.scrub_values)
        exc.args = (exc.message,)
    return exc


# ---------------------------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------------------------


class SyncRunner:
    """Drives flows with one shared ``httpx.Client``."""

    def __init__(self, config: EngineClientConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        transport = transport or deadline_transport(limits)  # each socket wait ends at the call's deadline
        self.client = httpx.Client(transport=transport, limits=limits, follow_redirects=False)
        _cookie_jar(self.client)

    def close(self) -> None:
        self.client.close()

    def run(self, flow: Flow[T], ctx: CallContext) -> T:
        with scrubbing(ctx.scrub_values):
            keys = _lock_keys(self.config, ctx)
            if not keys:
                return self._run(flow, ctx)
            try:
                with self.config.key_locks.hold(keys, max(0.0, ctx.remaining())):
                    return self._run(flow, ctx)
            except TimeoutError:
                raise _finish(ctx, _busy(self.config, ctx)) from None

    def _run(self, flow: Flow[T], ctx: CallContext) -> T:
        try:
            request = next(flow)
            while True:
                try:
                    response = self.send(request, ctx)
                except LoyaltyError as exc:
                    request = flow.throw(_finish(ctx, exc))
                else:
                    request = _answer(self.config, flow, request, response, ctx)
        except StopIteration as stop:
            return cast(T, stop.value)
        except LoyaltyError as exc:
            raise _finish(ctx, exc) from exc.__cause__

    def send(self, request: EngineRequest, ctx: CallContext) -> httpx.Response:
        exchange = _Exchange(self.config, request, ctx)
        plan = exchange.plan()
        step = next(plan)
        while True:
            if step is _REFRESH:
                self._refresh(exchange)
                reply = None
            else:
                reply = self._attempts(exchange)
            try:
                step = plan.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def _refresh(self, exchange: _Exchange) -> None:
        auth = exchange.service.auth
        with auth.refresh_lock:  # one exchange for every thread that found the token missing
            if auth.needs_token():
                token = exchange.token_exchange()
                exchange.accept_token(self._attempts(token))

    def _attempts(self, exchange: _Exchange) -> httpx.Response:
        try:  # the common case, one attempt that succeeds, needs no retry machinery
            return self._once(exchange, 1)
        except Exception as exc:
            first = exc
        try:
            for attempt in tenacity.Retrying(**exchange.retry_kwargs()):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    if number == 1:
                        raise first  # the policy decides on the first attempt's failure as its own
                    return self._once(exchange, number)
        except BaseException as exc:  # tenacity re-raises the last attempt's exception
            if isinstance(exc, LoyaltyError | httpx.HTTPError | _RetryableStatus):
                raise exchange.error_for(exc) from None
            raise
        raise exchange.deadline_error()  # pragma: no cover - tenacity always returns or raises

    def _once(self, exchange: _Exchange, attempt: int) -> httpx.Response:
        built = exchange.build(self.client)  # may refuse (deadline spent) before taking the breaker's trial
        exchange.admit()
        started = time.monotonic()
        sent_before, exchange.sent = exchange.sent, True
        try:
            with exchange_deadline(exchange.ctx.deadline):
                response = self.client.send(built)
                response.read()
        except httpx.HTTPError as exc:
            if _is_not_sent(exc):
                exchange.sent = sent_before
            exchange.record(started, None, exc, attempt)
            raise
        exchange.record(started, response, None, attempt)
        return exchange.check(response)


class AsyncRunner:
    """Drives flows with one shared ``httpx.AsyncClient``; behaviour identical to SyncRunner."""

    def __init__(self, config: EngineClientConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        self.client = httpx.AsyncClient(transport=transport, limits=limits, follow_redirects=False)
        _cookie_jar(self.client)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run(self, flow: Flow[T], ctx: CallContext) -> T:
        with scrubbing(ctx.scrub_values):
            keys = _lock_keys(self.config, ctx)
            if not keys:
                return await self._run(flow, ctx)
            try:
                async with self.config.key_locks.hold_async(keys, max(0.0, ctx.remaining())):
                    return await self._run(flow, ctx)
            except TimeoutError:
                raise _finish(ctx, _busy(self.config, ctx)) from None

    async def _run(self, flow: Flow[T], ctx: CallContext) -> T:
        try:
            request = next(flow)
            while True:
                try:
                    response = await self.send(request, ctx)
                except LoyaltyError as exc:
                    request = flow.throw(_finish(ctx, exc))
                else:
                    request = _answer(self.config, flow, request, response, ctx)
        except StopIteration as stop:
            return cast(T, stop.value)
        except LoyaltyError as exc:
            raise _finish(ctx, exc) from exc.__cause__

    async def send(self, request: EngineRequest, ctx: CallContext) -> httpx.Response:
        exchange = _Exchange(self.config, request, ctx)
        plan = exchange.plan()
        step = next(plan)
        while True:
            if step is _REFRESH:
                await self._refresh(exchange)
                reply = None
            else:
                reply = await self._attempts(exchange)
            try:
                step = plan.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def _refresh(self, exchange: _Exchange) -> None:
        auth = exchange.service.auth
        async with auth.async_refresh_lock():  # one exchange for every task that found it missing
            if auth.needs_token():
                token = exchange.token_exchange()
                exchange.accept_token(await self._attempts(token))

    async def _attempts(self, exchange: _Exchange) -> httpx.Response:
        try:  # as in SyncRunner: the retry policy is built only after a failed first attempt
            return await self._once(exchange, 1)
        except Exception as exc:
            first = exc
        try:
            async for attempt in tenacity.AsyncRetrying(**exchange.retry_kwargs()):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    if number == 1:
                        raise first
                    return await self._once(exchange, number)
        except BaseException as exc:
            if isinstance(exc, LoyaltyError | httpx.HTTPError | _RetryableStatus):
                raise exchange.error_for(exc) from None
            raise
        raise exchange.deadline_error()  # pragma: no cover

    async def _once(self, exchange: _Exchange, attempt: int) -> httpx.Response:
        built = exchange.build(self.client)  # may refuse (deadline spent) before taking the breaker's trial
        exchange.admit()
        started = time.monotonic()
        sent_before, exchange.sent = exchange.sent, True
        try:
            # The per-request timeout bounds each phase; the deadline bounds the whole exchange
            # (asyncio.timeout, unlike wait_for, runs the send in this task: no task per request).
            async with asyncio.timeout(max(0.001, exchange.ctx.remaining())):
                response = await self.client.send(built)
                await response.aread()
        except TimeoutError as exc:
            exchange.record(started, None, exc, attempt)
            raise httpx.ReadTimeout("deadline reached while waiting for the engine") from exc
        except asyncio.CancelledError as exc:  # the caller gave up: release a half-open trial
            exchange.record(started, None, exc, attempt)
            raise
        except httpx.HTTPError as exc:
            if _is_not_sent(exc):
                exchange.sent = sent_before
            exchange.record(started, None, exc, attempt)
            raise
        exchange.record(started, response, None, attempt)
        return exchange.check(response)
