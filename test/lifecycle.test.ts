/**
 * The index lifecycle: save / load (read, mmap, verify) / toBuffer /
 * fromBuffer, add / remove / has / size / compact, caller ids (32 and 64
 * bit), filters, the cosine and inner-product metrics, storeVectors: false,
 * mutations concurrent with searches, and the file errors.
 *
 * Everything is checked against models computed here: brute-force k-NN in
 * float64 over a Map of the live vectors, and sequential replicas of the
 * index. Data sets are small (a few thousand vectors) to keep the suite fast.
 */
import { describe, it, expect, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IvfRabitqIndex, IndexFileError } from '../src/index.js';
import type { IdArray, Metric, SearchOptions } from '../src/index.js';
import { rng, gaussian } from '../src/random.js';

type AnyIndex = IvfRabitqIndex<IdArray>;

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(here, '..');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'rabitq-lifecycle-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** A fresh empty folder under the suite's temporary folder. */
function tmpDir(name: string): string {
  const d = path.join(tmpRoot, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

// ---- data ----------------------------------------------------------------------

/** n points around `blobs` Gaussian centres (same centres for the same blobSeed). */
function clustered(n: number, dim: number, blobs: number, seed: number, blobSeed = 1000): Float32Array {
  const rc = rng(blobSeed + dim);
  const centres = Float32Array.from({ length: blobs * dim }, () => gaussian(rc) * 10);
  const r = rng(seed);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * blobs);
    for (let d = 0; d < dim; d++) out[i * dim + d] = centres[c * dim + d]! + (gaussian(r) * 3) / (1 + d / 8);
  }
  return out;
}
function row(data: Float32Array, dim: number, i: number): Float32Array {
  return data.subarray(i * dim, (i + 1) * dim);
}
function concat(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
/** k distinct integers of [0, n), in random order. */
function sample(r: () => number, n: number, k: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(r() * (n - i));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, k);
}

// ---- brute force ------------------------------------------------------------------

/** The metric's distance in float64: squared L2, 1 - cos, or the inner product. */
function exact(metric: Metric, q: Float32Array, x: Float32Array): number {
  let s = 0;
  if (metric === 'l2') {
    for (let i = 0; i < q.length; i++) {
      const d = q[i]! - x[i]!;
      s += d * d;
    }
    return s;
  }
  let qq = 0, xx = 0;
  for (let i = 0; i < q.length; i++) {
    s += q[i]! * x[i]!;
    qq += q[i]! * q[i]!;
    xx += x[i]! * x[i]!;
  }
  return metric === 'ip' ? s : 1 - s / Math.sqrt(qq * xx);
}

/** Vectors by id (bigint for both id widths). */
type Rows = Map<bigint, Float32Array>;

