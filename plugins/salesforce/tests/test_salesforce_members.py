"""Statement and wallet on Salesforce: the Transaction Ledger Summary (reference § 5d) as statement
entries, paged across the engine's 200-journal pages; the Member Vouchers list as the wallet."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from loyaltykit import BalanceKind, InvalidRequestError, MalformedResponseError, Money
from loyaltykit.members import StatementEntryKind, StatementQuery
from loyaltykit_salesforce import transformers as tf
from loyaltykit_salesforce.settings import SalesforceSettings

# The documented example (connect_responses_transaction_ledgers_output), plus a qualifying currency
# and the SDK mock's key for the attribute list and a numeric changeInPoints.
LEDGER = """{"message":null,"status":true,"transactionJournalCount":2,"externalTransactionNumber":"X",
 "transactionJournals":[
  {"activityDate":"2023-01-01T08:00:00.000Z","additionalAttributes":[{"fieldName":"Destination","value":"Jaipur"}],
   "journalTypeName":"Accrual","journalSubTypeName":"Member Enrollment",
   "pointsChange":[{"changeInPoints":"-100.0","loyaltyMemberCurrency":"Reward Points"},
                   {"changeInPoints":"-100.0","loyaltyMemberCurrency":"Tier Qualifying Points"}],
   "transactionJournalId":"0lV1","transactionJournalNumber":"00000035"},
  {"activityDate":"2023-02-01T08:00:00.000Z",
   "additionalTransactionJournalAttributes":[{"fieldName":"Order_Reference__c","value":"ORD-9"}],
   "journalTypeName":"Redemption","journalSubTypeName":"Redeem Points",
   "pointsChange":[{"changeInPoints":-40,"loyaltyMemberCurrency":"Reward Points"},
                   {"changeInPoints":-2.5,"loyaltyMemberCurrency":"Cashback"}],
   "transactionJournalId":"0lV2","transactionJournalNumber":"00000036"}]}"""


def settings(**overrides) -> SalesforceSettings:
    base = {"my_domain_url": "https://acme.my.salesforce.com", "client_id": "id", "client_secret": "s3cret-value",
            "program_name": "NTO Insider", "order_ref_field": "Order_Reference__c", "cashback_currency": "Cashback",
            "cashback_iso_currency": "EUR"}
    return SalesforceSettings(**{**base, **overrides})


def body(text: str):
    return tf.parse_json(httpx.Response(200, content=text.encode(), headers={"Content-Type": "application/json"}))


def test_ledger_page_to_statement_entries():
    entries, journals = tf.statement_entries(body(LEDGER), settings())
    assert journals == 2
    assert [(e.id, e.kind, e.balance) for e in entries] == [
        ("0lV2:Reward Points", StatementEntryKind.SPEND, BalanceKind.POINTS),
        ("0lV2:Cashback", StatementEntryKind.SPEND, BalanceKind.CASHBACK),
        ("0lV1:Reward Points", StatementEntryKind.REVERSE, BalanceKind.POINTS),  # a negative accrual
    ]
    assert entries[0].points == Decimal(-40) and entries[0].order_ref == "ORD-9" and entries[0].label == "Redeem Points"
    assert entries[1].money == Money.of("-2.50", "EUR")
    assert entries[2].order_ref is None  # Destination is not the order field


def test_named_points_currency_and_broken_answers():
    entries, _ = tf.statement_entries(body(LEDGER), settings(points_currency="Tier Qualifying Points"))
    assert [e.id for e in entries if e.balance is BalanceKind.POINTS] == ["0lV1:Tier Qualifying Points"]
    with pytest.raises(MalformedResponseError):
        tf.statement_entries({"status": True}, settings())
    with pytest.raises(MalformedResponseError):
        tf.statement_entries({"transactionJournals": [{"transactionJournalId": "0lV3"}]}, settings())


def test_ledger_query_names_the_page_period_and_order_field():
    from datetime import UTC, datetime

    params = tf.ledger_params(settings(), 3, datetime(2025, 1, 1, tzinfo=UTC), None)
    assert params["pageNumber"] == 3 and params["periodStartDate"].startswith("2025-01-01")
    assert params["additionalTransactionJournalAttributes"] == "Order_Reference__c"
    assert "pageNumber" not in tf.ledger_params(settings(order_ref_field=None), 1, None, None)


def test_statement_pages_across_engine_pages(shop, harness):
    member = harness.create_customer(identifiers={"membership": "M-PAGES"}, points=Decimal(500)).id
    for index in range(203):  # more than one engine page of 200 journals
        harness.fake._record({"ExternalTransactionNumber": f"j{index}", "ActivityDate": "2025-01-01T00:00:00Z"},
                             harness.fake.members[member], "Redemption", "Processed", {"Points": Decimal(-1)})
    seen, cursor, calls = [], None, 0
    while True:
        page = shop.statement(StatementQuery(customer_id=member, page_size=150, cursor=cursor))
        seen.extend(e.id for e in page.entries)
        calls += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) >= 203 and len(seen) == len(set(seen)), (len(seen), len(set(seen)))
    assert calls == 3  # 150 + 50 of engine page 1, then the rest of page 2
    with pytest.raises(InvalidRequestError):
        shop.statement(StatementQuery(customer_id="M-OTHER", cursor=cursor or page.next_cursor or "eyJ4IjoxfQ"))


# -- enrolment (reference § 2c) ---------------------------------------------------------------------


def test_enrollment_body_carries_the_required_fields():
    from datetime import UTC, datetime

    from loyaltykit.members import Enrolment

    enrolment = Enrolment(external_id="shop-1", email="Ann@Example.com", first_name="Ann", last_name="Lee",
                          consents=({"purpose": "marketing_email", "granted": True},), profile={"Tier__c": "x"})
    body = tf.enrollment_body(enrolment, settings(), datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert body["membershipNumber"] == "shop-1" and body["enrollmentDate"] == "2025-01-02T03:04:05Z"
    assert body["associatedContactDetails"] == {"lastName": "Lee", "allowDuplicateRecords": False,
                                                "firstName": "Ann", "email": "ann@example.com"}
    assert body["memberStatus"] == "Active" and body["canReceivePromotions"] is True
    assert body["additionalMemberFieldValues"] == {"attributes": {"Tier__c": "x"}}
    assert tf.enrollment_path(settings()).endswith("/loyalty-programs/NTO%20Insider/individual-member-enrollments")


def test_fake_refuses_an_enrolment_without_its_required_fields(harness):
    from loyaltykit_salesforce.testing import BASE_URL

    client = httpx.Client(transport=harness.sync_transport(), base_url=BASE_URL)
    token = client.post("/services/oauth2/token", data={"grant_type": "client_credentials", "client_id": "fake-consumer-key",
                                                        "client_secret": "fake-consumer-secret"}).json()["access_token"]
    path = "/services/data/v65.0/loyalty-programs/NTO%20Insider/individual-member-enrollments"
    good = {"enrollmentDate": "2025-01-01T00:00:00Z", "membershipNumber": "N1", "memberStatus": "Active",
            "associatedContactDetails": {"lastName": "Lee", "email": "a@b.co"}, "additionalMemberFieldValues": {}}
    headers = {"Authorization": f"Bearer {token}"}
    for missing in ("enrollmentDate", "membershipNumber", "memberStatus"):
        partial = {k: v for k, v in good.items() if k != missing}
        assert client.post(path, json=partial, headers=headers).status_code == 400, missing
    no_last_name = {**good, "associatedContactDetails": {"email": "a@b.co"}}
    assert client.post(path, json=no_last_name, headers=headers).status_code == 400
    created = client.post(path, json=good, headers=headers)
    assert created.status_code == 201 and created.json()["membershipNumber"] == "N1"
    assert client.post(path, json=good, headers=headers).status_code == 400  # the number is taken
    client.close()


def test_enrolment_without_a_last_name_is_refused_before_any_call(shop, harness):
    from loyaltykit.members import Enrolment

    before = harness.request_count()
    with pytest.raises(InvalidRequestError) as info:
        shop.enrol_member(Enrolment(external_id="shop-9", email="x@example.com"))
    assert info.value.field == "enrolment.last_name"
    assert harness.request_count() == before
