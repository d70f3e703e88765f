'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, fixture, fixtureText } = require('../support/env');
const objects = require('../support/objects');
const Order = require('dw/order/Order');

const processor = require('*/cartridge/scripts/hooks/payment/processor/loyaltykit_cashback');
const PAYMENT_PROCESSOR = { ID: 'LOYALTYKIT_CASHBACK' };

function memberBasket(spendable) {
    const basket = objects.basket({ customerId: 'cust-1', lines: [{ uuid: 'l1', sku: 'A', price: 30 }], shipping: 5 });
    basket.custom.loyaltykitCashbackSpendable = spendable;
    return basket;
}

function placedOrder(cashback, extra = {}) {
    const order = objects.order({
        orderNo: '00001001', customerId: 'cust-1', shipping: 4.9, codes: ['WELCOME10', 'NOPE'],
        lines: [
            { uuid: 'pli-coffee', sku: 'COFFEE-1KG', price: 14.9, quantity: 2, category: 'coffee' },
            { uuid: 'pli-mug', sku: 'MUG', price: 9, quantity: 1, category: 'kitchen' }
        ],
        ...extra
    });
    objects.nativeLineDiscount(order.productLineItems.toArray()[1], 'sfcc-mug-promo', 1);
    order.custom.loyaltykitCodeResults = JSON.stringify(fixture('evaluate.response.json').codes);
    const Money = require('dw/value/Money');
    const pi = order.createPaymentInstrument('LOYALTYKIT_CASHBACK', new Money(cashback, 'EUR'));
    return { order, pi };
}

test('Handle: a partial amount as asked, capped by the spendable cashback and by the total; one instrument', () => {
    setup();
    const basket = memberBasket(25);
    assert.equal(processor.Handle(basket, { amount: 10 }).amount, 10);
    assert.equal(processor.Handle(basket, { amount: 100 }).amount, 25);
    assert.equal(basket.getPaymentInstruments('LOYALTYKIT_CASHBACK').size(), 1);
    assert.equal(basket.getPaymentInstruments('LOYALTYKIT_CASHBACK').toArray()[0].paymentTransaction.amount.value, 25);
    const rich = memberBasket(500);
    const full = processor.Handle(rich, {});
    assert.deepEqual([full.amount, full.full], [35, true]);
});

test('Handle refuses guests, nothing spendable and a zero amount', () => {
    setup();
    assert.equal(processor.Handle(objects.basket({ lines: [{ sku: 'A', price: 1 }] }), { amount: 1 }).error, true);
    assert.equal(processor.Handle(memberBasket(0), { amount: 5 }).error, true);
    assert.equal(processor.Handle(memberBasket(10), { amount: 0 }).error, true);
});

test('Authorize spends with the order number as idempotency key and keeps the receipt', () => {
    const env = setup({ 'POST /v1/cashback/spend': { json: fixture('spend.response.json') } });
    const { order, pi } = placedOrder(10);
    const result = processor.Authorize('00001001', pi, PAYMENT_PROCESSOR);
    assert.equal(result.error, false);
    assert.equal(env.calls[0].headers['Idempotency-Key'], 'lk:spend:00001001');
    assert.deepEqual(env.calls[0].body, fixture('spend.request.json'));
    assert.equal(pi.paymentTransaction.transactionID, 'led-4410');
    assert.equal(pi.paymentTransaction.paymentProcessor, PAYMENT_PROCESSOR);
    assert.equal(order.custom.loyaltykitSpendState, 'authorized');
    assert.equal(JSON.parse(order.custom.loyaltykitReceipts)[0].engine_ref, 'led-4410');
});

test('Authorize: a refusal fails the payment; a timeout leaves the spend unknown', () => {
    setup({ 'POST /v1/cashback/spend': { status: 422, text: fixtureText('problem.insufficient_balance.json') } });
    let { order, pi } = placedOrder(10);
    const refused = processor.Authorize('00001001', pi, PAYMENT_PROCESSOR);
    assert.equal(refused.error, true);
    assert.match(refused.serverErrors[0], /Not enough cashback/);
    assert.equal(order.custom.loyaltykitSpendState, 'refused');
    setup({ 'POST /v1/cashback/spend': { unavailable: 'TIMEOUT' } });
    ({ order, pi } = placedOrder(10));
    assert.equal(processor.Authorize('00001001', pi, PAYMENT_PROCESSOR).error, true);
    assert.equal(order.custom.loyaltykitSpendState, 'unknown');
    assert.deepEqual(JSON.parse(order.custom.loyaltykitSpendRequest), fixture('spend.request.json'));
});

function checkoutHelpersWith(base) {
    global.sfccSuperModules.checkoutHelpers = base;
    const file = require.resolve('*/cartridge/scripts/checkout/checkoutHelpers');
    delete require.cache[file];
    return require(file);
}

