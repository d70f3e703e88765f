'use strict';

/**
 * RFC 9457 problem documents of the sidecar (application/problem+json, with the kit's stable
 * `code` and `retryable`), and the failures of the SFCC service framework itself, as one shape:
 * {status, code, retryable, outcomeUnknown, detail, field, idempotencyKey, retryAfter}.
 */

function fromHttp(status, text) {
    var body = null;
    if (text) {
        try {
            body = JSON.parse(text);
        } catch (e) {
            body = null;
        }
    }
    if (body && typeof body === 'object' && typeof body.code === 'string') {
        return {
            status: typeof body.status === 'number' ? body.status : status,
            code: body.code,
            retryable: body.retryable === true,
            outcomeUnknown: body.code === 'outcome_unknown',
            detail: typeof body.detail === 'string' ? body.detail : (body.title || ''),
            field: body.field || null,
            idempotencyKey: body.idempotency_key || null,
            retryAfter: typeof body.retry_after === 'number' ? body.retry_after : null,
            requestId: body.request_id || null
        };
    }
    // Not a problem document (a proxy's error page): classify by status alone.
    return {
        status: status,
        code: 'http_' + status,
        retryable: status === 408 || status === 409 || status === 429 || status >= 500,
        outcomeUnknown: status === 504,
        detail: 'HTTP ' + status,
        field: null,
        idempotencyKey: null,
        retryAfter: null,
        requestId: null
    };
}

/**
 * A call the service framework did not complete: circuit open, rate limited, timeout, connection
 * error. A write that timed out may have been applied: its outcome is unknown.
 */
function fromUnavailable(reason, isWrite) {
    var timeout = reason === 'TIMEOUT';
    return {
        status: 0,
        code: timeout ? (isWrite ? 'outcome_unknown' : 'timeout') : 'engine_unavailable',
        retryable: reason !== 'CONFIG_PROBLEM',
        outcomeUnknown: timeout && !!isWrite,
        detail: 'service unavailable: ' + (reason || 'unknown'),
        field: null,
        idempotencyKey: null,
        retryAfter: null,
        requestId: null
    };
}

module.exports = { fromHttp: fromHttp, fromUnavailable: fromUnavailable };
