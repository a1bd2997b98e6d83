/**
 * rabitq: approximate nearest-neighbour search for Node.js (IVF + RaBitQ).
 */
import { native, type SimdLevelName } from './native.js';

export { IvfRabitqIndex, MAX_DENSE_ROTATION_DIM } from './ivf_index.js';
export { MAX_ABS_COMPONENT } from './query.js';
export type {
  BuildOptions,
  BuildProgress,
  BuildPhase,
  SearchOptions,
  BatchSearchOptions,
  SearchResult,
  BatchSearchResult,
  SearchStats,
  MemoryUsage,
  LoadOptions,
  Metric,
  IdArray,
} from './ivf_index.js';
export { exactKnn } from './knn.js';
export type { KnnResult } from './knn.js';
export { recallAtK } from './recall.js';
export {
  readFvecs,
  readIvecs,
  readBvecs,
  writeFvecs,
  writeIvecs,
  writeBvecs,
  readFvecsSync,
  readIvecsSync,
  readBvecsSync,
  writeFvecsSync,
  writeIvecsSync,
  writeBvecsSync,
  inspectVectorFile,
} from './io.js';
export type { VectorFile, ReadOptions } from './io.js';
export { RabitqError, VectorFileError, IndexFileError } from './errors.js';
export { createBatcher, QueueFullError, TimeoutError, BatcherClosedError } from './batcher.js';
export type {
  Batcher,
  BatcherOptions,
  BatcherSearchOptions,
  BatcherResult,
  BatcherStats,
  BatcherRejections,
  BatchableIndex,
} from './batcher.js';
export type { SimdLevelName };

/** The SIMD level in use: 'scalar', 'avx2' or 'avx512' (RABITQ_SIMD forces a lower one). */
export function simdLevel(): SimdLevelName {
  return native.simdLevel();
}

/** Worker threads in the native pool and CPUs this process may run on. */
export function threadPoolInfo(): { threads: number; affinityCpus: number } {
  return native.poolInfo();
}
