"""Metrics (Prometheus), JSON access logs and trace context of the sidecar.

With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` (``loyaltykit serve --workers N``
does) so that any worker's ``/metrics`` answers for all of them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..flows import CallContext, Flow
from ..hookspecs import hookimpl
from ..observe import observe_flow

if TYPE_CHECKING:
    from ..errors import LoyaltyError
    from ..facade import Loyalty
    from ..members import (
        Enrolment,
        EnrolmentResult,
        IssuedVouchers,
        MemberUpdate,
        Statement,
        StatementQuery,
        VoucherIssue,
        Wallet,
        WalletQuery,
    )
    from ..models import (
        Basket,
        CashbackSpend,
        Customer,
        CustomerIdentifier,
        Evaluation,
        ExportReport,
        Order,
        Product,
        ProductPrice,
        ProductQuery,
        ProductSyncReport,
        RedemptionResult,
        Reversal,
        ReversalResult,
        SpendResult,
        VoucherRedemption,
    )
    from ..outbox import Outbox

T = TypeVar("T")
# A wrapper hook implementation: pluggy sends it the adapter's flow; it returns the flow wrapped.
Wrapper = Generator[None, Flow[T], Flow[T]]

REQUEST_SECONDS = Histogram(
    "loyaltykit_sidecar_request_seconds", "Sidecar request duration by route and status.",
    ("method", "route", "status"),
)
ENGINE_SECONDS = Histogram(
    "loyaltykit_engine_call_seconds", "Engine call duration by operation and outcome (ok or the error code).",
    ("operation", "outcome"),
)
IDEMPOTENCY = Counter(
    "loyaltykit_sidecar_idempotency_total",
    "Keyed writes that were replayed, refused (in flight, key reused with another body) or reconciled.",
    ("result",),
)

# -- trace context -------------------------------------------------------------------------------
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
traceparent_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("loyaltykit_traceparent", default=None)


def child_traceparent(incoming: str | None) -> tuple[str, str]:
    """(trace id, traceparent for our span): continue the caller's trace, or start one."""
    match = _TRACEPARENT.match((incoming or "").strip().lower())
    if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
        trace_id, flags = match.group(1), match.group(3)
    else:
        trace_id, flags = secrets.token_hex(16), "01"
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


class TraceTransport(httpx.BaseTransport):
    """Adds the current request's ``traceparent`` to every engine call."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        value = traceparent_var.get()
        if value and "traceparent" not in request.headers:
            request.headers["traceparent"] = value
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


# -- engine call metrics (an observer plugin: a wrapper on every operation hook; a test checks none is missing)
def _record(ctx: CallContext, result: object, error: LoyaltyError | None, seconds: float) -> None:
    ENGINE_SECONDS.labels(ctx.operation, error.code if error is not None else "ok").observe(seconds)


class EngineMetrics:
    @hookimpl(wrapper=True)
    def loyaltykit_identify(self, identifier: CustomerIdentifier, ctx: CallContext) -> Wrapper[Customer | None]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_evaluate_basket(self, basket: Basket, ctx: CallContext) -> Wrapper[Evaluation]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_price_products(self, query: ProductQuery, ctx: CallContext) -> Wrapper[list[ProductPrice]]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_redeem_voucher(self, redemption: VoucherRedemption, ctx: CallContext) -> Wrapper[RedemptionResult]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_spend_cashback(self, spend: CashbackSpend, ctx: CallContext) -> Wrapper[SpendResult]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_export_orders(self, orders: list[Order], ctx: CallContext) -> Wrapper[ExportReport]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_reverse(self, reversal: Reversal, ctx: CallContext) -> Wrapper[ReversalResult]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_sync_products(self, products: list[Product], ctx: CallContext) -> Wrapper[ProductSyncReport]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_enrol_member(self, enrolment: Enrolment, ctx: CallContext) -> Wrapper[EnrolmentResult]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_update_member(self, update: MemberUpdate, ctx: CallContext) -> Wrapper[Customer]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_member_statement(self, query: StatementQuery, ctx: CallContext) -> Wrapper[Statement]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_member_wallet(self, query: WalletQuery, ctx: CallContext) -> Wrapper[Wallet]:
        return observe_flow((yield), ctx, _record)

    @hookimpl(wrapper=True)
    def loyaltykit_issue_voucher(self, issue: VoucherIssue, ctx: CallContext) -> Wrapper[IssuedVouchers]:
        return observe_flow((yield), ctx, _record)


# -- gauges read at scrape time --------------------------------------------------------------------
class StateCollector:
    """Outbox depth by state and the circuit breaker's state, read when scraped."""

    def __init__(self, outbox: Outbox, loyalty: Loyalty) -> None:
        self.outbox = outbox
        self.loyalty = loyalty

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("loyaltykit_outbox_orders", "Orders in the export outbox by state.", labels=["state"])
        for state, count in self.outbox.counts().items():
            depth.add_metric([state], count)
        yield depth
        age = GaugeMetricFamily("loyaltykit_outbox_oldest_pending_seconds",
                                "Age of the oldest order waiting for export (0 when none waits).")
        age.add_metric([], self.outbox.oldest_pending_age() or 0.0)
        yield age
        breaker = GaugeMetricFamily(
            "loyaltykit_circuit_breaker_state", "1 for the engine's current circuit state.", labels=["engine", "state"]
        )
        config = getattr(self.loyalty, "client_config", None)
        current = config.breaker.state if config is not None and config.breaker is not None else "closed"
        for state in ("closed", "open", "half-open"):
            breaker.add_metric([self.loyalty.engine, state], 1 if state == current else 0)
        yield breaker


def render_metrics(extra: Collector) -> bytes:
    """This process's metrics (or every worker's, in multi-process mode) and the scrape-time gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        # Registers itself with `registry`. Its __init__ is unannotated in prometheus_client.
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY as registry
    scratch = CollectorRegistry()
    scratch.register(extra)
    return generate_latest(registry) + generate_latest(scratch)


# -- access log --------------------------------------------------------------------------------------
access_log = logging.getLogger("loyaltykit.sidecar.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        return json.dumps(entry, separators=(",", ":"), default=str)


def configure_access_log() -> None:
    if any(isinstance(h.formatter, JsonFormatter) for h in access_log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
