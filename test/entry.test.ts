/**
 * The package entry stays a library: importing 'rabitq' loads neither the
 * HTTP server (fastify), nor the CLI's progress bar (cli-progress), nor the
 * load generator (autocannon), nor prom-client (loaded with the first batcher).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');

/** Packages (by node_modules folder) loaded after `script` ran in a fresh node process. */
function loadedPackages(script: string): string[] {
  const probe = `
    import { createRequire } from 'node:module';
    ${script}
    // fastify, cli-progress, autocannon and prom-client are CommonJS: whatever
    // an ES module imported of them is in the CommonJS cache.
    const cache = createRequire(import.meta.url).cache;
    const names = new Set();
    for (const file of Object.keys(cache)) {
      const m = /node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(file);
      if (m) names.add(m[1].replace(/\\\\/g, '/'));
    }
    console.log(JSON.stringify([...names].sort()));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout.trim()) as string[];
}

describe('package entry', () => {
  const dist = path.join(ROOT, 'dist', 'src', 'index.js');

  it('import("rabitq") loads no server, CLI or load-generator packages', () => {
    expect(existsSync(dist), `${dist} is missing: run npm run build:ts first`).toBe(true);
    // 'rabitq' resolves to this package through its own "exports" (self-reference).
    const loaded = loadedPackages(
      "const m = await import('rabitq'); if (typeof m.IvfRabitqIndex !== 'function') throw new Error('no IvfRabitqIndex');",
    );
    for (const pkg of ['fastify', 'cli-progress', 'autocannon', 'prom-client', 'hnswlib-node'])
      expect(loaded, pkg).not.toContain(pkg);
  });

  it('the probe sees those packages when they are loaded (rabitq/server loads fastify)', () => {
    const loaded = loadedPackages(
      "const s = await import('rabitq/server'); if (typeof s.startServer !== 'function') throw new Error('no startServer');",
    );
    expect(loaded).toContain('fastify');
    expect(loaded).toContain('prom-client');
  });
});
