'use strict';

/** Test environment: fixtures, a fresh mock platform, and a scripted sidecar transport. */
const fs = require('fs');
const path = require('path');
const LocalServiceRegistry = require('../mocks/dw/svc/LocalServiceRegistry');
const CustomObjectMgr = require('../mocks/dw/object/CustomObjectMgr');
const OrderMgr = require('../mocks/dw/order/OrderMgr');
const Site = require('../mocks/dw/system/Site');
const Logger = require('../mocks/dw/system/Logger');
const CacheMgr = require('../mocks/dw/system/CacheMgr');
const HookMgr = require('../mocks/dw/system/HookMgr');

const FIXTURES = path.join(__dirname, '..', 'fixtures');

function fixture(name) {
    return JSON.parse(fs.readFileSync(path.join(FIXTURES, name), 'utf8'));
}

function fixtureText(name) {
    return fs.readFileSync(path.join(FIXTURES, name), 'utf8');
}

const CREDENTIAL = { url: 'https://sidecar.example.test/', user: 'sfcc', password: 'lk_secret-api-key-0001' };

/**
 * Reset every mock and configure the two sidecar services. `routes` maps "METHOD /path" to an answer
 * ({status, text|json, headers}) or to a function (request) -> answer; unknown routes are 404s.
 */
function setup(routes = {}, prefs = {}) {
    LocalServiceRegistry.__reset();
    CustomObjectMgr.__reset();
    OrderMgr.__reset();
    Logger.__lines.length = 0;
    Object.keys(CacheMgr.__caches).forEach((k) => delete CacheMgr.__caches[k]);
    Object.keys(HookMgr.__hooks).forEach((k) => delete HookMgr.__hooks[k]);
    Site.__set({ loyaltykitEnabled: true, ...prefs });
    require('../../cartridges/int_loyaltykit/cartridge/scripts/loyaltykit/service').reset();
    LocalServiceRegistry.__configure('loyaltykit.http.sidecar.read', CREDENTIAL);
    LocalServiceRegistry.__configure('loyaltykit.http.sidecar.write', CREDENTIAL);
    delete global.request;
    const calls = [];
    LocalServiceRegistry.__setTransport((req) => {
        const route = req.method + ' ' + req.url.replace('https://sidecar.example.test', '');
        calls.push({ route, body: req.body ? JSON.parse(req.body) : null, headers: req.headers, timeout: req.timeout, service: req.service });
        let answer = routes[route];
        if (typeof answer === 'function') {
            answer = answer(req, calls.filter((c) => c.route === route).length);
        }
        if (!answer) {
            return { status: 404, headers: { 'Content-Type': 'application/problem+json' }, text: JSON.stringify({ code: 'not_found', status: 404, retryable: false, title: 'Not found', detail: route, type: 'urn:loyaltykit:error:not_found', request_id: 'x' }) };
        }
        if (answer.unavailable) {
            return answer;
        }
        return {
            status: answer.status || 200,
            headers: answer.headers || { 'Content-Type': 'application/json' },
            text: answer.text !== undefined ? answer.text : JSON.stringify(answer.json)
        };
    });
    return { calls, log: LocalServiceRegistry.__log, logger: Logger.__lines };
}

module.exports = { setup, fixture, fixtureText, CREDENTIAL };
