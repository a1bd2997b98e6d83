/**
 * The cosine and inner-product metrics against float64 brute force, zero and subnormal vectors,
 * and inner-product cluster probing.
 *
 * Models (brute force in float64, sequential replicas) and seeded data come from helpers.ts.
 */
import { describe, it, expect } from 'vitest';
import { IvfRabitqIndex } from '../src/index.js';
import type { Metric } from '../src/index.js';
import {
  rng,
  gaussian,
  clustered,
  row,
  concat,
  exact,
  type Rows,
  bruteTopK,
  rowIds,
  recallOf,
  approx,
} from './helpers.js';

describe('cosine and inner product against brute force', () => {
  it.each([
    [48, 'cosine'],
    [128, 'cosine'],
    [48, 'ip'],
    [128, 'ip'],
  ] as [number, Metric][])('dim %i, %s: recall@10 >= 0.99 at full probe with exact distances', async (dim, metric) => {
    const n = 2500,
      nc = 25,
      nq = 60,
      k = 10;
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
        const a = est.distances[q * k + j - 1]!,
          b = est.distances[q * k + j]!;
        if (metric === 'ip') expect(a).toBeGreaterThanOrEqual(b);
        else expect(a).toBeLessThanOrEqual(b);
      }

    if (metric === 'cosine') {
      // Cosine ignores the query's length.
      const scaled = queries.map((v) => v * 1000);
      const s = await index.searchBatch(scaled, { k, nprobe: nc });
      expect(s.ids).toEqual(got.ids);
      for (let i = 0; i < s.distances.length; i++)
        expect(approx(s.distances[i]!, got.distances[i]!, 1e-4, 1e-6)).toBe(true);
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

describe('inner product probes clusters by <q, c>', () => {
  it('finds the largest inner products at a small nprobe on data whose norms vary', async () => {
    // Vectors scaled by 0.3..1.8: the largest inner products belong to long
    // vectors, in clusters far from the query in L2 terms. Probing by L2
    // distance found none of them at nprobe 40 of 200.
    const dim = 32,
      n = 12000,
      nq = 40,
      k = 10;
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
