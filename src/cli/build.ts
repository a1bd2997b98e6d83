/**
 * `rabitq build <vectors.fvecs|.bvecs> --out <index-file>`: builds an index
 * from a vector file and saves it (atomically) for `rabitq serve` or
 * IvfRabitqIndex.load().
 */
import { UsageError, parseIntOption, parseOptions, type OptionSpec } from './args.js';

export interface BuildIO {
  stdout(text: string): void;
  stderr(text: string): void;
  isTTY: boolean;
}

export const BUILD_HELP = `Usage: rabitq build <vectors.fvecs|vectors.bvecs> --out <index-file> [options]

Builds an IVF + RaBitQ index from a vector file and saves it.

  --out, -o <file>      where to write the index (required; written atomically)
  --clusters <n>        IVF clusters (default: about 4 * sqrt(N))
  --metric <m>          l2 (default), cosine or ip
  --rotation <r>        fht (default) or dense
  --seed <n>            seed (default 42)
  --threads <n>         build threads (default: the CPUs this process may use)
  --no-vectors          do not keep the raw vectors (no exact re-ranking; 4*dim bytes per vector less)
  --progress / --no-progress   progress bar on stderr (default: when stderr is a terminal)
`;

const BUILD_SPEC: Record<string, OptionSpec> = {
  out: { type: 'string', short: 'o' },
  clusters: { type: 'string' },
  metric: { type: 'string' },
  rotation: { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  vectors: { type: 'boolean' },
  progress: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export function buildOptionsFromArgs(argv: readonly string[]) {
  const { values, positionals } = parseOptions(argv, BUILD_SPEC, 1);
  const help = values.help === true;
  const file = positionals[0];
  const out = values.out as string | undefined;
  if (!help) {
    if (file === undefined) throw new UsageError('missing the vector file (.fvecs or .bvecs) to build from');
    if (!/\.(fvecs|bvecs)$/i.test(file)) throw new UsageError(`the vector file must end in .fvecs or .bvecs, got ${JSON.stringify(file)}`);
    if (out === undefined || out === '') throw new UsageError('missing --out <index-file>');
  }
  const metric = (values.metric as string | undefined) ?? 'l2';
  if (metric !== 'l2' && metric !== 'cosine' && metric !== 'ip') throw new UsageError(`--metric must be l2, cosine or ip, got ${JSON.stringify(metric)}`);
  const rotation = (values.rotation as string | undefined) ?? 'fht';
  if (rotation !== 'fht' && rotation !== 'dense') throw new UsageError(`--rotation must be fht or dense, got ${JSON.stringify(rotation)}`);
  const int = (n: string, min: number, max: number) => {
    const raw = values[n] as string | undefined;
    return raw === undefined ? undefined : parseIntOption(n, raw, min, max);
  };
  return {
    help,
    file: file ?? '',
    out: out ?? '',
    clusters: int('clusters', 1, 1 << 24),
    metric: metric as 'l2' | 'cosine' | 'ip',
    rotation: rotation as 'fht' | 'dense',
    seed: int('seed', 0, 2 ** 31 - 1) ?? 42,
    threads: int('threads', 1, 1024),
    storeVectors: values.vectors !== false,
    progress: values.progress as boolean | undefined,
  };
}

export async function buildCommand(argv: readonly string[], io: BuildIO): Promise<number> {
  const o = buildOptionsFromArgs(argv);
  if (o.help) {
    io.stdout(BUILD_HELP);
    return 0;
  }
  const [{ IvfRabitqIndex }, { readFvecs, readBvecs }, { buildProgressBar }] = await Promise.all([
    import('../ivf_index.js'),
    import('../io.js'),
    import('../bench/progress.js'),
  ]);
  const vf = /\.bvecs$/i.test(o.file) ? await readBvecs(o.file, { asFloat32: true }) : await readFvecs(o.file);
  if (o.clusters !== undefined && o.clusters > vf.count) {
    throw new UsageError(`--clusters ${o.clusters} is more than the ${vf.count} vectors in ${o.file}`);
  }
  const bar = buildProgressBar(o.progress ?? io.isTTY);
  const t0 = performance.now();
  let index;
  try {
    index = await IvfRabitqIndex.build(vf.data, {
      dim: vf.dim,
      metric: o.metric,
      rotation: o.rotation,
      seed: o.seed,
      storeVectors: o.storeVectors,
      onProgress: bar.onProgress,
      ...(o.clusters !== undefined ? { numClusters: o.clusters } : {}),
      ...(o.threads !== undefined ? { threads: o.threads } : {}),
    });
  } finally {
    bar.stop();
  }
  const built = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  await index.save(o.out);
  const saved = (performance.now() - t1) / 1000;
  const mem = index.memoryUsage();
  io.stdout(
    `${o.out}: ${index.size} vectors x ${index.dim}, ${index.numClusters} clusters, metric ${index.metric}; ` +
      `built in ${built.toFixed(1)} s, saved in ${saved.toFixed(2)} s (${(mem.total / 2 ** 20).toFixed(1)} MiB)\n`,
  );
  return 0;
}
