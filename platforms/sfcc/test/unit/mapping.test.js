'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, fixture } = require('../support/env');
const objects = require('../support/objects');
const mapping = require('*/cartridge/scripts/loyaltykit/mapping');

function sampleBasket() {
    const basket = objects.basket({
        uuid: 'basket-1',
        customerId: 'cust-1',
        shipping: 4.9,
        codes: ['WELCOME10', 'NOPE'],
        campaignCodes: ['SFCC-OWN'],
        lines: [
            { uuid: 'pli-coffee', sku: 'COFFEE-1KG', price: 14.9, quantity: 2, category: 'coffee' },
            { uuid: 'pli-mug', sku: 'MUG', price: 9, quantity: 1, category: 'kitchen' }
        ]
    });
    objects.nativeLineDiscount(basket.productLineItems.toArray()[1], 'sfcc-mug-promo', 1);
    return basket;
}

test('basket body: lines after SFCC promotions, engine codes only, member, shipping (the evaluate fixture)', () => {
    setup();
    const body = mapping.basketBody(sampleBasket(), { channel: 'web', storeId: 'RefArch' });
    assert.deepEqual(body, fixture('evaluate.request.json'));
});

test('free-item lines the cartridge added are not sent; a guest has no customer id', () => {
    setup();
    const basket = objects.basket({ lines: [{ uuid: 'a', sku: 'A', price: 10 }] });
    const gift = basket.createProductLineItem(objects.product('GIFT', 3), {}, basket.defaultShipment);
    gift.custom.loyaltykitFreeItem = 'lk-f-1';
    const body = mapping.basketBody(basket, {});
    assert.deepEqual(body.lines.map((l) => l.sku), ['A']);
    assert.equal(body.customer_id, undefined);
});

test('money is a decimal string at the currency exponent, uneven unit prices round to the minor unit', () => {
    setup();
    assert.deepEqual(mapping.money(0.1 + 0.2, 'EUR'), { amount: '0.30', currency: 'EUR' });
    assert.deepEqual(mapping.money(1500, 'JPY'), { amount: '1500', currency: 'JPY' });
    assert.deepEqual(mapping.money(-2.005, 'EUR'), { amount: '-2.01', currency: 'EUR' });
    const basket = objects.basket({ lines: [{ uuid: 'x', sku: 'X', price: 10, quantity: 3 }] });
    objects.nativeLineDiscount(basket.productLineItems.toArray()[0], 'p', 1); // 29.00 over 3
    assert.equal(mapping.basketBody(basket, {}).lines[0].unit_price.amount, '9.67');
});

test('order body: the placed order with its receipts (the order fixture)', () => {
    setup();
    const order = objects.order({
        orderNo: '00001001',
        customerId: 'cust-1',
        shipping: 4.9,
        codes: ['WELCOME10', 'NOPE'],
        lines: [
            { uuid: 'pli-coffee', sku: 'COFFEE-1KG', price: 14.9, quantity: 2, category: 'coffee' },
            { uuid: 'pli-mug', sku: 'MUG', price: 9, quantity: 1, category: 'kitchen' }
        ]
    });
    objects.nativeLineDiscount(order.productLineItems.toArray()[1], 'sfcc-mug-promo', 1);
    order.custom.loyaltykitReceipts = JSON.stringify([fixture('spend.response.json').receipt]);
    assert.deepEqual(mapping.orderBody(order, { channel: 'web', storeId: 'RefArch' }), fixture('order.request.json'));
});

test('quote view: amounts as Numbers for SFCC, spendable cashback, codes and messages', () => {
    const view = mapping.quoteView(fixture('evaluate.response.json'));
    assert.equal(view.cashbackSpendable, 25);
    assert.deepEqual(view.discounts[0], { id: 'lk-d-3f1a9c', target: 'line', amount: 1.49, lineId: 'pli-coffee', label: '5 % off coffee' });
    assert.deepEqual(view.codes.map((c) => c.status), ['accepted', 'rejected']);
    assert.equal(view.messages[0].kind, 'promotion');
    assert.equal(view.freeItems[0].quantity, 1);
});

test('write bodies match their fixtures', () => {
    assert.deepEqual(mapping.spendBody('cust-1', '00001001', 10, 'EUR', 42.7), fixture('spend.request.json'));
    assert.equal(mapping.spendBody('cust-1', '00001001', 10, 'EUR').amount_due, undefined);
    assert.deepEqual(mapping.redeemBody('WELCOME10', '00001001', 'cust-1', null), fixture('redeem.request.json'));
    const order = fixture('order.request.json');
    assert.deepEqual(mapping.reversalBody(order, 'refund', { reference: 'RMA-7', lines: [{ line_id: 'pli-coffee', quantity: 1 }], reason: 'damaged' }),
        fixture('refund.request.json'));
    assert.deepEqual(mapping.reversalBody(order, 'cancel', { exported: false, reference: 'compensation', reason: 'order failed' }),
        fixture('compensation.request.json'));
    assert.deepEqual(mapping.priceQueryBody([{ sku: 'COFFEE-1KG', price: 14.9, category: 'coffee' }, { sku: 'MUG', price: 9 }], 'EUR', 'cust-1', 'web'),
        fixture('prices.request.json'));
});

test('order body after loyalty: lines and shipping before the loyalty discounts, which are the discount total', () => {
    setup({ 'POST /v1/evaluate': { json: fixture('evaluate.response.json') } });
    objects.product('GIFT-SPOON', 2.5);
    const basket = objects.basket({
        uuid: 'basket-1', customerId: 'cust-1', shipping: 4.9, codes: ['WELCOME10', 'NOPE'],
        lines: [{ uuid: 'pli-coffee', sku: 'COFFEE-1KG', price: 14.9, quantity: 2, category: 'coffee' }, { uuid: 'pli-mug', sku: 'MUG', price: 9, quantity: 1, category: 'kitchen' }]
    });
    objects.nativeLineDiscount(basket.productLineItems.toArray()[1], 'sfcc-mug-promo', 1);
    require('*/cartridge/scripts/loyaltykit/basketLoyalty').apply(basket);
    const order = objects.orderFromBasket(basket, '00001001');
    const body = mapping.orderBody(order, { channel: 'web', storeId: 'RefArch' });
    const expected = fixture('order.request.json');
    assert.deepEqual(body.lines, expected.lines);
    assert.deepEqual(body.shipping, { amount: '4.90', currency: 'EUR' });
    assert.deepEqual(body.discount_total, { amount: '10.02', currency: 'EUR' }); // 1.49 + 3.63 + 4.90
    assert.deepEqual(body.total, { amount: '32.68', currency: 'EUR' });
    // what the basket sends for evaluate is unchanged by the loyalty adjustments on it
    assert.deepEqual(mapping.basketBody(basket, { channel: 'web', storeId: 'RefArch' }), fixture('evaluate.request.json'));
});
