/**
 * Kernel micro-benchmark: every SIMD kernel at every level this CPU supports,
 * over the usual embedding dimensions, through the raw native surface; plus
 * exactKnn on one thread against a plain TypeScript brute-force loop.
 *
 *   npm run bench:kernels                 full run, writes bench/results/kernels.{json,md}
 *   taskset -c 1 npm run bench:kernels    the same, pinned to one CPU (recommended)
 *   node dist/bench/kernels.js --quick    a few dims, short budgets, writes nothing
 *
 * Options: --time=<ms per task> --dims=64,128,... --out=<file.json> --quick
 *
 * Every timed sample runs the kernel `batch` times in a loop and divides, so
 * the timer's own cost does not show; ns is the median sample / batch, the
 * fastest of 3 rounds that interleave the levels. Each call still pays the N-API call
 * (argument unpacking); `callOverheadNs` estimates it per level from l2sq at
 * d = 1, and `netNs` subtracts it. Ratios are reported both ways.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Bench } from 'tinybench';
import { exactKnn } from '../src/index.js';
import { native, type SimdLevelName } from '../src/native.js';
import { repoRoot } from '../src/bench/paths.js';
import { cpuModel, cpusAllowedList } from '../src/bench/machine.js';
import { rng } from '../src/random.js';
import { UsageError, intOption, parseCommandLine, parseIntList, stringOption } from '../src/cli/options.js';
import { loadTestingAddon } from './native_testing.js';

const ALL_LEVELS: SimdLevelName[] = ['scalar', 'avx2', 'avx512'];
const DEFAULT_DIMS = [64, 96, 128, 256, 384, 512, 768, 960, 1024, 1536];
const QUERY_BITS = 4; // bit planes of the query in the bit-plane estimator (the index uses 4)
const TILE_NP = 8; // points per dotTile16 call
const loadAtStart = os.loadavg();
const ROUNDS = 3; // interleaved rounds per kernel and dim; the fastest counts

interface Options {
  timeMs: number;
  dims: number[];
  out: string | null;
  quick: boolean;
}

/** --time=<ms per kernel> --dims=a,b --out=<file> --quick (a short run that writes no files). */
function optionsFromArgs(argv: readonly string[]): Options {
  const { values } = parseCommandLine(argv, {
    time: { type: 'string' },
    dims: { type: 'string' },
    out: { type: 'string' },
    quick: { type: 'boolean' },
  });
  const quick = values.quick === true;
  const out = stringOption(values, 'out');
  const dims = stringOption(values, 'dims');
  return {
    timeMs: intOption(values, 'time', 1, 3_600_000, quick ? 30 : 240),
    dims: dims === undefined ? (quick ? [64, 960] : DEFAULT_DIMS) : parseIntList('dims', dims, 1, 65536),
    out:
      out !== undefined ? path.resolve(out) : quick ? null : path.join(repoRoot(), 'bench', 'results', 'kernels.json'),
    quick,
  };
}

