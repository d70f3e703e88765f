'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, fixture } = require('../support/env');
const objects = require('../support/objects');
const adjustments = require('*/cartridge/scripts/loyaltykit/adjustments');
const basketLoyalty = require('*/cartridge/scripts/loyaltykit/basketLoyalty');
const mapping = require('*/cartridge/scripts/loyaltykit/mapping');
const HookMgr = require('dw/system/HookMgr');
const Status = require('dw/system/Status');

function sampleBasket() {
    objects.product('GIFT-SPOON', 2.5);
    const basket = objects.basket({
        uuid: 'basket-1',
        customerId: 'cust-1',
        shipping: 4.9,
        codes: ['WELCOME10', 'NOPE'],
        lines: [
            { uuid: 'pli-coffee', sku: 'COFFEE-1KG', price: 14.9, quantity: 2, category: 'coffee' },
            { uuid: 'pli-mug', sku: 'MUG', price: 9, quantity: 1, category: 'kitchen' }
        ]
    });
    objects.nativeLineDiscount(basket.productLineItems.toArray()[1], 'sfcc-mug-promo', 1);
    return basket;
}

const QUOTE = { 'POST /v1/evaluate': { json: fixture('evaluate.response.json') } };

function loyaltyAdjustments(basket) {
    const out = [];
    basket.priceAdjustments.toArray().forEach((pa) => out.push(['order', pa.promotionID, pa.priceValue]));
    basket.productLineItems.toArray().forEach((pli) => pli.priceAdjustments.toArray().forEach((pa) => {
        if (pa.custom.loyaltykitEffectId) out.push([pli.productID, pa.promotionID, pa.priceValue]);
    }));
    basket.defaultShipment.standardShippingLineItem.shippingPriceAdjustments.toArray().forEach((pa) => out.push(['shipping', pa.promotionID, pa.priceValue]));
    return out;
}

test('plan: order, line and shipping discounts by effect id; a discount on an unknown line is skipped', () => {
    const view = mapping.quoteView(fixture('evaluate.response.json'));
    const plan = adjustments.plan(view, { lineIds: ['pli-coffee', 'pli-mug'], freeLines: [], previousFreeIds: [], rejectedFreeIds: [] });
    assert.deepEqual(plan.order, [{ id: 'lk-d-77b2e0', amount: 3.63, label: '10 % welcome' }]);
    assert.deepEqual(plan.lines, [{ lineId: 'pli-coffee', id: 'lk-d-3f1a9c', amount: 1.49, label: '5 % off coffee' }]);
    assert.deepEqual(plan.shipping, [{ id: 'lk-d-c41d08', amount: 4.9, label: 'Free shipping' }]);
    assert.deepEqual(plan.skipped, [{ id: 'lk-d-0dd000', reason: 'unknown_line' }]);
    assert.deepEqual(plan.addFree.map((f) => f.sku), ['GIFT-SPOON']);
});

test('plan: a free item already in the basket is kept, one no longer granted is removed, one the shopper removed is not re-added', () => {
    const view = mapping.quoteView(fixture('evaluate.response.json'));
    const kept = adjustments.plan(view, { lineIds: [], freeLines: [{ uuid: 'g1', effectId: 'lk-f-5e0a11' }, { uuid: 'g2', effectId: 'lk-f-old' }], previousFreeIds: ['lk-f-5e0a11', 'lk-f-old'], rejectedFreeIds: [] });
    assert.deepEqual(kept.keepFree.map((f) => f.uuid), ['g1']);
    assert.deepEqual(kept.removeFree, ['g2']);
    assert.deepEqual(kept.addFree, []);
    const rejected = adjustments.plan(view, { lineIds: [], freeLines: [], previousFreeIds: ['lk-f-5e0a11'], rejectedFreeIds: [] });
    assert.deepEqual(rejected.addFree, []);
    assert.deepEqual(rejected.rejectedFreeIds, ['lk-f-5e0a11']);
});

