import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real brokers, databases and child processes: give them time, never retry a failure away.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // 2-core machines: fault-injection suites are heavy, keep them from starving each other.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
  },
});