function randomFloats(n: number, r: () => number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}
function randomWords(n: number, r: () => number): BigUint64Array {
  const a = new BigUint64Array(n);
  for (let i = 0; i < n; i++) a[i] = (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
  return a;
}

type KernelName =
  'l2sq' | 'dot' | 'minmax' | 'quantize' | 'popcountAnd' | 'bitplaneIp' | 'fastscan' | 'dotTile16' | 'dotTile16F16';

interface KernelCase {
  kernel: KernelName;
  /** Bytes read and written by one call. */
  bytes: number;
  /** What one call processes, for the table. */
  shape: string;
  call: (level: SimdLevelName) => void;
}

/** One call of every kernel at dimension d, with its inputs prepared once. */
function kernelCases(d: number): KernelCase[] {
  const r = rng(d);
  const k = loadTestingAddon().kernels;
  const a = randomFloats(d, r);
  const b = randomFloats(d, r);
  const offsets = randomFloats(d, r, 0, 0.999);
  const codes8 = new Uint8Array(d);
  const [lo, hi] = k.minmax('scalar', a);
  const invDelta = Math.fround((15 / (hi - lo)) * (1 - 1e-6));
  const words = Math.ceil(d / 64);
  const w1 = randomWords(words, r);
  const w2 = randomWords(words, r);
  const planes = randomWords(QUERY_BITS * words, r);
  const npairs = Math.max(1, Math.floor(d / 8));
  const fsCodes = new Uint8Array(npairs * 32).map(() => Math.floor(r() * 256));
  const fsLuts = new Uint8Array(npairs * 32).map(() => Math.floor(r() * 128));
  const fsOut = new Uint16Array(32);
  const xs = randomFloats(TILE_NP * d, r);
  const ct = randomFloats(d * 16, r);
  const ctHalf = new Uint16Array(d * 16);
  k.floatToHalf(ct, ctHalf);
  const tileOut = new Float32Array(TILE_NP * 16);
  let sink = 0;
  const cases: KernelCase[] = [
    {
      kernel: 'l2sq',
      bytes: 8 * d,
      shape: `${d}`,
      call: (l) => {
        sink += k.l2sq(l, a, b);
      },
    },
    {
      kernel: 'dot',
      bytes: 8 * d,
      shape: `${d}`,
      call: (l) => {
        sink += k.dot(l, a, b);
      },
    },
    {
      kernel: 'minmax',
      bytes: 4 * d,
      shape: `${d}`,
      call: (l) => {
        sink += k.minmax(l, a)[0];
      },
    },
    {
      kernel: 'quantize',
      bytes: 9 * d,
      shape: `${d}, B=4`,
      call: (l) => {
        sink += k.quantize(l, a, lo, invDelta, offsets, 15, codes8);
      },
    },
    {
      kernel: 'popcountAnd',
      bytes: 16 * words,
      shape: `${words} words`,
      call: (l) => {
        sink += k.popcountAnd(l, w1, w2);
      },
    },
    {
      kernel: 'bitplaneIp',
      bytes: 8 * words * (QUERY_BITS + 1),
      shape: `${words} words x ${QUERY_BITS} planes`,
      call: (l) => {
        sink += k.bitplaneIp(l, planes, QUERY_BITS, w1);
      },
    },
    {
      kernel: 'fastscan',
      bytes: 64 * npairs + 64,
      shape: `32 codes, ${npairs} pairs`,
      call: (l) => {
        k.fastscan(l, fsCodes, fsLuts, npairs, fsOut);
      },
    },
    {
      kernel: 'dotTile16',
      bytes: 4 * (TILE_NP * d + 16 * d + TILE_NP * 16),
      shape: `${TILE_NP} x ${d} . ${d} x 16`,
      call: (l) => {
        k.dotTile16(l, xs, TILE_NP, d, ct, tileOut);
      },
    },
  ];
  if (typeof k.dotTile16F16 === 'function') {
    cases.push({
      kernel: 'dotTile16F16',
      bytes: 4 * TILE_NP * d + 2 * 16 * d + 4 * TILE_NP * 16,
      shape: `${TILE_NP} x ${d} . ${d} x 16 (f16)`,
      call: (l) => {
        k.dotTile16F16(l, xs, TILE_NP, d, ctHalf, tileOut);
      },
    });
  }
  void sink;
  return cases;
}

interface KernelResult {
  kernel: KernelName;
  level: SimdLevelName;
  dim: number;
  shape: string;
  batch: number;
  /** Time of one call through N-API, ns (median sample / batch). */
  ns: number;
  /** ns minus the level's call overhead (floored at 0.1 ns). */
  netNs: number;
  bytes: number;
  /** bytes / ns: throughput of the whole call. */
  gbPerS: number;
  /** Relative margin of error of the mean, percent. */
  rmePercent: number;
  samples: number;
}

/** Calls per timed sample so that one sample lasts about 20 microseconds. */
function batchFor(call: () => void): number {
  for (let i = 0; i < 200; i++) call();
  const t0 = process.hrtime.bigint();
  let n = 0;
  while (process.hrtime.bigint() - t0 < 2_000_000n) {
    call();
    n++;
  }
  const nsPerCall = 2_000_000 / n;
  return Math.max(1, Math.min(100_000, Math.round(20_000 / nsPerCall)));
}

async function timeCall(
  name: string,
  call: () => void,
  timeMs: number,
): Promise<{ ns: number; batch: number; rme: number; samples: number }> {
  const batch = batchFor(call);
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(30, timeMs), iterations: 10, throws: true });
  bench.add(name, () => {
    for (let i = 0; i < batch; i++) call();
  });
  await bench.run();
  const res = bench.tasks[0]!.result;
  if (res.state !== 'completed') throw new Error(`${name}: benchmark ${res.state}`);
  // The median sample: robust to the odd interrupt or page fault.
  return {
    ns: (res.latency.p50 * 1e6) / batch,
    batch,
    rme: res.latency.rme,
    samples: res.latency.samples?.length ?? res.latency.df + 1,
  };
}

