'use strict';

/**
 * Loyalty prices of products for listing and product pages, in one sidecar call per page (a batch
 * of the products not yet cached) and cached (custom cache LoyaltykitProductPrices) per currency,
 * member and product. Fails open: a product without a loyalty price shows its SFCC price.
 */
var CacheMgr = require('dw/system/CacheMgr');
var config = require('*/cartridge/scripts/loyaltykit/config');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');
var service = require('*/cartridge/scripts/loyaltykit/service');

var BATCH = 500; // the sidecar's largest ProductQuery

function cacheKey(currency, customerId, sku) {
    return [currency, customerId || '-', sku].join('|');
}

/**
 * @param {Array<{sku: string, price: number, category?: string}>} products  SFCC prices (after SFCC promotions)
 * @param {string} currency
 * @param {string|null} customerId  the member's engine id, or null
 * @returns {Object<string, {price, discountedPrice, pointsToEarn, labels}|null>}  by sku
 */
function pricesFor(products, currency, customerId) {
    var out = {};
    if (!config.enabled()) {
        products.forEach(function (p) { out[p.sku] = null; });
        return out;
    }
    var cache = CacheMgr.getCache('LoyaltykitProductPrices');
    var missing = [];
    var seen = {};
    products.forEach(function (p) {
        if (seen[p.sku]) {
            return;
        }
        seen[p.sku] = true;
        var hit = cache.get(cacheKey(currency, customerId, p.sku));
        if (hit) {
            out[p.sku] = hit;
        } else {
            missing.push(p);
        }
    });
    for (var start = 0; start < missing.length; start += BATCH) {
        var chunk = missing.slice(start, start + BATCH);
        var answer = service.prices(mapping.priceQueryBody(chunk, currency, customerId, config.channel()));
        var view = answer.ok ? mapping.pricesView(answer.body) : {};
        chunk.forEach(function (p) {
            out[p.sku] = view[p.sku] || null;
            if (view[p.sku]) {
                cache.put(cacheKey(currency, customerId, p.sku), view[p.sku]);
            }
        });
    }
    return out;
}

module.exports = { pricesFor: pricesFor };
