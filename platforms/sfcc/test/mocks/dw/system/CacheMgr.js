'use strict';
// dw.system.CacheMgr: named custom caches with get/put/invalidate.
const caches = {};
function cache() {
    const map = new Map();
    return { get: (key) => map.get(key), put: (key, value) => { map.set(key, value); }, invalidate: (key) => map.delete(key), __map: map };
}
module.exports = {
    getCache: (id) => { caches[id] = caches[id] || cache(id); return caches[id]; },
    __caches: caches
};
