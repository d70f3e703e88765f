'use strict';
// dw.system.Transaction: wrap runs the function; the count lets tests see that writes were wrapped.
const state = { wrapped: 0 };
module.exports = {
    wrap(fn) { state.wrapped += 1; return fn(); },
    begin() {}, commit() {}, rollback() {},
    __state: state
};
