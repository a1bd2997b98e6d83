/** Exact k-NN (brute force on the SIMD kernels and the native pool): the ground truth. */
import { native } from './native.js';
import { assertFloat32Array, assertIntInRange, describeValue, unshared } from './errors.js';

export interface KnnResult {
  ids: Int32Array;
  distances: Float32Array;
}

function checkFinite(name: string, a: Float32Array, dim: number): void {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (x - x !== 0) {
      const row = Math.floor(i / dim);
      throw new RangeError(
        `${name} must contain only finite numbers, found ${x} at row ${row}, column ${i - row * dim}`,
      );
    }
  }
}

/**
 * The k nearest base rows (squared L2) of every query row, sorted by distance
 * then id; slots beyond the base size are id -1 / Infinity. Runs on the
 * native pool on copies of the inputs made when called (memory: one more
 * copy of base while it runs), so they may be reused at once.
 */
export async function exactKnn(
  base: Float32Array,
  queries: Float32Array,
  options: { dim: number; k: number; threads?: number },
): Promise<KnnResult> {
  assertFloat32Array('base', base);
  assertFloat32Array('queries', queries);
  if (typeof options !== 'object' || options === null)
    throw new TypeError(`options must be an object, got ${describeValue(options)}`);
  assertIntInRange('options.dim', options.dim, 1, 65536);
  assertIntInRange('options.k', options.k, 1, 1 << 20);
  const threads = options.threads ?? 0;
  if (options.threads !== undefined) assertIntInRange('options.threads', options.threads, 1, 1024);
  const { dim, k } = options;
  if (base.length === 0 || base.length % dim !== 0)
    throw new RangeError(`base.length (${base.length}) must be a positive multiple of dim (${dim})`);
  if (queries.length === 0 || queries.length % dim !== 0)
    throw new RangeError(`queries.length (${queries.length}) must be a positive multiple of dim (${dim})`);
  checkFinite('base', base, dim);
  checkFinite('queries', queries, dim);
  const nq = queries.length / dim;
  const ids = new Int32Array(nq * k);
  const distances = new Float32Array(nq * k);
  await native.exactKnn(unshared(base), unshared(queries), dim, k, threads, ids, distances);
  return { ids, distances };
}
