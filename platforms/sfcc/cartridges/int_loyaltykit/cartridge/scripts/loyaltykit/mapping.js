'use strict';

/**
 * The one place that knows the sidecar's request and response bodies (docs/openapi/sidecar.json).
 * Everything else in the cartridge works on SFCC objects or on the plain views returned here, so a
 * change of the sidecar's bodies is adapted in this file only.
 *
 * Money goes to the sidecar as decimal strings, never JSON numbers. SFCC's own API takes Numbers
 * (dw.value.Money, setPriceValue); amounts become Numbers only where they are written into SFCC.
 */

var ZERO_DECIMAL = { BIF: 1, CLP: 1, DJF: 1, GNF: 1, ISK: 1, JPY: 1, KMF: 1, KRW: 1, PYG: 1, RWF: 1, UGX: 1, VND: 1, VUV: 1, XAF: 1, XOF: 1, XPF: 1 };

function digits(currency) {
    return ZERO_DECIMAL[currency] ? 0 : 2;
}

/** Minor units (integer) of a Number amount, rounded half away from zero at the currency's digits. */
function toMinor(value, currency) {
    var scale = Math.pow(10, digits(currency));
    var scaled = Math.abs(Number(value)) * scale;
    var minor = Math.round(Number(scaled.toFixed(6)));
    return value < 0 ? -minor : minor;
}

/** A decimal string ("12.30") of an amount in minor units. */
function minorToString(minor, currency) {
    var d = digits(currency);
    var sign = minor < 0 ? '-' : '';
    var text = String(Math.abs(minor));
    if (d === 0) {
        return sign + text;
    }
    while (text.length <= d) {
        text = '0' + text;
    }
    return sign + text.slice(0, text.length - d) + '.' + text.slice(text.length - d);
}

function money(value, currency) {
    return { amount: minorToString(toMinor(value, currency), currency), currency: currency };
}

/** The sidecar's Money of an SFCC dw.value.Money (null when not available). */
function moneyOf(sfccMoney) {
    if (!sfccMoney || sfccMoney.available === false) {
        return null;
    }
    return money(sfccMoney.value, sfccMoney.currencyCode);
}

/** Number of a sidecar decimal string, for SFCC's API. */
function amountNumber(sidecarMoney) {
    return sidecarMoney ? Number(sidecarMoney.amount) : 0;
}

/** Minor units of the cartridge's own (loyalty) adjustments in a collection; negative for discounts. */
function loyaltyMinor(adjustmentsCollection, currency) {
    var sum = 0;
    adjustmentsCollection.toArray().forEach(function (pa) {
        if (pa.custom && pa.custom.loyaltykitEffectId) {
            sum += toMinor(pa.price.value, currency);
        }
    });
    return sum;
}

/**
 * The shipping cost after SFCC's shipping promotions and before the loyalty ones, and the loyalty
 * discount of the whole container (order, paid lines and shipping; free items are left out, as
 * their lines are), both in minor units.
 */
function shippingAndLoyalty(container) {
    var currency = container.currencyCode;
    var discount = -loyaltyMinor(container.priceAdjustments, currency);
    container.productLineItems.toArray().forEach(function (pli) {
        if (!isFreeItemLine(pli)) {
            discount -= loyaltyMinor(pli.priceAdjustments, currency);
        }
    });
    var shippingDiscount = 0;
    container.shipments.toArray().forEach(function (shipment) {
        shipment.shippingLineItems.toArray().forEach(function (sli) {
            shippingDiscount -= loyaltyMinor(sli.shippingPriceAdjustments, currency);
        });
    });
    var shipping = container.adjustedShippingTotalPrice;
    return {
        shipping: shipping && shipping.available !== false ? toMinor(shipping.value, currency) + shippingDiscount : null,
        discount: discount + shippingDiscount
    };
}

function isFreeItemLine(pli) {
    return !!(pli.custom && pli.custom.loyaltykitFreeItem);
}

function categoryOf(pli) {
    if (pli.categoryID) {
        return pli.categoryID;
    }
    var product = pli.product;
    var category = product && product.primaryCategory;
    return category ? category.ID : null;
}

/**
 * One sidecar Line per product line item (free items the cartridge added are not sent: the engine
 * grants them again). The unit price is the line's price after SFCC's own promotions and before the
 * loyalty ones, divided by the quantity, so the engine's discounts stack on top of SFCC's; an uneven
 * split rounds to the minor unit.
 */
