/**
 * The ANN benchmark runner: loads a dataset, builds and measures rabitq,
 * runs the requested peers, prints tables and writes JSON / SVG / markdown.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CliIo } from '../cli/io.js';
import { loadDataset, resolveDatasetPaths } from './dataset.js';
import { InputError, errorLine, isInputError } from '../cli/errors.js';
import { DEFAULT_FAISS_METHODS, benchFaiss } from './faiss.js';
import { affinityWarnings, gitCommit, machineInfo } from './machine.js';
import { PeerUnavailable, type PeerContext } from './peer_context.js';
import { buildProgressBar } from './progress.js';
import { checkGroundTruthMetric } from './gt_check.js';
import { fileReaders } from './readers.js';
import { benchRabitq, rabitqLabel, type RabitqVariant } from './rabitq.js';
import {
  curveOf,
  fmtBytes,
  fmtInt,
  fmtMiB,
  fmtSeconds,
  summarize,
  summaryMarkdown,
  summaryTableLines,
  sweepTable,
  sweepTableLines,
} from './report.js';
import { renderRecallQpsSvg } from './svg.js';
import { nowNs, roundSig } from './stats.js';
import { benchHnswlib, defaultEfSweep } from './peers/hnswlib.js';
import { benchJsIvfFlat } from './peers/js_ivfflat.js';
import type { BenchMetric, BenchReport, Engine, MethodResult, Mode, PeerName, PeerStatus } from './types.js';

export interface BenchOptions {
  data?: string;
  /** Load the rabitq index from this file if it exists, else build and save it there. */
  indexFile?: string;
  base?: string;
  query?: string;
  gt?: string;
  clusters?: number;
  /** bits per dimension, one rabitq index per value (undefined: the library's default) */
  bits?: number[];
  /** build the rabitq indexes without raw vectors */
  noVectors?: boolean;
  /** l2 (default), cosine or ip: the index, the peers and the ground truth check use it */
  metric?: BenchMetric;
  /** null/undefined: a default ladder up to the number of clusters */
  nprobe?: number[] | null;
  /** efSearch sweep for HNSW peers (default: a ladder from k to 512) */
  efSearch?: number[] | null;
  k: number;
  threads: number;
  runs: number;
  warmup: number;
  /** minimum duration of one timed run in ms (the query set is repeated); default 100 */
  minRunMs?: number;
  nq?: number;
  modes: Mode[];
  compare: PeerName[];
  /** output directory; null = write nothing */
  out: string | null;
  name?: string;
  seed: number;
  hnswM: number;
  faissMethods?: string[];
  /** show a progress bar during the build (needs a TTY) */
  progress: boolean;
  /** print per-point progress lines of the peers on stderr */
  verbose?: boolean;
  commandLine: string[];
  title?: string;
}

export interface BenchOutcome {
  report: BenchReport;
  files: { json: string; svg: string; md: string } | null;
}

export const DEFAULT_BENCH_OPTIONS = {
  k: 10,
  threads: 1,
  runs: 5,
  warmup: 1,
  modes: ['single'] as Mode[],
  compare: [] as PeerName[],
  out: 'bench/results',
  seed: 42,
  hnswM: 16,
  progress: false,
} as const;

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '') || 'bench';
}

