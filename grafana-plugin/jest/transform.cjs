// Jest transformer: esbuild turns TypeScript, JSX and ES modules (ours and
// the ESM-only packages @grafana/ui depends on, .mjs included) into
// CommonJS. One small dependency instead of babel or swc.
const { transformSync } = require('esbuild');

module.exports = {
  process(source, filename) {
    const loader = /\.tsx$/.test(filename) ? 'tsx' : /\.ts$/.test(filename) ? 'ts' : /\.jsx$/.test(filename) ? 'jsx' : 'js';
    const out = transformSync(source, {
      loader,
      format: 'cjs',
      target: 'node20',
      jsx: 'transform',
      sourcemap: 'inline',
      sourcefile: filename,
      supported: { 'dynamic-import': false },
    });
    return { code: out.code };
  },
};
