'use strict';
// dw.system.Site: the current site's custom preferences, set by the tests.
const prefs = {};
const site = {
    getID: () => 'RefArch',
    getCustomPreferenceValue: (name) => (name in prefs ? prefs[name] : null)
};
module.exports = {
    getCurrent: () => site,
    current: site,
    __prefs: prefs,
    __set(values) { Object.keys(prefs).forEach((k) => delete prefs[k]); Object.assign(prefs, values); }
};
