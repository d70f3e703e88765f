'use strict';
// dw.object.CustomObjectMgr: an in-memory store of custom objects per type.
const { compile, iterator } = require('../../query');

const store = {};
let clock = 0;

function table(type) {
    store[type] = store[type] || new Map();
    return store[type];
}

module.exports = {
    getCustomObject: (type, key) => table(type).get(key) || null,
    createCustomObject(type, key) {
        if (table(type).has(key)) {
            throw new Error('a ' + type + ' with key ' + key + ' exists');
        }
        clock += 1;
        const object = { type, custom: {}, creationDate: new Date(1700000000000 + clock) };
        object.custom.ID = key;
        table(type).set(key, object);
        return object;
    },
    remove(object) { table(object.type).delete(object.custom.ID); },
    queryCustomObjects(type, query, sortString, ...args) {
        if (sortString !== 'creationDate asc') throw new Error('unsupported sort ' + sortString);
        const predicate = compile(query, args);
        const items = [...table(type).values()].filter(predicate).sort((a, b) => a.creationDate - b.creationDate);
        return iterator(items);
    },
    __store: store,
    __reset() { Object.keys(store).forEach((k) => delete store[k]); }
};
