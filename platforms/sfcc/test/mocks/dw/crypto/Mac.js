'use strict';
const crypto = require('crypto');
// dw.crypto.Mac: digest(input: String, key: String) -> Bytes.
class Mac {
    constructor(algorithm) {
        this.algorithm = algorithm;
    }
    digest(input, key) {
        if (this.algorithm !== 'HmacSHA256') throw new Error('unsupported ' + this.algorithm);
        return { buffer: crypto.createHmac('sha256', Buffer.from(String(key), 'utf8')).update(Buffer.from(String(input), 'utf8')).digest() };
    }
}
Mac.HMAC_SHA_256 = 'HmacSHA256';
module.exports = Mac;