test('apply: adjustments at every level, the free item added, marked and free, state on the basket', () => {
    const env = setup(QUOTE);
    const basket = sampleBasket();
    const outcome = basketLoyalty.apply(basket);
    assert.equal(outcome.applied, true);
    assert.deepEqual(loyaltyAdjustments(basket).filter((a) => a[0] !== 'GIFT-SPOON'), [
        ['order', 'lk-d-77b2e0', -3.63], ['COFFEE-1KG', 'lk-d-3f1a9c', -1.49], ['shipping', 'lk-d-c41d08', -4.9]]);
    const gift = basket.productLineItems.toArray().find((p) => p.productID === 'GIFT-SPOON');
    assert.equal(gift.custom.loyaltykitFreeItem, 'lk-f-5e0a11');
    assert.equal(gift.adjustedPrice.value, 0);
    assert.equal(basket.custom.loyaltykitDegraded, false);
    assert.deepEqual(JSON.parse(basket.custom.loyaltykitCodeResults).map((c) => [c.code, c.status]), [['WELCOME10', 'accepted'], ['NOPE', 'rejected']]);
    assert.equal(JSON.parse(basket.custom.loyaltykitMessages)[0].text, 'Spend 12.20 more for a free tote bag');
    assert.equal(basket.custom.loyaltykitCashbackSpendable, 25);
    // 29.80 - 1.49 + 8.00 + 0 (gift) - 3.63 + 0 (shipping 4.90 - 4.90)
    assert.equal(basket.totalGrossPrice.value, 32.68);
    assert.equal(env.calls.length, 1);
});

test('calculate runs several times per request: one evaluate per basket fingerprint, and the adjustments are replaced, not stacked', () => {
    const env = setup(QUOTE);
    global.request = { custom: {} };
    const basket = sampleBasket();
    basketLoyalty.apply(basket);
    basketLoyalty.apply(basket);
    assert.equal(env.calls.length, 1);
    assert.equal(loyaltyAdjustments(basket).filter((a) => a[0] === 'order').length, 1);
    assert.equal(basket.productLineItems.toArray().filter((p) => p.productID === 'GIFT-SPOON').length, 1);
    basket.productLineItems.toArray()[0].setQuantityValue(3); // another basket, another fingerprint
    basketLoyalty.apply(basket);
    assert.equal(env.calls.length, 2);
    assert.equal(env.calls[1].body.lines[0].quantity, '3');
});

test('sidecar down: stale loyalty adjustments and free items are removed, the basket is degraded, checkout goes on', () => {
    let down = false;
    const env = setup({ 'POST /v1/evaluate': () => (down ? { unavailable: 'TIMEOUT' } : { json: fixture('evaluate.response.json') }) });
    const basket = sampleBasket();
    basketLoyalty.apply(basket);
    assert.ok(loyaltyAdjustments(basket).length > 0);
    down = true;
    const outcome = basketLoyalty.apply(basket);
    assert.deepEqual([outcome.applied, outcome.degraded, outcome.reason, outcome.error], [false, true, 'timeout', undefined]);
    assert.deepEqual(loyaltyAdjustments(basket), []);
    assert.deepEqual(basket.productLineItems.toArray().map((p) => p.productID), ['COFFEE-1KG', 'MUG']);
    // SFCC's own promotion stays
    assert.equal(basket.productLineItems.toArray()[1].adjustedPrice.value, 8);
    assert.equal(basket.custom.loyaltykitDegraded, true);
    assert.equal(basket.custom.loyaltykitCashbackSpendable, null);
    assert.equal(JSON.parse(basket.custom.loyaltykitMessages)[0].kind, 'warning');
    assert.ok(env.logger.some((l) => l.level === 'warn' && l.text.includes('timeout')));
    // back up: the gift we removed (not the shopper) comes back
    down = false;
    basketLoyalty.apply(basket);
    assert.deepEqual(basket.productLineItems.toArray().map((p) => p.productID), ['COFFEE-1KG', 'MUG', 'GIFT-SPOON']);
});

