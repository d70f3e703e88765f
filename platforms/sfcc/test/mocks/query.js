'use strict';

/**
 * The subset of SFCC's object query language the cartridge uses (custom.attr and system attributes,
 * = != < <= > >=, AND, OR, parentheses, {n} placeholders), so a wrong query fails a test.
 */
function tokenize(query) {
    const tokens = [];
    const re = /\s*(\(|\)|<=|>=|!=|=|<|>|\{\d+\}|AND\b|OR\b|[A-Za-z_][A-Za-z0-9_.]*)/gy;
    let match;
    let last = 0;
    while ((match = re.exec(query)) !== null) {
        tokens.push(match[1]);
        last = re.lastIndex;
    }
    if (query.slice(last).trim()) {
        throw new Error('unsupported query syntax near: ' + query.slice(last));
    }
    return tokens;
}

function compile(query, args) {
    const tokens = tokenize(query);
    let i = 0;
    const peek = () => tokens[i];
    const take = () => tokens[i++];
    function value(obj, attr) {
        return attr.split('.').reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
    }
    function comparison() {
        if (peek() === '(') {
            take();
            const inner = or();
            if (take() !== ')') throw new Error('missing )');
            return inner;
        }
        const attr = take();
        const op = take();
        const placeholder = take();
        const m = /^\{(\d+)\}$/.exec(placeholder || '');
        if (!m) throw new Error('expected a {n} placeholder after ' + attr + ' ' + op);
        const expected = args[Number(m[1])];
        const norm = (v) => (v instanceof Date ? v.getTime() : v);
        return (obj) => {
            const actual = norm(value(obj, attr));
            const want = norm(expected);
            switch (op) {
                case '=': return actual === want;
                case '!=': return actual !== want;
                case '<': return actual < want;
                case '<=': return actual <= want;
                case '>': return actual > want;
                case '>=': return actual >= want;
                default: throw new Error('unsupported operator ' + op);
            }
        };
    }
    function and() {
        let left = comparison();
        while (peek() === 'AND') {
            take();
            const a = left;
            const b = comparison();
            left = (o) => a(o) && b(o);
        }
        return left;
    }
    function or() {
        let left = and();
        while (peek() === 'OR') {
            take();
            const a = left;
            const b = and();
            left = (o) => a(o) || b(o);
        }
        return left;
    }
    const predicate = or();
    if (i !== tokens.length) throw new Error('unexpected ' + tokens[i]);
    return predicate;
}

function iterator(items) {
    let index = 0;
    return {
        hasNext: () => index < items.length,
        next: () => items[index++],
        close: () => {},
        count: items.length,
        getCount: () => items.length,
        asList: () => items.slice()
    };
}

module.exports = { compile, iterator };
