"""The object every scenario receives: one harness, one adapter, one facade (sync or async).

Scenarios are plain functions written once; :meth:`ContractTarget.call` runs an operation on the
sync facade directly or on the async facade in the target's own event loop, so one scenario body
checks both facades and needs no async test plugin.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import pytest

from loyaltykit import LoyaltySettings, Money
from loyaltykit.capabilities import Capabilities, Capability
from loyaltykit.errors import LoyaltyError
from loyaltykit.models import Basket, Line, Order
from loyaltykit.testing import EngineHarness, Fault, SeededCustomer, open_facade

from .discovery import HarnessSource

T = TypeVar("T")

FACADES = ("sync", "async")

#: Settings of every facade the suite builds: short deadlines keep the suite fast, a breaker that
#: does not open keeps one scenario's injected outage from leaking into the next call.
SUITE_SETTINGS: dict[str, Any] = {
    "evaluate_budget": 1.0,
    "read_deadline": 2.0,
    "write_deadline": 3.0,
    "breaker_threshold": 1000,
    "breaker_reset": 1.0,
    "plugins_allow": [],
    "plugins_block": [],
    "engines": {},
}

#: Extra wall time allowed over a deadline before the scenario calls it broken.
DEADLINE_SLACK = 0.75

#: user_properties key under which a scenario reports its outcome to the matrix.
OUTCOME_KEY = "loyaltykit_outcome"
META_KEY = "loyaltykit_meta"

NOT_APPLICABLE = "not applicable: "


class HarnessProtocolError(AssertionError):
    """The harness does not do what the protocol (or the adapter's declaration) requires."""


def protocol_members() -> list[str]:
    """The names the ``EngineHarness`` protocol requires, read from the protocol itself."""
    names = set(getattr(EngineHarness, "__annotations__", {}))
    names.update(name for name, value in vars(EngineHarness).items() if callable(value) and not name.startswith("_"))
    return sorted(names)


def _make_harness(source: HarnessSource) -> Any:
    if source.factory is None:
        pytest.fail(f"harness {source.name} ({source.origin}) could not be loaded: {source.error}", pytrace=False)
    harness = source.factory()
    if not isinstance(harness, EngineHarness):
        missing = [name for name in protocol_members() if not hasattr(harness, name)]
        pytest.fail(
            f"{source.origin} returned {type(harness).__name__}, which lacks {missing} of the "
            "loyaltykit.testing.EngineHarness protocol",
            pytrace=False,
        )
    return harness


class ContractTarget:
    """One harness + adapter, driven through one facade kind (``sync``, ``async`` or ``parity``)."""

    def __init__(self, source: HarnessSource, facade: str, node: pytest.Item, variant: str | None = None) -> None:
        self.source = source
        self.kind = facade
        self.node = node
        self.variant = variant
        self.harness = _make_harness(source)
        self.engine: str = self.harness.engine
        self.currency: str = self.harness.currency
        if variant:
            broken = getattr(self.harness, "broken_adapters", None)
            factories = broken() if callable(broken) else {}
            if variant not in factories:
                self.harness.close()
                pytest.skip(f"{NOT_APPLICABLE}the {self.engine} harness offers no {variant!r} adapter")
            self.adapter = factories[variant]()
        else:
            self.adapter = self.harness.make_adapter()
        self.settings: dict[str, Any] = dict(SUITE_SETTINGS, engine=self.adapter.name)
        self._facades: dict[str, Any] = {}
        self._runner: asyncio.Runner | None = None

    # -- facts -----------------------------------------------------------------------------------
    @property
    def caps(self) -> Capabilities:
        capabilities: Capabilities = self.adapter.capabilities
        return capabilities

    def supports(self, capability: Capability | str) -> bool:
        return self.caps.supports(capability)

    @property
    def in_process(self) -> bool:
        return bool(getattr(self.adapter, "in_process", False))

    # -- facades ---------------------------------------------------------------------------------
    def configure(self, **settings: Any) -> None:
        """Change facade settings (deadlines, say); only before the first call."""
        if self._facades:
            raise RuntimeError("configure() must come before the first facade call")
        self.settings.update(settings)

    def _loyalty_settings(self) -> LoyaltySettings:
        return LoyaltySettings(**self.settings)

    def facade(self, kind: str | None = None) -> Any:
        kind = kind or self.kind
        if kind == "parity":
            raise RuntimeError("a parity scenario names the facade it calls")
        if kind not in self._facades:
            self._facades[kind] = open_facade(kind, self.harness, self.adapter, **self.settings)
        return self._facades[kind]

    def _loop(self) -> asyncio.Runner:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner

    def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """Run a facade operation on this target's facade; return its result or raise its error.

        On a parity target the operation runs on both facades, which must end the same way.
        """
        if self.kind != "parity":
            return self.call_on(self.kind, operation, *args, **kwargs)
        outcomes = []
        for kind in FACADES:
            try:
                outcomes.append(self.call_on(kind, operation, *args, **kwargs))
            except LoyaltyError as exc:
                outcomes.append(exc)
        sync, async_ = outcomes
        if type(sync) is not type(async_):
            raise AssertionError(f"{operation}: the sync facade gave {sync!r}, the async facade {async_!r}")
        if isinstance(sync, LoyaltyError):
            raise sync
        return sync

    def call_on(self, kind: str, operation: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.facade(kind), operation)
        if kind == "sync":
            return method(*args, **kwargs)
        return self._loop().run(method(*args, **kwargs))

    def attempt(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call`, but a kit error is returned instead of raised."""
        try:
            return self.call(operation, *args, **kwargs)
        except LoyaltyError as exc:
            return exc

    def timed(self, operation: str, *args: Any, **kwargs: Any) -> tuple[Any, float]:
        """``(result or kit error, elapsed seconds)``."""
        started = time.monotonic()
        outcome = self.attempt(operation, *args, **kwargs)
        return outcome, time.monotonic() - started

    def concurrently(self, operation: str, arguments: list[Any]) -> list[Any]:
        """Run one operation per argument at once: threads on the sync facade, gather on async.

        Returns each call's result or kit error, in argument order.
        """
        if self.kind == "sync":
            facade = self.facade("sync")

            def one(arg: Any) -> Any:
                try:
                    return getattr(facade, operation)(arg)
                except LoyaltyError as exc:
                    return exc

            with ThreadPoolExecutor(max_workers=len(arguments)) as pool:
                return list(pool.map(one, arguments))

        facade = self.facade("async")

        async def all_at_once() -> list[Any]:
            results = await asyncio.gather(
                *(getattr(facade, operation)(arg) for arg in arguments), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, LoyaltyError):
                    raise result
            return list(results)

        return self._loop().run(all_at_once())

    # -- harness access with the suite's rules ----------------------------------------------------
    def seed(self, what: str, fn: Callable[..., T], *args: Any, capability: Capability | None = None, **kwargs: Any) -> T:
        """Call a harness seeding method.

        ``NotImplementedError`` means the engine lacks the feature: the scenario is not applicable,
        unless the adapter declares ``capability``, in which case the harness is at fault.
        """
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as exc:
            if capability is not None and self.supports(capability):
                raise HarnessProtocolError(
                    f"the {self.engine} harness cannot {what} (NotImplementedError: {exc}) although "
                    f"the adapter declares {capability.value}"
                ) from None
            self.not_applicable(f"the {self.engine} harness cannot {what}")

    def customer(
        self,
        identifiers: dict[str, str] | None = None,
        *,
        tier: str | None = None,
        points: Decimal | int = 0,
        cashback: Money | str | None = None,
        capability: Capability | None = None,
    ) -> SeededCustomer:
        """A fresh customer (an e-mail address unless identifiers are given)."""
        if identifiers is None:
            identifiers = {"email": f"c{uuid.uuid4().hex[:12]}@example.com"}
        if isinstance(cashback, str):
            cashback = self.money(cashback)
        customer: SeededCustomer = self.seed(
            "create this customer",
            self.harness.create_customer,
            identifiers=identifiers,
            tier=tier,
            points=Decimal(points),
            cashback=cashback,
            capability=capability,
        )
        return customer

    def need_transport(self) -> None:
        """Fault scenarios need a transport to fault: not applicable to an in-process engine."""
        if self.in_process or self.harness.sync_transport() is None:
            self.not_applicable(f"{self.engine} runs in process: there is no transport to fault")

    def inject(self, route: str, fault: Fault) -> None:
        self.need_transport()
        try:
            self.harness.inject(route, fault)
        except NotImplementedError:
            self.not_applicable(f"the {self.engine} harness cannot inject {fault.kind.value} on {route}")

    def clear_faults(self) -> bool:
        """Drop pending faults when the harness can (optional ``clear_faults()``); True if it did."""
        clear = getattr(self.harness, "clear_faults", None)
        if callable(clear):
            try:
                clear()
                return True
            except NotImplementedError:
                return False
        return False

    def request_count(self, route: str | None = None) -> int | None:
        """The harness's request count, or None when it cannot count (in-process engines may not)."""
        try:
            count: int | None = self.harness.request_count(route)
        except NotImplementedError:
            return None
        return count

    def points(self, customer_id: str) -> Decimal:
        return Decimal(self.harness.balances(customer_id).points)

    def cashback(self, customer_id: str) -> Money:
        balance = self.harness.balances(customer_id).cashback
        return balance if balance is not None else Money.zero(self.currency)

    # -- outcomes --------------------------------------------------------------------------------
    def report(self, outcome: str, detail: str = "") -> None:
        self.node.user_properties.append((OUTCOME_KEY, {"outcome": outcome, "detail": detail}))

    def not_applicable(self, reason: str) -> NoReturn:
        pytest.skip(NOT_APPLICABLE + reason)

    # -- data ------------------------------------------------------------------------------------
    def money(self, amount: str | int | Decimal) -> Money:
        return Money.of(amount, self.currency)

    @staticmethod
    def ref(prefix: str = "ord") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def lines(self, *items: tuple[str, str | int, int]) -> tuple[Line, ...]:
        """``("SKU-A", "50.00", 1), ...`` -> lines with ids l1, l2, ..."""
        return tuple(
            Line(id=f"l{i}", sku=sku, quantity=Decimal(qty), unit_price=self.money(price))
            for i, (sku, price, qty) in enumerate(items, start=1)
        )

    def basket(
        self,
        *items: tuple[str, str | int, int],
        customer_id: str | None = None,
        codes: Iterable[str] = (),
    ) -> Basket:
        items = items or (("SKU-A", "50.00", 1), ("SKU-B", "50.00", 1))
        return Basket(
            id=self.ref("bsk"),
            currency=self.currency,
            lines=self.lines(*items),
            customer_id=customer_id,
            coupon_codes=tuple(codes),
        )

    def order(
        self,
        *items: tuple[str, str | int, int],
        customer_id: str | None = None,
        ref: str | None = None,
        **extra: Any,
    ) -> Order:
        lines = self.lines(*(items or (("SKU-A", "50.00", 1), ("SKU-B", "50.00", 1))))
        subtotal = sum((line.unit_price.amount * line.quantity for line in lines), Decimal(0))
        return Order(
            ref=ref or self.ref(),
            currency=self.currency,
            lines=lines,
            total=self.money(subtotal),
            customer_id=customer_id,
            **extra,
        )

    # -- teardown --------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            for kind, facade in self._facades.items():
                if kind == "sync":
                    facade.close()
                else:
                    self._loop().run(facade.aclose())
            if not self._facades:
                self.adapter.close()
        finally:
            if self._runner is not None:
                self._runner.close()
            self.harness.close()
