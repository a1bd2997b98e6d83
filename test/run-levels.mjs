#!/usr/bin/env node
// Runs the index and kernel suites again at every SIMD level below the one
// this CPU picks (RABITQ_SIMD forces a level at load), so every ISA path is
// exercised on one machine. The default-level run is `vitest run` itself.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addon = createRequire(import.meta.url)('node-gyp-build')(root);
const detected = addon.detectedLevel();
const order = detected === 'neon' ? ['scalar', 'neon'] : ['scalar', 'avx2', 'avx512'];
const lower = order.slice(0, order.indexOf(detected));
const suites = ['test/index.test.ts', 'test/kernels_f16.test.ts', 'test/batch.test.ts', 'test/multibit.test.ts'];
for (const level of lower) {
  console.log(`\n=== RABITQ_SIMD=${level}: ${suites.join(' ')}`);
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...suites], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, RABITQ_SIMD: level },
  });
  if (r.status !== 0) {
    console.error(`suites failed at SIMD level ${level}`);
    process.exit(r.status ?? 1);
  }
}
