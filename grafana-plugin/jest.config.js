// Packages in node_modules that ship only ES modules and must be transformed.
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
  testEnvironment: 'jest-environment-jsdom',
  testMatch: ['<rootDir>/src/**/*.test.{ts,tsx}'],
  setupFiles: ['<rootDir>/jest/setup.cjs'],
  moduleFileExtensions: ['ts', 'tsx', 'js', 'mjs', 'cjs', 'jsx', 'json'],
  transform: { '^.+\\.(t|j)sx?$|^.+\\.mjs$': '<rootDir>/jest/transform.cjs' },
  transformIgnorePatterns: [`node_modules/(?!(${esmOnly.join('|')})/)`],
  moduleNameMapper: {
    '\\.(css|scss|sass)$': '<rootDir>/jest/mocks/style.cjs',
    '^react-inlinesvg$': '<rootDir>/jest/mocks/react-inlinesvg.cjs',
  },
};
