// worker_threads: every thread that imports the package gets its own addon
// instance (per-environment state in the binding), and async native work of a
// Worker that is terminated finishes safely. The scenarios run in a child
// process (test/fixtures/workers-scenario.mjs, on the compiled package in
// dist/) so that a crash fails the test instead of killing vitest.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCENARIO = path.join(ROOT, 'test', 'fixtures', 'workers-scenario.mjs');
const DIST_INDEX = path.join(ROOT, 'dist', 'src', 'index.js');

beforeAll(() => {
  // The child imports dist/: (re)build it when it is missing or older than the sources.
  const sources = readdirSync(path.join(ROOT, 'src'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(ROOT, 'src', f));
  const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  if (!existsSync(DIST_INDEX) || statSync(DIST_INDEX).mtimeMs < newest) {
    spawnSync(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')],
      {
        cwd: ROOT,
        stdio: 'ignore',
      },
    );
  }
}, 180_000);

function scenario(name: string): Record<string, unknown> {
  const res = spawnSync(process.execPath, [SCENARIO, name], { cwd: ROOT, encoding: 'utf8', timeout: 170_000 });
  const detail = `status ${res.status}, signal ${res.signal}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`;
  expect(res.signal, detail).toBeNull();
  expect(res.status, detail).toBe(0);
  const lines = res.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

describe('worker_threads', () => {
  it('a Worker imports, builds, searches and exits; then the main thread builds and searches (no crash)', () => {
    const r = scenario('worker-then-main');
    expect(r).toEqual({ workerWrong: 0, exitCode: 0, mainWrong: 0 });
  }, 180_000);

  it('three Workers and the main thread build and search their own index at once, each exact vs brute force', () => {
    const r = scenario('concurrent');
    expect(r).toEqual({ workerWrong: [0, 0, 0], mainWrong: 0, exitCodes: [0, 0, 0] });
  }, 180_000);

  it('Workers terminated in a loop of searchBatch leave the process and the other indexes working', () => {
    const r = scenario('terminate-batch');
    // terminate() makes the exit code 1.
    expect(r).toEqual({ exitCodes: [1, 1, 1], beforeWrong: 0, againLength: 10, afterWrong: 0 });
  }, 180_000);

  it('a Worker terminated during a build (with progress) leaves the process and the other indexes working', () => {
    const r = scenario('terminate-build');
    expect(r.firstMessage).toBe('progress'); // the build was running when terminated
    expect(r.exitCode).toBe(1);
    expect(r.beforeWrong).toBe(0);
    expect(r.afterWrong).toBe(0);
    expect(r.againLength).toBe(10);
  }, 180_000);
});
