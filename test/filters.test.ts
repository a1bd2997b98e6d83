/**
 * Filtered search (id lists and bitsets) against brute force over the allowed ids.
 *
 * Models (brute force in float64, sequential replicas) and seeded data come from helpers.ts.
 */
import { describe, it, expect } from 'vitest';
import { IvfRabitqIndex } from '../src/index.js';
import { rng, clustered, row, sample, exact, type Rows, bruteTopK, rowIds, searchRows } from './helpers.js';

describe('filters', () => {
  const dim = 32,
    n = 3000,
    nc = 30,
    k = 10;
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
      let best = -1,
        bd = Infinity;
      for (let i = 0; i < n; i++) {
        const d = exact('l2', centroids.subarray(c * dim, (c + 1) * dim), row(data, dim, i));
        if (d < bd && !chosen.includes(i)) {
          bd = d;
          best = i;
        }
      }
      chosen.push(best);
    }
    const shuffled = [chosen[3]!, chosen[0]!, chosen[6]!, chosen[1]!, chosen[5]!, chosen[2]!, chosen[4]!];
    for (const filter of [
      Uint32Array.from(shuffled),
      bitsetOf(shuffled, n),
      BigUint64Array.from(shuffled.map(BigInt)),
    ]) {
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
      for (const o of [
        { k, nprobe: 3 },
        { k, nprobe: 2, rerank: false },
        { k: 25, nprobe: nc },
      ]) {
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
