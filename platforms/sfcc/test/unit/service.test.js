'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, fixture, fixtureText, CREDENTIAL } = require('../support/env');
const service = require('*/cartridge/scripts/loyaltykit/service');
const redact = require('*/cartridge/scripts/loyaltykit/redact');

test('a write: URL from the credential, Basic auth, JSON body, Idempotency-Key, write timeout, write service', () => {
    const env = setup({ 'POST /v1/cashback/spend': { json: fixture('spend.response.json') } }, { loyaltykitWriteTimeoutMs: 7000 });
    const answer = service.spend(fixture('spend.request.json'), 'lk:spend:00001001');
    assert.equal(answer.ok, true);
    assert.deepEqual(answer.body, fixture('spend.response.json'));
    const [call] = env.calls;
    assert.equal(call.service, 'loyaltykit.http.sidecar.write');
    assert.equal(call.headers['Idempotency-Key'], 'lk:spend:00001001');
    assert.equal(call.headers['Content-Type'], 'application/json');
    assert.equal(call.headers.Authorization, 'Basic ' + Buffer.from(CREDENTIAL.user + ':' + CREDENTIAL.password).toString('base64'));
    assert.match(call.headers['X-Request-Id'], /^[0-9a-f]{32}$/);
    assert.equal(call.timeout, 7000);
    assert.deepEqual(call.body, fixture('spend.request.json'));
});

test('a read has no Idempotency-Key, uses the read service and its shorter timeout', () => {
    const env = setup({ 'POST /v1/evaluate': { json: fixture('evaluate.response.json') }, 'GET /v1/orders/A%2FB': { json: fixture('order.response.json') } });
    assert.equal(service.evaluate(fixture('evaluate.request.json')).ok, true);
    assert.equal(service.orderStatus('A/B').ok, true);
    assert.equal(env.calls[0].headers['Idempotency-Key'], undefined);
    assert.equal(env.calls[0].service, 'loyaltykit.http.sidecar.read');
    assert.equal(env.calls[0].timeout, 2000);
    assert.equal(env.calls[1].body, null);
    assert.equal(env.calls[1].headers['Content-Type'], undefined);
});

test('a replayed answer is flagged', () => {
    setup({ 'POST /v1/orders': { status: 202, headers: { 'idempotent-replayed': 'true' }, json: fixture('order.response.json') } });
    const answer = service.placeOrder(fixture('order.request.json'), 'lk:order:00001001');
    assert.deepEqual([answer.ok, answer.status, answer.replayed], [true, 202, true]);
});

test('service log lines carry no code, e-mail, phone, card number, customer id or key', () => {
    const secretsIn = {
        code: 'WELCOME10', order_ref: '00001001', customer_id: 'cust-1',
        basket: { coupon_codes: ['SECRET-CODE'], lines: [{ name: 'call +49 151 2345678 or ann@example.com, card 4111 1111 1111 1111' }] }
    };
    const env = setup({ 'POST /v1/vouchers/redeem': { json: { ...fixture('redeem.response.json'), label: 'for ann@example.com' } } });
    service.redeem(secretsIn, 'lk:redeem:00001001:0');
    service.identify({ kind: 'email', value: 'ann@example.com' });
    const text = env.log.map((l) => l.text).join('\n');
    for (const secret of ['WELCOME10', 'SECRET-CODE', 'cust-1', 'ann@example.com', '+49 151 2345678', '4111 1111 1111 1111', CREDENTIAL.password]) {
        assert.ok(!text.includes(secret), 'log contains ' + secret);
    }
    assert.ok(text.includes('00001001'), 'order numbers stay readable');
    assert.ok(text.includes('redeem_voucher'));
});

test('redaction of plain text (non-JSON messages)', () => {
    const out = redact.redact('Authorization: Basic c2ZjYzpzZWNyZXQ= for ann@example.com paid with 5500-0000-0000-0004, phone +33 6 12 34 56 78');
    assert.equal(out, 'Authorization: Basic *** for *** paid with ***, phone ***');
});