function bruteTopK(rows: Rows, q: Float32Array, k: number, metric: Metric, allow?: (id: bigint) => boolean): bigint[] {
  const all: [number, bigint][] = [];
  for (const [id, x] of rows) if (!allow || allow(id)) all.push([exact(metric, q, x), id]);
  const sign = metric === 'ip' ? -1 : 1;
  all.sort((a, b) => sign * (a[0] - b[0]) || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return all.slice(0, k).map((e) => e[1]);
}

/** Ids of result row q as bigints (-1n for missing slots). */
function rowIds(ids: IdArray, q: number, k: number): bigint[] {
  return Array.from(ids.subarray(q * k, (q + 1) * k) as ArrayLike<number | bigint>, (v) => BigInt(v));
}

function recallOf(got: bigint[], truth: bigint[]): number {
  const t = new Set(truth);
  return got.filter((id) => t.has(id)).length / truth.length;
}

function approx(got: number, want: number, rel = 1e-4, abs = 1e-6): boolean {
  return Math.abs(got - want) <= rel * Math.abs(want) + abs;
}

/** Results of one search per query row (the synchronous path). */
function searchRows(index: AnyIndex, queries: Float32Array, opts: SearchOptions): { ids: IdArray; distances: Float32Array } {
  const nq = queries.length / index.dim;
  const ids = index.idType === 'u64' ? new BigInt64Array(nq * opts.k) : new Int32Array(nq * opts.k);
  const distances = new Float32Array(nq * opts.k);
  for (let q = 0; q < nq; q++) {
    const r = index.search(row(queries, index.dim, q), opts);
    (ids as Int32Array).set(r.ids as Int32Array, q * opts.k);
    distances.set(r.distances, q * opts.k);
  }
  return { ids, distances };
}

/** Everything observable about an index for "unchanged" checks. */
async function snapshot(index: AnyIndex, queries: Float32Array, probeIds: (number | bigint)[]): Promise<unknown> {
  const full = await index.searchBatch(queries, { k: 10, nprobe: index.numClusters });
  const est = await index.searchBatch(queries, { k: 10, nprobe: 2, rerank: false });
  const m = index.memoryUsage();
  return {
    size: index.size,
    has: probeIds.map((id) => index.has(id)),
    full,
    est,
    memory: { codes: m.codes, factors: m.factors, ids: m.ids, vectors: m.vectors },
  };
}

/** Whether this process maps `file` (undefined where /proc/self/maps does not exist). */
function fileMapped(file: string): boolean | undefined {
  if (!fs.existsSync('/proc/self/maps')) return undefined;
  const real = fs.realpathSync(file);
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').some((l) => l.endsWith(real) || l.endsWith(file));
}

// ---- 1. round trips ------------------------------------------------------------

describe('save / load / toBuffer / fromBuffer round trips', () => {
  const combos: [Metric, 'u32' | 'u64'][] = [
    ['l2', 'u32'], ['l2', 'u64'], ['cosine', 'u32'], ['cosine', 'u64'], ['ip', 'u32'], ['ip', 'u64'],
  ];
  it.each(combos)('%s with %s ids, after adds and removes', async (metric, idw) => {
    const dim = 40, n = 1200, nc = 16;
    const dir = tmpDir(`rt-${metric}-${idw}`);
    const data = clustered(n, dim, 12, 11);
    const ids = idw === 'u32'
      ? Uint32Array.from({ length: n }, (_, i) => i * 3 + 1)
      : BigUint64Array.from({ length: n }, (_, i) => BigInt(i) * 10n ** 12n + 7n);
    const index = (await IvfRabitqIndex.build(data, { dim, numClusters: nc, metric, ids, seed: 3 })) as AnyIndex;
    const extra = clustered(200, dim, 12, 12);
    const extraIds = idw === 'u32'
      ? Uint32Array.from({ length: 150 }, (_, i) => 10_000_000 + i)
      : BigUint64Array.from({ length: 150 }, (_, i) => 2n ** 40n + BigInt(i));
    await index.add(extra.subarray(0, 150 * dim), extraIds);
    await index.add(extra.subarray(150 * dim)); // default ids
    const r = rng(5);
    const removed: (number | bigint)[] = [
      ...sample(r, n, 100).map((i) => ids[i]!),
      ...sample(r, 150, 30).map((i) => extraIds[i]!),
    ];
    expect(await index.remove(removed as number[])).toBe(130);
    expect(index.size).toBe(n + 200 - 130);

    const file = path.join(dir, 'index.rbq');
    await index.save(file);
    const fileBytes = fs.readFileSync(file);
    const buf = await index.toBuffer();
    expect(Buffer.compare(buf, fileBytes)).toBe(0);

    // Queries: fresh points, and the vectors of removed and of kept ids.
    const queries = concat(clustered(40, dim, 12, 13), data.subarray(0, 10 * dim), extra.subarray(0, 10 * dim));
    const allowed = Array.from(ids as ArrayLike<number | bigint>).filter((_, i) => i % 5 === 0);
    const optsList: SearchOptions[] = [
      { k: 10, nprobe: 4 },
      { k: 7, nprobe: nc, rerank: false },
      { k: 5, nprobe: 2, filter: idw === 'u32' ? Uint32Array.from(allowed as number[]) : BigUint64Array.from(allowed as bigint[]) },
    ];
    const want = await Promise.all(optsList.map((o) => index.searchBatch(queries, o)));
    const scratchBuf = Buffer.from(buf);
    const loaded: Record<string, AnyIndex> = {
      read: await IvfRabitqIndex.load(file),
      mmap: await IvfRabitqIndex.load(file, { mmap: true }),
      mmapVerify: await IvfRabitqIndex.load(file, { mmap: true, verify: true }),
      buffer: await IvfRabitqIndex.fromBuffer(scratchBuf),
    };
    scratchBuf.fill(0); // fromBuffer copied the bytes: the index must not care
    for (const [how, ix] of Object.entries(loaded)) {
      expect({ how, size: ix.size, dim: ix.dim, metric: ix.metric, idType: ix.idType, nc: ix.numClusters, sv: ix.storeVectors })
        .toEqual({ how, size: index.size, dim, metric, idType: idw, nc, sv: true });
      for (let o = 0; o < optsList.length; o++) {
        const got = await ix.searchBatch(queries, optsList[o]!);
        expect(got.ids).toBeInstanceOf(idw === 'u32' ? Int32Array : BigInt64Array);
        expect(got.ids).toEqual(want[o]!.ids);
        expect(got.distances).toEqual(want[o]!.distances);
        // The synchronous path agrees with the batch.
        const single = searchRows(ix, queries.subarray(0, 8 * dim), optsList[o]!);
        expect(single.ids).toEqual(want[o]!.ids.subarray(0, 8 * optsList[o]!.k));
        expect(single.distances).toEqual(want[o]!.distances.subarray(0, 8 * optsList[o]!.k));
      }
      for (const id of removed.slice(0, 20)) expect(ix.has(id)).toBe(false);
      for (const id of Array.from(ids as ArrayLike<number | bigint>).filter((v) => !removed.includes(v)).slice(0, 20)) expect(ix.has(id)).toBe(true);
      expect(ix.has(extraIds[149]!)).toBe(!removed.includes(extraIds[149]!));
      await ix.verify();
    }
    // No removed id in any result.
    const removedSet = new Set(removed.map((v) => BigInt(v)));
    for (const w of want) for (const id of Array.from(w.ids as ArrayLike<number | bigint>)) expect(removedSet.has(BigInt(id))).toBe(false);

    // An mmap-loaded index saved again is the same file, byte for byte; so is fromBuffer's toBuffer.
    const file2 = path.join(dir, 'resaved.rbq');
    await loaded.mmap!.save(file2);
    expect(Buffer.compare(fs.readFileSync(file2), fileBytes)).toBe(0);
    expect(Buffer.compare(await loaded.buffer!.toBuffer(), fileBytes)).toBe(0);
    expect(Buffer.compare(await loaded.read!.toBuffer(), fileBytes)).toBe(0);

    // The loaded indexes keep living like the original: default ids continue
    // from the same place, and results stay identical.
    const more = clustered(20, dim, 12, 14);
    await index.add(more);
    await loaded.mmap!.add(more);
    await loaded.buffer!.add(more);
    const after = await index.searchBatch(queries, { k: 10, nprobe: 4 });
    for (const ix of [loaded.mmap!, loaded.buffer!]) {
      expect(ix.size).toBe(index.size);
      const got = await ix.searchBatch(queries, { k: 10, nprobe: 4 });
      expect(got.ids).toEqual(after.ids);
      expect(got.distances).toEqual(after.distances);
    }
    // Default ids: 50 after the largest explicit id, then these 20.
    const lastDefault = idw === 'u32' ? 10_000_000 + 150 + 50 + 19 : 1199n * 10n ** 12n + 7n + 50n + 20n;
    expect(index.has(lastDefault)).toBe(true);
    expect(loaded.mmap!.has(lastDefault)).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['index.rbq', 'resaved.rbq']);
  });

  it('an empty index (everything removed) saves, loads and comes back to life', async () => {
    const dim = 16;
    const data = clustered(100, dim, 4, 21);
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: 5 });
    expect(await index.remove(Array.from({ length: 100 }, (_, i) => i))).toBe(100);
    const file = path.join(tmpDir('empty'), 'empty.rbq');
    await index.save(file);
    for (const ix of [await IvfRabitqIndex.load(file), await IvfRabitqIndex.load(file, { mmap: true, verify: true }), await IvfRabitqIndex.fromBuffer(await index.toBuffer())]) {
      expect(ix.size).toBe(0);
      const r = ix.search(row(data, dim, 0), { k: 3, nprobe: 5 });
      expect(Array.from(r.ids)).toEqual([-1, -1, -1]);
      expect(Array.from(r.distances)).toEqual([Infinity, Infinity, Infinity]);
      await ix.add(data.subarray(0, 10 * dim));
      expect(ix.size).toBe(10);
      // Default ids continue after the largest id ever used (99).
      expect(ix.has(100)).toBe(true);
      expect(ix.has(109)).toBe(true);
      expect(ix.search(row(data, dim, 3), { k: 1, nprobe: 5 }).ids[0]).toBe(103);
    }
  });

  it('an mmap-loaded index survives its file being saved over and deleted', async () => {
    const dim = 24;
    const data = clustered(800, dim, 8, 31);
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: 10 });
    const file = path.join(tmpDir('overwrite'), 'self.rbq');
    await index.save(file);
    const mapped = await IvfRabitqIndex.load(file, { mmap: true });
    const queries = clustered(20, dim, 8, 32);
    const before = await mapped.searchBatch(queries, { k: 5, nprobe: 3 });
    await mapped.remove([1, 2, 3]);
    await mapped.save(file); // atomically over the file it maps
    const reloaded = await IvfRabitqIndex.load(file, { mmap: true, verify: true });
    expect(reloaded.size).toBe(797);
    const now = await mapped.searchBatch(queries, { k: 5, nprobe: 3 });
    expect((await reloaded.searchBatch(queries, { k: 5, nprobe: 3 })).ids).toEqual(now.ids);
    fs.rmSync(file);
    const still = await mapped.searchBatch(queries, { k: 5, nprobe: 3 });
    expect(still.ids).toEqual(now.ids);
    for (const id of now.ids) expect([1, 2, 3, -1]).not.toContain(id);
    // Only the removed ids changed the results.
    for (let q = 0; q < 20; q++) {
      const b = rowIds(before.ids, q, 5).filter((id) => id > 3n);
      expect(rowIds(now.ids, q, 5).slice(0, b.length)).toEqual(b);
    }
  });
});

// ---- 2. metrics against brute force -----------------------------------------------

