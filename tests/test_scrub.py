"""Secrets and customer PII never reach logs, reprs or error messages (canary tests)."""

from __future__ import annotations

import logging
import secrets
import traceback
from decimal import Decimal
from urllib.parse import quote, quote_plus

import httpx
import pytest
from loyaltykit_core_test_helpers import BASE_URL, FakeEntryPoint, basket_dict, fake_entry_points
from pydantic import SecretStr

from loyaltykit import (
    AsyncLoyalty,
    Capabilities,
    ConfigError,
    CustomerNotFoundError,
    EngineAdapter,
    IdentifierKind,
    Loyalty,
    LoyaltyError,
    LoyaltySettings,
    NotSupportedError,
    plugins as plugins_module,
)
from loyaltykit.auth import BasicAuth
from loyaltykit.flows import in_process as lazy_flow
from loyaltykit.scrub import MASK, get_logger, register_secret, scrub_text, scrubbing
from loyaltykit.testing import Fault, FaultKind, serve
from loyaltykit_reference.adapter import ReferenceAdapter
from loyaltykit_reference.fake import ReferenceEngine


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.formatter_ = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.formatter_.format(record))
        if record.exc_text:
            self.texts.append(record.exc_text)


@pytest.fixture
def capture():
    root = logging.getLogger()
    handler = Capture()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    touched = {}
    for name in ("httpx", "httpcore", "loyaltykit", "tests"):
        logger = logging.getLogger(name)
        touched[name] = logger.level
        logger.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)
    for name, level in touched.items():
        logging.getLogger(name).setLevel(level)


def canaries() -> dict[str, str]:
    tag = secrets.token_hex(4)
    digits = "".join(str(secrets.randbelow(10)) for _ in range(9))
    return {
        "secret": f"cs-{tag}-{secrets.token_hex(8)}",
        "email": f"canary.{tag}@example.com",
        "phone": f"+491{digits}",
        "card": f"CK{tag.upper()}{secrets.token_hex(3).upper()}",
        "external_id": f"EXT{tag.upper()}{secrets.token_hex(3).upper()}",
    }


def forms(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value), quote(value)}


def assert_no_canary(texts: list[str], values: list[str]) -> None:
    blob = "\n".join(texts)
    for value in values:
        for form in forms(value):
            assert form not in blob, f"canary {form!r} leaked:\n" + "\n".join(t for t in texts if form in t)[:2000]


