'use strict';

/**
 * The loyalty step of the basket calculation: after SFCC's own promotions, before tax.
 *
 * Evaluate is a quote with no side effect; calculate runs several times per request, so the quote
 * is cached per basket fingerprint (a hash of the evaluate body) for the request. When the sidecar
 * fails (or answers a degraded quote) the step fails open: the basket keeps no stale loyalty
 * adjustment or free item, is flagged degraded, and checkout goes on.
 */
var Bytes = require('dw/util/Bytes');
var Encoding = require('dw/crypto/Encoding');
var Logger = require('dw/system/Logger');
var MessageDigest = require('dw/crypto/MessageDigest');
var Transaction = require('dw/system/Transaction');
var adjustments = require('*/cartridge/scripts/loyaltykit/adjustments');
var config = require('*/cartridge/scripts/loyaltykit/config');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');
var member = require('*/cartridge/scripts/loyaltykit/member');
var service = require('*/cartridge/scripts/loyaltykit/service');

var log = Logger.getLogger('loyaltykit', 'calculate');
var DEGRADED_MESSAGE = 'Loyalty offers are unavailable right now; your order can still be placed.';

function fingerprint(body) {
    var digest = new MessageDigest(MessageDigest.DIGEST_SHA_256);
    return Encoding.toHex(digest.digestBytes(new Bytes(JSON.stringify(body), 'UTF-8')));
}

function requestCache() {
    /* global request */
    return typeof request !== 'undefined' && request && request.custom ? request.custom : null;
}

/** The quote view for this body: from the request cache when the basket did not change. */
function quoteFor(body) {
    var fp = fingerprint(body);
    var cache = requestCache();
    if (cache && cache.loyaltykitQuote) {
        var cached = JSON.parse(cache.loyaltykitQuote);
        if (cached.fingerprint === fp) {
            return { ok: true, view: cached.view, fingerprint: fp, cached: true };
        }
    }
    var answer = service.evaluate(body);
    if (!answer.ok) {
        return { ok: false, problem: answer.problem, fingerprint: fp };
    }
    var view = mapping.quoteView(answer.body);
    if (cache && !view.degraded) {
        cache.loyaltykitQuote = JSON.stringify({ fingerprint: fp, view: view });
    }
    return { ok: true, view: view, fingerprint: fp, cached: false };
}

function forgetMember(customer) {
    Transaction.wrap(function () { customer.profile.custom.loyaltykitCustomerId = null; });
    log.warn('the member id on a profile is unknown to the engine; it was removed');
}

function clearState(basket) {
    basket.custom.loyaltykitDegraded = false;
    basket.custom.loyaltykitMessages = null;
    basket.custom.loyaltykitCodeResults = null;
    basket.custom.loyaltykitFreeItemIds = null;
    basket.custom.loyaltykitCashbackSpendable = null;
    basket.custom.loyaltykitFingerprint = null;
}

function failOpen(basket, reason) {
    adjustments.removeFreeLines(basket);
    basket.custom.loyaltykitDegraded = true;
    basket.custom.loyaltykitMessages = JSON.stringify([{ text: DEGRADED_MESSAGE, kind: 'warning' }]);
    basket.custom.loyaltykitCodeResults = null;
    basket.custom.loyaltykitFreeItemIds = null; // removed by us, not by the shopper: not a rejected gift
    basket.custom.loyaltykitCashbackSpendable = null;
    basket.custom.loyaltykitFingerprint = null;
    log.warn('loyalty evaluation unavailable ({0}); basket left without loyalty adjustments', reason);
    return { applied: false, degraded: true, reason: reason };
}

/**
 * Replace the basket's loyalty adjustments with those of a fresh quote.
 * Returns {applied, degraded, reason?, skipped?}; `error: true` only when fail-open is switched off.
 */
function apply(basket) {
    if (!config.enabled()) {
        return { applied: false, degraded: false, reason: 'disabled' };
    }
    adjustments.removeAll(basket);
    member.ensure(basket.customer);
    var body = mapping.basketBody(basket, { channel: config.channel(), storeId: config.storeId() });
    if (!body.lines.length) {
        adjustments.removeFreeLines(basket);
        clearState(basket);
        return { applied: false, degraded: false, reason: 'empty' };
    }
    var quote = quoteFor(body);
    if (!quote.ok && quote.problem.code === 'customer_not_found' && body.customer_id) {
        // The member id on the profile is unknown to the engine (member removed, another engine):
        // forget it and quote the basket as a guest's rather than leaving it degraded.
        forgetMember(basket.customer);
        delete body.customer_id;
        quote = quoteFor(body);
    }
    if (!quote.ok || quote.view.degraded) {
        var reason = quote.ok ? (quote.view.degradedReason || 'degraded') : quote.problem.code;
        var outcome = failOpen(basket, reason);
        if (!config.failOpen()) {
            outcome.error = true;
        }
        return outcome;
    }
    var view = quote.view;
    var thePlan = adjustments.plan(view, adjustments.stateOf(basket));
    var done = adjustments.apply(basket, thePlan);
    basket.custom.loyaltykitDegraded = false;
    basket.custom.loyaltykitMessages = JSON.stringify(view.messages);
    basket.custom.loyaltykitCodeResults = JSON.stringify(view.codes);
    basket.custom.loyaltykitFreeItemIds = JSON.stringify(done.appliedFreeIds);
    basket.custom.loyaltykitRejectedFreeItems = thePlan.rejectedFreeIds.length ? JSON.stringify(thePlan.rejectedFreeIds) : null;
    basket.custom.loyaltykitCashbackSpendable = view.cashbackSpendable;
    basket.custom.loyaltykitFingerprint = quote.fingerprint;
    if (done.skipped.length) {
        log.info('loyalty effects not applied: {0}', JSON.stringify(done.skipped));
    }
    return { applied: true, degraded: false, skipped: done.skipped, cached: quote.cached };
}

module.exports = { apply: apply, fingerprint: fingerprint, DEGRADED_MESSAGE: DEGRADED_MESSAGE };
