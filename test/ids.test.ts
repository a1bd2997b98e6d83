/**
 * Caller ids: 32-bit (Uint32Array) and 64-bit (BigUint64Array), their limits and validation.
 *
 * Models (brute force in float64, sequential replicas) and seeded data come from helpers.ts.
 */
import { describe, it, expect } from 'vitest';
import { IvfRabitqIndex } from '../src/index.js';
import { rng, clustered, row } from './helpers.js';

describe('caller ids', () => {
  const dim = 24,
    n = 1000;
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
    const wide = await IvfRabitqIndex.build(data, {
      dim,
      numClusters: 10,
      ids: BigUint64Array.from({ length: n }, (_, i) => BigInt(i) * 10n ** 12n),
    });
    expect(() => wide.estimateAll(q)).toThrow(RangeError);
    const sparse = await IvfRabitqIndex.build(data, {
      dim,
      numClusters: 10,
      ids: Uint32Array.from({ length: n }, (_, i) => i * 1000),
    });
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
    await index.add(
      row(data, dim, 1).map((v) => v + 2),
      BigUint64Array.of(2n ** 63n - 1n),
    );
    expect(
      index.search(
        row(data, dim, 1).map((v) => v + 2),
        { k: 1, nprobe: 10 },
      ).ids[0],
    ).toBe(2n ** 63n - 1n);
    expect(index.size).toBe(n + 1 - 2 + 1);
  });
});
