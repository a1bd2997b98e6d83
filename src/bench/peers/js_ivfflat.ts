/**
 * Plain TypeScript IVF-Flat: the "no native code" baseline. Exact L2 over the
 * vectors of the `nprobe` clusters closest to the query.
 */
import { PeerUnavailable, type PeerContext } from '../peer_context.js';
import { computeRecalls, makePoint, needsK100Pass, timeSingle } from '../measure.js';
import { nowNs, roundSig } from '../stats.js';
import type { MethodResult, SweepPoint } from '../types.js';
import { rng } from '../../random.js';

/** Max-heap of (distance, id) keeping the `cap` smallest distances. */
class TopK {
  readonly dist: Float32Array;
  readonly ids: Int32Array;
  size = 0;
  constructor(readonly cap: number) {
    this.dist = new Float32Array(cap);
    this.ids = new Int32Array(cap);
  }
  reset(): void {
    this.size = 0;
  }
  /** current worst kept distance (Infinity while not full) */
  bound(): number {
    return this.size < this.cap ? Infinity : this.dist[0]!;
  }
  push(d: number, id: number): void {
    const dist = this.dist;
    const ids = this.ids;
    if (this.size < this.cap) {
      let i = this.size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (dist[parent]! >= d) break;
        dist[i] = dist[parent]!;
        ids[i] = ids[parent]!;
        i = parent;
      }
      dist[i] = d;
      ids[i] = id;
      return;
    }
    if (d >= dist[0]!) return;
    const n = this.size;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && dist[r]! > dist[l]! ? r : l;
      if (dist[c]! <= d) break;
      dist[i] = dist[c]!;
      ids[i] = ids[c]!;
      i = c;
    }
    dist[i] = d;
    ids[i] = id;
  }
  /** ids sorted by increasing distance, written to out (padded with -1) */
  drainSorted(out: Int32Array, outDist?: Float32Array): void {
    const n = this.size;
    const order = Array.from({ length: n }, (_, i) => i).sort(
      (a, b) => this.dist[a]! - this.dist[b]! || this.ids[a]! - this.ids[b]!,
    );
    for (let i = 0; i < out.length; i++) {
      out[i] = i < n ? this.ids[order[i]!]! : -1;
      if (outDist) outDist[i] = i < n ? this.dist[order[i]!]! : Infinity;
    }
    this.size = 0;
  }
}

function l2(a: Float32Array, aOff: number, b: Float32Array, bOff: number, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 4 <= dim; j += 4) {
    const d0 = a[aOff + j]! - b[bOff + j]!;
    const d1 = a[aOff + j + 1]! - b[bOff + j + 1]!;
    const d2 = a[aOff + j + 2]! - b[bOff + j + 2]!;
    const d3 = a[aOff + j + 3]! - b[bOff + j + 3]!;
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  for (; j < dim; j++) {
    const d = a[aOff + j]! - b[bOff + j]!;
    s0 += d * d;
  }
  return s0 + s1 + s2 + s3;
}

