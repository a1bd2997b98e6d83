/**
 * Loads the compiled addon (a prebuild when one matches, else build/Release)
 * and describes its raw, unchecked surface. Everything here trusts its
 * arguments: the public API in index.ts validates first.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface NativeInfo {
  dim: number;
  paddedDim: number;
  size: number;
  numClusters: number;
  metric: 'l2' | 'cosine' | 'ip';
  idType: 'u32' | 'u64';
  storeVectors: boolean;
  rotation: 'fht' | 'dense';
  memory: { codes: number; factors: number; ids: number; vectors: number; centroids: number; other: number; total: number; mapped: number };
  timings: { trainMs: number; assignMs: number; encodeMs: number };
}

export interface NativeSearchParams {
  k: number;
  nprobe: number;
  rerank: boolean;
  epsilon: number;
  bitplane: boolean;
  threads: number;
}

/** 0 none, 1 bitset (Uint8Array), 2 ascending Uint32Array, 3 ascending BigUint64Array. */
export type NativeFilterKind = 0 | 1 | 2 | 3;
export type NativeFilterArray = Uint8Array | Uint32Array | BigUint64Array | null;

export interface NativeIndex {
  search(
    query: Float32Array, k: number, nprobe: number, rerank: boolean, epsilon: number, bitplane: boolean,
    ids: Int32Array | BigInt64Array, dists: Float32Array, stats: Float64Array | null,
    filterKind: NativeFilterKind, filter: NativeFilterArray,
  ): void;
  searchBatch(
    queries: Float32Array, params: NativeSearchParams, ids: Int32Array | BigInt64Array, dists: Float32Array,
    stats: Float64Array | null, filterKind: NativeFilterKind, filter: NativeFilterArray,
  ): Promise<void>;
  add(vectors: Float32Array, ids: Uint32Array | BigUint64Array | undefined, threads: number): Promise<void>;
  remove(ids: BigUint64Array): Promise<number>;
  contains(id: bigint): boolean;
  compact(): Promise<void>;
  save(path: string): Promise<void>;
  toBuffer(): Promise<Buffer>;
  verify(): Promise<void>;
  estimateAll(query: Float32Array, estimates: Float32Array, bounds: Float32Array, bitplane: boolean): void;
  info(): NativeInfo;
  /** Vectors in the index now (cheap: no memory accounting). */
  size(): number;
  centroids(): Float32Array;
}

export interface NativeBuildParams {
  dim: number;
  numClusters: number;
  kmeansIterations: number;
  trainPointsPerCluster: number;
  seed: number;
  rotation: 'fht' | 'dense';
  threads: number;
  metric: 'l2' | 'cosine' | 'ip';
  storeVectors: boolean;
  ids: Uint32Array | BigUint64Array | undefined;
}

export type SimdLevelName = 'scalar' | 'avx2' | 'avx512';

export interface NativeKernels {
  l2sq(level: SimdLevelName, a: Float32Array, b: Float32Array): number;
  dot(level: SimdLevelName, a: Float32Array, b: Float32Array): number;
  minmax(level: SimdLevelName, x: Float32Array): [number, number];
  quantize(level: SimdLevelName, x: Float32Array, lo: number, invDelta: number, offsets: Float32Array, maxval: number, out: Uint8Array): number;
  popcountAnd(level: SimdLevelName, a: BigUint64Array, b: BigUint64Array): number;
  bitplaneIp(level: SimdLevelName, planes: BigUint64Array, bits: number, code: BigUint64Array): number;
  fastscan(level: SimdLevelName, codes: Uint8Array, luts: Uint8Array, npairs: number, out: Uint16Array): void;
  dotTile16(level: SimdLevelName, xs: Float32Array, np: number, dim: number, ct: Float32Array, out: Float32Array): void;
  dotTile16F16(level: SimdLevelName, xs: Float32Array, np: number, dim: number, ct: Uint16Array, out: Float32Array): void;
  floatToHalf(input: Float32Array, out: Uint16Array): void;
  /** params: qnorm2, twoLo, twoDelta, sumq, errMul, quantMul */
  estimate(level: SimdLevelName, factors: Float32Array, ip: Uint16Array, params: Float32Array, est: Float32Array, lower: Float32Array): void;
}

export interface NativeAddon {
  simdLevel(): SimdLevelName;
  detectedLevel(): SimdLevelName;
  setSimdLevel(level: SimdLevelName): void;
  poolInfo(): { threads: number; affinityCpus: number };
  exactKnn(base: Float32Array, queries: Float32Array, dim: number, k: number, threads: number, ids: Int32Array, dists: Float32Array): Promise<void>;
  buildIndex(vectors: Float32Array, params: NativeBuildParams, onProgress?: (p: { phase: 'train' | 'assign' | 'encode'; done: number; total: number }) => void): Promise<NativeIndex>;
  loadIndex(path: string, mmap: boolean, verify: boolean): Promise<NativeIndex>;
  indexFromBuffer(bytes: Uint8Array): Promise<NativeIndex>;
  kernels: NativeKernels;
}

const require = createRequire(import.meta.url);
// dist/src/native.js and src/native.ts are both two levels below the package root.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '..' : '.');

function load(): NativeAddon {
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeAddon;
  return nodeGypBuild(packageRoot);
}

export const native: NativeAddon = load();
