'use strict';

/**
 * Job step ExportLoyaltyOutbox: delivers the due outbox entries (orders, cancels, refunds) to the
 * sidecar. Ends in ERROR when an entry went dead in this run, so Business Manager shows it.
 */
var Status = require('dw/system/Status');
var outbox = require('*/cartridge/scripts/loyaltykit/outbox');

exports.execute = function (parameters) {
    var limit = parameters && parameters.BatchSize ? Number(parameters.BatchSize) : 500;
    var counts = outbox.deliverDue(new Date(), limit);
    var summary = 'delivered ' + counts.DONE + ', retry later ' + counts.RETRY + ', dead ' + counts.DEAD;
    return counts.DEAD > 0 ? new Status(Status.ERROR, 'DEAD_ENTRIES', summary) : new Status(Status.OK, 'OK', summary);
};
