"""Transformers against the example bodies documented in the public reference, verbatim."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from loyaltykit import (
    AuthFailedError,
    Basket,
    CashbackSpend,
    CodeStatus,
    CustomerNotFoundError,
    DiscountTarget,
    EngineError,
    InsufficientBalanceError,
    Line,
    MalformedResponseError,
    Money,
    Order,
    VoucherAlreadyRedeemedError,
    VoucherNotFoundError,
    wire,
)
from loyaltykit.errors import ERROR_CODES, RateLimitedError, VoucherError as VoucherInvalidError, VoucherExpiredError
from loyaltykit_salesforce import transformers as tf
from loyaltykit_salesforce.settings import DEFAULT_ERROR_PATTERNS, SalesforceSettings

# -- documented bodies (reference sections in comments) -----------------------------------------

TOKEN = """{"access_token":"00DS...!AR8AQ...","signature":"nUFH...=","token_format":"opaque",
   "instance_url":"https://instance_name.my.salesforce.com",
   "id":"https://login.salesforce.com/id/00Dd.../005d...","token_type":"Bearer",
   "issued_at":"1700000000000","scope":"api","api_instance_url":"https://api.salesforce.com"}"""  # 1a

PROFILE = """{ "additionalLoyaltyProgramMemberFields": {},
  "associatedAccount": null,
  "associatedContact": {"contactId":"003J8000002Yu0ZIAS","email":"ab@email.com","firstName":"Name1","lastName":"Name2"},
  "canReceivePartnerPromotions": true, "canReceivePromotions": true,
  "enrollmentChannel": "Email", "enrollmentDate": "2021-01-01T00:00:00.000Z",
  "groupCreatedByMember": null, "groupName": null, "lastActivityDate": null,
  "loyaltyProgramMemberId": "0lMJ8000000CaRMMA0", "loyaltyProgramName": "NTO Insider",
  "memberCurrencies": [ {
      "additionalLoyaltyMemberCurrencyFields": {"Level_Before_Reset__c": null},
      "escrowPointsBalance": 0, "expirablePoints": 0,
      "lastAccrualProcessedDate": null, "lastEscrowProcessedDate": null,
      "lastExpirationProcessRunDate": null, "lastPointsAggregationDate": null, "lastPointsResetDate": null,
      "loyaltyMemberCurrencyName": "NTO Qualifying Points",
      "loyaltyProgramCurrencyId": "0lcJ8000000CaR7IAK", "loyaltyProgramCurrencyName": null,
      "memberCurrencyId": "0lzJ8000000CaRMIA0",
      "nextQualifyingPointsResetDate": "2024-12-31T00:00:00.000Z",
      "pointsBalance": 0, "qualifyingPointsBalanceBeforeReset": 0,
      "totalEscrowPointsAccrued": 0, "totalEscrowRolloverPoints": 0,
      "totalPointsAccrued": 0, "totalPointsExpired": 0, "totalPointsRedeemed": 0 } ],
  "memberStatus": "Active",
  "memberTiers": [ {
      "additionalLoyaltyMemberTierFields": {}, "areTierBenefitsAssigned": false,
      "loyaltyMemberTierId": "0lyJ8000000CaRMIA0", "loyaltyMemberTierName": "Bronze",
      "tierChangeReason": null, "tierChangeReasonType": null,
      "tierEffectiveDate": "2021-01-01T00:00:00.000Z", "tierExpirationDate": null,
      "tierGroupId": "0ltJ8000000CaR8IAK", "tierGroupName": null,
      "tierId": "0lgJ80000008OI5IAM", "tierSequenceNumber": 10 } ],
  "memberType": "Individual", "membershipEndDate": "2022-01-01T00:00:00.000Z",
  "membershipLastRenewalDate": null, "membershipNumber": "Member1", "referredBy": null,
  "relatedCorporateMembershipNumber": null,
  "transactionJournalStatementFrequency": "Monthly",
  "transactionJournalStatementLastGeneratedDate": null,
  "transactionJournalStatementMethod": "Mail" }"""  # 2a

VOUCHERS = """{"voucherCount": 6,
 "vouchers": [{"effectiveDate":"2020-11-01","effectiveDateTime":"2020-11-01T07:47:44.000Z",
   "expirationDate":"2021-11-01","expirationDateTime":"2021-11-01T07:33:00.000Z",
   "faceValue":100,"isVoucherDefinitionActive":true,"isVoucherPartiallyRedeemable":false,
   "hasTimeBasedVoucherPeriod":true,"redeemedValue":0,"remainingValue":100,
   "status":"Expired","type":"FixedValue","voucherCode":"J4XN26MT","voucherDefinition":"Ajio",
   "voucherId":"0kDT1000000TUwsMAG","voucherNumber":"00005852"}]}"""  # 4a

REDEEM_OUTPUTS = [  # 4b
    ('{"remainingAmount": 98.32, "status": "Redeemed", "currencyIsoCode": "EUR"}', "Redeemed"),
    ('{"reservationKey": "key1", "reservedValue": 16.34, "status": "Reserved", "currencyIsoCode": "EUR"}', "Reserved"),
    ('{"remainingAmount": 98.32, "status": "Issued"}', "Issued"),
    ('{"status": "Expired"}', "Expired"),
    ('{"currencyIsoCode":"EUR","remainingAmount":3.5}', None),  # before v62 (PM recording)
]

REALTIME = """{"message": null,
 "processResult": {
   "memberPointsBalance": [{"memberCurrencies":[
        {"currencyName":"Tier Coins","currencyType":"Qualifying","escrowPointsBalance":0.0,"pointsBalance":350.0},
        {"currencyName":"Coins","currencyType":"NonQualifying","escrowPointsBalance":0.0,"pointsBalance":300.0}],
      "memberShipNumber":"M5"}],
   "transactionJournalResult": [{
      "id":"0lVxx00000000mP",
      "changeInMemberPoints":[{"changeInMemberCurrencies":[
          {"changeInEscrowPointsBalance":0.0,"changeInPointsBalance":100.0,"currencyName":"Coins",
           "currencyType":"NonQualifying","promotionId":"NA"}],
        "memberShipNumber":"M5"}],
      "voucherResult": null,
      "badgesAssigned":[{"badgeValidityEndDate":"2023-12-15","loyaltyProgramBadgeName":"Gen AI Badge","memberBadgeStatus":"1","reason":"Test"}],
      "gamesAssigned":[]
   }]},
 "programName": "NTO Insider",
 "simulationResults": null,
 "status": true}"""  # 5a (comments removed; "..." programName and the games list filled in)

PROCESS_CREDIT = '{"message":null,"outputParameters":{"outputParameters":{"results":[{"PointsCredited":100.0}]}},"simulationDetails":{},"status":true}'  # 5c
CANCEL = '{"errors":null,"isSuccess":true,"outputValues":{"CancellationTransactionJournalId":"0lv..."}}'  # 7

LEDGER = """{"message":null,"status":true,"transactionJournalCount":2,"externalTransactionNumber":"...","transactionJournals":[{"activityDate":"...","additionalAttributes":[{"fieldName":"Destination","value":"Jaipur"}],"journalTypeName":"Accrual","journalSubTypeName":"Member Enrollment","pointsChange":[{"changeInPoints":"-100.0","loyaltyMemberCurrency":"Reward Points"}],"transactionJournalId":"0lV...","transactionJournalNumber":"00000035"}]}"""  # 5d

# 6c: Cart output (connect_responses_cart.htm, v65) wraps cartDetails in "cart". The cart part is
# the documented example's (two of its cart promotions: 10 + 20); the line part is the documented
# Cart Line Details example's two lines (Pizza, Burger), with the Burger line's totals completed so
# the cart-level 30 is distributed 28.64 + 1.36. Before: 110; adjusted: 69.5; 40.50 off in all.
EXECUTION = """{"cart":{"cartDetails":[{"adjustedCartAmount":69.5,"appliedCartPromotionDetails":[
 {"cartAmountAfterDiscount":99.5,"cartAmountBeforeDiscount":99.5,"cartLevelDiscountAmount":0,"displayName":"Get 10% off on Burger + Voucher","isAutomatic":true,"nonPricingRewards":{"voucherRewards":[{"voucherDefinitionId":"2Xaxx00000000XtCAI","voucherDefinitionName":"Voucher1"}]},"promotionId":"0c8xx00000004y5AAA"},
 {"cartAmountAfterDiscount":89.5,"cartAmountBeforeDiscount":99.5,"cartLevelDiscountAmount":10,"displayName":"10% off on Cart","isAutomatic":true,"nonPricingRewards":{},"promotionId":"0c8xx00000005R7AAI"},
 {"cartAmountAfterDiscount":79.5,"cartAmountBeforeDiscount":99.5,"cartLevelDiscountAmount":20,"isAutomatic":true,"nonPricingRewards":{},"promotionId":"0c8xx00000006wfAAA"}],
 "cartLineDetails":[
 {"appliedCartLinePromotionDetails":[{"cartLineItemAmountAfterDiscount":95,"cartLineItemAmountBeforeDiscount":100,"cartLineItemDiscountAmount":5,"couponCode":"PIZZA5","currencyIsoCode":"USD","displayName":"5 % off on Pizza","isAutomatic":false,"promotionId":"0c8xx00000005NtAAI"}],
  "cartLineItemAmountAfterDiscount":66.36,"cartLineItemAmountBeforeDiscount":100,"cartLineItemId":"abcd1","cartLineItemQuantity":2,"cartLineProduct":"Pizza","totalCartLineItemDiscountAmount":33.64,"totalCartLinePromotionsDiscountAmount":5,"totalCartPromotionsDistributedDiscountAmount":28.64},
 {"appliedCartLinePromotionDetails":[{"cartLineItemAmountAfterDiscount":9,"cartLineItemAmountBeforeDiscount":10,"cartLineItemDiscountAmount":1,"currencyIsoCode":"USD","displayName":"Get 10% off on Burger + Voucher","isAutomatic":true,"promotionId":"0c8xx00000004y5AAA"},
   {"cartLineItemAmountAfterDiscount":4.5,"cartLineItemAmountBeforeDiscount":9,"cartLineItemDiscountAmount":4.5,"currencyIsoCode":"USD","displayName":"Buy 1 Pizza, Get 1 Burger Free","isAutomatic":true,"promotionId":"0c8xx00000006TdAAI"}],
  "cartLineItemAmountAfterDiscount":3.14,"cartLineItemAmountBeforeDiscount":10,"cartLineItemId":"abcd2","cartLineItemQuantity":1,"cartLineProduct":"Burger","totalCartLineItemDiscountAmount":6.86,"totalCartLinePromotionsDiscountAmount":5.5,"totalCartPromotionsDistributedDiscountAmount":1.36}]}]}}"""

SESSION_EXPIRED = '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'  # 1d


def settings(**overrides) -> SalesforceSettings:
    base = {"my_domain_url": "https://acme.my.salesforce.com", "client_id": "id", "client_secret": "s3cret-value",
            "program_name": "NTO Insider"}
    return SalesforceSettings(**{**base, **overrides})


def response(body: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body.encode(), headers={"Content-Type": "application/json;charset=UTF-8"})


def eur(amount: str) -> Money:
    return Money.of(Decimal(amount), "EUR")


# -- tests ----------------------------------------------------------------------------------------


def test_token_response_feeds_the_oauth_strategy():
    from pydantic import SecretStr

    from loyaltykit.auth import OAuth2ClientCredentials

    auth = OAuth2ClientCredentials("https://acme.my.salesforce.com/services/oauth2/token", "id", SecretStr("x"),
                                   base_url_field="instance_url")
    auth.accept_token(response(TOKEN))
    assert auth.base_url() == "https://instance_name.my.salesforce.com"
    assert not auth.needs_token()


def test_profile_to_customer():
    customer = tf.customer_from_profile(tf.parse_json(response(PROFILE)), settings())
    assert customer.id == "Member1" and customer.tier == "Bronze" and customer.status == "Active"
    assert customer.email == "ab@email.com" and customer.display_name == "Name1 Name2"
    # the only currency is qualifying: no spendable points are invented from it
    assert customer.points == Decimal(0)
    assert "associatedContact" not in customer.raw
    named = tf.customer_from_profile(tf.parse_json(response(PROFILE)), settings(points_currency="NTO Qualifying Points"))
    assert named.balance("points").name == "NTO Qualifying Points"


def test_profile_balances_are_the_customers():
    # evaluate and spend read only the balances: the same ones customer_from_profile gives
    body = tf.parse_json(response(PROFILE))
    body["memberCurrencies"][0]["pointsBalance"] = Decimal("125.5")
    for options in ({}, {"points_currency": "NTO Qualifying Points"},
                    {"points_currency": "NTO Qualifying Points", "cashback_currency": "NTO Qualifying Points",
                     "cashback_iso_currency": "USD"}):
        balances = tf.balances_from_profile(body, settings(**options))
        assert balances and balances == tf.customer_from_profile(body, settings(**options)).balances
    assert tf.balances_from_profile(body, settings(points_currency="NTO Qualifying Points"))[0].points == Decimal("125.5")
    with pytest.raises(MalformedResponseError):
        tf.balances_from_profile({"memberStatus": "Active"}, settings())



def test_voucher_list():
    (voucher,) = tf.vouchers_from_list(tf.parse_json(response(VOUCHERS)))
    assert voucher.code == "J4XN26MT" and voucher.number == "00005852" and voucher.type == "FixedValue"
    assert voucher.face_value == Decimal(100) and voucher.remaining == Decimal(100)
    assert voucher.problem() == "voucher_expired"
    offer = tf.offer_from_voucher(voucher, "EUR")
    assert offer.amount == eur("100") and offer.code == "J4XN26MT" and offer.id == "0kDT1000000TUwsMAG"


@pytest.mark.parametrize(('body', 'status'), REDEEM_OUTPUTS)
def test_redeem_outputs(body, status):
    assert tf.redeem_status(tf.parse_json(response(body, 201))) == status


def test_realtime_output():
    journal_id, points = tf.realtime_result(tf.parse_json(response(REALTIME)), None)
    assert journal_id == "0lVxx00000000mP" and points == Decimal(100)
    assert tf.realtime_result(tf.parse_json(response(REALTIME)), "Tier Coins")[1] == Decimal(0)


def test_process_output_and_debit_request():
    s = settings()
    assert tf.debited(tf.parse_json(response(PROCESS_CREDIT)), "PointsCredited") == Decimal(100)
    debit = PROCESS_CREDIT.replace("PointsCredited", "PointsDebited").replace("100.0", "200.0")
    assert tf.debited(tf.parse_json(response(debit)), s.debit_result_field) == Decimal(200)
    spend = CashbackSpend(customer_id="M1256", order_ref="o-1", kind="points", points=Decimal(200))
    body = tf.debit_request(s, spend, "lk-o-1:spend:points")
    params = body["processParameters"][0]
    assert params["PointsToDebit"] == 200
    assert params["TransactionJournal"]["JournalTypeName"] == "Redemption"
    assert params["TransactionJournal"]["MembershipNumber"] == "M1256"
    assert params["TransactionJournal"]["ExternalTransactionNumber"] == "lk-o-1:spend:points"


def test_cancel_output_object_or_array():
    assert tf.cancel_result(tf.parse_json(response(CANCEL))) == "0lv..."
    assert tf.cancel_result(tf.parse_json(response(f"[{CANCEL}]"))) == "0lv..."


def test_ledger_points_string_or_number():
    body = tf.parse_json(response(LEDGER))
    assert tf.ledger_points(body, "0lV...", None) == Decimal("-100.0")
    numeric = tf.parse_json(response(LEDGER.replace('"-100.0"', "-100.0")))
    assert tf.ledger_points(numeric, "0lV...", None) == Decimal("-100.0")
    assert tf.ledger_points(body, "other", None) is None


def _usd(amount: str) -> Money:
    return Money.of(Decimal(amount), "USD")


EXECUTION_BASKET = Basket(id="b", currency="USD", lines=(
    Line(id="abcd1", sku="Pizza", quantity=Decimal(2), unit_price=_usd("50.00")),
    Line(id="abcd2", sku="Burger", quantity=Decimal(1), unit_price=_usd("10.00")),
))


def test_promotion_execution_counts_cart_discounts_once():
    discounts, unmapped = tf.discounts_from_execution(tf.parse_json(response(EXECUTION)), EXECUTION_BASKET)
    order = [d for d in discounts if d.target is DiscountTarget.ORDER]
    line = [d for d in discounts if d.target is DiscountTarget.LINE]
    assert [(d.amount, d.label) for d in order] == [(_usd("10"), "10% off on Cart"), (_usd("20"), None)]
    assert [(d.line_id, d.amount) for d in line] == [("abcd1", _usd("5")), ("abcd2", _usd("5.5"))]
    assert line[0].code == "PIZZA5"
    total = sum((d.amount for d in discounts), _usd("0"))
    assert total == _usd("40.50")  # 110 - adjustedCartAmount 69.5; not 70.50
    assert [u.type for u in unmapped] == ["nonPricingRewards"]  # voucher rewards kept raw


def test_promotion_execution_bare_cart_details_parse_too():
    bare = tf.parse_json(response(EXECUTION))["cart"]
    discounts, _ = tf.discounts_from_execution(bare, EXECUTION_BASKET)
    assert sum((d.amount for d in discounts), _usd("0")) == _usd("40.50")
    with pytest.raises(MalformedResponseError):
        tf.discounts_from_execution({"cart": {}}, EXECUTION_BASKET)


def test_promotion_execution_line_without_totals_is_read_from_its_promotions():
    body = tf.parse_json(response(EXECUTION))
    for line in body["cart"]["cartDetails"][0]["cartLineDetails"]:
        for key in ("totalCartLinePromotionsDiscountAmount", "totalCartPromotionsDistributedDiscountAmount"):
            line.pop(key)
    discounts, _ = tf.discounts_from_execution(body, EXECUTION_BASKET)
    assert sum((d.amount for d in discounts), _usd("0")) == _usd("40.50")


def test_eligible_promotions_documented_id_display_name_shape_and_raw_kept():
    body = {"promotions": [{"id": "0c8xx00000005R7AAI", "displayName": "10% off on Cart"}]}
    messages, unmapped = tf.messages_from_eligible(body)
    assert [m.text for m in messages] == ["10% off on Cart"]
    assert unmapped and unmapped[0].type == "eligible_promotions"
    messages, unmapped = tf.messages_from_eligible({"whatever": [1, 2]})
    assert messages == [] and unmapped[0].raw == {"whatever": [1, 2]}  # never dropped


def test_cart_request_uses_codes_and_exact_numbers():
    basket = Basket(id="b", currency="EUR", customer_id="M1", lines=(
        Line(id="l1", sku="SKU-1", quantity=Decimal(3), unit_price=eur("16.63")),))
    cart = tf.cart_request(basket, "M1", execution=True)["cart"]["cartDetails"][0]
    assert cart["transactionAmount"] == Decimal("49.89") and cart["membershipNumber"] == "M1"
    assert b'"transactionAmount":49.89' in wire.dumps(cart), "sent as the exact JSON number"
    assert cart["cartLineDetails"].rows() == [{"cartLineProductCode": "SKU-1", "cartLineItemQuantity": 3,
                                               "cartLineItemAmount": Decimal("49.89"), "cartLineItemId": "l1",
                                               "cartLineNetUnitPrice__std": Decimal("16.63")}]


def test_accrual_journal_fields():
    s = settings(order_ref_field="Order_Reference__c")
    order = Order(ref="o-1", currency="EUR", customer_id="M5", total=eur("117.00"),
                  lines=(Line(id="l1", sku="A", quantity=Decimal(1), unit_price=eur("117.00")),))
    journal = tf.accrual_journal(s, order, tf.external_number(s, order.key))
    assert journal["ExternalTransactionNumber"] == "lk-o-1:export"
    assert journal["TransactionAmount"] == "117.00"  # a string, as in the documented request
    assert journal["JournalTypeName"] == "Accrual" and journal["LoyaltyProgramName"] == "NTO Insider"
    assert journal["Order_Reference__c"] == "o-1"


def test_simulation_points_parse_defensively():
    s = settings()
    body = {"simulationResults": {"transactionJournals": [{"processRules": [
        {"executionStatus": "Success", "actionResultSummary": {"currencyName": "Coins", "points": Decimal("40")}},
        {"executionStatus": "CriteriaNotMet", "actionResultSummary": {"points": Decimal("999")}},
        {"executionStatus": "Success", "actionResultSummary": {"nested": [{"PointsCredited": "2.5"}]}},
        {"executionStatus": "Success", "actionResultSummary": {"currencyName": "Tier Qualifying", "points": 7}},
        {"executionStatus": "Success", "actionResultSummary": {"badge": "Gold"}},
    ]}]}}
    points, unmapped = tf.earn_from_simulation(body, s)
    assert points == Decimal("42.5")
    assert [u.type for u in unmapped] == ["simulation_rule"]


def test_paths_url_encode_names():
    s = settings(program_name="NTO Insider", debit_points_process="credit Points")
    assert tf.profile_path(s) == "/services/data/v65.0/loyalty-programs/NTO%20Insider/members"
    assert tf.process_path(s, s.debit_points_process).endswith("/connect/loyalty/programs/NTO%20Insider/program-processes/credit%20Points")
    assert tf.redeem_path(s, "M/1", "A B").endswith("/loyalty/programs/NTO%20Insider/members/M%2F1/vouchers/A%20B/redeem")
    assert tf.realtime_path(s) == "/services/data/v65.0/connect/realtime/loyalty/programs/NTO%20Insider"
    assert tf.cancel_path(s, accrual=True) == "/services/data/v65.0/actions/standard/cancelAccrual"


def test_soql_literals_are_escaped():
    query = tf.member_query(settings(), "o'brien\\x@example.com")
    assert "'o\\'brien\\\\x@example.com'" in query
    with pytest.raises(ValueError):
        tf.soql_literal("a\nb")


@pytest.mark.parametrize(
    ('status', 'body', 'expected'),
    [
        (401, SESSION_EXPIRED, AuthFailedError),
        (403, '[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]', RateLimitedError),
        (409, '[{"message":"The voucher is already redeemed.","errorCode":"ALREADY_REDEEMED_VOUCHER"}]', VoucherAlreadyRedeemedError),
        (400, '[{"message":"The voucher is expired. Specify a voucher that hasn\'t expired.","errorCode":"INVALID_API_INPUT"}]', VoucherExpiredError),
        (400, '[{"message":"The voucher is canceled. Specify a voucher that hasn\'t canceled.","errorCode":"INVALID_API_INPUT"}]', VoucherInvalidError),
        (400, '[{"message":"Specify a valid voucher code and try again.","errorCode":"INVALID_API_INPUT"}]', VoucherNotFoundError),
        (400, '[{"message":"Specify a valid loyalty program membership number and try again.","errorCode":"INVALID_API_INPUT"}]', CustomerNotFoundError),
        (400, '[{"message":"The voucher definition isn\'t active.","errorCode":"INVALID_API_INPUT"}]', VoucherInvalidError),
        (403, '[{"message":"insufficient access rights on object id","errorCode":"INSUFFICIENT_ACCESS_OR_READONLY"}]', AuthFailedError),
        (400, '[{"message":"insufficient access rights","errorCode":"INSUFFICIENT_ACCESS_OR_READONLY"}]', AuthFailedError),
        (404, '[{"message":"transaction_not_found: insufficient points","errorCode":"NOT_FOUND"}]', VoucherNotFoundError),
        (400, '[{"message":"The voucher is already redeemed.","errorCode":"INVALID_INPUT"}]', EngineError),
        (404, '[{"message":"Not here","errorCode":"NOT_FOUND"}]', VoucherNotFoundError),
        (200, '{"message":"Insufficient points balance.","status":false}', InsufficientBalanceError),
        (200, '{"message":null,"processResult":null,"status":false}', EngineError),
        (200, '{"message":"No member found with the specified membership number.","status":false}', CustomerNotFoundError),
        (200, '[{"errors":[{"statusCode":"X","message":"no member found"}],"isSuccess":false}]', EngineError),
        (409, '[{"message":"conflict","errorCode":"CONFLICT"}]', EngineError),
    ],
)
def test_error_classification(status, body, expected):
    with pytest.raises(expected) as info:
        tf.checked(response(body, status), "redeem_voucher", DEFAULT_ERROR_PATTERNS, not_found=VoucherNotFoundError)
    assert info.value.engine == "salesforce"
    assert type(info.value) is expected  # not a subclass standing in for another kind


def test_documented_error_table_is_plain_data_without_catch_alls():
    for code, fragment, kit_code in tf.DOCUMENTED_ERRORS:
        assert code is not None or fragment is not None
        assert kit_code in ERROR_CODES
    assert tf.documented_kit_code("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient") == "auth_failed"
    assert tf.documented_kit_code("transaction_not_found", "transaction_not_found") is None


def test_success_bodies_pass_and_status_string_is_not_a_failure():
    assert tf.checked(response(REDEEM_OUTPUTS[0][0], 201), "redeem_voucher", DEFAULT_ERROR_PATTERNS)
    assert tf.checked(response(REALTIME), "export_orders", DEFAULT_ERROR_PATTERNS)["status"] is True


def test_malformed_bodies_are_typed_errors():
    with pytest.raises(MalformedResponseError):
        tf.checked(response("{not json"), "identify", DEFAULT_ERROR_PATTERNS)
    with pytest.raises(MalformedResponseError):
        tf.customer_from_profile({"memberStatus": "Active"}, settings())
    with pytest.raises(MalformedResponseError):
        tf.vouchers_from_list({"vouchers": [{"status": "Issued"}]})
    with pytest.raises(MalformedResponseError):
        tf.realtime_result({"processResult": []}, None)
    with pytest.raises(MalformedResponseError):
        tf.debited({"outputParameters": {"results": []}}, "PointsDebited")


def test_basket_codes_against_member_vouchers():
    vouchers = tf.vouchers_from_list({"vouchers": [
        {"voucherCode": "FIVE", "voucherId": "v1", "status": "Issued", "type": "FixedValue", "faceValue": 5,
         "remainingValue": 5},
        {"voucherCode": "PCT", "voucherId": "v2", "status": "Issued", "type": "DiscountPercentage",
         "discountPercent": Decimal("12.5")},
        {"voucherCode": "USED", "voucherId": "v3", "status": "Redeemed", "type": "FixedValue", "faceValue": 5},
    ]})
    basket = Basket(id="b", currency="EUR", coupon_codes=("FIVE", "PCT", "USED", "NONE"),
                    lines=(Line(id="l1", sku="A", quantity=Decimal(1), unit_price=eur("40.00")),))
    discounts, codes = tf.apply_codes(basket, vouchers)
    assert [d.amount for d in discounts] == [eur("5.00"), eur("5.00")]
    assert [(c.code, c.status, c.reason) for c in codes] == [
        ("FIVE", CodeStatus.ACCEPTED, None), ("PCT", CodeStatus.ACCEPTED, None),
        ("USED", CodeStatus.REJECTED, "voucher_already_redeemed"), ("NONE", CodeStatus.REJECTED, "voucher_not_found"),
    ]


def test_settings_guard_versions_and_secrets():
    with pytest.raises(ValueError):
        settings(api_version="62.0")  # promotion-execution needs v65
    assert settings(api_version="62.0", promotions_api="eligible_promotions").two_phase
    assert not settings(api_version="60.0", promotions_api="none").two_phase
    assert "s3cret-value" not in repr(settings()) + str(settings().model_dump())


def test_numbers_are_decimal_not_float():
    body = tf.parse_json(response(REDEEM_OUTPUTS[0][0]))
    assert body["remainingAmount"] == Decimal("98.32") and isinstance(body["remainingAmount"], Decimal)


# -- vouchers: partial redemption and the documented success statuses ---------------------------


def test_voucher_list_reads_partial_and_definition_flags():
    body = tf.parse_json(response(VOUCHERS.replace('"isVoucherPartiallyRedeemable":false',
                                                   '"isVoucherPartiallyRedeemable":true')
                                  .replace('"status":"Expired"', '"status":"Issued"')
                                  .replace('"remainingValue":100', '"remainingValue":60')
                                  .replace('"redeemedValue":0', '"redeemedValue":40')))
    voucher = tf.vouchers_from_list(body)[0]
    assert voucher.partial and voucher.definition_active
    assert voucher.value_left == Decimal(60) and voucher.redeemed_value == Decimal(40)
    assert tf.redeem_amount(voucher, eur("25.00")) == Decimal("25.00")
    assert tf.redeem_amount(voucher, eur("80.00")) == Decimal(60)  # never more than is left
    whole = tf.vouchers_from_list(tf.parse_json(response(VOUCHERS)))[0]
    assert tf.redeem_amount(whole, eur("25.00")) is None  # not partially redeemable: redeemed whole
    inactive = tf.vouchers_from_list(tf.parse_json(response(
        VOUCHERS.replace('"isVoucherDefinitionActive":true', '"isVoucherDefinitionActive":false')
        .replace('"status":"Expired"', '"status":"Issued"').replace("2021-11-01", "2999-11-01"))))[0]
    assert inactive.problem() == "voucher_invalid"


def test_redeem_body_carries_the_documented_amount_fields():
    s = settings()
    assert tf.redeem_body(s, "Reserve", "k", Decimal("25.00"), "EUR") == {
        "action": "Reserve", "reservationKey": "k", "reservedValue": Decimal("25.00"), "currencyIsoCode": "EUR"}
    assert tf.redeem_body(s, "Redeem", "k", Decimal("25.00"), "EUR")["redeemAmount"] == Decimal("25.00")
    assert tf.redeem_body(s, "Reinstate", None, Decimal(1), "EUR") == {"action": "Reinstate"}
    assert tf.redeem_body(s, None, None) == {}
    assert tf.ACTION_STATUS == {"Reserve": "Reserved", "Redeem": "Redeemed", "Reinstate": "Issued"}


def test_success_markers_are_required():
    assert tf.confirmed(tf.parse_json(response(REALTIME)))
    assert tf.confirmed(tf.parse_json(response(PROCESS_CREDIT)))
    assert tf.confirmed(tf.parse_json(response(CANCEL)), "isSuccess")
    assert tf.confirmed([tf.parse_json(response(CANCEL))], "isSuccess")
    assert not tf.confirmed({"message": None, "processResult": None})  # no status: not success
    assert not tf.confirmed({"status": "true"})  # a string is not the documented Boolean


def test_accrual_journal_sends_every_code_and_products_when_configured():
    s = settings(journal_product_field="ProductCode", voucher_code_separator=";")
    order = Order(ref="o-1", currency="EUR", customer_id="M5", total=eur("10.00"), voucher_codes=("A1", "B2"),
                  lines=(Line(id="l1", sku="P1", quantity=Decimal(1), unit_price=eur("6.67")),
                         Line(id="l2", sku="P2", quantity=Decimal(1), unit_price=eur("6.66"))))
    journals = tf.accrual_journals(s, order, "lk-o-1")
    assert [j["ProductCode"] for j in journals] == ["P1", "P2"]
    assert [j["ExternalTransactionNumber"] for j in journals] == ["lk-o-1", "lk-o-1-2"]
    assert sum(Decimal(j["TransactionAmount"]) for j in journals) == Decimal("10.00")
    assert journals[0]["VoucherCode"] == "A1;B2" and "VoucherCode" not in journals[1]
    assert tf.accrual_journals(settings(), order, "n")[0]["VoucherCode"] == "A1,B2"


def test_soql_names_come_from_settings():
    s = settings(member_object="Custom_Member__c", journal_object="TJ__c", journal_program_field="Prog__c")
    assert "FROM Custom_Member__c" in tf.member_query(s, "a@b.c")
    query = tf.journals_query(s, ["n1"])
    assert "FROM TJ__c" in query and "Prog__c = 'NTO Insider'" in query
    rows = {"records": [{"Id": "1", "ExternalTransactionNumber": "n1", "Status": "Voided", "TransactionAmount": "5"},
                        {"Id": "2", "ExternalTransactionNumber": "n1", "Status": "Processed", "TransactionAmount": "5"}]}
    assert tf.journals_by_number(rows, cancelled="Voided")["n1"].id == "2"  # the live one wins
    assert tf.journals_by_number(rows, cancelled="Voided")["n1"].amount == Decimal(5)


def test_cart_request_names_products_with_the_configured_field():
    basket = Basket(id="b", currency="EUR", lines=(Line(id="l1", sku="SKU-1", quantity=Decimal(1), unit_price=eur("1")),))
    line = tf.cart_request(basket, None, True, "cartLineProductStockKeepingUnit")["cart"]["cartDetails"][0]["cartLineDetails"].rows()[0]
    assert line["cartLineProductStockKeepingUnit"] == "SKU-1" and "cartLineProductCode" not in line


from hypothesis import given, strategies as st  # noqa: E402


@given(st.lists(st.integers(min_value=1, max_value=10_000_00), min_size=1, max_size=8), st.data())
def test_per_product_journal_amounts_always_sum_to_the_goods_total(cents, data):
    # The order's total is what the shopper paid for the goods: at most the lines (no shipping here);
    # the difference is an order-level discount (an Order refuses a total above its lines and shipping).
    total_cents = data.draw(st.integers(min_value=0, max_value=sum(cents)), label="total_cents")
    lines = tuple(Line(id=f"l{i}", sku=f"S{i}", quantity=Decimal(1), unit_price=eur(str(Decimal(c) / 100)))
                  for i, c in enumerate(cents))
    order = Order(ref="o", currency="EUR", customer_id="M", lines=lines, total=eur(str(Decimal(total_cents) / 100)))
    journals = tf.accrual_journals(settings(journal_product_field="ProductCode"), order, "n")
    amounts = [Decimal(j["TransactionAmount"]) for j in journals]
    assert sum(amounts) == order.total.amount
    assert all(a >= 0 and a == a.quantize(Decimal("0.01")) for a in amounts)


@pytest.mark.parametrize("execution", [True, False])
def test_cart_lines_written_ahead_are_the_bytes_of_one_dict_per_line(execution):
    basket = Basket(id="b", currency="EUR", customer_id="M1", lines=tuple(
        Line(id=f"l{n}", sku=f'SKU "{n}" é', quantity=n, unit_price=eur(f"{n}.05"), category=f"c{n}" if n % 3 else None)
        for n in range(1, 20)))
    body = tf.cart_request(basket, "M1", execution)
    details = body["cart"]["cartDetails"][0]
    as_dicts = []
    for line in basket.lines:  # the cart as it was built before: one dict per line
        item = {"cartLineProductCode": line.sku, "cartLineItemQuantity": line.quantity,
                "cartLineItemAmount": line.subtotal.amount}
        if execution:
            item.update(cartLineItemId=line.id, cartLineNetUnitPrice__std=line.unit_price.amount)
        if line.category:
            item["cartLineProductCategory"] = line.category
        as_dicts.append(item)
    assert wire.dumps(body) == wire.dumps({"cart": {"cartDetails": [{**details, "cartLineDetails": as_dicts}]}})
