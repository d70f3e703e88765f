'use strict';

/**
 * Loyalty price adjustments on a basket: a pure plan from a quote, then its application.
 * Every adjustment the cartridge creates uses the quote's stable effect id as its promotion id and
 * carries custom.loyaltykitEffectId, so the next calculate finds and replaces exactly its own.
 */
var ProductMgr = require('dw/catalog/ProductMgr');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');

/**
 * The plan (no side effect). `view` is mapping.quoteView(...); `state` describes the basket:
 * {lineIds: [uuid], freeLines: [{uuid, effectId}], previousFreeIds: [effectId], rejectedFreeIds: [effectId]}.
 */
function plan(view, state) {
    var lineIds = {};
    state.lineIds.forEach(function (id) { lineIds[id] = true; });
    var result = { order: [], lines: [], shipping: [], addFree: [], keepFree: [], removeFree: [], rejectedFreeIds: state.rejectedFreeIds.slice(), skipped: [] };

    view.discounts.forEach(function (d) {
        if (!(d.amount > 0)) {
            result.skipped.push({ id: d.id, reason: 'not_positive' });
        } else if (d.target === 'order') {
            result.order.push({ id: d.id, amount: d.amount, label: d.label });
        } else if (d.target === 'shipping') {
            result.shipping.push({ id: d.id, amount: d.amount, label: d.label });
        } else if (d.target === 'line' && d.lineId && lineIds[d.lineId]) {
            result.lines.push({ lineId: d.lineId, id: d.id, amount: d.amount, label: d.label });
        } else {
            result.skipped.push({ id: d.id, reason: 'unknown_line' });
        }
    });

    // A free line the cartridge added earlier and the shopper removed since is a rejected gift:
    // it is not added back.
    var present = {};
    state.freeLines.forEach(function (line) { present[line.effectId] = line; });
    state.previousFreeIds.forEach(function (id) {
        if (!present[id] && result.rejectedFreeIds.indexOf(id) < 0) {
            result.rejectedFreeIds.push(id);
        }
    });
    var wanted = {};
    view.freeItems.forEach(function (item) {
        if (result.rejectedFreeIds.indexOf(item.id) >= 0) {
            return;
        }
        wanted[item.id] = true;
        if (present[item.id]) {
            result.keepFree.push({ uuid: present[item.id].uuid, id: item.id, quantity: item.quantity, label: item.label });
        } else {
            result.addFree.push({ id: item.id, sku: item.sku, quantity: item.quantity, label: item.label });
        }
    });
    state.freeLines.forEach(function (line) {
        if (!wanted[line.effectId]) {
            result.removeFree.push(line.uuid);
        }
    });
    return result;
}

function isLoyalty(adjustment) {
    return !!(adjustment.custom && adjustment.custom.loyaltykitEffectId);
}

/** Remove every loyalty price adjustment (order, line and shipping level). Returns how many. */
function removeAll(basket) {
    var removed = 0;
    basket.priceAdjustments.toArray().forEach(function (pa) {
        if (isLoyalty(pa)) {
            basket.removePriceAdjustment(pa);
            removed += 1;
        }
    });
    basket.productLineItems.toArray().forEach(function (pli) {
        pli.priceAdjustments.toArray().forEach(function (pa) {
            if (isLoyalty(pa)) {
                pli.removePriceAdjustment(pa);
                removed += 1;
            }
        });
    });
    basket.shipments.toArray().forEach(function (shipment) {
        shipment.shippingLineItems.toArray().forEach(function (sli) {
            sli.shippingPriceAdjustments.toArray().forEach(function (pa) {
                if (isLoyalty(pa)) {
                    sli.removeShippingPriceAdjustment(pa);
                    removed += 1;
                }
            });
        });
    });
    return removed;
}

/** Remove the free-item lines the cartridge added. */
function removeFreeLines(basket) {
    basket.productLineItems.toArray().forEach(function (pli) {
        if (mapping.isFreeItemLine(pli)) {
            basket.removeProductLineItem(pli);
        }
    });
}

function mark(adjustment, id, label) {
    adjustment.custom.loyaltykitEffectId = id;
    if (label) {
        adjustment.setLineItemText(label);
    }
    return adjustment;
}

