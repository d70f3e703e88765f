"""Embedded engine: evaluate a 50-line basket against 500 rules (target: median at most 0.5 ms idle).

Prints the median and p95 of
  * the rule evaluation itself (compiled program, customer facts already read: the pure part),
  * a whole ``Loyalty.evaluate`` call through the facade (validation, database reads, the quote),
beside a baseline measured in the same run: validating the same 50-line ``Basket`` model, the
cost a shop pays before any engine is involved.

    python benchmarks/local_evaluate.py [--rules 500] [--lines 50] [--runs 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_note, verdict as report_row

from loyaltykit import Basket, Line, Loyalty, LoyaltySettings, Money
from loyaltykit_local import rules
from loyaltykit_local.adapter import LocalAdapter
from loyaltykit_local.program import program_from_dict
from loyaltykit_local.service import LocalEngine
from loyaltykit_local.store import Store

SKUS = [f"SKU-{n:05d}" for n in range(2000)]
CATEGORIES = [f"cat-{n:03d}" for n in range(200)]


def make_rules(count: int, rng: random.Random) -> list[dict]:
    made = []
    for n in range(count):
        kind = n % 10
        when: dict = {}
        # Most rules are about products, as in a real catalogue; the rest need a rarer customer fact.
        if kind < 5:
            when["skus"] = {"any": rng.sample(SKUS, 3), "min_quantity": rng.randint(1, 2)}
        elif kind < 7:
            when["categories"] = {"any": rng.sample(CATEGORIES, 2), "min_quantity": rng.randint(2, 4)}
            when["tier"] = ["gold"]
        elif kind == 7:
            when["basket_amount"] = {"min": rng.randint(500, 2000)}
            when["channel"] = ["web"]
        elif kind == 8:
            when["segment"] = [rng.choice(["vip", "staff", "student", "press"])]
            when["valid_from"] = datetime(2020, 1, 1, tzinfo=UTC)
            when["valid_until"] = datetime(2020 + rng.randint(1, 10), 1, 1, tzinfo=UTC)
        else:
            when["not_previously_granted"] = True
            when["first_order"] = True
            when["role"] = ["partner"]
        targets = {"skus": when["skus"]["any"]} if "skus" in when else (
            {"categories": when["categories"]["any"]} if "categories" in when else {"skus": rng.sample(SKUS, 5)})
        then = [
            {"action": "percent_off_line", "percent": rng.randint(1, 20), **targets},
            {"action": "fixed_off_order", "amount": rng.randint(1, 5)},
            {"action": "bonus_points", "points": rng.randint(5, 50)},
            {"action": "special_price", "sku": rng.choice(targets.get("skus") or SKUS), "price": rng.randint(1, 9)},
            {"action": "message", "text": f"rule {n} applied"},
        ][n % 5]
        made.append({"id": f"rule-{n}", "priority": rng.randint(0, 100), "when": when, "then": then})
    return made


def make_basket(lines: int, rng: random.Random, customer_id: str | None) -> Basket:
    return Basket(
        id="bench", currency="EUR", customer_id=customer_id, channel="web",
        lines=[Line(id=str(n), sku=rng.choice(SKUS), quantity=rng.randint(1, 3),
                    unit_price=Money.of(Decimal(rng.randint(100, 5000)) / 100, "EUR"), category=rng.choice(CATEGORIES))
               for n in range(lines)],
    )


def measure(fn, runs: int) -> list[float]:
    for _ in range(min(50, runs)):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(f"  {name:<52} median {statistics.median(samples) * 1e3:7.3f} ms   p95 {p95 * 1e3:7.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    program = program_from_dict({
        "points": {"per_currency_unit": 1},
        "tiers": [{"name": "base"}, {"name": "gold", "threshold": 10, "multiplier": Decimal("1.5")}],
        "categories": [{"category": c, "per_currency_unit": 2} for c in CATEGORIES[:10]],
        "cashback": {"earn_percent": 2},
        "rules": make_rules(args.rules, rng),
    }, "benchmark")

    with tempfile.TemporaryDirectory() as workdir:
        store = Store(f"sqlite:///{Path(workdir) / 'bench.sqlite3'}")
        engine = LocalEngine(store, program)
        customer = engine.create_customer(identifiers={"email": "bench@example.com"}, tier="gold", segments=["vip"],
                                          points=100)
        basket = make_basket(args.lines, rng, customer)
        raw_lines = [line.model_dump() for line in basket.lines]
        compiled = engine.compiled
        view = rules.BasketView.of_basket(basket)
        with store.read() as conn:
            facts = engine._facts(conn, customer, "EUR", engine.now())
        now = engine.now()
        quote = rules.quote(compiled, view, facts, {}, now)
        candidates = len(compiled.candidates({line.sku for line in basket.lines},
                                             {line.category for line in basket.lines if line.category}, facts, basket.channel))
        print(f"{args.lines}-line basket, {args.rules} rules ({candidates} candidates after indexing, "
              f"{len(quote.applied_rules)} applied, {len(quote.discounts)} discounts)")

        baseline = measure(lambda: Basket(id="bench", currency="EUR", customer_id=customer, lines=raw_lines), args.runs)
        pure = measure(lambda: rules.to_evaluation(compiled, view, facts, rules.quote(compiled, view, facts, {}, now),
                                                   [], now), args.runs)
        with Loyalty(LoyaltySettings(), adapter=LocalAdapter(engine=engine), load_entry_points=False) as loyalty:
            facade = measure(lambda: loyalty.evaluate(basket), max(200, args.runs // 4))
        report("baseline: validate the 50-line Basket model", baseline)
        report("rule evaluation (engine, pure)", pure)
        report("Loyalty.evaluate (facade + SQLite reads + rules)", facade)
        store.dispose()
    print(load_note())
    median, base = statistics.median(pure), statistics.median(baseline)
    passed = report_row(f"embedded rule evaluation, {args.lines} lines x {args.rules} rules",
                        f"{median * 1e3:.3f} ms", f"{base * 1e3:.3f} ms (Basket validation)", median / base,
                        "<= 0.5 ms (idle)", median <= 0.5e-3)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
