/**
 * `rabitq serve <index-file | vectors.fvecs|.bvecs> [options]`: serves an
 * index over HTTP (see src/server/index.ts, docs/SERVING.md).
 *
 * An index file (made by `rabitq build` or index.save()) is loaded at startup,
 * mapped by default so several processes share its pages; a vector file is
 * built into an index at startup instead. /healthz answers 503 until the
 * index is ready. --workers N runs N processes on one port (node:cluster).
 */
import cluster from 'node:cluster';
import os from 'node:os';
import type { IdArray, IvfRabitqIndex as Index } from '../ivf_index.js';
import type { CliIo } from './io.js';
import { UsageError, intOption, parseCommandLine, stringOption, type OptionSpec } from './options.js';

export const SERVE_HELP = `Usage: rabitq serve <index-file | vectors.fvecs | vectors.bvecs> [options]

Serves searches over HTTP. An index file (from \`rabitq build\` or
index.save()) is loaded at startup, memory-mapped unless --read is given; a
.fvecs/.bvecs vector file is built into an index at startup. /healthz answers
503 until the index is ready.

Index:
  --read                read the index file into memory instead of mapping it
  --verify              check every checksum of a mapped index at startup
  --clusters <n>        IVF clusters when building from vectors (default: the library's default)
  --threads <n>         native threads per process (default: the CPUs it may use, split between workers)
  --seed <n>            k-means seed when building from vectors (default 42)

HTTP:
  --host <addr>         address to listen on (default 127.0.0.1)
  --port <n>            port, 0 for any free one (default 8080)
  --body-limit-mb <n>   largest request body in MiB (default 16)
  --workers <n>         processes sharing the port (node:cluster; needs an index file; default 1)

Search defaults and limits:
  --k <n>               k when a request gives none (default 10)
  --nprobe <n>          nprobe when a request gives none (default min(16, clusters))
  --max-k <n>           largest k a request may ask for (default 1024)

Batching:
  --no-batch            run each request's search on its own (no batcher; for comparisons)
  --max-batch <n>       largest batch handed to the native pool (default 64)
  --max-delay-ms <n>    longest wait for a batch to fill (default 2)
  --capacity <n>        most queries waiting; past it requests get 503 (default 1024)
  --timeout-ms <n>      queries waiting longer get 504 (default 1000)

Endpoints: POST /search, POST /search/batch, GET /healthz, GET /metrics.
SIGTERM or SIGINT: stop accepting, finish the queued queries, exit 0.
`;

