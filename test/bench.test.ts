import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qpsAtRecall, upperEnvelope } from '../src/bench/envelope.js';
import { InputError } from '../src/cli/errors.js';
import { faissRowsToMethods, parseFaissOutput } from '../src/bench/faiss.js';
import { affinityWarnings, parseCpuList } from '../src/bench/machine.js';
import { computeRecalls, timeBatch, timeSingle } from '../src/bench/measure.js';
import { summarize } from '../src/bench/report.js';
import { runBench, type BenchOptions } from '../src/bench/runner.js';
import { median, nowNs, percentile } from '../src/bench/stats.js';
import { escapeXml, renderRecallQpsSvg } from '../src/bench/svg.js';
import type { BenchReport, Engine, IndexLike, MachineInfo, MethodResult } from '../src/bench/types.js';
import { bruteForceGt, syntheticVectors, writeSyntheticDataset } from '../src/bench/synthetic.js';
import { readFvecs, readIvecs } from '../src/io.js';
import { JsIvfFlat, trainKMeans } from '../src/bench/peers/js_ivfflat.js';

// --------------------------------------------------------------- test data

const writeDataset = writeSyntheticDataset;

/**
 * In-process stand-in for the native library: exact IVF-Flat with search
 * statistics, so the runner can be tested without the addon.
 */
function fakeEngine(): Engine {
  return {
    simdLevel: () => 'scalar',
    async buildIndex(vectors, opts) {
      const dim = opts.dim;
      const n = vectors.length / dim;
      const nc = opts.numClusters ?? 8;
      const t0 = performance.now();
      opts.onProgress?.({ phase: 'train', done: 0, total: 1 });
      const cent = trainKMeans(vectors, dim, nc, { seed: opts.seed ?? 1, iterations: 5 });
      opts.onProgress?.({ phase: 'train', done: 1, total: 1 });
      const t1 = performance.now();
      const ivf = JsIvfFlat.build(vectors, dim, { centroids: cent });
      opts.onProgress?.({ phase: 'assign', done: n, total: n });
      opts.onProgress?.({ phase: 'encode', done: n, total: n });
      const t2 = performance.now();
      const statsFor = (nq: number, nprobe: number) => ({
        queries: nq,
        clustersProbed: nq * nprobe,
        codesScanned: Math.round((nq * nprobe * n) / nc),
        reranked: nq * 5,
      });
      const index: IndexLike = {
        dim,
        size: n,
        numClusters: nc,
        search(q, o) {
          const ids = ivf.search(q, o.k, o.nprobe);
          return { ids, distances: new Float32Array(o.k), ...(o.stats ? { stats: statsFor(1, o.nprobe) } : {}) };
        },
        async searchBatch(qs, o) {
          const nq = qs.length / dim;
          const ids = new Int32Array(nq * o.k);
          for (let i = 0; i < nq; i++)
            ivf.search(qs.subarray(i * dim, (i + 1) * dim), o.k, o.nprobe, ids.subarray(i * o.k, (i + 1) * o.k));
          return { ids, distances: new Float32Array(nq * o.k), ...(o.stats ? { stats: statsFor(nq, o.nprobe) } : {}) };
        },
        memoryUsage: () => ({
          codes: n * dim,
          factors: n * 12,
          ids: n * 4,
          vectors: n * dim * 4,
          centroids: nc * dim * 4,
          total: n * dim * 5 + n * 16 + nc * dim * 4,
        }),
        buildStats: () => ({ trainMs: t1 - t0, assignMs: (t2 - t1) / 2, encodeMs: (t2 - t1) / 2 }),
        centroids: () => cent,
      };
      return index;
    },
    readFvecs: (p) => readFvecs(p),
    readBvecs: () => Promise.reject(new Error('bvecs not supported by the fake engine')),
    readIvecs: (p) => readIvecs(p),
  };
}

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  // runBench writes whole lines, each ending in '\n'
  const lines = (into: string[]) => (t: string) => void into.push(...t.replace(/\n$/, '').split('\n'));
  return { io: { stdout: lines(out), stderr: lines(err), isTTY: false }, out, err };
}

