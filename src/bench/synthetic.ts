/**
 * Small synthetic datasets in texmex layout (base.fvecs, query.fvecs,
 * groundtruth.ivecs) for tests and smoke runs of the benchmark runner.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFvecs, writeIvecs } from '../io.js';
import { rng } from '../random.js';

/** Vectors scattered around `centers` fixed points, so IVF recall grows with nprobe. */
export function syntheticVectors(n: number, dim: number, seed: number, centers = 8): Float32Array {
  const r = rng(seed);
  const c = rng(12345);
  const cent = Float32Array.from({ length: centers * dim }, () => c() * 10);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(r() * centers);
    for (let j = 0; j < dim; j++) out[i * dim + j] = cent[k * dim + j]! + (r() - 0.5) * 4;
  }
  return out;
}

/** Exact k nearest ids (ties by id) of every query, by brute force. */
export function bruteForceGt(base: Float32Array, queries: Float32Array, dim: number, k: number): Int32Array {
  const n = base.length / dim;
  const nq = queries.length / dim;
  const out = new Int32Array(nq * k);
  const d = new Float64Array(n);
  for (let q = 0; q < nq; q++) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < dim; j++) {
        const t = base[i * dim + j]! - queries[q * dim + j]!;
        s += t * t;
      }
      d[i] = s;
    }
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a]! - d[b]! || a - b);
    for (let j = 0; j < k; j++) out[q * k + j] = order[j] ?? -1;
  }
  return out;
}

export interface SyntheticOptions {
  n?: number;
  nq?: number;
  dim?: number;
  /** ground-truth columns (default 100) */
  gtK?: number;
  /** write queries with another dimension (to provoke a mismatch) */
  queryDim?: number;
  /** write only this many ground-truth rows */
  gtRows?: number;
}

/** Write a synthetic dataset into `dir` (created if needed). */
export async function writeSyntheticDataset(dir: string, opts: SyntheticOptions = {}): Promise<void> {
  const n = opts.n ?? 600;
  const nq = opts.nq ?? 20;
  const dim = opts.dim ?? 8;
  const gtK = opts.gtK ?? 100;
  await mkdir(dir, { recursive: true });
  const base = syntheticVectors(n, dim, 1);
  const queries = syntheticVectors(nq, dim, 2);
  const gt = bruteForceGt(base, queries, dim, gtK);
  await writeFvecs(path.join(dir, 'base.fvecs'), { dim, data: base });
  const qd = opts.queryDim ?? dim;
  await writeFvecs(path.join(dir, 'query.fvecs'), {
    dim: qd,
    data: qd === dim ? queries : syntheticVectors(nq, qd, 2),
  });
  const rows = opts.gtRows ?? nq;
  await writeIvecs(path.join(dir, 'groundtruth.ivecs'), { dim: gtK, data: gt.subarray(0, rows * gtK) });
}
