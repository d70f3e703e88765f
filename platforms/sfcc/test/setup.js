'use strict';

/**
 * Loaded before every cartridge test (node --require): resolves SFCC module names the way the
 * platform does, to the cartridge and to the small mocks of the dw.* modules in test/mocks.
 *   require('dw/...')            -> test/mocks/dw/...
 *   require('*\/cartridge/...')  -> cartridges/int_loyaltykit/cartridge/...
 *   module.superModule           -> the base module a test registers in global.sfccSuperModules
 */
const Module = require('module');
const path = require('path');

const CARTRIDGE = path.resolve(__dirname, '..', 'cartridges', 'int_loyaltykit');
const MOCKS = path.resolve(__dirname, 'mocks');
const resolve = Module._resolveFilename;

Module._resolveFilename = function (request, parent, ...rest) {
    let target = request;
    if (request.startsWith('dw/')) {
        target = path.join(MOCKS, request);
    } else if (request.startsWith('*/cartridge/')) {
        target = path.join(CARTRIDGE, request.slice(2));
    }
    return resolve.call(this, target, parent, ...rest);
};

global.sfccSuperModules = {};
Object.defineProperty(Module.prototype, 'superModule', {
    configurable: true,
    get() {
        return global.sfccSuperModules[path.basename(this.filename, '.js')];
    }
});