function lineByUUID(basket, uuid) {
    var found = null;
    basket.productLineItems.toArray().forEach(function (pli) {
        if (pli.UUID === uuid) {
            found = pli;
        }
    });
    return found;
}

/** A free line is free through a loyalty adjustment of its whole price. */
function makeFree(pli, id, label) {
    var product = pli.product;
    var unit = product && product.priceModel ? product.priceModel.price : null;
    if (!unit || unit.available === false) {
        return false;
    }
    pli.setPriceValue(unit.value);
    var total = Number(mapping.money(unit.value * pli.quantityValue, unit.currencyCode).amount);
    mark(pli.createPriceAdjustment(id), id, label).setPriceValue(-total);
    return true;
}

/** Apply a plan on a basket whose previous loyalty adjustments were removed. Returns what was skipped. */
function apply(basket, thePlan) {
    var skipped = thePlan.skipped.slice();
    thePlan.removeFree.forEach(function (uuid) {
        var pli = lineByUUID(basket, uuid);
        if (pli) {
            basket.removeProductLineItem(pli);
        }
    });
    thePlan.order.forEach(function (d) {
        mark(basket.createPriceAdjustment(d.id), d.id, d.label).setPriceValue(-d.amount);
    });
    thePlan.lines.forEach(function (d) {
        var pli = lineByUUID(basket, d.lineId);
        mark(pli.createPriceAdjustment(d.id), d.id, d.label).setPriceValue(-d.amount);
    });
    var shippingLine = basket.defaultShipment ? basket.defaultShipment.standardShippingLineItem : null;
    thePlan.shipping.forEach(function (d) {
        if (!shippingLine) {
            skipped.push({ id: d.id, reason: 'no_shipping_line' });
            return;
        }
        mark(shippingLine.createShippingPriceAdjustment(d.id), d.id, d.label).setPriceValue(-d.amount);
    });
    var appliedFree = [];
    thePlan.keepFree.forEach(function (item) {
        var pli = lineByUUID(basket, item.uuid);
        pli.setQuantityValue(item.quantity);
        if (makeFree(pli, item.id, item.label)) {
            appliedFree.push(item.id);
        } else {
            basket.removeProductLineItem(pli);
            skipped.push({ id: item.id, reason: 'free_item_unpriced' });
        }
    });
    thePlan.addFree.forEach(function (item) {
        var product = ProductMgr.getProduct(item.sku);
        // An invalid or unorderable gift must not make the basket unorderable: it is skipped.
        if (!product || !product.online || !product.availabilityModel.orderable) {
            skipped.push({ id: item.id, reason: 'free_item_unavailable' });
            return;
        }
        var pli = basket.createProductLineItem(product, product.optionModel, basket.defaultShipment);
        pli.setQuantityValue(item.quantity);
        pli.custom.loyaltykitFreeItem = item.id;
        if (makeFree(pli, item.id, item.label)) {
            appliedFree.push(item.id);
        } else {
            basket.removeProductLineItem(pli);
            skipped.push({ id: item.id, reason: 'free_item_unpriced' });
        }
    });
    return { skipped: skipped, appliedFreeIds: appliedFree };
}

/** The basket's state as plan() needs it. */
function stateOf(basket) {
    var lineIds = [];
    var freeLines = [];
    basket.productLineItems.toArray().forEach(function (pli) {
        if (mapping.isFreeItemLine(pli)) {
            freeLines.push({ uuid: pli.UUID, effectId: String(pli.custom.loyaltykitFreeItem) });
        } else {
            lineIds.push(pli.UUID);
        }
    });
    return {
        lineIds: lineIds,
        freeLines: freeLines,
        previousFreeIds: parseList(basket.custom.loyaltykitFreeItemIds),
        rejectedFreeIds: parseList(basket.custom.loyaltykitRejectedFreeItems)
    };
}

function parseList(text) {
    if (!text) {
        return [];
    }
    try {
        var list = JSON.parse(text);
        return Array.isArray(list) ? list : [];
    } catch (e) {
        return [];
    }
}

module.exports = { plan: plan, apply: apply, removeAll: removeAll, removeFreeLines: removeFreeLines, stateOf: stateOf, isLoyalty: isLoyalty };