// ---- exactKnn vs TypeScript -----------------------------------------------------

/** Brute force in plain TypeScript: the baseline a user would write. */
function tsBruteForce(base: Float32Array, queries: Float32Array, dim: number, k: number): Int32Array {
  const n = base.length / dim;
  const nq = queries.length / dim;
  const ids = new Int32Array(nq * k);
  const bestD = new Float64Array(k);
  const bestI = new Int32Array(k);
  for (let q = 0; q < nq; q++) {
    bestD.fill(Infinity);
    bestI.fill(-1);
    const qo = q * dim;
    for (let i = 0; i < n; i++) {
      const bo = i * dim;
      let s = 0;
      for (let t = 0; t < dim; t++) {
        const x = queries[qo + t]! - base[bo + t]!;
        s += x * x;
      }
      if (s < bestD[k - 1]!) {
        let j = k - 1;
        while (j > 0 && bestD[j - 1]! > s) {
          bestD[j] = bestD[j - 1]!;
          bestI[j] = bestI[j - 1]!;
          j--;
        }
        bestD[j] = s;
        bestI[j] = i;
      }
    }
    ids.set(bestI, q * k);
  }
  return ids;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function exactKnnComparison(quick: boolean) {
  const n = 2000,
    dim = 128,
    nq = 100,
    k = 10;
  const r = rng(7);
  const base = randomFloats(n * dim, r);
  const queries = randomFloats(nq * dim, r);
  const reps = quick ? 3 : 15;
  const nativeMs: number[] = [];
  const tsMs: number[] = [];
  let nativeIds: Int32Array = new Int32Array(0);
  let tsIds: Int32Array = new Int32Array(0);
  // Warm both paths (JIT, pool threads, caches) before timing.
  await exactKnn(base, queries, { dim, k, threads: 1 });
  tsBruteForce(base, queries.subarray(0, 10 * dim), dim, k);
  for (let i = 0; i < reps; i++) {
    let t0 = performance.now();
    nativeIds = (await exactKnn(base, queries, { dim, k, threads: 1 })).ids;
    nativeMs.push(performance.now() - t0);
    t0 = performance.now();
    tsIds = tsBruteForce(base, queries, dim, k);
    tsMs.push(performance.now() - t0);
  }
  let agree = 0;
  for (let i = 0; i < nativeIds.length; i++) if (nativeIds[i] === tsIds[i]) agree++;
  // The fastest run of each is the least disturbed by anything else running.
  const nativeMin = Math.min(...nativeMs);
  const tsMin = Math.min(...tsMs);
  return {
    n,
    dim,
    nq,
    k,
    threads: 1,
    reps,
    simdLevel: native.simdLevel(),
    nativeMsMin: nativeMin,
    tsMsMin: tsMin,
    nativeMsMedian: median(nativeMs),
    tsMsMedian: median(tsMs),
    speedup: tsMin / nativeMin,
    speedupOfMedians: median(tsMs) / median(nativeMs),
    idsAgreeFraction: agree / nativeIds.length,
  };
}

// ---- report ---------------------------------------------------------------------

function gitCommitFull(): string {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    return head || 'unknown';
  } catch {
    return 'unknown';
  }
}

function cpuFlags(): string[] {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^flags\s*:\s*(.+)$/m.exec(info);
    const want = ['avx2', 'fma', 'f16c', 'popcnt', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vpopcntdq'];
    return m ? m[1]!.split(/\s+/).filter((f) => want.includes(f)) : [];
  } catch {
    return [];
  }
}

function fmt(x: number, digits = 1): string {
  if (!Number.isFinite(x)) return '-';
  return x >= 100 ? x.toFixed(0) : x.toFixed(digits);
}

function ratio(results: KernelResult[], kernel: KernelName, dim: number, num: SimdLevelName, den: SimdLevelName) {
  const a = results.find((x) => x.kernel === kernel && x.dim === dim && x.level === num);
  const b = results.find((x) => x.kernel === kernel && x.dim === dim && x.level === den);
  if (!a || !b) return null;
  // "num is X times faster than den".
  return { kernel, dim, faster: num, than: den, raw: b.ns / a.ns, net: b.netNs / a.netNs };
}