describe('cosine and inner product against brute force', () => {
  it.each([
    [48, 'cosine'], [128, 'cosine'], [48, 'ip'], [128, 'ip'],
  ] as [number, Metric][])('dim %i, %s: recall@10 >= 0.99 at full probe with exact distances', async (dim, metric) => {
    const n = 2500, nc = 25, nq = 60, k = 10;
    const data = clustered(n, dim, 20, 41);
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: nc, metric, seed: 9 });
    const rows: Rows = new Map();
    for (let i = 0; i < n; i++) rows.set(BigInt(i), row(data, dim, i));
    const queries = clustered(nq, dim, 20, 42);
    const got = await index.searchBatch(queries, { k, nprobe: nc, rerank: true });
    let recall = 0;
    for (let q = 0; q < nq; q++) {
      const qv = row(queries, dim, q);
      const ids = rowIds(got.ids, q, k);
      recall += recallOf(ids, bruteTopK(rows, qv, k, metric));
      for (let j = 0; j < k; j++) {
        const d = got.distances[q * k + j]!;
        const want = exact(metric, qv, rows.get(ids[j]!)!);
        if (!approx(d, want)) expect({ q, j, d }).toEqual({ q, j, d: want });
        if (j > 0) {
          const prev = got.distances[q * k + j - 1]!;
          if (metric === 'ip') expect(prev).toBeGreaterThanOrEqual(d);
          else expect(prev).toBeLessThanOrEqual(d);
        }
      }
    }
    expect(recall / nq).toBeGreaterThanOrEqual(0.99);

    // Estimates (rerank false) are sorted the same way.
    const est = await index.searchBatch(queries, { k, nprobe: nc, rerank: false });
    for (let q = 0; q < nq; q++)
      for (let j = 1; j < k; j++) {
        const a = est.distances[q * k + j - 1]!, b = est.distances[q * k + j]!;
        if (metric === 'ip') expect(a).toBeGreaterThanOrEqual(b);
        else expect(a).toBeLessThanOrEqual(b);
      }

    if (metric === 'cosine') {
      // Cosine ignores the query's length.
      const scaled = queries.map((v) => v * 1000);
      const s = await index.searchBatch(scaled, { k, nprobe: nc });
      expect(s.ids).toEqual(got.ids);
      for (let i = 0; i < s.distances.length; i++) expect(approx(s.distances[i]!, got.distances[i]!, 1e-4, 1e-6)).toBe(true);
    }
  });

  it('cosine rejects zero vectors at build, add and search, naming the row', async () => {
    const dim = 16;
    const data = clustered(200, dim, 4, 51);
    const bad = data.slice();
    bad.fill(0, 37 * dim, 38 * dim);
    await expect(IvfRabitqIndex.build(bad, { dim, metric: 'cosine', numClusters: 4 })).rejects.toThrow(RangeError);
    await expect(IvfRabitqIndex.build(bad, { dim, metric: 'cosine', numClusters: 4 })).rejects.toThrow(/row 37\b/);
    // l2 and ip accept a zero vector.
    await expect(IvfRabitqIndex.build(bad, { dim, metric: 'l2', numClusters: 4 })).resolves.toBeDefined();
    await expect(IvfRabitqIndex.build(bad, { dim, metric: 'ip', numClusters: 4 })).resolves.toBeDefined();

    const index = await IvfRabitqIndex.build(data, { dim, metric: 'cosine', numClusters: 4 });
    const zero = new Float32Array(dim);
    expect(() => index.search(zero, { k: 3, nprobe: 4 })).toThrow(RangeError);
    expect(() => index.search(zero, { k: 3, nprobe: 4 })).toThrow(/zero vector/);
    const batch = concat(row(data, dim, 0), row(data, dim, 1), zero);
    await expect(index.searchBatch(batch, { k: 3, nprobe: 4 })).rejects.toThrow(RangeError);
    await expect(index.searchBatch(batch, { k: 3, nprobe: 4 })).rejects.toThrow(/query 2\b/);
    await expect(index.add(concat(row(data, dim, 5), zero))).rejects.toThrow(/row 1\b/);
    expect(index.size).toBe(200);
    expect(index.has(200)).toBe(false);
  });

  it('cosine handles vectors and queries with tiny (subnormal) components', async () => {
    const dim = 32;
    const data = clustered(300, dim, 6, 61);
    const index = await IvfRabitqIndex.build(data, { dim, metric: 'cosine', numClusters: 6 });
    const tiny = row(data, dim, 10).map((v) => v * 1e-41);
    expect(tiny.some((v) => v !== 0)).toBe(true);
    await index.add(tiny, Uint32Array.of(5000));
    const r = index.search(row(data, dim, 10), { k: 3, nprobe: 6 });
    expect(Array.from(r.distances).every(Number.isFinite)).toBe(true);
    expect(new Set(Array.from(r.ids))).toContain(5000);
    expect(new Set(Array.from(r.ids))).toContain(10);
    expect(r.distances[0]).toBeLessThan(1e-4);
    // The tiny vector as a query finds its own direction.
    const t = index.search(tiny, { k: 2, nprobe: 6 });
    expect(Array.from(t.distances).every(Number.isFinite)).toBe(true);
    expect(new Set(Array.from(t.ids))).toEqual(new Set([10, 5000]));
    const tb = await index.searchBatch(tiny, { k: 2, nprobe: 6 });
    expect(tb.ids).toEqual(t.ids);
  });
});

// ---- 3. add / remove / has / size / compact ---------------------------------------

