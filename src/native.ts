/**
 * Loads the compiled addon and describes its raw surface. node-gyp-build
 * picks, in this order: build/Release/rabitq.node (a local `node-gyp` build,
 * e.g. the install-time compile), then build/Debug, then the prebuild in
 * prebuilds/<platform>-<arch>/ matching this Node; RABITQ_PREBUILD=<dir>
 * makes it look in <dir> instead of the package root.
 *
 * The addon checks the type and length of every argument (a TypeError or
 * RangeError, never an out-of-bounds access), but not its meaning: the
 * public API (ivf_index.ts, knn.ts) validates values and gives the messages
 * users see. The kernel test hooks live in a separate test-only addon
 * (bench/native_testing.ts), not here.
 *
 * worker_threads: each thread that imports the package loads its own
 * instance of the addon (per-environment state in C++, freed when the thread
 * ends), so indexes are per thread and cannot be passed between threads.
 * Shared by all threads of the process: the native thread pool
 * (`poolInfo()`) and the SIMD level (`setSimdLevel()` changes it for all).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { RabitqError } from './errors.js';

/** Bytes by part. `mapped`: how many of them live in a file mapping (load with mmap: true). */
export interface NativeMemoryUsage {
  codes: number;
  factors: number;
  /** Extra bits of multi-bit codes and their factors (0 at bits 1). */
  exCodes: number;
  ids: number;
  vectors: number;
  centroids: number;
  other: number;
  total: number;
  mapped: number;
}

export interface NativeInfo {
  dim: number;
  paddedDim: number;
  size: number;
  numClusters: number;
  metric: 'l2' | 'cosine' | 'ip';
  idType: 'u32' | 'u64';
  storeVectors: boolean;
  bits: number;
  rotation: 'fht' | 'dense';
  memory: NativeMemoryUsage;
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
    query: Float32Array,
    k: number,
    nprobe: number,
    rerank: boolean,
    epsilon: number,
    bitplane: boolean,
    ids: Int32Array | BigInt64Array,
    dists: Float32Array,
    stats: Float64Array | null,
    filterKind: NativeFilterKind,
    filter: NativeFilterArray,
  ): void;
  searchBatch(
    queries: Float32Array,
    params: NativeSearchParams,
    ids: Int32Array | BigInt64Array,
    dists: Float32Array,
    stats: Float64Array | null,
    filterKind: NativeFilterKind,
    filter: NativeFilterArray,
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
  /** Drops this object's share of the index (calls in flight keep theirs); later calls throw code 'ECLOSED'. */
  close(): void;
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
  bits: number;
  ids: Uint32Array | BigUint64Array | undefined;
}

export type SimdLevelName = 'scalar' | 'avx2' | 'avx512' | 'neon';

export interface NativeAddon {
  simdLevel(): SimdLevelName;
  detectedLevel(): SimdLevelName;
  setSimdLevel(level: SimdLevelName): void;
  poolInfo(): { threads: number; affinityCpus: number };
  exactKnn(
    base: Float32Array,
    queries: Float32Array,
    dim: number,
    k: number,
    threads: number,
    ids: Int32Array,
    dists: Float32Array,
  ): Promise<void>;
  buildIndex(
    vectors: Float32Array,
    params: NativeBuildParams,
    onProgress?: (p: { phase: 'train' | 'assign' | 'encode'; done: number; total: number }) => void,
  ): Promise<NativeIndex>;
  loadIndex(path: string, mmap: boolean, verify: boolean): Promise<NativeIndex>;
  indexFromBuffer(bytes: Uint8Array): Promise<NativeIndex>;
}

const require = createRequire(import.meta.url);
// src/native.ts is one level below the package root, dist/src/native.js two.
const packageRoot = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '..' : '.',
);

/**
 * Why a 64-bit little-endian ELF file cannot be whole (its section headers or
 * a loadable segment end past the end of the file), or null. Other formats
 * and classes are left to the system loader.
 */
function truncatedElf(file: string): string | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const h = Buffer.alloc(64);
    if (readSync(fd, h, 0, 64, 0) < 64 || h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return null;
    const phoff = Number(h.readBigUInt64LE(32));
    const shoff = Number(h.readBigUInt64LE(40));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    let need = Math.max(shoff + h.readUInt16LE(58) * h.readUInt16LE(60), phoff + phentsize * phnum);
    if (need <= size && phentsize >= 56) {
      const ph = Buffer.alloc(phentsize * phnum);
      readSync(fd, ph, 0, ph.length, phoff);
      for (let i = 0; i < phnum; i++) {
        if (ph.readUInt32LE(i * phentsize) !== 1) continue; // PT_LOAD
        need = Math.max(need, Number(ph.readBigUInt64LE(i * phentsize + 8) + ph.readBigUInt64LE(i * phentsize + 32)));
      }
    }
    return need > size ? `truncated or damaged shared object (${size} bytes; its headers need ${need})` : null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Finds and loads the addon under `dir` (build/Release, else the prebuild for
 * this platform), turning a failure (no matching build, a prebuild for
 * another platform, a damaged .node file) into a RabitqError (code
 * 'EADDONLOAD') that names the file, the platform this process needs and the
 * way to build from source, with the loader's own error as `cause`.
 */
export function loadAddonFrom(dir: string): NativeAddon {
  const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
  let file: string | undefined;
  try {
    file = nodeGypBuild.resolve(dir);
    // dlopen of a truncated ELF file maps pages past its end and dies of SIGBUS: check first.
    const truncated = truncatedElf(file);
    if (truncated !== null) throw Object.assign(new Error(`${file}: ${truncated}`), { code: 'ERR_DLOPEN_FAILED' });
    return require(file) as NativeAddon;
  } catch (err) {
    // Errors from the addon's own initialisation (a bad RABITQ_SIMD) pass through.
    if (file !== undefined && (err as { code?: unknown }).code !== 'ERR_DLOPEN_FAILED') throw err;
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    const libc = process.platform !== 'linux' ? '' : report?.header?.glibcVersionRuntime ? ', glibc' : ', musl';
    const platform = `${process.platform}-${process.arch}${libc}, Node-API (Node ${process.versions.node})`;
    const what =
      file === undefined
        ? `no native addon under ${dir} matches this platform`
        : `could not load the native addon ${file}`;
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new RabitqError(
      'EADDONLOAD',
      `rabitq: ${what} (expected a build for ${platform}): ${reason}. ` +
        `To build it from source (needs python3, make and a C++17 compiler): ` +
        `npm rebuild rabitq --build-from-source, or run npx node-gyp rebuild in ${dir}`,
      { cause: err },
    );
  }
}

export const native: NativeAddon = loadAddonFrom(packageRoot);
