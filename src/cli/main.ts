#!/usr/bin/env node
/**
 * rabitq command-line interface.
 *
 *   rabitq bench [options]   recall / QPS benchmark (see `rabitq bench --help`)
 *   rabitq info [index]      SIMD level, CPU and affinity; or what an index file holds (src/cli/info.ts)
 *   rabitq build <vectors> -o <index>   build and save an index (src/cli/build.ts)
 *   rabitq groundtruth / search / recall   the texmex workflow (src/cli/groundtruth.ts, search.ts, recall.ts)
 *   rabitq serve <file>      HTTP search server (see src/cli/serve.ts)
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorLine, isInputError } from './errors.js';
import { processIo, type CliIo } from './io.js';
import {
  UsageError,
  choiceOption,
  intOption,
  parseChoiceList,
  parseCommandLine,
  parseIntList,
  stringOption,
  type OptionSpec,
} from './options.js';

const MAIN_HELP = `Usage: rabitq <command> [options]

Commands:
  groundtruth  exact k nearest neighbours of a query file, as .ivecs
  build        build an index from a vector file and save it
  search       search a query file in a saved index, results as .ivecs
  recall       recall@k of result ids against the ground truth
  info         what an index file holds; without a file: SIMD level, CPU, affinity
  bench        recall / QPS benchmark of the IVF + RaBitQ index (and optional peers)
  serve        serve an index file (or one built from a vector file) over HTTP
  help         show help for a command

Vector files are texmex .fvecs / .bvecs (ids: .ivecs); - reads standard input.

Options:
  -h, --help     show this help
  -V, --version  show the version
`;

const BENCH_HELP = `Usage: rabitq bench [options]

Dataset (texmex format):
  --data <dir>          directory with base.fvecs|base.bvecs, query.fvecs|query.bvecs
                        and groundtruth.ivecs
  --base <file>         base vectors (.fvecs or .bvecs); overrides --data
  --query <file>        query vectors (.fvecs or .bvecs); overrides --data
  --gt <file>           ground truth neighbour ids (.ivecs); overrides --data
  --nq <n>              use only the first n queries

Index and search:
  --metric <m>          l2 (default), cosine or ip. The index and every peer
                        search in it (faiss: normalized vectors with inner
                        product for cosine; hnswlib: its cosine / ip space);
                        the ground truth must be in it too (checked on a
                        sample of queries; make one with rabitq groundtruth
                        --metric). The js peer is L2 only.
  --clusters <n>        number of IVF clusters (default: the library's default)
  --index <file>        load the rabitq index from this file when it exists, else
                        build it and save it there (no build time is reported
                        for a loaded index); with several --bits, {bits} in the
                        name is replaced by each value
  --bits <list>         bits per dimension of the codes, 1..9, comma separated:
                        one rabitq index per value (default: the library's, 1)
  --no-vectors          build without the raw vectors (no exact re-rank; results
                        ranked by the multi-bit estimates)
  --nprobe <list>       clusters probed, comma separated, ranges allowed
                        (e.g. 1,2,4,8-12,64; default: a ladder up to --clusters)
  --k <n>               neighbours per query (default 10); recall@100 is also
                        measured in an extra untimed pass when the ground truth
                        has 100 columns
  --mode <list>         single (one search() per query) and/or batch
                        (searchBatch); default single
  --threads <n>         threads for the build and batch search (default 1)
  --seed <n>            k-means seed (default 42)

Measurement:
  --runs <n>            timed runs per point, the median is reported (default 5)
  --warmup <n>          untimed warm-up runs per point (default 1)
  --min-time <ms>       a timed run repeats the query set until it lasts this
                        long (default 100)

Peers:
  --compare <list>      faiss, hnswlib, js (plain TypeScript IVF-Flat), or all
  --efsearch <list>     efSearch sweep for the HNSW peers
  --hnsw-m <n>          hnswlib M (default 16)
  --faiss-methods <l>   faiss methods (default ivfflat,ivfpq,ivfrabitq,ivfrabitq4,hnsw)
                        (faiss runs src/bench/peers/faiss_peer.py with python3, or
                        with $RABITQ_PYTHON when set)

Output:
  --out <dir>           where <name>.json/.svg/.md go (default bench/results)
  --no-out              write no files
  --name <name>         result file name (default: the dataset directory name)
  --no-progress         no progress bar during the build
  -v, --verbose         per-point progress of the peers on stderr
  -h, --help            show this help

Exit codes: 0 done, 1 failure while running, 2 bad input or usage.
Pin the process for stable numbers, e.g. taskset -c 1 rabitq bench ...
`;

const BENCH_SPEC: Record<string, OptionSpec> = {
  data: { type: 'string' },
  base: { type: 'string' },
  query: { type: 'string' },
  gt: { type: 'string' },
  nq: { type: 'string' },
  clusters: { type: 'string' },
  metric: { type: 'string' },
  index: { type: 'string' },
  nprobe: { type: 'string' },
  k: { type: 'string' },
  mode: { type: 'string' },
  threads: { type: 'string' },
  seed: { type: 'string' },
  bits: { type: 'string' },
  'no-vectors': { type: 'boolean' },
  runs: { type: 'string' },
  warmup: { type: 'string' },
  'min-time': { type: 'string' },
  compare: { type: 'string' },
  efsearch: { type: 'string' },
  'hnsw-m': { type: 'string' },
  'faiss-methods': { type: 'string' },
  out: { type: 'string' },
  'no-out': { type: 'boolean' },
  name: { type: 'string' },
  progress: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
};

function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'rabitq') return pkg.version ?? 'unknown';
      } catch {
        /* keep looking */
      }
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