class EchoingEngine(ReferenceEngine):
    """Like the reference engine, but echoes the request URL in a header (as some engines' Location does)."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = super().handle(request)
        response.headers["Content-Location"] = str(request.url)
        return response


class ChattyAdapter(ReferenceAdapter):
    """Puts the identifier into its error messages and debug log (through the kit's logger)."""

    log = get_logger("tests.chatty_adapter")

    def identify(self, identifier, ctx):
        self.log.debug("looking up %s %s", identifier.kind.value, identifier.value)
        customer = yield from super().identify(identifier, ctx)
        if customer is None:
            raise CustomerNotFoundError(f"no member for {identifier.kind.value} {identifier.value}")
        return customer


def _drive_everything(loyalty, values, engine, errors):
    def attempt(fn, *args, **kwargs):
        try:
            result = fn(*args, **kwargs)
            errors.append(repr(result))
        except LoyaltyError as exc:
            errors.extend([str(exc), repr(exc), repr(exc.to_dict()), "".join(traceback.format_exception(exc))])
            if hasattr(exc, "reconcile"):
                errors.append(repr(exc.reconcile))

    attempt(loyalty.identify, email=values["email"])
    attempt(loyalty.identify, external_id=values["external_id"])
    attempt(loyalty.identify, phone=values["phone"])  # not supported by the engine: refused before sending
    attempt(loyalty.identify, card=values["card"])
    engine.inject("identify", Fault(FaultKind.STATUS, status=503, times=10))
    attempt(loyalty.identify, email=values["email"])
    engine.clear_faults()
    attempt(loyalty.identify, {"kind": "email", "value": values["email"] + "@"})  # invalid
    attempt(loyalty.evaluate, basket_dict(customer_id="m1"))
    engine.inject("redeem", Fault(FaultKind.STATUS, status=500, times=10))
    attempt(loyalty.redeem_voucher, {"code": "SAVE5", "order_ref": "o1"})
    engine.clear_faults()
    engine.expire_tokens()
    attempt(loyalty.identify, email=values["email"])


def test_canaries_never_leak_sync(capture, monkeypatch):
    values = canaries()
    engine = EchoingEngine(client_id="shop-client", client_secret=values["secret"])
    engine.add_member("m1", {"email": values["email"], "external_id": values["external_id"]}, tier="gold")
    engine.add_voucher("SAVE5", Decimal("5.00"))
    errors: list[str] = []
    monkeypatch.setattr(plugins_module, "entry_points", fake_entry_points(FakeEntryPoint("reference", ChattyAdapter)))
    with serve(engine.handle) as server:
        settings = LoyaltySettings(engine="reference", read_deadline=3, write_deadline=3, engines={"reference": {
            "base_url": server.url, "client_id": "shop-client", "client_secret": values["secret"],
            "max_attempts": 2, "backoff_base": 0.01}})
        loyalty = Loyalty(settings)
        try:
            found = loyalty.identify(email=values["email"])
            assert found is not None and found.id == "m1", "the canary customer must really be found"
            engine.members.clear()  # now every identify ends in CustomerNotFoundError naming the identifier
            _drive_everything(loyalty, values, engine, errors)
            errors += [repr(loyalty.adapter), repr(loyalty.adapter.settings), repr(settings),
                       repr(loyalty.client_config), repr(found)]
        finally:
            loyalty.close()
    assert any("CustomerNotFoundError" in e or "customer_not_found" in e for e in errors)
    assert any("outcome_unknown" in e for e in errors)
    assert any(r.startswith("httpx ") for r in capture.texts), "httpx records must have been captured"
    assert any(r.startswith("httpcore") for r in capture.texts), "httpcore records must have been captured"
    assert engine.request_count("token") >= 2
    assert_no_canary(capture.texts + errors, [*values.values(), *engine.tokens])


async def test_canaries_never_leak_async(capture):
    values = canaries()
    engine = EchoingEngine(client_id="shop-client", client_secret=values["secret"])
    engine.add_voucher("SAVE5", Decimal("5.00"))
    errors: list[str] = []
    with serve(engine.handle) as server:
        adapter = ChattyAdapter({"base_url": server.url, "client_id": "shop-client",
                                 "client_secret": SecretStr(values["secret"]), "max_attempts": 2,
                                 "backoff_base": 0.01})
        loyalty = AsyncLoyalty(LoyaltySettings(engine="reference", read_deadline=3, write_deadline=3),
                               adapter=adapter, load_entry_points=False)
        try:
            for kind in ("email", "external_id"):
                with pytest.raises(CustomerNotFoundError) as info:
                    await loyalty.identify(**{kind: values[kind]})
                errors += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
            for kind in ("phone", "card"):  # not supported by the engine: refused before sending
                with pytest.raises(NotSupportedError) as info:
                    await loyalty.identify(**{kind: values[kind]})
                errors += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
            engine.inject("identify", Fault(FaultKind.STATUS, status=503, times=10))
            with pytest.raises(LoyaltyError) as info:
                await loyalty.identify(email=values["email"])
            errors += [str(info.value), repr(info.value)]
            errors += [repr(loyalty.adapter), repr(adapter.settings), repr(loyalty.client_config)]
        finally:
            await loyalty.aclose()
    assert any(r.startswith("httpx ") for r in capture.texts)
    assert_no_canary(capture.texts + errors, [*values.values(), *engine.tokens])


class InProcessChatty(EngineAdapter):
    """An in-process engine whose errors name the identifier it was given."""

    name = "inproc"
    in_process = True
    capabilities = Capabilities(identify_by=frozenset({IdentifierKind.CARD, IdentifierKind.EMAIL}))
    log = get_logger("tests.inproc")

    @lazy_flow
    def identify(self, identifier, ctx):
        self.log.info("no member with %s", identifier.value)
        raise CustomerNotFoundError(f"no member with {identifier.kind.value} {identifier.value}")


async def test_canaries_never_leak_from_in_process_engines(capture):
    values = canaries()
    errors = []
    settings = LoyaltySettings(engine="inproc")
    sync = Loyalty(settings, adapter=InProcessChatty(), load_entry_points=False)
    asyn = AsyncLoyalty(settings, adapter=InProcessChatty(), load_entry_points=False)
    for kind in ("card", "email"):
        with pytest.raises(CustomerNotFoundError) as info:
            sync.identify(**{kind: values[kind]})
        errors += [str(info.value), repr(info.value)]
        with pytest.raises(CustomerNotFoundError) as info:
            await asyn.identify(**{kind: values[kind]})
        errors += [str(info.value), repr(info.value)]
    assert len(capture.texts) >= 4
    assert_no_canary(capture.texts + errors, [values["card"], values["email"]])


def test_adapter_settings_errors_do_not_echo_secrets(monkeypatch):
    values = canaries()
    with pytest.raises(ConfigError) as info:
        ReferenceAdapter({"base_url": BASE_URL, "client_id": "shop-client", "client_secrett": values["secret"]})  # typo'd
    assert "client_secrett" in str(info.value), "the error must still name the field"
    with pytest.raises(ConfigError) as info2:
        ReferenceAdapter({"base_url": BASE_URL, "client_id": "shop-client", "client_secret": values["secret"],
                          "max_attempts": values["secret"]})
    assert "max_attempts" in str(info2.value)
    assert_no_canary([str(info.value), repr(info.value), str(info2.value), repr(info2.value)], [values["secret"]])


def test_settings_repr_hides_adapter_secrets():
    values = canaries()
    settings = LoyaltySettings(engines={"reference": {"base_url": BASE_URL, "client_id": "shop-client",
                                                      "client_secret": values["secret"]}})
    assert settings.engine_section("reference")["client_secret"] == values["secret"]  # still usable
    assert_no_canary([repr(settings), str(settings)], [values["secret"]])
    adapter = ReferenceAdapter(settings.engine_section("reference"))
    assert isinstance(adapter.settings.client_secret, SecretStr)
    assert_no_canary([repr(adapter), repr(adapter.settings), str(adapter.settings)], [values["secret"]])


# -- the scrubber itself --------------------------------------------------------------------------


def test_registered_secrets_and_patterns_are_masked():
    secret = "reg-" + secrets.token_hex(8)
    register_secret(secret)
    text = (f"secret {secret} mail a.b@shop.example phone +44 20 7946 0958 card 4111 1111 1111 1111 "
            f"Authorization: Bearer abc.def-ghi token=xyz123 client_secret=hunter22 enc a.b%40shop.example")
    scrubbed = scrub_text(text)
    for leaked in (secret, "a.b@shop.example", "+44 20 7946 0958", "4111 1111 1111 1111", "abc.def-ghi",
                   "xyz123", "hunter22", "a.b%40shop.example"):
        assert leaked not in scrubbed
    assert MASK in scrubbed
    assert "secret" in scrubbed and "mail" in scrubbed  # ordinary words survive


def test_call_values_are_masked_only_inside_the_call():
    value = "MEMBER" + secrets.token_hex(4).upper()
    with scrubbing([value]):
        assert value not in scrub_text(f"x {value} {quote(value)} y")
    assert value in scrub_text(f"x {value} y")


def test_call_values_are_masked_in_their_url_encoded_forms_too():
    value = "MEM BER/" + secrets.token_hex(4).upper() + "+1"
    forms = (quote(value, safe=""), quote_plus(value))
    assert len({value, *forms}) == 3  # three different texts to find
    with scrubbing(iter([value])):  # any iterable of values, read once
        for form in (value, *forms):
            assert scrub_text(f"GET /members/{form}/vouchers") == f"GET /members/{MASK}/vouchers"
    assert all(form in scrub_text(form) for form in forms)  # after the call: nothing registered


def test_basic_auth_header_is_registered():
    auth = BasicAuth("user", SecretStr("pw-" + secrets.token_hex(6)))
    request = auth.apply(httpx.Request("GET", "http://x.test"))
    header = request.headers["Authorization"]
    assert MASK in scrub_text(header)
    assert header.split()[1] not in scrub_text(f"sent {header.split()[1]}")
    assert auth.password.get_secret_value() not in repr(auth)


def test_the_shops_own_httpx_records_pass_untouched_and_kit_calls_are_scrubbed():
    import logging

    import loyaltykit.http  # noqa: F401  attaches the filters to httpx's loggers

    email = "shopper@shop.example"
    logger = logging.getLogger("httpx")

    def filtered():
        record = logger.makeRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: GET %s", (f"/m?e={email}",), None)
        assert logger.filter(record)
        return record

    own = filtered()  # the shop's call: not rendered, not scrubbed, not rewritten
    assert own.args == (f"/m?e={email}",) and email in own.getMessage()
    with scrubbing([]):  # inside a kit call
        ours = filtered()
    assert email not in ours.getMessage() and MASK in ours.getMessage()
