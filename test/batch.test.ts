/**
 * searchBatch (the cluster-major batch scan) against search() one query at a
 * time: the same ids and distances for every query, the same work counters
 * for what does not depend on visiting order, over metrics, id widths,
 * removed vectors, filters, k above the cluster sizes and batch sizes
 * 1, 2, 17 and 1,000, on one and two threads. Also run at every lower SIMD
 * level by test/run-levels.mjs.
 *
 * The batch visits a query's clusters in another order than search() (its
 * two nearest first, the rest by cluster), so the set of vectors re-ranked
 * may differ; the results only can where an error bound fails, which these
 * seeded data sets do not hit. That order depends on the query alone, so a
 * query's answer does not depend on the batch it is in.
 */
import { describe, it, expect } from 'vitest';
import { IvfRabitqIndex, type Metric } from '../src/index.js';
import { clustered, type AnyIndex } from './helpers.js';

const dim = 24;

function singles(ix: AnyIndex, queries: Float32Array, opts: Parameters<AnyIndex['search']>[1]) {
  const nq = queries.length / dim,
    k = opts.k;
  const ids: (number | bigint)[] = [],
    dists: number[] = [];
  const stats = { queries: 0, clustersProbed: 0, codesScanned: 0, reranked: 0, candidates: 0 };
  for (let q = 0; q < nq; q++) {
    const r = ix.search(queries.subarray(q * dim, (q + 1) * dim), { ...opts, stats: true });
    for (let i = 0; i < k; i++) {
      ids.push(r.ids[i]!);
      dists.push(r.distances[i]!);
    }
    for (const key of Object.keys(stats) as (keyof typeof stats)[]) stats[key] += r.stats![key];
  }
  return { ids, dists, stats };
}

async function expectBatchEqualsSingle(
  ix: AnyIndex,
  queries: Float32Array,
  opts: Parameters<AnyIndex['search']>[1],
  threads: number,
) {
  const want = singles(ix, queries, opts);
  const got = await ix.searchBatch(queries, { ...opts, threads, stats: true });
  expect(Array.from(got.ids as ArrayLike<number | bigint>)).toEqual(want.ids);
  expect(Array.from(got.distances)).toEqual(want.dists);
  const nq = queries.length / dim;
  expect(got.stats!.queries).toBe(nq);
  expect(got.stats!.clustersProbed).toBe(want.stats.clustersProbed);
  expect(got.stats!.codesScanned).toBe(want.stats.codesScanned);
  // The totals are the sums of the per-query counters.
  const per = got.perQueryStats!;
  expect(per.length).toBe(nq);
  for (const key of ['queries', 'clustersProbed', 'codesScanned', 'reranked', 'candidates'] as const)
    expect(per.reduce((s, p) => s + p[key], 0)).toBe(got.stats![key]);
  if (opts.rerank !== false) {
    // Every query re-ranked at least the results it returns.
    const found = (q: number) =>
      want.ids.slice(q * opts.k, (q + 1) * opts.k).filter((id) => id !== -1 && id !== -1n).length;
    expect(per.every((p, q) => p.reranked >= found(q))).toBe(true);
    expect(got.stats!.reranked).toBeLessThanOrEqual(got.stats!.candidates);
  }
  return { got, want };
}