describe('add, remove, has, size and compact', () => {
  const dim = 32, n = 2000, nc = 20;
  const data = clustered(n, dim, 16, 71);
  const build = () => IvfRabitqIndex.build(data, { dim, numClusters: nc, seed: 4 });
  const queries = clustered(40, dim, 16, 72);

  it('removed ids never appear, whatever the search path', async () => {
    const index = await build();
    const r = rng(73);
    const removed = sample(r, n, 300);
    expect(await index.remove(removed)).toBe(300);
    expect(index.size).toBe(n - 300);
    for (const id of removed) expect(index.has(id)).toBe(false);
    const dead = new Set(removed);
    // Query with the removed vectors themselves (each would be its own nearest neighbour).
    const qs = concat(...removed.slice(0, 60).map((i) => row(data, dim, i)), queries);
    const allowList = Uint32Array.from([...removed.slice(0, 150), ...sample(rng(74), n, 400)]);
    const bits = new Uint8Array(n / 8);
    for (const id of allowList) bits[id >> 3]! |= 1 << (id & 7);
    const variants: SearchOptions[] = [
      { k: 20, nprobe: nc },
      { k: 20, nprobe: 2 },
      { k: 20, nprobe: nc, rerank: false },
      { k: 20, nprobe: 1, rerank: false },
      { k: 20, nprobe: 2, filter: allowList },
      { k: 20, nprobe: nc, filter: bits, rerank: false },
    ];
    for (const o of variants) {
      const b = await index.searchBatch(qs, o);
      const s = searchRows(index, qs.subarray(0, 20 * dim), o);
      for (const id of [...b.ids, ...s.ids]) expect(dead.has(id as number)).toBe(false);
      // (One probed cluster may hold fewer than k vectors.)
      if (o.nprobe > 1 || o.filter) expect(Array.from(b.ids).includes(-1)).toBe(false);
    }
    // Each removed vector's query now finds a live neighbour at a positive distance.
    const own = await index.searchBatch(qs.subarray(0, 60 * dim), { k: 1, nprobe: nc });
    for (let q = 0; q < 60; q++) expect(own.distances[q]).toBeGreaterThan(0);
  });

  it('finds added vectors; default ids continue after the largest id ever used', async () => {
    const ids = Uint32Array.from({ length: n }, (_, i) => (i === 77 ? 900_000 : i * 2));
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: nc, ids });
    // Removing the largest id does not make it reusable as a default id.
    expect(await index.remove([900_000])).toBe(1);
    const added = clustered(100, dim, 16, 75);
    await index.add(added);
    expect(index.size).toBe(n - 1 + 100);
    expect(index.has(900_000)).toBe(false);
    for (let j = 0; j < 100; j++) expect(index.has(900_001 + j)).toBe(true);
    expect(index.has(900_101)).toBe(false);
    const got = await index.searchBatch(added, { k: 3, nprobe: 2 });
    const single = searchRows(index, added, { k: 3, nprobe: 2 });
    for (let j = 0; j < 100; j++) {
      expect(got.ids[j * 3]).toBe(900_001 + j);
      expect(got.distances[j * 3]).toBe(0);
      expect(single.ids[j * 3]).toBe(900_001 + j);
    }
    // Explicit ids below the largest are fine too.
    await index.add(row(added, dim, 0).map((v) => v + 0.5), Uint32Array.of(1));
    expect(index.has(1)).toBe(true);
    expect(index.search(row(added, dim, 0).map((v) => v + 0.5), { k: 1, nprobe: 1 }).ids[0]).toBe(1);
  });

  it('a rejected add (duplicate or existing id, bad rows) leaves the index unchanged', async () => {
    const index = await build();
    await index.remove([5, 6, 7]);
    const probe = [0, 5, 6, 1999, 2000, 2001, 3000];
    const before = await snapshot(index, queries, probe);
    const two = clustered(2, dim, 16, 76);
    const cases: [string, () => Promise<unknown>, typeof RangeError | typeof TypeError, RegExp?][] = [
      ['duplicate id in one add', () => index.add(two, Uint32Array.of(3000, 3000)), RangeError, /duplicate id 3000/],
      ['id already present', () => index.add(two, Uint32Array.of(3001, 12)), RangeError, /12 is already in the index/],
      ['NaN', () => index.add(two.map((v, i) => (i === dim + 3 ? NaN : v))), RangeError, /row 1\b/],
      ['Infinity', () => index.add(two.map((v, i) => (i === 4 ? -Infinity : v))), RangeError, /row 0\b/],
      ['wrong length', () => index.add(two.subarray(0, dim + 5)), RangeError],
      ['empty', () => index.add(new Float32Array(0)), RangeError],
      ['too few ids', () => index.add(two, Uint32Array.of(4000)), RangeError],
      ['64-bit ids for a 32-bit index', () => index.add(two, BigUint64Array.of(4000n, 4001n) as never), TypeError],
      ['id >= 2^31', () => index.add(two, Uint32Array.of(4000, 2 ** 31)), RangeError, /2147483648/],
      ['not a Float32Array', () => index.add(Array.from(two) as never), TypeError],
    ];
    for (const [what, f, type, msg] of cases) {
      const p = f();
      await expect(p, what).rejects.toThrow(type);
      if (msg) await expect(p, what).rejects.toThrow(msg);
    }
    expect(await snapshot(index, queries, probe)).toEqual(before);
    // A removed id can be added again.
    await index.add(row(data, dim, 5), Uint32Array.of(5));
    expect(index.has(5)).toBe(true);
  });

  it('remove counts only present ids; removing everything empties every result', async () => {
    const index = await build();
    expect(await index.remove([])).toBe(0);
    expect(await index.remove([n, n + 1, 10 ** 9, 2 ** 40])).toBe(0);
    expect(await index.remove([BigInt(n + 5)])).toBe(0);
    expect(await index.remove([3, 3, 4n, 3])).toBe(2);
    expect(await index.remove(Uint32Array.of(3, 4))).toBe(0);
    expect(index.size).toBe(n - 2);
    // Ids past 2^64 must not wrap around onto small ids (2^64 -> 0, 2^64 + 5 -> 5).
    expect(await index.remove([2 ** 64, 2n ** 64n + 5n, 2n ** 63n])).toBe(0);
    expect(index.has(0)).toBe(true);
    expect(index.has(5)).toBe(true);
    await expect(index.remove([-1])).rejects.toThrow(RangeError);
    await expect(index.remove([1.5])).rejects.toThrow(RangeError);
    expect(index.size).toBe(n - 2);
    const all = Array.from({ length: n }, (_, i) => i);
    expect(await index.remove(all)).toBe(n - 2);
    expect(index.size).toBe(0);
    expect(index.has(0)).toBe(false);
    const m = index.memoryUsage();
    expect([m.codes, m.factors, m.ids, m.vectors]).toEqual([0, 0, 0, 0]);
    const b = await index.searchBatch(queries, { k: 4, nprobe: nc });
    expect(Array.from(b.ids).every((v) => v === -1)).toBe(true);
    expect(Array.from(b.distances).every((v) => v === Infinity)).toBe(true);
    const s = index.search(row(queries, dim, 0), { k: 4, nprobe: 1, rerank: false, filter: Uint32Array.of(1, 2) });
    expect(Array.from(s.ids)).toEqual([-1, -1, -1, -1]);
    await index.compact();
    expect(index.size).toBe(0);
    expect(Array.from(index.search(row(queries, dim, 0), { k: 2, nprobe: nc }).ids)).toEqual([-1, -1]);
  });

  it('compact keeps the results and releases the slack; after an mmap load it unmaps', async () => {
    const index = await build();
    const r = rng(77);
    await index.remove(sample(r, n, 400));
    await index.add(clustered(300, dim, 16, 78));
    await index.remove(sample(r, 2300, 200).filter((i) => i % 3 === 0));
    const size = index.size;
    const sets = (res: { ids: IdArray }, k: number) =>
      Array.from({ length: res.ids.length / k }, (_, q) => rowIds(res.ids, q, k).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const before = await index.searchBatch(queries, { k: 10, nprobe: nc });
    const m0 = index.memoryUsage();
    await index.compact();
    const m1 = index.memoryUsage();
    expect(index.size).toBe(size);
    expect(sets(await index.searchBatch(queries, { k: 10, nprobe: nc }), 10)).toEqual(sets(before, 10));
    expect(m1.codes).toBe(m0.codes);
    expect(m1.vectors).toBe(size * dim * 4);
    expect(m1.other).toBeLessThanOrEqual(m0.other);
    expect(m1.total).toBeLessThanOrEqual(m0.total);

    // mmap: mapped bytes are reported, then released by compact.
    const file = path.join(tmpDir('compact'), 'c.rbq');
    await index.save(file);
    const mapped = await IvfRabitqIndex.load(file, { mmap: true });
    const mm = mapped.memoryUsage();
    expect(mm.mapped).toBe(mm.codes + mm.factors + mm.ids + mm.vectors);
    const canSee = fileMapped(file) !== undefined;
    if (canSee) expect(fileMapped(file)).toBe(true);
    const onFile = await mapped.searchBatch(queries, { k: 10, nprobe: nc });
    // Changing a few clusters copies them out of the mapping.
    const victim = Number(rowIds(onFile.ids, 0, 10)[0]);
    expect(await mapped.remove([victim])).toBe(1);
    const mr = mapped.memoryUsage();
    expect(mr.mapped).toBeGreaterThan(0);
    expect(mr.mapped).toBeLessThan(mr.codes + mr.factors + mr.ids + mr.vectors);
    const beforeCompact = await mapped.searchBatch(queries, { k: 10, nprobe: nc });
    await mapped.compact();
    expect(mapped.memoryUsage().mapped).toBe(0);
    if (canSee) expect(fileMapped(file)).toBe(false);
    expect(sets(await mapped.searchBatch(queries, { k: 10, nprobe: nc }), 10)).toEqual(sets(beforeCompact, 10));
    expect(mapped.size).toBe(size - 1);
    await mapped.verify();
  });

  it('many interleaved add / remove rounds match a brute-force model of the live set', async () => {
    const index = await build();
    const rows: Rows = new Map();
    for (let i = 0; i < n; i++) rows.set(BigInt(i), row(data, dim, i));
    const everUsed = new Set<bigint>(rows.keys());
    const r = rng(79);
    let nextId = BigInt(n);
    for (let round = 0; round < 10; round++) {
      const fresh = clustered(150, dim, 16, 800 + round);
      if (round % 2 === 0) {
        await index.add(fresh);
        expect(index.has(nextId)).toBe(true);
        expect(index.has(nextId + 149n)).toBe(true);
        expect(index.has(nextId + 150n)).toBe(false);
        for (let j = 0; j < 150; j++) rows.set(nextId + BigInt(j), row(fresh, dim, j));
        for (let j = 0; j < 150; j++) everUsed.add(nextId + BigInt(j));
        nextId += 150n;
      } else {
        const ids = Uint32Array.from({ length: 150 }, (_, j) => 50_000 + round * 1000 + j);
        await index.add(fresh, ids);
        ids.forEach((id, j) => { rows.set(BigInt(id), row(fresh, dim, j)); everUsed.add(BigInt(id)); });
        nextId = BigInt(50_000 + round * 1000 + 150);
      }
      const live = [...rows.keys()];
      const victims = sample(r, live.length, 130).map((i) => live[i]!);
      const absent = [BigInt(10 ** 8 + round), victims[0]!]; // an unknown id and a repeat
      expect(await index.remove([...victims, ...absent])).toBe(130);
      for (const v of victims) rows.delete(v);
      expect(index.size).toBe(rows.size);
      for (const v of victims.slice(0, 10)) expect(index.has(v)).toBe(false);
      for (const v of live.slice(0, 10)) expect(index.has(v)).toBe(rows.has(v));
      if (round === 5) await index.compact();
      if (round % 3 === 2 || round === 9) {
        const got = await index.searchBatch(queries, { k: 10, nprobe: nc });
        let recall = 0;
        for (let q = 0; q < 40; q++) {
          const ids = rowIds(got.ids, q, 10);
          for (const id of ids) expect(rows.has(id)).toBe(true);
          recall += recallOf(ids, bruteTopK(rows, row(queries, dim, q), 10, 'l2'));
        }
        expect(recall / 40).toBeGreaterThanOrEqual(0.99);
        const est = await index.searchBatch(queries, { k: 10, nprobe: 3, rerank: false });
        for (const id of est.ids) expect(rows.has(BigInt(id))).toBe(true);
      }
    }
    expect(everUsed.size).toBeGreaterThan(rows.size);
  });
});

// ---- 4. ids ----------------------------------------------------------------------

