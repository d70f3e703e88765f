"""Authentication strategies for engine services, sans-IO like the flows.

A strategy decorates outgoing requests: :class:`BasicAuth`, :class:`ApiKeyHeader`,
:class:`TokenInBody`, :class:`OAuth2ClientCredentials`. A refreshable strategy (OAuth2) also
describes its token exchange without performing it: :meth:`Auth.token_request` is the request,
:meth:`Auth.accept_token` reads the answer. The runners perform it.

One refresh for many callers: every token has a *generation*. A request remembers the generation
it was sent with; a 401 invalidates only that generation (:meth:`Auth.invalidate`), so callers
that were sent with an old token do not throw away a newer one. The runner refreshes while holding
the strategy's :attr:`Auth.refresh_lock` (threads) or :meth:`Auth.async_refresh_lock` (one per
event loop) and re-checks :meth:`Auth.needs_token` first, so thirty callers that see an expiry
at once make one token exchange.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from pydantic import SecretStr

from .errors import AuthFailedError, LoyaltyError
from .flows import PARSE_ERRORS, EngineRequest
from .scrub import register_secret

# what a login answer that cannot be read raises
_UNREADABLE: tuple[type[Exception], ...] = (LoyaltyError, *PARSE_ERRORS)


class Auth:
    """No authentication. Base class of the strategies."""

    refreshable = False

    @property
    def generation(self) -> int:
        """Which token requests are sent with now (0 for strategies without tokens)."""
        return 0

    @property
    def refresh_lock(self) -> threading.Lock:
        lock = self.__dict__.get("_refresh_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_refresh_lock", threading.Lock())
        return lock  # type: ignore[no-any-return]

    def async_refresh_lock(self) -> asyncio.Lock:
        """The refresh lock of the running event loop (an asyncio lock belongs to one loop)."""
        with self.refresh_lock:
            locks = self.__dict__.setdefault("_async_locks", weakref.WeakKeyDictionary())
            loop = asyncio.get_running_loop()
            lock = locks.get(loop)
            if lock is None:
                lock = locks[loop] = asyncio.Lock()
            return lock  # type: ignore[no-any-return]

    def needs_token(self) -> bool:
        return False

    def token_request(self) -> EngineRequest:  # pragma: no cover - only refreshable strategies
        raise NotImplementedError

    def accept_token(self, response: httpx.Response) -> None:  # pragma: no cover
        raise NotImplementedError

    def invalidate(self, generation: int | None = None) -> None:
        """Forget the token of ``generation`` (the current one when ``None``)."""

    def refused(self, response: httpx.Response) -> bool:
        """Whether ``response`` refuses the request's credentials: a 401 (a refreshable strategy
        then gets one new token and the request is sent once more)."""
        return response.status_code == 401

    def apply(self, request: httpx.Request) -> httpx.Request:
        return request

    def request_header(self) -> tuple[str, str] | None:
        """The one header a strategy whose ``apply`` is :meth:`apply_header` adds now (name,
        value), or None. The runner writes it into the request as it builds it; a strategy with
        another ``apply`` gets its ``apply`` called on the built request."""
        return None

    def apply_header(self, request: httpx.Request) -> httpx.Request:
        """``apply`` of the strategies that add one header (:meth:`request_header`)."""
        pair = self.request_header()
        if pair is not None:
            request.headers[pair[0]] = pair[1]
        return request

    def body_fields(self) -> dict[str, Any]:
        """Fields merged into JSON bodies (token-in-body engines)."""
        return {}

    def base_url(self) -> str | None:
        """A base URL learned from the token exchange (Salesforce ``instance_url``), if any."""
        return None


@dataclass
class BasicAuth(Auth):
    username: str
    password: SecretStr

    def __post_init__(self) -> None:
        register_secret(self.password.get_secret_value(), self._header())

    def _header(self) -> str:
        raw = f"{self.username}:{self.password.get_secret_value()}".encode()
        return base64.b64encode(raw).decode()

    def request_header(self) -> tuple[str, str]:
        # encoded once per credentials (kept beside them, as the very objects it was made from)
        cached = self.__dict__.get("_encoded")
        if cached is None or cached[0] is not self.username or cached[1] is not self.password:
            cached = (self.username, self.password, ("Authorization", f"Basic {self._header()}"))
            self.__dict__["_encoded"] = cached
        return cached[2]

    apply = Auth.apply_header


@dataclass
class ApiKeyHeader(Auth):
    """An API key sent in a header, e.g. ``X-Api-Key: <key>`` or ``Authorization: Key <key>``."""

    key: SecretStr
    header: str = "X-Api-Key"
    prefix: str = ""  # e.g. "Key " or "Bearer "

    def __post_init__(self) -> None:
        register_secret(self.key.get_secret_value())

    apply = Auth.apply_header

    def request_header(self) -> tuple[str, str]:
        return self.header, f"{self.prefix}{self.key.get_secret_value()}"


@dataclass
class _CachedToken(Auth):
    """A token fetched by the runner and kept until invalidated: its generation, its issue time
    and how many fetches there were. Shared by the refreshable strategies."""

    _token: str | None = field(default=None, init=False, repr=False)
    _issued: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _generation: int = field(default=0, init=False, repr=False)
    token_fetches: int = field(default=0, init=False)

    @property
    def generation(self) -> int:
        return self._generation

    def _keep(self, token: str, issued: float = 0.0) -> None:
        register_secret(token)
        with self._lock:
            self._token = token
            self._issued = issued
            self._generation += 1
            self.token_fetches += 1

    def invalidate(self, generation: int | None = None) -> None:
        with self._lock:
            if generation is None or generation == self._generation:
                self._token = None


@dataclass
class TokenInBody(_CachedToken):
    """The engine expects a token as a field of every JSON body (e.g. ``{"token": ...}``).

    Either a fixed ``token``, or a session token obtained by a ``login`` request (CRM.COM's
    ``authentication/token``): ``read_token`` takes it from the login's answer (raising
    :class:`AuthFailedError` when there is none), ``lifetime`` is its absolute expiry in seconds
    from issue (``None``: until refused) and ``refresh_margin`` renews it that much earlier.
    ``refusal`` tells a refused token from any other answer, for engines that refuse it with
    HTTP 200 and an error body; the runner then logs in again once, as after a 401.
    """

    token: SecretStr | None = None
    field_name: str = "token"
    login: EngineRequest | None = field(default=None, repr=False)
    read_token: Callable[[httpx.Response], str] | None = field(default=None, repr=False)
    lifetime: float | None = None
    refresh_margin: float = 0.0
    refusal: Callable[[httpx.Response], bool] | None = field(default=None, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if (self.token is None) == (self.login is None):
            raise ValueError("TokenInBody takes either a token or a login request")
        if self.login is not None and self.read_token is None:
            raise ValueError("TokenInBody with a login request needs read_token")
        if self.token is not None:
            register_secret(self.token.get_secret_value())

    @property
    def refreshable(self) -> bool:  # type: ignore[override]
        return self.login is not None

    @property
    def session_token(self) -> str | None:
        """The current session token (``None`` before the first login or after an invalidation)."""
        return self._token

    def needs_token(self) -> bool:
        if self.login is None:
            return False
        with self._lock:
            if self._token is None:
                return True
            if self.lifetime is None:
                return False
            return self.clock() - self._issued >= self.lifetime - self.refresh_margin

    def token_request(self) -> EngineRequest:
        if self.login is None:
            raise NotImplementedError("a fixed token is never refreshed")
        return replace(self.login, authenticate=False, route=self.login.route or "token")

    def accept_token(self, response: httpx.Response) -> None:
        if self.read_token is None:
            raise NotImplementedError("a fixed token is never refreshed")
        try:
            token = self.read_token(response)
        except AuthFailedError:
            raise
        except _UNREADABLE as exc:
            raise AuthFailedError(f"the login's answer could not be read ({type(exc).__name__})") from None
        if not isinstance(token, str) or not token:
            raise AuthFailedError("the login returned no token")
        self._keep(token, self.clock())

    def refused(self, response: httpx.Response) -> bool:
        if super().refused(response):
            return True
        return self.refusal is not None and self.refusal(response)

    def body_fields(self) -> dict[str, Any]:
        if self.token is not None:
            return {self.field_name: self.token.get_secret_value()}
        session = self._token
        return {self.field_name: session} if session else {}


@dataclass
class OAuth2ClientCredentials(_CachedToken):
    """OAuth 2.0 client credentials, token cached until a 401 says otherwise.

    ``credentials_in`` is ``"body"`` (client_id/secret as form fields) or ``"basic"`` (HTTP Basic
    header). ``base_url_field`` names a token-response field that replaces the service base URL.
    """

    token_url: str
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    credentials_in: str = "body"
    base_url_field: str | None = None
    refreshable = True
    _base_url: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        register_secret(self.client_secret.get_secret_value())

    def needs_token(self) -> bool:
        return self._token is None

    def token_request(self) -> EngineRequest:
        form = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        if self.credentials_in == "basic":
            raw = f"{self.client_id}:{self.client_secret.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret.get_secret_value()
        if self.scope:
            form["scope"] = self.scope
        return EngineRequest(
            "POST", self.token_url, data=form, headers=headers, authenticate=False, route="token"
        )

    def accept_token(self, response: httpx.Response) -> None:
        try:
            payload = response.json()
            token = payload["access_token"]
        except Exception:
            raise AuthFailedError(
                f"token endpoint answered HTTP {response.status_code} without an access_token"
            ) from None
        if not isinstance(token, str) or not token:
            raise AuthFailedError("token endpoint returned an empty access_token")
        if self.base_url_field and isinstance(payload.get(self.base_url_field), str):
            self._base_url = payload[self.base_url_field]
        self._keep(token)

    apply = Auth.apply_header

    def request_header(self) -> tuple[str, str] | None:
        token = self._token
        return ("Authorization", f"Bearer {token}") if token else None

    def base_url(self) -> str | None:
        return self._base_url
