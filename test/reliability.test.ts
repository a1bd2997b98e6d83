// Reliability of saved indexes ("index lifecycle"): a save killed at any
// moment leaves the old file or the new one, whole; a damaged file never
// loads, crashes or hangs. Both run in child processes (test/fixtures/) on
// the compiled package in dist/, so that a crash fails the test instead of
// killing the runner. The C++ side of the corruption test, meant for
// ASan/UBSan, is native/tests/test_index_reliability.cc.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IvfRabitqIndex } from '../src/index.js';
import { ensureDist, rng } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const DIST_INDEX = path.join(ROOT, 'dist', 'src', 'index.js');

let tmp = '';

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'rabitq-reliability-'));
  // The child processes import dist/.
  ensureDist(DIST_INDEX);
}, 180_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('crash safety: SIGKILL during repeated saves of a 200k-vector index', () => {
  it('leaves the target loadable (read and mmap + verify) and exactly the old or the new version, 20 kills', async () => {
    const t0 = performance.now();
    const dim = 16;
    const n = 200_000;
    const r = rng(2024);
    const vectors = new Float32Array(n * dim);
    for (let i = 0; i < vectors.length; i++) vectors[i] = r() * 10;
    // Version A: the build. Version B: 2,000 removed and 1,000 added.
    const a = await IvfRabitqIndex.build(vectors, {
      dim,
      numClusters: 256,
      kmeansIterations: 4,
      trainPointsPerCluster: 64,
      seed: 1,
    });
    const fileA = path.join(tmp, 'a.rbq');
    const fileB = path.join(tmp, 'b.rbq');
    await a.save(fileA);
    const b = await IvfRabitqIndex.load(fileA, { idType: 'u32' });
    expect(await b.remove(Uint32Array.from({ length: 2000 }, (_, i) => i))).toBe(2000);
    const added = new Float32Array(1000 * dim);
    for (let i = 0; i < added.length; i++) added[i] = r() * 10;
    await b.add(added);
    await b.save(fileB);
    const bytes = { A: readFileSync(fileA), B: readFileSync(fileB) };
    expect(bytes.A.equals(bytes.B)).toBe(false);

    // Which version a loaded index is, by size, membership and a search:
    // vector 5 is only in A, vector 200500 (the 501st added) only in B.
    const qA = vectors.subarray(5 * dim, 6 * dim);
    const qB = added.subarray(500 * dim, 501 * dim);
    const identify = (idx: IvfRabitqIndex): string => {
      const inA = idx.has(5),
        inB = idx.has(200_500);
      const topA = idx.search(qA, { k: 1, nprobe: 8 }).ids[0];
      const topB = idx.search(qB, { k: 1, nprobe: 8 }).ids[0];
      if (idx.size === n && inA && !inB && topA === 5 && topB !== 200_500) return 'A';
      if (idx.size === n - 1000 && !inA && inB && topA !== 5 && topB === 200_500) return 'B';
      return `neither (size ${idx.size}, has(5) ${inA}, has(200500) ${inB}, top ${topA} ${topB})`;
    };
    expect(identify(a)).toBe('A');
    expect(identify(b)).toBe('B');

    const target = path.join(tmp, 'target.rbq');
    copyFileSync(fileB, target);
    let current = 'B'; // the target's version before the next round
    const saver = path.join(FIXTURES, 'reliability-saver.mjs');
    const version = (i: number): string => (i % 2 === 0 ? 'A' : 'B');
    const saveMs: number[] = [];
    const phases: Record<string, number> = {};
    const seen: Record<string, number> = { A: 0, B: 0 };
    const knownTemps = new Set<string>();
    const kills = 20;
    for (let round = 0; round < kills; round++) {
      const child = spawn(process.execPath, [saver, fileA, fileB, target], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on('exit', (_code, signal) => resolve(signal)),
      );
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`saver did not start: ${err}`)), 15_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.startsWith('ready\n')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.on('exit', () => reject(new Error(`saver exited early: ${err}`)));
      });
      // A random moment across the first ~2.5 saves: every phase of a save
      // (writing, fsync, rename, folder fsync) is hit in proportion to its
      // length, and some kills land before the first save starts.
      const typical = saveMs.length ? saveMs.slice().sort((x, y) => x - y)[saveMs.length >> 1]! : 25;
      const delay = round === 0 ? 0 : r() * 2.5 * typical;
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.kill('SIGKILL');
      const signal = await exited;
      expect(signal, `round ${round}: the saver ended by itself: ${err}`).toBe('SIGKILL');

      // What the child had announced when it died.
      let lastBegin = -1,
        lastEnd = -1;
      for (const line of out.split('\n')) {
        const [word, num, ms] = line.split(' ');
        if (word === 'begin') lastBegin = Number(num);
        if (word === 'end') {
          lastEnd = Number(num);
          saveMs.push(Number(ms));
        }
      }
      const midSave = lastBegin > lastEnd;
      const allowed = new Set<string>();
      if (lastEnd >= 0) allowed.add(version(lastEnd));
      else allowed.add(current);
      if (midSave) allowed.add(version(lastBegin));

      const now = readFileSync(target);
      const which = now.equals(bytes.A) ? 'A' : now.equals(bytes.B) ? 'B' : `neither (${now.length} bytes)`;
      expect([...allowed], `round ${round}: target after a kill (begin ${lastBegin}, end ${lastEnd})`).toContain(which);
      seen[which] = (seen[which] ?? 0) + 1;
      const read = await IvfRabitqIndex.load(target, { idType: 'u32' });
      expect(identify(read)).toBe(which);
      const mapped = await IvfRabitqIndex.load(target, { mmap: true, verify: true, idType: 'u32' });
      expect(identify(mapped)).toBe(which);
      const previous = current;
      current = which;

      // Temporary files of killed saves stay behind (only a hard kill can
      // leave one); they are left in place to show they do not disturb
      // later saves and loads.
      const temps = readdirSync(tmp).filter((f) => f.includes('.tmp-'));
      const fresh = temps.filter((f) => !knownTemps.has(f));
      fresh.forEach((f) => knownTemps.add(f));
      expect(fresh.length).toBeLessThanOrEqual(1);
      // Where in a save the kill landed, from the announcements, the
      // temporary file and the target.
      let phase = 'between saves';
      if (midSave && fresh.length === 1) {
        const t = readFileSync(path.join(tmp, fresh[0]!));
        phase =
          t.equals(bytes.A) || t.equals(bytes.B)
            ? 'temp file complete, before rename (fsync)'
            : 'writing the temp file';
      } else if (midSave) {
        const before = lastBegin > 0 ? version(lastBegin - 1) : previous;
        phase =
          before === version(lastBegin)
            ? 'no temp file (before create or after rename)'
            : which === version(lastBegin)
              ? 'after the rename (folder fsync)'
              : 'before the temp file was created';
      }
      phases[phase] = (phases[phase] ?? 0) + 1;
    }
    // Temporary files of killed saves still on disk (a later save by the
    // next child removes those of dead processes): each is either
    // unfinished, and then refused (the header, written last, is still
    // zeros), or a complete copy of the version being saved (killed between
    // the header write and the rename).
    const staleTemps = readdirSync(tmp).filter((f) => f.includes('.tmp-'));
    const temps: Record<string, number> = { unfinished: 0, complete: 0 };
    for (const f of staleTemps) {
      const t = readFileSync(path.join(tmp, f));
      if (t.equals(bytes.A) || t.equals(bytes.B)) {
        temps.complete++;
      } else {
        temps.unfinished++;
        await expect(IvfRabitqIndex.load(path.join(tmp, f))).rejects.toMatchObject({
          name: 'IndexFileError',
          code: 'EBADINDEX',
        });
      }
    }

    // A later save still works, and removes the temporary files whose
    // process is gone.
    await a.save(target);
    expect(readFileSync(target).equals(bytes.A)).toBe(true);
    expect(identify(await IvfRabitqIndex.load(target, { mmap: true, verify: true, idType: 'u32' }))).toBe('A');
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // A temporary file of a live process (this one's parent here) is kept.
    const live = `${path.basename(target)}.tmp-${process.ppid}-abcdef`;
    copyFileSync(target, path.join(tmp, live));
    await a.save(target);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([live]);
    rmSync(path.join(tmp, live));
    const ms = performance.now() - t0;
    const sorted = saveMs.slice().sort((x, y) => x - y);
    console.log(
      `crash safety: ${kills} kills in ${(ms / 1000).toFixed(1)} s; ${bytes.A.length} byte file, save ${sorted[0]?.toFixed(1)}..${sorted.at(-1)?.toFixed(1)} ms ` +
        `(median ${sorted[sorted.length >> 1]?.toFixed(1)}); target was A ${seen.A}x, B ${seen.B}x; kills: ${JSON.stringify(phases)}; ` +
        `${staleTemps.length} stale temporary files left by killed saves (${temps.unfinished} unfinished, ${temps.complete} complete)`,
    );
    expect(ms).toBeLessThan(25_000);
  }, 60_000);
});

