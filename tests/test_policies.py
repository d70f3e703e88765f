"""Policies: circuit breaker, fail-open evaluation, fail-closed writes, export that loses nothing."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from decimal import Decimal

import httpx
import pytest
import respx
from loyaltykit_core_test_helpers import BASE_URL, basket_dict, reference_adapter
from pydantic import SecretStr

from loyaltykit import (
    CircuitOpenError,
    EngineTimeoutError,
    EngineUnavailableError,
    ExportReport,
    ExportStatus,
    InvalidRequestError,
    LoyaltyError,
    OutcomeUnknownError,
    http as http_module,
)
from loyaltykit.auth import ApiKeyHeader, Auth, BasicAuth, OAuth2ClientCredentials
from loyaltykit.breaker import CircuitBreaker
from loyaltykit.flows import CallContext, EngineRequest
from loyaltykit.http import AsyncRunner, EngineClientConfig, RetryPolicy, Service, SyncRunner, _Exchange
from loyaltykit.testing import serve
from loyaltykit_reference.adapter import ReferenceAdapter

MEMBER = {"ok": True, "member": {"id": "m1", "tier": "gold", "points": 1, "cashback": 0}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _raw_url(url: httpx.URL) -> tuple[bytes, bytes, int | None, bytes]:
    """The URL as it goes on the wire (``URL.raw`` is deprecated)."""
    return url.raw_scheme, url.raw_host, url.port, url.raw_path


# -- circuit breaker, as a unit -------------------------------------------------------------------


def test_breaker_opens_after_n_consecutive_failures():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_success()  # a success in between resets the count
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_breaker_half_open_lets_exactly_one_trial_through():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state == "half-open"
    assert breaker.allow()
    assert not breaker.allow(), "only one trial while it is in flight"
    assert not breaker.allow()
    breaker.record_failure()  # the trial failed: open again for a full period
    assert breaker.state == "open"
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(5))


def test_breaker_half_open_trial_is_single_under_concurrency():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=1, clock=clock)
    breaker.record_failure()
    clock.now += 2
    results = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        results.append(breaker.allow())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1


# -- circuit breaker, through the facade ----------------------------------------------------------


@pytest.fixture
def engine_http():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_breaker_refuses_without_sending_then_recovers(facade, engine_http, make_sync, make_async):
    route = engine_http.get("/members").mock(return_value=httpx.Response(503))
    adapter = reference_adapter(max_attempts=1)
    if facade == "sync":
        loyalty = make_sync(adapter, transport=None, breaker_threshold=3, breaker_reset=0.3)

        async def identify():
            return loyalty.identify(email="ann@example.com")
    else:
        loyalty = make_async(adapter, transport=None, breaker_threshold=3, breaker_reset=0.3)

        async def identify():
            return await loyalty.identify(email="ann@example.com")

    for _ in range(3):
        with pytest.raises(EngineUnavailableError) as info:
            await identify()
        assert not isinstance(info.value, CircuitOpenError)
    assert route.call_count == 3
    for _ in range(5):
        with pytest.raises(CircuitOpenError) as info:
            await identify()
        assert info.value.code == "engine_unavailable" and info.value.retryable
    assert route.call_count == 3, "an open circuit sends nothing"

    time.sleep(0.35)  # half-open: one trial; the engine is back
    route.mock(return_value=httpx.Response(200, json=MEMBER))
    assert (await identify()).id == "m1"
    assert route.call_count == 4
    for _ in range(3):
        assert (await identify()).id == "m1"
    assert route.call_count == 7


def test_breaker_opens_mid_retry_and_stops_the_retries(engine_http, make_sync):
    route = engine_http.get("/members").mock(return_value=httpx.Response(503))
    loyalty = make_sync(reference_adapter(max_attempts=6), transport=None, breaker_threshold=2)
    with pytest.raises(EngineUnavailableError):
        loyalty.identify(email="ann@example.com")
    assert route.call_count == 2


def test_client_errors_do_not_open_the_breaker(engine_http, make_sync):
    refusal = {"ok": False, "error": {"code": "invalid_request", "message": "one of email, external_id"}}
    route = engine_http.get("/members").mock(return_value=httpx.Response(400, json=refusal))
    loyalty = make_sync(transport=None, breaker_threshold=1)
    for _ in range(3):
        with pytest.raises(InvalidRequestError):
            loyalty.identify(email="ann@example.com")
    assert route.call_count == 3


def test_a_call_that_never_reaches_the_engine_does_not_consume_the_half_open_trial(engine_http):
    """A call whose deadline is already spent is refused locally; the one half-open trial must stay
    available for a call that is actually sent, or the circuit can never close again."""
    route = engine_http.get("/members").mock(return_value=httpx.Response(200, json=MEMBER))
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5, clock=clock)
    config = EngineClientConfig(engine="reference", services={"default": Service(BASE_URL)},
                                retry=RetryPolicy(max_attempts=1), breaker=breaker)
    runner = SyncRunner(config)
    breaker.record_failure()
    clock.now += 6  # half-open

    def flow():
        response = yield EngineRequest("GET", "/members", route="identify")
        return response.status_code

    spent = CallContext(engine="reference", operation="identify", deadline_seconds=1.0, started=time.monotonic() - 2)
    with pytest.raises(LoyaltyError):
        runner.run(flow(), spent)
    assert route.call_count == 0
    fresh = CallContext(engine="reference", operation="identify", deadline_seconds=2.0)
    assert runner.run(flow(), fresh) == 200
    assert breaker.state == "closed"
    runner.close()


# -- fail-open evaluation, fail-closed writes -----------------------------------------------------


def dead_url() -> str:
    """A local port with nothing listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hanging():
    release = threading.Event()

    def handler(request):
        release.wait(5)
        return httpx.Response(200, json={})

    with serve(handler) as server:
        yield server.url
        release.set()


