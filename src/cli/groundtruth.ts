/**
 * `rabitq groundtruth <base> <queries> --k 100 --out gt.ivecs`: the exact
 * top-k of every query (exactKnn on the native pool), written as .ivecs.
 */
import type { CliIo } from './io.js';
import { InputError } from './errors.js';
import { AtomicVecsWriter, checkOneStdin, checkOutputPath, openVectorSource, type VectorSource } from './files.js';
import { UsageError, choiceOption, intOption, parseCommandLine, stringOption, type OptionSpec } from './options.js';

export const GROUNDTRUTH_HELP = `Usage: rabitq groundtruth <base> <queries> --k <n> --out <gt.ivecs> [options]

Computes the exact k nearest base vectors of every query (brute force on the
native SIMD kernels) and writes their ids, nearest first, as .ivecs: the
ground truth that \`rabitq recall\` and \`rabitq bench\` compare against.

  <base>, <queries>     .fvecs or .bvecs files; one of them may be - (standard input)
  --k <n>               neighbours per query (default 100)
  --out, -o <file>      the .ivecs to write (required; written atomically)
  --metric <m>          l2 (default; squared Euclidean), cosine or ip (largest
                        inner product first)
  --threads <n>         threads (default: the CPUs this process may use)
  --progress / --no-progress   progress on stderr (default: when stderr is a terminal)

Ties are broken by the smaller id. With cosine and ip the candidates are
found in float32 and re-ranked in float64.
Exit codes: 0 done, 1 failure while running, 2 bad input or usage.
`;

const SPEC: Record<string, OptionSpec> = {
  k: { type: 'string' },
  out: { type: 'string', short: 'o' },
  metric: { type: 'string' },
  threads: { type: 'string' },
  progress: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** Queries per exactKnn call: progress is reported between calls. */
const QUERY_CHUNK = 1000;

export type GtMetric = 'l2' | 'cosine' | 'ip';

function normalizeRows(data: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < data.length / dim; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += data[r * dim + j]! * data[r * dim + j]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) out[r * dim + j] = data[r * dim + j]! * inv;
  }
  return out;
}

/**
 * Maximum inner product as nearest neighbour: with M the largest base norm,
 * base x -> [x, sqrt(M^2 - |x|^2)] and query q -> [q, 0] make
 * |q' - x'|^2 = |q|^2 + M^2 - 2<q, x>, so L2 order is inner-product order.
 */
function mipsAugment(
  base: Float32Array,
  queries: Float32Array,
  dim: number,
): { base: Float32Array; queries: Float32Array } {
  const n = base.length / dim;
  const norms = new Float64Array(n);
  let maxSq = 0;
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += base[r * dim + j]! * base[r * dim + j]!;
    norms[r] = s;
    if (s > maxSq) maxSq = s;
  }
  const b = new Float32Array(n * (dim + 1));
  for (let r = 0; r < n; r++) {
    b.set(base.subarray(r * dim, (r + 1) * dim), r * (dim + 1));
    b[r * (dim + 1) + dim] = Math.sqrt(Math.max(0, maxSq - norms[r]!));
  }
  const nq = queries.length / dim;
  const q = new Float32Array(nq * (dim + 1));
  for (let r = 0; r < nq; r++) q.set(queries.subarray(r * dim, (r + 1) * dim), r * (dim + 1));
  return { base: b, queries: q };
}

/** Score to sort ascending (smaller is better) of base row `id` for `query`, in float64. */
function score(
  metric: GtMetric,
  base: Float32Array,
  id: number,
  query: Float32Array,
  qOff: number,
  dim: number,
): number {
  let s = 0;
  if (metric === 'l2') {
    for (let j = 0; j < dim; j++) {
      const d = base[id * dim + j]! - query[qOff + j]!;
      s += d * d;
    }
    return s;
  }
  for (let j = 0; j < dim; j++) s += base[id * dim + j]! * query[qOff + j]!;
  return -s; // cosine on normalized rows, or ip: the largest product first
}

/**
 * Exact top-k ids of each query row under `metric` (nearest first, ties by
 * id); -1 for slots beyond the base size. `onChunk` is called after each
 * chunk of queries with the number done.
 */
