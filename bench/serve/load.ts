/**
 * Load benchmark of `rabitq serve` on 127.0.0.1 (never another address):
 * per-request search vs the batcher at a fixed concurrency, then an overload
 * at a multiple of the sustainable rate of the batcher (or of --overload-mode).
 *
 *   taskset -c 0,1 node dist/bench/serve/load.js --index ../data/sift1m-cv/index.rbq \
 *     --queries ../data/sift1m-cv/query.bvecs --nprobe 48
 *
 * The load generator (autocannon) runs in this process. Without
 * --server-cpus the server shares its cores and the figures are for the
 * whole machine, client included; with it the server is pinned apart:
 *
 *   taskset -c 0 node dist/bench/serve/load.js ... --server-cpus 1 \
 *     --modes direct,batch,batch:16x1,batch:32x1,batch:128x2
 *
 * Modes: `direct` (serve --no-batch), `batch` (the batcher's defaults) and
 * `batch:<maxBatch>x<maxDelayMs>[x<maxInFlight>]` (the batcher with those
 * settings): the sweep behind the batcher's defaults. --overload-mode picks
 * the mode of the overload run (default `batch`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { IvfRabitqIndex, readBvecs, readFvecs } from '../../src/index.js';
import { UsageError, intOption, parseCommandLine, stringOption } from '../../src/cli/options.js';
import { cpuModel, cpusAllowedList, gitCommit } from '../../src/bench/machine.js';

const ROOT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '..' : '.',
);
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

const USAGE =
  'usage: load.js --index <file> --queries <fvecs|bvecs> [--nprobe 48] [--k 10] [--connections 64] [--duration 10] [--overload 4] [--overload-mode batch] [--workers 1] [--pause-after-shed-ms <ms>]\n';

const BATCH_MODE = /^batch(?::(\d+)x(\d+(?:\.\d+)?)(?:x(\d+))?)?$/;

function parseModes(list: string): string[] {
  const modes = list.split(',');
  for (const m of modes)
    if (m !== 'direct' && !BATCH_MODE.test(m))
      throw new UsageError(
        `--modes: unknown mode '${m}' (direct, batch, batch:<maxBatch>x<maxDelayMs>[x<maxInFlight>])`,
      );
  return modes;
}

function parseLoadArgs(argv: readonly string[]) {
  const { values } = parseCommandLine(argv, {
    index: { type: 'string' },
    queries: { type: 'string' },
    nprobe: { type: 'string' },
    k: { type: 'string' },
    connections: { type: 'string' },
    duration: { type: 'string' },
    overload: { type: 'string' },
    'overload-duration': { type: 'string' },
    'overload-mode': { type: 'string' },
    workers: { type: 'string' },
    runs: { type: 'string' },
    modes: { type: 'string' },
    'server-cpus': { type: 'string' },
    'pause-after-shed-ms': { type: 'string' },
    out: { type: 'string' },
    name: { type: 'string' },
  });
  const index = stringOption(values, 'index');
  const queries = stringOption(values, 'queries');
  if (!index || !queries) throw new UsageError('--index and --queries are required');
  return {
    indexFile: index,
    queries,
    nprobe: intOption(values, 'nprobe', 1, 1 << 20, 48),
    k: intOption(values, 'k', 1, 1024, 10),
    connections: intOption(values, 'connections', 1, 10000, 64),
    duration: intOption(values, 'duration', 1, 600, 10),
    overloadFactor: intOption(values, 'overload', 0, 100, 4),
    overloadDuration: intOption(values, 'overload-duration', 1, 600, 10),
    overloadMode: parseModes(stringOption(values, 'overload-mode') ?? 'batch')[0]!,
    workers: intOption(values, 'workers', 1, 64, 1),
    runs: intOption(values, 'runs', 1, 50, 3),
    modes: parseModes(stringOption(values, 'modes') ?? 'direct,batch'),
    serverCpus: stringOption(values, 'server-cpus'),
    // the server's default when not given
    pauseAfterShedMs: stringOption(values, 'pause-after-shed-ms'),
    name: stringOption(values, 'name') ?? 'serve-load',
    outDir: stringOption(values, 'out') ?? path.join(ROOT, 'bench', 'results'),
  };
}

let args: ReturnType<typeof parseLoadArgs>;
try {
  args = parseLoadArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`load.js: error: ${err.message}\n${USAGE}`);
  process.exit(2);
}
const {
  indexFile,
  nprobe,
  k,
  connections,
  duration,
  overloadFactor,
  overloadDuration,
  overloadMode,
  workers,
  runs,
  modes,
  serverCpus,
  pauseAfterShedMs,
  name,
  outDir,
} = args;
const CAPACITY = 1024;
const OVERLOAD_CONNECTIONS = 2 * CAPACITY + 4 * connections;

const qf = /\.bvecs$/i.test(args.queries)
  ? await readBvecs(args.queries, { asFloat32: true })
  : await readFvecs(args.queries);
const nq = Math.min(qf.count, 1000);
const dim = qf.dim;
const bodies: Buffer[] = [];
for (let i = 0; i < nq; i++) bodies.push(Buffer.from(qf.data.buffer, qf.data.byteOffset + i * dim * 4, dim * 4));

// Expected answers for the correctness check (search is deterministic).
const local = await IvfRabitqIndex.load(indexFile, { mmap: true });
const expected = bodies.map((_, i) =>
  Array.from(
    local.search(qf.data.subarray(i * dim, (i + 1) * dim), { k, nprobe }).ids as ArrayLike<number | bigint>,
    Number,
  ),
);

interface Server {
  child: ChildProcess;
  url: string;
  pids: number[];
}

async function startServe(mode: string): Promise<Server> {
  const batch = BATCH_MODE.exec(mode);
  const args = [
    CLI,
    'serve',
    indexFile,
    '--port',
    '0',
    '--nprobe',
    String(nprobe),
    '--k',
    String(k),
    '--capacity',
    String(CAPACITY),
    '--timeout-ms',
    '1000',
  ];
  if (!batch) args.push('--no-batch');
  else if (batch[1]) {
    args.push('--max-batch', batch[1], '--max-delay-ms', batch[2]!);
    if (batch[3]) args.push('--max-in-flight', batch[3]);
  }
  if (workers > 1) args.push('--workers', String(workers));
  if (pauseAfterShedMs !== undefined) args.push('--pause-after-shed-ms', pauseAfterShedMs);
  const child = serverCpus
    ? spawn('taskset', ['-c', serverCpus, process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 60_000);
    const check = () => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+);/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      } else setTimeout(check, 20);
    };
    check();
  });
  for (;;) {
    const ready = (err.match(/index ready/g) ?? []).length >= workers;
    if (
      ready &&
      (await fetch(`${url}/healthz`).then(
        (r) => r.status,
        () => 0,
      )) === 200
    )
      break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const pids = [child.pid!, ...[...err.matchAll(/worker (\d+)\]: index ready/g)].map((m) => Number(m[1]))];
  return { child, url, pids };
}

async function stopServe(s: Server): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => s.child.on('exit', (code) => resolve(code)));
  s.child.kill('SIGTERM');
  return exited;
}

function peakRssMiB(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* gone */
    }
  }
  return kb / 1024;
}

