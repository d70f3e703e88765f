'use strict';

/**
 * The loyalty writes of PlaceOrder, before payment authorisation: the member's id is kept on the
 * order, and every engine code the last quote accepted is redeemed for the order number.
 */
var Transaction = require('dw/system/Transaction');
var keys = require('*/cartridge/scripts/loyaltykit/keys');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');
var receipts = require('*/cartridge/scripts/loyaltykit/receipts');
var service = require('*/cartridge/scripts/loyaltykit/service');

function acceptedCodes(order) {
    var results = order.custom.loyaltykitCodeResults ? JSON.parse(order.custom.loyaltykitCodeResults) : [];
    var accepted = {};
    results.forEach(function (r) {
        if (r.status === 'accepted') {
            accepted[r.code] = true;
        }
    });
    return mapping.engineCodesOf(order).filter(function (code) { return accepted[code]; });
}

/** Returns {error: false} or {error: true, code} (the order must then fail and be compensated). */
function redeemCodes(order) {
    var customerId = mapping.customerIdOf(order);
    Transaction.wrap(function () { order.custom.loyaltykitCustomerId = customerId; });
    var codes = acceptedCodes(order);
    for (var i = 0; i < codes.length; i += 1) {
        var body = mapping.redeemBody(codes[i], order.orderNo, customerId, null);
        var answer = service.redeem(body, keys.redeem(order.orderNo, i));
        if (!answer.ok && answer.problem.outcomeUnknown) {
            // Same key, same body: the sidecar settles what the first attempt did instead of redeeming twice.
            answer = service.redeem(body, keys.redeem(order.orderNo, i));
        }
        if (!answer.ok) {
            return { error: true, code: answer.problem.code, outcomeUnknown: answer.problem.outcomeUnknown };
        }
        Transaction.wrap(function () { receipts.add(order, mapping.receiptOf(answer.body)); });
    }
    return { error: false, redeemed: codes.length };
}

module.exports = { redeemCodes: redeemCodes, acceptedCodes: acceptedCodes };
