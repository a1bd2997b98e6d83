/**
 * hnswlib-node peer: HNSW graph (M, efConstruction 200) built and searched on
 * one thread, one query at a time, sweeping efSearch.
 */
import { PeerUnavailable, type PeerContext } from '../peer_context.js';
import { errorLine } from '../../cli/errors.js';
import { computeRecalls, makePoint, needsK100Pass, timeSingle } from '../measure.js';
import { nowNs, roundSig } from '../stats.js';
import type { MethodResult, SweepPoint } from '../types.js';

interface HnswIndex {
  initIndex(maxElements: number, m?: number, efConstruction?: number, randomSeed?: number): void;
  addPoint(point: number[], label: number): void;
  searchKnn(query: number[], k: number): { distances: number[]; neighbors: number[] };
  setEf(ef: number): void;
  getCurrentCount(): number;
}

interface HnswModule {
  HierarchicalNSW: new (space: 'l2' | 'ip' | 'cosine', dim: number) => HnswIndex;
}

export const EF_CONSTRUCTION = 200;

/** Load hnswlib-node, or throw PeerUnavailable with the reason. */
export async function loadHnswlib(): Promise<{ mod: HnswModule; version: string }> {
  let ns: unknown;
  try {
    ns = await import('hnswlib-node');
  } catch (err) {
    throw new PeerUnavailable(`hnswlib-node is not usable here (${errorLine(err)})`);
  }
  const mod = ((ns as { default?: unknown }).default ?? ns) as Partial<HnswModule>;
  if (typeof mod.HierarchicalNSW !== 'function') {
    throw new PeerUnavailable('hnswlib-node does not export HierarchicalNSW');
  }
  let version = 'unknown';
  try {
    const { createRequire } = await import('node:module');
    const req = createRequire(import.meta.url);
    version = (req('hnswlib-node/package.json') as { version?: string }).version ?? version;
  } catch {
    /* version is informative only */
  }
  return { mod: mod as HnswModule, version };
}

/**
 * Estimated bytes per vector of an hnswlib L2 index: the level-0 record
 * (vector, 2M links + count, 8-byte label), the expected upper-level link
 * lists (1/(M-1) levels of M links + count per element) and per-element
 * bookkeeping (level pointer, lock).
 */
export function hnswBytesPerVector(dim: number, m: number): number {
  const level0 = dim * 4 + (2 * m + 1) * 4 + 8;
  const upper = ((m + 1) * 4) / (m - 1);
  const overhead = 8 + 4 + 1;
  return level0 + upper + overhead;
}

export function defaultEfSweep(k: number): number[] {
  const ladder = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];
  const out = ladder.filter((e) => e >= k);
  if (!out.includes(k)) out.unshift(k);
  return out;
}

export async function benchHnswlib(ctx: PeerContext): Promise<{ methods: MethodResult[]; version: string }> {
  if (!ctx.modes.includes('single')) throw new PeerUnavailable('hnswlib runs single queries only (add --mode single)');
  const { mod, version } = await loadHnswlib();
  const { dataset, k, runs, warmup } = ctx;
  const dim = dataset.dim;
  const n = dataset.base.count;
  const m = ctx.hnswM;
  const t0 = nowNs();
  // hnswlib's cosine space normalizes the vectors it stores and the queries.
  const index = new mod.HierarchicalNSW(ctx.metric, dim);
  index.initIndex(n, m, EF_CONSTRUCTION, ctx.seed);
  const base = dataset.base.data;
  const logEvery = Math.max(1, Math.floor(n / 10));
  for (let i = 0; i < n; i++) {
    index.addPoint(Array.from(base.subarray(i * dim, (i + 1) * dim)), i);
    if (n >= 100000 && (i + 1) % logEvery === 0) ctx.log(`  hnswlib build ${Math.round(((i + 1) / n) * 100)}%`);
  }
  const buildSeconds = (nowNs() - t0) / 1e9;

  const nq = dataset.queries.count;
  // Queries are converted to plain arrays once, outside the timed loops.
  const queries: number[][] = [];
  for (let i = 0; i < nq; i++) queries.push(Array.from(dataset.queries.data.subarray(i * dim, (i + 1) * dim)));
  const gt = dataset.groundTruth;
  const collect = (kk: number): Int32Array => {
    const ids = new Int32Array(nq * kk).fill(-1);
    for (let i = 0; i < nq; i++) {
      const r = index.searchKnn(queries[i]!, Math.min(kk, n));
      // hnswlib returns neighbours farthest-first in some versions: sort by distance.
      const order = r.neighbors.map((_, j) => j).sort((a, b) => r.distances[a]! - r.distances[b]!);
      for (let j = 0; j < order.length && j < kk; j++) ids[i * kk + j] = r.neighbors[order[j]!]!;
    }
    return ids;
  };
  const efs = ctx.efSearch.length ? ctx.efSearch : defaultEfSweep(k);
  const points: SweepPoint[] = [];
  for (const ef of efs) {
    index.setEf(Math.max(ef, k));
    const ids = collect(k);
    let ids100: Int32Array | null = null;
    if (needsK100Pass(k, gt.dim)) {
      index.setEf(Math.max(ef, 100));
      ids100 = collect(100);
      index.setEf(Math.max(ef, k));
    }
    const recalls = computeRecalls(gt, ids, k, ids100);
    const kk = Math.min(k, n);
    const timing = timeSingle(
      nq,
      runs,
      warmup,
      (i) => {
        index.searchKnn(queries[i]!, kk);
      },
      ctx.minRunMs,
    );
    const point = makePoint('efSearch', ef, recalls, timing, null);
    points.push(point);
    ctx.log(`  efSearch=${ef}: recall@10 ${point.recall10?.toFixed(4) ?? 'n/a'}, ${point.qps.toFixed(0)} QPS`);
  }
  return {
    version,
    methods: [
      {
        method: 'hnswlib',
        label: `hnswlib M=${m} (single)`,
        peer: 'hnswlib',
        mode: 'single',
        threads: 1,
        status: 'ok',
        buildSeconds: roundSig(buildSeconds),
        bytesPerVector: roundSig(hnswBytesPerVector(dim, m)),
        notes: `hnswlib-node ${version}, space ${ctx.metric}, M=${m}, efConstruction=${EF_CONSTRUCTION}, built and searched on one thread; bytes/vector is an estimate from the graph layout; the k=100 recall pass uses efSearch >= 100`,
        points,
      },
    ],
  };
}
