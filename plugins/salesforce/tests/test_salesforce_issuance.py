"""Issuing a voucher on Salesforce: the issue-voucher program process as the fake serves it (reference
4c, 6a; refusals as § 8 and 6a say), the process body, and the adapter over the fake (codes derived from
the key, a replay and a lost answer issue once, an unknown definition names the field)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from loyaltykit import CustomerNotFoundError, InvalidRequestError, Money
from loyaltykit.members import VoucherIssue, WalletQuery
from loyaltykit.testing import Fault, FaultKind, OfferSpec
from loyaltykit_salesforce import transformers as tf
from loyaltykit_salesforce.fake import FakeVoucherDefinition, SalesforceFake
from loyaltykit_salesforce.settings import SalesforceSettings

BASE = "https://org.my.salesforce.com"
ISSUE = "/services/data/v65.0/connect/loyalty/programs/NTO%20Insider/program-processes/Issue%20Voucher"


@pytest.fixture
def org():
    fake = SalesforceFake(program="NTO Insider")
    fake.add_member(membership_number="M1")
    fake.add_definition(FakeVoucherDefinition(name="Birthday", type="FixedValue", face_value=Decimal(10)))
    fake.add_definition(FakeVoucherDefinition(name="Tenth", type="DiscountPercentage", percent=Decimal(10)))
    client = httpx.Client(base_url=BASE, transport=fake.transport())
    token = client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": fake.client_id, "client_secret": fake.client_secret,
    }).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    yield fake, client
    client.close()


def issue(client, **inputs):
    return client.post(ISSUE, json={"processParameters": [inputs]})


def test_fake_issue_process_needs_a_member_and_a_definition(org):
    fake, client = org
    # § 8: bad input is a 400 JSON array; the member and the definition are the process's inputs (6a, 4c)
    for inputs in ({"VoucherDefinition": "Birthday"}, {"MembershipNumber": "M1"}):
        answer = issue(client, **inputs)
        assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_INPUT"
    assert client.post(ISSUE, json={"processParameters": []}).status_code == 400
    # § 6a: a process refusal is HTTP 200 with status false and a message
    unknown_member = issue(client, MembershipNumber="M9", VoucherDefinition="Birthday")
    assert unknown_member.status_code == 200 and unknown_member.json()["status"] is False
    unknown_definition = issue(client, MembershipNumber="M1", VoucherDefinition="Nothing").json()
    assert unknown_definition["status"] is False and "voucher definition" in unknown_definition["message"]
    percent_with_value = issue(client, MembershipNumber="M1", VoucherDefinition="Tenth", VoucherFaceValue=5).json()
    assert percent_with_value["status"] is False
    assert fake.vouchers == []  # nothing was issued by a refusal


def test_fake_issue_process_issues_the_definition_with_the_code_value_and_expiry_sent(org):
    fake, client = org
    answer = issue(client, MemberId=fake.members["M1"].id, VoucherDefinition="Birthday", VoucherCode="BDAY1",
                   VoucherFaceValue=25, VoucherExpirationDate="2031-01-31").json()
    assert answer["status"] is True  # the interchangeable MemberId names the member too (§ 0)
    result = answer["outputParameters"]["outputParameters"]["results"][0]
    listed = client.get("/services/data/v65.0/loyalty/programs/NTO%20Insider/members/M1/vouchers").json()["vouchers"]
    assert [v["voucherId"] for v in listed] == [result["VoucherId"]]
    assert listed[0]["voucherCode"] == "BDAY1" and listed[0]["faceValue"] == 25
    assert listed[0]["expirationDate"] == "2031-01-31" and listed[0]["status"] == "Issued"
    # codes may repeat in Salesforce (4b: voucherNumber tells vouchers sharing a code apart)
    assert issue(client, MembershipNumber="M1", VoucherDefinition="Birthday", VoucherCode="BDAY1").json()["status"]


def test_issue_body_and_codes_from_the_key():
    settings = SalesforceSettings(my_domain_url=BASE, client_id="c", client_secret="s", program_name="NTO Insider")
    codes = tf.issued_codes(settings, "bday-m1-2026", 3)
    assert codes == tf.issued_codes(settings, "bday-m1-2026", 3) and len(set(codes)) == 3
    assert codes[0] != tf.issued_codes(settings, "bday-m1-2027", 1)[0] and all(c.startswith("LK") for c in codes)
    request = VoucherIssue(customer_id="M1", definition_id="Birthday", idempotency_key="k",
                           face_value=Money.of("25.00", "EUR"), expires_at=datetime(2031, 1, 31, 23, tzinfo=UTC))
    assert tf.issue_process_body(settings, request, "LKX01") == {"processParameters": [{
        "MembershipNumber": "M1", "VoucherDefinition": "Birthday", "VoucherCode": "LKX01",
        "VoucherFaceValue": Decimal("25.00"), "VoucherExpirationDate": "2031-01-31"}]}


def _definition(harness) -> str:
    return harness.define_issuable(OfferSpec(kind="fixed_off_check", amount=Money.of("10.00", "EUR"), label="Ten"))


def test_issue_once_per_key_with_overrides(shop, harness):
    member = harness.create_customer(identifiers={"membership": "M-ISSUE"}).id
    expiry = datetime.now(UTC) + timedelta(days=40)
    request = VoucherIssue(customer_id=member, definition_id=_definition(harness), idempotency_key="bday-2026",
                           quantity=2, face_value=Money.of("25.00", "EUR"), expires_at=expiry)
    first = shop.issue_voucher(request)
    assert first.created and [v.code for v in first.vouchers] == tf.issued_codes(
        harness.make_adapter().settings, "bday-2026", 2)
    assert all(v.amount == Money.of("25.00", "EUR") for v in first.vouchers)
    assert {v.expiration for v in harness.fake.vouchers} == {expiry.date()}
    posts = harness.fake.request_count("issue")
    again = shop.issue_voucher(request)
    assert not again.created and again.vouchers == first.vouchers
    assert harness.fake.request_count("issue") == posts and len(harness.fake.vouchers) == 2
    assert {o.id for o in shop.wallet(WalletQuery(customer_id=member, currency="EUR")).offers} == {
        v.id for v in first.vouchers}


def test_a_lost_answer_is_looked_up_before_sending_again(shop, harness):
    member = harness.create_customer(identifiers={"membership": "M-LOST"}).id
    harness.inject("issue", Fault(FaultKind.TIMEOUT_AFTER))
    request = VoucherIssue(customer_id=member, definition_id=_definition(harness), idempotency_key="lost-1")
    result = shop.issue_voucher(request)
    assert result.created and len(harness.fake.vouchers) == 1
    assert harness.fake.request_count("issue") == 1  # found after the loss: not sent again


def test_unknown_definition_and_member(shop, harness):
    member = harness.create_customer(identifiers={"membership": "M-UNK"}).id
    with pytest.raises(InvalidRequestError) as info:
        shop.issue_voucher(VoucherIssue(customer_id=member, definition_id="Nothing", idempotency_key="u-1"))
    assert info.value.field == "issue.definition_id"
    with pytest.raises(CustomerNotFoundError):
        shop.issue_voucher(VoucherIssue(customer_id="M-NOBODY", definition_id=_definition(harness),
                                        idempotency_key="u-2"))
    assert harness.fake.vouchers == []  # nothing issued
