/**
 * The public IVF-RaBitQ index. Validates every argument (typed errors naming
 * the argument), then hands pointers to the native core. The index is
 * immutable once built, so concurrent searches are safe.
 */
import { native, type NativeIndex, type NativeInfo } from './native.js';
import { assertFloat32Array, assertIntInRange, describeValue } from './errors.js';
import { createBatcher, type Batcher, type BatcherOptions } from './batcher.js';

export type BuildPhase = 'train' | 'assign' | 'encode';
export interface BuildProgress { phase: BuildPhase; done: number; total: number }

export interface BuildOptions {
  /** Vector dimension; `vectors.length` must be a multiple of it. */
  dim: number;
  /** Number of IVF partitions. Default: round(4 * sqrt(N)), at most N. */
  numClusters?: number;
  /** Only 'l2' (squared Euclidean) for now. */
  metric?: 'l2';
  /** Seed for k-means, the rotation and the query rounding. Default 42. */
  seed?: number;
  /** Worker threads for the build (default: every CPU this process may use). */
  threads?: number;
  /** Lloyd iterations of k-means. Default 10. */
  kmeansIterations?: number;
  /** k-means trains on at most this many points per cluster. Default 256. */
  trainPointsPerCluster?: number;
  /** 'fht' (sign flips + fast Hadamard, default) or 'dense' (random orthogonal matrix). */
  rotation?: 'fht' | 'dense';
  /** Called from the JS thread with build progress; never blocks the workers. */
  onProgress?: (p: BuildProgress) => void;
}

export interface SearchOptions {
  k: number;
  /** Clusters to scan; values above numClusters are clamped to it. */
  nprobe: number;
  /** Re-rank candidates by exact L2 (default true). false returns RaBitQ estimates. */
  rerank?: boolean;
  /** Return work counters. */
  stats?: boolean;
  /** Width of the error bound used to skip re-ranking (default 1.9). */
  epsilon?: number;
  /** @internal Use the bit-plane popcount estimator instead of FastScan (same estimates; reference path). */
  bitplane?: boolean;
}

export interface BatchSearchOptions extends SearchOptions {
  /** Worker threads for this batch (default: the whole pool). */
  threads?: number;
}

export interface SearchStats {
  queries: number;
  clustersProbed: number;
  codesScanned: number;
  reranked: number;
  /** Vectors whose lower bound passed the scan-time threshold (re-rank candidates). */
  candidates: number;
}

export interface SearchResult {
  /** Ids sorted by distance (ties by id); -1 for missing slots when fewer than k vectors exist. */
  ids: Int32Array;
  /** Squared L2 distances; Infinity for missing slots. */
  distances: Float32Array;
  stats?: SearchStats;
}

export interface BatchSearchResult extends SearchResult {
  /** Per-query counters (when stats: true). */
  perQueryStats?: SearchStats[];
}

export interface MemoryUsage { codes: number; factors: number; ids: number; vectors: number; centroids: number; other: number; total: number }

const MAX_K = 1 << 20;

function statsFrom(a: Float64Array, off = 0): SearchStats {
  return { queries: a[off]!, clustersProbed: a[off + 1]!, codesScanned: a[off + 2]!, reranked: a[off + 3]!, candidates: a[off + 4]! };
}

