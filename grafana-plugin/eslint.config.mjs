// ESLint for the plugin's frontend, its test page and build scripts: the
// shared settings in .config/, minus what is generated or installed.
import { defineConfig } from 'eslint/config';

import baseConfig from './.config/eslint.config.mjs';

export default defineConfig([
  { ignores: ['**/node_modules/', '**/dist/', '**/coverage/', 'test-results/', '**/.eslintcache'] },
  ...baseConfig,
]);