function baseOptions(dir: string, over: Partial<BenchOptions> = {}): BenchOptions {
  return {
    data: dir,
    clusters: 8,
    nprobe: [1, 2, 4, 8],
    k: 10,
    threads: 1,
    runs: 2,
    warmup: 1,
    minRunMs: 0,
    modes: ['single'],
    compare: [],
    out: null,
    seed: 7,
    hnswM: 16,
    progress: false,
    commandLine: ['test'],
    ...over,
  };
}

let tmp: string;
let dataDir: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'rabitq-bench-test-'));
  dataDir = path.join(tmp, 'tiny');
  await writeDataset(dataDir);
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

// ------------------------------------------------------------ interpolation

describe('qpsAtRecall / upperEnvelope', () => {
  const curve = [
    { recall: 0.8, qps: 1000 },
    { recall: 0.9, qps: 800 },
    { recall: 0.96, qps: 500 },
    { recall: 0.995, qps: 100 },
  ];

  it('returns the QPS of a point exactly at the target', () => {
    expect(qpsAtRecall(curve, 0.9)).toBe(800);
    expect(qpsAtRecall(curve, 0.995)).toBe(100);
  });

  it('interpolates linearly in recall between bracketing points', () => {
    expect(qpsAtRecall(curve, 0.95)).toBeCloseTo(800 + ((0.95 - 0.9) / (0.96 - 0.9)) * (500 - 800), 9);
    expect(qpsAtRecall(curve, 0.85)).toBeCloseTo(900, 9);
  });

  it('returns null when the target is never reached', () => {
    expect(qpsAtRecall(curve, 0.999)).toBeNull();
    expect(qpsAtRecall([], 0.5)).toBeNull();
  });

  it('uses the fastest point when every point is above the target', () => {
    expect(qpsAtRecall(curve, 0.5)).toBe(1000);
  });

  it('ignores dominated points of a non-monotone curve', () => {
    // 0.85 @ 300 is dominated by 0.9 @ 800; recall dips at the last sweep value.
    const messy = [
      { recall: 0.8, qps: 1000 },
      { recall: 0.85, qps: 300 },
      { recall: 0.9, qps: 800 },
      { recall: 0.97, qps: 200 },
      { recall: 0.96, qps: 100 },
    ];
    const env = upperEnvelope(messy);
    expect(env).toEqual([
      { recall: 0.8, qps: 1000 },
      { recall: 0.9, qps: 800 },
      { recall: 0.97, qps: 200 },
    ]);
    expect(qpsAtRecall(messy, 0.85)).toBeCloseTo(900, 9);
    expect(qpsAtRecall(messy, 0.95)).toBeCloseTo(800 - (0.05 / 0.07) * 600, 9);
    // shuffled input gives the same answer
    expect(qpsAtRecall([...messy].reverse(), 0.95)).toBeCloseTo(qpsAtRecall(messy, 0.95)!, 9);
  });

  it('keeps the faster of two points with equal recall', () => {
    expect(
      upperEnvelope([
        { recall: 0.9, qps: 10 },
        { recall: 0.9, qps: 20 },
      ]),
    ).toEqual([{ recall: 0.9, qps: 20 }]);
    expect(
      qpsAtRecall(
        [
          { recall: 0.9, qps: 10 },
          { recall: 0.9, qps: 20 },
        ],
        0.9,
      ),
    ).toBe(20);
  });

  it('skips non-finite and zero-QPS points', () => {
    expect(
      qpsAtRecall(
        [
          { recall: NaN, qps: 5 },
          { recall: 0.99, qps: 0 },
          { recall: 0.95, qps: 50 },
        ],
        0.9,
      ),
    ).toBe(50);
  });
});