function lineOf(pli, currency) {
    var quantity = pli.quantityValue;
    var price = pli.adjustedPrice && pli.adjustedPrice.available !== false ? pli.adjustedPrice.value : pli.price.value;
    var lineMinor = toMinor(price, currency) - loyaltyMinor(pli.priceAdjustments, currency);
    var unitMinor = Math.round(lineMinor / quantity);
    var line = {
        id: pli.UUID,
        sku: pli.productID,
        quantity: String(quantity),
        unit_price: { amount: minorToString(unitMinor, currency), currency: currency }
    };
    var category = categoryOf(pli);
    if (category) {
        line.category = category;
    }
    if (pli.productName) {
        line.name = String(pli.productName).slice(0, 500);
    }
    return line;
}

function linesOf(container) {
    var currency = container.currencyCode;
    return container.productLineItems.toArray()
        .filter(function (pli) { return !isFreeItemLine(pli) && !pli.bonusProductLineItem; })
        .map(function (pli) { return lineOf(pli, currency); });
}

/** Codes meant for the engine: coupon line items SFCC does not own (created with campaignBased=false). */
function engineCodesOf(container) {
    var codes = [];
    container.couponLineItems.toArray().forEach(function (cli) {
        if (!cli.basedOnCampaign && codes.indexOf(cli.couponCode) < 0) {
            codes.push(cli.couponCode);
        }
    });
    return codes;
}

/** The member's engine id stored on the customer profile, or null for guests and unknown members. */
function customerIdOf(container) {
    var customer = container.customer;
    var profile = customer && customer.registered ? customer.profile : null;
    return profile && profile.custom.loyaltykitCustomerId ? String(profile.custom.loyaltykitCustomerId) : null;
}

/** POST /v1/evaluate body (Basket) of an SFCC basket. */
function basketBody(basket, context) {
    var currency = basket.currencyCode;
    var body = {
        id: basket.UUID,
        currency: currency,
        lines: linesOf(basket),
        coupon_codes: engineCodesOf(basket)
    };
    var customerId = customerIdOf(basket);
    if (customerId) {
        body.customer_id = customerId;
    }
    var amounts = shippingAndLoyalty(basket);
    if (amounts.shipping !== null) {
        body.shipping = { amount: minorToString(amounts.shipping, currency), currency: currency };
    }
    if (context && context.channel) {
        body.channel = context.channel;
    }
    if (context && context.storeId) {
        body.store_id = context.storeId;
    }
    return body;
}

/** The receipts of the order's loyalty writes (redemptions, spends), as stored at authorisation. */
function receiptsOf(order) {
    var stored = order.custom.loyaltykitReceipts;
    if (!stored) {
        return [];
    }
    try {
        var list = JSON.parse(stored);
        return Array.isArray(list) ? list : [];
    } catch (e) {
        return [];
    }
}

/** POST /v1/orders body (Order) of a placed SFCC order. */
function orderBody(order, context) {
    var currency = order.currencyCode;
    var body = {
        ref: order.orderNo,
        currency: currency,
        lines: linesOf(order),
        total: moneyOf(order.totalGrossPrice),
        voucher_codes: engineCodesOf(order),
        receipts: receiptsOf(order).map(receiptInput),
        placed_at: new Date(order.creationDate.getTime()).toISOString()
    };
    var customerId = order.custom.loyaltykitCustomerId ? String(order.custom.loyaltykitCustomerId) : customerIdOf(order);
    if (customerId) {
        body.customer_id = customerId;
    }
    var amounts = shippingAndLoyalty(order);
    if (amounts.shipping !== null) {
        body.shipping = { amount: minorToString(amounts.shipping, currency), currency: currency };
    }
    if (amounts.discount !== 0) {
        body.discount_total = { amount: minorToString(amounts.discount, currency), currency: currency };
    }
    if (context && context.channel) {
        body.channel = context.channel;
    }
    if (context && context.storeId) {
        body.store_id = context.storeId;
    }
    return body;
}

/** A Receipt as the sidecar accepts it back (the fields of Receipt-Input). */
function receiptInput(receipt) {
    var out = { operation: receipt.operation, engine: receipt.engine, idempotency_key: receipt.idempotency_key };
    ['engine_ref', 'code', 'amount', 'points', 'replayed'].forEach(function (name) {
        if (receipt[name] !== undefined && receipt[name] !== null) {
            out[name] = receipt[name];
        }
    });
    return out;
}

/** POST /v1/vouchers/redeem body (VoucherRedemption). */
function redeemBody(code, orderNo, customerId, basket) {
    var body = { code: code, order_ref: orderNo };
    if (customerId) {
        body.customer_id = customerId;
    }
    if (basket) {
        body.basket = basket;
    }
    return body;
}

