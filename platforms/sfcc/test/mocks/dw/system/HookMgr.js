'use strict';
const hooks = {};
const calls = [];
module.exports = {
    hasHook: (name) => name in hooks,
    callHook: (name, fn, ...args) => { calls.push(name); return hooks[name][fn](...args); },
    __hooks: hooks,
    __calls: calls
};
