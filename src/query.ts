/**
 * Checks shared by every search entry point (index.search, searchBatch and
 * the batcher): one place for the checks and their messages.
 */
import { assertFloat32Array, assertIntInRange, describeValue } from './errors.js';

/** Int32Array for indexes with 32-bit ids (the default), BigInt64Array for 64-bit ids. */
export type IdArray = Int32Array | BigInt64Array;

/** Largest k of a search. */
export const MAX_K = 1 << 20;

export function checkOptionsObject(name: string, v: unknown): asserts v is object {
  if (typeof v !== 'object' || v === null) throw new TypeError(`${name} must be an object, got ${describeValue(v)}`);
}

/**
 * Checks `options` is an object with an integer k in 1..MAX_K and nprobe >= 1;
 * returns them, nprobe clamped to `numClusters` (when known).
 */
export function checkKAndNprobe(options: unknown, numClusters: number | undefined): { k: number; nprobe: number } {
  checkOptionsObject('options', options);
  const o = options as { k?: unknown; nprobe?: unknown };
  assertIntInRange('options.k', o.k, 1, MAX_K);
  assertIntInRange('options.nprobe', o.nprobe, 1);
  return { k: o.k, nprobe: numClusters === undefined ? o.nprobe : Math.min(o.nprobe, numClusters) };
}

/**
 * Largest magnitude of a vector's or a query's component: with |x| <= 1e15
 * every squared distance over up to 65,536 dimensions fits a float (the
 * native MetricSpace kMaxAbsComponent). build and add refuse larger values
 * natively, with the same message.
 */
export const MAX_ABS_COMPONENT = 1e15;

/**
 * Checks query rows: a Float32Array of exactly `dim` finite numbers of
 * magnitude <= MAX_ABS_COMPONENT (`single`) or a positive multiple of `dim`.
 * Returns the number of rows.
 */
export function checkQueries(name: string, q: unknown, dim: number, single: boolean): number {
  assertFloat32Array(name, q);
  if (single ? q.length !== dim : q.length === 0 || q.length % dim !== 0) {
    throw new RangeError(
      single
        ? `${name} must have length dim (${dim}), got ${q.length}`
        : `${name}.length (${q.length}) must be a positive multiple of dim (${dim})`,
    );
  }
  for (let i = 0; i < q.length; i++) {
    const x = q[i]!;
    // x - x is NaN exactly when x is NaN or infinite; one comparison covers both.
    if (!(x - x === 0 && x <= MAX_ABS_COMPONENT && x >= -MAX_ABS_COMPONENT)) {
      const row = Math.floor(i / dim);
      const at = `${single ? '' : `row ${row}, `}column ${i - row * dim}`;
      throw new RangeError(
        x - x !== 0
          ? `${name} must contain only finite numbers, found ${x} at ${at}`
          : `${name} must hold numbers of magnitude at most 1e15 (squared distances must fit a float), found ${x} at ${at}`,
      );
    }
  }
  return q.length / dim;
}
