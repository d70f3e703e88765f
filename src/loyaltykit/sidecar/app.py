"""The sidecar's ASGI application: every facade operation under ``/v1``, for platforms that cannot
import Python (SFCC cartridges, POS systems).

Request bodies are the kit's own models; a bad field is a 400 naming it, before any engine call.
Writes need an ``Idempotency-Key`` (see :mod:`.idempotency`). Errors are RFC 9457 problem documents
with the kit's stable ``code``. Endpoints are plain functions: FastAPI runs them on its thread pool,
where the sync facade (thread-safe, one per worker process) drives the engine.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from ..capabilities import Capability
from ..errors import (
    CurrencyMismatchError,
    InvalidRequestError,
    LoyaltyError,
    MalformedResponseError,
    NotSupportedError,
    OrderInFlightError,
    OutcomeUnknownError,
)
from ..facade import Loyalty
from ..members import MAX_STATEMENT_PAGE, Enrolment, EnrolmentResult, MemberUpdate, Statement, Wallet
from ..models import (
    Basket,
    CashbackSpend,
    Customer,
    CustomerIdentifier,
    IdempotencyKey,
    Order,
    ProductQuery,
    ProductSyncReport,
    RedemptionResult,
    Reversal,
    ReversalKind,
    ReversalResult,
    SpendResult,
    VoucherRedemption,
)
from ..outbox import Outbox
from ..scrub import scrub_text
from .auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, Authenticator, AuthError
from .idempotency import Decision, IdempotencyStore, fingerprint
from .observability import (
    IDEMPOTENCY,
    REQUEST_SECONDS,
    EngineMetrics,
    StateCollector,
    TraceTransport,
    access_log,
    child_traceparent,
    configure_access_log,
    render_metrics,
    traceparent_var,
)
from .problems import PROBLEM_JSON, ProblemBody, dumps, from_error, problem, sensitive_values
from .schemas import EngineCapabilities, Health, OrderStatus, Problem, ProductPrices, ProductSync, Quote
from .settings import SidecarSettings

log = logging.getLogger("loyaltykit.sidecar")

# FastAPI wraps each body model in a Field with an alias; pydantic warns that the alias has no effect
# on a whole-body parameter, which is true and harmless.
warnings.filterwarnings("ignore", message=r"The 'alias' attribute with value", module=r"pydantic\..*")

PUBLIC_PATHS = frozenset({"/livez", "/readyz"})
_PROBES = {
    "external_id": "loyaltykit-readiness-probe",
    "membership": "loyaltykit-readiness-probe",
    "email": "readiness-probe@loyaltykit.invalid",
    "card": "PROBE0000READY",
    "phone": "+10000000000",
}
_REQUEST_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")

CustomerIdPath = Annotated[str, Path(min_length=1, max_length=128, description="The member's id in the engine.")]
CurrencyQuery = Annotated[str | None, Query(min_length=3, max_length=3, description="ISO 4217 currency.")]

IdempotencyKeyHeader = Annotated[
    IdempotencyKey,
    Header(alias="Idempotency-Key", description="One key per logical write; resend the same key to retry it."),
]


def _problem_response(status: int, body: ProblemBody, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _json(model: BaseModel | dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return Response(json.dumps(data, separators=(",", ":")).encode(), status_code=status,
                    media_type="application/json", headers=headers)


# -- problem documentation for OpenAPI --------------------------------------------------------------
def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Invalid request: the problem's `field` names the culprit; nothing was sent to the engine.",
        401: "Missing, unknown or revoked API key, or a bad request signature.",
        404: "Not found (customer, voucher, order, route).",
        409: "The first request with this Idempotency-Key is still running, or (a cancel) the order is being"
             " exported right now: retry after Retry-After.",
        413: "Request body too large.",
        422: "Refused: the same Idempotency-Key with another request, or a business refusal"
             " (voucher expired / already redeemed / not owned, usage limit, insufficient balance).",
        429: "The engine is rate limiting: retry after Retry-After.",
        500: "Configuration or internal error.",
        501: "The configured engine does not support this operation.",
        502: "The engine refused our credentials, or answered a read with something that could not be understood.",
        503: "The engine is unavailable (or its circuit is open): nothing was applied; retry after Retry-After.",
        504: "Engine timeout. For a write the outcome is unknown (a timeout after sending, or an answer that could"
             " not be understood): retry with the same Idempotency-Key to reconcile.",
    }
    retry_after = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    return {
        status: {
            "description": described[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **({"headers": retry_after} if status in (409, 429, 503) else {}),
        }
        for status in statuses
    }


_COMMON = (400, 401, 413, 500)
_ENGINE = (429, 502, 503, 504)
_REPLAYED = {"Idempotent-Replayed": {"description": "true when this is the stored answer of an earlier request.",
                                     "schema": {"type": "string", "enum": ["true"]}}}


def _write_doc(ok: int, model: type[BaseModel], description: str, *extra: int) -> dict[int | str, dict[str, Any]]:
    return {
        ok: {"model": model, "description": description, "headers": _REPLAYED},
        **_problems(*_COMMON, 409, 422, 501, *_ENGINE, *extra),
    }


# -- the application ---------------------------------------------------------------------------------
class Sidecar:
    """What one worker process holds: the facade, the stores, the authenticator."""

    def __init__(self, settings: SidecarSettings, loyalty: Loyalty, outbox: Outbox, store: IdempotencyStore) -> None:
        self.settings = settings
        self.loyalty = loyalty
        self.outbox = outbox
        self.store = store
        self.auth = Authenticator(settings)
        self.collector = StateCollector(outbox, loyalty)
        self._ping: tuple[float, str] | None = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    @property
    def lease_seconds(self) -> float:
        return self.loyalty.settings.write_deadline + self.settings.lease_margin

    # background: flush the outbox, purge expired keys
    def start(self) -> None:
        if self.settings.flush_interval <= 0 or self._worker is not None:
            return
        self._worker = threading.Thread(target=self._run, name="loyaltykit-sidecar-flush", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=self.loyalty.settings.write_deadline + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.flush_interval):
            try:
                while self.outbox.flush(self.loyalty) is not None and not self._stop.is_set():
                    pass
                self.store.purge()
            except Exception:  # keep flushing on the next tick; the orders stay queued
                log.exception("outbox flush failed")

    def engine_ready(self) -> str:
        if not self.settings.ping_engine:
            return "not checked"
        now = time.monotonic()
        if self._ping is not None and now - self._ping[0] < self.settings.ping_cache_seconds:
            return self._ping[1]
        kinds = self.loyalty.capabilities.identify_by
        kind = next((k for k in _PROBES if k in kinds), None)
        if kind is None:
            return "not checked"  # nothing read-only to ask this engine
        try:
            # A read-only round trip: the probe identifier belongs to nobody.
            self.loyalty.identify({"kind": kind, "value": _PROBES[kind]})
            result = "ok"
        except LoyaltyError as exc:
            result = "ok" if exc.code == "customer_not_found" else exc.code
        self._ping = (now, result)
        return result


def create_app(
    settings: SidecarSettings | None = None,
    *,
    loyalty: Loyalty | None = None,
    outbox: Outbox | None = None,
    store: IdempotencyStore | None = None,
    document_only: bool = False,
) -> FastAPI | Edge:
    """Build the app. Without arguments: settings from the environment, the facade from the kit's
    settings (``LOYALTYKIT_*``, loyaltykit.toml), the outbox and the idempotency records both at the
    kit's ``outbox_url``.

    ``document_only`` builds just the routes, with no engine or store, to render the OpenAPI document.
    """
    settings = settings or SidecarSettings()
    owned: list[Callable[[], None]] = []  # what this app made, it closes at shutdown
    if not document_only:
        if loyalty is None:
            loyalty = Loyalty(plugins=[EngineMetrics()], transport=TraceTransport())
            owned.append(loyalty.close)
        if outbox is None:
            outbox = Outbox.from_settings(loyalty.settings)
            owned.append(outbox.close)
        if store is None:
            store = IdempotencyStore.from_settings(loyalty.settings, retention_seconds=settings.retention_seconds)
            owned.append(store.close)
        sidecar = Sidecar(settings, loyalty, outbox, store)
        configure_access_log()
    # The routes below reach the facade and the stores through `sidecar`; a document-only app has
    # none, and its routes are rendered, never called.

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not document_only:
            sidecar.start()
        yield
        if not document_only:
            sidecar.stop()
        for close in owned:
            close()

    app = FastAPI(
        title="loyaltykit sidecar",
        version="1",
        summary="Loyalty and promotions at checkout over HTTP, for platforms that cannot import Python.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses={},
    )

    # -- errors as problems -------------------------------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        field, message = _field_and_message(exc.errors())
        body = problem(400, "invalid_request", scrub_text(f"{field}: {message}", _scrub(request)), _rid(request),
                       instance=request.url.path, field=field)
        return _problem_response(400, body)

    @app.exception_handler(LoyaltyError)
    async def _kit_error(request: Request, exc: LoyaltyError) -> Response:
        status, body, headers = from_error(exc, _rid(request), request.url.path, _scrub(request))
        return _problem_response(status, body, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = problem(exc.status_code, code, str(exc.detail), _rid(request), instance=request.url.path)
        return _problem_response(exc.status_code, body, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        body = problem(500, "internal_error", "internal error", _rid(request), instance=request.url.path)
        return _problem_response(500, body)

    # -- keyed writes ----------------------------------------------------------------------------------
    def keyed(request: Request, operation: str, key: str, model: BaseModel,
              call: Callable[[], tuple[int, BaseModel, dict[str, str]]]) -> Response:
        client = request.state.principal.client
        store = sidecar.store
        begun = store.begin(client, key, operation, fingerprint(operation, model.model_dump(mode="json")),
                            sidecar.lease_seconds)
        if begun.decision is Decision.REPLAY:
            IDEMPOTENCY.labels("replayed").inc()
            request.state.replayed = True
            media = PROBLEM_JSON if (begun.status_code or 200) >= 400 else "application/json"
            return Response((begun.body or "").encode(), status_code=begun.status_code or 200, media_type=media,
                            headers={"Idempotent-Replayed": "true"})
        if begun.decision is Decision.MISMATCH:
            IDEMPOTENCY.labels("mismatch").inc()
            return _problem_response(422, problem(
                422, "idempotency_key_reused",
                "this Idempotency-Key was used with another request; use a new key for a new write",
                _rid(request), instance=request.url.path, field="Idempotency-Key"))
        if begun.decision is Decision.IN_FLIGHT:
            IDEMPOTENCY.labels("in_flight").inc()
            wait = settings.in_flight_retry_after
            return _problem_response(409, problem(
                409, "idempotency_in_flight", "the first request with this Idempotency-Key is still running",
                _rid(request), retryable=True, instance=request.url.path, retry_after=wait),
                {"Retry-After": str(wait)})
        if begun.decision is Decision.RECONCILE:
            # Same body, so the same engine idempotency key: the adapter's keyed path (engine
            # idempotency, or look-up before re-sending) settles what the earlier attempt did.
            IDEMPOTENCY.labels("reconciled").inc()
        try:
            status, result, headers = call()
        except (OutcomeUnknownError, MalformedResponseError) as exc:
            # Sent, but what the engine did is unknown (a timeout, or an answer we could not read: the
            # facade reports that as OutcomeUnknownError; an adapter that still raises malformed_response
            # for a write is treated the same). The same key and body reconcile on the retry.
            store.mark_unknown(client, key)
            if isinstance(exc, MalformedResponseError):
                exc = OutcomeUnknownError(f"the engine's answer could not be understood: {exc.message}",
                                          engine=exc.engine, operation=exc.operation, idempotency_key=key)
            status, body, headers = from_error(exc, _rid(request), request.url.path, _scrub(request))
            body["idempotency_key"] = key
            body["retryable"] = True
            return _problem_response(status, body, headers)
        except LoyaltyError as exc:
            status, body, headers = from_error(exc, _rid(request), request.url.path, _scrub(request))
            if exc.retryable or status >= 500:
                store.release(client, key)  # nothing was applied: the same key may be sent again
            else:
                store.finish(client, key, status, dumps(body).decode())  # a definitive answer: replayed
            return _problem_response(status, body, headers)
        except BaseException:
            store.mark_unknown(client, key)
            raise
        payload = json.dumps(result.model_dump(mode="json"), separators=(",", ":"))
        store.finish(client, key, status, payload)
        return Response(payload.encode(), status_code=status, media_type="application/json", headers=headers)

    # -- health, metrics ------------------------------------------------------------------------------
    @app.get("/livez", response_model=Health, tags=["operations"], summary="The process is alive.")
    def livez() -> Response:
        return _json(Health(status="ok"))

    @app.get("/readyz", response_model=Health, tags=["operations"],
             summary="Stores open and engine configured (optionally pinged).",
             responses={503: {"model": Health, "description": "Not ready."}})
    def readyz() -> Response:
        checks: dict[str, str] = {}
        try:
            sidecar.store.ping()
            checks["idempotency_store"] = "ok"
        except Exception as exc:  # a dead database is exactly what readiness reports
            checks["idempotency_store"] = type(exc).__name__
        try:
            sidecar.outbox.counts()
            checks["outbox"] = "ok"
        except Exception as exc:
            checks["outbox"] = type(exc).__name__
        checks["engine"] = sidecar.engine_ready()
        ok = all(v in ("ok", "not checked") for v in checks.values())
        return _json(Health(status="ok" if ok else "unavailable", checks=checks), 200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics.",
             responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **_problems(401)})
    def metrics() -> Response:
        return Response(render_metrics(sidecar.collector), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- reads -----------------------------------------------------------------------------------------
    @app.get("/v1/capabilities", response_model=EngineCapabilities, tags=["v1"],
             summary="What the configured engine supports.", responses=_problems(401, 500))
    def capabilities() -> Response:
        loyalty = sidecar.loyalty
        data = EngineCapabilities(engine=loyalty.engine, **loyalty.capabilities.model_dump()).model_dump(mode="json")
        # Sets have no order; sorted, the answer is the same on every worker.
        return _json({k: sorted(v) if isinstance(v, list) else v for k, v in data.items()})

    @app.post("/v1/customers/identify", response_model=Customer, tags=["v1"],
              summary="Find the loyalty member by e-mail, phone, card, membership number or external id.",
              responses=_problems(*_COMMON, 404, 501, *_ENGINE))
    def identify(identifier: CustomerIdentifier) -> Response:
        customer = sidecar.loyalty.identify(identifier)
        if customer is None:
            from ..errors import CustomerNotFoundError

            raise CustomerNotFoundError("no member with this identifier", engine=sidecar.loyalty.engine,
                                        operation="identify")
        return _json(customer)

    @app.post("/v1/evaluate", response_model=Quote, tags=["v1"],
              summary="Quote a basket: no side effect. Fails open (degraded) when the engine is down;"
                      " rejected codes are results, not errors.",
              responses=_problems(*_COMMON, 404, 501, 502))
    def evaluate(basket: Basket) -> Response:
        return _json(Quote.from_evaluation(sidecar.loyalty.evaluate(basket)))

    @app.post("/v1/products/prices", response_model=ProductPrices, tags=["v1"],
              summary="Price products for a listing page (batch, no side effect).",
              responses=_problems(*_COMMON, 404, 501, *_ENGINE))
    def price_products(query: ProductQuery) -> Response:
        return _json(ProductPrices(prices=sidecar.loyalty.price_products(query)))

    @app.get("/v1/orders/{order_ref}", response_model=OrderStatus, tags=["v1"],
             summary="Where a placed order stands in the export outbox.", responses=_problems(400, 401, 404))
    def order_status(order_ref: Annotated[str, Path(min_length=1, max_length=128)]) -> Response:
        entry = sidecar.outbox.entry(order_ref)
        if entry is None:
            raise StarletteHTTPException(404, "no order with this ref was placed here")
        return _json(OrderStatus(order_ref=entry.ref, state=entry.state, queued=False, attempts=entry.attempts,
                                 last_status=entry.last_status, last_reason=entry.last_reason))

    # -- members: reads ---------------------------------------------------------------------------------
    @app.get("/v1/members/{customer_id}/statement", response_model=Statement, tags=["v1"],
             summary="A page of the member's statement, newest first: points and cashback earned, spent,"
                     " expired and reversed, tier changes and vouchers issued.",
             description="Pass `next_cursor` of a page as `cursor` to read the next one; the last page has"
                         " no `next_cursor`. `until` is exclusive.",
             responses=_problems(*_COMMON, 404, 501, *_ENGINE))
    def member_statement(
        customer_id: CustomerIdPath,
        page_size: Annotated[int, Query(ge=1, le=MAX_STATEMENT_PAGE, description="Entries per page.")] = 50,
        cursor: Annotated[str | None, Query(min_length=1, max_length=256,
                                            description="next_cursor of the previous page.")] = None,
        since: Annotated[datetime | None, Query(description="Entries at or after this instant (with its offset).")] = None,
        until: Annotated[datetime | None, Query(description="Entries before this instant (with its offset).")] = None,
        currency: CurrencyQuery = None,
    ) -> Response:
        # The kit's StatementQuery validates (a bad field is a 400 naming it, before any engine call).
        query = {"customer_id": customer_id, "page_size": page_size, "cursor": cursor, "since": since,
                 "until": until, "currency": currency}
        return _json(_query_field(lambda: sidecar.loyalty.statement({k: v for k, v in query.items() if v is not None})))

    @app.get("/v1/members/{customer_id}/wallet", response_model=Wallet, tags=["v1"],
             summary="The member's usable offers and vouchers outside a basket (\"my offers\").",
             responses=_problems(*_COMMON, 404, 501, *_ENGINE))
    def member_wallet(customer_id: CustomerIdPath, currency: CurrencyQuery = None) -> Response:
        query = {"customer_id": customer_id, "currency": currency}
        return _json(_query_field(lambda: sidecar.loyalty.wallet({k: v for k, v in query.items() if v is not None})))

    # -- members: writes --------------------------------------------------------------------------------
    @app.post("/v1/members", response_model=EnrolmentResult, tags=["v1"],
              summary="Enrol a member (idempotent by external_id: the same external id again answers the"
                      " member enrolled first, with created false).",
              responses=_write_doc(200, EnrolmentResult, "Enrolled, or already enrolled under this external_id."))
    def enrol_member(request: Request, idempotency_key: IdempotencyKeyHeader, enrolment: Enrolment) -> Response:
        return keyed(request, "enrol_member", idempotency_key, enrolment,
                     lambda: (200, sidecar.loyalty.enrol_member(enrolment), {}))

    @app.post("/v1/members/update", response_model=Customer, tags=["v1"],
              summary="Change a member's tier, segments or role (only the fields given).",
              responses=_write_doc(200, Customer, "Updated: the member as it is now.", 404))
    def update_member(request: Request, idempotency_key: IdempotencyKeyHeader, update: MemberUpdate) -> Response:
        return keyed(request, "update_member", idempotency_key, update,
                     lambda: (200, sidecar.loyalty.update_member(update), {}))

    # -- writes ----------------------------------------------------------------------------------------
    @app.post("/v1/vouchers/redeem", response_model=RedemptionResult, tags=["v1"],
              summary="Redeem a voucher, promo code or wallet offer for an order (exactly once per key).",
              responses=_write_doc(200, RedemptionResult, "Redeemed (or reserved).", 404))
    def redeem(request: Request, idempotency_key: IdempotencyKeyHeader,
               redemption: VoucherRedemption) -> Response:
        return keyed(request, "redeem_voucher", idempotency_key, redemption,
                     lambda: (200, sidecar.loyalty.redeem_voucher(redemption), {}))

    @app.post("/v1/cashback/spend", response_model=SpendResult, tags=["v1"],
              summary="Let cashback or points pay part of an order (exactly once per key).",
              responses=_write_doc(200, SpendResult, "Spent.", 404))
    def spend(request: Request, idempotency_key: IdempotencyKeyHeader,
              spend: CashbackSpend) -> Response:
        return keyed(request, "spend_cashback", idempotency_key, spend,
                     lambda: (200, sidecar.loyalty.spend_cashback(spend), {}))

    @app.post("/v1/orders", status_code=202, response_model=OrderStatus, tags=["v1"],
              summary="Place an order: queued in the durable outbox and exported to the engine exactly once.",
              responses=_write_doc(202, OrderStatus, "Queued; the Location header names its status."))
    def place_order(request: Request, idempotency_key: IdempotencyKeyHeader,
                    order: Order) -> Response:
        def queue() -> tuple[int, BaseModel, dict[str, str]]:
            loyalty, outbox = sidecar.loyalty, sidecar.outbox
            caps = loyalty.capabilities
            if not caps.supports(Capability.EXPORT_ORDERS):
                raise NotSupportedError(f"{loyalty.engine} does not support export_orders",
                                        engine=loyalty.engine, operation="export_orders")
            if caps.currencies is not None and order.currency not in caps.currencies:
                raise CurrencyMismatchError(f"{loyalty.engine} does not accept {order.currency}",
                                            engine=loyalty.engine, operation="export_orders", field="currency")
            queued = outbox.add(order)
            entry = outbox.entry(order.ref)
            if entry is None:  # just added: only a broken outbox store loses it
                raise RuntimeError("the outbox has no entry for the order it just queued")
            status = OrderStatus(order_ref=order.ref, state=entry.state, queued=queued, attempts=entry.attempts,
                                 last_status=entry.last_status, last_reason=entry.last_reason)
            return 202, status, {"Location": f"/v1/orders/{order.ref}"}

        return keyed(request, "place_order", idempotency_key, order, queue)

    @app.post("/v1/reversals", response_model=ReversalResult, tags=["v1"],
              summary="Cancel an order, or refund it fully or partly (exactly once per key).",
              description="A cancel of an order placed here first drops it from the outbox, so it is never"
                          " exported (the engine never credits it), then cancels it; `exported` is then what the"
                          " outbox knows. An order being exported at that moment is 409 `order_in_flight`:"
                          " retry the same request once the export finished.",
              responses=_write_doc(200, ReversalResult, "Reversed."))
    def reverse(request: Request, idempotency_key: IdempotencyKeyHeader,
                reversal: Reversal) -> Response:
        return keyed(request, "reverse", idempotency_key, reversal, lambda: (200, _reverse(reversal), {}))

    def _reverse(reversal: Reversal) -> ReversalResult:
        loyalty, outbox = sidecar.loyalty, sidecar.outbox
        if reversal.kind is not ReversalKind.CANCEL or outbox.entry(reversal.order.ref) is None:
            return loyalty.reverse(reversal)  # a refund, or an order this sidecar never queued
        # Loyalty.cancel_order's order of things, keeping every field of the request (its own key,
        # earlier refunds): out of the queue first, so no worker exports it after the cancel.
        ref = reversal.order.ref
        if outbox.drop(ref, reason=reversal.reason or "cancelled"):
            exported = False
        elif outbox.in_flight(ref):
            raise OrderInFlightError("the order is being exported right now; send the cancel again once that"
                                     " export finished", engine=loyalty.engine, operation="reverse")
        else:
            entry = outbox.entry(ref)
            exported = entry is not None and entry.state == "done"
        return loyalty.reverse(reversal.model_copy(update={"exported": exported}))

    @app.post("/v1/products/sync", response_model=ProductSyncReport, tags=["v1"],
              summary="Send catalogue products to the engine so its rules know them (exactly once per key).",
              responses=_write_doc(200, ProductSyncReport, "Synced."))
    def sync_products(request: Request, idempotency_key: IdempotencyKeyHeader,
                      sync: ProductSync) -> Response:
        return keyed(request, "sync_products", idempotency_key, sync,
                     lambda: (200, sidecar.loyalty.sync_products(sync.products), {}))

    _add_security(app)
    if document_only:
        return app
    app.state.sidecar = sidecar
    return Edge(app, sidecar)


def _add_security(app: FastAPI) -> None:
    """Document the two accepted schemes on every route but the health checks."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update({
            "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
            "basic": {"type": "http", "scheme": "basic",
                      "description": "Authorization: Basic base64(<client name>:<API key>)"},
        })
        components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}")
        # Validation errors are 400 problems here, not FastAPI's default 422 document.
        components["schemas"].pop("HTTPValidationError", None)
        components["schemas"].pop("ValidationError", None)
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
                if "HTTPValidationError" in json.dumps(default_422):
                    del responses["422"]
                if path not in PUBLIC_PATHS:
                    for status in (400, 500):
                        responses.setdefault(str(status), _problems(status)[status])
                if path not in PUBLIC_PATHS:
                    operation["security"] = [{"bearer": []}, {"basic": []}]
                    operation.setdefault("responses", {}).setdefault("401", _problems(401)[401])
        schema["openapi"] = "3.1.0"
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _query_field(call: Callable[[], BaseModel]) -> BaseModel:
    """Run a read whose request is a query string: a field the kit names ``query.cursor`` is the
    query parameter ``cursor`` here."""
    try:
        return call()
    except InvalidRequestError as exc:
        if exc.field and exc.field.startswith("query."):
            field = exc.field.removeprefix("query.")
            exc.message = exc.message.replace(exc.field, field, 1)
            exc.field = field
        raise


