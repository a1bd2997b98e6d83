import { existsSync } from 'node:fs';
/** Building and measuring our own IVF + RaBitQ index. */
import { InputError } from '../cli/errors.js';
import { computeRecalls, makePoint, needsK100Pass, timeBatch, timeSingle } from './measure.js';
import { nowNs, roundSig } from './stats.js';
import type { LoadedDataset } from './dataset.js';
import type {
  BenchMetric,
  BuildProgress,
  Engine,
  IndexLike,
  MethodResult,
  Mode,
  SearchStatsLike,
  SweepPoint,
} from './types.js';

/** Default nprobe sweep: a roughly geometric ladder up to numClusters. */
export function defaultNprobeSweep(numClusters: number): number[] {
  const ladder = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];
  const out = ladder.filter((v) => v <= numClusters);
  if (out[out.length - 1] !== numClusters && numClusters <= 512 && numClusters > 0) out.push(numClusters);
  return out;
}

export function checkNprobe(nprobe: readonly number[], numClusters: number): void {
  for (const p of nprobe) {
    if (p > numClusters) {
      throw new InputError(`nprobe ${p} is out of range: the index has ${numClusters} clusters`);
    }
  }
}

export interface RabitqBenchOptions {
  engine: Engine;
  dataset: LoadedDataset;
  /** Load the index from this file when it exists, else build it and save it there. */
  indexFile?: string;
  clusters?: number;
  /** bits per dimension of the codes; undefined: the library's default */
  bits?: number;
  /** build without the raw vectors (results ranked by the multi-bit estimates) */
  noVectors?: boolean;
  /** default l2 */
  metric?: BenchMetric;
  seed: number;
  threads: number;
  k: number;
  nprobe: number[] | null;
  modes: Mode[];
  runs: number;
  warmup: number;
  minRunMs?: number;
  onProgress?: (p: BuildProgress) => void;
  /** called once the index is built, before any search */
  onBuilt?: (index: IndexLike, buildMs: number) => void;
  onModeStart?: (mode: Mode) => void;
  onPoint?: (mode: Mode, point: SweepPoint) => void;
}

export interface RabitqBenchResult {
  index: IndexLike;
  nprobe: number[];
  methods: MethodResult[];
}

function addStats(acc: SearchStatsLike, s: SearchStatsLike | undefined): void {
  if (!s) return;
  acc.queries += s.queries;
  acc.clustersProbed += s.clustersProbed;
  acc.codesScanned += s.codesScanned;
  acc.reranked += s.reranked;
  if (s.exEstimated !== undefined) acc.exEstimated = (acc.exEstimated ?? 0) + s.exEstimated;
}

function copyIds(dst: Int32Array, offset: number, src: Int32Array, k: number): void {
  const n = Math.min(k, src.length);
  dst.set(src.subarray(0, n), offset);
  if (n < k) dst.fill(-1, offset + n, offset + k);
}

/** Untimed pass: result ids (nq * k) and summed search statistics. */
async function resultPass(
  index: IndexLike,
  queries: Float32Array,
  nq: number,
  dim: number,
  k: number,
  nprobe: number,
  mode: Mode,
  threads: number,
  stats: boolean,
): Promise<{ ids: Int32Array; stats: SearchStatsLike | null }> {
  const ids = new Int32Array(nq * k);
  const acc: SearchStatsLike = { queries: 0, clustersProbed: 0, codesScanned: 0, reranked: 0 };
  let haveStats = false;
  if (mode === 'batch') {
    const r = await index.searchBatch(queries, { k, nprobe, threads, stats });
    for (let q = 0; q < nq; q++) copyIds(ids, q * k, r.ids.subarray(q * k, (q + 1) * k), k);
    if (r.stats) {
      addStats(acc, r.stats);
      haveStats = true;
    }
  } else {
    for (let q = 0; q < nq; q++) {
      const r = index.search(queries.subarray(q * dim, (q + 1) * dim), { k, nprobe, stats });
      copyIds(ids, q * k, r.ids, k);
      if (r.stats) {
        addStats(acc, r.stats);
        haveStats = true;
      }
    }
  }
  if (haveStats && acc.queries === 0) acc.queries = nq;
  return { ids, stats: stats && haveStats ? acc : null };
}

/** What tells the rabitq variants of one run apart: bits and raw vectors kept or not. */
export interface RabitqVariant {
  bits?: number;
  noVectors?: boolean;
}

/** Method id of a variant: plain 'rabitq' for the default index, else e.g. 'rabitq-b4' or 'rabitq-b7-nv'. */
export function rabitqMethodId(v: RabitqVariant = {}): string {
  return 'rabitq' + (v.bits !== undefined ? `-b${v.bits}` : '') + (v.noVectors ? '-nv' : '');
}

