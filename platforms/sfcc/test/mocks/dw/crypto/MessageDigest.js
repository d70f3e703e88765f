'use strict';
const crypto = require('crypto');
// dw.crypto.MessageDigest: digestBytes(Bytes) -> Bytes.
class MessageDigest {
    constructor(algorithm) {
        this.algorithm = algorithm;
    }
    digestBytes(bytes) {
        return { buffer: crypto.createHash(this.algorithm === 'SHA-256' ? 'sha256' : this.algorithm).update(bytes.buffer).digest() };
    }
}
MessageDigest.DIGEST_SHA_256 = 'SHA-256';
module.exports = MessageDigest;
