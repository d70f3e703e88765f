'use strict';

/**
 * Idempotency keys of the cartridge's writes, derived from the order number, so a retry (a second
 * PlaceOrder, a job run, a reconcile) sends the same key and the sidecar replays instead of re-applying.
 * The sidecar accepts [A-Za-z0-9._:@/+=-], at most 128 characters.
 */
function safe(part) {
    return String(part).replace(/[^A-Za-z0-9._@+=-]/g, '_').slice(0, 40);
}

module.exports = {
    spend: function (orderNo) { return 'lk:spend:' + safe(orderNo); },
    redeem: function (orderNo, index) { return 'lk:redeem:' + safe(orderNo) + ':' + index; },
    order: function (orderNo) { return 'lk:order:' + safe(orderNo); },
    compensate: function (orderNo) { return 'lk:compensate:' + safe(orderNo); },
    cancel: function (orderNo) { return 'lk:cancel:' + safe(orderNo); },
    refund: function (orderNo, reference) { return 'lk:refund:' + safe(orderNo) + ':' + safe(reference); }
};