const SERVE_SPEC: Record<string, OptionSpec> = {
  clusters: { type: 'string' },
  threads: { type: 'string' },
  seed: { type: 'string' },
  read: { type: 'boolean' },
  verify: { type: 'boolean' },
  workers: { type: 'string' },
  batch: { type: 'boolean' },
  host: { type: 'string' },
  port: { type: 'string' },
  'body-limit-mb': { type: 'string' },
  k: { type: 'string' },
  nprobe: { type: 'string' },
  'max-k': { type: 'string' },
  'max-batch': { type: 'string' },
  'max-delay-ms': { type: 'string' },
  capacity: { type: 'string' },
  'timeout-ms': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const isVectorFile = (file: string) => /\.(fvecs|bvecs)$/i.test(file);

/** Turn \`rabitq serve\` arguments into options (throws UsageError). */
export function serveOptionsFromArgs(argv: readonly string[]) {
  const { values, positionals } = parseCommandLine(argv, SERVE_SPEC, 1);
  const int = (n: string, min: number, max: number) => intOption(values, n, min, max);
  const intOr = (n: string, min: number, max: number, dflt: number) => intOption(values, n, min, max, dflt);
  const help = values.help === true;
  const file = positionals[0];
  if (!help && file === undefined)
    throw new UsageError('missing the index file (or a .fvecs/.bvecs vector file) to serve');
  const host = stringOption(values, 'host') ?? '127.0.0.1';
  if (host === '') throw new UsageError('--host needs an address');
  const maxK = intOr('max-k', 1, 1 << 20, 1024);
  const k = intOr('k', 1, maxK, Math.min(10, maxK));
  const workers = intOr('workers', 1, 256, 1);
  if (workers > 1 && file !== undefined && isVectorFile(file)) {
    throw new UsageError('--workers needs an index file: build one first with `rabitq build <vectors> --out <index>`');
  }
  return {
    help,
    file: file ?? '',
    fromVectors: file !== undefined && isVectorFile(file),
    mmap: values.read !== true,
    verify: values.verify === true,
    workers,
    batching: values.batch !== false,
    clusters: int('clusters', 1, 1 << 24),
    threads: int('threads', 1, 1024),
    seed: intOr('seed', 0, 2 ** 31 - 1, 42),
    host,
    port: intOr('port', 0, 65535, 8080),
    bodyLimit: intOr('body-limit-mb', 1, 4096, 16) << 20,
    k,
    nprobe: int('nprobe', 1, 1 << 20),
    maxK,
    maxBatchSize: intOr('max-batch', 1, 65536, 64),
    maxDelayMs: intOr('max-delay-ms', 0, 60_000, 2),
    capacity: intOr('capacity', 1, 1 << 24, 1024),
    timeoutMs: intOr('timeout-ms', 1, 3_600_000, 1000),
  };
}

/** CPUs this process may run on (sched affinity), as the native pool counts them. */
function usableCpus(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * The --workers primary: forks the workers (same arguments), restarts one
 * that dies unexpectedly after its index was ready, forwards SIGTERM/SIGINT
 * and exits 0 once every worker drained. A worker that dies before its index
 * is ready (bad index file: every worker loads the same one) stops them all
 * and the primary exits 1, as does running out of restarts.
 */
async function runPrimary(o: ReturnType<typeof serveOptionsFromArgs>, io: CliIo): Promise<number> {
  // Each worker gets its share of the CPUs for its native pool, so N
  // processes do not run N x CPUs threads.
  const threads = o.threads ?? Math.max(1, Math.floor(usableCpus() / o.workers));
  const env = { RABITQ_THREADS: String(threads), RABITQ_SERVE_WORKER: '1' };
  let stopping = false;
  let restarts = 0;
  const ready = new Set<number>(); // ids of workers whose index is ready
  const fork = () => cluster.fork(env);
  cluster.on('message', (worker, msg: unknown) => {
    if ((msg as { rabitqServe?: unknown } | null)?.rabitqServe === 'ready') ready.add(worker.id);
  });
  for (let i = 0; i < o.workers; i++) fork();
  io.stderr(`rabitq serve: ${o.workers} workers (${threads} native threads each) on ${o.host}:${o.port}\n`);
  return await new Promise<number>((resolve) => {
    let failed = false;
    const stopAll = (why: string) => {
      if (stopping) return;
      stopping = true;
      io.stderr(`rabitq serve: ${why}: draining ${Object.keys(cluster.workers ?? {}).length} workers\n`);
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    };
    cluster.on('exit', (worker, code, signal) => {
      const wasReady = ready.delete(worker.id);
      if (!stopping) {
        io.stderr(`rabitq serve: worker ${worker.process.pid} exited (${signal ?? code})\n`);
        if (!wasReady) {
          // Failed before its index was ready: a restart would fail the same way.
          failed = true;
          stopAll('a worker failed at startup');
        } else if (restarts < 10) {
          restarts++;
          fork();
          return;
        } else {
          failed = true;
          stopAll('too many worker restarts');
        }
      } else if (code !== 0 && signal !== 'SIGTERM') {
        // (SIGTERM: a worker stopped before it set up its own handler.)
        failed = true;
      }
      if (Object.keys(cluster.workers ?? {}).length === 0) resolve(failed ? 1 : 0);
    });
    const onSignal = (signal: NodeJS.Signals) => stopAll(`${signal} received`);
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/**
 * Runs the server until SIGTERM / SIGINT; resolves with the exit code
 * (0 after a clean drain, 1 when the index could not be loaded or built).
 */
export async function serveCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const o = serveOptionsFromArgs(argv);
  if (o.help) {
    io.stdout(SERVE_HELP);
    return 0;
  }
  if (o.workers > 1 && cluster.isPrimary) return runPrimary(o, io);
  const [{ startServer }, { IvfRabitqIndex }, { readFvecs, readBvecs }] = await Promise.all([
    import('../server/index.js'),
    import('../ivf_index.js'),
    import('../io.js'),
  ]);
  const t0 = performance.now();
  let loading: Promise<Index<IdArray>>;
  let what: string;
  if (o.fromVectors) {
    // read the file before listening: a bad file fails the command at once
    const vf = /\.bvecs$/i.test(o.file) ? await readBvecs(o.file, { asFloat32: true }) : await readFvecs(o.file);
    if (o.clusters !== undefined && o.clusters > vf.count) {
      throw new UsageError(`--clusters ${o.clusters} is more than the ${vf.count} vectors in ${o.file}`);
    }
    loading = IvfRabitqIndex.build(vf.data, {
      dim: vf.dim,
      ...(o.clusters !== undefined ? { numClusters: o.clusters } : {}),
      ...(o.threads !== undefined ? { threads: o.threads } : {}),
      seed: o.seed,
    });
    what = `building the index of ${vf.count} x ${vf.dim} from ${o.file}`;
  } else {
    loading = IvfRabitqIndex.load(o.file, { mmap: o.mmap, verify: o.verify });
    what = `loading ${o.file}${o.mmap ? ' (mapped)' : ''}`;
  }
  const server = await startServer({
    index: loading,
    host: o.host,
    port: o.port,
    bodyLimit: o.bodyLimit,
    defaultK: o.k,
    ...(o.nprobe !== undefined ? { defaultNprobe: o.nprobe } : {}),
    maxK: o.maxK,
    maxBatchSize: o.maxBatchSize,
    maxDelayMs: o.maxDelayMs,
    capacity: o.capacity,
    timeoutMs: o.timeoutMs,
    batching: o.batching,
  });
  const who = cluster.isWorker ? `rabitq serve [worker ${process.pid}]` : 'rabitq serve';
  io.stderr(`${who}: listening on ${server.url}; ${what}\n`);

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string, code: number) => {
      if (stopping) return;
      stopping = true;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal); // (a worker keeps ignoring SIGINT while it drains)
      io.stderr(`${who}: ${why}: draining\n`);
      server.close().then(
        () => {
          io.stderr(`${who}: stopped\n`);
          resolve(code);
          // A worker's IPC channel to the primary would keep it alive.
          // worker.disconnect(), not process.disconnect(): the latter makes
          // node:cluster exit the worker with code 0 whatever its exit code.
          cluster.worker?.disconnect();
        },
        (err: unknown) => {
          io.stderr(`${who}: failed while stopping: ${err instanceof Error ? err.message : String(err)}\n`);
          resolve(1);
          cluster.worker?.disconnect();
        },
      );
    };
    const onSignal = (signal: NodeJS.Signals) => stop(`${signal} received`, 0);
    const ignoreSignal = () => {};
    process.on('SIGTERM', onSignal);
    // Under --workers the primary sends SIGTERM; a terminal's Ctrl-C reaches
    // every process of the group, and the primary coordinates that.
    // A worker must still catch SIGINT: without a handler it would die at
    // once instead of draining.
    process.on('SIGINT', cluster.isWorker ? ignoreSignal : onSignal);
    server.ready.then(
      async () => {
        const s = ((performance.now() - t0) / 1000).toFixed(2);
        const idx = await loading;
        io.stderr(
          `${who}: index ready (${idx.size} vectors x ${idx.dim}, ${o.fromVectors ? 'built' : 'loaded'} in ${s} s)\n`,
        );
        // Tells the --workers primary this worker may be restarted if it dies.
        if (cluster.isWorker) process.send?.({ rabitqServe: 'ready' });
      },
      (err: unknown) => {
        io.stderr(
          `${who}: failed to ${o.fromVectors ? 'build' : 'load'} the index: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        stop(`index ${o.fromVectors ? 'build' : 'load'} failed`, 1);
      },
    );
  });
}
