'use strict';

/**
 * app.payment.processor.loyaltykit_cashback: cashback as a tender, paying part or all of the order.
 *
 * Handle (basket): one LOYALTYKIT_CASHBACK payment instrument for the requested amount, capped by
 * the spendable cashback of the last quote and by the basket total.
 * Authorize (order number): spends it through the sidecar with the order number's idempotency key,
 * against the order's amount due (its total gross price).
 * A timeout leaves the spend's outcome unknown: the order fails, and compensation (or the reconcile
 * job) replays the same key to learn what happened before reversing.
 */
var Money = require('dw/value/Money');
var OrderMgr = require('dw/order/OrderMgr');
var Transaction = require('dw/system/Transaction');
var config = require('*/cartridge/scripts/loyaltykit/config');
var keys = require('*/cartridge/scripts/loyaltykit/keys');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');
var receipts = require('*/cartridge/scripts/loyaltykit/receipts');
var service = require('*/cartridge/scripts/loyaltykit/service');

function refused(message) {
    return { fieldErrors: {}, serverErrors: [message], error: true };
}

/**
 * @param {dw.order.Basket} basket
 * @param {{amount?: number}} paymentInformation  the amount the shopper wants to pay with cashback
 *        (all that may be used when absent)
 */
function Handle(basket, paymentInformation) {
    if (!mapping.customerIdOf(basket)) {
        return refused('Cashback can only be used by loyalty members.');
    }
    var spendable = Number(basket.custom.loyaltykitCashbackSpendable || 0);
    var total = basket.totalGrossPrice && basket.totalGrossPrice.available !== false ? basket.totalGrossPrice.value : 0;
    var requested = paymentInformation && paymentInformation.amount !== undefined && paymentInformation.amount !== null
        ? Number(paymentInformation.amount) : spendable;
    if (!(requested > 0)) {
        return refused('Enter the cashback amount to use.');
    }
    var currency = basket.currencyCode;
    var amount = Number(mapping.money(Math.min(requested, spendable, total), currency).amount);
    if (!(amount > 0)) {
        return refused('No cashback is available for this order.');
    }
    Transaction.wrap(function () {
        basket.getPaymentInstruments(config.PAYMENT_METHOD_ID).toArray().forEach(function (pi) {
            basket.removePaymentInstrument(pi);
        });
        basket.createPaymentInstrument(config.PAYMENT_METHOD_ID, new Money(amount, currency));
    });
    return { fieldErrors: {}, serverErrors: [], error: false, amount: amount, full: amount >= total };
}

/**
 * @param {string} orderNumber
 * @param {dw.order.PaymentInstrument} paymentInstrument
 * @param {dw.order.PaymentProcessor} paymentProcessor
 */
function Authorize(orderNumber, paymentInstrument, paymentProcessor) {
    var order = OrderMgr.getOrder(orderNumber);
    var customerId = mapping.customerIdOf(order);
    if (!customerId) {
        return refused('Cashback can only be used by loyalty members.');
    }
    var amount = paymentInstrument.paymentTransaction.amount;
    var body = mapping.spendBody(customerId, orderNumber, amount.value, amount.currencyCode, order.totalGrossPrice.value);
    var key = keys.spend(orderNumber);
    Transaction.wrap(function () {
        order.custom.loyaltykitSpendRequest = JSON.stringify(body);
        order.custom.loyaltykitSpendState = 'unknown'; // until the answer is in: a crash here is reconciled
    });
    var answer = service.spend(body, key);
    var receipt = answer.ok ? mapping.receiptOf(answer.body) : null;
    Transaction.wrap(function () {
        paymentInstrument.paymentTransaction.setPaymentProcessor(paymentProcessor);
        if (answer.ok) {
            paymentInstrument.paymentTransaction.setTransactionID((receipt && receipt.engine_ref) || key);
            receipts.add(order, receipt);
            order.custom.loyaltykitSpendState = 'authorized';
        } else {
            order.custom.loyaltykitSpendState = answer.problem.outcomeUnknown ? 'unknown' : 'refused';
        }
    });
    if (!answer.ok) {
        return refused(answer.problem.code === 'insufficient_balance'
            ? 'Not enough cashback for this amount.' : 'Cashback could not be used right now.');
    }
    return { fieldErrors: {}, serverErrors: [], error: false, authorized: true };
}

exports.Handle = Handle;
exports.Authorize = Authorize;
