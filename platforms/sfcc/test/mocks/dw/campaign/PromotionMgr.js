'use strict';
const calls = [];
module.exports = { applyDiscounts: (basket) => { calls.push('applyDiscounts'); basket.__steps && basket.__steps.push('promotions'); }, __calls: calls };