test('a gift the shopper removed is not added again', () => {
    setup(QUOTE);
    const basket = sampleBasket();
    basketLoyalty.apply(basket);
    basket.removeProductLineItem(basket.productLineItems.toArray().find((p) => p.productID === 'GIFT-SPOON'));
    basketLoyalty.apply(basket);
    assert.deepEqual(basket.productLineItems.toArray().map((p) => p.productID), ['COFFEE-1KG', 'MUG']);
    assert.deepEqual(JSON.parse(basket.custom.loyaltykitRejectedFreeItems), ['lk-f-5e0a11']);
    basketLoyalty.apply(basket);
    assert.equal(basket.productLineItems.size(), 2);
});

test('a degraded quote (the sidecar failed open) is handled like an outage', () => {
    setup({ 'POST /v1/evaluate': { json: fixture('evaluate.degraded.response.json') } });
    const basket = sampleBasket();
    basket.createPriceAdjustment('lk-d-stale').custom.loyaltykitEffectId = 'lk-d-stale';
    const outcome = basketLoyalty.apply(basket);
    assert.equal(outcome.degraded, true);
    assert.equal(outcome.reason, 'engine_unavailable');
    assert.deepEqual(loyaltyAdjustments(basket), []);
});

test('with fail-open switched off an outage is an error the storefront shows', () => {
    setup({ 'POST /v1/evaluate': { unavailable: 'CIRCUIT_BROKEN' } }, { loyaltykitFailOpen: false });
    const outcome = basketLoyalty.apply(sampleBasket());
    assert.equal(outcome.error, true);
    assert.equal(outcome.reason, 'engine_unavailable');
});

test('disabled: no call, no change', () => {
    const env = setup(QUOTE, { loyaltykitEnabled: false });
    const basket = sampleBasket();
    assert.equal(basketLoyalty.apply(basket).reason, 'disabled');
    assert.equal(env.calls.length, 0);
});

test('an unorderable free gift is skipped and the basket stays orderable', () => {
    setup(QUOTE);
    const basket = sampleBasket();
    objects.product('GIFT-SPOON', 2.5, { orderable: false });
    const outcome = basketLoyalty.apply(basket);
    assert.ok(outcome.skipped.some((s) => s.id === 'lk-f-5e0a11' && s.reason === 'free_item_unavailable'));
    assert.equal(basket.productLineItems.toArray().length, 2);
});

test('dw.order.calculate: loyalty after SFCC promotions and shipping, before tax', () => {
    setup(QUOTE);
    const basket = sampleBasket();
    HookMgr.__hooks['dw.order.calculateTax'] = { calculateTax: (b) => { b.__steps.push('tax'); return new Status(Status.OK); } };
    const hook = require('*/cartridge/scripts/hooks/calculate');
    const seen = [];
    const original = basketLoyalty.apply;
    basketLoyalty.apply = (b) => { b.__steps.push('loyalty'); seen.push(b); return original(b); };
    try {
        const status = hook.calculate(basket);
        assert.equal(status.status, Status.OK);
    } finally {
        basketLoyalty.apply = original;
    }
    assert.deepEqual(basket.__steps, ['promotions', 'shipping', 'promotions', 'totals', 'loyalty', 'totals', 'tax', 'totals']);
    assert.equal(seen.length, 1);
    assert.ok(loyaltyAdjustments(basket).length > 0);
});

test('a member id the engine does not know is forgotten and the basket quoted as a guest\'s', () => {
    const notFound = { status: 404, text: JSON.stringify({ type: 'urn:loyaltykit:error:customer_not_found', title: 'Not Found', status: 404, detail: 'no such customer', code: 'customer_not_found', retryable: false, request_id: 'r' }) };
    const env = setup({ 'POST /v1/evaluate': (req) => (JSON.parse(req.body).customer_id ? notFound : { json: fixture('evaluate.response.json') }) });
    global.session = { privacy: { loyaltykitNotMember: true } };
    const basket = sampleBasket();
    const outcome = basketLoyalty.apply(basket);
    assert.deepEqual([outcome.applied, outcome.degraded], [true, false]);
    assert.equal(basket.customer.profile.custom.loyaltykitCustomerId, null);
    assert.deepEqual(env.calls.map((c) => c.body.customer_id), ['cust-1', undefined]);
    delete global.session;
});
