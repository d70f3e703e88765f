'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, fixture, fixtureText } = require('../support/env');
const objects = require('../support/objects');
const outbox = require('*/cartridge/scripts/loyaltykit/outbox');
const job = require('*/cartridge/scripts/jobs/exportOutbox');
const reversalHooks = require('*/cartridge/scripts/hooks/orderReversal');

const SETTINGS = { maxAttempts: 3, backoffMinutes: 5 };
const NOW = new Date('2026-11-29T12:00:00Z');
const fail = (problem) => ({ ok: false, problem: { status: 503, code: 'engine_unavailable', retryable: true, retryAfter: null, ...problem } });

test('state machine: delivered, retried with exponential backoff (or Retry-After), dead when refused or out of attempts', () => {
    assert.deepEqual(outbox.next({ status: 'QUEUED', attempts: 0 }, { ok: true }, NOW, SETTINGS),
        { status: 'DONE', attempts: 1, deliveredAt: NOW, lastError: null, nextAttemptAt: null });
    const first = outbox.next({ status: 'QUEUED', attempts: 0 }, fail(), NOW, SETTINGS);
    assert.deepEqual([first.status, first.attempts, first.nextAttemptAt - NOW, first.lastError], ['RETRY', 1, 5 * 60000, 'engine_unavailable (HTTP 503)']);
    const second = outbox.next({ status: 'RETRY', attempts: 1 }, fail(), NOW, SETTINGS);
    assert.equal(second.nextAttemptAt - NOW, 10 * 60000);
    const later = outbox.next({ status: 'RETRY', attempts: 1 }, fail({ retryAfter: 3600 }), NOW, SETTINGS);
    assert.equal(later.nextAttemptAt - NOW, 3600 * 1000);
    assert.equal(outbox.next({ status: 'RETRY', attempts: 2 }, fail(), NOW, SETTINGS).status, 'DEAD');
    const refused = outbox.next({ status: 'QUEUED', attempts: 0 }, fail({ status: 400, code: 'invalid_request', retryable: false }), NOW, SETTINGS);
    assert.deepEqual([refused.status, refused.lastError], ['DEAD', 'invalid_request (HTTP 400)']);
    for (const status of [401, 403, 500]) {
        assert.equal(outbox.next({ status: 'QUEUED', attempts: 0 }, fail({ status, code: 'x', retryable: false }), NOW, SETTINGS).status, 'RETRY');
    }
    for (const status of [404, 422]) {
        assert.equal(outbox.next({ status: 'QUEUED', attempts: 0 }, fail({ status, code: 'x', retryable: false }), NOW, SETTINGS).status, 'DEAD');
    }
    for (const final of ['DONE', 'DEAD', 'CANCELLED']) {
        assert.deepEqual(outbox.next({ status: final, attempts: 2 }, { ok: true }, NOW, SETTINGS), { status: final, attempts: 2 });
    }
});

function queueOrder(orderNo) {
    return outbox.enqueue('order', orderNo, { ...fixture('order.request.json'), ref: orderNo }, 'lk:order:' + orderNo);
}

