/**
 * Is the ground truth in the benchmark's metric? A ground truth computed with
 * L2 scores a cosine index (and its peers) against the wrong neighbours, and
 * nothing else would notice. A few sampled queries are searched exactly, in
 * float64, and their top ids compared with the file's.
 */
import { InputError } from '../cli/errors.js';
import type { LoadedDataset } from './dataset.js';
import type { BenchMetric } from './types.js';

/** Queries sampled (evenly over the query set). */
const SAMPLE = 10;
/** Below this mean overlap of the top ids the ground truth is refused (ties at the k-th place lose a little). */
const MIN_AGREEMENT = 0.8;

function exactTop(
  metric: BenchMetric,
  base: Float32Array,
  baseNorms: Float64Array,
  query: Float32Array,
  dim: number,
  k: number,
): number[] {
  const n = base.length / dim;
  let qNorm = 0;
  for (let j = 0; j < dim; j++) qNorm += query[j]! * query[j]!;
  // the k best so far, best first (k is at most 10: insertion is cheapest)
  const topIds: number[] = [];
  const topScores: number[] = [];
  for (let i = 0; i < n; i++) {
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += base[i * dim + j]! * query[j]!;
    // smaller is better
    const score =
      metric === 'l2'
        ? baseNorms[i]! + qNorm - 2 * dot
        : metric === 'ip'
          ? -dot
          : -(dot / Math.sqrt(Math.max(baseNorms[i]! * qNorm, Number.MIN_VALUE)));
    if (topIds.length === k && score >= topScores[k - 1]!) continue;
    let at = topIds.length;
    while (at > 0 && topScores[at - 1]! > score) at--;
    topIds.splice(at, 0, i);
    topScores.splice(at, 0, score);
    if (topIds.length > k) {
      topIds.pop();
      topScores.pop();
    }
  }
  return topIds;
}

export interface GroundTruthAgreement {
  metric: BenchMetric;
  /** mean overlap of the file's top-k with the exact top-k in `metric` */
  agreement: number;
  /** the same for l2 when metric is not l2 (what a wrong ground truth usually is) */
  l2Agreement: number | null;
  queries: number;
  k: number;
}

/** Measures the agreement and throws InputError when it is too low to trust the recall figures. */
export function checkGroundTruthMetric(dataset: LoadedDataset, metric: BenchMetric): GroundTruthAgreement {
  const { dim, base, queries, groundTruth: gt } = dataset;
  const k = Math.min(10, gt.dim, base.count);
  const nq = queries.count;
  const sample = Math.min(SAMPLE, nq);
  const norms = new Float64Array(base.count);
  for (let i = 0; i < base.count; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += base.data[i * dim + j]! * base.data[i * dim + j]!;
    norms[i] = s;
  }
  const agree = (m: BenchMetric): number => {
    let hits = 0;
    for (let s = 0; s < sample; s++) {
      const q = Math.floor((s * nq) / sample);
      const exact = new Set(exactTop(m, base.data, norms, queries.data.subarray(q * dim, (q + 1) * dim), dim, k));
      for (let j = 0; j < k; j++) if (exact.has(gt.data[q * gt.dim + j]!)) hits++;
    }
    return hits / (sample * k);
  };
  const agreement = agree(metric);
  const l2Agreement = metric === 'l2' ? null : agree('l2');
  if (agreement < MIN_AGREEMENT) {
    throw new InputError(
      `the ground truth ${dataset.paths.groundTruth} is not in the ${metric} metric: its top-${k} match the exact ${metric} ` +
        `neighbours for ${(agreement * 100).toFixed(0)}% of the ids on ${sample} sampled queries` +
        (l2Agreement !== null ? ` (the l2 neighbours: ${(l2Agreement * 100).toFixed(0)}%)` : '') +
        `; compute one with rabitq groundtruth --metric ${metric}`,
    );
  }
  return { metric, agreement, l2Agreement, queries: sample, k };
}
