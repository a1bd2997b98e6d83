// The native binding checks what crosses into C++ by itself: called directly
// (bypassing the TypeScript validation) with a wrong array type, a too-short
// array or a detached buffer, every method throws a TypeError instead of
// reading or writing out of bounds.
import { describe, it, expect, beforeAll } from 'vitest';
import { native, type NativeBuildParams, type NativeIndex, type NativeSearchParams } from '../src/native.js';
import { loadTestingAddon } from '../bench/native_testing.js';
import { rng } from './helpers.js';

const DIM = 8;
const N = 300;
const K = 5;

function floats(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r());
}

function detached(n: number): Float32Array {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  expect(a.length).toBe(0);
  return a;
}

const buildParams = (over: Partial<NativeBuildParams> = {}): NativeBuildParams => ({
  dim: DIM,
  numClusters: 4,
  kmeansIterations: 2,
  trainPointsPerCluster: 64,
  seed: 1,
  rotation: 'fht',
  threads: 1,
  metric: 'l2',
  storeVectors: true,
  bits: 1,
  ids: undefined,
  ...over,
});

const batchParams: NativeSearchParams = { k: K, nprobe: 4, rerank: true, epsilon: 1.9, bitplane: false, threads: 1 };

let index: NativeIndex;
const base = floats(N * DIM, 1);
const query = floats(DIM, 2);

beforeAll(async () => {
  index = await native.buildIndex(base, buildParams());
});

// Calls the raw function with `any` arguments, as a JS caller could.
type Raw = (...args: unknown[]) => unknown;
const raw = (f: unknown): Raw => f as Raw;

