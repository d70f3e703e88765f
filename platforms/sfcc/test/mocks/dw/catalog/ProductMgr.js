'use strict';
// dw.catalog.ProductMgr: products registered by the tests.
const products = {};
module.exports = { getProduct: (id) => products[id] || null, __products: products };