describe('searchBatch equals search', () => {
  const n = 4000,
    nc = 40;
  const data = clustered(n, dim, 30, 501);
  const queries = clustered(1000, dim, 30, 502);
  const built = new Map<string, Promise<AnyIndex>>();
  const index = (metric: Metric, ids?: 'u32' | 'u64') => {
    const key = `${metric}/${ids ?? '-'}`;
    if (!built.has(key)) {
      const opts: Parameters<typeof IvfRabitqIndex.build>[1] = { dim, numClusters: nc, seed: 7, metric };
      if (ids === 'u32') opts.ids = Uint32Array.from({ length: n }, (_, i) => 3 * i + 11);
      if (ids === 'u64') opts.ids = BigUint64Array.from({ length: n }, (_, i) => (1n << 40n) + BigInt(5 * i));
      built.set(key, IvfRabitqIndex.build(data, opts) as Promise<AnyIndex>);
    }
    return built.get(key)!;
  };

  for (const metric of ['l2', 'cosine', 'ip'] as const)
    for (const nq of [1, 2, 17, 1000])
      it(`${metric}, ${nq} queries, 1 and 2 threads`, async () => {
        const ix = await index(metric);
        const qs = queries.subarray(0, nq * dim);
        for (const threads of [1, 2]) await expectBatchEqualsSingle(ix, qs, { k: 10, nprobe: 6 }, threads);
      });

  it("a query's answer does not depend on the other queries of its batch", async () => {
    const ix = await index('l2');
    const opts = { k: 10, nprobe: 9 };
    const whole = await ix.searchBatch(queries, { ...opts, threads: 2 });
    for (const [from, nq] of [
      [0, 1],
      [500, 17],
      [983, 17],
      [100, 250],
    ] as const) {
      const part = await ix.searchBatch(queries.subarray(from * dim, (from + nq) * dim), { ...opts, threads: 1 });
      expect(Array.from(part.ids as Int32Array)).toEqual(
        Array.from((whole.ids as Int32Array).subarray(from * 10, (from + nq) * 10)),
      );
      expect(Array.from(part.distances)).toEqual(Array.from(whole.distances.subarray(from * 10, (from + nq) * 10)));
    }
  });

  it('nprobe 1, nprobe 2 (no cluster-major pass) and nprobe = all clusters', async () => {
    const ix = await index('l2');
    const qs = queries.subarray(0, 200 * dim);
    for (const nprobe of [1, 2, 3, nc, nc + 5]) await expectBatchEqualsSingle(ix, qs, { k: 10, nprobe }, 2);
  });

  it('k above the cluster sizes', async () => {
    const ix = await index('l2');
    const qs = queries.subarray(0, 50 * dim);
    const { got } = await expectBatchEqualsSingle(ix, qs, { k: 150, nprobe: 5 }, 2);
    expect(Array.from(got.ids as Int32Array).every((id) => id >= 0)).toBe(true);
    // k beyond everything the probed clusters hold: missing slots in both.
    const all = await expectBatchEqualsSingle(ix, qs.subarray(0, 5 * dim), { k: 500, nprobe: 1 }, 1);
    expect(Array.from(all.got.ids as Int32Array).some((id) => id === -1)).toBe(true);
  });

  it('without re-ranking (estimates) and at another epsilon', async () => {
    const ix = await index('l2');
    const qs = queries.subarray(0, 100 * dim);
    await expectBatchEqualsSingle(ix, qs, { k: 10, nprobe: 6, rerank: false }, 2);
    await expectBatchEqualsSingle(ix, qs, { k: 10, nprobe: 6, epsilon: 3 }, 2);
  });

  it('caller ids, 32 and 64 bits', async () => {
    for (const ids of ['u32', 'u64'] as const) {
      const ix = await index('l2', ids);
      await expectBatchEqualsSingle(ix, queries.subarray(0, 100 * dim), { k: 10, nprobe: 6 }, 2);
    }
  });

  it('filters (list and bitset)', async () => {
    const ix = await index('cosine');
    const allowed = Uint32Array.from({ length: n / 7 }, (_, i) => 7 * i + 3);
    const bitset = new Uint8Array(Math.ceil(n / 8));
    for (const id of allowed) bitset[id >> 3]! |= 1 << (id & 7);
    for (const filter of [allowed, bitset])
      await expectBatchEqualsSingle(ix, queries.subarray(0, 40 * dim), { k: 10, nprobe: 2, filter }, 2);
  });

  it('after removing vectors and adding others', async () => {
    const ix = (await IvfRabitqIndex.build(data, { dim, numClusters: nc, seed: 8 })) as AnyIndex;
    expect(await ix.remove(Array.from({ length: 1500 }, (_, i) => 2 * i))).toBe(1500);
    await ix.add(clustered(300, dim, 30, 503));
    const { got } = await expectBatchEqualsSingle(ix, queries.subarray(0, 300 * dim), { k: 10, nprobe: 6 }, 2);
    for (const id of got.ids as Int32Array) expect(id < 3000 && id % 2 === 0).toBe(false);
  });
});
