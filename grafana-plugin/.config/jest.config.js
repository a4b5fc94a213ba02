// Jest settings shared by the plugin's frontend tests, kept in .config/ as
// @grafana/create-plugin keeps them; ../jest.config.js spreads them and
// may add the project's own. @swc/jest compiles TypeScript, JSX and the
// ES modules below to CommonJS.
const path = require('path');

// Packages @grafana/ui and @grafana/data depend on that ship only ES
// modules: jest must transform them like our own sources.
const esmOnly = [
  '@grafana/schema',
  '@wojtekmaj/date-utils',
  'd3[^/]*',
  'get-user-locale',
  'marked',
  'memoize',
  'mimic-function',
  'ol',
  'react-calendar',
  'react-colorful',
  'rxjs',
  'uuid',
];

module.exports = {
  rootDir: path.join(__dirname, '..'),
  testEnvironment: 'jest-environment-jsdom',
  testMatch: ['<rootDir>/src/**/*.{spec,test}.{ts,tsx}'],
  modulePaths: ['<rootDir>/src'],
  setupFiles: [path.join(__dirname, 'jest-setup.js')],
  moduleFileExtensions: ['ts', 'tsx', 'js', 'mjs', 'cjs', 'jsx', 'json'],
  transform: {
    '^.+\\.(t|j)sx?$|^.+\\.mjs$': [
      '@swc/jest',
      {
        sourceMaps: 'inline',
        jsc: {
          parser: { syntax: 'typescript', tsx: true },
          transform: { react: { runtime: 'classic' } },
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  transformIgnorePatterns: [`node_modules/(?!(${esmOnly.join('|')})/)`],
  moduleNameMapper: {
    '\\.(css|scss|sass)$': path.join(__dirname, 'jest', 'mocks', 'style.cjs'),
    '^react-inlinesvg$': path.join(__dirname, 'jest', 'mocks', 'react-inlinesvg.cjs'),
  },
  watchPathIgnorePatterns: ['<rootDir>/node_modules', '<rootDir>/dist'],
};
