"""Core pieces added for engines that type their bodies and log in for a token sent in the body:
``wire.model``, and ``TokenInBody`` with a login (absolute expiry, a refusal in an HTTP 200 body,
one new login per refusal and never a loop)."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from loyaltykit import wire
from loyaltykit.auth import TokenInBody
from loyaltykit.errors import AuthFailedError, MalformedResponseError
from loyaltykit.flows import CallContext, EngineRequest
from loyaltykit.http import AsyncRunner, EngineClientConfig, Service, SyncRunner

# -- wire.model ----------------------------------------------------------------------------------


class Line(BaseModel):
    amount: Decimal


class Answer(BaseModel):
    lines: list[Line]


def test_model_validates_and_names_the_path_of_the_bad_field():
    assert wire.model({"lines": [{"amount": Decimal("1.50")}]}, Answer, "body").lines[0].amount == Decimal("1.50")
    with pytest.raises(MalformedResponseError) as bad:
        wire.model({"lines": [{"amount": "jane@example.com"}]}, Answer, "body", engine="acme")
    assert bad.value.field == "body.lines[0].amount" and bad.value.engine == "acme"
    assert "jane" not in str(bad.value)  # the value is never quoted
    with pytest.raises(MalformedResponseError) as missing:
        wire.model({}, Answer, "payload")
    assert missing.value.field == "payload.lines"


# -- TokenInBody with a login --------------------------------------------------------------------


class TokenEngine:
    """Issues tokens at /login; every other call needs a live one in its body, else it answers
    HTTP 200 ``{"ok": false, "error": "invalid token"}`` (the way some engines refuse a token)."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.logins = 0
        self.calls = 0
        self.refuse_all = False
        self._n = itertools.count(1)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = wire.loads(request.content) if request.content else {}
        if request.url.path == "/login":
            self.logins += 1
            token = f"session-{next(self._n)}"
            self.live.add(token)
            return httpx.Response(200, json={"ok": True, "token": token})
        self.calls += 1
        if self.refuse_all or body.get("token") not in self.live:
            return httpx.Response(200, json={"ok": False, "error": "invalid token"})
        return httpx.Response(200, json={"ok": True, "echo": body.get("x")})


def refused(response: httpx.Response) -> bool:
    body = wire.json_body(response)
    return body.get("ok") is False and body.get("error") == "invalid token"


def read_token(response: httpx.Response) -> str:
    return wire.text(wire.at(wire.json_body(response), "token"), "token")


def strategy(clock=lambda: 0.0) -> TokenInBody:
    return TokenInBody(login=EngineRequest("POST", "/login", json={"user": "u"}), read_token=read_token,
                       lifetime=7200, refresh_margin=300, refusal=refused, clock=clock)


def config(auth: TokenInBody) -> EngineClientConfig:
    return EngineClientConfig(engine="acme", services={"default": Service("https://acme.example", auth)})


def echo(value: str):
    response = yield EngineRequest("POST", "/echo", json={"x": value}, route="echo")
    body = wire.json_body(response)
    if body.get("ok") is False:
        raise AuthFailedError("refused", engine="acme")
    return body["echo"]


def ctx() -> CallContext:
    return CallContext(engine="acme", operation="identify", deadline_seconds=5)


def test_a_fixed_token_or_a_login_not_both():
    with pytest.raises(ValueError, match="either a token or a login"):
        TokenInBody()
    with pytest.raises(ValueError, match="either a token or a login"):
        TokenInBody(SecretStr("t"), login=EngineRequest("POST", "/login"), read_token=read_token)
    fixed = TokenInBody(SecretStr("fixed-secret"))
    assert fixed.body_fields() == {"token": "fixed-secret"} and not fixed.refreshable and not fixed.needs_token()


def test_logs_in_once_sends_the_token_in_the_body_and_renews_before_the_absolute_expiry():
    engine, now = TokenEngine(), {"t": 0.0}
    auth = strategy(lambda: now["t"])
    runner = SyncRunner(config(auth), httpx.MockTransport(engine.handle))
    assert runner.run(echo("a"), ctx()) == "a" and runner.run(echo("b"), ctx()) == "b"
    assert engine.logins == 1 and auth.session_token == "session-1"
    now["t"] = 7200 - 299  # inside the margin
    assert runner.run(echo("c"), ctx()) == "c"
    assert engine.logins == 2 and auth.generation == 2


def test_a_token_refused_in_a_200_body_logs_in_again_once_and_the_call_succeeds():
    engine = TokenEngine()
    auth = strategy()
    runner = SyncRunner(config(auth), httpx.MockTransport(engine.handle))
    runner.run(echo("a"), ctx())
    engine.live.clear()  # the engine forgot every session
    assert runner.run(echo("b"), ctx()) == "b"
    assert engine.logins == 2


def test_a_refusal_after_the_new_login_is_final_never_a_loop():
    engine = TokenEngine()
    runner = SyncRunner(config(strategy()), httpx.MockTransport(engine.handle))
    runner.run(echo("a"), ctx())
    engine.refuse_all = True
    calls = engine.calls
    with pytest.raises(AuthFailedError):
        runner.run(echo("b"), ctx())
    assert engine.logins == 2 and engine.calls - calls == 2


def test_async_runner_refreshes_the_same_way():
    engine = TokenEngine()

    async def handler(request: httpx.Request) -> httpx.Response:
        return engine.handle(request)

    async def main():
        runner = AsyncRunner(config(strategy()), httpx.MockTransport(handler))
        await runner.run(echo("a"), ctx())
        engine.live.clear()
        results = await asyncio.gather(*(runner.run(echo(str(i)), ctx()) for i in range(10)))
        await runner.aclose()
        return results

    assert asyncio.run(main()) == [str(i) for i in range(10)]
    assert engine.logins == 2  # ten callers met the refusal: one new login


def test_an_old_generations_refusal_keeps_the_newer_token():
    engine = TokenEngine()
    auth = strategy()
    runner = SyncRunner(config(auth), httpx.MockTransport(engine.handle))
    runner.run(echo("a"), ctx())
    old = auth.generation
    auth.invalidate(old)
    runner.run(echo("b"), ctx())
    auth.invalidate(old)  # a late caller sent with the old token
    assert auth.session_token is not None and not auth.needs_token()


def test_a_login_answer_without_a_token_is_an_auth_failure():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    runner = SyncRunner(config(strategy()), httpx.MockTransport(handler))
    with pytest.raises(AuthFailedError):
        runner.run(echo("a"), ctx())
