// Type-aware lint: floating promises and misused promises are bugs in a tool
// whose every operation is asynchronous I/O.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'eslint.config.js', 'vitest.config.ts', 'bin/', '.tmp/', '.bench/', '.demo/', '.ci-demo/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  // Which module may import which (the thread boundary included) is checked by
  // scripts/layers.ts, run by `npm test`: one table of layers, not a rule per folder.
);