describe('caller ids', () => {
  const dim = 24, n = 1000;
  const data = clustered(n, dim, 10, 81);

  it('Uint32Array ids come back as given (Int32Array), up to 2^31 - 1', async () => {
    const r = rng(82);
    const used = new Set<number>([0, 2 ** 31 - 1]);
    while (used.size < n) used.add(Math.floor(r() * 2 ** 31));
    const ids = Uint32Array.from(used);
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: 10, ids });
    expect(index.idType).toBe('u32');
    const got = await index.searchBatch(data, { k: 1, nprobe: 1 });
    expect(got.ids).toBeInstanceOf(Int32Array);
    expect(Array.from(got.ids)).toEqual(Array.from(ids));
    expect(index.has(2 ** 31 - 1)).toBe(true);
    expect(index.has(2n ** 31n - 1n)).toBe(true);
    expect(index.has(2 ** 31)).toBe(false);
    expect(index.has(-1)).toBe(false);
    expect(index.has(0.5)).toBe(false);
    // No default id is left after 2^31 - 1.
    await expect(index.add(row(data, dim, 0))).rejects.toThrow(RangeError);
    expect(index.size).toBe(n);
  });

  it('estimateAll (indexed by id) refuses ids it has no slot for instead of writing past its arrays', async () => {
    const dense = await IvfRabitqIndex.build(data, { dim, numClusters: 10 });
    const q = row(data, dim, 3);
    const all = dense.estimateAll(q);
    expect(all.estimates.length).toBe(n);
    expect(Array.from(all.estimates).every(Number.isFinite)).toBe(true);
    expect(all.estimates.indexOf(Math.min(...all.estimates))).toBeLessThan(n);
    // After a remove the largest id (n - 1) is no longer below the size.
    await dense.remove([0]);
    expect(() => dense.estimateAll(q)).toThrow(RangeError);
    const wide = await IvfRabitqIndex.build(data, { dim, numClusters: 10, ids: BigUint64Array.from({ length: n }, (_, i) => BigInt(i) * 10n ** 12n) });
    expect(() => wide.estimateAll(q)).toThrow(RangeError);
    const sparse = await IvfRabitqIndex.build(data, { dim, numClusters: 10, ids: Uint32Array.from({ length: n }, (_, i) => i * 1000) });
    expect(() => sparse.estimateAll(q)).toThrow(/id \d+/);
  });

  it('rejects 32-bit ids >= 2^31, duplicates and a wrong count at build', async () => {
    const ids = Uint32Array.from({ length: n }, (_, i) => i);
    ids[500] = 2 ** 31;
    await expect(IvfRabitqIndex.build(data, { dim, ids })).rejects.toThrow(RangeError);
    await expect(IvfRabitqIndex.build(data, { dim, ids })).rejects.toThrow(/ids\[500\]/);
    ids[500] = 3;
    await expect(IvfRabitqIndex.build(data, { dim, ids })).rejects.toThrow(/duplicate id 3/);
    await expect(IvfRabitqIndex.build(data, { dim, ids: ids.subarray(1) })).rejects.toThrow(RangeError);
    const wide = BigUint64Array.from({ length: n }, (_, i) => BigInt(i));
    wide[7] = 2n ** 63n;
    await expect(IvfRabitqIndex.build(data, { dim, ids: wide })).rejects.toThrow(RangeError);
  });

  it('BigUint64Array ids come back as BigInt64Array; has() takes bigint and number', async () => {
    const T = 10n ** 12n;
    const ids = BigUint64Array.from({ length: n }, (_, i) => BigInt(i + 1) * T);
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: 10, ids });
    expect(index.idType).toBe('u64');
    const got = await index.searchBatch(data.subarray(0, 50 * dim), { k: 2, nprobe: 2 });
    expect(got.ids).toBeInstanceOf(BigInt64Array);
    for (let i = 0; i < 50; i++) expect(got.ids[2 * i]).toBe(BigInt(i + 1) * T);
    const one = index.search(row(data, dim, 9), { k: 1, nprobe: 1, rerank: false });
    expect(one.ids).toBeInstanceOf(BigInt64Array);
    expect(one.ids[0]).toBe(10n * T);
    expect(index.has(5n * T)).toBe(true);
    expect(index.has(5e12)).toBe(true);
    expect(index.has(5)).toBe(false);
    expect(index.has(5n * T + 1n)).toBe(false);
    expect(index.has(2n ** 64n)).toBe(false);
    expect(index.has(-5n * T)).toBe(false);
    // Default ids continue after the largest.
    await index.add(row(data, dim, 0).map((v) => v + 1));
    expect(index.has(BigInt(n) * T + 1n)).toBe(true);
    // Removing by number and by bigint.
    expect(await index.remove([2e12, 3n * T, 4])).toBe(2);
    expect(index.has(2n * T)).toBe(false);
    // 64-bit ids must be a BigUint64Array; the largest allowed is 2^63 - 1.
    await expect(index.add(row(data, dim, 1), Uint32Array.of(5) as never)).rejects.toThrow(TypeError);
    await expect(index.add(row(data, dim, 1), BigUint64Array.of(2n ** 63n))).rejects.toThrow(RangeError);
    await index.add(row(data, dim, 1).map((v) => v + 2), BigUint64Array.of(2n ** 63n - 1n));
    expect(index.search(row(data, dim, 1).map((v) => v + 2), { k: 1, nprobe: 10 }).ids[0]).toBe(2n ** 63n - 1n);
    expect(index.size).toBe(n + 1 - 2 + 1);
  });
});

// ---- 5. filters -----------------------------------------------------------------

describe('filters', () => {
  const dim = 32, n = 3000, nc = 30, k = 10;
  const data = clustered(n, dim, 24, 91);
  const queries = clustered(30, dim, 24, 92);
  const rows: Rows = new Map();
  for (let i = 0; i < n; i++) rows.set(BigInt(i), row(data, dim, i));
  const bitsetOf = (ids: ArrayLike<number>, size: number) => {
    const b = new Uint8Array(Math.ceil(size / 8));
    for (let i = 0; i < ids.length; i++) b[ids[i]! >> 3]! |= 1 << (ids[i]! & 7);
    return b;
  };
  let index: IvfRabitqIndex;
  const getIndex = async () => (index ??= await IvfRabitqIndex.build(data, { dim, numClusters: nc, seed: 6 }));

  it('returns exactly the brute-force top k among the allowed ids (list, unsorted list, bitset)', async () => {
    const ix = await getIndex();
    const allowed = sample(rng(93), n, 300); // unsorted
    const allowSet = new Set(allowed.map(BigInt));
    const forms = {
      list: Uint32Array.from(allowed),
      sorted: Uint32Array.from(allowed).sort(),
      wide: BigUint64Array.from(allowed.map(BigInt)),
      bitset: bitsetOf(allowed, n),
    };
    const listBefore = Array.from(forms.list);
    for (const [form, filter] of Object.entries(forms)) {
      const got = await ix.searchBatch(queries, { k, nprobe: nc, filter });
      for (let q = 0; q < 30; q++) {
        const want = bruteTopK(rows, row(queries, dim, q), k, 'l2', (id) => allowSet.has(id));
        expect({ form, q, ids: rowIds(got.ids, q, k) }).toEqual({ form, q, ids: want });
      }
    }
    // The caller's unsorted list is not reordered.
    expect(Array.from(forms.list)).toEqual(listBefore);
  });

  it('a very selective filter returns every allowed id even with nprobe = 1', async () => {
    const ix = await getIndex();
    const centroids = ix.centroids();
    // One allowed id in each of 7 different clusters (the vectors nearest 7 centroids).
    const chosen: number[] = [];
    for (let c = 0; c < 7; c++) {
      let best = -1, bd = Infinity;
      for (let i = 0; i < n; i++) {
        const d = exact('l2', centroids.subarray(c * dim, (c + 1) * dim), row(data, dim, i));
        if (d < bd && !chosen.includes(i)) { bd = d; best = i; }
      }
      chosen.push(best);
    }
    const shuffled = [chosen[3]!, chosen[0]!, chosen[6]!, chosen[1]!, chosen[5]!, chosen[2]!, chosen[4]!];
    for (const filter of [Uint32Array.from(shuffled), bitsetOf(shuffled, n), BigUint64Array.from(shuffled.map(BigInt))]) {
      for (const rerank of [true, false]) {
        const batch = await ix.searchBatch(queries, { k, nprobe: 1, rerank, filter });
        const single = searchRows(ix, queries, { k, nprobe: 1, rerank, filter });
        expect(single.ids).toEqual(batch.ids);
        expect(single.distances).toEqual(batch.distances);
        for (let q = 0; q < 30; q++) {
          const ids = rowIds(batch.ids, q, k);
          expect(new Set(ids.slice(0, 7))).toEqual(new Set(chosen.map(BigInt)));
          expect(ids.slice(7)).toEqual([-1n, -1n, -1n]);
          expect(Array.from(batch.distances.subarray(q * k + 7, q * k + k))).toEqual([Infinity, Infinity, Infinity]);
          if (rerank) {
            const want = bruteTopK(rows, row(queries, dim, q), k, 'l2', (id) => chosen.includes(Number(id)));
            expect(ids.slice(0, 7)).toEqual(want);
          }
        }
      }
    }
  });

  it('searchBatch with a filter equals per-query search; empty and short filters', async () => {
    const ix = await getIndex();
    const allowed = sample(rng(94), n, 900);
    for (const filter of [Uint32Array.from(allowed), bitsetOf(allowed, n)]) {
      for (const o of [{ k, nprobe: 3 }, { k, nprobe: 2, rerank: false }, { k: 25, nprobe: nc }]) {
        const batch = await ix.searchBatch(queries, { ...o, filter });
        const single = searchRows(ix, queries, { ...o, filter });
        expect(single.ids).toEqual(batch.ids);
        expect(single.distances).toEqual(batch.distances);
        const ok = new Set(allowed);
        for (const id of batch.ids) expect(ok.has(id as number)).toBe(true);
      }
    }
    const none = await ix.searchBatch(queries, { k: 3, nprobe: 2, filter: new Uint32Array(0) });
    expect(Array.from(none.ids).every((v) => v === -1)).toBe(true);
    // A bitset covering ids 0..7 only: nothing past it is allowed.
    const short = ix.search(row(queries, dim, 0), { k: 10, nprobe: 1, filter: Uint8Array.of(0b10100101) });
    expect(new Set(Array.from(short.ids).slice(0, 4))).toEqual(new Set([0, 2, 5, 7]));
    expect(Array.from(short.ids).slice(4)).toEqual([-1, -1, -1, -1, -1, -1]);
    expect(() => ix.search(row(queries, dim, 0), { k: 3, nprobe: 1, filter: [1, 2] as never })).toThrow(TypeError);
  });
});

