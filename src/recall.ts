/** Recall against ground truth. */
import { assertInt32Array, assertIntInRange, describeValue } from './errors.js';

/**
 * Mean over queries of |top-k results ∩ top-k ground truth| / k.
 * `resultIds` holds one row of `resultStride` ids per query (default k; a
 * larger stride lets recall@10 be read from top-100 results). The ground
 * truth rows may be wider than k (recall@k vs gt@k' for k <= k').
 */
export function recallAtK(
  resultIds: Int32Array,
  groundTruth: { dim: number; count: number; data: Int32Array },
  k: number,
  resultStride: number = k,
): number {
  assertInt32Array('resultIds', resultIds);
  if (typeof groundTruth !== 'object' || groundTruth === null)
    throw new TypeError(`groundTruth must be an object, got ${describeValue(groundTruth)}`);
  assertInt32Array('groundTruth.data', groundTruth.data);
  assertIntInRange('k', k, 1);
  assertIntInRange('resultStride', resultStride, k);
  if (k > groundTruth.dim) throw new RangeError(`k (${k}) exceeds the ground truth's ${groundTruth.dim} columns`);
  if (resultIds.length % resultStride !== 0)
    throw new RangeError(`resultIds.length (${resultIds.length}) is not a multiple of resultStride (${resultStride})`);
  const nq = resultIds.length / resultStride;
  if (nq > groundTruth.count)
    throw new RangeError(`resultIds has ${nq} rows but groundTruth only ${groundTruth.count}`);
  if (nq === 0) return 0;
  let hits = 0;
  const truth = new Set<number>();
  for (let q = 0; q < nq; q++) {
    truth.clear();
    for (let j = 0; j < k; j++) truth.add(groundTruth.data[q * groundTruth.dim + j]!);
    for (let j = 0; j < k; j++) if (truth.has(resultIds[q * resultStride + j]!)) hits++;
  }
  return hits / (nq * k);
}
