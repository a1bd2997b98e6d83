/**
 * `rabitq serve <vectors.fvecs|.bvecs> [options]`: builds an index from a
 * vector file and serves it over HTTP (see src/server.ts, docs/SERVING.md).
 *
 * Index files cannot be saved or loaded yet, so the index is built at
 * startup; /healthz answers 503 until the build is done. Once save/load
 * exists, an index file will take the place of the vector file.
 */
import { UsageError, parseIntOption, parseOptions, type OptionSpec } from './args.js';

export interface ServeIO {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const SERVE_HELP = `Usage: rabitq serve <vectors.fvecs|vectors.bvecs> [options]

Builds an IVF + RaBitQ index from the vector file at startup (index files
cannot be loaded yet), then serves searches over HTTP. /healthz answers 503
until the index is built.

Index:
  --clusters <n>        IVF clusters (default: the library's default)
  --threads <n>         threads for the build (default: all)
  --seed <n>            k-means seed (default 42)

HTTP:
  --host <addr>         address to listen on (default 127.0.0.1)
  --port <n>            port, 0 for any free one (default 8080)
  --body-limit-mb <n>   largest request body in MiB (default 16)

Search defaults and limits:
  --k <n>               k when a request gives none (default 10)
  --nprobe <n>          nprobe when a request gives none (default min(16, clusters))
  --max-k <n>           largest k a request may ask for (default 1024)

Batching:
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

/** Turn `rabitq serve` arguments into options (throws UsageError). */
export function serveOptionsFromArgs(argv: readonly string[]) {
  const { values, positionals } = parseOptions(argv, SERVE_SPEC, 1);
  const int = (n: string, min: number, max: number, dflt?: number) => {
    const raw = values[n] as string | undefined;
    return raw === undefined ? dflt : parseIntOption(n, raw, min, max);
  };
  const help = values.help === true;
  const file = positionals[0];
  if (!help && file === undefined) throw new UsageError('missing the vector file (.fvecs or .bvecs) to serve');
  if (file !== undefined && !/\.(fvecs|bvecs)$/i.test(file)) {
    throw new UsageError(`the vector file must end in .fvecs or .bvecs, got ${JSON.stringify(file)}`);
  }
  const host = (values.host as string | undefined) ?? '127.0.0.1';
  if (host === '') throw new UsageError('--host needs an address');
  const maxK = int('max-k', 1, 1 << 20, 1024)!;
  const k = int('k', 1, maxK, Math.min(10, maxK))!;
  return {
    help,
    file: file ?? '',
    clusters: int('clusters', 1, 1 << 24),
    threads: int('threads', 1, 1024),
    seed: int('seed', 0, 2 ** 31 - 1, 42)!,
    host,
    port: int('port', 0, 65535, 8080)!,
    bodyLimit: int('body-limit-mb', 1, 4096, 16)! << 20,
    k,
    nprobe: int('nprobe', 1, 1 << 20),
    maxK,
    maxBatchSize: int('max-batch', 1, 65536, 64)!,
    maxDelayMs: int('max-delay-ms', 0, 60_000, 2)!,
    capacity: int('capacity', 1, 1 << 24, 1024)!,
    timeoutMs: int('timeout-ms', 1, 3_600_000, 1000)!,
  };
}

/**
 * Runs the server until SIGTERM / SIGINT; resolves with the exit code
 * (0 after a clean drain, 1 when the index could not be built).
 */
export async function serveCommand(argv: readonly string[], io: ServeIO): Promise<number> {
  const o = serveOptionsFromArgs(argv);
  if (o.help) {
    io.stdout(SERVE_HELP);
    return 0;
  }
  const [{ startServer }, { IvfRabitqIndex }, { readFvecs, readBvecs }] = await Promise.all([
    import('../server.js'),
    import('../ivf_index.js'),
    import('../io.js'),
  ]);
  // read the file before listening: a bad file fails the command at once
  const vf = /\.bvecs$/i.test(o.file) ? await readBvecs(o.file, { asFloat32: true }) : await readFvecs(o.file);
  if (o.clusters !== undefined && o.clusters > vf.count) {
    throw new UsageError(`--clusters ${o.clusters} is more than the ${vf.count} vectors in ${o.file}`);
  }
  const t0 = performance.now();
  const building = IvfRabitqIndex.build(vf.data, {
    dim: vf.dim,
    ...(o.clusters !== undefined ? { numClusters: o.clusters } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    seed: o.seed,
  });
  const server = await startServer({
    index: building,
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
  });
  io.stderr(`rabitq serve: listening on ${server.url}; building the index of ${vf.count} x ${vf.dim} from ${o.file}\n`);

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string, code: number) => {
      if (stopping) return;
      stopping = true;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      io.stderr(`rabitq serve: ${why}: draining\n`);
      server.close().then(
        () => {
          io.stderr('rabitq serve: stopped\n');
          resolve(code);
        },
        (err: unknown) => {
          io.stderr(`rabitq serve: failed while stopping: ${err instanceof Error ? err.message : String(err)}\n`);
          resolve(1);
        },
      );
    };
    const onSignal = (signal: NodeJS.Signals) => stop(`${signal} received`, 0);
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    server.ready.then(
      () => {
        const s = ((performance.now() - t0) / 1000).toFixed(1);
        io.stderr(`rabitq serve: index ready (${vf.count} vectors, built in ${s} s)\n`);
      },
      (err: unknown) => {
        io.stderr(`rabitq serve: failed to build the index: ${err instanceof Error ? err.message : String(err)}\n`);
        stop('index build failed', 1);
      },
    );
  });
}
