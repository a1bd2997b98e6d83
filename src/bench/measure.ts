/** Timing loops and recall bookkeeping shared by rabitq and the in-process peers. */
import { recallAtK } from '../recall.js';
import { median, nowNs, percentile, roundSig } from './stats.js';
import type { IntVectors, SearchStatsLike, SweepPoint } from './types.js';

export interface Timing {
  qpsRuns: number[];
  meanLatencyUs: number | null;
  p99LatencyUs: number | null;
}

/**
 * Time `runs` runs (after `warmup` untimed passes over the queries) of one
 * query at a time. A run is one pass over the queries, repeated until it has
 * lasted at least `minRunMs` (small query sets would otherwise be timed over
 * a millisecond or two). Latency statistics are per run; the median over
 * runs is reported.
 */
export function timeSingle(
  nq: number,
  runs: number,
  warmup: number,
  searchOne: (qi: number) => void,
  minRunMs = 0,
): Timing {
  for (let w = 0; w < warmup; w++) for (let q = 0; q < nq; q++) searchOne(q);
  const minNs = minRunMs * 1e6;
  let lat = new Float64Array(nq);
  const qpsRuns: number[] = [];
  const means: number[] = [];
  const p99s: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = nowNs();
    let prev = start;
    let count = 0;
    do {
      if (lat.length < count + nq) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      for (let q = 0; q < nq; q++) {
        searchOne(q);
        const t = nowNs();
        lat[count++] = t - prev;
        prev = t;
      }
    } while (prev - start < minNs);
    const totalNs = prev - start;
    qpsRuns.push(count / (Math.max(totalNs, 1) / 1e9));
    means.push(totalNs / count / 1e3);
    p99s.push(percentile(lat.subarray(0, count), 99) / 1e3);
  }
  return { qpsRuns, meanLatencyUs: median(means), p99LatencyUs: median(p99s) };
}

/**
 * Time `runs` batched runs over all queries (after `warmup` untimed ones);
 * a run repeats the batch until it has lasted at least `minRunMs`.
 */
export async function timeBatch(
  nq: number,
  runs: number,
  warmup: number,
  searchAll: () => Promise<unknown>,
  minRunMs = 0,
): Promise<Timing> {
  for (let w = 0; w < warmup; w++) await searchAll();
  const minNs = minRunMs * 1e6;
  const qpsRuns: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = nowNs();
    let passes = 0;
    let now = start;
    do {
      await searchAll();
      passes++;
      now = nowNs();
    } while (now - start < minNs);
    qpsRuns.push((passes * nq) / (Math.max(now - start, 1) / 1e9));
  }
  return { qpsRuns, meanLatencyUs: null, p99LatencyUs: null };
}

/** Whether recall@100 needs an extra (untimed) search with k = 100. */
export function needsK100Pass(k: number, gtColumns: number): boolean {
  return k < 100 && gtColumns >= 100;
}

export interface Recalls {
  recall1: number | null;
  recall10: number | null;
  recall100: number | null;
}

/**
 * recall@1/@10/@100 from results with `k` ids per query, and optionally
 * results of a k = 100 pass. A recall is null when k or the ground truth is
 * too narrow to compute it.
 */
export function computeRecalls(gt: IntVectors, idsK: Int32Array, k: number, ids100: Int32Array | null): Recalls {
  const at = (n: number): number | null => {
    if (gt.dim < n) return null;
    if (k >= n) return recallAtK(idsK, gt, n, k);
    if (n === 100 && ids100) return recallAtK(ids100, gt, 100, 100);
    return null;
  };
  return { recall1: at(1), recall10: at(10), recall100: at(100) };
}

export function makePoint(
  param: string,
  value: number,
  recalls: Recalls,
  timing: Timing,
  stats: SearchStatsLike | null,
): SweepPoint {
  const perQuery = (x: number | undefined): number | null =>
    stats && stats.queries > 0 && x !== undefined ? roundSig(x / stats.queries) : null;
  return {
    param,
    value,
    recall1: recalls.recall1,
    recall10: recalls.recall10,
    recall100: recalls.recall100,
    qps: roundSig(median(timing.qpsRuns)),
    qpsRuns: timing.qpsRuns.map((q) => roundSig(q)),
    meanLatencyUs: timing.meanLatencyUs === null ? null : roundSig(timing.meanLatencyUs),
    p99LatencyUs: timing.p99LatencyUs === null ? null : roundSig(timing.p99LatencyUs),
    clustersProbedPerQuery: perQuery(stats?.clustersProbed),
    codesScannedPerQuery: perQuery(stats?.codesScanned),
    rerankedPerQuery: perQuery(stats?.reranked),
    ...(stats?.exEstimated !== undefined ? { exEstimatedPerQuery: perQuery(stats.exEstimated) } : {}),
  };
}