function run(
  url: string,
  opts: { connections: number; duration: number; overallRate?: number },
): Promise<autocannon.Result> {
  let next = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${url}/search`,
        connections: opts.connections,
        duration: opts.duration,
        ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
        timeout: 10,
        requests: [
          {
            method: 'POST',
            headers: { 'content-type': 'application/octet-stream' },
            setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] as unknown as string }),
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

/** Sends every query once while the load runs; counts answers that differ from a direct search. */
async function checkAnswers(
  url: string,
  stopAt: number,
): Promise<{ sent: number; ok: number; rejected: Record<string, number>; wrong: number }> {
  const out = { sent: 0, ok: 0, rejected: {} as Record<string, number>, wrong: 0 };
  let i = 0;
  while (performance.now() < stopAt) {
    const q = i++ % bodies.length;
    out.sent++;
    const r = await fetch(`${url}/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: bodies[q] as unknown as BodyInit,
    });
    if (r.status === 200) {
      const body = (await r.json()) as { ids: number[] };
      if (body.ids.join() === expected[q]!.join()) out.ok++;
      else out.wrong++;
    } else {
      out.rejected[r.status] = (out.rejected[r.status] ?? 0) + 1;
      await r.arrayBuffer();
    }
  }
  return out;
}

function summary(r: autocannon.Result) {
  return {
    requestsPerSecond: r.requests.average,
    requests: r.requests.total,
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
    status: Object.fromEntries(
      Object.entries(r.statusCodeStats ?? {}).map(([c, v]) => [c, (v as { count: number }).count]),
    ),
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}

const commit = gitCommit(ROOT);
const cpu = cpuModel();
const affinity = cpusAllowedList() ?? '?';
const report: Record<string, unknown> = {
  name,
  date: new Date().toISOString(),
  commit,
  cpu,
  cpusAllowed: affinity,
  serverCpus: serverCpus ?? affinity,
  node: process.version,
  index: indexFile,
  size: local.size,
  dim,
  nprobe,
  k,
  connections,
  duration,
  workers,
  runs,
  pauseAfterShedMs: pauseAfterShedMs ?? 'server default',
  commandLine: ['node', 'dist/bench/serve/load.js', ...process.argv.slice(2)].join(' '),
  modes: {} as Record<string, unknown>,
};
const log = (s: string) => process.stderr.write(s + '\n');
log(
  `load benchmark: ${local.size} x ${dim}, nprobe ${nprobe}, k ${k}, ${connections} connections, ${duration} s; CPUs ${affinity}; ${cpu}; commit ${commit}`,
);

// Modes alternate run by run so drift on the machine hits both alike; the
// run with the median throughput is reported for each mode.
// req/s of the overload mode at the fixed concurrency: the overload is a multiple of it
let sustainedRate = 0;
const perMode: Record<string, Array<ReturnType<typeof summary> & { peakRssMiB: number }>> = {};
for (let run_ = 0; run_ < runs; run_++) {
  for (const mode of modes) {
    const s = await startServe(mode);
    await run(s.url, { connections, duration: 2 }); // warm-up
    const r = await run(s.url, { connections, duration });
    const sum = { ...summary(r), peakRssMiB: peakRssMiB(s.pids) };
    (perMode[mode] ??= []).push(sum);
    log(
      `${mode.padEnd(6)} run ${run_ + 1}: ${sum.requestsPerSecond.toFixed(0)} req/s, p50 ${sum.latencyMs.p50} ms, p99 ${sum.latencyMs.p99} ms, non-2xx ${sum.non2xx}, errors ${sum.errors}`,
    );
    const code = await stopServe(s);
    if (code !== 0) log(`  server exited with ${code}`);
  }
}
for (const [mode, list] of Object.entries(perMode)) {
  const sorted = [...list].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  const med = sorted[Math.floor(sorted.length / 2)]!;
  (report.modes as Record<string, unknown>)[mode] = {
    ...med,
    runsRequestsPerSecond: list.map((x) => x.requestsPerSecond),
  };
  if (mode === overloadMode) sustainedRate = med.requestsPerSecond;
  log(
    `${mode.padEnd(6)} median: ${med.requestsPerSecond.toFixed(0)} req/s, p50 ${med.latencyMs.p50} ms, p99 ${med.latencyMs.p99} ms`,
  );
}

if (overloadFactor > 0 && sustainedRate > 0) {
  const rate = Math.round(sustainedRate * overloadFactor);
  const s = await startServe(overloadMode);
  const stopAt = performance.now() + overloadDuration * 1000;
  const [r, check] = await Promise.all([
    // Closed-loop clients: more connections than the queue holds, so the
    // excess really arrives and must be turned away with 503.
    run(s.url, { connections: OVERLOAD_CONNECTIONS, duration: overloadDuration, overallRate: rate }),
    checkAnswers(s.url, stopAt),
  ]);
  const alive =
    (await fetch(`${s.url}/healthz`).then(
      (x) => x.status,
      () => 0,
    )) === 200;
  const sum = summary(r);
  const rss = peakRssMiB(s.pids);
  const code = await stopServe(s);
  report.overload = {
    targetRate: rate,
    factor: overloadFactor,
    connections: OVERLOAD_CONNECTIONS,
    capacity: CAPACITY,
    ...sum,
    check,
    aliveAfter: alive,
    exitCode: code,
    peakRssMiB: rss,
  };
  log(
    `overload at ${rate} req/s offered: ${sum.requestsPerSecond.toFixed(0)} req/s answered, statuses ${JSON.stringify(sum.status)}, p99 ${sum.latencyMs.p99} ms; ` +
      `checked ${check.sent}: ${check.ok} correct, ${check.wrong} wrong, rejected ${JSON.stringify(check.rejected)}; alive ${alive}; exit ${code}; peak RSS ${rss.toFixed(0)} MiB`,
  );
}

mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(report, null, 2) + '\n');
const m = report.modes as Record<
  string,
  ReturnType<typeof summary> & { peakRssMiB: number; runsRequestsPerSecond: number[] }