test('PlaceOrder: codes redeemed, cashback spent, a later card decline compensates with one keyed cancel', () => {
    const env = setup({
        'POST /v1/vouchers/redeem': { json: fixture('redeem.response.json') },
        'POST /v1/cashback/spend': { json: fixture('spend.response.json') },
        'POST /v1/reversals': { json: { ...fixture('refund.response.json'), kind: 'cancel' } }
    }, { loyaltykitChannel: 'web', loyaltykitStoreId: 'RefArch' });
    const { order, pi } = placedOrder(10);
    const base = {
        handlePayments(o, orderNo) {
            assert.equal(processor.Authorize(orderNo, pi, PAYMENT_PROCESSOR).error, false);
            o.status = Order.ORDER_STATUS_FAILED; // SFRA fails the order when the card is declined
            return { error: true };
        },
        placeOrder() { throw new Error('not reached'); }
    };
    const helpers = checkoutHelpersWith(base);
    assert.deepEqual(helpers.handlePayments(order, '00001001'), { error: true });
    assert.deepEqual(env.calls.map((c) => c.route), ['POST /v1/vouchers/redeem', 'POST /v1/cashback/spend', 'POST /v1/reversals']);
    assert.deepEqual(env.calls[0].body, fixture('redeem.request.json'));
    assert.equal(env.calls[0].headers['Idempotency-Key'], 'lk:redeem:00001001:0');
    const reversal = env.calls[2];
    assert.equal(reversal.headers['Idempotency-Key'], 'lk:compensate:00001001');
    assert.deepEqual([reversal.body.kind, reversal.body.exported], ['cancel', false]);
    assert.deepEqual(reversal.body.order.receipts.map((r) => r.operation), ['redeem_voucher', 'spend_cashback']);
    assert.equal(order.custom.loyaltykitSpendState, 'reversed');
});

test('PlaceOrder: a refused voucher fails the order before any payment', () => {
    const env = setup({ 'POST /v1/vouchers/redeem': { status: 422, text: JSON.stringify({ ...fixture('problem.insufficient_balance.json'), code: 'voucher_already_redeemed' }) } });
    const { order } = placedOrder(10);
    let paid = false;
    const helpers = checkoutHelpersWith({ handlePayments() { paid = true; return { error: false }; } });
    assert.deepEqual(helpers.handlePayments(order, '00001001'), { error: true });
    assert.equal(paid, false);
    assert.equal(order.status, Order.ORDER_STATUS_FAILED);
    assert.deepEqual(env.calls.map((c) => c.route), ['POST /v1/vouchers/redeem']); // nothing to reverse
});

test('PlaceOrder succeeds: the order is queued in the outbox for export, once', () => {
    setup({}, { loyaltykitChannel: 'web', loyaltykitStoreId: 'RefArch' });
    const { order } = placedOrder(10);
    const helpers = checkoutHelpersWith({ placeOrder: () => ({ error: false }) });
    helpers.placeOrder(order, { status: 'success' });
    helpers.placeOrder(order, { status: 'success' });
    const outbox = require('*/cartridge/scripts/loyaltykit/outbox');
    const entry = outbox.exportEntry('00001001');
    assert.equal(entry.custom.status, 'QUEUED');
    assert.equal(entry.custom.idempotencyKey, 'lk:order:00001001');
    assert.equal(JSON.parse(entry.custom.payload).ref, '00001001');
    assert.equal(require('dw/object/CustomObjectMgr').__store.LoyaltykitOutbox.size, 1);
});

test('reconcile job: a failed order with an unknown spend is settled by replaying the key, then reversed', () => {
    let spendAnswer = { unavailable: 'TIMEOUT' };
    const env = setup({
        'POST /v1/cashback/spend': () => spendAnswer,
        'POST /v1/reversals': { json: { ...fixture('refund.response.json'), kind: 'cancel' } }
    });
    const { order, pi } = placedOrder(10);
    processor.Authorize('00001001', pi, PAYMENT_PROCESSOR);
    order.status = Order.ORDER_STATUS_FAILED;
    const untouched = placedOrder(5, { orderNo: '00001002' }).order; // placed fine: not the job's business
    untouched.custom.loyaltykitSpendState = 'authorized';
    const job = require('*/cartridge/scripts/jobs/reconcileSpends');
    // still unknown: the job reports it pending and reverses nothing
    assert.equal(job.execute({}).code, 'PENDING');
    assert.equal(env.calls.filter((c) => c.route === 'POST /v1/reversals').length, 0);
    spendAnswer = { headers: { 'Idempotent-Replayed': 'true' }, json: fixture('spend.response.json') };
    assert.equal(job.execute({}).code, 'OK');
    const spends = env.calls.filter((c) => c.route === 'POST /v1/cashback/spend');
    assert.ok(spends.every((c) => c.headers['Idempotency-Key'] === 'lk:spend:00001001'));
    assert.deepEqual(spends[spends.length - 1].body, fixture('spend.request.json'));
    const reversals = env.calls.filter((c) => c.route === 'POST /v1/reversals');
    assert.equal(reversals.length, 1);
    assert.equal(reversals[0].body.order.ref, '00001001');
    assert.equal(order.custom.loyaltykitSpendState, 'reversed');
    assert.equal(job.execute({}).code, 'OK');
    assert.equal(env.calls.filter((c) => c.route === 'POST /v1/reversals').length, 1);
});

test('PlaceOrder: a redemption whose outcome is unknown is settled with the same key before going on', () => {
    const env = setup({
        'POST /v1/vouchers/redeem': (req, n) => (n === 1 ? { status: 504, text: fixtureText('problem.outcome_unknown.json') } : { headers: { 'Idempotent-Replayed': 'true' }, json: fixture('redeem.response.json') })
    });
    const { order } = placedOrder(10);
    const helpers = checkoutHelpersWith({ handlePayments: () => ({ error: false }) });
    assert.deepEqual(helpers.handlePayments(order, '00001001'), { error: false });
    const redeems = env.calls.filter((c) => c.route === 'POST /v1/vouchers/redeem');
    assert.deepEqual(redeems.map((c) => c.headers['Idempotency-Key']), ['lk:redeem:00001001:0', 'lk:redeem:00001001:0']);
    assert.deepEqual(redeems[0].body, redeems[1].body);
    assert.equal(JSON.parse(order.custom.loyaltykitReceipts)[0].operation, 'redeem_voucher');
});
