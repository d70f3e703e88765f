'use strict';

/**
 * SFRA's checkout helpers with the loyalty steps of PlaceOrder (this cartridge sits before
 * app_storefront_base on the cartridge path):
 * - handlePayments: redeem the accepted engine codes first, then authorise the payments (cashback
 *   through app.payment.processor.loyaltykit_cashback); if anything fails the order fails and its
 *   loyalty writes are compensated (reversed).
 * - placeOrder: once placed, the order is queued in the outbox for the export job.
 */
var base = module.superModule;
var OrderMgr = require('dw/order/OrderMgr');
var Transaction = require('dw/system/Transaction');
var checkout = require('*/cartridge/scripts/loyaltykit/checkout');
var compensation = require('*/cartridge/scripts/loyaltykit/compensation');
var config = require('*/cartridge/scripts/loyaltykit/config');
var keys = require('*/cartridge/scripts/loyaltykit/keys');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');
var outbox = require('*/cartridge/scripts/loyaltykit/outbox');

function handlePayments(order, orderNumber) {
    if (!config.enabled()) {
        return base.handlePayments(order, orderNumber);
    }
    var redeemed = checkout.redeemCodes(order);
    if (redeemed.error) {
        Transaction.wrap(function () { OrderMgr.failOrder(order, true); });
        compensation.compensate(order);
        return { error: true };
    }
    var result = base.handlePayments(order, orderNumber);
    if (result.error) {
        compensation.compensate(order);
    }
    return result;
}

function placeOrder(order, fraudDetectionStatus) {
    var result = base.placeOrder(order, fraudDetectionStatus);
    if (!result.error && config.enabled()) {
        var body = mapping.orderBody(order, { channel: config.channel(), storeId: config.storeId() });
        outbox.enqueue('order', order.orderNo, body, keys.order(order.orderNo));
    }
    return result;
}

var helpers = {};
Object.keys(base).forEach(function (name) { helpers[name] = base[name]; });
helpers.handlePayments = handlePayments;
helpers.placeOrder = placeOrder;
module.exports = helpers;