/** Runs the benchmark; its text goes to `io` line by line (the CLI's CliIo). */
export async function runBench(opts: BenchOptions, io: CliIo, engineArg?: Engine): Promise<BenchOutcome> {
  const outLine = (line: string) => io.stdout(line + '\n');
  const errLine = (line: string) => io.stderr(line + '\n');
  const started = nowNs();
  const minRunMs = opts.minRunMs ?? 100;
  const paths = resolveDatasetPaths(opts);
  // Load and check the dataset first: input errors surface before the
  // native library is touched.
  const dataset = await loadDataset(engineArg ?? fileReaders, paths, { nq: opts.nq, k: opts.k });
  if (opts.clusters !== undefined && opts.clusters > dataset.base.count) {
    throw new InputError(`--clusters ${opts.clusters} exceeds the ${dataset.base.count} base vectors`);
  }
  const metric = opts.metric ?? 'l2';
  const gtCheck = checkGroundTruthMetric(dataset, metric);
  let engine = engineArg;
  if (!engine) {
    try {
      const { loadEngine } = await import('./engine.js');
      engine = await loadEngine();
    } catch (err) {
      throw new Error(`cannot load the rabitq library: ${errorLine(err)}`);
    }
  }
  const machine = machineInfo(engine.simdLevel());
  const commit = gitCommit();
  const date = new Date().toISOString();
  const name = safeName(opts.name ?? paths.name);

  outLine(opts.title ?? `rabitq bench: ${name}`);
  outLine(`  cpu       ${machine.cpuModel} (${machine.logicalCpus} logical CPUs)`);
  outLine(`  simd      ${machine.simdLevel}`);
  outLine(`  affinity  CPUs ${machine.cpusAllowedList} (${machine.cpusAllowed} allowed)`);
  outLine(`  commit    ${commit}`);
  outLine(`  date      ${date}`);
  outLine(`  node      ${machine.node} ${machine.platform}-${machine.arch}`);
  const warnings = affinityWarnings(machine, opts.threads);
  for (const w of warnings) errLine(`warning: ${w}`);

  const gt = dataset.groundTruth;
  outLine('');
  outLine(
    `dataset ${paths.name}: ${fmtInt(dataset.base.count)} base x ${dataset.dim} dims, ` +
      `${fmtInt(dataset.queries.count)} queries` +
      (dataset.queries.count < dataset.queryCountInFile ? ` (of ${fmtInt(dataset.queryCountInFile)})` : '') +
      `, ground truth top-${gt.dim}; k = ${opts.k}; metric ${metric}`,
  );
  outLine(
    `  ground truth: top-${gtCheck.k} of ${gtCheck.queries} sampled queries match exact ${metric} search for ` +
      `${(gtCheck.agreement * 100).toFixed(0)}% of the ids` +
      (gtCheck.l2Agreement !== null ? ` (l2: ${(gtCheck.l2Agreement * 100).toFixed(0)}%)` : ''),
  );

  // ------------------------------------------------------------------ rabitq
  const bar = buildProgressBar(opts.progress);
  let table: ReturnType<typeof sweepTable> | null = null;
  const variants: RabitqVariant[] = (opts.bits ?? [undefined]).map((bits) => ({
    ...(bits !== undefined ? { bits } : {}),
    ...(opts.noVectors ? { noVectors: true } : {}),
  }));
  if (variants.length > 1 && opts.indexFile && !opts.indexFile.includes('{bits}')) {
    throw new InputError('with several --bits, --index needs {bits} in its name (one file per bits value)');
  }
  let rabitq: Awaited<ReturnType<typeof benchRabitq>> | undefined;
  const rabitqMethods: MethodResult[] = [];
  for (const variant of variants) {
    const indexFile = opts.indexFile?.replaceAll('{bits}', String(variant.bits ?? 'default'));
    let result;
    try {
      result = await benchRabitq({
        ...variant,
        engine,
        dataset,
        ...(indexFile ? { indexFile } : {}),
        clusters: opts.clusters,
        metric,
        seed: opts.seed,
        threads: opts.threads,
        k: opts.k,
        nprobe: opts.nprobe ?? null,
        modes: opts.modes,
        runs: opts.runs,
        warmup: opts.warmup,
        minRunMs,
        onProgress: bar.onProgress,
        onBuilt: (index, ms) => {
          bar.stop();
          const bs = index.buildStats();
          const mem = index.memoryUsage() as unknown as Record<string, number>;
          outLine('');
          outLine(
            Number.isNaN(ms)
              ? `rabitq index: ${fmtInt(index.size)} vectors, ${index.numClusters} clusters, loaded from ${indexFile}`
              : `rabitq index: ${fmtInt(index.size)} vectors, ${index.numClusters} clusters, built in ` +
                  `${fmtSeconds(ms / 1000)} s (train ${fmtSeconds(bs.trainMs / 1000)} s, ` +
                  `assign ${fmtSeconds(bs.assignMs / 1000)} s, encode ${fmtSeconds(bs.encodeMs / 1000)} s; ` +
                  `${opts.threads} thread${opts.threads === 1 ? '' : 's'})`,
          );
          const parts = Object.entries(mem)
            .filter(([key]) => key !== 'total')
            .map(([key, v]) => `${key} ${fmtBytes(v / Math.max(1, index.size))}`)
            .join(', ');
          outLine(
            `  memory ${fmtMiB(mem.total ?? 0)} = ${fmtBytes((mem.total ?? 0) / Math.max(1, index.size))} bytes/vector (${parts})`,
          );
        },
        onModeStart: (mode) => {
          outLine('');
          outLine(`${rabitqLabel(mode, opts.threads, variant)}, median of ${opts.runs} runs:`);
          table = sweepTable('nprobe', { latency: mode === 'single', stats: true });
          for (const l of table.header()) outLine(l);
        },
        onPoint: (_mode, point) => {
          if (table) outLine(table.row(point));
        },
      });
    } finally {
      bar.stop();
    }
    rabitqMethods.push(...result.methods);
    // The variants share seed and clusters, so the first one's centroids and
    // nprobe ladder serve the peers; the others' memory is released.
    rabitq ??= result;
  }
  if (!rabitq) throw new InputError('no rabitq variant to measure');
  const peakRssBytesRabitq = peakRssBytes();
  const methods: MethodResult[] = [...rabitqMethods];
  const k = opts.k;
  const efSearch = opts.efSearch && opts.efSearch.length ? opts.efSearch : defaultEfSweep(k);

  // ------------------------------------------------------------------- peers
  const peers: PeerStatus[] = [];
  if (opts.compare.length) {
    const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'rabitq-bench-'));
    try {
      const ctx: PeerContext = {
        dataset,
        k,
        metric,
        runs: opts.runs,
        warmup: opts.warmup,
        minRunMs,
        threads: opts.threads,
        modes: opts.modes,
        clusters: rabitq.index.numClusters,
        nprobe: rabitq.nprobe,
        efSearch,
        centroids: rabitq.index.centroids(),
        seed: opts.seed,
        hnswM: opts.hnswM,
        faissMethods: opts.faissMethods ?? DEFAULT_FAISS_METHODS,
        tmpDir,
        log: (line) => {
          if (opts.verbose) errLine(line);
        },
      };
      for (const peer of opts.compare) {
        outLine('');
        outLine(`peer ${peer}:`);
        const t0 = nowNs();
        try {
          let found: MethodResult[];
          let version: string | undefined;
          if (peer === 'js') {
            found = await benchJsIvfFlat(ctx);
          } else if (peer === 'hnswlib') {
            ({ methods: found, version } = await benchHnswlib(ctx));
          } else {
            // faiss progress on stderr is always shown: its builds can be long.
            ({ methods: found, version } = await benchFaiss({ ...ctx, log: (l) => errLine(l) }));
          }
          for (const m of found) {
            outLine(`${m.label}${m.status === 'failed' ? ' FAILED: ' + (m.error ?? '') : ''}`);
            if (m.notes) outLine(`  (${m.notes})`);
            outLine(`  build ${fmtSeconds(m.buildSeconds)} s, ${fmtBytes(m.bytesPerVector)} bytes/vector`);
            if (m.points.length) for (const l of sweepTableLines(m)) outLine(l);
          }
          methods.push(...found);
          peers.push({ peer, status: 'ok', ...(version ? { version } : {}) });
        } catch (err) {
          if (isInputError(err)) throw err;
          if (err instanceof PeerUnavailable) {
            outLine(`  skipped: ${err.message}`);
            peers.push({ peer, status: 'skipped', reason: err.message });
          } else {
            const reason = errorLine(err);
            outLine(`  FAILED after ${fmtSeconds((nowNs() - t0) / 1e9)} s: ${reason}`);
            peers.push({ peer, status: 'failed', reason });
            methods.push({
              method: peer === 'js' ? 'js-ivfflat' : peer,
              label: peer === 'js' ? 'js IVF-Flat' : peer,
              peer,
              mode: 'single',
              threads: 1,
              status: 'failed',
              error: reason,
              buildSeconds: null,
              bytesPerVector: null,
              points: [],
            });
          }
        }
      }
    } finally {
      await rm(tmpDir, { recursive: true, force: true });
    }
  }

  // ----------------------------------------------------------------- summary
  const summary = summarize(methods);
  const report: BenchReport = {
    schema: 'rabitq-bench/1',
    name,
    date,
    commit,
    commandLine: opts.commandLine,
    machine,
    dataset: {
      name: paths.name,
      basePath: paths.base,
      queryPath: paths.query,
      groundTruthPath: paths.groundTruth,
      dim: dataset.dim,
      baseCount: dataset.base.count,
      queryCount: dataset.queries.count,
      queryCountInFile: dataset.queryCountInFile,
      groundTruthRows: gt.count,
      groundTruthColumns: gt.dim,
    },
    config: {
      metric,
      clusters: rabitq.index.numClusters,
      nprobe: rabitq.nprobe,
      efSearch,
      k,
      threads: opts.threads,
      runs: opts.runs,
      warmup: opts.warmup,
      minRunMs,
      modes: opts.modes,
      compare: opts.compare,
      seed: opts.seed,
    },
    methods,
    peers,
    summary,
    warnings,
    peakRssBytesRabitq,
    peakRssBytes: peakRssBytes(),
    durationSeconds: roundSig((nowNs() - started) / 1e9),
  };

  outLine('');
  outLine('summary: QPS at recall@10 (interpolated; n/a = never reached)');
  for (const l of summaryTableLines(summary)) outLine(l);
  outLine('');
  outLine(
    `peak RSS ${fmtMiB(report.peakRssBytes)}` +
      (opts.compare.length ? ` (${fmtMiB(peakRssBytesRabitq)} before the peers)` : ''),
  );

  let files: BenchOutcome['files'] = null;
  if (opts.out !== null) {
    await mkdir(opts.out, { recursive: true });
    const base = path.join(opts.out, name);
    files = { json: `${base}.json`, svg: `${base}.svg`, md: `${base}.md` };
    await writeFile(files.json, JSON.stringify(report, null, 2) + '\n');
    const series = methods
      .filter((m) => m.status === 'ok')
      .map((m) => ({ label: m.label, points: curveOf(m) }))
      .filter((s) => s.points.length > 0);
    await writeFile(
      files.svg,
      renderRecallQpsSvg(series, {
        title: `${paths.name}: recall@10 vs QPS (k=${k}, ${dataset.queries.count} queries)`,
      }),
    );
    await writeFile(files.md, summaryMarkdown(report));
    outLine(`wrote ${files.json}, ${files.svg}, ${files.md}`);
  }
  return { report, files };
}
