'use strict';

/**
 * app.loyaltykit.order.cancelled / app.loyaltykit.order.refunded: call them where the shop cancels
 * or refunds an order (order management, a job, OCAPI hooks):
 *   HookMgr.callHook('app.loyaltykit.order.cancelled', 'cancelled', order, reason)
 *   HookMgr.callHook('app.loyaltykit.order.refunded', 'refunded', order, {reference, lines: [{line_id, quantity}]})
 * The reversal is queued in the outbox and sent at once; if the sidecar is down, the export job retries it.
 * A cancel before export stops the export: the order never reaches the engine.
 */
var config = require('*/cartridge/scripts/loyaltykit/config');
var keys = require('*/cartridge/scripts/loyaltykit/keys');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');
var outbox = require('*/cartridge/scripts/loyaltykit/outbox');

function context() {
    return { channel: config.channel(), storeId: config.storeId() };
}

function cancelled(order, reason) {
    var exported = outbox.cancelExport(order.orderNo);
    var body = mapping.reversalBody(mapping.orderBody(order, context()), 'cancel', { exported: exported, reference: 'cancel', reason: reason });
    var entry = outbox.enqueue('cancel', order.orderNo, body, keys.cancel(order.orderNo));
    return { status: outbox.deliver(entry) };
}

/** @param {{reference: string, lines?: Array<{line_id: string, quantity: number}>, reason?: string}} refund */
function refunded(order, refund) {
    var reference = refund && refund.reference ? String(refund.reference) : 'full';
    var body = mapping.reversalBody(mapping.orderBody(order, context()), 'refund', { reference: reference, lines: refund && refund.lines, reason: refund && refund.reason });
    var entry = outbox.enqueue('refund', order.orderNo, body, keys.refund(order.orderNo, reference), reference);
    return { status: outbox.deliver(entry) };
}

exports.cancelled = cancelled;
exports.refunded = refunded;
