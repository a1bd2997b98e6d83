/**
 * add / remove / has / size / compact, checked against a brute-force model of the live set.
 *
 * Models (brute force in float64, sequential replicas) and seeded data come from helpers.ts.
 */
import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { IvfRabitqIndex } from '../src/index.js';
import type { IdArray, SearchOptions } from '../src/index.js';
import {
  rng,
  clustered,
  row,
  concat,
  sample,
  type Rows,
  bruteTopK,
  rowIds,
  recallOf,
  searchRows,
  snapshot,
  fileMapped,
  tempFolders,
} from './helpers.js';

const tmpDir = tempFolders('mutations');

describe('add, remove, has, size and compact', () => {
  const dim = 32,
    n = 2000,
    nc = 20;
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
    await index.add(
      row(added, dim, 0).map((v) => v + 0.5),
      Uint32Array.of(1),
    );
    expect(index.has(1)).toBe(true);
    expect(
      index.search(
        row(added, dim, 0).map((v) => v + 0.5),
        { k: 1, nprobe: 1 },
      ).ids[0],
    ).toBe(1);
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
      Array.from({ length: res.ids.length / k }, (_, q) =>
        rowIds(res.ids, q, k).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      );
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
        ids.forEach((id, j) => {
          rows.set(BigInt(id), row(fresh, dim, j));
          everUsed.add(BigInt(id));
        });
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
