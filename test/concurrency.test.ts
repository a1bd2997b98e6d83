/**
 * Mutations concurrent with searches (call order, detached inputs, a sequential replica),
 * and searchBatch copying its inputs.
 *
 * Models (brute force in float64, sequential replicas) and seeded data come from helpers.ts.
 */
import { describe, it, expect } from 'vitest';
import { IvfRabitqIndex } from '../src/index.js';
import type { IdArray } from '../src/index.js';
import {
  rng,
  gaussian,
  clustered,
  row,
  concat,
  sample,
  exact,
  type Rows,
  bruteTopK,
  rowIds,
  recallOf,
  approx,
} from './helpers.js';

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

  it('a queued add whose ids or vectors are transferred meanwhile adds what they held when add() was called', async () => {
    const dim = 8;
    const data = clustered(300, dim, 4, 113);
    const index = await IvfRabitqIndex.build(data.subarray(0, 200 * dim), { dim, numClusters: 4 });
    // add() runs after the queued compact(): by then its arrays may be gone,
    // but add() copied them when called.
    const ids = Uint32Array.of(5000, 5001);
    const compacted = index.compact();
    const added = index.add(data.slice(200 * dim, 202 * dim), ids);
    structuredClone(ids.buffer, { transfer: [ids.buffer] });
    const vectors = data.slice(202 * dim, 204 * dim);
    const added2 = index.add(vectors, Uint32Array.of(6000, 6001));
    structuredClone(vectors.buffer, { transfer: [vectors.buffer] });
    await compacted;
    await added;
    await added2;
    expect(index.size).toBe(204);
    expect(index.has(200)).toBe(false); // not added under default ids instead
    for (const id of [5000, 5001, 6000, 6001]) expect(index.has(id)).toBe(true);
    const q = data.slice(203 * dim, 204 * dim);
    expect(index.search(q, { k: 1, nprobe: 4 }).ids[0]).toBe(6001);
  });

  it('searchBatch in flight while adds and removes interleave: consistent results, final state as a sequential replica', async () => {
    const dim = 32,
      n = 4000,
      nc = 40,
      k = 10;
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
    type Op =
      { kind: 'add'; vecs: Float32Array; ids: Uint32Array } | { kind: 'remove'; ids: bigint[] } | { kind: 'compact' };
    const ops: Op[] = [];
    const probes: { id: bigint; q: Float32Array }[] = [];
    const r = rng(122);
    for (let round = 0; round < 6; round++) {
      const vecs = clustered(120, dim, 16, 1200 + round);
      const ids = Uint32Array.from({ length: 120 }, (_, j) => 100_000 + round * 1000 + j);
      ops.push({ kind: 'add', vecs, ids });
      ids.forEach((id, j) => {
        rows.set(BigInt(id), row(vecs, dim, j));
        live.add(BigInt(id));
      });
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
        if (!approx(d, exact('l2', qv, x!), 1e-4, 1e-4))
          expect({ q, id, d }).toEqual({ q, id, d: exact('l2', qv, x!) });
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
    let inFlight = 0,
      overlaps = 0;
    const launch = () => {
      const forbidden = new Set(removedDone);
      const mustFind = new Set(addedDone);
      inFlight++;
      pending.push(
        index.searchBatch(queries, { k, nprobe: nc, threads: 2 }).then((res) => {
          inFlight--;
          for (let q = 0; q < nq; q++) check(res.ids, res.distances, q, forbidden, mustFind);
        }),
      );
    };
    const tick = () => new Promise((res) => setImmediate(res));
    for (const op of ops) {
      launch();
      launch();
      if (op.kind === 'add') {
        pending.push(
          index.add(op.vecs, op.ids).then(() => {
            overlaps += inFlight;
            op.ids.forEach((id) => addedDone.add(BigInt(id)));
          }),
        );
      } else if (op.kind === 'remove') {
        pending.push(
          index.remove(op.ids).then((cnt) => {
            overlaps += inFlight;
            expect(cnt).toBe(op.ids.length);
            for (const id of op.ids) removedDone.add(id);
          }),
        );
      } else {
        pending.push(
          index.compact().then(() => {
            overlaps += inFlight;
          }),
        );
      }
      launch();
      await tick();
      // The synchronous path, on the JS thread, between the changes.
      const forbidden = new Set(removedDone),
        mustFind = new Set(addedDone);
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
    for (const o of [
      { k, nprobe: nc },
      { k, nprobe: 3, rerank: false },
    ]) {
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

describe('searchBatch inputs', () => {
  it('copies its queries and filter: transferring or overwriting them after the call changes nothing', async () => {
    const dim = 16,
      n = 3000;
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