function nearest(centroids: Float32Array, n: number, x: Float32Array, xOff: number, dim: number): number {
  let best = 0;
  let bestD = Infinity;
  for (let c = 0; c < n; c++) {
    const d = l2(centroids, c * dim, x, xOff, dim);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

/**
 * Lloyd's k-means on (a sample of) the data, k-means++-free: random distinct
 * initial points, empty clusters re-seeded from random points.
 */
export function trainKMeans(
  data: Float32Array,
  dim: number,
  numClusters: number,
  opts: { iterations?: number; seed?: number; maxSample?: number } = {},
): Float32Array {
  const n = data.length / dim;
  if (numClusters < 1 || numClusters > n) throw new Error(`cannot make ${numClusters} clusters from ${n} vectors`);
  const rand = rng(opts.seed ?? 1);
  const maxSample = opts.maxSample ?? Math.max(numClusters * 64, 10000);
  let sample = data;
  let m = n;
  if (n > maxSample) {
    m = maxSample;
    sample = new Float32Array(m * dim);
    for (let i = 0; i < m; i++) {
      const src = Math.floor(rand() * n);
      sample.set(data.subarray(src * dim, (src + 1) * dim), i * dim);
    }
  }
  const cent = new Float32Array(numClusters * dim);
  // Partial Fisher-Yates for distinct initial points.
  const perm = Int32Array.from({ length: m }, (_, i) => i);
  for (let c = 0; c < numClusters; c++) {
    const j = c + Math.floor(rand() * (m - c));
    const t = perm[c]!;
    perm[c] = perm[j]!;
    perm[j] = t;
    cent.set(sample.subarray(perm[c]! * dim, (perm[c]! + 1) * dim), c * dim);
  }
  const assign = new Int32Array(m);
  const sums = new Float64Array(numClusters * dim);
  const counts = new Int32Array(numClusters);
  const iterations = opts.iterations ?? 10;
  for (let it = 0; it < iterations; it++) {
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < m; i++) {
      const c = nearest(cent, numClusters, sample, i * dim, dim);
      assign[i] = c;
      counts[c]!++;
      for (let j = 0; j < dim; j++) sums[c * dim + j]! += sample[i * dim + j]!;
    }
    for (let c = 0; c < numClusters; c++) {
      if (counts[c] === 0) {
        const src = Math.floor(rand() * m);
        cent.set(sample.subarray(src * dim, (src + 1) * dim), c * dim);
        continue;
      }
      for (let j = 0; j < dim; j++) cent[c * dim + j] = sums[c * dim + j]! / counts[c]!;
    }
  }
  return cent;
}

export class JsIvfFlat {
  private readonly listOffsets: Int32Array;
  private readonly listIds: Int32Array;
  private readonly listData: Float32Array;
  private sel: TopK;
  private heap: TopK;

  private constructor(
    readonly dim: number,
    readonly numClusters: number,
    private readonly centroids: Float32Array,
    offsets: Int32Array,
    ids: Int32Array,
    data: Float32Array,
  ) {
    this.listOffsets = offsets;
    this.listIds = ids;
    this.listData = data;
    this.sel = new TopK(1);
    this.heap = new TopK(1);
  }

  get size(): number {
    return this.listIds.length;
  }

  /** Vectors + ids + centroids + offsets, in bytes. */
  memoryBytes(): number {
    return this.listData.byteLength + this.listIds.byteLength + this.centroids.byteLength + this.listOffsets.byteLength;
  }

  /** Build inverted lists over `vectors` with the given (or freshly trained) centroids. */
  static build(
    vectors: Float32Array,
    dim: number,
    opts: { centroids?: Float32Array; numClusters?: number; seed?: number },
  ): JsIvfFlat {
    const n = vectors.length / dim;
    const centroids =
      opts.centroids ??
      trainKMeans(vectors, dim, opts.numClusters ?? Math.max(1, Math.round(Math.sqrt(n))), { seed: opts.seed });
    const nc = centroids.length / dim;
    const assign = new Int32Array(n);
    const counts = new Int32Array(nc);
    for (let i = 0; i < n; i++) {
      const c = nearest(centroids, nc, vectors, i * dim, dim);
      assign[i] = c;
      counts[c]!++;
    }
    const offsets = new Int32Array(nc + 1);
    for (let c = 0; c < nc; c++) offsets[c + 1] = offsets[c]! + counts[c]!;
    const fill = offsets.slice(0, nc);
    const ids = new Int32Array(n);
    const data = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      const pos = fill[assign[i]!]!++;
      ids[pos] = i;
      data.set(vectors.subarray(i * dim, (i + 1) * dim), pos * dim);
    }
    return new JsIvfFlat(dim, nc, centroids, offsets, ids, data);
  }

  /** k nearest ids (sorted, padded with -1) of one query, scanning `nprobe` lists. */
  search(query: Float32Array, k: number, nprobe: number, out: Int32Array = new Int32Array(k)): Int32Array {
    const { dim, numClusters } = this;
    const np = Math.min(nprobe, numClusters);
    // Select the np closest centroids with a bounded max-heap.
    if (this.sel.cap !== np) this.sel = new TopK(np);
    const sel = this.sel;
    sel.reset();
    for (let c = 0; c < numClusters; c++) {
      const d = l2(this.centroids, c * dim, query, 0, dim);
      if (d < sel.bound()) sel.push(d, c);
    }
    if (this.heap.cap !== k) this.heap = new TopK(k);
    const heap = this.heap;
    heap.reset();
    const data = this.listData;
    const ids = this.listIds;
    for (let s = 0; s < sel.size; s++) {
      const c = sel.ids[s]!;
      const end = this.listOffsets[c + 1]!;
      for (let i = this.listOffsets[c]!; i < end; i++) {
        const d = l2(data, i * dim, query, 0, dim);
        if (d < heap.bound()) heap.push(d, ids[i]!);
      }
    }
    heap.drainSorted(out);
    return out;
  }
}

