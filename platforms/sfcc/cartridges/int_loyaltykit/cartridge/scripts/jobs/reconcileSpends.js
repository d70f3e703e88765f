'use strict';

/**
 * Job step ReconcileLoyaltySpends: the safety net for orders that failed (or were cancelled) after an
 * authorised or unknown cashback spend, whose compensation did not happen at PlaceOrder (a crash, the
 * sidecar down). Compensation is keyed per order, so running it again is safe.
 */
var Order = require('dw/order/Order');
var OrderMgr = require('dw/order/OrderMgr');
var Status = require('dw/system/Status');
var compensation = require('*/cartridge/scripts/loyaltykit/compensation');

exports.execute = function (parameters) {
    var limit = parameters && parameters.BatchSize ? Number(parameters.BatchSize) : 200;
    var orders = OrderMgr.searchOrders(
        '(custom.loyaltykitSpendState = {0} OR custom.loyaltykitSpendState = {1}) AND (status = {2} OR status = {3})',
        'creationDate asc', 'authorized', 'unknown', Order.ORDER_STATUS_FAILED, Order.ORDER_STATUS_CANCELLED);
    var done = 0;
    var pending = 0;
    try {
        while (orders.hasNext() && done + pending < limit) {
            if (compensation.compensate(orders.next()).ok) {
                done += 1;
            } else {
                pending += 1;
            }
        }
    } finally {
        orders.close();
    }
    var summary = 'reversed ' + done + ', still pending ' + pending;
    return pending > 0 ? new Status(Status.ERROR, 'PENDING', summary) : new Status(Status.OK, 'OK', summary);
};
