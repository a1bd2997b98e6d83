/**
 * Id widths in the types and at run time: an index with 64-bit ids, its
 * batcher and load() / fromBuffer() of its file give BigInt64Array ids and
 * are typed so; load()'s idType option is checked against the file.
 * (The expectTypeOf lines are checked by tsc over the tests.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { IvfRabitqIndex, type Batcher, type BatcherResult, type IdArray } from '../src/index.js';
import { rng } from '../src/random.js';

const DIM = 8;
const N = 300;
let tmp: string;
let data: Float32Array;
let wide: IvfRabitqIndex<BigInt64Array>;
let narrow: IvfRabitqIndex<Int32Array>;
let wideFile: string;
let narrowFile: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'rabitq-idtypes-'));
  const r = rng(7);
  data = Float32Array.from({ length: N * DIM }, () => r() * 2 - 1);
  wide = await IvfRabitqIndex.build(data, {
    dim: DIM,
    numClusters: 4,
    ids: BigUint64Array.from({ length: N }, (_, i) => 2n ** 40n + BigInt(i)),
  });
  narrow = await IvfRabitqIndex.build(data, { dim: DIM, numClusters: 4 });
  wideFile = path.join(tmp, 'wide.rbq');
  narrowFile = path.join(tmp, 'narrow.rbq');
  await wide.save(wideFile);
  await narrow.save(narrowFile);
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('id types', () => {
  it('build() types the index by its ids; the batcher follows', async () => {
    expectTypeOf(wide.batcher()).toEqualTypeOf<Batcher<BigInt64Array>>();
    expectTypeOf(narrow.batcher()).toEqualTypeOf<Batcher<Int32Array>>();
    const b = wide.batcher({ maxDelayMs: 0 });
    const res = await b.search(data.subarray(0, DIM), { k: 3, nprobe: 4 });
    expectTypeOf(res).toEqualTypeOf<BatcherResult<BigInt64Array>>();
    expect(res.ids).toBeInstanceOf(BigInt64Array);
    expect(res.ids[0]).toBe(2n ** 40n);
    await b.close();
    const nb = narrow.batcher({ maxDelayMs: 0 });
    const nres = await nb.search(data.subarray(0, DIM), { k: 3, nprobe: 4 });
    expect(nres.ids).toBeInstanceOf(Int32Array);
    expect(nres.ids[0]).toBe(0);
    await nb.close();
  });

  it('load() is typed by options.idType and checks it against the file', async () => {
    const any = await IvfRabitqIndex.load(wideFile);
    expectTypeOf(any).toEqualTypeOf<IvfRabitqIndex<IdArray>>();
    expect(any.idType).toBe('u64');
    expect(any.search(data.subarray(0, DIM), { k: 1, nprobe: 4 }).ids).toBeInstanceOf(BigInt64Array);

    const w = await IvfRabitqIndex.load(wideFile, { idType: 'u64', mmap: true });
    expectTypeOf(w).toEqualTypeOf<IvfRabitqIndex<BigInt64Array>>();
    const ids = w.search(data.subarray(DIM, 2 * DIM), { k: 1, nprobe: 4 }).ids;
    expectTypeOf(ids).toEqualTypeOf<BigInt64Array>();
    expect(ids).toBeInstanceOf(BigInt64Array);
    expect(ids[0]).toBe(2n ** 40n + 1n);
    expectTypeOf(w.batcher()).toEqualTypeOf<Batcher<BigInt64Array>>();

    const n = await IvfRabitqIndex.load(narrowFile, { idType: 'u32' });
    expectTypeOf(n).toEqualTypeOf<IvfRabitqIndex<Int32Array>>();
    expect(n.search(data.subarray(0, DIM), { k: 1, nprobe: 4 }).ids).toBeInstanceOf(Int32Array);

    await expect(IvfRabitqIndex.load(wideFile, { idType: 'u32' })).rejects.toThrow(
      /options.idType is 'u32' but .*wide\.rbq holds an index with 64-bit ids/,
    );
    await expect(IvfRabitqIndex.load(narrowFile, { idType: 'u64' })).rejects.toBeInstanceOf(TypeError);
    // @ts-expect-error not an id type
    await expect(IvfRabitqIndex.load(narrowFile, { idType: 'u16' })).rejects.toThrow(/options.idType must be/);
  });

  it('fromBuffer() takes the same idType option', async () => {
    const bytes = await wide.toBuffer();
    const w = await IvfRabitqIndex.fromBuffer(bytes, { idType: 'u64' });
    expectTypeOf(w).toEqualTypeOf<IvfRabitqIndex<BigInt64Array>>();
    expect(w.size).toBe(N);
    expectTypeOf(await IvfRabitqIndex.fromBuffer(bytes)).toEqualTypeOf<IvfRabitqIndex<IdArray>>();
    await expect(IvfRabitqIndex.fromBuffer(bytes, { idType: 'u32' })).rejects.toThrow(
      /the buffer holds an index with 64-bit ids/,
    );
  });
});