// ---- 6. storeVectors: false ---------------------------------------------------------

describe('storeVectors: false', () => {
  it('keeps no vectors, returns the same estimates as a full index, survives save/load', async () => {
    // Estimates alone rank well when the residuals (vector - centroid) are
    // small against the gaps between neighbours: a fine partition of tight
    // blobs (on coarser ones 1-bit estimates give a recall of 0.4 to 0.7).
    const dim = 128, n = 3000, nc = 200, k = 10;
    const data = clustered(n, dim, 100, 101);
    const queries = clustered(50, dim, 100, 102);
    const lean = await IvfRabitqIndex.build(data, { dim, numClusters: nc, seed: 8, storeVectors: false });
    const full = await IvfRabitqIndex.build(data, { dim, numClusters: nc, seed: 8 });
    expect(lean.storeVectors).toBe(false);
    expect(lean.memoryUsage().vectors).toBe(0);
    expect(full.memoryUsage().vectors).toBe(n * dim * 4);
    expect(() => lean.search(row(queries, dim, 0), { k, nprobe: 4, rerank: true })).toThrow(RangeError);
    await expect(lean.searchBatch(queries, { k, nprobe: 4, rerank: true })).rejects.toThrow(RangeError);

    const est = await lean.searchBatch(queries, { k, nprobe: nc });
    const fullEst = await full.searchBatch(queries, { k, nprobe: nc, rerank: false });
    expect(est.ids).toEqual(fullEst.ids);
    expect(est.distances).toEqual(fullEst.distances);
    const rows: Rows = new Map();
    for (let i = 0; i < n; i++) rows.set(BigInt(i), row(data, dim, i));
    let recall = 0;
    for (let q = 0; q < 50; q++) recall += recallOf(rowIds(est.ids, q, k), bruteTopK(rows, row(queries, dim, q), k, 'l2'));
    expect(recall / 50).toBeGreaterThanOrEqual(0.8);

    // Mutations work without vectors too.
    await lean.remove([0, 1, 2]);
    await lean.add(queries.subarray(0, 5 * dim));
    expect(lean.memoryUsage().vectors).toBe(0);
    const file = path.join(tmpDir('lean'), 'lean.rbq');
    await lean.save(file);
    await full.save(file + '.full');
    expect(fs.statSync(file).size).toBeLessThan(fs.statSync(file + '.full').size - n * dim * 4 + 4096);
    const after = await lean.searchBatch(queries, { k, nprobe: 5 });
    for (const loaded of [await IvfRabitqIndex.load(file), await IvfRabitqIndex.load(file, { mmap: true }), await IvfRabitqIndex.fromBuffer(await lean.toBuffer())]) {
      expect(loaded.storeVectors).toBe(false);
      expect(loaded.memoryUsage().vectors).toBe(0);
      expect(loaded.size).toBe(n + 2);
      const got = await loaded.searchBatch(queries, { k, nprobe: 5 });
      expect(got.ids).toEqual(after.ids);
      expect(got.distances).toEqual(after.distances);
      expect(() => loaded.search(row(queries, dim, 0), { k, nprobe: 4, rerank: true })).toThrow(RangeError);
    }
    // The added vectors are found by their estimates.
    const self = await lean.searchBatch(queries.subarray(0, 5 * dim), { k: 1, nprobe: nc });
    expect(Array.from(self.ids)).toEqual([3000, 3001, 3002, 3003, 3004]);
  });
});

// ---- 7. concurrency -------------------------------------------------------------