const PEERS = ['faiss', 'hnswlib', 'js'] as const;
const MODES = ['single', 'batch'] as const;

/** Turn `rabitq bench` arguments into runner options (throws UsageError). */
export function benchOptionsFromArgs(argv: readonly string[]) {
  const { values } = parseCommandLine(argv, BENCH_SPEC);
  const str = (n: string) => stringOption(values, n);
  if (values.out !== undefined && values.out === '') throw new UsageError('--out needs a directory');
  if (values.out !== undefined && values['no-out'] === true)
    throw new UsageError('--out and --no-out cannot be combined');
  const name = str('name');
  if (name !== undefined && !/^[A-Za-z0-9._-]+$/.test(name)) {
    throw new UsageError(`--name may contain only letters, digits, '.', '_' and '-', got ${JSON.stringify(name)}`);
  }
  const clusters = intOption(values, 'clusters', 1);
  const nprobeRaw = str('nprobe');
  const nprobe = nprobeRaw === undefined ? null : parseIntList('nprobe', nprobeRaw, 1);
  if (nprobe && clusters !== undefined) {
    const bad = nprobe.find((p) => p > clusters);
    if (bad !== undefined) throw new UsageError(`--nprobe ${bad} is out of range: --clusters is ${clusters}`);
  }
  const compareRaw = str('compare');
  const compare =
    compareRaw === undefined || compareRaw === 'none'
      ? []
      : compareRaw === 'all'
        ? [...PEERS]
        : parseChoiceList('compare', compareRaw, PEERS);
  const efRaw = str('efsearch');
  const faissRaw = str('faiss-methods');
  const outFlag = str('out');
  return {
    data: str('data'),
    base: str('base'),
    query: str('query'),
    gt: str('gt'),
    indexFile: str('index'),
    ...(str('bits') !== undefined ? { bits: [...new Set(parseIntList('bits', str('bits')!, 1, 9))] } : {}),
    ...(values['no-vectors'] === true ? { noVectors: true } : {}),
    nq: intOption(values, 'nq', 1),
    clusters,
    metric: choiceOption(values, 'metric', ['l2', 'cosine', 'ip'] as const, 'l2'),
    nprobe,
    efSearch: efRaw === undefined ? null : parseIntList('efsearch', efRaw, 1),
    k: intOption(values, 'k', 1, 100000, 10),
    threads: intOption(values, 'threads', 1, 1024, 1),
    runs: intOption(values, 'runs', 1, 1000, 5),
    warmup: intOption(values, 'warmup', 0, 1000, 1),
    minRunMs: intOption(values, 'min-time', 0, 600000, 100),
    modes:
      str('mode') === undefined ? (['single'] as ('single' | 'batch')[]) : parseChoiceList('mode', str('mode')!, MODES),
    compare,
    out: values['no-out'] === true ? null : (outFlag ?? 'bench/results'),
    name,
    seed: intOption(values, 'seed', 0, 2 ** 31 - 1, 42),
    hnswM: intOption(values, 'hnsw-m', 2, 512, 16),
    faissMethods:
      faissRaw === undefined
        ? undefined
        : faissRaw
            .split(',')
            .map((s) => s.trim())
            .filter((s) => /^[a-z0-9_]+$/i.test(s)),
    progressFlag: values.progress as boolean | undefined,
    verbose: values.verbose === true,
    help: values.help === true,
  };
}

async function benchCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const o = benchOptionsFromArgs(argv);
  if (o.help) {
    io.stdout(BENCH_HELP);
    return 0;
  }
  const { runBench } = await import('../bench/runner.js');
  await runBench(
    {
      data: o.data,
      base: o.base,
      query: o.query,
      gt: o.gt,
      nq: o.nq,
      clusters: o.clusters,
      metric: o.metric,
      ...(o.indexFile ? { indexFile: o.indexFile } : {}),
      ...(o.bits ? { bits: o.bits } : {}),
      ...(o.noVectors ? { noVectors: true } : {}),
      nprobe: o.nprobe,
      efSearch: o.efSearch,
      k: o.k,
      threads: o.threads,
      runs: o.runs,
      warmup: o.warmup,
      minRunMs: o.minRunMs,
      modes: o.modes,
      compare: o.compare,
      out: o.out,
      name: o.name,
      seed: o.seed,
      hnswM: o.hnswM,
      faissMethods: o.faissMethods,
      progress: o.progressFlag ?? io.isTTY,
      verbose: o.verbose,
      commandLine: ['rabitq', 'bench', ...argv],
    },
    io,
  );
  return 0;
}

