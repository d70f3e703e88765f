'use strict';

/** The receipts of an order's loyalty writes, kept as JSON on order.custom.loyaltykitReceipts. */
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');

function add(order, receipt) {
    if (!receipt) {
        return;
    }
    var list = mapping.receiptsOf(order).filter(function (r) { return r.idempotency_key !== receipt.idempotency_key; });
    list.push(receipt);
    order.custom.loyaltykitReceipts = JSON.stringify(list);
}

module.exports = { add: add, list: mapping.receiptsOf };
