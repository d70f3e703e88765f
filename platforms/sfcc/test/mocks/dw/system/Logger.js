'use strict';
// dw.system.Logger: every line is kept, formatted ({0} placeholders), so tests can read the log.
const lines = [];
function format(message, args) {
    return String(message).replace(/\{(\d+)\}/g, (m, i) => String(args[Number(i)]));
}
function logger(category) {
    const at = (level) => (message, ...args) => lines.push({ level, category, text: format(message, args) });
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
module.exports = { getLogger: (file, category) => logger(category || file), __lines: lines, ...logger('root') };
