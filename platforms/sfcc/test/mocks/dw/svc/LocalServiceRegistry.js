'use strict';

/**
 * dw.svc.LocalServiceRegistry with an HTTP service as the SFCC service framework runs it:
 * createRequest builds the request, the credential's user/password become Basic authentication,
 * the log callbacks produce the service log lines (kept in __log), a 2xx answer goes through
 * parseResponse, any other status is an ERROR result with the status as `error` and the body as
 * `errorMessage`, and a transport failure (timeout, connection refused) is SERVICE_UNAVAILABLE.
 *
 * Tests set the service configurations (__configure) and the transport (__setTransport): a function
 * (request) -> {status, headers, text} | {unavailable: 'TIMEOUT' | 'ERROR' | ...}.
 */
const configs = {};
const sent = [];
const log = [];
let transport = () => ({ unavailable: 'ERROR' });

class HTTPClientMock {
    constructor() {
        this.timeout = null;
        this.statusCode = 0;
        this.text = null;
        this.responseHeaders = {};
    }
    setTimeout(ms) { this.timeout = ms; }
    getStatusCode() { return this.statusCode; }
    getText() { return this.text; }
    getResponseHeader(name) {
        const key = Object.keys(this.responseHeaders).find((k) => k.toLowerCase() === name.toLowerCase());
        return key === undefined ? null : this.responseHeaders[key];
    }
}

class HTTPServiceMock {
    constructor(id, callbacks) {
        this.id = id;
        this.callbacks = callbacks;
    }
    getConfiguration() {
        const c = configs[this.id] || {};
        return { getCredential: () => ({ getURL: () => c.url, getUser: () => c.user, getPassword: () => c.password }) };
    }
    setURL(url) { this.url = url; }
    setRequestMethod(method) { this.method = method; }
    addHeader(name, value) { this.headers[name] = String(value); }
    getClient() { return this.client; }
    call(params) {
        this.url = null;
        this.method = 'POST';
        this.headers = {};
        this.client = new HTTPClientMock();
        const config = configs[this.id];
        if (!config) {
            return { ok: false, status: 'SERVICE_UNAVAILABLE', unavailableReason: 'CONFIG_PROBLEM', error: 0, errorMessage: null, object: null };
        }
        const body = this.callbacks.createRequest(this, params);
        if (config.user) {
            this.headers.Authorization = 'Basic ' + Buffer.from(config.user + ':' + config.password).toString('base64');
        }
        const message = this.callbacks.getRequestLogMessage ? this.callbacks.getRequestLogMessage(body) : body;
        log.push({ service: this.id, kind: 'request', text: this.callbacks.filterLogMessage ? this.callbacks.filterLogMessage(message) : message });
        const request = { service: this.id, method: this.method, url: this.url, headers: { ...this.headers }, body, timeout: this.client.timeout };
        sent.push(request);
        const answer = transport(request);
        if (answer.unavailable) {
            return { ok: false, status: 'SERVICE_UNAVAILABLE', unavailableReason: answer.unavailable, error: 0, errorMessage: null, object: null };
        }
        this.client.statusCode = answer.status;
        this.client.text = answer.text === undefined ? null : answer.text;
        this.client.responseHeaders = answer.headers || {};
        const response = this.callbacks.getResponseLogMessage ? this.callbacks.getResponseLogMessage(this.client) : this.client.text;
        log.push({ service: this.id, kind: 'response', text: this.callbacks.filterLogMessage ? this.callbacks.filterLogMessage(response) : response });
        if (answer.status >= 200 && answer.status < 300) {
            return { ok: true, status: 'OK', error: 0, errorMessage: null, object: this.callbacks.parseResponse(this, this.client) };
        }
        return { ok: false, status: 'ERROR', error: answer.status, errorMessage: this.client.text, object: null };
    }
}

module.exports = {
    createService: (id, callbacks) => new HTTPServiceMock(id, callbacks),
    __configure(id, config) { configs[id] = config; },
    __setTransport(fn) { transport = fn; },
    __sent: sent,
    __log: log,
    __reset() {
        Object.keys(configs).forEach((k) => delete configs[k]);
        sent.length = 0;
        log.length = 0;
        transport = () => ({ unavailable: 'ERROR' });
    }
};
