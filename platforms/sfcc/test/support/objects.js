'use strict';

/**
 * Baskets, orders and products with the behaviour of the dw.order / dw.catalog objects the cartridge
 * touches: line items, price adjustments (unique promotion id per item, as SFCC enforces), shipments,
 * coupon line items, payment instruments and totals.
 */
const Money = require('../mocks/dw/value/Money');
const ProductMgr = require('../mocks/dw/catalog/ProductMgr');
const OrderMgr = require('../mocks/dw/order/OrderMgr');

let seq = 0;

function collection(items) {
    return { toArray: () => items.slice(), size: () => items.length, __items: items };
}

function cents(value) {
    return Math.round(value * 100);
}

function adjustmentOf(id, currency) {
    return {
        promotionID: id,
        custom: {},
        priceValue: 0,
        lineItemText: null,
        get price() { return new Money(this.priceValue, currency); },
        setPriceValue(value) { this.priceValue = value; },
        setLineItemText(text) { this.lineItemText = text; }
    };
}

function adjustable(target, currency, items) {
    target.createPriceAdjustment = function (id) {
        if (items.some((pa) => pa.promotionID === id)) {
            throw new Error('a price adjustment with promotion id ' + id + ' exists on this item');
        }
        const pa = adjustmentOf(id, currency);
        items.push(pa);
        return pa;
    };
    target.removePriceAdjustment = function (pa) {
        const i = items.indexOf(pa);
        if (i < 0) throw new Error('not an adjustment of this item');
        items.splice(i, 1);
    };
}

function product(sku, price, options = {}) {
    const p = {
        ID: sku,
        name: options.name || sku,
        online: options.online !== false,
        availabilityModel: { orderable: options.orderable !== false },
        optionModel: {},
        primaryCategory: options.category ? { ID: options.category } : null,
        priceModel: {
            price: new Money(price, options.currency || 'EUR'),
            getPrice: () => new Money(price, options.currency || 'EUR')
        }
    };
    ProductMgr.__products[sku] = p;
    return p;
}

function lineItem(container, spec) {
    const currency = container.currencyCode;
    const items = [];
    const pli = {
        UUID: spec.uuid || 'pli-' + (++seq),
        productID: spec.sku,
        productName: spec.name || spec.sku,
        quantityValue: spec.quantity || 1,
        categoryID: spec.category || null,
        product: spec.product || ProductMgr.getProduct(spec.sku),
        bonusProductLineItem: false,
        custom: {},
        priceValue: spec.price === undefined ? null : spec.price,
        priceAdjustments: collection(items),
        get quantity() { return { value: this.quantityValue }; },
        get price() { return new Money(this.priceValue === null ? null : this.priceValue * this.quantityValue, currency); },
        get adjustedPrice() {
            const base = cents((this.priceValue || 0) * this.quantityValue);
            return new Money((base + items.reduce((s, pa) => s + cents(pa.priceValue), 0)) / 100, currency);
        },
        setPriceValue(value) { this.priceValue = value; },
        setQuantityValue(value) { this.quantityValue = value; }
    };
    adjustable(pli, currency, items);
    return pli;
}

/**
 * @param {{currency?, lines?: Array<{sku, price, quantity?, category?, uuid?}>, shipping?, customerId?, codes?: string[], campaignCodes?: string[]}} spec
 */
