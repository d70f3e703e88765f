"""The reference adapter: settings, auth strategies, the fake's refusals, mapping and errors."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from loyaltykit import (
    ConfigError,
    CustomerNotFoundError,
    EngineError,
    InsufficientBalanceError,
    Loyalty,
    LoyaltySettings,
    MalformedResponseError,
    OutcomeUnknownError,
    VoucherAlreadyRedeemedError,
)
from loyaltykit_reference import transformers as tf
from loyaltykit_reference.adapter import ReferenceAdapter
from loyaltykit_reference.fake import API_KEY, CLIENT_ID, CLIENT_SECRET, make_fake
from loyaltykit_reference.settings import ReferenceSettings

BASE = "https://reference.example"


def facade(fake, **settings):
    adapter = ReferenceAdapter({"base_url": BASE, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **settings})
    return Loyalty(LoyaltySettings(engine="reference", write_deadline=3, read_deadline=3), adapter=adapter,
                   load_entry_points=False, transport=fake.transport())


# -- settings ----------------------------------------------------------------------------------------


def test_settings_come_from_the_environment_with_the_engine_prefix(monkeypatch):
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_BASE_URL", "https://api.example/")
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_AUTH", "api_key")
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_API_KEY", "k-123456")
    monkeypatch.setenv("LOYALTYKIT_REFERENCE_ERROR_CODES", '{"gone": "voucher_not_found"}')
    settings = ReferenceSettings()
    assert settings.base_url == "https://api.example" and settings.auth == "api_key"
    assert "k-123456" not in repr(settings) and settings.error_codes == {"gone": "voucher_not_found"}


@pytest.mark.parametrize(("values", "field"), [
    ({"base_url": "ftp://x"}, "base_url"),
    ({"base_url": BASE, "client_id": "c"}, "client_id and client_secret"),
    ({"base_url": BASE, "auth": "api_key"}, "api_key"),
    ({"base_url": BASE, "api_key": "k", "auth": "api_key", "currency": "EURO"}, "currency"),
    ({"base_url": BASE, "api_key": "k", "auth": "api_key", "error_codes": {"x": "nonsense"}}, "error_codes"),
    ({"base_url": BASE, "api_key": "k", "auth": "api_key", "max_attempts": 0}, "max_attempts"),
    ({"base_url": BASE, "api_key": "k", "auth": "api_key", "backoff_base": 0}, "backoff_base"),
])
def test_invalid_settings_name_the_field_and_not_the_value(values, field):
    with pytest.raises(ConfigError) as info:
        ReferenceAdapter(values)
    assert field in info.value.message
    assert "nonsense" not in info.value.message or field == "error_codes"


# -- auth strategies, end to end on the fake ------------------------------------------------------------


def test_oauth2_and_api_key_both_reach_the_engine():
    fake = make_fake("demo")
    with facade(fake) as shop:
        assert shop.identify(email="ann@example.com").id == "m1"
    assert fake.request_count("token") == 1
    with facade(make_fake("demo"), auth="api_key", api_key=API_KEY, client_id=None, client_secret=None) as shop:
        assert shop.identify(external_id="ext-1").id == "m1"


def test_the_retry_settings_shape_the_runners_policy():
    adapter = ReferenceAdapter({"base_url": BASE, "auth": "api_key", "api_key": "k-123456", "max_attempts": 2,
                                "backoff_base": 0.05})
    retry = adapter.client_config().retry
    assert (retry.max_attempts, retry.backoff_base, retry.backoff_max) == (2, 0.05, 1.0)
    assert ReferenceAdapter({"base_url": BASE, "auth": "api_key", "api_key": "k-123456"}).client_config().retry.max_attempts == 4


def test_the_fake_accepts_only_the_credentials_it_was_given():
    """README § Authentication: an unknown client gets no token; an unknown API key is refused."""
    from loyaltykit import AuthFailedError
    from loyaltykit_reference.fake import ReferenceEngine

    fake = ReferenceEngine(client_id="shop-client", client_secret="shop-secret-1234", api_key="shop-key-5678")
    fake.add_member("m1", {"email": "ann@example.com"})
    with facade(fake) as shop, pytest.raises(AuthFailedError):  # the demo client
        shop.identify(email="ann@example.com")
    with facade(fake, auth="api_key", api_key=API_KEY) as shop, pytest.raises(AuthFailedError):
        shop.identify(email="ann@example.com")
    with facade(fake, client_id="shop-client", client_secret="shop-secret-1234") as shop:
        assert shop.identify(email="ann@example.com").id == "m1"
    with facade(fake, auth="api_key", api_key="shop-key-5678") as shop:
        assert shop.identify(email="ann@example.com").id == "m1"
    assert fake.request_count("token") == 2  # the refused client and the accepted one


def test_a_wrong_api_key_is_auth_failed():
    from loyaltykit import AuthFailedError

    with facade(make_fake("demo"), auth="api_key", api_key="wrong-key-0000") as shop, pytest.raises(AuthFailedError):
        shop.identify(email="ann@example.com")


# -- the fake refuses what the engine refuses (README § Authentication, § Endpoints) ------------------------


def test_the_fake_refuses_bad_token_requests_and_unauthenticated_calls():
    fake = make_fake("demo")
    client = httpx.Client(transport=fake.transport(), base_url=BASE)
    assert client.post("/oauth/token", data={"grant_type": "password"}).status_code == 400
    assert client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                             "client_secret": "nope"}).status_code == 401
    refused = client.get("/members", params={"email": "ann@example.com"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"


def test_the_fake_refuses_malformed_requests():
    fake = make_fake("demo")
    client = httpx.Client(transport=fake.transport(), base_url=BASE, headers={"X-Api-Key": API_KEY})
    assert client.get("/members", params={"email": "a@x", "external_id": "e"}).json()["error"]["code"] == "invalid_request"
    assert client.post("/redemptions", json={"code": "WELCOME5"}).json()["error"]["code"] == "invalid_request"
    spent = client.post("/spends", json={"customer_id": "m2", "amount": 100, "reference": "r"}).json()
    assert spent["error"]["code"] == "insufficient_balance"


def test_the_fake_spends_twice_for_a_repeated_reference_as_documented():
    fake = make_fake("demo")
    client = httpx.Client(transport=fake.transport(), base_url=BASE, headers={"X-Api-Key": API_KEY})
    for _ in range(2):
        client.post("/spends", json={"customer_id": "m1", "amount": 1, "reference": "same"})
    assert len(client.get("/spends", params={"reference": "same"}).json()["spends"]) == 2


def test_unknown_seed_is_refused():
    with pytest.raises(ValueError, match="unknown seed"):
        make_fake("lots")


# -- mapping and errors -------------------------------------------------------------------------------------


def answer(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body)


@pytest.mark.parametrize(("body", "status", "error"), [
    (b'{"ok": false, "error": {"code": "voucher_used", "message": "used"}}', 200, VoucherAlreadyRedeemedError),
    (b'{"ok": false, "error": {"code": "member_not_found"}}', 404, CustomerNotFoundError),
    (b'{"ok": false, "error": {"code": "insufficient_balance"}}', 422, InsufficientBalanceError),
    (b'{"ok": false, "error": {"code": "processing"}}', 200, OutcomeUnknownError),
    (b'{"ok": false, "error": {"code": "member_not_found_in_archive"}}', 400, EngineError),
    (b'{"ok": false}', 400, EngineError),
])
def test_refusals_are_classified_by_the_documented_table(body, status, error):
    with pytest.raises(error) as info:
        tf.checked(answer(body, status), tf.error_table(), operation="redeem_voucher")
    assert type(info.value) is error and info.value.engine == "reference"


def test_a_setting_extends_the_table():
    table = tf.error_table({"member_not_found_in_archive": "customer_not_found"})
    with pytest.raises(CustomerNotFoundError):
        tf.checked(answer(b'{"ok": false, "error": {"code": "member_not_found_in_archive"}}', 400), table,
                   operation="identify")


def test_malformed_answers_name_the_path():
    with pytest.raises(MalformedResponseError) as info:
        tf.customer_from_member({"ok": True, "member": {"id": "m1", "points": "x", "cashback": 1}}, "EUR")
    assert info.value.field == "member.points"
    with pytest.raises(MalformedResponseError) as info:
        tf.checked(answer(b'{"members": []}'), tf.error_table(), operation="identify")
    assert info.value.field == "ok"


def test_code_results_carry_kit_reasons():
    from loyaltykit import Basket

    basket = Basket.model_validate({"id": "b", "currency": "EUR", "coupon_codes": ["A", "B", "C"], "lines": [
        {"id": "l1", "sku": "S", "quantity": 1, "unit_price": {"amount": "10", "currency": "EUR"}}]})
    body = {"ok": True, "discounts": [], "codes": [
        {"code": "A", "error": "voucher_used"}, {"code": "B", "error": "something_new"}, {"code": "C", "error": None}]}
    codes = tf.evaluation(body, basket, tf.error_table()).codes
    assert [(c.code, c.status.value, c.reason) for c in codes] == [
        ("A", "rejected", "voucher_already_redeemed"), ("B", "rejected", "voucher_invalid"), ("C", "accepted", None)]


def test_a_spend_after_a_lost_answer_returns_what_the_engine_recorded():
    from loyaltykit.testing import Fault, FaultKind

    fake = make_fake("demo")
    fake.inject("spend", Fault(FaultKind.TIMEOUT_AFTER))
    with facade(fake) as shop:
        result = shop.spend_cashback({"customer_id": "m1", "order_ref": "o1", "kind": "cashback",
                                      "amount": {"amount": "2.50", "currency": "EUR"}})
    assert result.receipt.replayed and result.amount.amount == Decimal("2.50")
    assert len(fake.spends) == 1 and fake.request_count("lookup") == 2  # before, and after the loss