>;
function modeLabel(mode: string): string {
  if (mode === 'direct') return 'per-request search';
  const b = BATCH_MODE.exec(mode)!;
  if (!b[1]) return 'batcher (defaults)';
  return `batcher, maxBatchSize ${b[1]}, maxDelayMs ${b[2]}${b[3] ? `, maxInFlight ${b[3]}` : ''}`;
}
const lines = [
  `### ${name}`,
  '',
  `Index \`${path.basename(indexFile)}\`: ${local.size.toLocaleString('en-US')} x ${dim}, nprobe ${nprobe}, k ${k}; ${connections} connections for ${duration} s after a 2 s warm-up, median of ${runs} runs (modes alternating); ` +
    (serverCpus
      ? `server pinned to CPU(s) ${serverCpus}, load generator (autocannon, same machine) to CPU(s) ${affinity}`
      : `server and load generator (autocannon, same machine) on CPUs ${affinity}`) +
    `; ${workers} server process(es).`,
  '',
  `Machine: ${cpu}, node ${process.version}; commit \`${commit}\`, ${report.date as string}.`,
  '',
  '| mode | req/s (median) | all runs | p50 (ms) | p99 (ms) | non-2xx | peak RSS (MiB) |',
  '|---|---:|---|---:|---:|---:|---:|',
  ...Object.entries(m).map(
    ([mode, v]) =>
      `| ${modeLabel(mode)} | ${v.requestsPerSecond.toFixed(0)} | ${v.runsRequestsPerSecond.map((x) => x.toFixed(0)).join(', ')} | ${v.latencyMs.p50} | ${v.latencyMs.p99} | ${v.non2xx} | ${v.peakRssMiB.toFixed(0)} |`,
  ),
];
if (report.overload) {
  const o = report.overload as ReturnType<typeof summary> & {
    targetRate: number;
    check: { sent: number; ok: number; wrong: number; rejected: Record<string, number> };
    aliveAfter: boolean;
    peakRssMiB: number;
    exitCode: number | null;
  };
  lines.push(
    '',
    `Overload: ${o.targetRate} req/s offered (${overloadFactor}x the sustained rate of the ${modeLabel(overloadMode)}) by ${OVERLOAD_CONNECTIONS} connections against a queue capacity of ${CAPACITY}, for ${overloadDuration} s: ${o.requestsPerSecond.toFixed(0)} req/s answered; ` +
      `goodput (200s) ${((o.status['200'] ?? 0) / overloadDuration).toFixed(0)} req/s = ${((100 * (o.status['200'] ?? 0)) / overloadDuration / sustainedRate).toFixed(0)}% of that sustained rate; ` +
      `status counts ${JSON.stringify(o.status)}; p99 ${o.latencyMs.p99} ms; peak RSS ${o.peakRssMiB.toFixed(0)} MiB; server alive afterwards: ${o.aliveAfter}, exit code after SIGTERM ${o.exitCode}. ` +
      `Correctness probe during the overload: ${o.check.sent} queries sent, ${o.check.ok} answered correctly, ${o.check.wrong} wrong, rejected ${JSON.stringify(o.check.rejected)}.`,
  );
}
lines.push('', `Command: \`${report.commandLine as string}\``, '');
writeFileSync(path.join(outDir, `${name}.md`), lines.join('\n'));
log(`wrote ${path.join(outDir, name)}.{json,md}`);