BUDGET = 0.5


def _check_degraded(evaluation, started):
    elapsed = time.monotonic() - started
    assert evaluation.degraded is True
    assert evaluation.degraded_reason
    assert evaluation.discounts == ()
    assert evaluation.subtotal.amount == evaluation.total.amount
    assert [c.status.value for c in evaluation.codes] == ["rejected"]
    assert elapsed < BUDGET + 0.5, f"fail-open took {elapsed:.2f}s for a {BUDGET}s budget"
    return elapsed


@pytest.mark.parametrize("where", ["dead", "hanging"])
def test_evaluate_fails_open_within_budget_sync(where, hanging, make_sync):
    url = dead_url() if where == "dead" else hanging
    loyalty = make_sync(reference_adapter(base_url=url), transport=None, evaluate_budget=BUDGET)
    started = time.monotonic()
    evaluation = loyalty.evaluate(basket_dict(coupon_codes=["SAVE5"]))
    _check_degraded(evaluation, started)
    assert evaluation.degraded_reason.startswith("engine_unavailable" if where == "dead" else "timeout")


@pytest.mark.parametrize("where", ["dead", "hanging"])
async def test_evaluate_fails_open_within_budget_async(where, hanging, make_async):
    url = dead_url() if where == "dead" else hanging
    loyalty = make_async(reference_adapter(base_url=url), transport=None, evaluate_budget=BUDGET)
    started = time.monotonic()
    evaluation = await loyalty.evaluate(basket_dict(coupon_codes=["SAVE5"]))
    _check_degraded(evaluation, started)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_evaluate_fails_open_on_engine_errors(status, engine_http, make_sync):
    engine_http.post("/evaluate").mock(return_value=httpx.Response(status))
    evaluation = make_sync(reference_adapter(max_attempts=1), transport=None).evaluate(basket_dict())
    assert evaluation.degraded


def test_evaluate_fails_open_on_a_garbled_answer(engine_http, make_sync):
    engine_http.post("/evaluate").mock(return_value=httpx.Response(200, json={"unexpected": True}))
    evaluation = make_sync(transport=None).evaluate(basket_dict())
    assert evaluation.degraded and evaluation.degraded_reason.startswith("malformed_response")


