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
import { readFileSync, statSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import os from 'node:os';
import type { IdArray, IvfRabitqIndex as Index } from '../ivf_index.js';
import type { CliIo } from './io.js';
import {
  UsageError,
  intOption,
  parseCommandLine,
  stringOption,
  type OptionSpec,
  type ParsedValues,
} from './options.js';

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
  --body-limit-mb <n>   largest request body in MiB, 1..4096 (default 16)
  --workers <n>         processes sharing the port (node:cluster; needs an index file; default 1)

Exposure (see docs/SERVING.md, "Running it exposed"):
  --auth-token-file <file>  require "Authorization: Bearer <token>" on every endpoint but
                        /healthz; the token is the file's first line (or $RABITQ_AUTH_TOKEN)
  --tls-cert <file>     serve HTTPS with this PEM certificate (chain) ...
  --tls-key <file>      ... and this PEM private key
  --insecure            allow a non-loopback --host without a token
  --rate-limit <n>      most requests a minute from one client address (default: no limit)
  --headers-timeout <s> seconds a client has to send the request headers (default 10)
  --request-timeout <s> seconds a client has to send the whole request, body included (default 30)
  --idle-timeout <s>    seconds a connection may stay silent before it is closed (default 60)
  --drain-timeout <s>   seconds SIGTERM waits for requests in flight before closing
                        the connections still open (default 10)

Search defaults and limits:
  --k <n>               k when a request gives none (default 10)
  --nprobe <n>          nprobe when a request gives none (default min(16, clusters))
  --max-k <n>           largest k a request may ask for (default 1024)

Batching:
  --no-batch            run each request's search on its own (no batcher; for comparisons)
  --max-batch <n>       largest batch handed to the native pool (default 64)
  --max-delay-ms <n>    longest wait for a batch to fill (default 2)
  --max-in-flight <n>   batches handed to the native pool at once (default 1)
  --capacity <n>        most queries waiting; past it requests get 503 (default 1024)
  --pause-after-shed-ms <ms>
                        after a 503 for a full queue, that connection is not
                        read for this long (default: the Retry-After, 1000, at
                        most half the idle timeout; 0: off)
  --timeout-ms <n>      queries waiting longer get 504 (default 1000)

Endpoints: POST /search, POST /search/batch, GET /healthz, GET /metrics,
POST /admin/reload (with a token).
SIGTERM or SIGINT: stop accepting, finish the queued queries, exit 0.
SIGHUP: load the index file again (and the TLS files); searches in flight
finish on the old index; if the new one fails to load, the old one stays.
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
  'max-in-flight': { type: 'string' },
  capacity: { type: 'string' },
  'pause-after-shed-ms': { type: 'string' },
  'timeout-ms': { type: 'string' },
  'auth-token-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  insecure: { type: 'boolean' },
  'rate-limit': { type: 'string' },
  'headers-timeout': { type: 'string' },
  'request-timeout': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'drain-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/**
 * A duration in seconds ("10", "0.5") as whole milliseconds, in
 * [minS, maxS]; plain decimal arithmetic, no exponents or units.
 */
function secondsOption(values: ParsedValues, name: string, minS: number, maxS: number, dfltS: number): number {
  const raw = stringOption(values, name);
  if (raw === undefined) return Math.round(dfltS * 1000);
  const s = raw.trim();
  if (!/^\d{1,9}(\.\d{1,3})?$/.test(s)) {
    throw new UsageError(`--${name} must be a number of seconds (e.g. 10 or 0.5), got ${JSON.stringify(raw)}`);
  }
  const v = Number(s);
  if (v < minS || v > maxS) throw new UsageError(`--${name} must be in ${minS}..${maxS} seconds, got ${raw}`);
  return Math.round(v * 1000);
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');
loopback.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** Whether `host` can only be reached from this machine (names other than localhost are not trusted to be). */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && loopback.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

const isVectorFile = (file: string) => /\.(fvecs|bvecs)$/i.test(file);

/**
 * Turn \`rabitq serve\` arguments into options (throws UsageError). Reads
 * no file; `env` is where RABITQ_AUTH_TOKEN is looked for.
 */
export function serveOptionsFromArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
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
  const authTokenFile = stringOption(values, 'auth-token-file');
  if (authTokenFile === '') throw new UsageError('--auth-token-file needs a file name');
  const envToken = env.RABITQ_AUTH_TOKEN === '' ? undefined : env.RABITQ_AUTH_TOKEN;
  const tlsCert = stringOption(values, 'tls-cert');
  const tlsKey = stringOption(values, 'tls-key');
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together: give both files or neither');
  }
  const insecure = values.insecure === true;
  if (!help && !insecure && authTokenFile === undefined && envToken === undefined && !isLoopbackHost(host)) {
    throw new UsageError(
      `refusing to listen on ${host} without authentication: anyone who can reach it could search the index. ` +
        'Give --auth-token-file <file> (or set RABITQ_AUTH_TOKEN), or --insecure if that is what you want',
    );
  }
  const requestTimeoutMs = secondsOption(values, 'request-timeout', 0.01, 3600, 30);
  const idleTimeoutMs = secondsOption(values, 'idle-timeout', 0.01, 86_400, 60);
  const timeoutMs = intOr('timeout-ms', 1, 3_600_000, 1000);
  if (timeoutMs >= idleTimeoutMs) {
    throw new UsageError(
      '--timeout-ms must be shorter than --idle-timeout: a query waiting that long would lose its connection first',
    );
  }
  const headersTimeoutMs = secondsOption(values, 'headers-timeout', 0.01, 3600, Math.min(10, requestTimeoutMs / 1000));
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new UsageError(
      '--headers-timeout must not be longer than --request-timeout (the headers are part of the request)',
    );
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
    // a multiplication: `<< 20` wraps to a negative number at 2048 MiB
    bodyLimit: intOr('body-limit-mb', 1, 4096, 16) * 1024 * 1024,
    k,
    nprobe: int('nprobe', 1, 1 << 20),
    maxK,
    maxBatchSize: intOr('max-batch', 1, 65536, 64),
    maxDelayMs: intOr('max-delay-ms', 0, 60_000, 2),
    maxInFlight: intOr('max-in-flight', 1, 1024, 1),
    capacity: intOr('capacity', 1, 1 << 24, 1024),
    // (absent: the server's default, the Retry-After capped at half the idle timeout)
    pauseAfterShedMs:
      values['pause-after-shed-ms'] === undefined ? undefined : intOr('pause-after-shed-ms', 0, 30_000, 1000),
    timeoutMs,
    authTokenFile,
    envToken,
    tlsCert,
    tlsKey,
    insecure,
    rateLimit: int('rate-limit', 1, 1_000_000_000),
    headersTimeoutMs,
    requestTimeoutMs,
    idleTimeoutMs,
    drainTimeoutMs: secondsOption(values, 'drain-timeout', 0, 3600, 10),
  };
}

