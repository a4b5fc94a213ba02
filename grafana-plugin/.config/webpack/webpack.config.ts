// Webpack build of the plugin's frontend, laid out as @grafana/create-plugin
// lays it out (.config/webpack/webpack.config.ts; npm run build passes
// --env production, npm run dev --env development and watches).
//
// It writes into dist/: module.js, an AMD module (the format Grafana's
// plugin loader expects) whose define() lists the packages Grafana shares
// with plugins at run time, which are therefore not bundled; plugin.json
// with %VERSION% and %TODAY% filled in; the logo; README.md, CHANGELOG.md
// and LICENSE. dist/ is emptied on each build except for the backend
// executables (gpx_causeway_<os>_<arch>, built by make plugin), so a
// frontend rebuild in watch mode keeps them.
//
// Unlike the scaffold it sets no run-time public path: the plugin loads no
// chunks or assets through webpack (its logo is named in plugin.json), so
// nothing needs the URL Grafana serves module.js from.
import CopyWebpackPlugin from 'copy-webpack-plugin';
import fs from 'fs';
import path from 'path';
import type { Configuration } from 'webpack';

type Env = Record<string, string | boolean | undefined>;

const root = process.cwd();
const SOURCE_DIR = path.join(root, 'src');
const DIST_DIR = path.join(root, 'dist');

const readJSON = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const pluginJson = readJSON(path.join(SOURCE_DIR, 'plugin.json'));
const version: string = readJSON(path.join(root, 'package.json')).version;

// Packages Grafana provides to plugins (its SystemJS/AMD shared modules):
// the same list the create-plugin scaffold leaves external.
export const externals: Configuration['externals'] = [
  'lodash',
  'jquery',
  'moment',
  'slate',
  'emotion',
  '@emotion/react',
  '@emotion/css',
  'prismjs',
  'slate-plain-serializer',
  '@grafana/slate-react',
  'react',
  'react/jsx-runtime',
  'react/jsx-dev-runtime',
  'react-dom',
  'react-redux',
  'redux',
  'rxjs',
  'i18next',
  'react-router',
  'd3',
  'angular',
  /^@grafana\/ui/i,
  /^@grafana\/runtime/i,
  /^@grafana\/data/i,
];

/** Fills plugin.json's placeholders as the scaffold does. */
function fillPlaceholders(content: Buffer): string {
  return content
    .toString()
    .replace(/%VERSION%/g, version)
    .replace(/%TODAY%/g, new Date().toISOString().substring(0, 10))
    .replace(/%PLUGIN_ID%/g, pluginJson.id);
}

const logos: string[] = Array.from(new Set<string>([pluginJson.info?.logos?.small, pluginJson.info?.logos?.large])).filter(
  Boolean
);

export default function config(env: Env = {}): Configuration {
  const production = Boolean(env.production);
  return {
    context: SOURCE_DIR,
    mode: production ? 'production' : 'development',
    devtool: production ? 'source-map' : 'eval-source-map',
    entry: { module: './module.ts' },
    externals,
    module: {
      rules: [
        {
          test: /\.[tj]sx?$/,
          exclude: /node_modules/,
          use: {
            loader: 'swc-loader',
            options: {
              jsc: {
                target: 'es2018',
                parser: { syntax: 'typescript', tsx: true },
                // React.createElement, as tsconfig's "jsx": "react": the
                // bundle imports react, not react/jsx-runtime.
                transform: { react: { runtime: 'classic' } },
              },
            },
          },
        },
      ],
    },
    output: {
      path: DIST_DIR,
      filename: '[name].js',
      library: { type: 'amd' },
      publicPath: `public/plugins/${pluginJson.id}/`,
      uniqueName: pluginJson.id,
      clean: { keep: /gpx_causeway_[^/]*$|go_plugin_build_manifest/ },
    },
    plugins: [
      new CopyWebpackPlugin({
        patterns: [
          { from: 'plugin.json', to: '.', transform: fillPlaceholders },
          ...logos.map((logo) => ({ from: logo, to: logo })),
          { from: '../README.md', to: '.' },
          { from: '../CHANGELOG.md', to: '.' },
          { from: '../LICENSE', to: '.', noErrorOnMissing: true },
        ],
      }),
    ],
    resolve: { extensions: ['.ts', '.tsx', '.js', '.jsx'] },
    performance: { hints: false },
  };
}