describe('corruption: 2,500 damaged variants of saved indexes', () => {
  it('every variant (of a 1-bit and a 5-bit index) is rejected with IndexFileError (EBADINDEX) by load, load(mmap + verify) and fromBuffer; mmap without verify defers only bulk-section damage to verify()', () => {
    const workdir = path.join(tmp, 'corrupt');
    const t0 = performance.now();
    const run = spawnSync(
      process.execPath,
      [path.join(FIXTURES, 'reliability-corrupt.mjs'), workdir, '1', '2000', '500', '500'],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    const wall = performance.now() - t0;
    // A crash in the loader shows up here as a signal (SIGSEGV, SIGABRT, SIGBUS).
    expect(run.signal, run.stderr).toBeNull();
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(report.failures).toEqual([]);
    expect(report.configs[0].variants).toBeGreaterThanOrEqual(2000);
    expect(report.configs[2].sections).toEqual(expect.arrayContaining(['EXCD', 'EXFT']));
    expect(report.configs[2].variants).toBeGreaterThanOrEqual(400);
    for (const family of ['flip', 'truncate', 'header', 'table', 'meta', 'values'])
      expect(report.families[family]).toBeGreaterThan(50);
    for (const mode of ['read', 'mmapVerify', 'buffer']) {
      expect(report.modes[mode], mode).toEqual({ rejected: report.variants, loaded: 0, wrongError: 0 });
    }
    const lazy = report.modes.mmapLazy;
    expect(lazy.wrongError).toBe(0);
    expect(lazy.rejected + lazy.loaded).toBe(report.variants);
    expect(lazy.loaded).toBe(report.lazyDeferred.expected);
    expect(report.lazyDeferred.loadedThenVerifyFailed).toBe(report.lazyDeferred.expected);
    expect(report.lazyDeferred.expected).toBeGreaterThan(50);
    console.log(
      `corruption: ${report.variants} variants (${JSON.stringify(report.families)}) x 4 modes in ${report.ms} ms ` +
        `(child wall ${Math.round(wall)} ms); mmap without verify: ${lazy.rejected} rejected at load, ${lazy.loaded} loaded and failed verify()`,
    );
    expect(wall).toBeLessThan(30_000);
  }, 90_000);
});
