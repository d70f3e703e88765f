"""The compiled, indexed rule walk against a plain reference over random programs and baskets.

The engine visits only the rules filed under a fact the basket or customer has (a SKU, a category,
the role, a segment, the tier, the channel; customer-only rules never for a guest), with conditions
compiled to sets; the reference reads every rule's ``when`` as written, in priority order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from loyaltykit import Evaluation, InvalidRequestError
from loyaltykit.money import quantize
from loyaltykit_local import rules
from loyaltykit_local.program import Conditions, Program, amount_in, program_from_dict
from loyaltykit_local.testing import basket, line

SKUS = ["A", "B", "C", "D", "E"]
CATEGORIES = ["c1", "c2", "c3"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
BEFORE, AFTER = datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)

names = st.lists(st.sampled_from(SKUS), min_size=1, max_size=3, unique=True)
cats = st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True)


@st.composite
def products(draw: Any, pool: Any) -> dict[str, Any]:
    made: dict[str, Any] = {"min_quantity": draw(st.integers(1, 4))}
    if draw(st.booleans()):
        made["any"] = draw(pool)
    if "any" not in made or draw(st.booleans()):
        made["all"] = draw(pool)
    return made


@st.composite
def conditions(draw: Any) -> dict[str, Any]:
    when: dict[str, Any] = {}
    optional = {
        "skus": products(names),
        "categories": products(cats),
        "basket_amount": st.fixed_dictionaries({}, optional={"min": st.integers(0, 60), "max": st.integers(0, 90)}),
        "channel": st.lists(st.sampled_from(["web", "store"]), min_size=1, max_size=2),
        "role": st.lists(st.sampled_from(["partner", "staff"]), min_size=1, max_size=2),
        "tier": st.lists(st.sampled_from(["base", "gold"]), min_size=1, max_size=2),
        "segment": st.lists(st.sampled_from(["vip", "press"]), min_size=1, max_size=2),
        "first_order": st.booleans(),
        "not_previously_granted": st.booleans(),
        "valid_from": st.sampled_from([BEFORE, AFTER]),
        "valid_until": st.sampled_from([BEFORE, AFTER]),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True)):
        when[key] = draw(optional[key])
    return when


actions = st.one_of(
    st.builds(lambda p, s: {"action": "percent_off_line", "percent": p, "skus": s},
              st.integers(1, 60), st.lists(st.sampled_from(SKUS), max_size=2)),
    st.builds(lambda a, c: {"action": "fixed_off_line", "amount": a, "categories": c},
              st.integers(1, 5), st.lists(st.sampled_from(CATEGORIES), max_size=2)),
    st.builds(lambda p: {"action": "percent_off_order", "percent": p}, st.integers(1, 50)),
    st.builds(lambda a: {"action": "fixed_off_order", "amount": a}, st.integers(1, 20)),
    st.builds(lambda s, p: {"action": "special_price", "sku": s, "price": p}, st.sampled_from(SKUS), st.integers(0, 9)),
    st.builds(lambda p: {"action": "bonus_points", "points": p}, st.integers(1, 50)),
    st.builds(lambda n: {"action": "message", "text": f"message {n}"}, st.integers(0, 9)),
    st.just({"action": "free_shipping"}),
)


@st.composite
def programs(draw: Any) -> Program:
    made = [{"id": f"r{n}", "priority": draw(st.integers(0, 3)), "stop": draw(st.integers(0, 9)) == 0,
             "when": draw(conditions()), "then": draw(st.lists(actions, min_size=1, max_size=2))}
            for n in range(draw(st.integers(0, 12)))]
    return program_from_dict({
        "points": {"per_currency_unit": 1},
        "tiers": [{"name": "base"}, {"name": "gold", "threshold": 10, "multiplier": Decimal("1.5")}],
        "promotions": {"hit_policy": draw(st.sampled_from(["all", "first"]))},
        "rules": made,
    })


@st.composite
def views(draw: Any) -> rules.BasketView:
    lines = [line(str(n), draw(st.sampled_from(SKUS)), f"{draw(st.integers(0, 3000)) / 100:.2f}",
                  draw(st.integers(1, 3)), draw(st.sampled_from([None, *CATEGORIES])))
             for n in range(draw(st.integers(1, 6)))]
    return rules.BasketView.of_basket(basket(*lines, channel=draw(st.sampled_from([None, "web", "store"]))))


customers = st.one_of(st.none(), st.builds(
    rules.CustomerFacts, id=st.just("c-1"), tier=st.sampled_from([None, "base", "gold"]),
    role=st.sampled_from([None, "partner"]), segments=st.frozensets(st.sampled_from(["vip", "press", "staff"])),
    ordered_before=st.booleans(), granted_rules=st.frozensets(st.sampled_from([f"r{n}" for n in range(12)])),
))


def reference_holds(when: Conditions, rule_id: str, view: rules.BasketView, customer: rules.CustomerFacts | None,
                    currency: str) -> bool:
    subtotal = sum((quantize(ln.unit_price.amount * ln.quantity, view.currency) for ln in view.lines), Decimal(0))

    def products_hold(condition: Any, key: str) -> bool:
        quantity = {name: sum((ln.quantity for ln in view.lines if getattr(ln, key) == name), Decimal(0))
                    for name in [*condition.any, *condition.all]}
        every = all(quantity[name] >= condition.min_quantity for name in condition.all)
        some = not condition.any or sum(quantity[name] for name in condition.any) >= condition.min_quantity
        return every and some

    checks = [
        when.valid_from is None or when.valid_from <= NOW,
        when.valid_until is None or when.valid_until > NOW,
        when.skus is None or products_hold(when.skus, "sku"),
        when.categories is None or products_hold(when.categories, "category"),
        when.channel is None or view.channel in when.channel,
    ]
    if when.basket_amount is not None:
        low = amount_in(when.basket_amount.min, view.currency, currency)
        high = amount_in(when.basket_amount.max, view.currency, currency)
        checks.append(when.basket_amount.min is None or (low is not None and subtotal >= low))
        checks.append(when.basket_amount.max is None or (high is not None and subtotal <= high))
    needs_customer = (when.role, when.tier, when.segment, when.first_order) != (None,) * 4 or when.not_previously_granted
    if customer is None:
        checks.append(not needs_customer)
    else:
        checks += [
            when.role is None or customer.role in when.role,
            when.tier is None or customer.tier in when.tier,
            when.segment is None or bool(customer.segments & set(when.segment)),
            when.first_order is None or (not customer.ordered_before) == when.first_order,
            not when.not_previously_granted or rule_id not in customer.granted_rules,
        ]
    return all(checks)


@settings(max_examples=300, deadline=None)
@given(programs(), views(), customers)
def test_indexed_walk_applies_the_rules_a_plain_walk_applies(program, view, customer):
    compiled = rules.CompiledProgram.build(program)
    expected = []
    for _, rule in sorted(enumerate(program.rules), key=lambda p: (-p[1].priority, p[0])):
        if reference_holds(rule.when, rule.id, view, customer, program.currency):
            expected.append(rule.id)
            if rule.stop or program.promotions.hit_policy == "first":
                break
    result = rules.quote(compiled, view, customer, {}, NOW)
    assert result.applied_rules == expected


class EveryRule(rules.CompiledProgram):
    """The same compiled program without its index: every rule is visited, in order."""

    def candidates(self, *args: Any, **kwargs: Any) -> list[int]:
        return list(range(len(self.rules)))


@settings(max_examples=300, deadline=None)
@given(programs(), views(), customers)
def test_every_rule_that_holds_is_a_candidate(program, view, customer):
    compiled = rules.CompiledProgram.build(program)
    state = rules._Basket(view, program.currency)
    found = compiled.candidates(state.qty_sku.keys(), state.qty_cat.keys(), customer, view.channel)
    assert found == sorted(set(found))
    holding = [position for position, rule in enumerate(compiled.rules)
               if reference_holds(rule.when, rule.id, view, customer, program.currency)]
    assert set(holding) <= set(found)


def test_rules_filed_under_a_customer_fact_are_left_out_for_customers_without_it():
    program = program_from_dict({"rules": [
        {"id": "partners", "when": {"role": ["partner"]}, "then": {"action": "bonus_points", "points": 5}},
        {"id": "vip", "when": {"segment": ["vip", "press"]}, "then": {"action": "bonus_points", "points": 5}},
        {"id": "gold", "when": {"tier": ["gold"]}, "then": {"action": "bonus_points", "points": 5}},
        {"id": "web", "when": {"channel": ["web"]}, "then": {"action": "bonus_points", "points": 5}},
        {"id": "first", "when": {"first_order": True}, "then": {"action": "bonus_points", "points": 5}},
        {"id": "all", "when": {"skus": {"all": ["A", "B"]}}, "then": {"action": "bonus_points", "points": 5}},
        {"id": "any", "when": {}, "then": {"action": "bonus_points", "points": 5}},
    ]})
    compiled = rules.CompiledProgram.build(program)

    def ids(skus: list[str], customer: rules.CustomerFacts | None, channel: str | None) -> list[str]:
        return [compiled.rules[p].id for p in compiled.candidates(skus, [], customer, channel)]

    assert ids(["B"], None, "store") == ["any"]
    assert ids(["A"], None, "web") == ["web", "all", "any"]
    member = rules.CustomerFacts(id="c-1", tier="gold", role="partner", segments=frozenset({"press"}))
    assert ids([], member, None) == ["partners", "vip", "gold", "first", "any"]
    assert ids([], rules.CustomerFacts(id="c-2", segments=frozenset({"staff"})), None) == ["first", "any"]


@settings(max_examples=100, deadline=None)
@given(programs(), views(), customers)
def test_indexed_walk_gives_the_evaluation_of_a_walk_over_every_rule(program, view, customer):
    indexed = rules.CompiledProgram.build(program)
    every = EveryRule.build(program)
    got = rules.to_evaluation(indexed, view, customer, rules.quote(indexed, view, customer, {}, NOW), [], NOW)
    want = rules.to_evaluation(every, view, customer, rules.quote(every, view, customer, {}, NOW), [], NOW)
    assert got == want
    assert got.model_dump_json() == want.model_dump_json()


# -- the result models the walk builds without a validation run are the ones validation builds ------


def same_as_validated(model):
    again = type(model).model_validate(model.model_dump(exclude_unset=True))
    assert again == model
    assert again.model_fields_set == model.model_fields_set
    assert again.model_dump_json() == model.model_dump_json()


@settings(max_examples=100, deadline=None)
@given(programs(), views(), customers)
def test_evaluation_and_its_parts_equal_their_validated_copies(program, view, customer):
    compiled = rules.CompiledProgram.build(program)
    evaluation = rules.to_evaluation(compiled, view, customer, rules.quote(compiled, view, customer, {}, NOW), [], NOW)
    same_as_validated(evaluation)
    for part in (*evaluation.discounts, *evaluation.earn, *evaluation.messages, *evaluation.spendable):
        same_as_validated(part)
    assert isinstance(evaluation, Evaluation)


def test_a_percent_the_discount_model_refuses_is_refused_naming_the_field():
    # The program accepts any percent in (0, 100]; a Discount carries at most 8 decimal places.
    program = program_from_dict({"rules": [
        {"id": "r", "then": {"action": "percent_off_line", "percent": Decimal("10.123456789")}}]})
    compiled = rules.CompiledProgram.build(program)
    view = rules.BasketView.of_basket(basket(line("1", "A", "10.00")))
    with pytest.raises(InvalidRequestError) as caught:
        rules.quote(compiled, view, None, {}, NOW)
    assert caught.value.field == "percent"


# -- amount tables resolved once per program --------------------------------------------------------

amount_tables = st.one_of(
    st.none(),
    st.builds(lambda v: {"*": Decimal(v)}, st.integers(0, 99)),
    st.dictionaries(st.sampled_from(["EUR", "USD", "GBP"]), st.integers(0, 99).map(Decimal), max_size=3),
)


@given(amount_tables, st.sampled_from(["EUR", "USD", "GBP", "JPY"]), st.sampled_from(["EUR", "USD"]))
def test_an_amount_table_resolved_per_currency_reads_as_amount_in(table, currency, base):
    resolved = rules._per_currency(table, base)
    assert (None if resolved is None else resolved.get(currency)) == amount_in(table, currency, base)
