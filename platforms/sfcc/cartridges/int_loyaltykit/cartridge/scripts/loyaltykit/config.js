'use strict';

/**
 * Site preferences of the cartridge (group "loyaltykit" in Business Manager), with the defaults
 * that apply when a preference is not set.
 */
var Site = require('dw/system/Site');

var PAYMENT_METHOD_ID = 'LOYALTYKIT_CASHBACK';
var READ_SERVICE_ID = 'loyaltykit.http.sidecar.read';
var WRITE_SERVICE_ID = 'loyaltykit.http.sidecar.write';

function pref(name, fallback) {
    var value = Site.getCurrent().getCustomPreferenceValue(name);
    return value === null || value === undefined || value === '' ? fallback : value;
}

function number(name, fallback) {
    var value = Number(pref(name, fallback));
    return isFinite(value) && value >= 0 ? value : fallback;
}

module.exports = {
    PAYMENT_METHOD_ID: PAYMENT_METHOD_ID,
    READ_SERVICE_ID: READ_SERVICE_ID,
    WRITE_SERVICE_ID: WRITE_SERVICE_ID,
    enabled: function () { return pref('loyaltykitEnabled', false) === true; },
    /** Evaluate fails open (checkout goes on without loyalty discounts) unless this is switched off. */
    failOpen: function () { return pref('loyaltykitFailOpen', true) !== false; },
    /** Per-call timeouts (ms) on top of the service profile's; 0 keeps the profile's. */
    readTimeoutMs: function () { return number('loyaltykitReadTimeoutMs', 2000); },
    writeTimeoutMs: function () { return number('loyaltykitWriteTimeoutMs', 10000); },
    channel: function () { return pref('loyaltykitChannel', 'web'); },
    /** How a registered shopper is found in the engine: 'email' or 'external_id' (the customer number). */
    identifyBy: function () { return String(pref('loyaltykitIdentifyBy', 'email')); },
    /** Sign each request (X-Loyaltykit-Timestamp / X-Loyaltykit-Signature) for a sidecar with hmac on. */
    signRequests: function () { return pref('loyaltykitSignRequests', false) === true; },
    storeId: function () { return pref('loyaltykitStoreId', Site.getCurrent().getID()); },
    outboxMaxAttempts: function () { return number('loyaltykitOutboxMaxAttempts', 8); },
    outboxBackoffMinutes: function () { return number('loyaltykitOutboxBackoffMinutes', 5); }
};
