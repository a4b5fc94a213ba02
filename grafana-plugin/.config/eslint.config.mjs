// ESLint settings shared by the plugin, kept in .config/ as
// @grafana/create-plugin keeps them: Grafana's own rules
// (@grafana/eslint-config), with type information for src/.
import grafanaConfig from '@grafana/eslint-config';
import { defineConfig } from 'eslint/config';

export default defineConfig([
  ...grafanaConfig,
  {
    // Props are typed by TypeScript, not declared with prop-types.
    rules: { 'react/prop-types': 'off' },
  },
  {
    files: ['src/**/*.{ts,tsx}'],
    languageOptions: { parserOptions: { project: './tsconfig.json' } },
    rules: { '@typescript-eslint/no-deprecated': 'warn' },
  },
]);
