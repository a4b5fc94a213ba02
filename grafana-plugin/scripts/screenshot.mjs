// Screenshot test: bundles test-page/page.tsx with webpack, serves it with
// dist/ (the production build) and the Go golden responses on 127.0.0.1,
// opens it in the Debian chromium through playwright-core (never a
// downloaded browser), writes test-results/screenshot.png, and fails unless
// the page shows both editors, every suspect's name from the backend's
// suspects frame, and the culprit in the graph, without page errors.
import { createServer } from 'node:http';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import webpack from 'webpack';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'test-results');
const golden = join(root, 'pkg', 'grafanads', 'testdata', 'golden');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

function fail(msg) {
  console.error('screenshot test FAILED: ' + msg);
  process.exit(1);
}

if (!existsSync(join(root, 'dist', 'module.js'))) {
  fail('dist/module.js is missing: run npm run build first');
}
if (!existsSync(chromiumPath)) {
  fail(`${chromiumPath} is missing: apt-get install -y chromium (or set CHROMIUM)`);
}
mkdirSync(join(out, 'page'), { recursive: true });

// The test page is bundled by webpack, like the plugin, but whole: it
// stands in for Grafana, so it carries React and the @grafana packages
// itself (their CommonJS builds, one copy shared with the plugin through
// the page's define) and is a plain script rather than an AMD module.
const cjs = (p) => join(root, 'node_modules', '@grafana', p, 'dist', 'cjs', 'index.cjs');
const compiler = webpack({
  mode: 'production',
  context: root,
  entry: join(root, 'test-page', 'page.tsx'),
  output: { path: join(out, 'page'), filename: 'page.js', assetModuleFilename: 'assets/[hash][ext]' },
  devtool: false,
  // Minifying a bundle of all of @grafana/ui costs a minute of CPU and
  // tests nothing.
  optimization: { minimize: false },
  performance: { hints: false },
  resolve: {
    extensions: ['.ts', '.tsx', '.js', '.jsx'],
    alias: { '@grafana/ui$': cjs('ui'), '@grafana/data$': cjs('data'), '@grafana/runtime$': cjs('runtime'), '@grafana/schema$': cjs('schema') },
  },
  module: {
    rules: [
      {
        test: /\.tsx?$/,
        exclude: /node_modules/,
        use: {
          loader: 'swc-loader',
          options: { jsc: { target: 'es2020', parser: { syntax: 'typescript', tsx: true }, transform: { react: { runtime: 'classic' } } } },
        },
      },
      // @grafana/ui imports SVGs as markup; its styles come from emotion,
      // so stray CSS imports are kept as unused strings.
      { test: /\.(svg|css)$/, type: 'asset/source' },
      { test: /\.(woff2?|ttf|png)$/, type: 'asset/resource' },
    ],
  },
});
await new Promise((resolve, reject) =>
  compiler.run((err, stats) => {
    compiler.close(() => {});
    if (err) {
      reject(err);
    } else if (stats.hasErrors()) {
      reject(new Error('webpack: ' + stats.toString({ all: false, errors: true })));
    } else {
      resolve();
    }
  })
);
writeFileSync(
  join(out, 'page', 'index.html'),
  '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Causeway plugin</title></head><body style="margin:0"><div id="root"></div><script src="/page.js"></script></body></html>'
);

const types = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.svg': 'image/svg+xml' };
const server = createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
  let file;
  if (path === '/') {
    file = join(out, 'page', 'index.html');
  } else if (path === '/page.js') {
    file = join(out, 'page', 'page.js');
  } else if (path.startsWith('/dist/')) {
    file = join(root, path);
  } else if (path.startsWith('/golden/')) {
    file = join(golden, path.slice('/golden/'.length));
  } else if (path.startsWith('/public/build/img/')) {
    // Grafana serves @grafana/ui's icons under /public/build/img/icons/.
    file = join(root, 'node_modules', '@grafana', 'ui', 'dist', 'public', 'img', path.slice('/public/build/img/'.length));
  }
  if (!file || !existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': types[extname(file)] || 'application/octet-stream' }).end(readFileSync(file));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  timeout: 60000,
});
let text = '';
let suspectsText = '';
let errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
  page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push('console: ' + m.text()));
  page.on('response', (r) => r.status() >= 400 && errors.push(`HTTP ${r.status()} ${r.url()}`));
  await page.goto(url, { timeout: 60000 });
  await page.waitForSelector('body[data-ready="1"]', { state: 'attached', timeout: 60000 }).catch((e) => {
    throw new Error(`page never got ready: ${e.message}\n${errors.join('\n')}`);
  });
  errors.push(...JSON.parse((await page.getAttribute('body', 'data-errors')) || '[]'));
  await page.screenshot({ path: join(out, 'screenshot.png'), fullPage: true });
  text = await page.innerText('body');
  suspectsText = await page.innerText('#suspects');
  writeFileSync(join(out, 'page-text.txt'), text);
} finally {
  await browser.close();
  server.close();
}

// What the page must show, read from the backend's own frames.
const suspects = JSON.parse(readFileSync(join(golden, 'suspects-latest.json'), 'utf8')).frames[0];
const names = suspects.data.values[suspects.schema.fields.findIndex((f) => f.name === 'service')];
const incident = suspects.schema.meta.custom.incident;
const graph = JSON.parse(readFileSync(join(golden, 'graph.json'), 'utf8')).frames[0];
const ids = graph.data.values[graph.schema.fields.findIndex((f) => f.name === 'id')];
const arcs = graph.data.values[graph.schema.fields.findIndex((f) => f.name === 'arc__culprit')];
const culprit = ids[arcs.indexOf(1)];

const problems = [];
// @grafana/runtime warns that Grafana's boot data is missing: expected outside Grafana.
const fatal = errors.filter((e) => !/grafanaBootData was not set|favicon/.test(e));
if (fatal.length) {
  problems.push('page errors:\n  ' + fatal.join('\n  '));
}
if (!names || names.length === 0) {
  problems.push('the suspects frame has no services');
}
for (const n of names ?? []) {
  if (!suspectsText.includes(n)) {
    problems.push(`suspect ${n} is not shown in the suspects table`);
  }
}
if (!text.includes(`${culprit} (culprit)`)) {
  problems.push(`culprit ${culprit} is not marked in the graph`);
}
for (const want of ['Detector URL', 'API token', 'Query type', 'Suspects', 'Service graph', `${incident} · ${names?.[0]}`]) {
  if (!text.includes(want)) {
    problems.push(`page does not show "${want}"`);
  }
}
if (problems.length) {
  fail(problems.join('\n') + `\n(page text in ${join(out, 'page-text.txt')})`);
}
console.log(`screenshot test ok: ${join(out, 'screenshot.png')}; suspects shown: ${names.join(', ')}; culprit: ${culprit}`);