function markdown(json: ReturnType<typeof buildJson>, levels: SimdLevelName[]): string {
  const m = json.meta;
  const lines: string[] = [];
  lines.push('# Kernel benchmark');
  lines.push('');
  lines.push(
    `${m.cpu}; ${m.node}; affinity ${m.affinity.cpusAllowedList}; commit ${m.commit.slice(0, 12)}; ${m.date}.`,
  );
  lines.push(`Generated by \`npm run bench:kernels\` (bench/kernels.ts); full data in kernels.json.`);
  lines.push('');
  lines.push(
    'ns per call through N-API (call overhead at d=1: ' +
      levels.map((l) => `${l} ${fmt(json.callOverheadNs[l] ?? NaN)} ns`).join(', ') +
      ').',
  );
  lines.push('GB/s is bytes touched per call / time per call, at the best level.');
  lines.push('');
  lines.push(`| kernel | dim | ${levels.map((l) => `${l} ns`).join(' | ')} | best GB/s |`);
  lines.push(`|---|---:|${levels.map(() => '---:').join('|')}|---:|`);
  const kernels = [...new Set(json.kernels.map((x) => x.kernel))];
  for (const kernel of kernels) {
    for (const dim of [...new Set(json.kernels.map((x) => x.dim))]) {
      const row = levels.map((l) => json.kernels.find((x) => x.kernel === kernel && x.dim === dim && x.level === l));
      if (row.every((x) => !x)) continue;
      const best = row.filter((x): x is KernelResult => !!x).reduce((p, c) => (c.ns < p.ns ? c : p));
      lines.push(
        `| ${kernel} | ${dim} | ${row.map((x) => (x ? fmt(x.ns) : '-')).join(' | ')} | ${fmt(best.gbPerS, 2)} |`,
      );
    }
  }
  lines.push('');
  lines.push('## Ratios (speed-up; raw = per call incl. N-API overhead, net = overhead subtracted)');
  lines.push('');
  for (const r of json.ratios.kernels) {
    lines.push(
      `- ${r.kernel} ${r.dim}-d, ${r.faster} vs ${r.than}: ${r.raw.toFixed(2)}x raw, ${r.net.toFixed(2)}x net`,
    );
  }
  const e = json.exactKnn;
  lines.push(
    `- exactKnn (${e.n} x ${e.dim} base, ${e.nq} queries, k=${e.k}, 1 thread, ${e.simdLevel}) vs a TypeScript loop: ` +
      `${e.speedup.toFixed(1)}x (${fmt(e.nativeMsMin, 2)} ms vs ${fmt(e.tsMsMin, 1)} ms, fastest of ${e.reps}; ` +
      `medians ${fmt(e.nativeMsMedian, 2)} vs ${fmt(e.tsMsMedian, 1)} ms; ids agree ${(e.idsAgreeFraction * 100).toFixed(1)}%)`,
  );
  lines.push('');
  return lines.join('\n');
}

function buildJson(
  opts: Options,
  levels: SimdLevelName[],
  overhead: Partial<Record<SimdLevelName, number>>,
  results: KernelResult[],
  knn: Awaited<ReturnType<typeof exactKnnComparison>>,
) {
  const best = levels[levels.length - 1]!;
  const ratios = [
    ratio(results, 'l2sq', 960, 'avx512', 'avx2'),
    ratio(results, 'l2sq', 960, 'avx512', 'scalar'),
    ratio(results, 'l2sq', 960, 'avx2', 'scalar'),
    ratio(results, 'bitplaneIp', 960, best, 'scalar'),
    ratio(results, 'fastscan', 960, best, 'scalar'),
    ratio(results, 'dotTile16', 960, best, 'scalar'),
  ].filter((x): x is NonNullable<typeof x> => x !== null && x.faster !== x.than);
  return {
    meta: {
      cpu: cpuModel(),
      cpuFlags: cpuFlags(),
      commit: gitCommitFull(),
      date: new Date().toISOString(),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      affinity: {
        cpusAllowedList: cpusAllowedList() ?? 'unknown',
        availableParallelism: os.availableParallelism(),
        nativePool: native.poolInfo(),
      },
      detectedLevel: native.detectedLevel(),
      levels,
      loadAverageStart: loadAtStart,
      loadAverageEnd: os.loadavg(),
      method: {
        tinybench: {
          timeMsPerTask: opts.timeMs,
          rounds: ROUNDS,
          timeMsPerRound: opts.timeMs / ROUNDS,
          warmupMs: Math.min(30, opts.timeMs / ROUNDS),
        },
        note: 'each sample loops the call `batch` times; ns = median sample / batch, fastest of the interleaved rounds; netNs subtracts callOverheadNs[level] (l2sq at d=1)',
        queryBits: QUERY_BITS,
        dotTileNp: TILE_NP,
        fastscanPairs: 'dim/8 per block of 32 codes',
      },
    },
    callOverheadNs: overhead,
    kernels: results,
    ratios: { kernels: ratios },
    exactKnn: knn,
  };
}

