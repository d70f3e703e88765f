'use strict';
// dw.order.OrderMgr: orders registered by the tests (objects.js makes them).
const { compile, iterator } = require('../../query');
const Order = require('./Order');

const orders = new Map();

module.exports = {
    getOrder: (orderNo) => orders.get(orderNo) || null,
    failOrder(order, reopenBasket) {
        order.status = Order.ORDER_STATUS_FAILED;
        order.__failed = { reopenBasket };
    },
    searchOrders(query, sortString, ...args) {
        if (sortString !== 'creationDate asc') throw new Error('unsupported sort ' + sortString);
        const predicate = compile(query, args);
        return iterator([...orders.values()].filter(predicate).sort((a, b) => a.creationDate - b.creationDate));
    },
    __add(order) { orders.set(order.orderNo, order); return order; },
    __reset() { orders.clear(); }
};
