"""The HTTP scenarios shared by http_evaluate.py and http_write.py.

A scenario is recorded once against an engine's fake (in process), then measured against the
canned server: the kit's facade (``Loyalty`` / ``AsyncLoyalty``) versus a hand-written
``httpx.Client`` / ``httpx.AsyncClient`` sending the very requests the kit sent in steady state
(same method, URL, headers and body bytes) and parsing each JSON answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from _common import CannedServer, Exchange, Recorder, describe, interleave, local_path, median_wall, verdict

from loyaltykit import AsyncLoyalty, BalanceKind, Basket, CashbackSpend, Line, Loyalty, LoyaltySettings, Money, Order
from loyaltykit.testing import RuleSpec

ENGINES = ("sessionm", "salesforce")
# Generous deadlines: a stall of the loaded machine must not turn a measured call into a fail-open.
BENCH_SETTINGS = LoyaltySettings(evaluate_budget=30, read_deadline=30, write_deadline=60)


def harness(engine: str) -> Any:
    if engine == "sessionm":
        from loyaltykit_sessionm.testing import SessionMHarness

        return SessionMHarness()
    from loyaltykit_salesforce.testing import SalesforceHarness

    return SalesforceHarness()


def adapter_class(engine: str) -> type:
    if engine == "sessionm":
        from loyaltykit_sessionm.adapter import SessionMAdapter

        return SessionMAdapter
    from loyaltykit_salesforce.adapter import SalesforceAdapter

    return SalesforceAdapter


def basket(currency: str, lines: int, customer_id: str) -> Basket:
    return Basket(
        id="B-1", currency=currency, customer_id=customer_id,
        lines=tuple(
            Line(id=f"l{n}", sku=f"SKU-{n:04d}", quantity=1 + n % 3,
                 unit_price=Money.of(Decimal("1.99") + Decimal(n % 17), currency), category=f"cat-{n % 7}")
            for n in range(lines)
        ),
    )


class Scenario:
    """One operation on one engine: recorded, then served canned."""

    def __init__(self, engine: str, operation: str, lines: int, workdir: Path) -> None:
        self.engine, self.operation, self.lines = engine, operation, lines
        self.spent = 0
        self.harness = harness(engine)
        h = self.harness
        h.define_earn_rule(Decimal(1))
        h.define_rule(RuleSpec(kind="order_percent", percent=Decimal(10), label="Ten percent"))
        customer = h.create_customer(identifiers={"email": "bench@shop.example", "external_id": "bench-1"},
                                     points=Decimal(100000))
        self.customer_id = customer.id
        self.basket = basket(h.currency, lines, customer.id)
        recorder = Recorder(h.sync_transport())
        with Loyalty(BENCH_SETTINGS, adapter=h.make_adapter(), transport=recorder,
                     load_entry_points=False) as loyalty:
            self.call(loyalty)  # authentication and other one-off requests
            first = len(recorder.exchanges)
            self.call(loyalty)
        self.steady: list[Exchange] = recorder.exchanges[first:]
        # The steady call's answers win over the warm-up's (same path, other answer: a look-up
        # before a write finds nothing the first time); within it, the first answer per path.
        seen: set[tuple[str, str]] = set()
        steady = [e for e in self.steady if (e.method, local_path(e.url)) not in seen
                  and not seen.add((e.method, local_path(e.url)))]
        self.server = CannedServer(recorder.exchanges[:first] + steady, workdir)

    def order(self) -> Order:
        self.spent += 1
        return Order(ref=f"ORD-{self.spent:07d}", currency=self.harness.currency, customer_id=self.customer_id,
                     lines=self.basket.lines, total=self.basket.subtotal)

    def call(self, loyalty: Loyalty) -> Any:
        if self.operation == "export":
            report = loyalty.export_orders([self.order()])
            assert report.results[0].status.value == "accepted", report.results[0]
            return report
        if self.operation == "evaluate":
            result = loyalty.evaluate(self.basket)
            assert not result.degraded, result.degraded_reason
            return result
        return loyalty.spend_cashback(self.spend())

    async def acall(self, loyalty: AsyncLoyalty) -> Any:
        if self.operation == "evaluate":
            result = await loyalty.evaluate(self.basket)
            assert not result.degraded, result.degraded_reason
            return result
        return await loyalty.spend_cashback(self.spend())

    def spend(self) -> CashbackSpend:
        # Points: the balance both engines keep (SessionM has no cashback balance). A new order
        # each time: a repeated one would be answered from the engine's idempotency record.
        self.spent += 1
        return CashbackSpend(customer_id=self.customer_id, order_ref=f"ORD-{self.spent}",
                             kind=BalanceKind.POINTS, points=Decimal(10))


def run(engine: str, operation: str, lines: int, calls: int, repetitions: int, workdir: Path,
        target: float, row: str, modes: tuple[str, ...] = ("sync", "async")) -> bool:
    scenario = Scenario(engine, operation, lines, workdir)
    ok = True
    with scenario.server as server:
        settings = server.settings_for(scenario.harness.settings)
        adapter = adapter_class(engine)(settings)
        # The hand-written client encodes each JSON body itself, as one would (json.dumps).
        replay = [(method, url, headers, json.loads(content) if content else None)
                  for method, url, headers, content in server.replay_requests(scenario.steady)]
        print(f"{engine} {operation}, {lines} lines: {len(replay)} request(s) per call; {calls} calls per sample, "
              f"{repetitions} samples each, interleaved")
        if "sync" in modes:
            ok &= _sync(scenario, adapter, replay, calls, repetitions, target, f"{row} sync")
        if "async" in modes:
            adapter = adapter_class(engine)(settings)
            ok &= _async(scenario, adapter, replay, calls, repetitions, target, f"{row} async")
    return ok


def _compare(samples: dict[str, Any], calls: int, target: float, row: str) -> bool:
    kit, raw = median_wall(samples["kit"]), median_wall(samples["raw"])
    print(describe("kit (facade)", samples["kit"], per=calls))
    print(describe("raw httpx, same requests", samples["raw"], per=calls))
    ratio = kit / raw
    return verdict(row, f"{kit / calls * 1e3:.3f} ms", f"{raw / calls * 1e3:.3f} ms", ratio,
                   f"<= {target:.2f}x", ratio <= target)


def _sync(scenario: Scenario, adapter: Any, replay: list, calls: int, repetitions: int, target: float, row: str) -> bool:
    client = httpx.Client()
    with Loyalty(BENCH_SETTINGS, adapter=adapter, load_entry_points=False) as loyalty:
        def kit() -> None:
            for _ in range(calls):
                scenario.call(loyalty)

        def raw() -> None:
            for _ in range(calls):
                for method, url, headers, payload in replay:
                    content = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else None
                    json.loads(client.request(method, url, headers=headers, content=content).content)

        samples = interleave({"kit": kit, "raw": raw}, repetitions)
    client.close()
    return _compare(samples, calls, target, row)


def _async(scenario: Scenario, adapter: Any, replay: list, calls: int, repetitions: int, target: float, row: str) -> bool:
    async def main() -> bool:
        client = httpx.AsyncClient()
        loyalty = AsyncLoyalty(BENCH_SETTINGS, adapter=adapter, load_entry_points=False)
        loop = asyncio.get_running_loop()

        async def kit() -> None:
            for _ in range(calls):
                await scenario.acall(loyalty)

        async def raw() -> None:
            for _ in range(calls):
                for method, url, headers, payload in replay:
                    content = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else None
                    json.loads((await client.request(method, url, headers=headers, content=content)).content)

        # interleave() is synchronous: run each coroutine to completion in a worker-free way.
        def blocking(fn: Callable[[], Any]) -> Callable[[], None]:
            return lambda: asyncio.run_coroutine_threadsafe(fn(), loop).result()

        samples = await asyncio.to_thread(interleave, {"kit": blocking(kit), "raw": blocking(raw)}, repetitions)
        await loyalty.aclose()
        await client.aclose()
        return _compare(samples, calls, target, row)

    return asyncio.run(main())
