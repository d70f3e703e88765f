'use strict';

/**
 * dw.order.calculate: the storefront's basket calculation with the loyalty step between SFCC's
 * promotions and tax, so engine discounts stack on top of SFCC's (as the MAXXING and Talon.One
 * cartridges do). A site with its own calculate hook keeps it and calls
 * require('*\/cartridge/scripts/loyaltykit/basketLoyalty').apply(basket) at the same place instead.
 */
var HookMgr = require('dw/system/HookMgr');
var PromotionMgr = require('dw/campaign/PromotionMgr');
var ShippingMgr = require('dw/order/ShippingMgr');
var Status = require('dw/system/Status');
var basketLoyalty = require('*/cartridge/scripts/loyaltykit/basketLoyalty');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');

function calculateProductPrices(basket) {
    basket.productLineItems.toArray().forEach(function (pli) {
        if (mapping.isFreeItemLine(pli)) {
            return; // priced by the loyalty step
        }
        var product = pli.product;
        if (product && product.priceModel) {
            var price = product.priceModel.getPrice(pli.quantity);
            pli.setPriceValue(price && price.available !== false ? price.valueOrNull : null);
        }
    });
}

function calculateTax(basket) {
    if (HookMgr.hasHook('dw.order.calculateTax')) {
        return HookMgr.callHook('dw.order.calculateTax', 'calculateTax', basket);
    }
    return new Status(Status.OK);
}

exports.calculate = function (basket) {
    calculateProductPrices(basket);
    PromotionMgr.applyDiscounts(basket);
    if (HookMgr.hasHook('dw.order.calculateShipping')) {
        HookMgr.callHook('dw.order.calculateShipping', 'calculateShipping', basket);
    } else {
        ShippingMgr.applyShippingCost(basket);
    }
    PromotionMgr.applyDiscounts(basket);
    basket.updateTotals();
    var loyalty = basketLoyalty.apply(basket);
    basket.updateTotals();
    if (loyalty.error) {
        return new Status(Status.ERROR, 'LOYALTY_UNAVAILABLE', 'loyalty evaluation is unavailable');
    }
    var tax = calculateTax(basket);
    basket.updateTotals();
    return tax && tax.error ? tax : new Status(Status.OK);
};