describe('mutations concurrent with searches', () => {
  it('applies add and remove in call order even when not awaited', async () => {
    const dim = 16;
    const data = clustered(6000, dim, 8, 111);
    const index = await IvfRabitqIndex.build(data.subarray(0, 1000 * dim), { dim, numClusters: 10 });
    const ids = Uint32Array.from({ length: 5000 }, (_, i) => 10_000 + i);
    const added = index.add(data.subarray(1000 * dim), ids);
    const removed = index.remove(ids.subarray(0, 100));
    const readded = index.add(data.subarray(1000 * dim, 1010 * dim), ids.subarray(0, 10));
    const snapshot = index.toBuffer();
    const compacted = index.compact();
    const removedAgain = index.remove([10_000, 10_001, 10_050]);
    await added;
    expect(await removed).toBe(100);
    await readded;
    await compacted;
    expect(await removedAgain).toBe(2);
    expect(index.size).toBe(1000 + 5000 - 100 + 10 - 2);
    expect(index.has(10_002)).toBe(true);
    expect(index.has(10_000)).toBe(false);
    expect(index.has(10_050)).toBe(false);
    // The buffer holds the state after the three calls made before it.
    const then = await IvfRabitqIndex.fromBuffer(await snapshot);
    expect(then.size).toBe(1000 + 5000 - 100 + 10);
    expect(then.has(10_000)).toBe(true);
    // A failed change does not stop the ones queued after it.
    const bad = index.add(data.subarray(0, dim), Uint32Array.of(10_002));
    const good = index.remove([10_002]);
    await expect(bad).rejects.toThrow(/already in the index/);
    expect(await good).toBe(1);
  });

  it('a queued add whose ids or vectors were detached meanwhile is rejected, not run with other ids', async () => {
    const dim = 8;
    const data = clustered(300, dim, 4, 113);
    const index = await IvfRabitqIndex.build(data.subarray(0, 200 * dim), { dim, numClusters: 4 });
    // add() runs after the queued compact(): by then its arrays may be gone
    const ids = Uint32Array.of(5000, 5001);
    const compacted = index.compact();
    const added = index.add(data.slice(200 * dim, 202 * dim), ids);
    structuredClone(ids.buffer, { transfer: [ids.buffer] });
    const vectors = data.slice(202 * dim, 204 * dim);
    const added2 = index.add(vectors, Uint32Array.of(6000, 6001));
    structuredClone(vectors.buffer, { transfer: [vectors.buffer] });
    await compacted;
    await expect(added).rejects.toThrow(TypeError);
    await expect(added2).rejects.toThrow(TypeError);
    expect(index.size).toBe(200);
    expect(index.has(200)).toBe(false); // not added under default ids instead
    expect(index.has(5000)).toBe(false);
  });

  it('searchBatch in flight while adds and removes interleave: consistent results, final state as a sequential replica', async () => {
    const dim = 32, n = 4000, nc = 40, k = 10;
    const data = clustered(n, dim, 16, 121);
    const build = () => IvfRabitqIndex.build(data, { dim, numClusters: nc, seed: 5 });
    const index = await build();
    const replica = await build();
    const rows: Rows = new Map();
    for (let i = 0; i < n; i++) rows.set(BigInt(i), row(data, dim, i));
    const live = new Set<bigint>(rows.keys());
    // The ops, planned on a sequential model: each round adds 120 vectors
    // and removes 150 live ids (never the first 5 of any added batch, which
    // serve as queries that must find themselves once their add resolved).
    type Op = { kind: 'add'; vecs: Float32Array; ids: Uint32Array } | { kind: 'remove'; ids: bigint[] } | { kind: 'compact' };
    const ops: Op[] = [];
    const probes: { id: bigint; q: Float32Array }[] = [];
    const r = rng(122);
    for (let round = 0; round < 6; round++) {
      const vecs = clustered(120, dim, 16, 1200 + round);
      const ids = Uint32Array.from({ length: 120 }, (_, j) => 100_000 + round * 1000 + j);
      ops.push({ kind: 'add', vecs, ids });
      ids.forEach((id, j) => { rows.set(BigInt(id), row(vecs, dim, j)); live.add(BigInt(id)); });
      for (let j = 0; j < 5; j++) probes.push({ id: BigInt(ids[j]!), q: row(vecs, dim, j) });
      const protectedIds = new Set(probes.map((p) => p.id));
      const candidates = [...live].filter((id) => !protectedIds.has(id));
      const victims = sample(r, candidates.length, 150).map((i) => candidates[i]!);
      ops.push({ kind: 'remove', ids: victims });
      for (const v of victims) live.delete(v);
      if (round === 2 || round === 4) ops.push({ kind: 'compact' });
    }
    const fresh = clustered(30, dim, 16, 123);
    const queries = concat(fresh, ...probes.map((p) => p.q));
    const nq = queries.length / dim;

    const removedDone = new Set<bigint>();
    const addedDone = new Set<bigint>();
    let checked = 0;
    const check = (ids: IdArray, dists: Float32Array, q: number, forbidden: Set<bigint>, mustFind: Set<bigint>) => {
      const got = rowIds(ids, q, k);
      expect(got.includes(-1n)).toBe(false);
      expect(new Set(got).size).toBe(k);
      const qv = row(queries, dim, q);
      for (let j = 0; j < k; j++) {
        const id = got[j]!;
        expect(forbidden.has(id)).toBe(false);
        const x = rows.get(id);
        expect(x).toBeDefined();
        // The distance belongs to this id's vector: no torn id / vector pairs.
        const d = dists[q * k + j]!;
        if (!approx(d, exact('l2', qv, x!), 1e-4, 1e-4)) expect({ q, id, d }).toEqual({ q, id, d: exact('l2', qv, x!) });
        if (j > 0) expect(dists[q * k + j - 1]!).toBeLessThanOrEqual(d);
      }
      if (q >= 30) {
        const p = probes[q - 30]!;
        if (mustFind.has(p.id)) {
          expect(got[0]).toBe(p.id);
          expect(dists[q * k]).toBe(0);
        }
      }
      checked++;
    };
    const pending: Promise<unknown>[] = [];
    // Searches in flight when a change resolved: proof that they overlapped.
    let inFlight = 0, overlaps = 0;
    const launch = () => {
      const forbidden = new Set(removedDone);
      const mustFind = new Set(addedDone);
      inFlight++;
      pending.push(index.searchBatch(queries, { k, nprobe: nc, threads: 2 }).then((res) => {
        inFlight--;
        for (let q = 0; q < nq; q++) check(res.ids, res.distances, q, forbidden, mustFind);
      }));
    };
    const tick = () => new Promise((res) => setImmediate(res));
    for (const op of ops) {
      launch();
      launch();
      if (op.kind === 'add') {
        pending.push(index.add(op.vecs, op.ids).then(() => {
          overlaps += inFlight;
          op.ids.forEach((id) => addedDone.add(BigInt(id)));
        }));
      } else if (op.kind === 'remove') {
        pending.push(index.remove(op.ids).then((cnt) => {
          overlaps += inFlight;
          expect(cnt).toBe(op.ids.length);
          for (const id of op.ids) removedDone.add(id);
        }));
      } else {
        pending.push(index.compact().then(() => { overlaps += inFlight; }));
      }
      launch();
      await tick();
      // The synchronous path, on the JS thread, between the changes.
      const forbidden = new Set(removedDone), mustFind = new Set(addedDone);
      for (const q of [0, nq - 1]) {
        const s = index.search(row(queries, dim, q), { k, nprobe: nc });
        const ids = index.idType === 'u32' ? new Int32Array(nq * k) : new BigInt64Array(nq * k);
        const dists = new Float32Array(nq * k);
        (ids as Int32Array).set(s.ids as Int32Array, q * k);
        dists.set(s.distances, q * k);
        check(ids, dists, q, forbidden, mustFind);
      }
      launch();
      await tick();
    }
    await Promise.all(pending);
    expect(checked).toBeGreaterThan(24 * nq);
    expect(overlaps).toBeGreaterThan(0);

    // The same ops, one at a time, on a replica built identically.
    for (const op of ops) {
      if (op.kind === 'add') await replica.add(op.vecs, op.ids);
      else if (op.kind === 'remove') expect(await replica.remove(op.ids)).toBe(op.ids.length);
      else await replica.compact();
    }
    expect(index.size).toBe(live.size);
    expect(replica.size).toBe(live.size);
    for (const id of rows.keys()) expect(index.has(id)).toBe(live.has(id));
    for (const o of [{ k, nprobe: nc }, { k, nprobe: 3, rerank: false }]) {
      const a = await index.searchBatch(queries, o);
      const b = await replica.searchBatch(queries, o);
      expect(a.ids).toEqual(b.ids);
      expect(a.distances).toEqual(b.distances);
    }
    const liveRows: Rows = new Map([...rows].filter(([id]) => live.has(id)));
    const final = await index.searchBatch(fresh, { k, nprobe: nc });
    let recall = 0;
    for (let q = 0; q < 30; q++) {
      const ids = rowIds(final.ids, q, k);
      for (const id of ids) expect(live.has(id)).toBe(true);
      recall += recallOf(ids, bruteTopK(liveRows, row(fresh, dim, q), k, 'l2'));
    }
    expect(recall / 30).toBeGreaterThanOrEqual(0.99);
    expect(Buffer.compare(await index.toBuffer(), await replica.toBuffer())).toBe(0);
  });
});

// ---- 8. file errors ----------------------------------------------------------------