def test_evaluate_does_not_hide_business_errors(engine_http, make_sync):
    """Fail-open covers unavailability only: an unknown customer is the shop's problem to see."""
    from loyaltykit import CustomerNotFoundError

    refusal = {"ok": False, "error": {"code": "member_not_found", "message": "no such member"}}
    engine_http.post("/evaluate").mock(return_value=httpx.Response(200, json=refusal))
    with pytest.raises(CustomerNotFoundError):
        make_sync(transport=None).evaluate(basket_dict(customer_id="ghost"))


@pytest.mark.parametrize("where", ["dead", "hanging"])
async def test_writes_fail_closed(where, hanging, make_sync, make_async):
    url = dead_url() if where == "dead" else hanging
    redeem = {"code": "SAVE5", "order_ref": "o1"}
    spend = {"customer_id": "m1", "order_ref": "o1", "amount": {"amount": "1.00", "currency": "EUR"}}
    sync = make_sync(reference_adapter(base_url=url), transport=None, write_deadline=BUDGET)
    asyn = make_async(reference_adapter(base_url=url), transport=None, write_deadline=BUDGET)
    expected = EngineUnavailableError if where == "dead" else OutcomeUnknownError
    # A spend first looks itself up (the engine has no key for spends): on a hanging engine that read
    # times out before anything is sent, so nothing is unknown about it.
    spend_expected = EngineUnavailableError if where == "dead" else EngineTimeoutError
    with pytest.raises(expected):
        sync.redeem_voucher(redeem)
    with pytest.raises(spend_expected):
        sync.spend_cashback(spend)
    with pytest.raises(expected):
        await asyn.redeem_voucher(redeem)
    with pytest.raises(spend_expected):
        await asyn.spend_cashback(spend)


# -- export ----------------------------------------------------------------------------------------


def orders(*refs):
    return [
        {"ref": ref, "currency": "EUR", "customer_id": "m1", "total": {"amount": "10.00", "currency": "EUR"},
         "lines": [{"id": "l1", "sku": "s", "quantity": 1, "unit_price": {"amount": "10.00", "currency": "EUR"}}]}
        for ref in refs
    ]


@pytest.mark.parametrize("where", ["dead", "hanging"])
async def test_export_against_a_dead_engine_keeps_every_order_queued(where, hanging, make_sync, make_async):
    url = dead_url() if where == "dead" else hanging
    for loyalty in (make_sync(reference_adapter(base_url=url), transport=None, write_deadline=BUDGET),
                    make_async(reference_adapter(base_url=url), transport=None, write_deadline=BUDGET)):
        report = loyalty.export_orders(orders("o1", "o2", "o3"))
        if not isinstance(report, ExportReport):
            report = await report
        assert [r.order_ref for r in report.results] == ["o1", "o2", "o3"]
        assert {r.status for r in report.results} == {ExportStatus.RETRY_LATER}
        assert all(r.error_code for r in report.results)


class ForgetfulAdapter(ReferenceAdapter):
    """Reports only the first order of a batch (and one it was never given)."""

    name = "forgetful"

    def export_orders(self, orders, ctx):
        report = yield from super().export_orders(orders, ctx)
        first = report.results[0]
        stray = first.model_copy(update={"order_ref": "not-in-batch"})
        return ExportReport(engine=self.name, results=(stray, first))


def test_export_fills_unreported_orders_as_retry_later(make_sync, engine):
    report = make_sync(ForgetfulAdapter(reference_adapter().settings)).export_orders(orders("o1", "o2", "o3"))
    assert [(r.order_ref, r.status) for r in report.results] == [
        ("o1", ExportStatus.ACCEPTED),
        ("o2", ExportStatus.RETRY_LATER),
        ("o3", ExportStatus.RETRY_LATER),
    ]
    assert engine.orders == ["o1", "o2", "o3"]


class ReorderingAdapter(ReferenceAdapter):
    """Reports every order of a batch, last first, under a report naming another engine."""

    name = "reordering"

    def export_orders(self, orders, ctx):
        report = yield from super().export_orders(orders, ctx)
        return ExportReport(engine="someone-else", results=tuple(reversed(report.results)))