/**
 * The bearer token: the first line of --auth-token-file, else
 * RABITQ_AUTH_TOKEN. No message here ever quotes it.
 */
function readToken(o: ReturnType<typeof serveOptionsFromArgs>, io: CliIo, warn = true): string | undefined {
  if (o.authTokenFile === undefined) return o.envToken;
  const text = readFileSync(o.authTokenFile, 'utf8');
  const token = text.split(/\r?\n/, 1)[0]!.trim();
  if (token === '') throw new UsageError(`--auth-token-file ${o.authTokenFile}: the file's first line is empty`);
  if (warn && (statSync(o.authTokenFile).mode & 0o077) !== 0) {
    io.stderr(`rabitq serve: warning: ${o.authTokenFile} can be read by other users (chmod 600 it)\n`);
  }
  return token;
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
    // each worker maps the file again on its own
    process.on('SIGHUP', () => {
      if (stopping) return;
      io.stderr(`rabitq serve: SIGHUP received: reloading the index in every worker\n`);
      // only workers whose index is ready have their SIGHUP handler (the
      // signal would kill one still starting); those load the new file anyway
      for (const w of Object.values(cluster.workers ?? {})) if (w && ready.has(w.id)) w.process.kill('SIGHUP');
    });
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
  // Files named on the command line are read before anything starts: a
  // bad token or certificate fails the command at once (under --workers,
  // in the primary too, which alone warns about the token file).
  const authToken = readToken(o, io, !cluster.isWorker);
  if (o.workers > 1 && cluster.isPrimary) return runPrimary(o, io);
  const readTls = () =>
    o.tlsCert !== undefined && o.tlsKey !== undefined
      ? { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) }
      : undefined;
  const tls = readTls();
  const [{ startServer }, { IvfRabitqIndex }, { readFvecs, readBvecs }] = await Promise.all([
    import('../server/index.js'),
    import('../ivf_index.js'),
    import('../io.js'),
  ]);
  const t0 = performance.now();
  const readVectors = () => (/\.bvecs$/i.test(o.file) ? readBvecs(o.file, { asFloat32: true }) : readFvecs(o.file));
  const buildFrom = (vf: Awaited<ReturnType<typeof readVectors>>) =>
    IvfRabitqIndex.build(vf.data, {
      dim: vf.dim,
      ...(o.clusters !== undefined ? { numClusters: o.clusters } : {}),
      ...(o.threads !== undefined ? { threads: o.threads } : {}),
      seed: o.seed,
    });
  /** What startup and every reload do: load the index file, or build from the vector file again. */
  const loadIndex = async (): Promise<Index<IdArray>> =>
    o.fromVectors ? buildFrom(await readVectors()) : IvfRabitqIndex.load(o.file, { mmap: o.mmap, verify: o.verify });
  let first: Promise<Index<IdArray>> | null;
  let what: string;
  if (o.fromVectors) {
    // read the file before listening: a bad file fails the command at once
    const vf = await readVectors();
    if (o.clusters !== undefined && o.clusters > vf.count) {
      throw new UsageError(`--clusters ${o.clusters} is more than the ${vf.count} vectors in ${o.file}`);
    }
    first = buildFrom(vf);
    what = `building the index of ${vf.count} x ${vf.dim} from ${o.file}`;
  } else {
    first = loadIndex();
    what = `loading ${o.file}${o.mmap ? ' (mapped)' : ''}`;
  }
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({
      index: first,
      reloadIndex: loadIndex,
      closeReplacedIndex: true,
      host: o.host,
      port: o.port,
      bodyLimit: o.bodyLimit,
      defaultK: o.k,
      ...(o.nprobe !== undefined ? { defaultNprobe: o.nprobe } : {}),
      maxK: o.maxK,
      maxBatchSize: o.maxBatchSize,
      maxDelayMs: o.maxDelayMs,
      maxInFlight: o.maxInFlight,
      capacity: o.capacity,
      ...(o.pauseAfterShedMs !== undefined ? { pauseAfterShedMs: o.pauseAfterShedMs } : {}),
      timeoutMs: o.timeoutMs,
      batching: o.batching,
      ...(authToken !== undefined ? { authToken } : {}),
      ...(tls ? { tls } : {}),
      ...(o.rateLimit !== undefined ? { rateLimitPerMinute: o.rateLimit } : {}),
      headersTimeoutMs: o.headersTimeoutMs,
      requestTimeoutMs: o.requestTimeoutMs,
      idleTimeoutMs: o.idleTimeoutMs,
      drainTimeoutMs: o.drainTimeoutMs,
    });
  } catch (err) {
    // e.g. an authToken with a space, a key that does not match its certificate
    first!.catch(() => {});
    if (err instanceof RangeError || err instanceof TypeError) {
      throw new UsageError(err.message.replace(/^options\.authToken/, 'the auth token'));
    }
    throw err;
  }
  // this suspended function must not keep the first index alive once a reload replaced it
  first = null;
  const who = cluster.isWorker ? `rabitq serve [worker ${process.pid}]` : 'rabitq serve';
  io.stderr(`${who}: listening on ${server.url}; ${what}\n`);

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string, code: number) => {
      if (stopping) return;
      stopping = true;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal); // (a worker keeps ignoring SIGINT while it drains)
      process.off('SIGHUP', onHangup);
      process.on('SIGHUP', ignoreSignal);
      io.stderr(`${who}: ${why}: draining\n`);
      server.close().then(
        ({ destroyedConnections }) => {
          if (destroyedConnections > 0) {
            io.stderr(
              `${who}: drain deadline (${o.drainTimeoutMs / 1000} s) passed: closed ${destroyedConnections} connection(s) still open\n`,
            );
          }
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
    const onHangup = () => {
      const r0 = performance.now();
      io.stderr(`${who}: SIGHUP received: reloading ${o.file}\n`);
      if (o.tlsCert !== undefined) {
        try {
          server.setTls(readTls()!);
        } catch (err) {
          io.stderr(`${who}: TLS files not reloaded (keeping the old ones): ${(err as Error).message}\n`);
        }
      }
      server.reload().then(
        (r) =>
          io.stderr(
            `${who}: index reloaded (${r.vectors} vectors x ${r.dim}, in ${((performance.now() - r0) / 1000).toFixed(2)} s)\n`,
          ),
        (err: unknown) =>
          io.stderr(
            `${who}: reload failed, still serving the previous index: ${err instanceof Error ? err.message : String(err)}\n`,
          ),
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onHangup);
    // Under --workers the primary sends SIGTERM; a terminal's Ctrl-C reaches
    // every process of the group, and the primary coordinates that.
    // A worker must still catch SIGINT: without a handler it would die at
    // once instead of draining.
    process.on('SIGINT', cluster.isWorker ? ignoreSignal : onSignal);
    server.ready.then(
      () => {
        const s = ((performance.now() - t0) / 1000).toFixed(2);
        // from the server, not from `first`: nothing here may hold on to an
        // index a reload replaces
        const idx = server.index!;
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
