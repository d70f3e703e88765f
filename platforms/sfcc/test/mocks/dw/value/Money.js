'use strict';
// dw.value.Money: value, currencyCode, available, valueOrNull.
class Money {
    constructor(value, currencyCode) {
        this.value = value === null ? 0 : value;
        this.currencyCode = currencyCode;
        this.available = value !== null && value !== undefined;
        this.valueOrNull = this.available ? value : null;
    }
}
module.exports = Money;