def _rid(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or "-"


def _scrub(request: Request) -> tuple[str, ...]:
    """The request's codes and customer identifiers (parsed only when a problem is answered)."""
    return sensitive_values(request.scope.get("state", {}).get("body", b""))


def _field_and_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The first validation error as ("lines.0.quantity", message), like the facade's own errors:
    a model-level message that starts with a field path ("lines.1.id: duplicate") names that field."""
    fallback = {"loc": ("body",), "msg": "invalid request", "type": "value_error"}
    first: Mapping[str, Any] = errors[0] if errors else fallback
    loc = [str(part) for part in first.get("loc", ()) if part != ""]
    source = loc[0] if loc else "body"
    parts = loc[1:] if source == "body" else loc[1:] or loc
    if source == "header" and parts:
        parts = [parts[0].title().replace("_", "-")]
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return "body", "not valid JSON"
    error = (first.get("ctx") or {}).get("error")
    if isinstance(error, InvalidRequestError):
        # The kit's models raise InvalidDataError naming the field inside the model; the location
        # says where that model sits in the body.
        field = ".".join([*parts, *([error.field] if error.field else [])])
        return field or "body", getattr(error, "reason", None) or error.message
    if ": " in message and first.get("type") == "value_error":
        head, _, tail = message.partition(": ")
        if head.replace(".", "").replace("_", "").isalnum():
            parts = [*parts, head]
            message = tail
    return ".".join(parts) or "body", message


# -- the edge: request id, trace context, auth, signing, body limit, access log, request metrics ------------
class Edge:
    """Pure ASGI middleware in front of the FastAPI app (it needs the raw body for signatures)."""

    def __init__(self, app: FastAPI, sidecar: Sidecar) -> None:
        self.app = app
        self.sidecar = sidecar
        self.state = app.state

    def openapi(self) -> dict[str, Any]:
        return self.app.openapi()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")
        if not (0 < len(request_id) <= 64 and set(request_id) <= _REQUEST_ID_OK):
            request_id = uuid.uuid4().hex
        trace_id, traceparent = child_traceparent(headers.get("traceparent"))
        state = scope.setdefault("state", {})
        state.update(request_id=request_id, replayed=False, principal=None)
        outcome = {"status": 500}
        extra_headers = [(b"x-request-id", request_id.encode()), (b"traceparent", traceparent.encode())]

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
            await send(message)

        token = traceparent_var.set(traceparent)
        path = scope["path"]
        try:
            if path in PUBLIC_PATHS:
                await self.app(scope, receive, send_wrapped)
                return
            body, too_large = await _read_body(receive, self.sidecar.settings.max_body_bytes)
            if too_large:
                await _send_problem(send_wrapped, problem(413, "payload_too_large", "request body too large",
                                                          request_id, instance=path))
                return
            auth = self.sidecar.auth
            try:
                principal = auth.authenticate(headers.get("authorization"))
                raw_path = scope.get("raw_path") or path.encode()
                raw = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else str(raw_path)
                target = raw + (("?" + scope["query_string"].decode("latin-1")) if scope.get("query_string") else "")
                auth.verify_signature(principal, scope["method"], target, body,
                                      headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER))
            except AuthError as exc:
                await _send_problem(send_wrapped, problem(401, exc.code, exc.message, request_id, instance=path),
                                    [(b"www-authenticate", b'Bearer realm="loyaltykit", Basic realm="loyaltykit"')])
                return
            state["principal"] = principal
            state["body"] = body  # read again only to mask its codes in a problem's detail

            delivered = False

            async def replay_body() -> Message:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay_body, send_wrapped)
        finally:
            traceparent_var.reset(token)
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or ("unmatched" if path not in PUBLIC_PATHS else path)
            REQUEST_SECONDS.labels(scope["method"], template, str(outcome["status"])).observe(elapsed)
            principal = state.get("principal")
            access_log.info("request", extra={"fields": {
                "request_id": request_id,
                "trace_id": trace_id,
                "client": principal.client if principal else None,
                "method": scope["method"],
                "route": template,
                "status": outcome["status"],
                "duration_ms": round(elapsed * 1000, 2),
                "replayed": state.get("replayed", False),
            }})


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


async def _send_problem(send: Send, body: ProblemBody, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = dumps(body)
    await send({"type": "http.response.start", "status": body["status"], "headers": [
        (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})
