/** Small numeric helpers used by the benchmark runner. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum / values.length;
}

/**
 * Percentile with the nearest-rank definition (p in [0, 100]): the smallest
 * value such that at least p% of the samples are <= it.
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  const n = values.length;
  if (n === 0) return NaN;
  const s = Float64Array.from(values as ArrayLike<number>).sort();
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
  return s[rank - 1]!;
}

/** Nanosecond wall clock as a number (safe for intervals far below 2^53 ns). */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** Round to a fixed number of significant digits (for JSON readability). */
export function roundSig(x: number, digits = 6): number {
  if (!Number.isFinite(x) || x === 0) return x;
  return Number(x.toPrecision(digits));
}
