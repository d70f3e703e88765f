'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup } = require('../support/env');
const objects = require('../support/objects');
const member = require('*/cartridge/scripts/loyaltykit/member');

const NOT_FOUND = { status: 404, text: JSON.stringify({ type: 'urn:loyaltykit:error:customer_not_found', title: 'Not found', status: 404, detail: 'no member', code: 'customer_not_found', retryable: false, request_id: 'r' }) };

test('a registered shopper is found once by e-mail and the member id is kept on the profile', () => {
    const env = setup({ 'POST /v1/customers/identify': { json: { id: 'cust-9', balances: [] } } });
    global.session = { privacy: {} };
    const basket = objects.basket({ email: 'ann@example.com', lines: [{ sku: 'A', price: 1 }] });
    assert.equal(member.ensure(basket.customer), 'cust-9');
    assert.equal(member.ensure(basket.customer), 'cust-9');
    assert.equal(env.calls.length, 1);
    assert.deepEqual(env.calls[0].body, { kind: 'email', value: 'ann@example.com' });
    assert.equal(basket.customer.profile.custom.loyaltykitCustomerId, 'cust-9');
});

test('by customer number when so configured; a non-member is remembered for the session; guests are not looked up', () => {
    const env = setup({ 'POST /v1/customers/identify': NOT_FOUND }, { loyaltykitIdentifyBy: 'external_id' });
    global.session = { privacy: {} };
    const basket = objects.basket({ email: 'bob@example.com', customerNo: '00042', lines: [{ sku: 'A', price: 1 }] });
    assert.equal(member.ensure(basket.customer), null);
    assert.equal(member.ensure(basket.customer), null);
    assert.equal(env.calls.length, 1);
    assert.deepEqual(env.calls[0].body, { kind: 'external_id', value: '00042' });
    assert.equal(member.ensure(objects.basket({ lines: [{ sku: 'A', price: 1 }] }).customer), null);
    assert.equal(env.calls.length, 1);
});

test('the sidecar down: no id, no memory of it, checkout goes on', () => {
    const env = setup({ 'POST /v1/customers/identify': { unavailable: 'TIMEOUT' } });
    global.session = { privacy: {} };
    const basket = objects.basket({ email: 'ann@example.com', lines: [{ sku: 'A', price: 1 }] });
    assert.equal(member.ensure(basket.customer), null);
    assert.equal(member.ensure(basket.customer), null);
    assert.equal(env.calls.length, 2);
    assert.ok(env.logger.some((l) => l.level === 'warn' && l.text === 'member lookup unavailable (timeout)'));
    assert.ok(!JSON.stringify(env.logger).includes('ann@example.com'));
});
