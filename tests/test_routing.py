"""Routing: exactly one engine adapter answers each operation; observers wrap; capabilities gate."""

from __future__ import annotations

from typing import ClassVar

import pytest
from loyaltykit_core_test_helpers import (
    FakeEntryPoint,
    adapter_settings,
    basket_dict,
    fake_entry_points,
    reference_adapter,
)

from loyaltykit import (
    AsyncLoyalty,
    Capabilities,
    ConfigError,
    EngineAdapter,
    EngineRequest,
    IdentifierKind,
    Loyalty,
    LoyaltySettings,
    MemberField,
    NotSupportedError,
    hookimpl,
    plugins as plugins_module,
)
from loyaltykit.adapter import validate_adapter_class
from loyaltykit.errors import InvalidRequestError
from loyaltykit.hookspecs import OPERATION_HOOKS
from loyaltykit.observe import observe_flow
from loyaltykit.plugins import check_routing, discover, make_plugin_manager
from loyaltykit_reference.adapter import ReferenceAdapter


class OtherAdapter(ReferenceAdapter):
    name = "other"


class Observer:
    """An audit-log style observer: a wrapper on every operation hook."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, object, object]] = []

    def _done(self, ctx, result, error, seconds):
        self.seen.append((ctx.operation, ctx.engine, type(result).__name__, error.code if error else None))

    @hookimpl(wrapper=True)
    def loyaltykit_identify(self, identifier, ctx):
        flow = yield
        return observe_flow(flow, ctx, self._done)

    @hookimpl(wrapper=True)
    def loyaltykit_evaluate_basket(self, basket, ctx):
        flow = yield
        return observe_flow(flow, ctx, self._done)

    @hookimpl(wrapper=True)
    def loyaltykit_redeem_voucher(self, redemption, ctx):
        flow = yield
        return observe_flow(flow, ctx, self._done)

    @hookimpl(wrapper=True)
    def loyaltykit_spend_cashback(self, spend, ctx):
        flow = yield
        return observe_flow(flow, ctx, self._done)

    @hookimpl(wrapper=True)
    def loyaltykit_export_orders(self, orders, ctx):
        flow = yield
        return observe_flow(flow, ctx, self._done)


class RoguePlugin:
    """A plain (non-wrapper) plugin answering a money-moving hook: must be refused."""

    @hookimpl
    def loyaltykit_redeem_voucher(self, redemption, ctx):
        return iter(())


class MisspelledPlugin:
    @hookimpl(wrapper=True)
    def loyaltykit_redeem_vocher(self, redemption, ctx):  # sic
        return (yield)


def settings(**values):
    return LoyaltySettings(**{"engine": "reference", "engines": {"reference": adapter_settings()}, **values})


# -- zero / one / several adapters ---------------------------------------------------------------


def test_one_adapter_is_routed(make_sync):
    loyalty = make_sync()
    assert loyalty.adapter.name == "reference"
    assert loyalty.identify(email="ann@example.com").id == "m1"


def test_zero_adapters_fail_construction_clearly(monkeypatch):
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points())
    with pytest.raises(ConfigError, match=r"no engine adapter named 'reference'.*none installed"):
        Loyalty(settings())
    with pytest.raises(ConfigError, match="no engine adapter named 'reference'"):
        AsyncLoyalty(settings())


@pytest.mark.parametrize("hook", OPERATION_HOOKS)
def test_zero_claimants_of_an_operation_hook_are_named(hook):
    pm = make_plugin_manager()
    pm.register(Observer())
    adapter = reference_adapter()
    pm.register(adapter, name="adapter:reference")
    pm.unregister(adapter)
    # Keep the adapter but remove its implementation of one hook.
    class Partial(ReferenceAdapter):
        pass
    setattr(Partial, hook, None)
    pm.register(Partial(adapter_settings()), name="adapter:partial")
    with pytest.raises(ConfigError) as info:
        check_routing(pm)
    assert hook in str(info.value)
    assert "no engine adapter answers" in str(info.value)


def test_several_adapters_claiming_a_hook_fail_naming_hook_and_claimants():
    with pytest.raises(ConfigError) as info:
        Loyalty(settings(), adapter=reference_adapter(), plugins=[OtherAdapter(adapter_settings())], load_entry_points=False)
    message = str(info.value)
    assert "loyaltykit_identify" in message
    assert "adapter:reference" in message and "other" in message.replace("adapter:reference", "")


def test_two_adapters_from_entry_points_do_not_both_register(monkeypatch):
    """Only the selected adapter is instantiated; the other installed one is ignored, not routed."""
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(
        FakeEntryPoint("reference", ReferenceAdapter), FakeEntryPoint("other", OtherAdapter)))
    with Loyalty(settings()) as loyalty:
        assert loyalty.adapter.name == "reference"
        assert [impl.plugin_name for impl in loyalty.pm.hook.loyaltykit_redeem_voucher.get_hookimpls()] == ["adapter:reference"]


@pytest.mark.parametrize("facade", [Loyalty, AsyncLoyalty])
def test_plain_plugin_on_an_operation_hook_is_refused(facade):
    with pytest.raises(ConfigError) as info:
        facade(settings(), adapter=reference_adapter(), plugins=[RoguePlugin()], load_entry_points=False)
    message = str(info.value)
    assert "loyaltykit_redeem_voucher" in message
    assert "wrapper=True" in message
    assert "RoguePlugin" in message, "the claimant must be named so the shop can find it"


def test_plain_plugin_from_an_entry_point_is_refused(monkeypatch):
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(
        FakeEntryPoint("reference", ReferenceAdapter), FakeEntryPoint("rogue", RoguePlugin())))
    with pytest.raises(ConfigError, match=r"loyaltykit_redeem_voucher.*plugin:rogue"):
        Loyalty(settings())


def test_check_pending_catches_a_misspelled_hook():
    with pytest.raises(ConfigError, match="loyaltykit_redeem_vocher"):
        Loyalty(settings(), adapter=reference_adapter(), plugins=[MisspelledPlugin()], load_entry_points=False)


# -- observers ------------------------------------------------------------------------------------


def test_wrapper_observer_sees_every_call_sync(make_sync, engine):
    observer = Observer()
    loyalty = make_sync(plugins=[observer])
    loyalty.identify(email="ann@example.com")
    loyalty.evaluate(basket_dict(customer_id="m1"))
    loyalty.redeem_voucher({"code": "SAVE5", "order_ref": "o1"})
    with pytest.raises(Exception):
        loyalty.redeem_voucher({"code": "NOPE", "order_ref": "o1"})
    assert observer.seen == [
        ("identify", "reference", "Customer", None),
        ("evaluate_basket", "reference", "Evaluation", None),
        ("redeem_voucher", "reference", "RedemptionResult", None),
        ("redeem_voucher", "reference", "NoneType", "voucher_not_found"),
    ]
    assert engine.request_count() == 4


async def test_wrapper_observer_sees_every_call_async(make_async, engine):
    observer = Observer()
    loyalty = make_async(plugins=[observer])
    await loyalty.identify(email="ann@example.com")
    await loyalty.evaluate(basket_dict(customer_id="m1"))
    await loyalty.redeem_voucher({"code": "SAVE5", "order_ref": "o1"})
    with pytest.raises(Exception):
        await loyalty.redeem_voucher({"code": "NOPE", "order_ref": "o1"})
    assert observer.seen == [
        ("identify", "reference", "Customer", None),
        ("evaluate_basket", "reference", "Evaluation", None),
        ("redeem_voucher", "reference", "RedemptionResult", None),
        ("redeem_voucher", "reference", "NoneType", "voucher_not_found"),
    ]


def test_an_observer_registered_after_construction_sees_the_next_calls(make_sync, engine):
    """An observer registered after the facade was built sees the calls made after it."""
    loyalty = make_sync()
    loyalty.evaluate(basket_dict(customer_id="m1"))
    loyalty.spend_cashback({"customer_id": "m1", "order_ref": "o1", "amount": {"amount": "1.00", "currency": "EUR"}})
    observer = Observer()
    loyalty.pm.register(observer)
    loyalty.evaluate(basket_dict(customer_id="m1"))
    loyalty.spend_cashback({"customer_id": "m1", "order_ref": "o2", "amount": {"amount": "1.00", "currency": "EUR"}})
    assert observer.seen == [("evaluate_basket", "reference", "Evaluation", None),
                             ("spend_cashback", "reference", "SpendResult", None)]


def test_observer_from_entry_point_is_registered(monkeypatch, engine):
    observer = Observer()
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(
        FakeEntryPoint("reference", ReferenceAdapter), FakeEntryPoint("audit", observer)))
    with Loyalty(settings(), transport=engine.transport()) as loyalty:
        loyalty.identify(email="ann@example.com")
    assert observer.seen == [("identify", "reference", "Customer", None)]


# -- discovery: allow-list and block-list --------------------------------------------------------


def _eps():
    return (
        FakeEntryPoint("reference", ReferenceAdapter),
        FakeEntryPoint("other", OtherAdapter),
        FakeEntryPoint("audit", Observer()),
    )


def test_discovery_loads_everything_by_default(monkeypatch):
    eps = _eps()
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(*eps))
    found = discover()
    assert [(d.name, d.is_adapter, d.distribution, d.version) for d in found] == [
        ("audit", False, "fake-dist", "9.9.9"),
        ("other", True, "fake-dist", "9.9.9"),
        ("reference", True, "fake-dist", "9.9.9"),
    ]


def test_allow_list_loads_only_the_listed_entry_points(monkeypatch):
    eps = _eps()
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(*eps))
    (found,) = discover(allow=["reference"])
    assert found.name == "reference"
    assert [ep.loads for ep in eps] == [0, 0, 0], "discovery reads metadata only"
    assert found.load() is ReferenceAdapter
    assert [ep.loads for ep in eps] == [1, 0, 0], "entry points outside the allow-list are not even loaded"


def test_a_facade_imports_only_its_own_engine_and_the_observer_plugins(monkeypatch, engine):
    eps = _eps()
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(*eps))
    with Loyalty(settings(), transport=engine.transport()) as loyalty:
        assert loyalty.adapter.name == "reference"
    reference, other, audit = eps
    assert (reference.loads, other.loads, audit.loads) == (1, 0, 1)


def test_block_list_skips_entry_points_without_loading_them(monkeypatch, engine):
    broken = FakeEntryPoint("broken", None, error=ImportError("boom"))
    eps = (*_eps(), broken)
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(*eps))
    assert [d.name for d in discover(block=["other", "broken"])] == ["audit", "reference"]
    assert broken.loads == 0
    with Loyalty(settings(plugins_block=["broken", "audit"]), transport=engine.transport()) as loyalty:
        assert loyalty.adapter.name == "reference"
        assert loyalty.pm.get_plugin("plugin:audit") is None


def test_settings_allow_list_reaches_discovery(monkeypatch):
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(*_eps()))
    with pytest.raises(ConfigError, match=r"no engine adapter named 'reference'.*available: other"):
        Loyalty(settings(plugins_allow=["other"]))


def test_a_plugin_that_fails_to_load_is_a_config_error_naming_it(monkeypatch):
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(
        FakeEntryPoint("broken", None, error=ImportError("no module named x"))))
    (found,) = discover()
    with pytest.raises(ConfigError, match="'broken' failed to load"):
        found.load()
    with pytest.raises(ConfigError, match="'broken' failed to load"):
        Loyalty(settings(engine="broken"))


def test_entry_point_name_must_match_adapter_name(monkeypatch):
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(FakeEntryPoint("acme", ReferenceAdapter)))
    (found,) = discover()
    with pytest.raises(ConfigError, match="'acme' loads adapter named 'reference'"):
        found.load()


# -- capability gating ----------------------------------------------------------------------------


class NarrowAdapter(ReferenceAdapter):
    name = "narrow"
    capabilities = Capabilities(identify_by=frozenset({IdentifierKind.EMAIL}), evaluate=True)


@pytest.mark.parametrize(
    ("call", "payload"),
    [
        ("identify", {"kind": "phone", "value": "+4915112345678"}),
        ("redeem_voucher", {"code": "SAVE5", "order_ref": "o1"}),
        ("spend_cashback", {"customer_id": "m1", "order_ref": "o1", "amount": {"amount": "1.00", "currency": "EUR"}}),
        ("export_orders", [{"ref": "o1", "currency": "EUR", "total": {"amount": "1.00", "currency": "EUR"},
                            "lines": [{"id": "l", "sku": "s", "quantity": 1, "unit_price": {"amount": "1", "currency": "EUR"}}]}]),
        ("price_products", {"currency": "EUR", "products": [
            {"id": "l", "sku": "s", "quantity": 1, "unit_price": {"amount": "1", "currency": "EUR"}}]}),
        ("sync_products", [{"sku": "s", "name": "Coffee"}]),
        ("enrol_member", {"external_id": "shop-1", "email": "ann@example.com"}),
        ("update_member", {"customer_id": "m1", "tier": "gold"}),
        ("statement", {"customer_id": "m1"}),
        ("wallet", {"customer_id": "m1"}),
        ("issue_voucher", {"customer_id": "m1", "definition_id": "BDAY", "idempotency_key": "bday-m1-2026"}),
    ],
)
def test_undeclared_capability_raises_not_supported_without_engine_call(call, payload, make_sync, engine):
    loyalty = make_sync(NarrowAdapter(adapter_settings()))
    with pytest.raises(NotSupportedError) as info:
        getattr(loyalty, call)(payload)
    assert info.value.engine == "narrow"
    assert engine.request_count() == 0


class TierOnlyAdapter(ReferenceAdapter):
    name = "tieronly"
    capabilities = Capabilities(update_member=True, member_fields=frozenset({MemberField.TIER}))
    updates: ClassVar[list] = []

    def update_member(self, update, ctx):
        self.updates.append(update)
        raise NotSupportedError("reached the adapter", engine=self.name)


@pytest.mark.parametrize(("payload", "field"), [
    ({"customer_id": "m1", "segments": ["vip"]}, "update.segments"),
    ({"customer_id": "m1", "tier": "gold", "role": "staff"}, "update.role"),
])
def test_update_naming_an_undeclared_member_field_is_refused_by_the_facade(payload, field, make_sync, engine):
    TierOnlyAdapter.updates = []
    loyalty = make_sync(TierOnlyAdapter(adapter_settings()))
    with pytest.raises(NotSupportedError) as info:
        loyalty.update_member(payload)
    assert info.value.field == field and info.value.operation == "update_member"
    assert TierOnlyAdapter.updates == [] and engine.request_count() == 0
    with pytest.raises(NotSupportedError, match="reached the adapter"):  # a declared field goes through
        loyalty.update_member({"customer_id": "m1", "tier": "gold"})
    assert len(TierOnlyAdapter.updates) == 1


async def test_undeclared_capability_async(make_async, engine):
    loyalty = make_async(NarrowAdapter(adapter_settings()))
    with pytest.raises(NotSupportedError):
        await loyalty.redeem_voucher({"code": "SAVE5", "order_ref": "o1"})
    assert engine.request_count() == 0


def test_partial_refund_needs_its_own_capability(make_sync, engine):
    order = {"ref": "o1", "currency": "EUR", "total": {"amount": "2.00", "currency": "EUR"},
             "lines": [{"id": "l", "sku": "s", "quantity": 2, "unit_price": {"amount": "1", "currency": "EUR"}}]}
    loyalty = make_sync()  # cancel and refund, but not partial_refund
    with pytest.raises(NotSupportedError, match="partial refund"):
        loyalty.reverse({"order": order, "kind": "refund", "lines": [{"line_id": "l", "quantity": 1}], "reference": "r1"})
    assert engine.request_count() == 0
    loyalty.reverse({"order": order, "kind": "refund", "lines": [{"line_id": "l", "quantity": 2}]})
    assert engine.request_count("reverse") == 1


def test_declared_but_unimplemented_capability_is_rejected():
    class Liar(EngineAdapter):
        name = "liar"
        capabilities = Capabilities(identify_by=frozenset({IdentifierKind.EMAIL}), redeem_voucher=True)

        def client_config(self):
            return None

        def identify(self, identifier, ctx):
            yield EngineRequest("GET", "/x")

    with pytest.raises(ConfigError, match="declares redeem_voucher but does not implement redeem_voucher"):
        validate_adapter_class(Liar)
    with pytest.raises(ConfigError, match="redeem_voucher"):
        Loyalty(settings(engine="liar"), adapter=Liar(), load_entry_points=False)


@pytest.mark.parametrize(
    ("caps", "problem"),
    [
        (Capabilities(refund=True, partial_refund=False, cancel=False), "does not implement reverse"),
        (Capabilities(evaluate=True, wallet_offers=True), "does not implement evaluate_basket"),
        (Capabilities(identify_by=frozenset({IdentifierKind.CARD})), "does not implement identify"),
    ],
)
def test_each_capability_needs_its_method(caps, problem):
    cls = type("Bare", (EngineAdapter,), {"name": "bare", "capabilities": caps, "client_config": lambda self: None})
    with pytest.raises(ConfigError, match=problem):
        validate_adapter_class(cls)


@pytest.mark.parametrize(
    ("caps", "problem"),
    [
        (dict(partial_refund=True), "partial_refund requires refund"),
        (dict(wallet_offers=True), "require evaluate"),
        (dict(currencies=frozenset({"EUR", "XYZ"})), "unknown currencies"),
        (dict(update_member=True), "update_member requires member_fields"),
    ],
)
def test_incoherent_declaration_is_rejected(caps, problem):
    cls = type("Odd", (ReferenceAdapter,), {"name": "odd", "capabilities": Capabilities(**caps)})
    with pytest.raises(ConfigError, match=problem):
        validate_adapter_class(cls)


def test_adapter_needs_a_valid_name_and_http_config():
    with pytest.raises(ConfigError, match="needs a name"):
        validate_adapter_class(type("NoName", (ReferenceAdapter,), {"name": ""}))
    with pytest.raises(ConfigError, match="client_config"):
        validate_adapter_class(type("NoHttp", (EngineAdapter,), {"name": "nohttp"}))
    with pytest.raises(ConfigError, match="not an EngineAdapter"):
        validate_adapter_class(object)  # type: ignore[arg-type]


def test_capabilities_refuse_unknown_keys():
    with pytest.raises(Exception):
        Capabilities(redeem_vouchers=True)  # type: ignore[call-arg]
    assert Capabilities().supported() == []
    assert ReferenceAdapter.capabilities.supports("spend_cashback")
    assert not ReferenceAdapter.capabilities.supports("spend_points")


@pytest.mark.parametrize(
    ("products", "field"),
    [
        ([], "products"),
        ([{"sku": "a"}, {"sku": "a"}], "products"),
        ([{"sku": ""}], "products.0.sku"),
        ([{"sku": "a", "colour": "red"}], "products.0.colour"),
    ],
)
def test_sync_products_input_is_validated_before_any_engine_call(products, field, make_sync, engine):
    loyalty = make_sync(NarrowAdapter(adapter_settings()))
    with pytest.raises(InvalidRequestError) as info:
        loyalty.sync_products(products)
    assert info.value.field == field
    assert engine.request_count() == 0


@pytest.mark.parametrize(
    ("call", "payload", "field"),
    [
        ("enrol_member", {"email": "ann@example.com"}, "enrolment.external_id"),
        ("enrol_member", {"external_id": "x", "email": "not-an-email"}, "enrolment.email"),
        ("enrol_member", {"external_id": "x", "consents": [{"purpose": "sms", "granted": True},
                                                          {"purpose": "sms", "granted": False}]}, "enrolment.consents"),
        ("update_member", {"customer_id": "m1"}, "update.tier"),
        ("update_member", {"customer_id": "m1", "segments": ["a", "a"]}, "update.segments"),
        ("statement", {"customer_id": "m1", "page_size": 0}, "query.page_size"),
        ("statement", {"customer_id": "m1", "since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
         "query.since"),
        ("wallet", {"customer_id": ""}, "query.customer_id"),
        ("issue_voucher", {"customer_id": "m1", "definition_id": "BDAY"}, "issue.idempotency_key"),
        ("issue_voucher", {"customer_id": "m1", "definition_id": "BDAY", "idempotency_key": "k", "quantity": 21},
         "issue.quantity"),
        ("issue_voucher", {"customer_id": "m1", "definition_id": "BDAY", "idempotency_key": "k",
                           "face_value": {"amount": "0.00", "currency": "EUR"}}, "issue.face_value"),
        ("issue_voucher", {"customer_id": "m1", "definition_id": "BDAY", "idempotency_key": "k",
                           "expires_at": "2099-01-01T00:00:00"}, "issue.expires_at"),
    ],
)
def test_member_operations_validate_before_the_capability_and_any_engine_call(call, payload, field, make_sync, engine):
    loyalty = make_sync(NarrowAdapter(adapter_settings()))
    with pytest.raises(InvalidRequestError) as info:
        getattr(loyalty, call)(payload)
    assert info.value.field == field
    assert engine.request_count() == 0


def test_enrolment_identifiers_stay_out_of_reprs():
    from loyaltykit.members import Enrolment

    enrolment = Enrolment(external_id="shop-42", email="Ann@Example.com", phone="+49 151 2345678", card="77001234",
                          first_name="Ann", last_name="Lee", display_name="Ann Lee")
    assert enrolment.email == "ann@example.com" and enrolment.key == "enrol:shop-42"
    shown = repr(enrolment)
    for secret in ("shop-42", "example.com", "4915", "77001234", "Ann", "Lee"):
        assert secret not in shown
    assert [i.kind.value for i in enrolment.identifiers()] == ["external_id", "email", "phone", "card"]
