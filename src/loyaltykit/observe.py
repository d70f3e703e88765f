"""Helpers for observer plugins (audit log, metrics, tracing).

An observer implements an operation hook with ``@hookimpl(wrapper=True)``: it receives the
adapter's flow and returns a wrapped one. Because the wrapper is itself a flow, the same observer
works under the sync and the async facade::

    @hookimpl(wrapper=True)
    def loyaltykit_redeem_voucher(redemption, ctx):
        flow = yield
        return observe_flow(flow, ctx, on_done=audit)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import LoyaltyError
from .flows import CallContext, Flow

T = TypeVar("T")

OnDone = Callable[[CallContext, Any, LoyaltyError | None, float], None]


def observe_flow(flow: Flow[T], ctx: CallContext, on_done: OnDone) -> Flow[T]:
    """Run ``flow`` unchanged and call ``on_done(ctx, result, error, seconds)`` when it ends."""
    started = time.monotonic()
    try:
        result = yield from flow
    except LoyaltyError as exc:
        on_done(ctx, None, exc, time.monotonic() - started)
        raise
    on_done(ctx, result, None, time.monotonic() - started)
    return result
