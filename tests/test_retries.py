"""Retries, deadlines and auth refresh, checked at the HTTP level with respx and a real local server."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import respx
from loyaltykit_core_test_helpers import BASE_URL, TOKEN_URL, adapter_settings, oauth_settings, reference_adapter

from loyaltykit import (
    AuthFailedError,
    EngineTimeoutError,
    EngineUnavailableError,
    InvalidRequestError,
    Money,
    OutcomeUnknownError,
    RateLimitedError,
)
from loyaltykit.http import parse_retry_after
from loyaltykit.testing import serve
from loyaltykit_reference.testing import DropsIdempotencyKey

MEMBER = {"ok": True, "member": {"id": "m1", "tier": "gold", "points": 1, "cashback": 0}}
REDEEMED = {"ok": True, "id": "R1", "amount": 5}
REDEEM = {"code": "SAVE5", "order_ref": "o1"}


def keyed(keyed_writes=True, **extra):
    """The reference adapter, whose redemptions carry the kit's key in the engine's ``key`` field
    (retryable); with ``keyed_writes=False``, its variant that sends them without a key, which the
    runner must then treat as an unkeyed write."""
    if keyed_writes:
        return reference_adapter(**extra)
    return DropsIdempotencyKey(adapter_settings(**extra))


@pytest.fixture
def engine_http():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


def members(mock):
    return mock.get("/members")


def redeem(mock):
    return mock.post("/redemptions")


# -- reads ----------------------------------------------------------------------------------------


def test_503_then_200_succeeds_after_one_retry(engine_http, make_sync):
    route = members(engine_http).mock(side_effect=[httpx.Response(503), httpx.Response(200, json=MEMBER)])
    customer = make_sync(transport=None).identify(email="ann@example.com")
    assert customer is not None and customer.id == "m1"
    assert route.call_count == 2


@pytest.mark.parametrize("status", [502, 503, 504, 429])
async def test_retryable_statuses_are_retried_async(status, engine_http, make_async):
    route = members(engine_http).mock(side_effect=[httpx.Response(status), httpx.Response(200, json=MEMBER)])
    customer = await make_async(transport=None).identify(email="ann@example.com")
    assert customer.id == "m1"
    assert route.call_count == 2


def test_retries_stop_after_max_attempts(engine_http, make_sync):
    route = members(engine_http).mock(return_value=httpx.Response(503))
    with pytest.raises(EngineUnavailableError) as info:
        make_sync(keyed(max_attempts=3), transport=None).identify(email="ann@example.com")
    assert route.call_count == 3
    assert info.value.retryable and info.value.engine == "reference" and info.value.operation == "identify"


async def test_retries_stop_after_max_attempts_async(engine_http, make_async):
    route = members(engine_http).mock(return_value=httpx.Response(503))
    with pytest.raises(EngineUnavailableError):
        await make_async(keyed(max_attempts=3), transport=None).identify(email="ann@example.com")
    assert route.call_count == 3


def test_one_attempt_allowed_means_no_retry(engine_http, make_sync):
    # the first attempt runs outside the retry policy: the policy must still count it as attempt 1
    route = members(engine_http).mock(side_effect=[httpx.Response(503), httpx.Response(200, json=MEMBER)])
    with pytest.raises(EngineUnavailableError):
        make_sync(keyed(max_attempts=1), transport=None).identify(email="ann@example.com")
    assert route.call_count == 1


def test_4xx_is_not_retried(engine_http, make_sync):
    refusal = {"ok": False, "error": {"code": "invalid_request", "message": "one of email, external_id"}}
    route = members(engine_http).mock(return_value=httpx.Response(400, json=refusal))
    with pytest.raises(InvalidRequestError):
        make_sync(transport=None).identify(email="ann@example.com")
    assert route.call_count == 1


def test_429_retry_after_is_honoured(engine_http, make_sync):
    route = members(engine_http).mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json=MEMBER)])
    started = time.monotonic()
    customer = make_sync(transport=None, read_deadline=5).identify(email="ann@example.com")
    elapsed = time.monotonic() - started
    assert customer.id == "m1"
    assert route.call_count == 2
    assert elapsed >= 0.95, f"Retry-After: 1 was not waited for ({elapsed:.3f}s)"


async def test_429_retry_after_is_honoured_async(engine_http, make_async):
    route = members(engine_http).mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json=MEMBER)])
    started = time.monotonic()
    customer = await make_async(transport=None, read_deadline=5).identify(email="ann@example.com")
    assert customer.id == "m1" and route.call_count == 2
    assert time.monotonic() - started >= 0.95


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_429_beyond_the_deadline_fails_fast(facade, engine_http, make_sync, make_async):
    route = members(engine_http).mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        if facade == "sync":
            make_sync(transport=None, read_deadline=3).identify(email="ann@example.com")
        else:
            await make_async(transport=None, read_deadline=3).identify(email="ann@example.com")
    assert time.monotonic() - started < 1.0, "must not sleep toward a Retry-After beyond the deadline"
    assert route.call_count == 1
    assert info.value.retry_after == 30
    assert info.value.retryable


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


# -- writes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_unkeyed_write_is_not_retried_on_5xx(status, engine_http, make_sync):
    route = redeem(engine_http).mock(side_effect=[httpx.Response(status), httpx.Response(201, json=REDEEMED)])
    with pytest.raises((OutcomeUnknownError, EngineUnavailableError)):
        make_sync(keyed(False), transport=None).redeem_voucher(REDEEM)
    assert route.call_count == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_keyed_write_is_retried_on_5xx(status, engine_http, make_sync):
    route = redeem(engine_http).mock(side_effect=[httpx.Response(status), httpx.Response(201, json=REDEEMED)])
    result = make_sync(keyed(True), transport=None).redeem_voucher(REDEEM)
    assert result.receipt.engine_ref == "R1"
    assert route.call_count == 2
    assert all(json.loads(call.request.content)["key"] == "o1:redeem:SAVE5" for call in route.calls)


def test_unkeyed_write_is_not_retried_after_a_timeout(engine_http, make_sync):
    route = redeem(engine_http).mock(side_effect=[httpx.ReadTimeout("lost"), httpx.Response(201, json=REDEEMED)])
    with pytest.raises(OutcomeUnknownError):
        make_sync(keyed(False), transport=None).redeem_voucher(REDEEM)
    assert route.call_count == 1


def test_keyed_write_is_retried_after_a_timeout(engine_http, make_sync):
    route = redeem(engine_http).mock(side_effect=[httpx.ReadTimeout("lost"), httpx.Response(201, json=REDEEMED)])
    assert make_sync(keyed(True), transport=None).redeem_voucher(REDEEM).receipt.engine_ref == "R1"
    assert route.call_count == 2


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_connect_errors_are_retried_even_for_unkeyed_writes(facade, engine_http, make_sync, make_async):
    route = redeem(engine_http).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=REDEEMED)])
    if facade == "sync":
        result = make_sync(keyed(False), transport=None).redeem_voucher(REDEEM)
    else:
        result = await make_async(keyed(False), transport=None).redeem_voucher(REDEEM)
    assert result.receipt.engine_ref == "R1"
    assert route.call_count == 2


def test_connect_errors_exhausted_mean_unavailable_not_unknown(engine_http, make_sync):
    route = redeem(engine_http).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(EngineUnavailableError) as info:
        make_sync(keyed(False, max_attempts=3), transport=None).redeem_voucher(REDEEM)
    assert not isinstance(info.value, OutcomeUnknownError)
    assert route.call_count == 3


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_500_to_a_write_is_outcome_unknown_with_reconcile_info(facade, engine_http, make_sync, make_async):
    route = redeem(engine_http).mock(return_value=httpx.Response(500))
    with pytest.raises(OutcomeUnknownError) as info:
        if facade == "sync":
            make_sync(keyed(True), transport=None).redeem_voucher(REDEEM)
        else:
            await make_async(keyed(True), transport=None).redeem_voucher(REDEEM)
    error = info.value
    assert route.call_count == 1, "a 500 may have applied the write: never re-post blindly"
    assert error.idempotency_key == "o1:redeem:SAVE5"
    assert error.reconcile["route"] == "redeem"
    assert error.reconcile["method"] == "POST"
    # the code is the call's customer data: never in the message; the key still holds it
    assert error.reconcile["path"] == "/redemptions" and "SAVE5" not in error.message
    assert error.reconcile["request_id"]
    assert error.engine == "reference" and error.operation == "redeem_voucher"
    assert error.code == "outcome_unknown"


def test_500_to_an_unkeyed_write_still_carries_the_call_key(engine_http, make_sync):
    redeem(engine_http).mock(return_value=httpx.Response(500))
    with pytest.raises(OutcomeUnknownError) as info:
        make_sync(keyed(False), transport=None).redeem_voucher(REDEEM)
    assert info.value.idempotency_key == "o1:redeem:SAVE5"
    assert info.value.retryable is False


SPEND = {"customer_id": "m1", "order_ref": "o1", "amount": {"amount": "2.00", "currency": "EUR"}}
SPENT = {"id": "s1", "amount": 2, "remaining": 18}
NO_SPENDS = {"ok": True, "spends": []}


@pytest.mark.parametrize("lost", [httpx.ReadTimeout("lost"), httpx.Response(500)], ids=["timeout", "500"])
@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "absent"])
def test_a_lost_spend_is_looked_up_never_re_posted_blindly(lost, recorded, engine_http, make_sync):
    """A spend has no engine-side key (the reference engine's unkeyed write): the runner sends it
    once; the adapter looks it up by its reference before sending and after the lost answer, and
    sends it again only when the engine recorded nothing."""
    after_loss = {"ok": True, "spends": [SPENT]} if recorded else NO_SPENDS
    look_up = engine_http.get("/spends").mock(side_effect=[
        httpx.Response(200, json=NO_SPENDS), httpx.Response(200, json=after_loss)])
    post = engine_http.post("/spends").mock(side_effect=[lost, httpx.Response(200, json={"ok": True, **SPENT})])
    result = make_sync(transport=None).spend_cashback(SPEND)
    assert look_up.call_count == 2
    assert post.call_count == (1 if recorded else 2)
    reference = json.loads(post.calls[0].request.content)["reference"]
    assert [call.request.url.params["reference"] for call in look_up.calls] == [reference, reference]
    assert result.receipt.engine_ref == "s1" and result.receipt.replayed is recorded
    assert result.amount == Money.of("2.00", "EUR") and result.receipt.idempotency_key == reference


def test_500_to_a_read_is_unavailable(engine_http, make_sync):
    route = members(engine_http).mock(return_value=httpx.Response(500))
    with pytest.raises(EngineUnavailableError) as info:
        make_sync(transport=None).identify(email="ann@example.com")
    assert info.value.engine_code == "500"
    assert route.call_count == 1


# -- OAuth2: exactly one refresh ------------------------------------------------------------------


def oauth_adapter():
    return reference_adapter(**oauth_settings())


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_401_refreshes_the_token_once_then_succeeds(facade, engine_http, make_sync, make_async):
    token = engine_http.post(TOKEN_URL).mock(side_effect=[
        httpx.Response(200, json={"access_token": "first-token"}),
        httpx.Response(200, json={"access_token": "second-token"})])
    route = members(engine_http).mock(side_effect=[httpx.Response(401), httpx.Response(200, json=MEMBER)])
    loyalty = make_sync(oauth_adapter(), transport=None) if facade == "sync" else make_async(oauth_adapter(), transport=None)
    customer = loyalty.identify(email="ann@example.com")
    if facade == "async":
        customer = await customer
    assert customer.id == "m1"
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in route.calls] == ["Bearer first-token", "Bearer second-token"]


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_second_401_is_auth_failed_and_never_loops(facade, engine_http, make_sync, make_async):
    token = engine_http.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "some-token"}))
    route = members(engine_http).mock(return_value=httpx.Response(401))
    loyalty = make_sync(oauth_adapter(), transport=None) if facade == "sync" else make_async(oauth_adapter(), transport=None)
    with pytest.raises(AuthFailedError) as info:
        if facade == "sync":
            loyalty.identify(email="ann@example.com")
        else:
            await loyalty.identify(email="ann@example.com")
    assert token.call_count == 2
    assert route.call_count == 2
    assert info.value.engine == "reference"


def test_cached_token_is_reused(engine_http, make_sync):
    token = engine_http.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "cached-token"}))
    members(engine_http).mock(return_value=httpx.Response(200, json=MEMBER))
    loyalty = make_sync(oauth_adapter(), transport=None)
    for _ in range(3):
        loyalty.identify(email="ann@example.com")
    assert token.call_count == 1


def test_token_endpoint_refusal_is_auth_failed(engine_http, make_sync):
    engine_http.post(TOKEN_URL).mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
    route = members(engine_http)
    with pytest.raises(AuthFailedError):
        make_sync(oauth_adapter(), transport=None).identify(email="ann@example.com")
    assert route.call_count == 0


# -- deadlines against a real, hanging server ------------------------------------------------------


@pytest.fixture
def hanging_server():
    release = threading.Event()
    hits = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(request.url.path)
        release.wait(5)
        return httpx.Response(200, json=MEMBER)

    with serve(handler) as server:
        server.hits = hits
        yield server
        release.set()


DEADLINE = 0.5
SLACK = 0.5


@pytest.mark.parametrize("facade", ["sync", "async"])
async def test_hanging_engine_read_times_out_within_the_deadline(facade, hanging_server, make_sync, make_async):
    adapter = reference_adapter(base_url=hanging_server.url)
    started = time.monotonic()
    with pytest.raises(EngineTimeoutError) as info:
        if facade == "sync":
            make_sync(adapter, transport=None, read_deadline=DEADLINE).identify(email="ann@example.com")
        else:
            await make_async(adapter, transport=None, read_deadline=DEADLINE).identify(email="ann@example.com")
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + SLACK, f"took {elapsed:.2f}s for a {DEADLINE}s deadline"
    assert elapsed >= DEADLINE * 0.8
    assert info.value.code == "timeout" and info.value.operation == "identify"
    assert hanging_server.hits


@pytest.mark.parametrize("facade", ["sync", "async"])
@pytest.mark.parametrize("keyed_writes", [True, False])
async def test_hanging_engine_write_is_outcome_unknown(facade, keyed_writes, hanging_server, make_sync, make_async):
    adapter = keyed(keyed_writes, base_url=hanging_server.url)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError) as info:
        if facade == "sync":
            make_sync(adapter, transport=None, write_deadline=DEADLINE).redeem_voucher(REDEEM)
        else:
            await make_async(adapter, transport=None, write_deadline=DEADLINE).redeem_voucher(REDEEM)
    assert time.monotonic() - started < DEADLINE + SLACK
    assert info.value.idempotency_key == "o1:redeem:SAVE5"
    if not keyed_writes:
        assert len(hanging_server.hits) == 1, "an unkeyed write is sent once"
