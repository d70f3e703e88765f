"""The fake speaks the documented wire format and refuses what the documentation says CRM.COM refuses
(each case cites crmcom.md §). Driven over HTTP with plain httpx, never through the adapter."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import httpx
import pytest
from loyaltykit_crmcom.fake import CrmcomFake

from loyaltykit import wire

KEY = "0123456789ABCDEF0123456789ABCDEF"
BASE = "https://crm.fake.example/crmapi/rest/v2/"
CARD = "7700000000001234"


class Wire:
    def __init__(self) -> None:
        self.fake = CrmcomFake(web_api_keys=(KEY,))
        self.client = httpx.Client(transport=self.fake.transport())
        self.fake.add_account(CARD, Decimal("20.00"))
        self.token = self.login()

    def login(self, colon: bool = True) -> str:
        raw = (KEY + (":" if colon else "")).encode()
        answer = self.post("authentication/web_api_key/token", {}, token=False,
                           headers={"Authorization": "Basic " + base64.b64encode(raw).decode()})
        return answer["data"]["token"]

    def post(self, action: str, body: dict[str, Any], *, token: bool = True, **kwargs: Any) -> dict[str, Any]:
        if token:
            body = {"token": self.token, **body}
        response = self.client.post(BASE + action, content=wire.dumps(body), **kwargs)
        return wire.loads(response.content)


def refused(answer: dict[str, Any], fragment: str) -> bool:
    return answer["status"]["code"] != "OK" and fragment.lower() in answer["status"]["message"].lower()


def purchase(**overrides: Any) -> dict[str, Any]:
    body = {
        "accounts_receivable_identifier": {"access_token_identifier": {"authentication_code": CARD}},
        "performed_by_unit_identifier": {"id": "U1"},
        "performed_on": "2026-11-29T10:00:00",
        "reference_number": "R-1",
        "products_set": [{"product_identifier": {"code": "SKU-A"}, "quantity": 1, "net_amount": Decimal("40.00"),
                          "vat_amount": Decimal("10.00"), "total_amount": Decimal("50.00")}],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def api() -> Wire:
    return Wire()


def test_web_api_key_is_the_basic_user_name_with_or_without_the_colon(api):
    # §2.2: Basic auth with the key as user name; public PHP clients drop the trailing colon.
    assert api.login(colon=True) and api.login(colon=False)
    answer = api.post("authentication/web_api_key/token", {}, token=False,
                      headers={"Authorization": "Basic " + base64.b64encode(b"WRONG:").decode()})
    assert refused(answer, "web api key")


def test_a_request_without_a_live_token_is_refused(api):
    # §2.2: the token travels in every body; an expired or released one no longer works.
    assert refused(api.post("wallets/get_balance", {"accounts_receivable_identifier": {}}, token=False), "token")
    api.fake.expire_tokens()
    assert refused(api.post("access_tokens/show", {"access_token_identifier": {"authentication_code": CARD}}),
                   "invalid token")


def test_released_token_is_dead(api):
    # §2.2: authentication/token/release invalidates the token.
    api.post("authentication/token/release", {})
    assert refused(api.post("access_tokens/show", {"access_token_identifier": {"authentication_code": CARD}}),
                   "token")


@pytest.mark.parametrize("missing", ["performed_on", "reference_number", "performed_by_unit_identifier",
                                     "accounts_receivable_identifier"])
def test_purchase_create_requires_documented_fields(api, missing):
    # §2.5: performed_on mandatory; reference_number mandatory (later revisions); the unit before R17;
    # the accounts receivable (or participant) identifier.
    answer = api.post("customer_events/purchases/create", purchase(**{missing: None}))
    assert refused(answer, "mandatory")
    assert api.fake.purchases == []


@pytest.mark.parametrize("amount", ["net_amount", "vat_amount", "total_amount"])
def test_purchase_lines_require_net_vat_and_total(api, amount):
    # §2.5 [ATL:x/-4YO]: net_amount, vat_amount and total_amount are mandatory per line.
    line = dict(purchase()["products_set"][0])
    del line[amount]
    assert refused(api.post("customer_events/purchases/create", purchase(products_set=[line])), amount)


def test_unknown_product_is_booked_on_the_default_product(api):
    # §1 [ATL:499844, MOCK]; R14 intended_product_value [ATL:952096].
    data = api.post("customer_events/purchases/create", purchase())["data"]
    (line,) = data["products_set"]
    assert line["product"]["code"] == "DEFAULT_PRODUCT" and line["intended_product_value"] == "SKU-A"


def test_duplicate_reference_is_a_conflict(api):
    # §5: UNCONFIRMED; the reference recommends a fake that refuses it.
    assert api.post("customer_events/purchases/create", purchase())["status"]["code"] == "OK"
    assert refused(api.post("customer_events/purchases/create", purchase()), "already exists")
    assert len(api.fake.purchases) == 1


def test_spend_needs_the_purchase_it_settles_and_the_balance(api):
    # §2.6: purchase_customer_request_identifier mandatory; the wallet must cover the spend.
    created = api.post("customer_events/purchases/create", purchase())["data"]
    spend = {"accounts_receivable_identifier": {"access_token_identifier": {"authentication_code": CARD}},
             "performed_by_unit_identifier": {"id": "U1"}, "performed_on": "2026-11-29T10:00:00"}
    assert refused(api.post("customer_events/spend_requests/create", spend), "purchase_customer_request_identifier")
    spend["purchase_customer_request_identifier"] = {"id": created["id"]}
    assert refused(api.post("customer_events/spend_requests/create", {**spend, "spend_amount": Decimal("25")}),
                   "wallet balance")
    ok = api.post("customer_events/spend_requests/create", {**spend, "spend_amount": Decimal("5")})
    assert ok["data"]["life_cycle_state"] == "POSTED" and ok["data"]["type"] == "SPEND REQUEST"
    assert api.fake.account_of(CARD).balance == Decimal("15.00")


def test_cancel_only_posted_events(api):
    # §2.6 [ATL:491359, ATL:490417]: cancel works on POSTED events; a cancelled spend is CANCELLED.
    created = api.post("customer_events/purchases/create", purchase())["data"]
    spend = api.post("customer_events/spend_requests/create", {
        "accounts_receivable_identifier": {"access_token_identifier": {"authentication_code": CARD}},
        "performed_by_unit_identifier": {"id": "U1"}, "performed_on": "2026-11-29T10:00:00",
        "purchase_customer_request_identifier": {"number": created["number"]}, "spend_amount": Decimal("5")})["data"]
    cancel = {"customer_event_identifier": {"number": spend["number"]}}
    assert api.post("customer_events/spend_requests/cancel", cancel)["data"]["life_cycle_state"] == "CANCELLED"
    assert refused(api.post("customer_events/spend_requests/cancel", cancel), "not posted")
    assert api.fake.account_of(CARD).balance == Decimal("20.00")


def test_product_sync_takes_at_most_1000_and_needs_codes(api):
    # §2.9 [ATL:495111, ATL:513419]: at most 1000 products per call; code mandatory.
    many = [{"code": f"P{i}"} for i in range(1001)]
    assert refused(api.post("products/synchronise", {"products_set": many}), "1000")
    assert refused(api.post("products/synchronise", {"products_set": [{"description": "x"}]}), "code is mandatory")
    assert api.post("products/synchronise", {"products_set": many[:1000]})["status"]["code"] == "OK"
    assert len(api.fake.products) == 1000


def test_list_pages_hold_at_most_50(api):
    # §2.1 [ATL:499839]: number_of_results at most 50.
    assert refused(api.post("customer_events/purchases/list", {"number_of_results": 51}), "between 1 and 50")


def test_bad_date_is_refused(api):
    assert refused(api.post("customer_events/purchases/create", purchase(performed_on="29/11/2026")), "date")


def test_create_spend_creates_both_or_neither(api):
    # §2.6 [ATL:519072, ATL:490508]: purchases/create_spend (R9-R16) creates the purchase and its
    # spend request together; if either fails, neither is created.
    assert refused(api.post("customer_events/purchases/create_spend", purchase(spend_amount=Decimal("25"))),
                   "wallet balance")
    assert api.fake.purchases == [] and api.fake.account_of(CARD).balance == Decimal("20.00")
    ok = api.post("customer_events/purchases/create_spend", purchase(spend_amount=Decimal("5")))
    assert ok["status"]["code"] == "OK" and ok["data"]["total_spend_amount"] == Decimal("5")
    assert api.fake.account_of(CARD).balance == Decimal("15.00")
    # mandatory purchase fields still apply (§2.5)
    assert refused(api.post("customer_events/purchases/create_spend",
                            purchase(reference_number=None, spend_amount=Decimal("1"))), "reference_number")


def test_create_spend_exists_from_r9_only():
    from loyaltykit_crmcom.fake import FakeSettings

    api = Wire()
    api.fake.settings = FakeSettings(release=8)
    assert refused(api.post("customer_events/purchases/create_spend", purchase(spend_amount=Decimal("5"))),
                   "not available")


def test_the_spend_inside_purchase_create_exists_from_r17():
    # §2.6 [ATL:490411]: from R17 purchases/create spends; before it the parameter is unknown.
    from loyaltykit_crmcom.fake import FakeSettings

    for release, spent, balance in ((16, Decimal(0), Decimal("20.00")), (17, Decimal("5"), Decimal("15.00"))):
        api = Wire()
        api.fake.settings = FakeSettings(release=release)
        answer = api.post("customer_events/purchases/create", purchase(spend_request={"amount": Decimal("5")}))
        assert answer["data"]["total_spend_amount"] == spent
        assert api.fake.account_of(CARD).balance == balance
        assert api.fake.requests[-1].route == ("spend" if release >= 17 else "export")


def test_cancel_gives_back_a_spend_made_with_the_purchase(api):
    # §2.6: what purchases/cancel reverses is UNCONFIRMED; the fake's setting (default: yes).
    created = api.post("customer_events/purchases/create_spend", purchase(spend_amount=Decimal("5")))["data"]
    answer = api.post("customer_events/purchases/cancel", {"customer_event_identifier": {"id": created["id"]}})
    assert answer["data"]["life_cycle_state"] == "CANCELLED"
    assert api.fake.account_of(CARD).balance == Decimal("20.00")
