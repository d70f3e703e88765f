'use strict';

// Lint for the cartridge (ES5 CommonJS, as SFCC's server-side engine runs it) and its Node tests.
const js = require('@eslint/js');
const globals = require('globals');

module.exports = [
    { ignores: ['node_modules/'] },
    js.configs.recommended,
    {
        files: ['cartridges/**/*.js'],
        languageOptions: {
            ecmaVersion: 5,
            sourceType: 'commonjs',
            // SFCC's script globals
            globals: { ...globals.commonjs, empty: 'readonly', customer: 'readonly', dw: 'readonly' }
        },
        // Older SFCC engines need `catch (e)` with a binding even when it is not used.
        rules: { 'no-unused-vars': ['error', { caughtErrors: 'none' }] }
    },
    {
        files: ['test/**/*.js', 'eslint.config.js'],
        languageOptions: { ecmaVersion: 2022, sourceType: 'commonjs', globals: { ...globals.node } }
    }
];
