/**
 * The public IVF-RaBitQ index. Validates every argument (typed errors naming
 * the argument), then hands pointers to the native core.
 *
 * Concurrency: searches run concurrently with each other; add / remove /
 * compact are serialized against searches inside the native core (a
 * reader-writer lock), so a search sees the index before or after a change,
 * never half of one. A synchronous search() called while a change holds the
 * lock waits for it (add and remove hold it only to append or move entries;
 * compact holds it while it re-packs). add / remove / compact / save /
 * toBuffer start one at a time, in call order, so changes made without
 * awaiting each other still apply in the order they were called.
 */
import {
  native,
  type NativeFilterArray,
  type NativeFilterKind,
  type NativeIndex,
  type NativeMemoryUsage,
} from './native.js';
import {
  IndexFileError,
  RabitqError,
  assertFloat32Array,
  assertIntInRange,
  assertPath,
  describeValue,
  unshared,
} from './errors.js';
import { createBatcher, type Batcher, type BatcherOptions } from './batcher.js';
import { checkKAndNprobe, checkOptionsObject, checkQueries, type IdArray } from './query.js';

export type BuildPhase = 'train' | 'assign' | 'encode';
export interface BuildProgress {
  phase: BuildPhase;
  done: number;
  total: number;
}

export interface BuildOptions {
  /** Vector dimension; `vectors.length` must be a multiple of it. */
  dim: number;
  /** Number of IVF partitions. Default: round(4 * sqrt(N)), at most N. */
  numClusters?: number;
  /**
   * 'l2' (squared Euclidean, default), 'cosine' (vectors and queries are
   * normalized; distances are 1 - cos) or 'ip' (inner product; results are
   * sorted largest first and `distances` holds the inner products).
   */
  metric?: Metric;
  /**
   * Your ids, one per vector: Uint32Array (each below 2^31, results come back
   * as Int32Array) or BigUint64Array (each below 2^63, results as
   * BigInt64Array). Default 0..n-1. Duplicates are an error.
   */
  ids?: Uint32Array | BigUint64Array;
  /** Keep the raw vectors for exact re-ranking (default true). false saves 4*dim bytes per vector; searches then return estimates. */
  storeVectors?: boolean;
  /**
   * Bits per dimension of the RaBitQ codes, an integer in 1..9 (default 1).
   * Above 1 each vector also keeps `bits - 1` extra bits per dimension
   * (extended RaBitQ) and an 8-byte factor: paddedDim * (bits - 1) / 8 + 8
   * more bytes. The 1-bit scan still filters; the vectors it keeps get the
   * much tighter multi-bit estimate. Without raw vectors (storeVectors:
   * false) search distances are these estimates, so bits sets the recall
   * (siftsmall, full probe: about 0.91 at 4 bits, 0.99 at 7); with raw
   * vectors far fewer vectors need an exact distance.
   */
  bits?: number;
  /** Seed for k-means, the rotation and the query rounding. Default 42. */
  seed?: number;
  /** Worker threads for the build (default: every CPU this process may use). */
  threads?: number;
  /** Lloyd iterations of k-means. Default 10. */
  kmeansIterations?: number;
  /** k-means trains on at most this many points per cluster. Default 256. */
  trainPointsPerCluster?: number;
  /**
   * 'fht' (sign flips + fast Hadamard, default) or 'dense' (random orthogonal
   * matrix). 'dense' needs dim <= MAX_DENSE_ROTATION_DIM (2048), else a
   * RangeError: making the matrix is a single-threaded O(dim^3) QR (about 8 s
   * at 2048, 90 s at 4096).
   */
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
  /**
   * Allow-list applied inside the scan: a Uint32Array or BigUint64Array of
   * allowed ids, or a Uint8Array bitset (id i allowed when bit i % 8 of byte
   * i >> 3 is set). Clusters past nprobe are scanned, nearest first, until k
   * allowed vectors are found, so k results come back when k allowed vectors
   * exist.
   */
  filter?: Uint32Array | BigUint64Array | Uint8Array;
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
  /** Multi-bit estimates computed (bits > 1): vectors whose 1-bit lower bound passed. */
  exEstimated: number;
}

