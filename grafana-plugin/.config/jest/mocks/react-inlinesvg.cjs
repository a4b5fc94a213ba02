// Icons in @grafana/ui fetch their SVG over HTTP; in jsdom draw nothing.
const React = require('react');
module.exports = { __esModule: true, default: () => React.createElement('svg'), cacheStore: {} };
