/**
 * Shared test helpers: seeded data, brute-force models, temporary folders.
 * Index behaviour is checked against models computed here: brute-force k-NN
 * in float64 over a Map of the live vectors, and snapshots of everything an
 * index exposes.
 *
 * Every test file takes the seeded random generator from here (not from its
 * current home directly), so moving it is a one-line change.
 */
import { afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { IdArray, IvfRabitqIndex, Metric, SearchOptions } from '../src/index.js';
import { rng, gaussian } from '../src/random.js';

export { rng, gaussian };

export type AnyIndex = IvfRabitqIndex<IdArray>;

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function newestTs(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * For tests that run the compiled package in child processes: (re)builds
 * dist/ when `file` (a path under dist/) is missing or older than the sources
 * in src/ and bench/, so a test file does not depend on another one having
 * built it. tsc emits even when other parts of the tree have type errors.
 * Call from a beforeAll with a generous timeout.
 */
export function ensureDist(file: string): void {
  const target = path.resolve(ROOT, file);
  const newest = Math.max(newestTs(path.join(ROOT, 'src')), newestTs(path.join(ROOT, 'bench')));
  if (fs.existsSync(target) && fs.statSync(target).mtimeMs >= newest) return;
  spawnSync(
    process.execPath,
    [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')],
    {
      cwd: ROOT,
      stdio: 'ignore',
    },
  );
}

/**
 * A temporary folder for the calling test file, removed after its tests;
 * returns `tmpDir(name)`, which makes a fresh sub-folder in it. Call at the
 * top level of a test file.
 */
export function tempFolders(prefix: string): (name: string) => string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `rabitq-${prefix}-`));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  return (name) => {
    const d = path.join(root, name);
    fs.mkdirSync(d, { recursive: true });
    return d;
  };
}

// ---- data ----------------------------------------------------------------------

/** n points around `blobs` Gaussian centres (same centres for the same blobSeed). */
export function clustered(n: number, dim: number, blobs: number, seed: number, blobSeed = 1000): Float32Array {
  const rc = rng(blobSeed + dim);
  const centres = Float32Array.from({ length: blobs * dim }, () => gaussian(rc) * 10);
  const r = rng(seed);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * blobs);
    for (let d = 0; d < dim; d++) out[i * dim + d] = centres[c * dim + d]! + (gaussian(r) * 3) / (1 + d / 8);
  }
  return out;
}
export function row(data: Float32Array, dim: number, i: number): Float32Array {
  return data.subarray(i * dim, (i + 1) * dim);
}
export function concat(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
/** k distinct integers of [0, n), in random order. */
export function sample(r: () => number, n: number, k: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(r() * (n - i));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, k);
}

// ---- brute force ------------------------------------------------------------------

/** The metric's distance in float64: squared L2, 1 - cos, or the inner product. */
export function exact(metric: Metric, q: Float32Array, x: Float32Array): number {
  let s = 0;
  if (metric === 'l2') {
    for (let i = 0; i < q.length; i++) {
      const d = q[i]! - x[i]!;
      s += d * d;
    }
    return s;
  }
  let qq = 0,
    xx = 0;
  for (let i = 0; i < q.length; i++) {
    s += q[i]! * x[i]!;
    qq += q[i]! * q[i]!;
    xx += x[i]! * x[i]!;
  }
  return metric === 'ip' ? s : 1 - s / Math.sqrt(qq * xx);
}

/** Vectors by id (bigint for both id widths). */
export type Rows = Map<bigint, Float32Array>;

export function bruteTopK(
  rows: Rows,
  q: Float32Array,
  k: number,
  metric: Metric,
  allow?: (id: bigint) => boolean,
): bigint[] {
  const all: [number, bigint][] = [];
  for (const [id, x] of rows) if (!allow || allow(id)) all.push([exact(metric, q, x), id]);
  const sign = metric === 'ip' ? -1 : 1;
  all.sort((a, b) => sign * (a[0] - b[0]) || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return all.slice(0, k).map((e) => e[1]);
}

/** Ids of result row q as bigints (-1n for missing slots). */
export function rowIds(ids: IdArray, q: number, k: number): bigint[] {
  return Array.from(ids.subarray(q * k, (q + 1) * k) as ArrayLike<number | bigint>, (v) => BigInt(v));
}

export function recallOf(got: bigint[], truth: bigint[]): number {
  const t = new Set(truth);
  return got.filter((id) => t.has(id)).length / truth.length;
}

export function approx(got: number, want: number, rel = 1e-4, abs = 1e-6): boolean {
  return Math.abs(got - want) <= rel * Math.abs(want) + abs;
}

/** Results of one search per query row (the synchronous path). */
export function searchRows(
  index: AnyIndex,
  queries: Float32Array,
  opts: SearchOptions,
): { ids: IdArray; distances: Float32Array } {
  const nq = queries.length / index.dim;
  const ids = index.idType === 'u64' ? new BigInt64Array(nq * opts.k) : new Int32Array(nq * opts.k);
  const distances = new Float32Array(nq * opts.k);
  for (let q = 0; q < nq; q++) {
    const r = index.search(row(queries, index.dim, q), opts);
    (ids as Int32Array).set(r.ids as Int32Array, q * opts.k);
    distances.set(r.distances, q * opts.k);
  }
  return { ids, distances };
}

/** Everything observable about an index for "unchanged" checks. */
export async function snapshot(
  index: AnyIndex,
  queries: Float32Array,
  probeIds: (number | bigint)[],
): Promise<unknown> {
  const full = await index.searchBatch(queries, { k: 10, nprobe: index.numClusters });
  const est = await index.searchBatch(queries, { k: 10, nprobe: 2, rerank: false });
  const m = index.memoryUsage();
  return {
    size: index.size,
    has: probeIds.map((id) => index.has(id)),
    full,
    est,
    memory: { codes: m.codes, factors: m.factors, ids: m.ids, vectors: m.vectors },
  };
}

/** Whether this process maps `file` (undefined where /proc/self/maps does not exist). */
export function fileMapped(file: string): boolean | undefined {
  if (!fs.existsSync('/proc/self/maps')) return undefined;
  const real = fs.realpathSync(file);
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .some((l) => l.endsWith(real) || l.endsWith(file));
}