/** Peer entry point: IVF-Flat in TypeScript over rabitq's clusters, single queries. */
export async function benchJsIvfFlat(ctx: PeerContext): Promise<MethodResult[]> {
  const { dataset, k, runs, warmup } = ctx;
  const dim = dataset.dim;
  if (!ctx.modes.includes('single'))
    throw new PeerUnavailable('js IVF-Flat runs single queries only (add --mode single)');
  if (ctx.metric !== 'l2') throw new PeerUnavailable(`js IVF-Flat searches by L2 only, not ${ctx.metric}`);
  const t0 = nowNs();
  const index = JsIvfFlat.build(dataset.base.data, dim, {
    centroids: ctx.centroids ?? undefined,
    numClusters: ctx.clusters,
    seed: ctx.seed,
  });
  const buildSeconds = (nowNs() - t0) / 1e9;
  const nq = dataset.queries.count;
  const q = dataset.queries.data;
  const gt = dataset.groundTruth;
  const points: SweepPoint[] = [];
  const scratch = new Int32Array(Math.max(k, 100));
  for (const nprobe of ctx.nprobe) {
    const ids = new Int32Array(nq * k);
    for (let i = 0; i < nq; i++)
      index.search(q.subarray(i * dim, (i + 1) * dim), k, nprobe, ids.subarray(i * k, (i + 1) * k));
    let ids100: Int32Array | null = null;
    if (needsK100Pass(k, gt.dim)) {
      ids100 = new Int32Array(nq * 100);
      for (let i = 0; i < nq; i++)
        index.search(q.subarray(i * dim, (i + 1) * dim), 100, nprobe, ids100.subarray(i * 100, (i + 1) * 100));
    }
    const recalls = computeRecalls(gt, ids, k, ids100);
    const out = scratch.subarray(0, k);
    const timing = timeSingle(
      nq,
      runs,
      warmup,
      (i) => {
        index.search(q.subarray(i * dim, (i + 1) * dim), k, nprobe, out);
      },
      ctx.minRunMs,
    );
    const point = makePoint('nprobe', nprobe, recalls, timing, null);
    points.push(point);
    ctx.log(`  nprobe=${nprobe}: recall@10 ${point.recall10?.toFixed(4) ?? 'n/a'}, ${point.qps.toFixed(0)} QPS`);
  }
  return [
    {
      method: 'js-ivfflat',
      label: 'js IVF-Flat (single)',
      peer: 'js',
      mode: 'single',
      threads: 1,
      status: 'ok',
      buildSeconds: roundSig(buildSeconds),
      bytesPerVector: roundSig(index.memoryBytes() / index.size),
      notes: ctx.centroids
        ? 'plain TypeScript, exact L2 in the probed lists; centroids shared with rabitq (build time excludes k-means)'
        : 'plain TypeScript, exact L2 in the probed lists; own k-means',
      points,
    },
  ];
}