export type Metric = 'l2' | 'cosine' | 'ip';
export type { IdArray };

export interface SearchResult<Ids extends IdArray = Int32Array> {
  /** Ids, best first (ties by id); -1 for missing slots when fewer than k vectors qualify. */
  ids: Ids;
  /** Squared L2 distance, 1 - cos, or the inner product (by metric); Infinity (-Infinity for 'ip') for missing slots. */
  distances: Float32Array;
  stats?: SearchStats;
}

export interface BatchSearchResult<Ids extends IdArray = Int32Array> extends SearchResult<Ids> {
  /** Per-query counters (when stats: true). */
  perQueryStats?: SearchStats[];
}

/** Bytes by part. `mapped`: how many of them live in a file mapping (load with mmap: true). */
export type MemoryUsage = NativeMemoryUsage;

export interface LoadOptions {
  /**
   * Map the file instead of reading it (default false). The header and the
   * small sections are checked at once; the checksums of the big arrays
   * (codes, factors, ids, vectors) only with `verify: true` or index.verify().
   */
  mmap?: boolean;
  /** With mmap: also check every checksum now (reads the whole file once). */
  verify?: boolean;
  /**
   * The id width the caller expects (checked against the file): 'u32'
   * gives an index typed with Int32Array ids, 'u64' one with BigInt64Array
   * ids; a file of the other width is a TypeError. 'any' (the default)
   * accepts both: the index is typed with IdArray; look at index.idType.
   */
  idType?: 'u32' | 'u64' | 'any';
  /** The bits per dimension the caller expects (checked against the file): a RangeError when it differs. */
  bits?: number;
}

/** The index type load() / fromBuffer() resolve with for each LoadOptions.idType. */
type LoadedIndex<T extends LoadOptions['idType']> = T extends 'u32'
  ? IvfRabitqIndex<Int32Array>
  : T extends 'u64'
    ? IvfRabitqIndex<BigInt64Array>
    : IvfRabitqIndex<IdArray>;

function checkIdTypeOption(v: unknown): 'u32' | 'u64' | 'any' {
  if (v === undefined) return 'any';
  if (v !== 'u32' && v !== 'u64' && v !== 'any') {
    throw new TypeError(`options.idType must be 'u32', 'u64' or 'any', got ${describeValue(v)}`);
  }
  return v;
}

/**
 * Largest dim of a build with rotation 'dense' (the native
 * kMaxDenseRotationDim, native/core/rotation.h, which gives the timings).
 */
export const MAX_DENSE_ROTATION_DIM = 2048;

/** Ids are below 2^63 (both widths). */
const ID_LIMIT = 2n ** 63n;

function statsFrom(a: Float64Array, off = 0): SearchStats {
  return {
    queries: a[off]!,
    clustersProbed: a[off + 1]!,
    codesScanned: a[off + 2]!,
    reranked: a[off + 3]!,
    candidates: a[off + 4]!,
    exEstimated: a[off + 5]!,
  };
}

/** Values of the stats array per query (native/binding/search_args.h). */
const STATS_FIELDS = 6;

/** bits: an integer in 1..9, else a RangeError naming it. */
function checkBits(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 9) {
    throw new RangeError(`${name} must be an integer in 1..9, got ${describeValue(v)}`);
  }
  return v;
}

function isAscending(a: Uint32Array | BigUint64Array): boolean {
  for (let i = 1; i < a.length; i++) if (a[i - 1]! > a[i]!) return false;
  return true;
}

function wrapFileError(file: string, e: unknown): unknown {
  if (e instanceof Error && !(e instanceof RabitqError) && !(e instanceof TypeError) && !(e instanceof RangeError)) {
    const code = (e as { code?: string }).code === 'EBADINDEX' ? 'EBADINDEX' : 'EIO';
    return new IndexFileError(code, file, e.message, { cause: e });
  }
  return e;
}

/** A native error about the index's own contents (code 'EBADINDEX') as an IndexFileError; others unchanged. */
function wrapIndexError(e: unknown): unknown {
  return (e as { code?: unknown } | null)?.code === 'EBADINDEX' ? wrapFileError('index', e) : e;
}