async function main(): Promise<void> {
  const opts = optionsFromArgs(process.argv.slice(2));
  const detected = native.detectedLevel();
  const levels = ALL_LEVELS.slice(0, ALL_LEVELS.indexOf(detected) + 1);
  console.log(
    `CPU ${cpuModel()}, affinity ${cpusAllowedList() ?? '?'}, levels ${levels.join(', ')}, load ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );

  // Call overhead: l2sq at d = 1 (the kernel itself is a couple of ns).
  const overhead: Partial<Record<SimdLevelName, number>> = {};
  const one = new Float32Array([1]);
  const kernels = loadTestingAddon().kernels;
  for (let round = 0; round < ROUNDS; round++) {
    for (const level of levels) {
      const ns = (await timeCall(`overhead ${level}`, () => kernels.l2sq(level, one, one), opts.timeMs / ROUNDS)).ns;
      overhead[level] = Math.min(overhead[level] ?? Infinity, ns);
    }
  }
  console.log(`N-API call overhead (l2sq at d=1): ${levels.map((l) => `${l} ${fmt(overhead[l]!)} ns`).join(', ')}`);

  const results: KernelResult[] = [];
  const header = `${'kernel'.padEnd(13)} ${'dim'.padStart(5)} ${levels.map((l) => `${l} ns`.padStart(11)).join(' ')} ${'GB/s (best)'.padStart(12)}`;
  console.log(header);
  for (const dim of opts.dims) {
    for (const c of kernelCases(dim)) {
      // Levels interleaved over ROUNDS rounds; the fastest round counts, so
      // one burst of outside activity does not skew a single cell.
      const timings = new Map<SimdLevelName, Awaited<ReturnType<typeof timeCall>>>();
      for (let round = 0; round < ROUNDS; round++) {
        for (const level of levels) {
          const t = await timeCall(`${c.kernel} ${level} ${dim}`, () => c.call(level), opts.timeMs / ROUNDS);
          const prev = timings.get(level);
          if (!prev || t.ns < prev.ns) timings.set(level, t);
        }
      }
      const row: KernelResult[] = [];
      for (const level of levels) {
        const t = timings.get(level)!;
        const netNs = Math.max(0.1, t.ns - overhead[level]!);
        const r: KernelResult = {
          kernel: c.kernel,
          level,
          dim,
          shape: c.shape,
          batch: t.batch,
          ns: t.ns,
          netNs,
          bytes: c.bytes,
          gbPerS: c.bytes / t.ns,
          rmePercent: t.rme,
          samples: t.samples,
        };
        row.push(r);
        results.push(r);
      }
      const best = row.reduce((p, q) => (q.ns < p.ns ? q : p));
      console.log(
        `${c.kernel.padEnd(13)} ${String(dim).padStart(5)} ${row.map((x) => fmt(x.ns).padStart(11)).join(' ')} ${fmt(best.gbPerS, 2).padStart(12)}`,
      );
    }
  }

  console.log('exactKnn (1 thread) vs TypeScript brute force ...');
  const knn = await exactKnnComparison(opts.quick);
  const json = buildJson(opts, levels, overhead, results, knn);
  for (const r of json.ratios.kernels) {
    console.log(
      `  ${r.kernel} ${r.dim}-d ${r.faster} vs ${r.than}: ${r.raw.toFixed(2)}x raw, ${r.net.toFixed(2)}x net`,
    );
  }
  console.log(
    `  exactKnn ${knn.n}x${knn.dim}, ${knn.nq} queries, k=${knn.k}: native ${fmt(knn.nativeMsMin, 2)} ms, TypeScript ${fmt(knn.tsMsMin, 1)} ms (fastest of ${knn.reps}) -> ${knn.speedup.toFixed(1)}x`,
  );

  if (opts.out) {
    mkdirSync(path.dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, JSON.stringify(json, null, 2) + '\n');
    const md = opts.out.replace(/\.json$/, '') + '.md';
    writeFileSync(md, markdown(json, levels));
    console.log(`wrote ${opts.out} and ${md}`);
  }
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`kernels: error: ${err.message} (options: --time=<ms> --dims=a,b --out=<file> --quick)`);
    process.exitCode = 2;
  } else {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  }
});