test('problem+json: code, retryable, field, idempotency key and retry-after are read', () => {
    setup({
        'POST /v1/cashback/spend': { status: 422, headers: { 'Content-Type': 'application/problem+json' }, text: fixtureText('problem.insufficient_balance.json') },
        'POST /v1/orders': (req, n) => (n === 1
            ? { status: 409, headers: { 'Retry-After': '1' }, text: fixtureText('problem.in_flight.json') }
            : { status: 400, text: fixtureText('problem.invalid_request.json') }),
        'POST /v1/reversals': { status: 504, text: fixtureText('problem.outcome_unknown.json') }
    });
    const refused = service.spend(fixture('spend.request.json'), 'k1').problem;
    assert.deepEqual([refused.status, refused.code, refused.retryable, refused.outcomeUnknown], [422, 'insufficient_balance', false, false]);
    const busy = service.placeOrder({}, 'k2').problem;
    assert.deepEqual([busy.code, busy.retryable, busy.retryAfter], ['idempotency_in_flight', true, 1]);
    const invalid = service.placeOrder({}, 'k2').problem;
    assert.deepEqual([invalid.code, invalid.field, invalid.retryable], ['invalid_request', 'lines.0.quantity', false]);
    const unknown = service.reverse({}, 'k3').problem;
    assert.deepEqual([unknown.code, unknown.outcomeUnknown, unknown.idempotencyKey], ['outcome_unknown', true, 'lk:spend:00001001']);
});

test('not a problem document, a timeout, a broken circuit, a missing configuration', () => {
    setup({
        'POST /v1/evaluate': { status: 502, headers: { 'Content-Type': 'text/html' }, text: '<html>Bad gateway</html>' },
        'POST /v1/cashback/spend': { unavailable: 'TIMEOUT' },
        'POST /v1/vouchers/redeem': { unavailable: 'CIRCUIT_BROKEN' }
    });
    const gateway = service.evaluate({}).problem;
    assert.deepEqual([gateway.code, gateway.retryable], ['http_502', true]);
    const timeout = service.spend({}, 'lk:spend:1').problem;
    assert.deepEqual([timeout.code, timeout.outcomeUnknown, timeout.idempotencyKey], ['outcome_unknown', true, 'lk:spend:1']);
    const circuit = service.redeem({}, 'k').problem;
    assert.deepEqual([circuit.code, circuit.retryable, circuit.outcomeUnknown], ['engine_unavailable', true, false]);
    const readTimeout = require('dw/svc/LocalServiceRegistry');
    readTimeout.__configure('loyaltykit.http.sidecar.read', undefined);
    const config = service.evaluate({}).problem;
    assert.deepEqual([config.code, config.retryable], ['engine_unavailable', false]);
});

test('an unreadable 2xx answer to a write is an unknown outcome, not a success', () => {
    setup({ 'POST /v1/cashback/spend': { status: 200, text: '{not json' } });
    const answer = service.spend({}, 'lk:spend:9');
    assert.equal(answer.ok, false);
    assert.deepEqual([answer.problem.code, answer.problem.outcomeUnknown, answer.problem.idempotencyKey], ['outcome_unknown', true, 'lk:spend:9']);
});

test('signed requests: the sidecar\'s v1 HMAC over timestamp, method, path and body hash, keyed by the API key\'s hash', () => {
    const crypto = require('crypto');
    const env = setup({ 'POST /v1/cashback/spend': { json: fixture('spend.response.json') }, 'GET /v1/orders/A%2FB': { json: fixture('order.response.json') } },
        { loyaltykitSignRequests: true });
    service.spend(fixture('spend.request.json'), 'lk:spend:00001001');
    service.orderStatus('A/B');
    const sha = (t) => crypto.createHash('sha256').update(t).digest('hex');
    const expected = (call, path, body) => 'v1=' + crypto.createHmac('sha256', sha(CREDENTIAL.password))
        .update(`${call.headers['X-Loyaltykit-Timestamp']}.${call.route.split(' ')[0]}.${path}.${sha(body)}`).digest('hex');
    const [spend, status] = env.calls;
    assert.ok(Math.abs(Number(spend.headers['X-Loyaltykit-Timestamp']) - Date.now() / 1000) < 5);
    assert.equal(spend.headers['X-Loyaltykit-Signature'], expected(spend, '/v1/cashback/spend', JSON.stringify(fixture('spend.request.json'))));
    assert.equal(status.headers['X-Loyaltykit-Signature'], expected(status, '/v1/orders/A/B', ''));
});

test('unsigned by default', () => {
    const env = setup({ 'POST /v1/evaluate': { json: fixture('evaluate.response.json') } });
    service.evaluate({});
    assert.equal(env.calls[0].headers['X-Loyaltykit-Signature'], undefined);
});
