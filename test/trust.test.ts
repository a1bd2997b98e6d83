// Inputs a hostile or careless caller can hand the library (issue 14): forged
// files, huge-but-finite values, FIFOs and NUL bytes in paths, shared and
// transferred buffers, and close(). Each test failed before its fix.
import { beforeAll, describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  IndexFileError,
  IvfRabitqIndex,
  MAX_ABS_COMPONENT,
  MAX_DENSE_ROTATION_DIM,
  RabitqError,
  VectorFileError,
  exactKnn,
  readFvecs,
  readFvecsSync,
  writeFvecs,
  writeFvecsSync,
} from '../src/index.js';
import { parseLayout, resealSection } from './fixtures/index-file.mjs';
import { ROOT, ensureDist, rng, tempFolders } from './helpers.js';

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

describe('forged files: valid checksums, ids out of range', () => {
  // Found by the fuzzer: search handed an id of 2^63 + x to JS as a negative
  // BigInt (and an id of 2^31 + x as a negative Int32), below the -1 marker.
  it.each([
    { width: 4, forged: 0x80000000n, max: '2147483647' },
    { width: 8, forged: 0x8000000000000001n, max: '9223372036854775807' },
  ])(
    'load and fromBuffer refuse a stored $width-byte id above the largest of its width (EBADINDEX)',
    async ({ width, forged, max }) => {
      const dim = 8;
      const n = 40;
      const options = { dim, numClusters: 2, seed: 3 };
      const index =
        width === 8
          ? await IvfRabitqIndex.build(uniform(n, dim, 4), {
              ...options,
              ids: BigUint64Array.from({ length: n }, (_, i) => BigInt(i)),
            })
          : await IvfRabitqIndex.build(uniform(n, dim, 4), options);
      const bytes = await index.toBuffer();
      const ids = parseLayout(bytes).sections.find((s) => s.name === 'IDS ')!;
      if (width === 8) bytes.writeBigUInt64LE(forged, ids.offset);
      else bytes.writeUInt32LE(Number(forged), ids.offset);
      resealSection(bytes, ids);
      const file = path.join(tmpDir('range'), `range${width}.rbq`);
      fs.writeFileSync(file, bytes);
      const isOutOfRange = (e: unknown) =>
        e instanceof IndexFileError && e.code === 'EBADINDEX' && e.message.includes(`is above ${max}`);
      await expect(IvfRabitqIndex.fromBuffer(bytes)).rejects.toSatisfy(isOutOfRange);
      await expect(IvfRabitqIndex.load(file)).rejects.toSatisfy(isOutOfRange);
      await expect(IvfRabitqIndex.load(file, { mmap: true, verify: true })).rejects.toSatisfy(isOutOfRange);
    },
  );
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

describe('memory tricks: shared, transferred and shrunk buffers', () => {
  beforeAll(() => ensureDist(path.join(ROOT, 'dist', 'src', 'index.js')), 180_000);

  it('build, add, exactKnn and fromBuffer survive their input being transferred and collected, or shrunk to 0, while they run', () => {
    // A child process: before the fix this was a SIGSEGV.
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', path.join(ROOT, 'test', 'fixtures', 'trust-buffers.mjs')],
      {
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(child.signal, child.stderr).toBeNull();
    expect(child.status, child.stderr).toBe(0);
    const out = JSON.parse(child.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    for (const kind of ['transfer', 'resize']) {
      expect(out[`build/${kind}`]).toBe('ok');
      expect(out[`build/${kind}/same`]).toBe(true); // the index of the untouched input
      expect(out[`add/${kind}`]).toBe('ok'); // copied when add() was called
      expect(out[`add/${kind}/size`]).toBe(22_000);
      expect(out[`exactKnn/${kind}`]).toBe('ok');
      expect(out[`exactKnn/${kind}/same`]).toBe(true);
      expect(out[`fromBuffer/${kind}`]).toBe('ok');
    }
  }, 180_000);

  it('arrays over a SharedArrayBuffer work everywhere and give the results of ordinary arrays', async () => {
    const dim = 8;
    const n = 300;
    const shared = <T extends Float32Array | Uint8Array | Uint32Array>(a: T): T => {
      const ctor = a.constructor as new (b: SharedArrayBuffer) => T;
      const c = new ctor(new SharedArrayBuffer(a.byteLength));
      c.set(a as never);
      return c;
    };
    const data = uniform(n, dim, 11);
    const opts = { dim, numClusters: 6, seed: 3 };
    const plain = await IvfRabitqIndex.build(data, opts);
    const index = await IvfRabitqIndex.build(shared(data), {
      ...opts,
      ids: shared(Uint32Array.from({ length: n }, (_, i) => i)),
    });
    expect((await index.toBuffer()).equals(await plain.toBuffer())).toBe(true);
    const q = data.slice(5 * dim, 6 * dim);
    const search = { k: 5, nprobe: 6 };
    expect(index.search(shared(q), search).ids).toEqual(plain.search(q, search).ids);
    const batch = uniform(4, dim, 12);
    expect((await index.searchBatch(shared(batch), search)).ids).toEqual((await plain.searchBatch(batch, search)).ids);
    const filter = Uint32Array.from([3, 5, 7, 200]);
    expect(index.search(q, { ...search, filter: shared(filter) }).ids).toEqual(
      plain.search(q, { ...search, filter }).ids,
    );
    const bitset = new Uint8Array(Math.ceil(n / 8)).fill(0x55);
    expect(index.search(q, { ...search, filter: shared(bitset) }).ids).toEqual(
      plain.search(q, { ...search, filter: bitset }).ids,
    );
    expect(index.estimateAll(shared(q)).estimates).toEqual(plain.estimateAll(q).estimates);
    await index.add(shared(uniform(3, dim, 13)), shared(Uint32Array.from([1000, 1001, 1002])));
    expect(index.has(1001)).toBe(true);
    const bytes = await plain.toBuffer();
    const copy = await IvfRabitqIndex.fromBuffer(shared(new Uint8Array(bytes)));
    expect(copy.size).toBe(n);
    const knn = await exactKnn(shared(data), shared(batch), { dim, k: 3 });
    expect(knn.ids).toEqual((await exactKnn(data, batch, { dim, k: 3 })).ids);
  });
});

describe('huge but finite values', () => {
  /** Squared L2 distance in float64. */
  const dist2 = (q: Float32Array, data: Float32Array, i: number, dim: number) => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (q[d]! - data[i * dim + d]!) ** 2;
    return s;
  };

  it('a query of 1e7 against vectors in [-0.5, 0.5], every cluster probed, returns k neighbours as exact k-NN does (it returned ids -1, distance Infinity)', async () => {
    const dim = 16;
    const n = 2000;
    const data = uniform(n, dim, 21);
    for (const bits of [1, 4]) {
      const index = await IvfRabitqIndex.build(data, { dim, bits, seed: 5 });
      for (const value of [1e5, 1e6, 1e7, 1e10, 1e15, -1e15]) {
        const q = new Float32Array(dim).fill(value);
        const truth = await exactKnn(data, q, { dim, k: 3 });
        for (const rerank of [true, false]) {
          const got = index.search(q, { k: 3, nprobe: index.numClusters, rerank });
          expect(Array.from(got.ids)).not.toContain(-1);
          expect(new Set(got.ids).size).toBe(3);
          if (!rerank) continue;
          // float32 distances as exact k-NN computes them...
          expect(Array.from(got.distances)).toEqual(Array.from(truth.distances));
          // ...and, where float32 can still tell them apart, the same ids. At
          // 1e7 and beyond every distance is the same float (its spacing there
          // exceeds the spread of the data): any vector is then a nearest
          // neighbour in float32, so the ids can only be checked in float64.
          const worst = Math.max(...Array.from(truth.ids, (i) => dist2(q, data, i, dim)));
          for (const id of got.ids) expect(dist2(q, data, id, dim)).toBeLessThanOrEqual(worst * (1 + 2 ** -20));
          if (Math.abs(value) <= 1e5) expect(Array.from(got.ids)).toEqual(Array.from(truth.ids));
        }
      }
    }
  });

  it('build, add, search and searchBatch refuse components above 1e15 (their squares overflow a float) with a RangeError naming row and column', async () => {
    expect(MAX_ABS_COMPONENT).toBe(1e15);
    const dim = 4;
    const data = uniform(50, dim, 22);
    data[7 * dim + 2] = -1e20;
    await expect(IvfRabitqIndex.build(data, { dim, numClusters: 2 })).rejects.toThrow(
      /vectors must hold numbers of magnitude at most 1e15.*found -1e\+20 at row 7, column 2/,
    );
    data[7 * dim + 2] = 1e15; // the limit itself is fine
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: 2 });
    const more = uniform(3, dim, 23);
    more[1 * dim + 3] = 3e38;
    await expect(index.add(more)).rejects.toThrow(/at row 1, column 3/);
    expect(index.size).toBe(50);
    const q = new Float32Array(dim).fill(2e15);
    expect(() => index.search(q, { k: 1, nprobe: 2 })).toThrow(
      /query must hold numbers of magnitude at most 1e15.*column 0/,
    );
    const batch = new Float32Array(2 * dim);
    batch[dim + 1] = -5e15;
    await expect(index.searchBatch(batch, { k: 1, nprobe: 2 })).rejects.toThrow(/row 1, column 1/);
    // The stored vector at the limit is found.
    const at = data.slice(7 * dim, 8 * dim);
    expect(index.search(at, { k: 1, nprobe: 2 }).ids[0]).toBe(7);
  });
});

describe('index.close()', () => {
  const mapped = (file: string) => fs.readFileSync('/proc/self/maps', 'utf8').includes(file);

  it('releases a mapped index at once; every later call throws RabitqError ECLOSED', async () => {
    const dim = 8;
    const data = uniform(500, dim, 31);
    const built = await IvfRabitqIndex.build(data, { dim, numClusters: 5 });
    const file = path.join(tmpDir('close'), 'c.rbq');
    await built.save(file);
    const index = await IvfRabitqIndex.load(file, { mmap: true });
    expect(index.memoryUsage().mapped).toBeGreaterThan(0);
    const hasMaps = fs.existsSync('/proc/self/maps');
    if (hasMaps) expect(mapped(file)).toBe(true);
    const q = data.slice(0, dim);
    expect(index.search(q, { k: 1, nprobe: 5 }).ids[0]).toBe(0);
    expect(index.closed).toBe(false);
    await index.close();
    expect(index.closed).toBe(true);
    if (hasMaps) expect(mapped(file)).toBe(false); // unmapped now, not at some garbage collection
    const closed = (e: unknown) => e instanceof RabitqError && e.code === 'ECLOSED';
    expect(() => index.search(q, { k: 1, nprobe: 5 })).toThrow(RabitqError);
    expect(() => index.size).toThrow(/closed/);
    expect(() => index.has(0)).toThrow(/closed/);
    expect(() => index.memoryUsage()).toThrow(/closed/);
    expect(() => index.batcher()).toThrow(/closed/);
    await expect(index.searchBatch(q, { k: 1, nprobe: 5 })).rejects.toSatisfy(closed);
    await expect(index.add(q)).rejects.toSatisfy(closed);
    await expect(index.remove([0])).rejects.toSatisfy(closed);
    await expect(index.save(file)).rejects.toSatisfy(closed);
    await expect(index.verify()).rejects.toSatisfy(closed);
    await index.close(); // again: nothing
    // The native object refuses too (reachable without the TypeScript checks).
    const { native } = await import('../src/native.js');
    const raw = await native.loadIndex(file, true, false);
    raw.close();
    expect(() => raw.size()).toThrow(/closed/);
  });

  it('close() while a batch search and queued changes are in flight: they finish correctly, then the index is released', async () => {
    const dim = 16;
    const data = uniform(3000, dim, 32);
    const options = { dim, numClusters: 20, seed: 5, threads: 1 };
    const newVectors = uniform(10, dim, 34);
    const newIds = Uint32Array.from({ length: 10 }, (_, i) => 9000 + i);
    const index = await IvfRabitqIndex.build(data, options);
    const queries = uniform(2000, dim, 33);
    // The batch and the changes race for the index's lock on the native
    // pool: the batch sees it before the changes, after the add, or after
    // both, never a half-applied change. The three answers, from a twin:
    const twin = await IvfRabitqIndex.build(data, options);
    const states = [Array.from((await twin.searchBatch(queries, { k: 5, nprobe: 20 })).ids).join()];
    await twin.add(newVectors, newIds);
    states.push(Array.from((await twin.searchBatch(queries, { k: 5, nprobe: 20 })).ids).join());
    await twin.remove([1, 2, 3]);
    states.push(Array.from((await twin.searchBatch(queries, { k: 5, nprobe: 20 })).ids).join());
    expect(new Set(states).size).toBe(3); // the changes do move results, so the check below can fail

    const batch = index.searchBatch(queries, { k: 5, nprobe: 20 });
    const added = index.add(newVectors, newIds);
    const removed = index.remove([1, 2, 3]);
    const closing = index.close();
    expect(() => index.search(queries.subarray(0, dim), { k: 1, nprobe: 1 })).toThrow(/closed/);
    const got = await batch;
    expect(states).toContain(Array.from(got.ids).join());
    await added;
    expect(await removed).toBe(3);
    await closing;
  });
});
