'use strict';

/**
 * A synchronous HTTP transport for the service mock, as SFCC's service calls are synchronous:
 * each request runs in a child Node process (fetch) and this one waits for its answer.
 * A request past its timeout is reported as the framework reports it: unavailable, TIMEOUT.
 */
const { execFileSync } = require('child_process');

const CHILD = `
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
    const r = JSON.parse(Buffer.concat(chunks).toString());
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), r.timeout || 10000);
    try {
        const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body === null ? undefined : r.body, signal: abort.signal });
        const text = await res.text();
        const headers = {};
        res.headers.forEach((v, k) => { headers[k] = v; });
        process.stdout.write(JSON.stringify({ status: res.status, headers, text }));
    } catch (e) {
        process.stdout.write(JSON.stringify({ unavailable: e.name === 'AbortError' ? 'TIMEOUT' : 'ERROR' }));
    } finally {
        clearTimeout(timer);
    }
});`;

module.exports = function transport(request) {
    const out = execFileSync(process.execPath, ['-e', CHILD], { input: JSON.stringify(request), timeout: 60000 });
    return JSON.parse(out.toString());
};
