import { defineConfig } from 'vitest/config';

// Tests are TypeScript compiled by `tsc` (npm test builds first) and run from
// dist/, so the worker threads load the same compiled files users run.
export default defineConfig({
  test: {
    include: ['dist/test/**/*.test.js'],
    pool: 'forks',
    // Generous: real RocksDB state, child processes and fsync on slow shared CI machines.
    testTimeout: 600_000,
    hookTimeout: 300_000,
    // Two cores: test files each start a worker pool and RocksDB; one file at a time keeps timings sane.
    fileParallelism: false,
    reporters: ['default'],
  },
});
