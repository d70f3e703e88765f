'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, fixture } = require('../support/env');
const pricing = require('*/cartridge/scripts/loyaltykit/pricing');

const PRODUCTS = [{ sku: 'COFFEE-1KG', price: 14.9, category: 'coffee' }, { sku: 'MUG', price: 9 }];

test('listing prices: one batched call for the page, then served from the cache', () => {
    const env = setup({ 'POST /v1/products/prices': { json: fixture('prices.response.json') } }, { loyaltykitChannel: 'web' });
    const first = pricing.pricesFor(PRODUCTS.concat([{ sku: 'MUG', price: 9 }]), 'EUR', 'cust-1');
    assert.equal(env.calls.length, 1);
    assert.deepEqual(env.calls[0].body, fixture('prices.request.json'));
    assert.deepEqual(first['COFFEE-1KG'], { price: 14.9, discountedPrice: 14.16, pointsToEarn: 14, labels: ['5 % off coffee'] });
    const again = pricing.pricesFor(PRODUCTS, 'EUR', 'cust-1');
    assert.equal(env.calls.length, 1);
    assert.deepEqual(again, first);
    pricing.pricesFor(PRODUCTS, 'EUR', 'cust-2'); // another member, other prices
    assert.equal(env.calls.length, 2);
});

test('listing prices fail open: no loyalty price, nothing cached', () => {
    const env = setup({ 'POST /v1/products/prices': { unavailable: 'TIMEOUT' } });
    assert.deepEqual(pricing.pricesFor(PRODUCTS, 'EUR', null), { 'COFFEE-1KG': null, MUG: null });
    pricing.pricesFor(PRODUCTS, 'EUR', null);
    assert.equal(env.calls.length, 2);
});
