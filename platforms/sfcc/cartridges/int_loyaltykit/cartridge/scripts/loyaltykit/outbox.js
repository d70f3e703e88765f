'use strict';

/**
 * A durable outbox of the cartridge's deferred writes (order export, cancel, refund), one custom
 * object (type LoyaltykitOutbox) per write, delivered by the ExportLoyaltyOutbox job step.
 *
 * States: QUEUED -> DONE | RETRY | DEAD; RETRY -> DONE | RETRY | DEAD; CANCELLED (an export never
 * sent because the order was cancelled first). A retryable failure waits an exponential backoff;
 * a refusal (400, 404, 422) or the last allowed attempt is DEAD, for an operator to look at. Each
 * entry keeps its idempotency key, so a redelivery after a crash is replayed by the sidecar,
 * never applied twice.
 */
var CustomObjectMgr = require('dw/object/CustomObjectMgr');
var Logger = require('dw/system/Logger');
var Transaction = require('dw/system/Transaction');
var config = require('*/cartridge/scripts/loyaltykit/config');
var service = require('*/cartridge/scripts/loyaltykit/service');

var TYPE = 'LoyaltykitOutbox';
var MAX_BACKOFF_MINUTES = 24 * 60;
var log = Logger.getLogger('loyaltykit', 'outbox');

/**
 * The state machine, pure. `entry`: {status, attempts}; `outcome`: {ok} or {ok: false, problem}.
 * Returns the changes: {status, attempts, nextAttemptAt?, lastError?, deliveredAt?}.
 */
function next(entry, outcome, now, settings) {
    if (entry.status === 'DONE' || entry.status === 'DEAD' || entry.status === 'CANCELLED') {
        return { status: entry.status, attempts: entry.attempts };
    }
    var attempts = entry.attempts + 1;
    if (outcome.ok) {
        return { status: 'DONE', attempts: attempts, deliveredAt: now, lastError: null, nextAttemptAt: null };
    }
    var problem = outcome.problem;
    var lastError = problem.code + (problem.status ? ' (HTTP ' + problem.status + ')' : '');
    // A refusal of the request itself is final; an auth or server failure is retried (an operator
    // fixes the credential or the sidecar, the entry goes out then).
    var retryable = problem.retryable || problem.status === 401 || problem.status === 403 || problem.status >= 500;
    if (!retryable || attempts >= settings.maxAttempts) {
        return { status: 'DEAD', attempts: attempts, lastError: lastError, nextAttemptAt: null };
    }
    var minutes = Math.min(settings.backoffMinutes * Math.pow(2, attempts - 1), MAX_BACKOFF_MINUTES);
    var waitMs = Math.max(minutes * 60000, (problem.retryAfter || 0) * 1000);
    return { status: 'RETRY', attempts: attempts, lastError: lastError, nextAttemptAt: new Date(now.getTime() + waitMs) };
}

function idOf(kind, orderNo, reference) {
    return kind + ':' + orderNo + (reference ? ':' + reference : '');
}

/** Queue a write (once: a second call with the same kind, order and reference returns the first). */
function enqueue(kind, orderNo, body, idempotencyKey, reference) {
    var id = idOf(kind, orderNo, reference);
    var existing = CustomObjectMgr.getCustomObject(TYPE, id);
    if (existing) {
        return existing;
    }
    var created;
    Transaction.wrap(function () {
        created = CustomObjectMgr.createCustomObject(TYPE, id);
        created.custom.kind = kind;
        created.custom.orderNo = orderNo;
        created.custom.payload = JSON.stringify(body);
        created.custom.idempotencyKey = idempotencyKey;
        created.custom.status = 'QUEUED';
        created.custom.attempts = 0;
        created.custom.nextAttemptAt = new Date();
    });
    return created;
}

function send(entry) {
    var body = JSON.parse(entry.custom.payload);
    return entry.custom.kind === 'order'
        ? service.placeOrder(body, entry.custom.idempotencyKey)
        : service.reverse(body, entry.custom.idempotencyKey);
}

function settings() {
    return { maxAttempts: config.outboxMaxAttempts(), backoffMinutes: config.outboxBackoffMinutes() };
}

/** Deliver one entry now and record the outcome. Returns the new status. */
function deliver(entry, now) {
    var status = entry.custom.status;
    if (status === 'DONE' || status === 'DEAD' || status === 'CANCELLED') {
        return status;
    }
    var outcome = send(entry);
    var change = next({ status: status, attempts: Number(entry.custom.attempts || 0) }, outcome, now || new Date(), settings());
    Transaction.wrap(function () {
        Object.keys(change).forEach(function (name) {
            entry.custom[name] = change[name];
        });
    });
    if (change.status === 'DEAD') {
        log.error('outbox entry {0} is dead after {1} attempts: {2}', entry.custom.kind + ':' + entry.custom.orderNo, change.attempts, change.lastError);
    }
    return change.status;
}

/** Deliver up to `limit` entries that are due. Returns counts per resulting status. */
function deliverDue(now, limit) {
    var counts = { DONE: 0, RETRY: 0, DEAD: 0, total: 0 };
    var due = CustomObjectMgr.queryCustomObjects(TYPE,
        'custom.status = {0} OR (custom.status = {1} AND custom.nextAttemptAt <= {2})', 'creationDate asc', 'QUEUED', 'RETRY', now);
    try {
        while (due.hasNext() && counts.total < limit) {
            var status = deliver(due.next(), now);
            counts[status] = (counts[status] || 0) + 1;
            counts.total += 1;
        }
    } finally {
        due.close();
    }
    return counts;
}

/** The order's export entry, if any. */
function exportEntry(orderNo) {
    return CustomObjectMgr.getCustomObject(TYPE, idOf('order', orderNo));
}

/** A cancel before export: the export is never sent. Returns whether the order reached the engine. */
function cancelExport(orderNo) {
    var entry = exportEntry(orderNo);
    if (!entry || entry.custom.status === 'DONE') {
        return !!entry;
    }
    if (entry.custom.status === 'DEAD') {
        return false;
    }
    Transaction.wrap(function () { entry.custom.status = 'CANCELLED'; });
    return false;
}

module.exports = { TYPE: TYPE, next: next, enqueue: enqueue, deliver: deliver, deliverDue: deliverDue, exportEntry: exportEntry, cancelExport: cancelExport };