describe('native binding argument checks', () => {
  it('search: query, ids, dists, stats, filter', () => {
    const search = (...a: unknown[]) => raw(index.search).call(index, ...a);
    const ok = [query, K, 4, true, 1.9, false, new Int32Array(K), new Float32Array(K), null, 0, null];
    const withArg = (i: number, v: unknown) => ok.map((x, j) => (j === i ? v : x));
    expect(() => search(...ok)).not.toThrow();
    // wrong types
    expect(() => search(...withArg(0, new Float64Array(DIM)))).toThrow(TypeError);
    expect(() => search(...withArg(0, Array.from(query)))).toThrow(TypeError);
    expect(() => search(...withArg(6, new Uint32Array(K)))).toThrow(TypeError);
    expect(() => search(...withArg(7, new Float64Array(K)))).toThrow(TypeError);
    expect(() => search(...withArg(8, new Float32Array(5)))).toThrow(TypeError);
    expect(() => search(...withArg(1, '5'))).toThrow(TypeError);
    expect(() => search(...withArg(3, 1))).toThrow(TypeError);
    // too short (or detached)
    expect(() => search(...withArg(0, query.subarray(1)))).toThrow(TypeError);
    expect(() => search(...withArg(0, detached(DIM)))).toThrow(TypeError);
    expect(() => search(...withArg(6, new Int32Array(K - 1)))).toThrow(TypeError);
    expect(() => search(...withArg(6, new BigInt64Array(K - 1)))).toThrow(TypeError);
    expect(() => search(...withArg(7, new Float32Array(K - 1)))).toThrow(TypeError);
    expect(() => search(...withArg(7, detached(K)))).toThrow(TypeError);
    expect(() => search(...withArg(8, new Float64Array(5)))).toThrow(TypeError); // 6 counters
    // k larger than the outputs
    expect(() => search(...withArg(1, 1_000_000))).toThrow(TypeError);
    // filter of the wrong type for its kind
    expect(() => search(...ok.slice(0, 9), 2, new Uint8Array(4))).toThrow(TypeError);
    expect(() => search(...ok.slice(0, 9), 3, new Uint32Array(4))).toThrow(TypeError);
    expect(() => search(...ok.slice(0, 9), 1, null)).toThrow(TypeError);
    expect(() => search(...ok.slice(0, 9), 9, new Uint8Array(4))).toThrow(RangeError);
    // the index still answers
    const ids = new Int32Array(K);
    search(...withArg(6, ids));
    expect(ids.every((id) => id >= 0 && id < N)).toBe(true);
  });

  it('searchBatch: queries, params, ids, dists, stats, filter', async () => {
    const nq = 3;
    const queries = floats(nq * DIM, 3);
    const batch = (...a: unknown[]) => raw(index.searchBatch).call(index, ...a);
    const ok = [
      queries,
      batchParams,
      new Int32Array(nq * K),
      new Float32Array(nq * K),
      new Float64Array(6 + 6 * nq),
      0,
      null,
    ];
    const withArg = (i: number, v: unknown) => ok.map((x, j) => (j === i ? v : x));
    await expect(batch(...ok)).resolves.toBeUndefined();
    expect(() => batch(...withArg(0, new Float64Array(nq * DIM)))).toThrow(TypeError);
    expect(() => batch(...withArg(0, queries.subarray(1)))).toThrow(TypeError); // not a multiple of dim
    expect(() => batch(...withArg(0, detached(nq * DIM)))).toThrow(TypeError);
    expect(() => batch(...withArg(1, null))).toThrow(TypeError);
    expect(() => batch(...withArg(1, { ...batchParams, k: 'five' }))).toThrow(TypeError);
    expect(() => batch(...withArg(2, new Int32Array(nq * K - 1)))).toThrow(TypeError);
    expect(() => batch(...withArg(2, new Float32Array(nq * K)))).toThrow(TypeError);
    expect(() => batch(...withArg(3, new Float32Array(nq * K - 1)))).toThrow(TypeError);
    expect(() => batch(...withArg(3, new Int32Array(nq * K)))).toThrow(TypeError);
    expect(() => batch(...withArg(4, new Float64Array(6 + 6 * nq - 1)))).toThrow(TypeError);
    expect(() => batch(...withArg(4, new Float32Array(6 + 6 * nq)))).toThrow(TypeError);
    expect(() => batch(...ok.slice(0, 5), 3, new Uint32Array(2))).toThrow(TypeError);
  });

  it('estimateAll: query, estimates, bounds', () => {
    const est = (...a: unknown[]) => raw(index.estimateAll).call(index, ...a);
    expect(() => est(query, new Float32Array(N), new Float32Array(N), false)).not.toThrow();
    expect(() => est(new Float64Array(DIM), new Float32Array(N), new Float32Array(N), false)).toThrow(TypeError);
    expect(() => est(query.subarray(2), new Float32Array(N), new Float32Array(N), false)).toThrow(TypeError);
    expect(() => est(query, new Float32Array(N - 1), new Float32Array(N), false)).toThrow(TypeError);
    expect(() => est(query, new Float32Array(N), new Float32Array(N - 1), false)).toThrow(TypeError);
    expect(() => est(query, new Float32Array(N), new Float64Array(N), false)).toThrow(TypeError);
  });

  it('add and remove: vectors and ids', async () => {
    const add = (...a: unknown[]) => raw(index.add).call(index, ...a);
    const remove = (...a: unknown[]) => raw(index.remove).call(index, ...a);
    expect(() => add(new Float64Array(DIM), undefined, 1)).toThrow(TypeError);
    expect(() => add(new Float32Array(DIM - 1), undefined, 1)).toThrow(TypeError);
    expect(() => add(detached(DIM), undefined, 1)).toThrow(TypeError);
    expect(() => add(new Float32Array(2 * DIM), new Uint32Array(1), 1)).toThrow(TypeError); // one id for two vectors
    expect(() => add(new Float32Array(DIM), new Int32Array(1), 1)).toThrow(TypeError);
    expect(() => add(new Float32Array(DIM), undefined, 'all')).toThrow(TypeError);
    expect(() => remove(new Uint32Array(2))).toThrow(TypeError);
    expect(() => remove([1, 2])).toThrow(TypeError);
    expect(() => raw(index.contains).call(index, 1)).toThrow(TypeError);
    expect(() => raw(index.save).call(index, 42)).toThrow(TypeError);
    // A good add still works afterwards.
    await add(floats(DIM, 9), Uint32Array.of(N), 1);
    expect(index.size()).toBe(N + 1);
    expect(await remove(BigUint64Array.of(BigInt(N)))).toBe(1);
  });

  it('buildIndex, indexFromBuffer, loadIndex, exactKnn, setSimdLevel', () => {
    const build = raw(native.buildIndex);
    expect(() => build(new Float64Array(N * DIM), buildParams())).toThrow(TypeError);
    expect(() => build(base, null)).toThrow(TypeError);
    expect(() => build(base.subarray(1), buildParams())).toThrow(TypeError); // not a multiple of dim
    expect(() => build(detached(N * DIM), buildParams())).toThrow(TypeError);
    expect(() => build(base, buildParams({ ids: new Uint32Array(N - 1) }))).toThrow(TypeError);
    expect(() => build(base, buildParams({ ids: new Int32Array(N) as unknown as Uint32Array }))).toThrow(TypeError);
    expect(() => build(base, buildParams({ dim: '8' as unknown as number }))).toThrow(TypeError);
    expect(() => build(base, buildParams(), 'progress')).toThrow(TypeError);
    expect(() => raw(native.indexFromBuffer)(new Uint16Array(8))).toThrow(TypeError);
    expect(() => raw(native.indexFromBuffer)('bytes')).toThrow(TypeError);
    expect(() => raw(native.loadIndex)(1, false, false)).toThrow(TypeError);
    expect(() => raw(native.loadIndex)('x.rbq', 'yes', false)).toThrow(TypeError);
    const knn = raw(native.exactKnn);
    const q = floats(2 * DIM, 4);
    expect(() => knn(new Float64Array(N * DIM), q, DIM, K, 1, new Int32Array(2 * K), new Float32Array(2 * K))).toThrow(
      TypeError,
    );
    expect(() => knn(base, q, DIM, K, 1, new Int32Array(2 * K - 1), new Float32Array(2 * K))).toThrow(TypeError);
    expect(() => knn(base, q, DIM, K, 1, new Int32Array(2 * K), new Float32Array(2 * K - 1))).toThrow(TypeError);
    expect(() => knn(base, q, DIM, K, 1, new Uint32Array(2 * K), new Float32Array(2 * K))).toThrow(TypeError);
    expect(() => knn(base, q.subarray(1), DIM, K, 1, new Int32Array(2 * K), new Float32Array(2 * K))).toThrow(
      TypeError,
    );
    expect(() => raw(native.setSimdLevel)(3)).toThrow(TypeError);
  });

  it('the NativeIvfRabitqIndex constructor is not callable from JS', () => {
    const Ctor = (native as unknown as { NativeIvfRabitqIndex: new () => unknown }).NativeIvfRabitqIndex;
    expect(() => new Ctor()).toThrow(TypeError);
  });

  it('kernel test hooks check their arrays too', () => {
    const k = loadTestingAddon().kernels as unknown as Record<string, Raw>;
    expect(() => k.l2sq!('scalar', new Float32Array(8), new Float32Array(7))).toThrow(TypeError);
    expect(() => k.l2sq!('scalar', new Float32Array(8), new Float64Array(8))).toThrow(TypeError);
    expect(() => k.fastscan!('scalar', new Uint8Array(64), new Uint8Array(64), 2, new Uint16Array(31))).toThrow(
      TypeError,
    );
    expect(() =>
      k.dotTile16!('scalar', new Float32Array(15), 2, 8, new Float32Array(128), new Float32Array(32)),
    ).toThrow(TypeError);
    expect(() => k.floatToHalf!(new Float32Array(4), new Uint16Array(3))).toThrow(TypeError);
  });
});

describe('one error mapper for sync and async calls', () => {
  it('a bad index buffer rejects with code EBADINDEX (async path)', async () => {
    await expect(native.indexFromBuffer(new Uint8Array(64))).rejects.toMatchObject({ code: 'EBADINDEX' });
  });
  it('core range errors are RangeError on both paths', async () => {
    const ids = new Int32Array(K),
      dists = new Float32Array(K);
    expect(() => index.search(query, K, 0, true, 1.9, false, ids, dists, null, 0, null)).toThrow(RangeError);
    await expect(index.searchBatch(query, { ...batchParams, nprobe: 0 }, ids, dists, null, 0, null)).rejects.toThrow(
      RangeError,
    );
  });
});