export class IvfRabitqIndex<Ids extends IdArray = Int32Array> {
  readonly #native: NativeIndex;
  readonly dim: number;
  readonly numClusters: number;
  /** 'l2', 'cosine' or 'ip'. */
  readonly metric: Metric;
  /** 'u32': ids are numbers (Int32Array results); 'u64': bigints (BigInt64Array results). */
  readonly idType: 'u32' | 'u64';
  /** Whether raw vectors are kept for exact re-ranking. */
  readonly storeVectors: boolean;
  /** Bits per dimension of the codes (1..9, BuildOptions.bits). */
  readonly bits: number;
  /** Settles when the last queued change / save has (see #serial). */
  #tail: Promise<unknown> = Promise.resolve();
  /** Set by close(): every later call throws. */
  #closed = false;
  /**
   * search()'s output buffers, reused by every call (grown to the largest k
   * seen). Fresh small result arrays live on the JS heap, and handing one to
   * native code makes V8 move it to an off-heap buffer (an allocation, freed
   * by the GC later) on every call; these were moved once. search() returns
   * copies (slice) of them.
   */
  #searchOut: { ids: Ids; distances: Float32Array; stats: Float64Array } | null = null;

  private constructor(nativeIndex: NativeIndex) {
    this.#native = nativeIndex;
    const info = nativeIndex.info();
    this.dim = info.dim;
    this.numClusters = info.numClusters;
    this.metric = info.metric;
    this.idType = info.idType;
    this.storeVectors = info.storeVectors;
    this.bits = info.bits;
  }

