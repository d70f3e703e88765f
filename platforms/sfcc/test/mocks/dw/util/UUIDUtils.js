'use strict';
const crypto = require('crypto');
module.exports = { createUUID: () => crypto.randomUUID().replace(/-/g, '') };
