'use strict';
module.exports = { toHex: (bytes) => bytes.buffer.toString('hex') };