test('the export job: delivers due entries with their keys, leaves failed ones for later, makes dead ones visible', () => {
    let sidecarUp = false;
    const env = setup({
        'POST /v1/orders': (req) => {
            const ref = JSON.parse(req.body).ref;
            if (ref === 'BAD') return { status: 400, text: fixtureText('problem.invalid_request.json') };
            return sidecarUp ? { status: 202, json: { ...fixture('order.response.json'), order_ref: ref } } : { unavailable: 'TIMEOUT' };
        }
    }, { loyaltykitOutboxMaxAttempts: 3, loyaltykitOutboxBackoffMinutes: 5 });
    queueOrder('A');
    queueOrder('B');
    queueOrder('BAD');
    const run1 = job.execute({});
    assert.deepEqual([run1.status, run1.code], [1, 'DEAD_ENTRIES']);
    assert.equal(outbox.exportEntry('A').custom.status, 'RETRY');
    assert.equal(outbox.exportEntry('BAD').custom.status, 'DEAD');
    assert.equal(outbox.exportEntry('BAD').custom.lastError, 'invalid_request (HTTP 400)');
    // not due yet: nothing is sent
    const sent = env.calls.length;
    assert.equal(job.execute({}).message, 'delivered 0, retry later 0, dead 0');
    assert.equal(env.calls.length, sent);
    // due again and the sidecar is back: delivered with the same keys
    sidecarUp = true;
    outbox.exportEntry('A').custom.nextAttemptAt = new Date(Date.now() - 1000);
    outbox.exportEntry('B').custom.nextAttemptAt = new Date(Date.now() - 1000);
    const run3 = job.execute({});
    assert.deepEqual([run3.code, run3.message], ['OK', 'delivered 2, retry later 0, dead 0']);
    assert.equal(outbox.exportEntry('A').custom.status, 'DONE');
    assert.equal(outbox.exportEntry('A').custom.attempts, 2);
    const keysA = env.calls.filter((c) => c.body.ref === 'A').map((c) => c.headers['Idempotency-Key']);
    assert.deepEqual(keysA, ['lk:order:A', 'lk:order:A']);
    assert.equal(job.execute({}).message, 'delivered 0, retry later 0, dead 0');
});

test('the job honours its batch size', () => {
    const env = setup({ 'POST /v1/orders': { status: 202, json: fixture('order.response.json') } });
    ['1', '2', '3'].forEach(queueOrder);
    assert.equal(job.execute({ BatchSize: 2 }).message, 'delivered 2, retry later 0, dead 0');
    assert.deepEqual(env.calls.map((c) => c.body.ref), ['1', '2']);
});

function placedOrder() {
    const order = objects.order({ orderNo: '00001001', customerId: 'cust-1', lines: [{ uuid: 'pli-coffee', sku: 'COFFEE-1KG', price: 14.9, quantity: 2 }] });
    return order;
}

test('cancel before export: the export is never sent, the reversal says so', () => {
    const env = setup({ 'POST /v1/reversals': { json: { ...fixture('refund.response.json'), kind: 'cancel' } } });
    const order = placedOrder();
    queueOrder('00001001');
    const result = reversalHooks.cancelled(order, 'customer asked');
    assert.equal(result.status, 'DONE');
    assert.equal(outbox.exportEntry('00001001').custom.status, 'CANCELLED');
    assert.deepEqual(env.calls.map((c) => c.route), ['POST /v1/reversals']);
    assert.deepEqual([env.calls[0].body.kind, env.calls[0].body.exported, env.calls[0].headers['Idempotency-Key']], ['cancel', false, 'lk:cancel:00001001']);
    assert.equal(job.execute({}).message, 'delivered 0, retry later 0, dead 0');
});

test('refund after export: a partial refund by line, keyed by its reference; queued when the sidecar is down', () => {
    let up = false;
    const env = setup({
        'POST /v1/orders': { status: 202, json: fixture('order.response.json') },
        'POST /v1/reversals': () => (up ? { json: fixture('refund.response.json') } : { unavailable: 'ERROR' })
    });
    const order = placedOrder();
    queueOrder('00001001');
    job.execute({});
    const result = reversalHooks.refunded(order, { reference: 'RMA-7', lines: [{ line_id: 'pli-coffee', quantity: 1 }] });
    assert.equal(result.status, 'RETRY');
    const refund = env.calls.find((c) => c.route === 'POST /v1/reversals');
    assert.deepEqual([refund.body.kind, refund.body.exported, refund.body.reference, refund.body.lines], ['refund', true, 'RMA-7', [{ line_id: 'pli-coffee', quantity: '1' }]]);
    assert.equal(refund.headers['Idempotency-Key'], 'lk:refund:00001001:RMA-7');
    up = true;
    // the same refund reported twice is one entry
    assert.equal(reversalHooks.refunded(order, { reference: 'RMA-7', lines: [{ line_id: 'pli-coffee', quantity: 1 }] }).status, 'DONE');
    assert.equal(require('dw/object/CustomObjectMgr').__store.LoyaltykitOutbox.size, 2);
});