function checkOptionsObject(name: string, v: unknown): asserts v is object {
  if (typeof v !== 'object' || v === null) throw new TypeError(`${name} must be an object, got ${describeValue(v)}`);
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

export class IvfRabitqIndex {
  readonly #native: NativeIndex;
  readonly #info: NativeInfo;
  readonly dim: number;
  readonly size: number;
  readonly numClusters: number;

  private constructor(nativeIndex: NativeIndex) {
    this.#native = nativeIndex;
    this.#info = nativeIndex.info();
    this.dim = this.#info.dim;
    this.size = this.#info.size;
    this.numClusters = this.#info.numClusters;
  }

  /**
   * Builds an index on the native thread pool. `vectors` is copied into the
   * index; do not modify it until the Promise settles.
   */
  static async build(vectors: Float32Array, options: BuildOptions): Promise<IvfRabitqIndex> {
    assertFloat32Array('vectors', vectors);
    checkOptionsObject('options', options);
    assertIntInRange('options.dim', options.dim, 1, 65536);
    if (vectors.length === 0) throw new RangeError('vectors is empty: cannot build an index from no vectors');
    if (vectors.length % options.dim !== 0) {
      throw new RangeError(`vectors.length (${vectors.length}) is not a multiple of dim (${options.dim})`);
    }
    const n = vectors.length / options.dim;
    if (options.metric !== undefined && options.metric !== 'l2') {
      throw new RangeError(`options.metric must be 'l2', got ${describeValue(options.metric)}`);
    }
    const numClusters = options.numClusters ?? 0;
    if (options.numClusters !== undefined) assertIntInRange('options.numClusters', options.numClusters, 1, n);
    const seed = options.seed ?? 42;
    assertIntInRange('options.seed', seed, 0, 2 ** 53 - 1);
    const threads = options.threads ?? 0;
    if (options.threads !== undefined) assertIntInRange('options.threads', options.threads, 1, 1024);
    const kmeansIterations = options.kmeansIterations ?? 10;
    assertIntInRange('options.kmeansIterations', kmeansIterations, 0, 1000);
    const trainPointsPerCluster = options.trainPointsPerCluster ?? 256;
    assertIntInRange('options.trainPointsPerCluster', trainPointsPerCluster, 1, 1 << 20);
    const rotation = options.rotation ?? 'fht';
    if (rotation !== 'fht' && rotation !== 'dense') {
      throw new RangeError(`options.rotation must be 'fht' or 'dense', got ${describeValue(rotation)}`);
    }
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
      throw new TypeError(`options.onProgress must be a function, got ${describeValue(options.onProgress)}`);
    }
    const nativeIndex = await native.buildIndex(
      vectors,
      { dim: options.dim, numClusters, kmeansIterations, trainPointsPerCluster, seed, rotation, threads },
      options.onProgress,
    );
    return new IvfRabitqIndex(nativeIndex);
  }

  #checkSearch(options: SearchOptions): { k: number; nprobe: number; rerank: boolean; epsilon: number; bitplane: boolean } {
    checkOptionsObject('options', options);
    assertIntInRange('options.k', options.k, 1, MAX_K);
    assertIntInRange('options.nprobe', options.nprobe, 1);
    const rerank = options.rerank ?? true;
    if (typeof rerank !== 'boolean') throw new TypeError(`options.rerank must be a boolean, got ${describeValue(rerank)}`);
    const epsilon = options.epsilon ?? 1.9;
    if (typeof epsilon !== 'number' || !(epsilon >= 0) || !Number.isFinite(epsilon)) {
      throw new RangeError(`options.epsilon must be a finite number >= 0, got ${describeValue(epsilon)}`);
    }
    return { k: options.k, nprobe: Math.min(options.nprobe, this.numClusters), rerank, epsilon, bitplane: options.bitplane === true };
  }

  #checkQueries(name: string, q: unknown, single: boolean): number {
    assertFloat32Array(name, q);
    if (single ? q.length !== this.dim : q.length === 0 || q.length % this.dim !== 0) {
      throw new RangeError(single
        ? `${name} must have length dim (${this.dim}), got ${q.length}`
        : `${name}.length (${q.length}) must be a positive multiple of dim (${this.dim})`);
    }
    const bad = firstNonFinite(q);
    if (bad >= 0) {
      const row = Math.floor(bad / this.dim);
      throw new RangeError(`${name} must contain only finite numbers, found ${q[bad]} at ${single ? '' : `row ${row}, `}column ${bad - row * this.dim}`);
    }
    return q.length / this.dim;
  }

  /** One query, synchronously on the calling thread: the lowest-latency path. */
  search(query: Float32Array, options: SearchOptions): SearchResult {
    const p = this.#checkSearch(options);
    this.#checkQueries('query', query, true);
    const ids = new Int32Array(p.k);
    const distances = new Float32Array(p.k);
    const stats = options.stats ? new Float64Array(5) : null;
    this.#native.search(query, p.k, p.nprobe, p.rerank, p.epsilon, p.bitplane, ids, distances, stats);
    return stats ? { ids, distances, stats: statsFrom(stats) } : { ids, distances };
  }

  /**
   * Many queries (row-major, nq x dim) on the native pool. Resolves with
   * nq*k ids and distances. Do not modify `queries` until it settles.
   */
  async searchBatch(queries: Float32Array, options: BatchSearchOptions): Promise<BatchSearchResult> {
    const p = this.#checkSearch(options);
    const nq = this.#checkQueries('queries', queries, false);
    const threads = options.threads ?? 0;
    if (options.threads !== undefined) assertIntInRange('options.threads', options.threads, 1, 1024);
    const ids = new Int32Array(nq * p.k);
    const distances = new Float32Array(nq * p.k);
    const stats = options.stats ? new Float64Array(5 + 5 * nq) : null;
    await this.#native.searchBatch(queries, { ...p, threads }, ids, distances, stats);
    if (!stats) return { ids, distances };
    const perQueryStats: SearchStats[] = [];
    for (let q = 0; q < nq; q++) perQueryStats.push(statsFrom(stats, 5 + 5 * q));
    return { ids, distances, stats: statsFrom(stats), perQueryStats };
  }

  /**
   * A micro-batcher in front of this index: concurrent single-query
   * searches are grouped and run through searchBatch (see src/batcher.ts).
   */
  batcher(options: BatcherOptions = {}): Batcher {
    return createBatcher(this, options);
  }

  /**
   * RaBitQ distance estimates for every vector and the half-width of their
   * error bound at epsilon = 1 (indexed by id). For tests and diagnostics.
   */
  estimateAll(query: Float32Array, options: { bitplane?: boolean } = {}): { estimates: Float32Array; bounds: Float32Array } {
    this.#checkQueries('query', query, true);
    const estimates = new Float32Array(this.size);
    const bounds = new Float32Array(this.size);
    this.#native.estimateAll(query, estimates, bounds, options.bitplane === true);
    return { estimates, bounds };
  }

  /** Bytes held by each part of the index. */
  memoryUsage(): MemoryUsage {
    return { ...this.#info.memory };
  }

  /** Wall time of the build phases, in milliseconds. */
  buildStats(): { trainMs: number; assignMs: number; encodeMs: number } {
    return { ...this.#info.timings };
  }

  /** A copy of the k-means centroids (numClusters x dim). */
  centroids(): Float32Array {
    return this.#native.centroids();
  }
}
