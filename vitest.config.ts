import { defineConfig } from 'vitest/config';

// Test files run one after another: several suites measure event-loop delay
// or build large indexes on the native pool, and on a 2-core machine parallel
// files would make those measurements about the neighbours, not the code.
export default defineConfig({
  test: {
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
