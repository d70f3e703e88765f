'use strict';

/**
 * Compensation of an order that failed after loyalty writes (a later payment declined, a voucher
 * refused): the spend and redemptions are reversed (a cancel before export voids them), under one
 * key per order, so the reconcile job may run it again safely.
 *
 * Spend states on order.custom.loyaltykitSpendState: authorized -> reversed; unknown (the spend's
 * outcome was not known) is first settled by replaying the spend with its key.
 */
var Logger = require('dw/system/Logger');
var Transaction = require('dw/system/Transaction');
var config = require('*/cartridge/scripts/loyaltykit/config');
var keys = require('*/cartridge/scripts/loyaltykit/keys');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');
var receipts = require('*/cartridge/scripts/loyaltykit/receipts');
var service = require('*/cartridge/scripts/loyaltykit/service');

var log = Logger.getLogger('loyaltykit', 'payment');

/** Replay a spend whose outcome is unknown: same key and body, so the sidecar answers what happened. */
function settleUnknownSpend(order) {
    var body = order.custom.loyaltykitSpendRequest ? JSON.parse(order.custom.loyaltykitSpendRequest) : null;
    if (!body) {
        return { ok: false, code: 'no_spend_request' };
    }
    var answer = service.spend(body, keys.spend(order.orderNo));
    if (answer.ok) {
        Transaction.wrap(function () {
            receipts.add(order, mapping.receiptOf(answer.body));
            order.custom.loyaltykitSpendState = 'authorized';
        });
        return { ok: true };
    }
    if (!answer.problem.retryable) {
        // Refused for good: nothing was spent, nothing to reverse.
        Transaction.wrap(function () { order.custom.loyaltykitSpendState = 'refused'; });
        return { ok: true };
    }
    return { ok: false, code: answer.problem.code };
}

/** Reverse what the order's loyalty writes did. Returns {ok, code?}. */
function compensate(order) {
    if (order.custom.loyaltykitSpendState === 'unknown') {
        var settled = settleUnknownSpend(order);
        if (!settled.ok) {
            log.warn('order compensation postponed: spend outcome still unknown ({0})', settled.code);
            return settled;
        }
    }
    var list = receipts.list(order);
    if (!list.length) {
        Transaction.wrap(function () { order.custom.loyaltykitSpendState = order.custom.loyaltykitSpendState ? 'reversed' : null; });
        return { ok: true, code: 'nothing_to_reverse' };
    }
    var context = { channel: config.channel(), storeId: config.storeId() };
    var body = mapping.reversalBody(mapping.orderBody(order, context), 'cancel', { exported: false, reference: 'compensation', reason: 'order failed' });
    var answer = service.reverse(body, keys.compensate(order.orderNo));
    if (!answer.ok) {
        log.warn('order compensation failed ({0}); the reconcile job retries it', answer.problem.code);
        return { ok: false, code: answer.problem.code };
    }
    Transaction.wrap(function () { order.custom.loyaltykitSpendState = 'reversed'; });
    return { ok: true };
}

module.exports = { compensate: compensate };
