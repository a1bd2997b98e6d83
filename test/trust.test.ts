// Inputs a hostile or careless caller can hand the library (issue 14): forged
// files, huge-but-finite values, FIFOs and NUL bytes in paths, shared and
// transferred buffers, and close(). Each test failed before its fix.
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  IndexFileError,
  IvfRabitqIndex,
  MAX_DENSE_ROTATION_DIM,
  VectorFileError,
  readFvecs,
  readFvecsSync,
  writeFvecs,
  writeFvecsSync,
} from '../src/index.js';
import { parseLayout, resealSection } from './fixtures/index-file.mjs';
import { rng, tempFolders } from './helpers.js';

const tmpDir = tempFolders('trust');

function uniform(n: number, dim: number, seed: number, lo = -0.5, hi = 0.5): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * dim }, () => lo + (hi - lo) * r());
}

describe('forged files: valid checksums, duplicate ids', () => {
  it('load, fromBuffer and verify() refuse an id stored twice (EBADINDEX); a lazy mmap load refuses it on first use', async () => {
    const dim = 8;
    const index = await IvfRabitqIndex.build(uniform(60, dim, 1), { dim, numClusters: 3, seed: 2 });
    const bytes = await index.toBuffer();
    const ids = parseLayout(bytes).sections.find((s) => s.name === 'IDS ')!;
    // Write id 7 over the slot that holds id 8, and make the checksums right again.
    let at8 = -1;
    for (let i = 0; i < ids.length / 4; i++) if (bytes.readUInt32LE(ids.offset + 4 * i) === 8) at8 = i;
    expect(at8).toBeGreaterThanOrEqual(0);
    bytes.writeUInt32LE(7, ids.offset + 4 * at8);
    resealSection(bytes, ids);
    const file = path.join(tmpDir('dup'), 'dup.rbq');
    fs.writeFileSync(file, bytes);

    const isDup = (e: unknown) =>
      e instanceof IndexFileError && e.code === 'EBADINDEX' && /id 7 is stored twice/.test(e.message);
    await expect(IvfRabitqIndex.fromBuffer(bytes)).rejects.toSatisfy(isDup);
    await expect(IvfRabitqIndex.load(file)).rejects.toSatisfy(isDup);
    await expect(IvfRabitqIndex.load(file, { mmap: true, verify: true })).rejects.toSatisfy(isDup);
    // mmap without verify reads no big column at load: verify() and the first
    // add / remove / has find the duplicate instead of removing one copy.
    const lazy = await IvfRabitqIndex.load(file, { mmap: true });
    await expect(lazy.verify()).rejects.toSatisfy(isDup);
    await expect(lazy.remove([7])).rejects.toSatisfy(isDup);
    expect(() => lazy.has(7)).toThrow(IndexFileError);
  });
});

describe('paths: FIFOs and NUL characters', () => {
  it('load() of a FIFO rejects at once (not a regular file) instead of waiting for a writer', async () => {
    const dir = tmpDir('fifo');
    const fifo = path.join(dir, 'f');
    const made = spawnSync('mkfifo', [fifo]);
    if (made.status !== 0) return; // no mkfifo on this system
    for (const mmap of [false, true]) {
      const settled = await Promise.race([
        IvfRabitqIndex.load(fifo, { mmap }).then(
          () => 'loaded',
          (e: unknown) => e,
        ),
        new Promise((r) => setTimeout(() => r('timeout'), 3000).unref()),
      ]);
      expect(settled).toBeInstanceOf(IndexFileError);
      expect((settled as IndexFileError).message).toMatch(/not a regular file/);
      expect((settled as IndexFileError).message).toContain(fifo);
    }
    for (const read of [readFvecs, (p: string) => Promise.resolve().then(() => readFvecsSync(p))]) {
      const settled = await Promise.race([
        read(fifo).then(
          () => 'read',
          (e: unknown) => e,
        ),
        new Promise((r) => setTimeout(() => r('timeout'), 3000).unref()),
      ]);
      expect(settled).toBeInstanceOf(VectorFileError);
      expect((settled as VectorFileError).message).toMatch(/not a regular file/);
    }
  }, 20_000);

  it('paths with a NUL character are a TypeError for save, load and the vector-file readers and writers', async () => {
    const dim = 4;
    const dir = tmpDir('nul');
    const index = await IvfRabitqIndex.build(uniform(20, dim, 3), { dim, numClusters: 2 });
    const good = path.join(dir, 'a.rbq');
    await index.save(good);
    await expect(index.save(`${good}\0.json`)).rejects.toThrow(TypeError);
    await expect(IvfRabitqIndex.load(`${good}\0x`)).rejects.toThrow(TypeError);
    await expect(IvfRabitqIndex.load(`${good}\0x`, { mmap: true })).rejects.toThrow(TypeError);
    const fvecs = path.join(dir, 'v.fvecs');
    await writeFvecs(fvecs, { dim, data: uniform(3, dim, 4) });
    await expect(readFvecs(`${fvecs}\0x`)).rejects.toThrow(TypeError);
    expect(() => readFvecsSync(`${fvecs}\0x`)).toThrow(TypeError);
    await expect(writeFvecs(`${fvecs}\0x`, { dim, data: uniform(3, dim, 4) })).rejects.toThrow(TypeError);
    expect(() => writeFvecsSync(`${fvecs}\0x`, { dim, data: uniform(3, dim, 4) })).toThrow(TypeError);
    // The native layer refuses them too (it is reachable without the checks above).
    const { native } = await import('../src/native.js');
    await expect(native.loadIndex(`${good}\0x`, false, false)).rejects.toThrow(/NUL/);
  });
});

describe("rotation 'dense': a dimension limit", () => {
  it('refuses dim above MAX_DENSE_ROTATION_DIM at once with a RangeError (TS and native), builds at the limit', async () => {
    expect(MAX_DENSE_ROTATION_DIM).toBe(2048);
    const dim = MAX_DENSE_ROTATION_DIM + 1;
    const t0 = performance.now();
    await expect(IvfRabitqIndex.build(uniform(2, dim, 5), { dim, rotation: 'dense', numClusters: 1 })).rejects.toThrow(
      /rotation 'dense' is limited to dim <= 2048.*got dim 2049/,
    );
    const { native } = await import('../src/native.js');
    const params = {
      dim,
      numClusters: 1,
      kmeansIterations: 1,
      trainPointsPerCluster: 1,
      seed: 1,
      rotation: 'dense' as const,
      threads: 0,
      metric: 'l2' as const,
      storeVectors: true,
      bits: 1,
      ids: undefined,
    };
    await expect(native.buildIndex(uniform(2, dim, 5), params)).rejects.toThrow(RangeError);
    // Refused before any work (before: about a minute of QR).
    expect(performance.now() - t0).toBeLessThan(2000);
    // fht has no such limit.
    const fht = await IvfRabitqIndex.build(uniform(2, dim, 5), { dim, numClusters: 1 });
    expect(fht.dim).toBe(dim);
  });
});