function basket(spec = {}) {
    const currency = spec.currency || 'EUR';
    const lines = [];
    const orderAdjustments = [];
    const shippingAdjustments = [];
    const payments = [];
    const shippingLine = {
        ID: 'STANDARD_SHIPPING',
        priceValue: spec.shipping || 0,
        shippingPriceAdjustments: collection(shippingAdjustments),
        createShippingPriceAdjustment(id) {
            if (shippingAdjustments.some((pa) => pa.promotionID === id)) throw new Error('duplicate promotion id ' + id);
            const pa = adjustmentOf(id, currency);
            shippingAdjustments.push(pa);
            return pa;
        },
        removeShippingPriceAdjustment(pa) { shippingAdjustments.splice(shippingAdjustments.indexOf(pa), 1); }
    };
    const shipment = { ID: 'me', shippingLineItems: collection([shippingLine]), standardShippingLineItem: shippingLine };
    const coupons = (spec.codes || []).map((code) => ({ couponCode: code, basedOnCampaign: false }))
        .concat((spec.campaignCodes || []).map((code) => ({ couponCode: code, basedOnCampaign: true })));
    const b = {
        UUID: spec.uuid || 'basket-' + (++seq),
        currencyCode: currency,
        custom: {},
        productLineItems: collection(lines),
        priceAdjustments: collection(orderAdjustments),
        couponLineItems: collection(coupons),
        shipments: collection([shipment]),
        defaultShipment: shipment,
        customer: {
            registered: !!(spec.customerId || spec.email),
            profile: spec.customerId || spec.email
                ? { email: spec.email || null, customerNo: spec.customerNo || null, custom: { loyaltykitCustomerId: spec.customerId || null } }
                : null
        },
        __steps: [],
        totalsUpdated: 0,
        get adjustedShippingTotalPrice() {
            return new Money((cents(shippingLine.priceValue) + shippingAdjustments.reduce((s, pa) => s + cents(pa.priceValue), 0)) / 100, currency);
        },
        get totalGrossPrice() {
            const total = lines.reduce((s, pli) => s + cents(pli.adjustedPrice.value), 0)
                + orderAdjustments.reduce((s, pa) => s + cents(pa.priceValue), 0)
                + cents(this.adjustedShippingTotalPrice.value);
            return new Money(total / 100, currency);
        },
        createProductLineItem(productObject, optionModel, shipmentArg) {
            if (shipmentArg !== shipment) throw new Error('unknown shipment');
            const pli = lineItem(b, { sku: productObject.ID, product: productObject, price: null });
            lines.push(pli);
            return pli;
        },
        removeProductLineItem(pli) {
            const i = lines.indexOf(pli);
            if (i < 0) throw new Error('not a line of this basket');
            lines.splice(i, 1);
        },
        getPaymentInstruments(methodId) {
            return collection(payments.filter((pi) => methodId === undefined || pi.paymentMethod === methodId));
        },
        createPaymentInstrument(methodId, amount) {
            const pi = {
                paymentMethod: methodId,
                paymentTransaction: {
                    amount,
                    transactionID: null,
                    paymentProcessor: null,
                    setTransactionID(id) { this.transactionID = id; },
                    setPaymentProcessor(p) { this.paymentProcessor = p; }
                }
            };
            payments.push(pi);
            return pi;
        },
        removePaymentInstrument(pi) { payments.splice(payments.indexOf(pi), 1); },
        updateTotals() { this.totalsUpdated += 1; this.__steps.push('totals'); }
    };
    adjustable(b, currency, orderAdjustments);
    (spec.lines || []).forEach((line) => {
        if (!ProductMgr.getProduct(line.sku)) product(line.sku, line.price, { category: line.category, currency });
        lines.push(lineItem(b, line));
    });
    return b;
}

/** An order, as created from a basket (same line items), registered with OrderMgr. */
function order(spec = {}) {
    const o = basket(spec);
    o.orderNo = spec.orderNo || '0000' + (++seq);
    o.creationDate = spec.creationDate || new Date('2026-11-29T10:00:00Z');
    o.status = spec.status === undefined ? 0 : spec.status;
    return OrderMgr.__add(o);
}

function copyAdjustments(from, to) {
    from.toArray().forEach((pa) => {
        to.push(Object.assign(adjustmentOf(pa.promotionID, null), { custom: { ...pa.custom }, priceValue: pa.priceValue, lineItemText: pa.lineItemText }));
    });
}

/** The order SFCC creates from a basket: same line items (UUIDs), adjustments, coupons, custom attributes, payments. */
function orderFromBasket(b, orderNo) {
    const o = order({ orderNo, currency: b.currencyCode, shipping: b.defaultShipment.standardShippingLineItem.priceValue });
    o.customer = b.customer;
    Object.assign(o.custom, b.custom);
    o.couponLineItems.__items.push(...b.couponLineItems.toArray());
    copyAdjustments(b.priceAdjustments, o.priceAdjustments.__items);
    copyAdjustments(b.defaultShipment.standardShippingLineItem.shippingPriceAdjustments, o.defaultShipment.standardShippingLineItem.shippingPriceAdjustments.__items);
    b.productLineItems.toArray().forEach((pli) => {
        const copy = lineItem(o, { uuid: pli.UUID, sku: pli.productID, product: pli.product, quantity: pli.quantityValue, price: pli.priceValue, category: pli.categoryID });
        copy.custom = { ...pli.custom };
        copyAdjustments(pli.priceAdjustments, copy.priceAdjustments.__items);
        o.productLineItems.__items.push(copy);
    });
    b.getPaymentInstruments().toArray().forEach((pi) => o.createPaymentInstrument(pi.paymentMethod, pi.paymentTransaction.amount));
    return o;
}

/** A native SFCC promotion on a line (not the cartridge's). */
function nativeLineDiscount(pli, id, amount) {
    pli.createPriceAdjustment(id).setPriceValue(-amount);
}

module.exports = { basket, order, orderFromBasket, product, nativeLineDiscount, collection };