export async function exactTopK(
  base: Float32Array,
  queries: Float32Array,
  opts: { dim: number; k: number; metric: GtMetric; threads?: number; onChunk?: (done: number) => void },
): Promise<Int32Array> {
  const { exactKnn } = await import('../knn.js');
  const { dim, k, metric } = opts;
  const n = base.length / dim;
  const nq = queries.length / dim;
  const out = new Int32Array(nq * k);
  let searchBase = base;
  let searchQueries = queries;
  let searchDim = dim;
  // cosine and ip search in float32 for a wider candidate list, then order it in float64.
  const candidates = metric === 'l2' ? k : Math.min(n, k + Math.max(10, k));
  if (metric === 'cosine') {
    searchBase = normalizeRows(base, dim);
    searchQueries = normalizeRows(queries, dim);
  } else if (metric === 'ip') {
    ({ base: searchBase, queries: searchQueries } = mipsAugment(base, queries, dim));
    searchDim = dim + 1;
  }
  for (let q0 = 0; q0 < nq; q0 += QUERY_CHUNK) {
    const q1 = Math.min(nq, q0 + QUERY_CHUNK);
    const chunk = searchQueries.subarray(q0 * searchDim, q1 * searchDim);
    const r = await exactKnn(searchBase, chunk, {
      dim: searchDim,
      k: Math.max(candidates, 1),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    });
    for (let q = q0; q < q1; q++) {
      const row = r.ids.subarray((q - q0) * candidates, (q - q0 + 1) * candidates);
      if (metric === 'l2') {
        out.set(row.subarray(0, k), q * k);
        continue;
      }
      const rankBase = metric === 'cosine' ? searchBase : base;
      const rankQueries = metric === 'cosine' ? searchQueries : queries;
      const ids = Array.from(row).filter((id) => id >= 0);
      const scored = ids.map((id) => ({ id, s: score(metric, rankBase, id, rankQueries, q * dim, dim) }));
      scored.sort((a, b) => a.s - b.s || a.id - b.id);
      for (let j = 0; j < k; j++) out[q * k + j] = j < scored.length ? scored[j]!.id : -1;
    }
    opts.onChunk?.(q1);
  }
  return out;
}

export async function groundtruthCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, SPEC, 2);
  if (values.help === true) {
    io.stdout(GROUNDTRUTH_HELP);
    return 0;
  }
  if (positionals.length < 2) throw new UsageError('needs two files: <base> <queries>');
  const out = stringOption(values, 'out');
  if (out === undefined) throw new UsageError('missing --out <gt.ivecs>');
  if (!/\.ivecs$/i.test(out)) throw new UsageError(`--out must end in .ivecs, got ${JSON.stringify(out)}`);
  const k = intOption(values, 'k', 1, 100000, 100);
  const metric = choiceOption(values, 'metric', ['l2', 'cosine', 'ip'] as const, 'l2');
  const threads = intOption(values, 'threads', 1, 1024);
  const progress = typeof values.progress === 'boolean' ? values.progress : io.isTTY;
  const inputs = [
    { path: positionals[0]!, what: 'base' },
    { path: positionals[1]!, what: 'queries' },
  ];
  checkOneStdin(inputs);
  await checkOutputPath({ path: out, what: '--out' }, inputs);

  let base: VectorSource | null = null;
  let queries: VectorSource | null = null;
  try {
    base = await openVectorSource(inputs[0]!);
    queries = await openVectorSource(inputs[1]!);
    if (base.dim !== queries.dim) {
      throw new InputError(
        `${queries.name}: queries have dimension ${queries.dim} but the base ${base.name} has ${base.dim}`,
      );
    }
    const baseData = await base.read(0, base.count);
    const queryData = await queries.read(0, queries.count);
    const t0 = performance.now();
    const nq = queries.count;
    let lastReport = t0;
    const ids = await exactTopK(baseData, queryData, {
      dim: base.dim,
      k,
      metric,
      ...(threads !== undefined ? { threads } : {}),
      onChunk: (done) => {
        const now = performance.now();
        // Progress only on long runs: the first line after 2 s, then every 2 s.
        if (progress && now - lastReport >= 2000 && done < nq) {
          lastReport = now;
          const eta = ((now - t0) / done) * (nq - done);
          io.stderr(
            `groundtruth: ${done}/${nq} queries (${((100 * done) / nq).toFixed(0)}%), ~${(eta / 1000).toFixed(0)} s left\n`,
          );
        }
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const writer = await AtomicVecsWriter.open(out);
    try {
      await writer.write(k, ids);
      await writer.commit();
    } finally {
      await writer.abort();
    }
    const note = k > base.count ? ` (only ${base.count} base vectors: the last slots are -1)` : '';
    io.stderr(
      `groundtruth: ${nq} queries x top-${k} (${metric}) over ${base.count} x ${base.dim} in ${seconds.toFixed(2)} s -> ${out}${note}\n`,
    );
    return 0;
  } finally {
    await base?.close();
    await queries?.close();
  }
}
