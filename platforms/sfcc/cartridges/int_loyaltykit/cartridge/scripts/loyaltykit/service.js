'use strict';

/**
 * The sidecar's HTTP API through the SFCC service framework. Two services share these callbacks:
 * reads (evaluate, prices, identify; short timeout, fail open) and writes (redeem, spend, orders,
 * reversals; every write carries an Idempotency-Key, so a retry never applies twice).
 *
 * Every call returns {ok: true, status, body, replayed} or {ok: false, problem} (see problem.js);
 * nothing here throws on a remote failure.
 */
var Bytes = require('dw/util/Bytes');
var Encoding = require('dw/crypto/Encoding');
var LocalServiceRegistry = require('dw/svc/LocalServiceRegistry');
var Mac = require('dw/crypto/Mac');
var MessageDigest = require('dw/crypto/MessageDigest');
var UUIDUtils = require('dw/util/UUIDUtils');
var config = require('*/cartridge/scripts/loyaltykit/config');
var problems = require('*/cartridge/scripts/loyaltykit/problem');
var redact = require('*/cartridge/scripts/loyaltykit/redact');

function sha256Hex(text) {
    return Encoding.toHex(new MessageDigest(MessageDigest.DIGEST_SHA_256).digestBytes(new Bytes(text, 'UTF-8')));
}

/**
 * The sidecar's request signature: HMAC-SHA256, keyed with the SHA-256 hex of the API key (the
 * credential's password), over "<unix seconds>.<METHOD>.<path>.<SHA-256 hex of the body>". The path
 * is the sidecar's own (the credential URL is the sidecar's root), percent-decoded as the server sees it.
 */
function sign(svc, method, path, bodyText) {
    var timestamp = String(Math.floor(Date.now() / 1000));
    var message = timestamp + '.' + method.toUpperCase() + '.' + decodeURIComponent(path) + '.' + sha256Hex(bodyText || '');
    var signingKey = sha256Hex(String(svc.getConfiguration().getCredential().getPassword() || ''));
    var signature = Encoding.toHex(new Mac(Mac.HMAC_SHA_256).digest(message, signingKey));
    svc.addHeader('X-Loyaltykit-Timestamp', timestamp);
    svc.addHeader('X-Loyaltykit-Signature', 'v1=' + signature);
}

var callbacks = {
    /** @param {dw.svc.HTTPService} svc  @param {{method, path, body, idempotencyKey, timeoutMs}} req */
    createRequest: function (svc, req) {
        var base = String(svc.getConfiguration().getCredential().getURL() || '').replace(/\/+$/, '');
        svc.setURL(base + req.path);
        svc.setRequestMethod(req.method);
        svc.addHeader('Accept', 'application/json, application/problem+json');
        svc.addHeader('X-Request-Id', UUIDUtils.createUUID());
        if (req.idempotencyKey) {
            svc.addHeader('Idempotency-Key', req.idempotencyKey);
        }
        if (req.timeoutMs) {
            svc.getClient().setTimeout(req.timeoutMs);
        }
        var text = req.body === undefined || req.body === null ? null : JSON.stringify(req.body);
        if (text !== null) {
            svc.addHeader('Content-Type', 'application/json');
        }
        if (config.signRequests()) {
            sign(svc, req.method, req.path, text);
        }
        return text;
    },

    /** Only 2xx answers reach here; the framework reports others as errors with the body as message. */
    parseResponse: function (svc, client) {
        var text = client.getText();
        return {
            status: client.getStatusCode(),
            body: text ? JSON.parse(text) : null,
            replayed: client.getResponseHeader('Idempotent-Replayed') === 'true'
        };
    },

    getRequestLogMessage: function (request) {
        return redact.redact(request);
    },

    getResponseLogMessage: function (response) {
        return redact.redact(response && response.getText ? response.getText() : response);
    },

    filterLogMessage: function (message) {
        return redact.redact(message);
    }
};

var services = {};

function service(id) {
    if (!services[id]) {
        services[id] = LocalServiceRegistry.createService(id, callbacks);
    }
    return services[id];
}

function call(method, path, body, idempotencyKey) {
    var isWrite = !!idempotencyKey;
    var id = isWrite ? config.WRITE_SERVICE_ID : config.READ_SERVICE_ID;
    var result;
    try {
        result = service(id).call({
            method: method,
            path: path,
            body: body,
            idempotencyKey: idempotencyKey,
            timeoutMs: isWrite ? config.writeTimeoutMs() : config.readTimeoutMs()
        });
    } catch (e) {
        // A callback threw (an unparseable 2xx body): for a write the outcome is unknown.
        return { ok: false, problem: { status: 0, code: isWrite ? 'outcome_unknown' : 'malformed_response', retryable: isWrite, outcomeUnknown: isWrite, detail: 'could not read the answer', field: null, idempotencyKey: idempotencyKey || null, retryAfter: null, requestId: null } };
    }
    if (result.ok) {
        return { ok: true, status: result.object.status, body: result.object.body, replayed: result.object.replayed };
    }
    var problem = result.status === 'SERVICE_UNAVAILABLE'
        ? problems.fromUnavailable(result.unavailableReason, isWrite)
        : problems.fromHttp(Number(result.error) || 0, result.errorMessage);
    if (problem.outcomeUnknown && !problem.idempotencyKey) {
        problem.idempotencyKey = idempotencyKey || null;
    }
    return { ok: false, problem: problem };
}

module.exports = {
    callbacks: callbacks,
    evaluate: function (basketJson) { return call('POST', '/v1/evaluate', basketJson); },
    prices: function (queryJson) { return call('POST', '/v1/products/prices', queryJson); },
    identify: function (identifierJson) { return call('POST', '/v1/customers/identify', identifierJson); },
    orderStatus: function (orderNo) { return call('GET', '/v1/orders/' + encodeURIComponent(orderNo), null); },
    redeem: function (body, key) { return call('POST', '/v1/vouchers/redeem', body, key); },
    spend: function (body, key) { return call('POST', '/v1/cashback/spend', body, key); },
    placeOrder: function (body, key) { return call('POST', '/v1/orders', body, key); },
    reverse: function (body, key) { return call('POST', '/v1/reversals', body, key); },
    /** Forget created services (tests; a new site preference set). */
    reset: function () { services = {}; }
};