export function rabitqLabel(mode: Mode, threads: number, v: RabitqVariant = {}): string {
  const what = 'rabitq' + (v.bits !== undefined ? ` ${v.bits}-bit` : '') + (v.noVectors ? ' no raw vectors' : '');
  return mode === 'single' ? `${what} (single)` : `${what} (batch, ${threads} thread${threads === 1 ? '' : 's'})`;
}

export async function benchRabitq(opts: RabitqBenchOptions): Promise<RabitqBenchResult> {
  const { engine, dataset, k, runs, warmup, threads } = opts;
  const { dim } = dataset;
  if (opts.clusters !== undefined && opts.clusters > dataset.base.count) {
    throw new InputError(`--clusters ${opts.clusters} exceeds the ${dataset.base.count} base vectors`);
  }
  if (opts.clusters !== undefined && opts.nprobe) checkNprobe(opts.nprobe, opts.clusters);

  const t0 = nowNs();
  let index: IndexLike;
  let loaded = false;
  if (opts.indexFile && existsSync(opts.indexFile)) {
    if (!engine.loadIndex) throw new InputError('this engine cannot load index files');
    index = await engine.loadIndex(opts.indexFile);
    loaded = true;
    if (index.dim !== dim || index.size !== dataset.base.count) {
      throw new InputError(
        `--index ${opts.indexFile} holds ${index.size} x ${index.dim} vectors, the base set has ${dataset.base.count} x ${dim}`,
      );
    }
    if (opts.bits !== undefined && index.bits !== undefined && opts.bits !== index.bits) {
      throw new InputError(`--index ${opts.indexFile} has ${index.bits}-bit codes, --bits says ${opts.bits}`);
    }
    const metric = opts.metric ?? 'l2';
    if ((index.metric ?? 'l2') !== metric) {
      throw new InputError(
        `--index ${opts.indexFile} was built with metric ${index.metric ?? 'l2'}, --metric says ${metric}`,
      );
    }
    if (opts.clusters !== undefined && opts.clusters !== index.numClusters) {
      throw new InputError(
        `--index ${opts.indexFile} has ${index.numClusters} clusters, --clusters says ${opts.clusters}`,
      );
    }
  } else {
    index = await engine.buildIndex(dataset.base.data, {
      dim,
      numClusters: opts.clusters,
      metric: opts.metric ?? 'l2',
      seed: opts.seed,
      threads,
      ...(opts.bits !== undefined ? { bits: opts.bits } : {}),
      ...(opts.noVectors ? { storeVectors: false } : {}),
      onProgress: opts.onProgress,
    });
    if (opts.indexFile) await engine.saveIndex?.(index, opts.indexFile);
  }
  // A loaded index was not built here: no build time to report.
  const totalMs = loaded ? Number.NaN : (nowNs() - t0) / 1e6;
  const bs = index.buildStats();
  const mem = index.memoryUsage() as unknown as Record<string, number>;
  const nprobe = opts.nprobe ?? defaultNprobeSweep(index.numClusters);
  checkNprobe(nprobe, index.numClusters);
  opts.onBuilt?.(index, totalMs);

  const nq = dataset.queries.count;
  const queries = dataset.queries.data;
  const gt = dataset.groundTruth;
  const methods: MethodResult[] = [];
  for (const mode of opts.modes) {
    const points: SweepPoint[] = [];
    opts.onModeStart?.(mode);
    for (const p of nprobe) {
      const first = await resultPass(index, queries, nq, dim, k, p, mode, threads, true);
      const ids100 = needsK100Pass(k, gt.dim)
        ? (await resultPass(index, queries, nq, dim, 100, p, mode, threads, false)).ids
        : null;
      const recalls = computeRecalls(gt, first.ids, k, ids100);
      const timing =
        mode === 'single'
          ? timeSingle(
              nq,
              runs,
              warmup,
              (q) => {
                index.search(queries.subarray(q * dim, (q + 1) * dim), { k, nprobe: p });
              },
              opts.minRunMs,
            )
          : await timeBatch(
              nq,
              runs,
              warmup,
              () => index.searchBatch(queries, { k, nprobe: p, threads }),
              opts.minRunMs,
            );
      const point = makePoint('nprobe', p, recalls, timing, first.stats);
      points.push(point);
      opts.onPoint?.(mode, point);
    }
    methods.push({
      method: rabitqMethodId(opts),
      label: rabitqLabel(mode, threads, opts),
      peer: 'rabitq',
      mode,
      threads: mode === 'single' ? 1 : threads,
      status: 'ok',
      buildSeconds: loaded ? null : roundSig(totalMs / 1000),
      ...(loaded
        ? { notes: `index loaded from ${opts.indexFile}` }
        : {
            build: {
              trainMs: roundSig(bs.trainMs),
              assignMs: roundSig(bs.assignMs),
              encodeMs: roundSig(bs.encodeMs),
              totalMs: roundSig(totalMs),
            },
          }),
      bytesPerVector: roundSig(mem.total! / Math.max(1, index.size)),
      memory: { ...mem },
      points,
    });
  }
  return { index, nprobe, methods };
}