describe('file errors', () => {
  const dim = 16;
  const data = clustered(300, dim, 4, 131);
  let small: IvfRabitqIndex;
  const getSmall = async () => (small ??= await IvfRabitqIndex.build(data, { dim, numClusters: 6 }));

  async function expectFileError(p: Promise<unknown>, code: 'EIO' | 'EBADINDEX', file: string, what: string): Promise<IndexFileError> {
    let err: unknown;
    try {
      await p;
    } catch (e) {
      err = e;
    }
    expect(err, what).toBeInstanceOf(IndexFileError);
    const e = err as IndexFileError;
    expect({ what, code: e.code, file: e.file }).toEqual({ what, code, file });
    return e;
  }

  it('load of a missing file, a folder, an empty file', async () => {
    const dir = tmpDir('load-errors');
    const missing = path.join(dir, 'nope.rbq');
    for (const mmap of [false, true]) {
      const e = await expectFileError(IvfRabitqIndex.load(missing, { mmap }), 'EIO', missing, `missing, mmap ${mmap}`);
      expect(e.message).toContain(missing);
      await expectFileError(IvfRabitqIndex.load(dir, { mmap }), 'EIO', dir, `folder, mmap ${mmap}`);
      const empty = path.join(dir, 'empty.rbq');
      fs.writeFileSync(empty, '');
      await expectFileError(IvfRabitqIndex.load(empty, { mmap }), 'EBADINDEX', empty, `empty, mmap ${mmap}`);
    }
  });

  it('fromBuffer rejects random bytes, truncations and every flipped byte tried', async () => {
    const ix = await getSmall();
    const good = await ix.toBuffer();
    // Accepted at any byte offset (the bytes are copied to aligned memory).
    const shifted = Buffer.alloc(good.length + 3);
    good.copy(shifted, 3);
    expect((await IvfRabitqIndex.fromBuffer(shifted.subarray(3))).size).toBe(300);

    const r = rng(132);
    const random = Uint8Array.from({ length: 4096 }, () => Math.floor(r() * 256));
    await expectFileError(IvfRabitqIndex.fromBuffer(random), 'EBADINDEX', 'buffer', 'random bytes');
    const magicThenRandom = Buffer.concat([good.subarray(0, 16), Buffer.from(random)]);
    await expectFileError(IvfRabitqIndex.fromBuffer(magicThenRandom), 'EBADINDEX', 'buffer', 'magic then random');
    await expectFileError(IvfRabitqIndex.fromBuffer(new Uint8Array(0)), 'EBADINDEX', 'buffer', 'empty');
    for (const len of [1, 8, 31, 32, 100, 400, Math.floor(good.length / 2), good.length - 64, good.length - 1]) {
      await expectFileError(IvfRabitqIndex.fromBuffer(good.subarray(0, len)), 'EBADINDEX', 'buffer', `truncated to ${len}`);
    }
    await expectFileError(IvfRabitqIndex.fromBuffer(Buffer.concat([good, Buffer.alloc(64)])), 'EBADINDEX', 'buffer', 'trailing bytes');
    // Every byte of the header region, then positions spread over the body.
    const positions = new Set<number>();
    for (let i = 0; i < 512; i++) positions.add(i);
    for (let i = 0; i < 200; i++) positions.add(Math.floor(r() * good.length));
    positions.add(good.length - 1);
    for (const pos of positions) {
      const bad = Buffer.from(good);
      bad[pos]! ^= 0xff;
      await expectFileError(IvfRabitqIndex.fromBuffer(bad), 'EBADINDEX', 'buffer', `flipped byte ${pos}`);
    }
  });

  it('a corrupted file: read load and mmap verify reject it; a lazy mmap load defers to verify()', async () => {
    const ix = await getSmall();
    const dir = tmpDir('corrupt');
    const file = path.join(dir, 'c.rbq');
    await ix.save(file);
    const bytes = fs.readFileSync(file);
    // A byte near the end lies in the big arrays (codes / factors / ids / vectors).
    bytes[bytes.length - 10]! ^= 0x01;
    fs.writeFileSync(file, bytes);
    await expectFileError(IvfRabitqIndex.load(file), 'EBADINDEX', file, 'read');
    await expectFileError(IvfRabitqIndex.load(file, { mmap: true, verify: true }), 'EBADINDEX', file, 'mmap verify');
    const lazy = await IvfRabitqIndex.load(file, { mmap: true });
    await expectFileError(lazy.verify(), 'EBADINDEX', 'index', 'verify()');
    // compact() copies the arrays out of the mapping: it checks them first, and leaves the index as it was.
    const q = row(data, dim, 4);
    const before = lazy.search(q, { k: 5, nprobe: 6 });
    await expectFileError(lazy.compact(), 'EBADINDEX', 'index', 'compact()');
    expect(lazy.memoryUsage().mapped).toBeGreaterThan(0);
    expect(lazy.search(q, { k: 5, nprobe: 6 })).toEqual(before);
    await expectFileError(lazy.verify(), 'EBADINDEX', 'index', 'verify() after compact()');
    // Saving it would write the corrupt bytes under fresh checksums: refused too.
    const copy = path.join(dir, 'copy.rbq');
    await expectFileError(lazy.save(copy), 'EBADINDEX', copy, 'save()');
    await expectFileError(lazy.toBuffer(), 'EBADINDEX', 'index', 'toBuffer()');
    expect(fs.readdirSync(dir).sort()).toEqual(['c.rbq']);
    // A truncated file is rejected by every load, mapped or not (never a SIGBUS).
    const cut = path.join(dir, 'cut.rbq');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 200));
    for (const o of [{}, { mmap: true }, { mmap: true, verify: true }]) {
      await expectFileError(IvfRabitqIndex.load(cut, o), 'EBADINDEX', cut, `truncated ${JSON.stringify(o)}`);
    }
  });

  it('save into a missing folder or onto a folder fails cleanly', async () => {
    const ix = await getSmall();
    const dir = tmpDir('save-errors');
    const inMissing = path.join(dir, 'missing', 'x.rbq');
    await expectFileError(ix.save(inMissing), 'EIO', inMissing, 'missing folder');
    expect(fs.existsSync(path.join(dir, 'missing'))).toBe(false);
    const trailing = path.join(dir, 'sub') + '/';
    await expectFileError(ix.save(trailing), 'EIO', trailing, 'trailing slash');
    // A folder at the target: the write succeeds, the rename fails, and the
    // temporary file must go.
    const target = path.join(dir, 'taken');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep.txt'), 'keep');
    await expectFileError(ix.save(target), 'EIO', target, 'folder at the target');
    expect(fs.readdirSync(dir).sort()).toEqual(['taken']);
    expect(fs.readFileSync(path.join(target, 'keep.txt'), 'utf8')).toBe('keep');
    expect(fs.readdirSync(target)).toEqual(['keep.txt']);
  });

  it('a save that fails while writing (file size limit) leaves the old file intact and no temporary file', async () => {
    const dim2 = 64;
    const big = await IvfRabitqIndex.build(clustered(2000, dim2, 8, 141), { dim: dim2, numClusters: 20 });
    const srcDir = tmpDir('efbig-src');
    const src = path.join(srcDir, 'big.rbq');
    await big.save(src);
    expect(fs.statSync(src).size).toBeGreaterThan(256 * 1024);
    const dir = tmpDir('efbig');
    const target = path.join(dir, 'index.rbq');
    const old = Buffer.from('the previous index, which must survive\n'.repeat(10));
    fs.writeFileSync(target, old);
    const script = path.join(srcDir, 'save.cjs');
    fs.writeFileSync(script, `
      const addon = require(${JSON.stringify(path.join(ROOT, 'node_modules', 'node-gyp-build'))})(${JSON.stringify(ROOT)});
      addon.loadIndex(process.argv[2], false, false)
        .then((ix) => ix.save(process.argv[3]))
        .then(() => { process.stdout.write('saved'); }, (e) => { process.stdout.write('failed: ' + e.message); process.exitCode = 3; });
    `);
    // ulimit -f counts 512-byte blocks in sh: a 64 KiB limit on any file the child writes.
    const res = spawnSync('sh', ['-c', `ulimit -f 128 && exec "${process.execPath}" "$0" "$1" "$2"`, script, src, target], { encoding: 'utf8' });
    expect(res.stdout).toMatch(/^failed: .*cannot save/);
    expect(res.status).toBe(3);
    expect(Buffer.compare(fs.readFileSync(target), old)).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['index.rbq']);
    // Without the limit the same save works and replaces the file.
    await big.save(target);
    expect((await IvfRabitqIndex.load(target)).size).toBe(2000);
    expect(fs.readdirSync(dir)).toEqual(['index.rbq']);
  });
});

describe('inner product probes clusters by <q, c>', () => {
  it('finds the largest inner products at a small nprobe on data whose norms vary', async () => {
    // Vectors scaled by 0.3..1.8: the largest inner products belong to long
    // vectors, in clusters far from the query in L2 terms. Probing by L2
    // distance found none of them at nprobe 40 of 200.
    const dim = 32, n = 12000, nq = 40, k = 10;
    const r = rng(5);
    const centres = Array.from({ length: 30 }, () => Float32Array.from({ length: dim }, () => gaussian(r) * 2));
    const data = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      const c = centres[i % 30]!;
      const s = 0.3 + 1.5 * r();
      for (let d = 0; d < dim; d++) data[i * dim + d] = (c[d]! + gaussian(r)) * s;
    }
    const q = new Float32Array(nq * dim).map(() => gaussian(r));
    const index = await IvfRabitqIndex.build(data, { dim, metric: 'ip', numClusters: 100, seed: 1 });
    let hit = 0;
    for (let i = 0; i < nq; i++) {
      const qi = q.subarray(i * dim, (i + 1) * dim);
      const scores: Array<[number, number]> = [];
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let d = 0; d < dim; d++) s += qi[d]! * data[j * dim + d]!;
        scores.push([s, j]);
      }
      scores.sort((a, b) => b[0] - a[0]);
      const truth = new Set(scores.slice(0, k).map((x) => x[1]));
      for (const id of index.search(qi, { k, nprobe: 10 }).ids) if (truth.has(id)) hit++;
    }
    expect(hit / (nq * k)).toBeGreaterThanOrEqual(0.9);
  });
});

describe('searchBatch inputs', () => {
  it('copies its queries and filter: transferring or overwriting them after the call changes nothing', async () => {
    const dim = 16, n = 3000;
    const r = rng(21);
    const data = Float32Array.from({ length: n * dim }, () => gaussian(r));
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: 20, seed: 3 });
    const queries = Float32Array.from({ length: 50 * dim }, () => gaussian(r));
    const allowed = new Uint32Array(Array.from({ length: 1500 }, (_, i) => i * 2));
    const opts = { k: 5, nprobe: 20, filter: allowed };
    const expected = await index.searchBatch(queries.slice(), { ...opts, filter: allowed.slice() });
    const pending = index.searchBatch(queries, opts);
    // Detach both buffers while the batch may still be running.
    structuredClone(queries.buffer, { transfer: [queries.buffer] });
    structuredClone(allowed.buffer, { transfer: [allowed.buffer] });
    expect(queries.length).toBe(0);
    const got = await pending;
    expect(Array.from(got.ids)).toEqual(Array.from(expected.ids));
    expect(Array.from(got.distances)).toEqual(Array.from(expected.distances));
    expect(Array.from(got.ids).every((id) => id % 2 === 0)).toBe(true);
  });
});