/**
 * POST /v1/cashback/spend body (CashbackSpend): cashback paying `amount` of order `orderNo`.
 * `amountDue` is what the order costs when the spend is made (its total gross price, loyalty
 * discounts included): the kit refuses a spend above it before calling the engine.
 */
function spendBody(customerId, orderNo, amount, currency, amountDue) {
    var body = { customer_id: customerId, order_ref: orderNo, kind: 'cashback', amount: money(amount, currency) };
    if (amountDue !== undefined && amountDue !== null) {
        body.amount_due = money(amountDue, currency);
    }
    return body;
}

/**
 * POST /v1/reversals body (Reversal). `lines` (optional) is [{line_id, quantity}] for a partial refund;
 * `exported` says whether the order reached the engine (a compensation before export voids the writes only).
 */
function reversalBody(orderJson, kind, options) {
    var opts = options || {};
    var body = { order: orderJson, kind: kind, reference: opts.reference || 'full', exported: opts.exported !== false };
    if (opts.lines && opts.lines.length) {
        body.lines = opts.lines.map(function (line) { return { line_id: line.line_id, quantity: String(line.quantity) }; });
    }
    if (opts.reason) {
        body.reason = String(opts.reason).slice(0, 500);
    }
    return body;
}

/** POST /v1/products/prices body (ProductQuery). `products` are [{sku, price: Number, category?}]. */
function priceQueryBody(products, currency, customerId, channel) {
    var body = {
        currency: currency,
        products: products.map(function (p) {
            var line = { id: p.sku, sku: p.sku, quantity: '1', unit_price: money(p.price, currency) };
            if (p.category) {
                line.category = p.category;
            }
            return line;
        })
    };
    if (customerId) {
        body.customer_id = customerId;
    }
    if (channel) {
        body.channel = channel;
    }
    return body;
}

/** POST /v1/customers/identify body (CustomerIdentifier). */
function identifyBody(kind, value) {
    return { kind: kind, value: String(value) };
}

/** The cartridge's view of a Quote. */
function quoteView(quote) {
    var spendable = null;
    (quote.spendable || []).forEach(function (balance) {
        if (balance.kind === 'cashback' && balance.money && spendable === null) {
            spendable = balance.money;
        }
    });
    return {
        currency: quote.currency,
        degraded: !!quote.degraded,
        degradedReason: quote.degraded_reason || null,
        discounts: (quote.discounts || []).map(function (d) {
            return { id: d.id, target: d.target, amount: amountNumber(d.amount), lineId: d.line_id || null, label: d.label || null };
        }),
        freeItems: (quote.free_items || []).map(function (f) {
            return { id: f.id, sku: f.sku, quantity: Number(f.quantity || '1'), label: f.label || null };
        }),
        codes: (quote.codes || []).map(function (c) {
            return { code: c.code, status: c.status, reason: c.reason || null, message: c.message || null };
        }),
        messages: (quote.messages || []).map(function (m) { return { text: m.text, kind: m.kind || 'info' }; }),
        cashbackSpendable: spendable ? amountNumber(spendable) : null,
        freeShipping: !!quote.free_shipping
    };
}

/** The cartridge's view of ProductPrices: sku -> {price, discountedPrice, pointsToEarn, labels}. */
function pricesView(body) {
    var out = {};
    (body.prices || []).forEach(function (p) {
        out[p.sku] = {
            price: amountNumber(p.price),
            discountedPrice: amountNumber(p.discounted_price),
            pointsToEarn: Number(p.points_to_earn || '0'),
            labels: p.labels || []
        };
    });
    return out;
}

/** The receipt kept on the order after a redemption or a spend (Receipt-Output as returned). */
function receiptOf(result) {
    return result && result.receipt ? result.receipt : null;
}

module.exports = {
    digits: digits,
    toMinor: toMinor,
    minorToString: minorToString,
    money: money,
    moneyOf: moneyOf,
    isFreeItemLine: isFreeItemLine,
    engineCodesOf: engineCodesOf,
    customerIdOf: customerIdOf,
    basketBody: basketBody,
    orderBody: orderBody,
    receiptsOf: receiptsOf,
    redeemBody: redeemBody,
    spendBody: spendBody,
    reversalBody: reversalBody,
    priceQueryBody: priceQueryBody,
    identifyBody: identifyBody,
    quoteView: quoteView,
    pricesView: pricesView,
    receiptOf: receiptOf
};