def test_export_report_is_in_batch_order_and_names_the_engine(make_sync, engine):
    report = make_sync(ReorderingAdapter(reference_adapter().settings)).export_orders(orders("o1", "o2", "o3"))
    assert [(r.order_ref, r.status) for r in report.results] == [
        ("o1", ExportStatus.ACCEPTED), ("o2", ExportStatus.ACCEPTED), ("o3", ExportStatus.ACCEPTED)]
    assert report.engine == "reordering"


def test_export_report_already_complete_is_returned_as_the_adapter_built_it(make_sync):
    seen = []

    class Recording(ReferenceAdapter):
        name = "recording"

        def export_orders(self, orders, ctx):
            report = yield from super().export_orders(orders, ctx)
            report = ExportReport(engine=self.name, results=report.results)
            seen.append(report)
            return report

    report = make_sync(Recording(reference_adapter().settings)).export_orders(orders("o1", "o2"))
    assert report is seen[0]  # one result per order, in order, this engine's name: nothing to rebuild
    assert [r.order_ref for r in report.results] == ["o1", "o2"]


async def test_export_fills_unreported_orders_async(make_async):
    report = await make_async(ForgetfulAdapter(reference_adapter().settings)).export_orders(orders("o1", "o2"))
    assert [r.status for r in report.results] == [ExportStatus.ACCEPTED, ExportStatus.RETRY_LATER]


def test_export_twice_is_duplicate_not_double(make_sync, engine):
    loyalty = make_sync()
    first = loyalty.export_orders(orders("o1", "o2"))
    second = loyalty.export_orders(orders("o2", "o3"))
    assert [r.status for r in first.results] == [ExportStatus.ACCEPTED] * 2
    assert [r.status for r in second.results] == [ExportStatus.DUPLICATE, ExportStatus.ACCEPTED]
    assert engine.orders == ["o1", "o2", "o3"]


async def test_a_cancelled_call_does_not_keep_the_half_open_trial(hanging, make_async, engine_http):
    """A caller that gives up (asyncio cancellation) mid-request must not leave the breaker waiting for
    a trial result that never comes."""
    engine_http.route(host="127.0.0.1").pass_through()
    loyalty = make_async(reference_adapter(base_url=hanging, max_attempts=1), transport=None,
                         breaker_threshold=1, breaker_reset=0.1, read_deadline=5)
    breaker = loyalty.client_config.breaker
    breaker.record_failure()
    await asyncio.sleep(0.15)
    assert breaker.state == "half-open"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(loyalty.identify(email="ann@example.com"), 0.2)
    await asyncio.sleep(0.15)
    assert breaker.allow(), "the breaker must offer a new trial after the cancelled one"


class _NaNComparingAdapter(ReferenceAdapter):
    """Parses a balance as Decimal and compares it: a 'NaN' from the engine signals InvalidOperation."""

    def identify(self, identifier, ctx):
        from decimal import Decimal

        from loyaltykit import Customer
        from loyaltykit.flows import EngineRequest

        response = yield EngineRequest("GET", "/members", params={"email": identifier.value}, route="identify")
        points = max(Decimal(response.json()["member"]["points"]), Decimal(0))
        return Customer(id="m1", tier=str(points))


async def test_an_arithmetic_error_while_parsing_is_a_malformed_answer(engine_http, make_sync, make_async):
    """decimal.InvalidOperation is an ArithmeticError, not a ValueError: it must not escape raw."""
    from loyaltykit import MalformedResponseError

    engine_http.get("/members").mock(return_value=httpx.Response(200, json={"ok": True, "member": {"points": "NaN"}}))
    with pytest.raises(MalformedResponseError):
        make_sync(_NaNComparingAdapter(reference_adapter().settings), transport=None).identify(email="ann@example.com")
    with pytest.raises(MalformedResponseError):
        await make_async(_NaNComparingAdapter(reference_adapter().settings), transport=None).identify(email="ann@example.com")


# -- an engine that trickles bytes -------------------------------------------------------------------


