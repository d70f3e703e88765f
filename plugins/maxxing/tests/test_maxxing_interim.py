"""The reconcile-before-resend helper, driven by hand (no HTTP): every branch of keyed_write."""

from __future__ import annotations

import httpx
import pytest
from loyaltykit.errors import EngineUnavailableError, OutcomeUnknownError
from loyaltykit.flows import EngineRequest
from loyaltykit_maxxing.interim import keyed_write, one_in_flight

WRITE = EngineRequest("POST", "/write", write=True, route="spend")
LOOKUP = EngineRequest("POST", "/lookup", route="lookup")


def found(response: httpx.Response):
    return response.json().get("found")


def written(response: httpx.Response):
    return response.json()["done"]


def flow(key: str = "k1"):
    return keyed_write(scope="test", key=key, write=WRITE, lookup=LOOKUP, parse_write=written, parse_lookup=found)


def ok(body: dict) -> httpx.Response:
    return httpx.Response(200, json=body)


def finish(gen, value):
    with pytest.raises(StopIteration) as stop:
        gen.send(value)
    return stop.value.value


def test_found_first_is_a_replay_without_a_write():
    gen = flow()
    assert next(gen) is LOOKUP
    assert finish(gen, ok({"found": "earlier"})) == ("earlier", True)


def test_absent_is_written_once():
    gen = flow()
    next(gen)
    assert gen.send(ok({})) is WRITE
    assert finish(gen, ok({"done": "new"})) == ("new", False)


def test_lost_answer_then_found_is_not_sent_again():
    gen = flow()
    next(gen)
    gen.send(ok({}))
    assert gen.throw(OutcomeUnknownError("lost")) is LOOKUP
    assert finish(gen, ok({"found": "applied"})) == ("applied", False)


def test_lost_answer_then_absent_is_sent_exactly_once_more():
    gen = flow()
    next(gen)
    gen.send(ok({}))
    gen.throw(OutcomeUnknownError("lost"))
    assert gen.send(ok({})) is WRITE
    with pytest.raises(OutcomeUnknownError):  # a second loss is not followed by a third send
        gen.throw(OutcomeUnknownError("lost again"))


def test_lost_answer_and_failed_lookup_raises_the_original():
    gen = flow()
    next(gen)
    gen.send(ok({}))
    lost = OutcomeUnknownError("lost", idempotency_key="k1")
    gen.throw(lost)
    with pytest.raises(OutcomeUnknownError) as info:
        gen.throw(EngineUnavailableError("down"))
    assert info.value is lost


def test_one_call_per_key_in_flight_and_released_after():
    first = flow("shared")
    next(first)
    second = flow("shared")
    with pytest.raises(OutcomeUnknownError) as info:
        next(second)
    assert info.value.idempotency_key == "shared" and info.value.retryable
    other = flow("other")
    assert next(other) is LOOKUP  # another key is not blocked
    first.close()  # an abandoned flow releases its key
    assert next(flow("shared")) is LOOKUP


def test_in_flight_guard_releases_on_error():
    with pytest.raises(RuntimeError):
        with one_in_flight("test", "boom"):
            raise RuntimeError
    with one_in_flight("test", "boom"):
        pass
