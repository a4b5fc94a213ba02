// Production build of the plugin's frontend into dist/: module.js (an AMD
// module, the format Grafana's plugin loader expects, with Grafana's shared
// packages left external), plugin.json with version and date filled in,
// the logo, README and LICENSE. The backend executable is built by the
// repository's Makefile (make plugin).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

// Grafana provides these to plugins at run time; they must not be bundled.
export const externals = ['react', 'react-dom', '@grafana/data', '@grafana/ui', '@grafana/runtime', '@grafana/schema', 'rxjs'];

const result = await build({
  entryPoints: [join(root, 'src', 'module.ts')],
  bundle: true,
  format: 'cjs',
  platform: 'browser',
  target: 'es2020',
  jsx: 'transform',
  minify: true,
  legalComments: 'none',
  external: externals,
  write: false,
  metafile: true,
  logLevel: 'warning',
});

// Which externals the bundle imports, in a fixed order.
const imported = new Set();
for (const out of Object.values(result.metafile.outputs)) {
  for (const imp of out.imports) {
    if (!imp.external) continue;
    if (!externals.includes(imp.path)) throw new Error(`bundle imports ${imp.path}, which Grafana does not provide`);
    imported.add(imp.path);
  }
}
const deps = externals.filter((d) => imported.has(d));
const code = result.outputFiles[0].text;

// Wrap the CommonJS bundle as define([deps], factory): the factory gets the
// modules in order and hands them to the bundle's require calls.
const amd =
  `define(${JSON.stringify(deps)},function(){var __deps={};` +
  deps.map((d, i) => `__deps[${JSON.stringify(d)}]=arguments[${i}];`).join('') +
  `var module={exports:{}},exports=module.exports;` +
  `function require(n){if(Object.prototype.hasOwnProperty.call(__deps,n))return __deps[n];throw new Error("causeway plugin: unknown module "+n)}\n` +
  code +
  `\nreturn module.exports;});\n`;

mkdirSync(join(dist, 'img'), { recursive: true });
writeFileSync(join(dist, 'module.js'), amd);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pluginJSON = readFileSync(join(root, 'src', 'plugin.json'), 'utf8')
  .replace('%VERSION%', pkg.version)
  .replace('%TODAY%', new Date().toISOString().slice(0, 10));
writeFileSync(join(dist, 'plugin.json'), pluginJSON);
copyFileSync(join(root, 'src', 'img', 'logo.svg'), join(dist, 'img', 'logo.svg'));
for (const f of ['README.md', 'LICENSE']) {
  if (existsSync(join(root, f))) copyFileSync(join(root, f), join(dist, f));
}
console.log(`dist/module.js: ${(amd.length / 1024).toFixed(1)} KiB, define(${deps.join(', ')})`);