@pytest.fixture
def trickling():
    """Answers every request with a response that arrives one byte every 50 ms for ~4 s: each read
    returns well inside any per-read timeout, so only a deadline for the whole exchange stops it."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    body = b'{"members": []}'.ljust(80)
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def trickle(conn):
        with conn:
            try:
                conn.recv(65536)
                for byte in answer:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.05)
            except OSError:
                return  # the client hung up: its deadline worked

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


def test_sync_evaluate_ends_at_its_budget_when_the_engine_trickles(trickling, make_sync):
    loyalty = make_sync(reference_adapter(base_url=trickling, max_attempts=1), transport=None, evaluate_budget=BUDGET)
    started = time.monotonic()
    evaluation = loyalty.evaluate(basket_dict())
    elapsed = time.monotonic() - started
    assert evaluation.degraded and evaluation.degraded_reason.startswith("timeout")
    assert elapsed < BUDGET + 0.5, f"returned after {elapsed:.2f}s for a {BUDGET}s budget (the engine trickles ~4 s)"


def test_sync_write_ends_at_its_deadline_when_the_engine_trickles(trickling, make_sync):
    loyalty = make_sync(reference_adapter(base_url=trickling, max_attempts=1), transport=None, write_deadline=BUDGET)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError):
        loyalty.redeem_voucher({"code": "SAVE5", "order_ref": "o1"})
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET + 0.5, f"returned after {elapsed:.2f}s for a {BUDGET}s deadline (the engine trickles ~4 s)"


@pytest.mark.parametrize(("path", "params"), [
    ("/members", {"q": "SELECT Id FROM X WHERE Name IN ('a b', 'c+d@e.com')"}),
    ("/members/a%20b", {"membershipNumber": "M 1/2?&=#", "n": 3, "flag": True, "none": None}),
    ("/members", {"many": ["1", "2"], "accents": "ü€", "empty": ""}),
    ("/members", {"nothing": []}),
    ("/members?fixed=1", {"more": "2"}),
    ("/members", {}),
])
def test_request_params_reach_the_engine_as_httpx_encodes_them(path, params):
    """The runner writes the query into the URL itself: byte for byte what httpx's params give."""
    config = EngineClientConfig(engine="reference", services={"default": Service(BASE_URL)})
    ctx = CallContext(engine="reference", operation="identify", deadline_seconds=5.0)
    request = EngineRequest("GET", path, params=params, route="identify")
    client = httpx.Client()
    built = _Exchange(config, request, ctx).build(client)
    expected = client.build_request("GET", BASE_URL.rstrip("/") + path, params=params)
    assert _raw_url(built.url) == _raw_url(expected.url)
    assert str(built.url) == str(expected.url)
    client.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cookie_the_engine_sets_is_sent_back_and_answers_without_one_leave_the_jar_alone(kind):
    """The runners read the cookie jar only from answers that set a cookie: what the engine sets
    still comes back on the next request, as with httpx's own jar."""
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        if request.url.path == "/login":
            return httpx.Response(200, json={}, headers={"Set-Cookie": "session=s1; Path=/"})
        return httpx.Response(200, json={})

    def flow():
        yield EngineRequest("GET", "/members", route="identify")
        yield EngineRequest("GET", "/login", route="identify")
        response = yield EngineRequest("GET", "/members", route="identify")
        return response.status_code

    config = EngineClientConfig(engine="reference", services={"default": Service(BASE_URL)})
    ctx = CallContext(engine="reference", operation="identify", deadline_seconds=5.0)
    if kind == "sync":
        runner = SyncRunner(config, httpx.MockTransport(answer))
        assert runner.run(flow(), ctx) == 200
        jar = dict(runner.client.cookies)
        runner.close()
    else:
        async def main() -> dict[str, str]:
            async_runner = AsyncRunner(config, httpx.MockTransport(answer))
            assert await async_runner.run(flow(), ctx) == 200
            cookies = dict(async_runner.client.cookies)
            await async_runner.aclose()
            return cookies

        jar = asyncio.run(main())
    assert seen == [None, None, "session=s1"]
    assert jar == {"session": "s1"}


def _oauth(token: str | None) -> OAuth2ClientCredentials:
    auth = OAuth2ClientCredentials(token_url="https://login.example/token", client_id="c", client_secret=SecretStr("secret-3"))
    if token is not None:
        auth._keep(token)  # as after a token exchange
    return auth