  /**
   * Runs `op` after every earlier queued operation settled. The native calls
   * run on a pool of libuv threads in no particular order: without this, an
   * un-awaited add() followed by remove() of the same ids could remove first.
   */
  #serial<T>(op: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(op);
    this.#tail = p.catch(() => undefined);
    return p;
  }

  /** The native index, or a RabitqError 'ECLOSED' after close(). */
  #open(): NativeIndex {
    if (this.#closed) throw new RabitqError('ECLOSED', 'the index is closed (index.close() was called)');
    return this.#native;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Releases the index's memory and its file mapping (load with mmap) now
   * instead of at garbage collection. Every later call on this index throws
   * RabitqError with code 'ECLOSED' (closing again does nothing). Changes and
   * saves already called (add, remove, compact, save, toBuffer) run first;
   * the returned Promise settles when they have and the memory is released.
   * Batch searches and verify() already running finish on the index and
   * release it when the last of them settles. A batcher made by batcher()
   * fails its later searches with the same error.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail;
    this.#native.close();
  }

  /** Vectors in the index now (changes with add and remove). */
  get size(): number {
    return this.#open().size();
  }

  /**
   * Builds an index on the native thread pool. `vectors` and `options.ids`
   * are copied when build() is called (memory: one more copy of the input
   * until the build ends), so they may be changed, transferred or shrunk
   * right away.
   */
  static async build(
    vectors: Float32Array,
    options: BuildOptions & { ids: BigUint64Array },
  ): Promise<IvfRabitqIndex<BigInt64Array>>;
  static async build(
    vectors: Float32Array,
    options: BuildOptions & { ids?: Uint32Array },
  ): Promise<IvfRabitqIndex<Int32Array>>;
  static async build(vectors: Float32Array, options: BuildOptions): Promise<IvfRabitqIndex<IdArray>>;
  static async build(vectors: Float32Array, options: BuildOptions): Promise<IvfRabitqIndex<IdArray>> {
    assertFloat32Array('vectors', vectors);
    checkOptionsObject('options', options);
    assertIntInRange('options.dim', options.dim, 1, 65536);
    if (vectors.length === 0) throw new RangeError('vectors is empty: cannot build an index from no vectors');
    if (vectors.length % options.dim !== 0) {
      throw new RangeError(`vectors.length (${vectors.length}) is not a multiple of dim (${options.dim})`);
    }
    const n = vectors.length / options.dim;
    const metric = options.metric ?? 'l2';
    if (metric !== 'l2' && metric !== 'cosine' && metric !== 'ip') {
      throw new RangeError(`options.metric must be 'l2', 'cosine' or 'ip', got ${describeValue(options.metric)}`);
    }
    const ids = options.ids;
    if (ids !== undefined) {
      if (!(ids instanceof Uint32Array) && !(ids instanceof BigUint64Array)) {
        throw new TypeError(`options.ids must be a Uint32Array or a BigUint64Array, got ${describeValue(ids)}`);
      }
      if (ids.length !== n) throw new RangeError(`options.ids has ${ids.length} ids for ${n} vectors`);
    }
    const storeVectors = options.storeVectors ?? true;
    if (typeof storeVectors !== 'boolean') {
      throw new TypeError(`options.storeVectors must be a boolean, got ${describeValue(storeVectors)}`);
    }
    const bits = options.bits === undefined ? 1 : checkBits('options.bits', options.bits);
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
    if (rotation === 'dense' && options.dim > MAX_DENSE_ROTATION_DIM) {
      throw new RangeError(
        `options.rotation 'dense' is limited to dim <= ${MAX_DENSE_ROTATION_DIM} (making it is O(dim^3)), got dim ${options.dim}: use rotation 'fht'`,
      );
    }
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
      throw new TypeError(`options.onProgress must be a function, got ${describeValue(options.onProgress)}`);
    }
    const nativeIndex = await native.buildIndex(
      unshared(vectors),
      {
        dim: options.dim,
        numClusters,
        kmeansIterations,
        trainPointsPerCluster,
        seed,
        rotation,
        threads,
        metric,
        storeVectors,
        bits,
        ids: ids && unshared(ids),
      },
      options.onProgress,
    );
    return new IvfRabitqIndex<IdArray>(nativeIndex);
  }

  /**
   * Loads an index written by save(). Everything is checked before it is
   * used (see LoadOptions for mmap). Errors are IndexFileError.
   */
  static async load<T extends LoadOptions['idType'] = undefined>(
    path: string,
    options: LoadOptions & { idType?: T } = {},
  ): Promise<LoadedIndex<T>> {
    assertPath('path', path);
    checkOptionsObject('options', options);
    const idType = checkIdTypeOption(options.idType);
    const bits = options.bits === undefined ? undefined : checkBits('options.bits', options.bits);
    const mmap = options.mmap ?? false;
    const verify = options.verify ?? false;
    if (typeof mmap !== 'boolean') throw new TypeError(`options.mmap must be a boolean, got ${describeValue(mmap)}`);
    if (typeof verify !== 'boolean')
      throw new TypeError(`options.verify must be a boolean, got ${describeValue(verify)}`);
    let index: IvfRabitqIndex<IdArray>;
    try {
      index = new IvfRabitqIndex<IdArray>(await native.loadIndex(path, mmap, verify));
    } catch (e) {
      throw wrapFileError(path, e);
    }
    return IvfRabitqIndex.#expectBits(IvfRabitqIndex.#expectIdType(index, idType, path), bits, path) as LoadedIndex<T>;
  }

  /** The index, once its id width is the one `idType` asks for. */
  static #expectIdType(
    index: IvfRabitqIndex<IdArray>,
    idType: 'u32' | 'u64' | 'any',
    source: string,
  ): IvfRabitqIndex<IdArray> {
    if (idType !== 'any' && index.idType !== idType) {
      const bits = (t: 'u32' | 'u64') => (t === 'u32' ? '32' : '64');
      throw new TypeError(
        `options.idType is '${idType}' but ${source} holds an index with ${bits(index.idType)}-bit ids (use idType '${index.idType}' or 'any')`,
      );
    }
    return index;
  }

  /** The index, once its bits are the ones the caller expects (if given). */
  static #expectBits(
    index: IvfRabitqIndex<IdArray>,
    bits: number | undefined,
    source: string,
  ): IvfRabitqIndex<IdArray> {
    if (bits !== undefined && index.bits !== bits) {
      throw new RangeError(`options.bits is ${bits} but ${source} holds an index with ${index.bits}-bit codes`);
    }
    return index;
  }

  /** An index from the bytes of toBuffer() (or of a saved file); the bytes are copied once. */
  static async fromBuffer<T extends LoadOptions['idType'] = undefined>(
    bytes: Uint8Array,
    options: { idType?: T; bits?: number } = {},
  ): Promise<LoadedIndex<T>> {
    if (!(bytes instanceof Uint8Array))
      throw new TypeError(`bytes must be a Uint8Array or Buffer, got ${describeValue(bytes)}`);
    checkOptionsObject('options', options);
    const idType = checkIdTypeOption(options.idType);
    const bits = options.bits === undefined ? undefined : checkBits('options.bits', options.bits);
    let index: IvfRabitqIndex<IdArray>;
    try {
      index = new IvfRabitqIndex<IdArray>(await native.indexFromBuffer(unshared(bytes)));
    } catch (e) {
      throw wrapFileError('buffer', e);
    }
    return IvfRabitqIndex.#expectBits(
      IvfRabitqIndex.#expectIdType(index, idType, 'the buffer'),
      bits,
      'the buffer',
    ) as LoadedIndex<T>;
  }

  /**
   * Writes the index to `path` atomically: a temporary file in the same
   * folder, fsync, rename over `path`, fsync of the folder. A crash at any
   * moment leaves the old file or the new one, whole. After a mmap load the
   * checksums left unchecked are checked first (IndexFileError 'EBADINDEX').
   */
  async save(path: string): Promise<void> {
    assertPath('path', path);
    try {
      const nat = this.#open();
      await this.#serial(() => nat.save(path));
    } catch (e) {
      throw wrapFileError(path, e);
    }
  }

  /** The saved form, in memory (same bytes as save() writes). */
  async toBuffer(): Promise<Buffer> {
    try {
      const nat = this.#open();
      return await this.#serial(() => nat.toBuffer());
    } catch (e) {
      // After a mmap load the checksums are checked first, as by save().
      throw wrapIndexError(e);
    }
  }

  /** Checks the checksums a mmap load left unchecked; rejects with IndexFileError on a mismatch. */
  async verify(): Promise<void> {
    try {
      await this.#open().verify();
    } catch (e) {
      throw wrapFileError('index', e);
    }
  }

  /**
   * Adds vectors (row-major, n x dim): each goes to its nearest centroid and is
   * appended to that cluster. `ids` as in BuildOptions.ids (default: the next
   * ids after the largest ever used). Everything is checked before anything
   * changes: on an error (bad row, duplicate or existing id) the index is as before.
   * `vectors` and `ids` are copied when add() is called (memory: two more
   * copies of them until the add ends); the caller may reuse them at once.
   */
  async add(
    vectors: Float32Array,
    ids?: Uint32Array | BigUint64Array,
    options: { threads?: number; bits?: number } = {},
  ): Promise<void> {
    const nat = this.#open();
    assertFloat32Array('vectors', vectors);
    if (vectors.length === 0 || vectors.length % this.dim !== 0) {
      throw new RangeError(`vectors.length (${vectors.length}) must be a positive multiple of dim (${this.dim})`);
    }
    const n = vectors.length / this.dim;
    if (ids !== undefined) {
      if (this.idType === 'u32' && !(ids instanceof Uint32Array)) {
        throw new TypeError(`ids must be a Uint32Array for an index with 32-bit ids, got ${describeValue(ids)}`);
      }
      if (this.idType === 'u64' && !(ids instanceof BigUint64Array)) {
        throw new TypeError(`ids must be a BigUint64Array for an index with 64-bit ids, got ${describeValue(ids)}`);
      }
      if (ids.length !== n) throw new RangeError(`ids has ${ids.length} ids for ${n} vectors`);
    }
    const threads = options.threads ?? 0;
    if (options.threads !== undefined) assertIntInRange('options.threads', options.threads, 1, 1024);
    // New vectors are encoded with the index's bits; saying otherwise is an error.
    if (options.bits !== undefined && checkBits('options.bits', options.bits) !== this.bits) {
      throw new RangeError(`options.bits is ${options.bits} but this index has ${this.bits}-bit codes`);
    }
    // Copied now: the call may wait behind earlier changes, and the caller
    // may change, transfer or shrink the arrays as soon as add() returns.
    const rows = vectors.slice();
    const ownIds = ids?.slice();
    try {
      await this.#serial(() => nat.add(rows, ownIds, threads));
    } catch (e) {
      // After a mmap load without verify, the first add / remove / has reads
      // the id column and refuses a file that stores an id twice.
      throw wrapIndexError(e);
    }
  }

  /** Removes the vectors with these ids (absent ids are ignored); resolves with how many were removed. */
  async remove(ids: ArrayLike<number | bigint> | Uint32Array | BigUint64Array): Promise<number> {
    const nat = this.#open();
    if (ids === null || typeof ids !== 'object' || typeof (ids as ArrayLike<unknown>).length !== 'number') {
      throw new TypeError(`ids must be an array or typed array of ids, got ${describeValue(ids)}`);
    }
    const wide = new BigUint64Array(ids.length);
    let count = 0;
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (typeof v === 'bigint' ? v < 0n : !(Number.isInteger(v) && (v as number) >= 0)) {
        throw new RangeError(`ids[${i}] must be a non-negative integer, got ${describeValue(v)}`);
      }
      const id = BigInt(v as number | bigint);
      // Ids are below 2^63; larger ones are absent (and would wrap in the BigUint64Array).
      if (id < ID_LIMIT) wide[count++] = id;
    }
    try {
      return await this.#serial(() => nat.remove(wide.subarray(0, count)));
    } catch (e) {
      throw wrapIndexError(e);
    }
  }

  /**
   * Whether a vector with this id is in the index. After a mmap load without
   * verify, the first has / add / remove reads the id column and throws
   * IndexFileError ('EBADINDEX') if the file stores an id twice.
   */
  has(id: number | bigint): boolean {
    const nat = this.#open();
    if (typeof id === 'number' ? !(Number.isInteger(id) && id >= 0) : typeof id !== 'bigint' || id < 0n) return false;
    try {
      return nat.contains(BigInt(id));
    } catch (e) {
      throw wrapIndexError(e);
    }
  }

  /**
   * Re-packs the clusters contiguously (sorted by distance to their centroid),
   * releasing removed vectors' space. After a mmap load it copies everything
   * out of the file and unmaps it, checking the checksums first (as verify()
   * does; IndexFileError on a mismatch, the index unchanged).
   */
  async compact(): Promise<void> {
    try {
      const nat = this.#open();
      await this.#serial(() => nat.compact());
    } catch (e) {
      // After a mmap load compact() first checks the checksums verify() would.
      throw wrapIndexError(e);
    }
  }

  #checkSearch(options: SearchOptions): {
    k: number;
    nprobe: number;
    rerank: boolean;
    epsilon: number;
    bitplane: boolean;
    filterKind: NativeFilterKind;
    filter: NativeFilterArray;
  } {
    const { k, nprobe } = checkKAndNprobe(options, this.numClusters);
    const rerank = options.rerank ?? this.storeVectors;
    if (rerank === true && !this.storeVectors) {
      throw new RangeError('options.rerank needs the raw vectors, and this index was built with storeVectors: false');
    }
    if (typeof rerank !== 'boolean')
      throw new TypeError(`options.rerank must be a boolean, got ${describeValue(rerank)}`);
    const epsilon = options.epsilon ?? 1.9;
    if (typeof epsilon !== 'number' || !(epsilon >= 0) || !Number.isFinite(epsilon)) {
      throw new RangeError(`options.epsilon must be a finite number >= 0, got ${describeValue(epsilon)}`);
    }
    let filterKind: NativeFilterKind = 0;
    let filter: NativeFilterArray = null;
    const f = options.filter;
    if (f !== undefined) {
      if (f instanceof Uint8Array) {
        filterKind = 1;
        filter = unshared(f);
      } else if (f instanceof Uint32Array) {
        filterKind = 2;
        filter = isAscending(f) ? unshared(f) : f.slice().sort();
      } else if (f instanceof BigUint64Array) {
        filterKind = 3;
        filter = isAscending(f) ? unshared(f) : f.slice().sort();
      } else {
        throw new TypeError(
          `options.filter must be a Uint32Array or BigUint64Array of ids, or a Uint8Array bitset, got ${describeValue(f)}`,
        );
      }
    }
    return { k, nprobe, rerank, epsilon, bitplane: options.bitplane === true, filterKind, filter };
  }

  #newIds(n: number): Ids {
    return (this.idType === 'u64' ? new BigInt64Array(n) : new Int32Array(n)) as Ids;
  }

  /** One query, synchronously on the calling thread: the lowest-latency path. */
  search(query: Float32Array, options: SearchOptions): SearchResult<Ids> {
    const p = this.#checkSearch(options);
    checkQueries('query', query, this.dim, true);
    const k = p.k;
    let out = this.#searchOut;
    if (out === null || out.distances.length < k) {
      out = { ids: this.#newIds(k), distances: new Float32Array(k), stats: new Float64Array(STATS_FIELDS) };
      this.#searchOut = out;
    }
    const stats = options.stats ? out.stats : null;
    this.#open().search(
      unshared(query),
      k,
      p.nprobe,
      p.rerank,
      p.epsilon,
      p.bitplane,
      out.ids,
      out.distances,
      stats,
      p.filterKind,
      p.filter,
    );
    const ids = out.ids.slice(0, k) as Ids;
    const distances = out.distances.slice(0, k);
    return stats ? { ids, distances, stats: statsFrom(stats) } : { ids, distances };
  }

  /**
   * Many queries (row-major, nq x dim) on the native pool. Resolves with
   * nq*k ids and distances. `queries` and the filter are copied when called.
   */
  async searchBatch(queries: Float32Array, options: BatchSearchOptions): Promise<BatchSearchResult<Ids>> {
    const p = this.#checkSearch(options);
    const nq = checkQueries('queries', queries, this.dim, false);
    const threads = options.threads ?? 0;
    if (options.threads !== undefined) assertIntInRange('options.threads', options.threads, 1, 1024);
    const ids = this.#newIds(nq * p.k);
    const distances = new Float32Array(nq * p.k);
    const stats = options.stats ? new Float64Array(STATS_FIELDS * (1 + nq)) : null;
    const { filterKind, filter, ...params } = p;
    await this.#open().searchBatch(
      unshared(queries),
      { ...params, threads },
      ids,
      distances,
      stats,
      filterKind,
      filter,
    );
    if (!stats) return { ids, distances };
    const perQueryStats: SearchStats[] = [];
    for (let q = 0; q < nq; q++) perQueryStats.push(statsFrom(stats, STATS_FIELDS * (1 + q)));
    return { ids, distances, stats: statsFrom(stats), perQueryStats };
  }

  /**
   * A micro-batcher in front of this index: concurrent single-query
   * searches are grouped and run through searchBatch (see src/batcher.ts).
   */
  batcher(options: BatcherOptions = {}): Batcher<Ids> {
    this.#open();
    return createBatcher<Ids>(this, options);
  }

  /**
   * RaBitQ distance estimates for every vector and the half-width of their
   * error bound at epsilon = 1 (indexed by id, so the ids must be 0..size-1:
   * RangeError otherwise). For tests and diagnostics.
   */
  estimateAll(
    query: Float32Array,
    options: { bitplane?: boolean } = {},
  ): { estimates: Float32Array; bounds: Float32Array } {
    checkQueries('query', query, this.dim, true);
    const estimates = new Float32Array(this.size);
    const bounds = new Float32Array(this.size);
    this.#open().estimateAll(unshared(query), estimates, bounds, options.bitplane === true);
    return { estimates, bounds };
  }

  /** Bytes held by each part of the index. */
  memoryUsage(): MemoryUsage {
    return this.#open().info().memory;
  }

  /** Wall time of the build phases, in milliseconds (encodeMs includes the multi-bit codes), and the bits. */
  buildStats(): { trainMs: number; assignMs: number; encodeMs: number; bits: number } {
    const info = this.#open().info();
    return { ...info.timings, bits: info.bits };
  }

  /** A copy of the k-means centroids (numClusters x dim). */
  centroids(): Float32Array {
    return this.#open().centroids();
  }
}
