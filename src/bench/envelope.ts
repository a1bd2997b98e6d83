/**
 * Recall/QPS curve helpers: the monotone upper envelope of a set of
 * (recall, qps) operating points and QPS interpolation at a target recall.
 */

export interface CurvePoint {
  recall: number;
  qps: number;
}

const EPS = 1e-12;

/**
 * Pareto frontier of the points: sorted by increasing recall, with strictly
 * decreasing QPS. A point is dropped when another point has at least the same
 * recall and at least the same QPS. Points with non-finite values are ignored.
 */
export function upperEnvelope(points: readonly CurvePoint[]): CurvePoint[] {
  const valid = points.filter((p) => Number.isFinite(p.recall) && Number.isFinite(p.qps) && p.qps > 0);
  // Highest recall first; for equal recall, highest QPS first.
  const sorted = [...valid].sort((a, b) => b.recall - a.recall || b.qps - a.qps);
  const kept: CurvePoint[] = [];
  let bestQps = -Infinity;
  for (const p of sorted) {
    if (p.qps > bestQps) {
      kept.push({ recall: p.recall, qps: p.qps });
      bestQps = p.qps;
    }
  }
  return kept.reverse();
}

/**
 * QPS achievable at recall `target`, read off the upper envelope.
 *
 * - target above every point's recall: null (never reached);
 * - a point at exactly the target: its QPS;
 * - target between two envelope points: linear interpolation in recall;
 * - target below every point: the QPS of the lowest-recall envelope point
 *   (the fastest configuration that already reaches the target).
 */
export function qpsAtRecall(points: readonly CurvePoint[], target: number): number | null {
  const env = upperEnvelope(points);
  if (env.length === 0) return null;
  const last = env[env.length - 1]!;
  if (last.recall < target - EPS) return null;
  for (let i = 0; i < env.length; i++) {
    const p = env[i]!;
    if (Math.abs(p.recall - target) <= EPS) return p.qps;
    if (p.recall > target) {
      if (i === 0) return p.qps;
      const a = env[i - 1]!;
      const t = (target - a.recall) / (p.recall - a.recall);
      return a.qps + t * (p.qps - a.qps);
    }
  }
  return last.qps;
}