class _OwnApply(Auth):
    """A strategy of a shop's own: its ``apply`` is called on the built request."""

    def apply(self, request: httpx.Request) -> httpx.Request:
        request.headers["X-Signature"] = "signed"
        del request.headers["accept-encoding"]
        return request


@pytest.mark.parametrize("request_", [
    EngineRequest("POST", "/members/m1/spend", json={"amount": Decimal("1.50")}, headers={"X-Key": "k"}, route="spend"),
    EngineRequest("POST", "/members/m1/touch", route="touch"),  # a POST without a body
    EngineRequest("PUT", "/members/m1", json={"a": "b"}, headers={"Authorization": "Own x"}, route="update"),
    EngineRequest("GET", "/members", headers={"accept": "text/plain", "user-agent": "shop/1"}, route="identify"),
    EngineRequest("POST", "/oauth/token", data={"grant_type": "client_credentials"}, authenticate=False),
    EngineRequest("GET", "/members?fixed=1", params={"more": "2"}, route="identify"),
])
@pytest.mark.parametrize("with_cookie", [False, True])
@pytest.mark.parametrize("auth", [
    ApiKeyHeader(key=SecretStr("secret-key-1"), header="X-Api-Key"),
    ApiKeyHeader(key=SecretStr("secret-key-1"), header="x-shop"),  # replaces a service header in place
    ApiKeyHeader(key=SecretStr("secret-key-1"), header="Accept"),  # and a default one
    BasicAuth("user", SecretStr("secret-pass-1")),
    _oauth("tok-1"),
    _oauth(None),
    _OwnApply(),
], ids=["api-key", "api-key-over-service-header", "api-key-over-default", "basic", "bearer", "no-token-yet", "own-apply"])
def test_a_built_request_is_what_httpx_builds(request_, with_cookie, auth):
    """The runner builds most requests itself: same URL, headers (names, case, order), body and
    timeouts as the client's build_request, so nothing on the wire changes."""
    config = EngineClientConfig(engine="reference", services={"default": Service(BASE_URL, auth=auth, headers={"X-Shop": "s1"})})
    ctx = CallContext(engine="reference", operation="spend", deadline_seconds=5.0)
    client = httpx.Client()
    if with_cookie:
        client.cookies.set("session", "s1")
    built = _Exchange(config, request_, ctx).build(client)
    timeout = built.extensions["timeout"]
    assert built.url.path.endswith(request_.path.split("?")[0]) and timeout["read"] <= 5.0
    headers = {"Accept": "application/json", "X-Shop": "s1", **(request_.headers or {}), "X-Request-ID": ctx.request_id}
    if request_.json is not None:
        headers["Content-Type"] = "application/json"
    expected = client.build_request(request_.method, BASE_URL.rstrip("/") + request_.path, params=request_.params,
                                    content=built.content if request_.json is not None else None,
                                    data=request_.data, headers=headers, timeout=httpx.Timeout(timeout["read"], connect=timeout["connect"]))
    if request_.authenticate:
        auth.apply(expected)
    assert _raw_url(built.url) == _raw_url(expected.url)
    assert built.headers.raw == expected.headers.raw
    assert built.content == expected.content
    assert built.extensions == expected.extensions
    client.close()


def test_requests_are_built_directly_only_where_httpx_would_build_the_same():
    """The runner's direct build is on for this httpx (its self-check passed) and steps aside where
    httpx writes a header itself or a URL is still to be parsed."""
    assert http_module._DIRECT
    url = httpx.URL(BASE_URL + "/members")
    assert http_module._request("GET", url, [("Accept", "application/json")], None, {}) is not None
    assert http_module._request("GET", url, [("Host", "elsewhere")], None, {}) is None
    assert http_module._request("POST", url, [("content-length", "3")], b"abc", {}) is None
    assert http_module._request("GET", url, [("X-Api-Key", "k")], None, {}, ("x-api-key", "k2")) is None
    assert http_module._request("GET", BASE_URL + "/members", [], None, {}) is None
    with pytest.raises(UnicodeEncodeError):  # as httpx refuses it
        http_module._request("GET", url, [("X-Name", "Jürgen")], None, {})
