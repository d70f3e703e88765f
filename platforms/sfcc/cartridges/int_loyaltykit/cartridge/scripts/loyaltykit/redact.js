'use strict';

/**
 * Redaction of service log messages: no code, e-mail address, phone number, card or membership
 * number, customer id or API key reaches the SFCC service log. Applied to JSON bodies (by field
 * name) and to any remaining text (by pattern).
 */

var SECRET_FIELDS = {
    code: true, codes: true, coupon_codes: true, voucher_codes: true, value: true, email: true,
    phone: true, card: true, card_number: true, membership_number: true, customer_id: true,
    display_name: true, authorization: true, idempotency_key: true, raw: true
};
var MASK = '***';

var EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
var CARD = /\b(?:\d[ -]?){12,18}\d\b/g;
// International form (+ then digits): dates and order numbers stay readable.
var PHONE = /\+\d[\d ()-]{6,}\d/g;
var BEARER = /(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;

function redactText(text) {
    return String(text)
        .replace(BEARER, '$1 ' + MASK)
        .replace(EMAIL, MASK)
        .replace(CARD, MASK)
        .replace(PHONE, MASK);
}

function redactValue(value, key) {
    if (key && SECRET_FIELDS[String(key).toLowerCase()]) {
        return value === null || value === undefined ? value : MASK;
    }
    if (Array.isArray(value)) {
        return value.map(function (item) { return redactValue(item, null); });
    }
    if (value && typeof value === 'object') {
        var out = {};
        Object.keys(value).forEach(function (name) { out[name] = redactValue(value[name], name); });
        return out;
    }
    return typeof value === 'string' ? redactText(value) : value;
}

/** A log-safe copy of a message: JSON is redacted field by field, other text by pattern. */
function redact(message) {
    if (message === null || message === undefined) {
        return '';
    }
    var text = String(message);
    var trimmed = text.trim();
    if (trimmed.charAt(0) === '{' || trimmed.charAt(0) === '[') {
        try {
            return JSON.stringify(redactValue(JSON.parse(trimmed), null));
        } catch (e) {
            // not JSON after all: fall through to the patterns
        }
    }
    return redactText(text);
}

module.exports = { redact: redact, redactText: redactText, MASK: MASK };
