'use strict';
// dw.util.Bytes: only the constructor from a string is used.
class Bytes {
    constructor(text, encoding) {
        this.buffer = Buffer.from(String(text), encoding === 'UTF-8' || !encoding ? 'utf8' : encoding);
    }
}
module.exports = Bytes;