describe('stats helpers', () => {
  it('median and nearest-rank percentile', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([5], 99)).toBe(5);
  });

  it('parses CPU lists and warns about affinity', () => {
    expect(parseCpuList('0-3,8,10-11')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    const m: MachineInfo = {
      cpuModel: 'x',
      logicalCpus: 4,
      cpusAllowedList: '0-3',
      cpusAllowed: 4,
      simdLevel: 'scalar',
      node: 'v20',
      platform: 'linux',
      arch: 'x64',
      totalMemoryBytes: 1,
      hostname: 'h',
    };
    expect(affinityWarnings(m, 1).some((w) => w.includes('not pinned'))).toBe(true);
    expect(affinityWarnings({ ...m, cpusAllowedList: '1', cpusAllowed: 1 }, 1)).toEqual([]);
    expect(affinityWarnings({ ...m, cpusAllowedList: '1', cpusAllowed: 1 }, 2)[0]).toMatch(/--threads 2 exceeds/);
    expect(affinityWarnings({ ...m, logicalCpus: 1, cpusAllowedList: '0', cpusAllowed: 1 }, 1)).toEqual([]);
  });

  it('repeats the query set until a timed run lasts minRunMs', async () => {
    let calls = 0;
    const spin = () => {
      calls++;
      const end = nowNs() + 100_000;
      while (nowNs() < end);
    };
    const t0 = nowNs();
    const t = timeSingle(5, 2, 1, spin, 5);
    const elapsedMs = (nowNs() - t0) / 1e6;
    // 5 warm-up calls, then whole passes of 5 until each run lasted >= 5 ms
    expect(elapsedMs).toBeGreaterThanOrEqual(2 * 5);
    expect(calls).toBeGreaterThan(5 + 2 * 5);
    expect((calls - 5) % 5).toBe(0);
    expect(t.qpsRuns).toHaveLength(2);
    for (const q of t.qpsRuns) expect(q).toBeLessThanOrEqual(10_000);
    expect(t.meanLatencyUs!).toBeGreaterThanOrEqual(100);
    expect(t.p99LatencyUs!).toBeGreaterThanOrEqual(100);
    let batches = 0;
    const b = await timeBatch(
      10,
      3,
      0,
      async () => {
        batches++;
        spin();
      },
      2,
    );
    expect(batches).toBeGreaterThan(3);
    for (const q of b.qpsRuns) expect(q).toBeLessThanOrEqual(10 * 10_000);
    expect(b.meanLatencyUs).toBeNull();
  });

  it('computes recall@1/@10/@100 from k results and a k=100 pass', () => {
    const gt = { dim: 100, count: 1, data: Int32Array.from({ length: 100 }, (_, i) => i) };
    const ids10 = Int32Array.from([0, 1, 2, 3, 4, 50, 51, 52, 200, 201]);
    const ids100 = Int32Array.from({ length: 100 }, (_, i) => (i < 90 ? i : 1000 + i));
    const r = computeRecalls(gt, ids10, 10, ids100);
    expect(r.recall1).toBe(1);
    expect(r.recall10).toBeCloseTo(0.5, 12);
    expect(r.recall100).toBeCloseTo(0.9, 12);
    expect(computeRecalls(gt, ids10, 10, null).recall100).toBeNull();
  });
});

// ---------------------------------------------------------------------- SVG

describe('renderRecallQpsSvg', () => {
  it('draws one <path> per method with escaped labels', () => {
    const svg = renderRecallQpsSvg(
      [
        {
          label: 'rabitq (single)',
          points: [
            { recall: 0.8, qps: 20000 },
            { recall: 0.95, qps: 9000 },
            { recall: 0.99, qps: 3000 },
          ],
        },
        {
          label: 'faiss <ivf&pq>',
          points: [
            { recall: 0.7, qps: 30000 },
            { recall: 0.9, qps: 5000 },
          ],
        },
        { label: 'js', points: [{ recall: 0.99, qps: 150 }] },
      ],
      { title: 'sift "small"' },
    );
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<path /g)?.length).toBe(3);
    expect(svg).toContain('faiss &lt;ivf&amp;pq&gt;');
    expect(svg).toContain('sift &quot;small&quot;');
    expect(svg).not.toContain('NaN');
    // every path starts with a move and has one segment per extra point
    const ds = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]!);
    expect(ds[0]!.split(' ').length).toBe(3);
    expect(ds[2]!.startsWith('M')).toBe(true);
    // log-scale 1-2-5 ticks just cover the data range (150 .. 30k -> 100 .. 50k)
    expect(svg).toContain('>100<');
    expect(svg).toContain('>1k<');
    expect(svg).toContain('>50k<');
    expect(svg).not.toContain('>100k<');
    expect(svg).not.toContain('>50<');
    // balanced tags
    expect((svg.match(/<g[ >]/g) ?? []).length).toBe((svg.match(/<\/g>/g) ?? []).length);
  });

  it('renders an empty plot without paths', () => {
    const svg = renderRecallQpsSvg([]);
    expect(svg).toContain('</svg>');
    expect(svg).not.toContain('<path');
    expect(escapeXml(`a<b>&"'`)).toBe('a&lt;b&gt;&amp;&quot;&apos;');
  });
});