const INFO_HELP = `Usage: rabitq info [<index-file>] [--verify] [--json]

Without a file: the SIMD level the native kernels use, the CPU and the CPU affinity.

With an index file: what it holds, from its header and META section after
the loader's checks: format version, dimension, vectors, clusters, metric,
bits per dimension, id width, whether raw vectors are kept, the build
parameters stored (rotation, seed), and each section's size and CRC-32C.

  --verify    also check the CRC-32C of every section (reads the whole file);
              without it the header and the small sections are checked and
              the big arrays (codes, factors, ids, vectors) are not
  --json      machine-readable output
`;

async function infoCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    { help: { type: 'boolean', short: 'h' }, verify: { type: 'boolean' }, json: { type: 'boolean' } },
    1,
  );
  if (values.help) {
    io.stdout(INFO_HELP);
    return 0;
  }
  if (positionals[0] !== undefined) {
    const { indexInfoCommand } = await import('./info.js');
    return indexInfoCommand(positionals[0], { verify: values.verify === true, json: values.json === true }, io);
  }
  if (values.verify !== undefined) throw new UsageError('--verify needs an index file');
  const { machineInfo } = await import('../bench/machine.js');
  let simd = 'unavailable';
  try {
    const lib = await import('../index.js');
    simd = lib.simdLevel();
    const pool = lib.threadPoolInfo();
    simd += ` (native pool: ${pool.threads} threads)`;
  } catch (err) {
    simd = `unavailable (${errorLine(err)})`;
  }
  const m = machineInfo(simd);
  if (values.json === true) {
    io.stdout(JSON.stringify({ version: packageVersion(), ...m }, null, 2) + '\n');
    return 0;
  }
  io.stdout(
    [
      `rabitq ${packageVersion()}`,
      `  simd      ${m.simdLevel}`,
      `  cpu       ${m.cpuModel} (${m.logicalCpus} logical CPUs)`,
      `  affinity  CPUs ${m.cpusAllowedList} (${m.cpusAllowed} allowed)`,
      `  node      ${m.node} ${m.platform}-${m.arch}`,
    ].join('\n') + '\n',
  );
  return 0;
}

type Command = (argv: readonly string[], io: CliIo) => Promise<number>;

/** Every command; each module is imported only when its command runs. */
const COMMANDS: Record<string, Command> = {
  bench: benchCommand,
  info: infoCommand,
  build: async (argv, io) => (await import('./build.js')).buildCommand(argv, io),
  serve: async (argv, io) => (await import('./serve.js')).serveCommand(argv, io),
  groundtruth: async (argv, io) => (await import('./groundtruth.js')).groundtruthCommand(argv, io),
  search: async (argv, io) => (await import('./search.js')).searchCommand(argv, io),
  recall: async (argv, io) => (await import('./recall.js')).recallCommand(argv, io),
};

/**
 * Run the CLI with `argv` (without the node and script paths). Returns the
 * exit code; never throws. Errors are reported on one line on stderr.
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [cmd, ...rest] = argv;
  const prog = cmd !== undefined && Object.hasOwn(COMMANDS, cmd) ? `rabitq ${cmd}` : 'rabitq';
  try {
    switch (cmd) {
      case undefined:
      case '-h':
      case '--help':
        io.stdout(MAIN_HELP);
        return 0;
      case 'help':
        if (rest[0] === undefined) io.stdout(MAIN_HELP);
        else if (Object.hasOwn(COMMANDS, rest[0])) return await COMMANDS[rest[0]]!(['--help'], io);
        else throw new UsageError(`unknown command ${JSON.stringify(rest[0])}`);
        return 0;
      case '-V':
      case '--version':
        io.stdout(`${packageVersion()}\n`);
        return 0;
      default:
        if (Object.hasOwn(COMMANDS, cmd)) return await COMMANDS[cmd]!(rest, io);
        throw new UsageError(cmd.startsWith('-') ? `unknown option ${cmd}` : `unknown command ${JSON.stringify(cmd)}`);
    }
  } catch (err) {
    if (isInputError(err)) {
      const hint = err instanceof UsageError ? ` (see ${prog} --help)` : '';
      io.stderr(`${prog}: error: ${errorLine(err)}${hint}\n`);
      return 2;
    }
    io.stderr(`${prog}: failed: ${errorLine(err)}\n`);
    if (process.env.RABITQ_DEBUG && err instanceof Error && err.stack) io.stderr(err.stack + '\n');
    return 1;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`rabitq: failed: ${errorLine(err)}\n`);
      process.exitCode = 1;
    },
  );
}