// -------------------------------------------------------------------- runner

function checkPoint(p: MethodResult['points'][number], runs: number) {
  for (const r of [p.recall1, p.recall10, p.recall100]) {
    expect(r).not.toBeNull();
    expect(r!).toBeGreaterThanOrEqual(0);
    expect(r!).toBeLessThanOrEqual(1);
  }
  expect(p.qps).toBeGreaterThan(0);
  expect(p.qpsRuns).toHaveLength(runs);
  expect(Math.min(...p.qpsRuns)).toBeLessThanOrEqual(p.qps);
  expect(Math.max(...p.qpsRuns)).toBeGreaterThanOrEqual(p.qps);
}

describe('runBench (fake engine)', () => {
  let report: BenchReport;
  let files: { json: string; svg: string; md: string } | null;
  let out: string[];

  beforeAll(async () => {
    const c = capture();
    const outDir = path.join(tmp, 'results');
    const res = await runBench(
      baseOptions(dataDir, { modes: ['single', 'batch'], compare: ['js'], out: outDir, name: 'tiny-test', runs: 3 }),
      c.io,
      fakeEngine(),
    );
    files = res.files;
    out = c.out;
    report = JSON.parse(await readFile(files!.json, 'utf8')) as BenchReport;
  });

  it('writes JSON, SVG and markdown named after --name', () => {
    expect(files).not.toBeNull();
    expect(path.basename(files!.json)).toBe('tiny-test.json');
    expect(path.basename(files!.svg)).toBe('tiny-test.svg');
    expect(path.basename(files!.md)).toBe('tiny-test.md');
  });

  it('records machine, commit, date, command line and dataset shape', () => {
    expect(report.schema).toBe('rabitq-bench/1');
    expect(report.name).toBe('tiny-test');
    expect(typeof report.commit).toBe('string');
    expect(report.commit.length).toBeGreaterThan(0);
    expect(Number.isNaN(Date.parse(report.date))).toBe(false);
    expect(report.commandLine).toEqual(['test']);
    expect(report.machine.simdLevel).toBe('scalar');
    expect(report.machine.cpuModel.length).toBeGreaterThan(0);
    expect(report.machine.cpusAllowed).toBeGreaterThanOrEqual(1);
    expect(report.machine.cpusAllowed).toBeLessThanOrEqual(report.machine.logicalCpus);
    expect(report.dataset).toMatchObject({
      name: 'tiny',
      dim: 8,
      baseCount: 600,
      queryCount: 20,
      queryCountInFile: 20,
      groundTruthRows: 20,
      groundTruthColumns: 100,
    });
    expect(report.config).toMatchObject({
      clusters: 8,
      nprobe: [1, 2, 4, 8],
      k: 10,
      threads: 1,
      runs: 3,
      warmup: 1,
      modes: ['single', 'batch'],
      compare: ['js'],
    });
    expect(report.peakRssBytes).toBeGreaterThan(1 << 20);
    expect(report.peakRssBytes).toBeGreaterThanOrEqual(report.peakRssBytesRabitq);
    expect(report.durationSeconds).toBeGreaterThan(0);
  });

  it('has consistent per-point numbers for every method', () => {
    expect(report.methods.map((m) => `${m.method}/${m.mode}`)).toEqual([
      'rabitq/single',
      'rabitq/batch',
      'js-ivfflat/single',
    ]);
    for (const m of report.methods) {
      expect(m.status).toBe('ok');
      expect(m.points.map((p) => p.value)).toEqual([1, 2, 4, 8]);
      expect(m.bytesPerVector!).toBeGreaterThan(0);
      expect(m.buildSeconds!).toBeGreaterThanOrEqual(0);
      for (const p of m.points) {
        checkPoint(p, 3);
        expect(p.param).toBe('nprobe');
        if (m.mode === 'single') {
          expect(p.meanLatencyUs!).toBeGreaterThan(0);
          expect(p.p99LatencyUs!).toBeGreaterThan(0);
          // mean latency and QPS describe the same runs
          expect(p.meanLatencyUs!).toBeGreaterThan(0.5 * (1e6 / Math.max(...p.qpsRuns)));
        } else {
          expect(p.meanLatencyUs).toBeNull();
          expect(p.p99LatencyUs).toBeNull();
        }
      }
      // probing every cluster of an exact IVF-Flat finds the true neighbours
      const last = m.points[m.points.length - 1]!;
      expect(last.recall10).toBe(1);
      expect(last.recall100).toBe(1);
      expect(last.recall10!).toBeGreaterThanOrEqual(m.points[0]!.recall10!);
    }
  });

  it('reports search statistics per query for rabitq only', () => {
    const single = report.methods[0]!;
    for (const p of single.points) {
      expect(p.clustersProbedPerQuery).toBe(p.value);
      expect(p.codesScannedPerQuery!).toBeCloseTo((p.value * 600) / 8, 3);
      expect(p.rerankedPerQuery).toBe(5);
    }
    for (const p of report.methods[2]!.points) expect(p.codesScannedPerQuery).toBeNull();
  });

  it('splits the build into phases that sum to at most the total', () => {
    const b = report.methods[0]!.build!;
    for (const v of [b.trainMs, b.assignMs, b.encodeMs]) expect(v).toBeGreaterThanOrEqual(0);
    expect(b.trainMs + b.assignMs + b.encodeMs).toBeLessThanOrEqual(b.totalMs * 1.001 + 1e-6);
    expect(report.methods[0]!.buildSeconds).toBeCloseTo(b.totalMs / 1000, 4);
    expect(report.methods[0]!.memory!.total).toBeGreaterThan(0);
  });

  it('summarizes QPS at the recall targets from the curves', () => {
    expect(report.summary).toHaveLength(3);
    for (const row of report.summary) {
      const m = report.methods.find((x) => x.label === row.label)!;
      expect(row.maxRecall10).toBe(1);
      const curve = m.points.map((p) => ({ recall: p.recall10!, qps: p.qps }));
      for (const [t, v] of [
        [0.9, row.qpsAt090],
        [0.95, row.qpsAt095],
        [0.99, row.qpsAt099],
      ] as const) {
        expect(v).not.toBeNull();
        expect(v!).toBeCloseTo(qpsAtRecall(curve, t)!, 0);
        expect(v!).toBeLessThanOrEqual(Math.max(...curve.map((c) => c.qps)) + 0.1);
      }
      expect(row.buildSeconds).toBe(m.buildSeconds);
      expect(row.bytesPerVector).toBe(m.bytesPerVector);
    }
    expect(report.peers).toEqual([{ peer: 'js', status: 'ok' }]);
  });

  it('writes an SVG with one curve per method and a markdown table', async () => {
    const svg = await readFile(files!.svg, 'utf8');
    expect(svg.match(/<path /g)?.length).toBe(3);
    expect(svg).toContain('rabitq (batch, 1 thread)');
    const md = await readFile(files!.md, 'utf8');
    expect(md).toContain('| method | QPS @ 0.90 | QPS @ 0.95 | QPS @ 0.99 | build (s) | bytes/vector |');
    expect(md.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| method')).length).toBe(3);
  });

  it('prints the machine header, sweep tables and summary', () => {
    const text = out.join('\n');
    for (const s of [
      'cpu ',
      'simd      scalar',
      'affinity  CPUs',
      'commit',
      'date',
      'R@10',
      'QPS@0.95',
      'peak RSS',
      'codes/q',
      'p99 us',
    ]) {
      expect(text).toContain(s);
    }
  });
});

describe('runBench input checks', () => {
  async function dataset(name: string, opts: Parameters<typeof writeDataset>[1]) {
    const dir = path.join(tmp, name);
    await writeDataset(dir, opts);
    return dir;
  }

  it('rejects mismatched dimensions', async () => {
    const dir = await dataset('baddim', { queryDim: 6 });
    await expect(runBench(baseOptions(dir), capture().io, fakeEngine())).rejects.toThrow(
      /dimension mismatch.*dim 8.*dim 6/,
    );
  });

  it('rejects ground truth with fewer rows than queries', async () => {
    const dir = await dataset('fewrows', { gtRows: 10 });
    await expect(runBench(baseOptions(dir), capture().io, fakeEngine())).rejects.toThrow(
      /ground truth has 10 rows but 20 queries/,
    );
    // ...unless --nq limits the queries
    const r = await runBench(baseOptions(dir, { nq: 10, nprobe: [8], runs: 1 }), capture().io, fakeEngine());
    expect(r.report.dataset.queryCount).toBe(10);
    expect(r.report.methods[0]!.points[0]!.recall10).toBe(1);
  });

  it('rejects ground truth narrower than k', async () => {
    const dir = await dataset('narrow', { gtK: 5 });
    await expect(runBench(baseOptions(dir), capture().io, fakeEngine())).rejects.toThrow(
      /ground truth has 5 neighbours per query but --k is 10/,
    );
  });

  it('rejects nprobe above the number of clusters and missing files', async () => {
    await expect(runBench(baseOptions(dataDir, { nprobe: [1, 9] }), capture().io, fakeEngine())).rejects.toBeInstanceOf(
      InputError,
    );
    await expect(runBench(baseOptions(path.join(tmp, 'nope')), capture().io, fakeEngine())).rejects.toThrow(
      /dataset directory not found/,
    );
    await expect(
      runBench(
        baseOptions(dataDir, {
          data: undefined,
          base: path.join(dataDir, 'base.fvecs'),
          query: path.join(dataDir, 'missing.fvecs'),
          gt: path.join(dataDir, 'groundtruth.ivecs'),
        }),
        capture().io,
        fakeEngine(),
      ),
    ).rejects.toThrow(/query file not found/);
  });

  it('reports a crashing peer as failed and keeps going', async () => {
    // A stand-in "python" that passes the import check, then dies.
    const fakePy = path.join(tmp, 'fake-python-crash.sh');
    await writeFile(
      fakePy,
      '#!/bin/sh\nif [ "$1" = "-c" ]; then echo 0.0-test; exit 0; fi\necho "boom: segfault in peer" >&2\nexit 3\n',
    );
    await chmod(fakePy, 0o755);
    process.env.RABITQ_PYTHON = fakePy;
    try {
      const c = capture();
      const r = await runBench(
        baseOptions(dataDir, { compare: ['faiss', 'js'], nprobe: [2, 8], runs: 1 }),
        c.io,
        fakeEngine(),
      );
      expect(r.report.peers[0]).toMatchObject({ peer: 'faiss', status: 'failed' });
      expect(r.report.peers[0]!.reason).toMatch(/exited with code 3: boom/);
      expect(r.report.peers[1]).toMatchObject({ peer: 'js', status: 'ok' });
      const failed = r.report.summary.find((s) => s.method === 'faiss')!;
      expect(failed.status).toBe('failed');
      expect(c.out.join('\n')).toMatch(/faiss +failed/);
    } finally {
      delete process.env.RABITQ_PYTHON;
    }
  });

  it('skips an unavailable peer with a reason', async () => {
    process.env.RABITQ_PYTHON = path.join(tmp, 'no-such-python');
    try {
      const r = await runBench(
        baseOptions(dataDir, { compare: ['faiss'], nprobe: [8], runs: 1 }),
        capture().io,
        fakeEngine(),
      );
      expect(r.report.peers[0]).toMatchObject({ peer: 'faiss', status: 'skipped' });
      expect(r.report.peers[0]!.reason).toMatch(/not runnable/);
      expect(r.report.methods).toHaveLength(1);
    } finally {
      delete process.env.RABITQ_PYTHON;
    }
  });

  it('passes the shared centroids and sweeps to the faiss peer and reads its JSON', async () => {
    // A stand-in peer that echoes its arguments into a well-formed document.
    const fakePy = path.join(tmp, 'fake-python-ok.sh');
    await writeFile(
      fakePy,
      [
        '#!/bin/sh',
        'if [ "$1" = "-c" ]; then echo 1.2.3; exit 0; fi',
        'echo "progress line" >&2',
        'args="$*"',
        'case "$args" in *"--centroids "*"centroids.fvecs"*) c=1;; *) c=0;; esac',
        'printf \'{"peer":"faiss","version":"1.2.3","args":"%s","results":[\' "$c"',
        'printf \'{"method":"ivfflat","mode":"single","param":"nprobe","value":2,"recall1":0.9,"recall10":0.8,"recall100":0.7,"qps":5000,"meanLatencyUs":200,"p99LatencyUs":300,"buildSeconds":0.1,"bytesPerVector":36,"error":null},\'',
        'printf \'{"method":"ivfflat","mode":"single","param":"nprobe","value":8,"recall1":1,"recall10":1,"recall100":1,"qps":2000,"meanLatencyUs":500,"p99LatencyUs":700,"buildSeconds":0.1,"bytesPerVector":36,"error":null},\'',
        'printf \'{"method":"ivfpq","mode":"single","param":"nprobe","value":2,"error":"training failed"}\'',
        "printf ']}\\n'",
      ].join('\n') + '\n',
    );
    await chmod(fakePy, 0o755);
    process.env.RABITQ_PYTHON = fakePy;
    try {
      const r = await runBench(
        baseOptions(dataDir, { compare: ['faiss'], nprobe: [2, 8], runs: 1 }),
        capture().io,
        fakeEngine(),
      );
      expect(r.report.peers[0]).toMatchObject({ peer: 'faiss', status: 'ok', version: '1.2.3' });
      const flat = r.report.methods.find((m) => m.method === 'faiss-ivfflat')!;
      expect(flat.status).toBe('ok');
      expect(flat.points.map((p) => [p.value, p.recall10, p.qps])).toEqual([
        [2, 0.8, 5000],
        [8, 1, 2000],
      ]);
      const pq = r.report.methods.find((m) => m.method === 'faiss-ivfpq')!;
      expect(pq.status).toBe('failed');
      expect(pq.error).toBe('training failed');
      const row = r.report.summary.find((s) => s.method === 'faiss-ivfflat')!;
      expect(row.qpsAt090).toBeCloseTo(3500, 6);
      expect(row.qpsAt099).toBeCloseTo(2000 + 3000 * (0.01 / 0.2), 6);
    } finally {
      delete process.env.RABITQ_PYTHON;
    }
  });
});

describe('faiss output parsing', () => {
  it('tolerates stray lines before the document and groups by method and mode', () => {
    const doc = parseFaissOutput(
      'warning: something\n' +
        JSON.stringify({
          peer: 'faiss',
          version: '1.9',
          results: [
            {
              method: 'faiss-hnsw',
              mode: 'single',
              param: 'efSearch',
              value: 16,
              recall10: 0.9,
              qps: 100,
              buildSeconds: 2,
              bytesPerVector: 600,
            },
            {
              method: 'hnsw',
              mode: 'batch',
              param: 'efSearch',
              value: 16,
              recall10: 0.9,
              qps: 300,
              buildSeconds: 2,
              bytesPerVector: 600,
            },
          ],
        }),
    );
    const ms = faissRowsToMethods(doc, 4);
    expect(ms.map((m) => [m.method, m.mode, m.threads])).toEqual([
      ['faiss-hnsw', 'single', 1],
      ['faiss-hnsw', 'batch', 4],
    ]);
    expect(ms[1]!.label).toBe('faiss hnsw (batch, 4 threads)');
    expect(summarize(ms)[1]!.qpsAt090).toBe(300);
    expect(() => parseFaissOutput('not json')).toThrow(/JSON/);
  });
});

// ------------------------------------------------------------- peers alone

describe('js IVF-Flat peer', () => {
  it('is exact when every list is probed and respects k', () => {
    const dim = 8;
    const base = syntheticVectors(300, dim, 3);
    const q = syntheticVectors(5, dim, 4);
    const gt = bruteForceGt(base, q, dim, 10);
    const idx = JsIvfFlat.build(base, dim, { numClusters: 6, seed: 3 });
    expect(idx.numClusters).toBe(6);
    expect(idx.size).toBe(300);
    for (let i = 0; i < 5; i++) {
      const ids = idx.search(q.subarray(i * dim, (i + 1) * dim), 10, 6);
      expect(Array.from(ids)).toEqual(Array.from(gt.subarray(i * 10, (i + 1) * 10)));
    }
    const few = idx.search(q.subarray(0, dim), 3, 1);
    expect(few).toHaveLength(3);
    expect(new Set(few).size).toBe(3);
    // k larger than the index pads with -1
    const tiny = JsIvfFlat.build(base.subarray(0, 4 * dim), dim, { numClusters: 2 });
    expect(Array.from(tiny.search(q.subarray(0, dim), 6, 2)).slice(4)).toEqual([-1, -1]);
  });
});

describe('hnswlib peer', () => {
  it('runs when hnswlib-node is usable, otherwise is skipped with a reason', async () => {
    const c = capture();
    const r = await runBench(
      baseOptions(dataDir, { compare: ['hnswlib'], nprobe: [8], runs: 1, efSearch: [10, 64] }),
      c.io,
      fakeEngine(),
    );
    const status = r.report.peers[0]!;
    if (status.status === 'skipped') {
      expect(status.reason).toMatch(/hnswlib/);
      return;
    }
    expect(status.status).toBe('ok');
    const m = r.report.methods.find((x) => x.peer === 'hnswlib')!;
    expect(m.points.map((p) => [p.param, p.value])).toEqual([
      ['efSearch', 10],
      ['efSearch', 64],
    ]);
    for (const p of m.points) checkPoint(p, 1);
    expect(m.points[1]!.recall10!).toBeGreaterThanOrEqual(0.95);
    expect(m.bytesPerVector!).toBeGreaterThan(8 * 4);
  });
});

// ------------------------------------------------------ with the real library

describe('runBench (native rabitq library)', () => {
  it('measures the real index on a tiny dataset with consistent numbers', async () => {
    const c = capture();
    const outDir = path.join(tmp, 'native-results');
    const { report, files } = await runBench(
      baseOptions(dataDir, {
        clusters: 8,
        nprobe: [1, 8],
        modes: ['single', 'batch'],
        threads: 2,
        runs: 2,
        out: outDir,
        name: 'native',
      }),
      c.io,
    );
    expect(['scalar', 'avx2', 'avx512']).toContain(report.machine.simdLevel);
    expect(report.methods.map((m) => m.mode)).toEqual(['single', 'batch']);
    for (const m of report.methods) {
      expect(m.status).toBe('ok');
      expect(m.threads).toBe(m.mode === 'batch' ? 2 : 1);
      for (const p of m.points) {
        checkPoint(p, 2);
        expect(p.clustersProbedPerQuery).toBe(p.value);
        expect(p.codesScannedPerQuery!).toBeGreaterThan(0);
        expect(p.codesScannedPerQuery!).toBeLessThanOrEqual(600);
        expect(p.rerankedPerQuery!).toBeGreaterThanOrEqual(0);
      }
      // probing all 8 clusters scans every code and, with re-ranking, is (nearly) exact
      const all = m.points[1]!;
      expect(all.codesScannedPerQuery).toBe(600);
      expect(all.recall10!).toBeGreaterThanOrEqual(0.95);
      expect(all.recall10!).toBeGreaterThanOrEqual(m.points[0]!.recall10!);
      const b = m.build!;
      for (const v of [b.trainMs, b.assignMs, b.encodeMs]) expect(v).toBeGreaterThanOrEqual(0);
      expect(b.trainMs + b.assignMs + b.encodeMs).toBeLessThanOrEqual(b.totalMs * 1.001 + 0.01);
      expect(m.bytesPerVector!).toBeGreaterThan(8 * 4);
    }
    // single and batch search give the same answers
    expect(report.methods[0]!.points.map((p) => p.recall10)).toEqual(report.methods[1]!.points.map((p) => p.recall10));
    const json = JSON.parse(await readFile(files!.json, 'utf8')) as BenchReport;
    expect(json.config.clusters).toBe(8);
    expect(json.summary).toHaveLength(2);
  });

  it('--bits / --no-vectors: one index per bits value, multi-bit estimates counted, none re-ranked', async () => {
    const c = capture();
    const { report } = await runBench(
      baseOptions(dataDir, { clusters: 8, nprobe: [8], bits: [1, 5], noVectors: true, runs: 1, out: null }),
      c.io,
    );
    expect(report.methods.map((m) => m.method)).toEqual(['rabitq-b1-nv', 'rabitq-b5-nv']);
    const [one, five] = report.methods.map((m) => m.points[0]!);
    // no raw vectors: nothing is re-ranked; only the multi-bit index computes extended estimates
    expect(one!.rerankedPerQuery).toBe(0);
    expect(five!.rerankedPerQuery).toBe(0);
    expect(five!.exEstimatedPerQuery!).toBeGreaterThan(0);
    expect(five!.recall10!).toBeGreaterThan(one!.recall10!);
    // the smaller index is the 1-bit one: codes of 5 bits per dimension cost more bytes
    expect(report.methods[1]!.bytesPerVector!).toBeGreaterThan(report.methods[0]!.bytesPerVector!);
    expect(c.out.join('\n')).toContain('rabitq 5-bit no raw vectors (single)');
  });
});
