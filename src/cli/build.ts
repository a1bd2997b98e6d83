/**
 * `rabitq build <vectors.fvecs|.bvecs> --out <index-file>`: builds an index
 * from a vector file and saves it (atomically) for `rabitq serve` or
 * IvfRabitqIndex.load().
 */
import type { CliIo } from './io.js';
import { UsageError, choiceOption, intOption, parseCommandLine, stringOption, type OptionSpec } from './options.js';

export const BUILD_HELP = `Usage: rabitq build <vectors.fvecs|vectors.bvecs> --out <index-file> [options]

Builds an IVF + RaBitQ index from a vector file and saves it.

  --out, -o <file>      where to write the index (required; written atomically)
  --clusters <n>        IVF clusters (default: about 4 * sqrt(N))
  --metric <m>          l2 (default), cosine or ip
  --rotation <r>        fht (default) or dense
  --seed <n>            seed (default 42)
  --threads <n>         build threads (default: the CPUs this process may use)
  --no-vectors          do not keep the raw vectors (no exact re-ranking; 4*dim bytes per vector less)
  --bits <n>            bits per dimension of the codes, 1..9 (default 1; above 1, multi-bit codes:
                        with --no-vectors the recall, with vectors fewer exact distances)
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
  bits: { type: 'string' },
  progress: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export function buildOptionsFromArgs(argv: readonly string[]) {
  const { values, positionals } = parseCommandLine(argv, BUILD_SPEC, 1);
  const help = values.help === true;
  const file = positionals[0];
  const out = stringOption(values, 'out');
  if (!help) {
    if (file === undefined) throw new UsageError('missing the vector file (.fvecs or .bvecs) to build from');
    if (!/\.(fvecs|bvecs)$/i.test(file)) {
      throw new UsageError(`the vector file must end in .fvecs or .bvecs, got ${JSON.stringify(file)}`);
    }
    if (out === undefined || out === '') throw new UsageError('missing --out <index-file>');
  }
  const metric = choiceOption(values, 'metric', ['l2', 'cosine', 'ip'] as const, 'l2');
  const rotation = choiceOption(values, 'rotation', ['fht', 'dense'] as const, 'fht');
  return {
    help,
    file: file ?? '',
    out: out ?? '',
    clusters: intOption(values, 'clusters', 1, 1 << 24),
    metric,
    rotation,
    seed: intOption(values, 'seed', 0, 2 ** 31 - 1, 42),
    threads: intOption(values, 'threads', 1, 1024),
    storeVectors: values.vectors !== false,
    bits: intOption(values, 'bits', 1, 9, 1),
    progress: typeof values.progress === 'boolean' ? values.progress : undefined,
  };
}

export async function buildCommand(argv: readonly string[], io: CliIo): Promise<number> {
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
      bits: o.bits,
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
    `${o.out}: ${index.size} vectors x ${index.dim}, ${index.numClusters} clusters, metric ${index.metric}, ${index.bits} bit${index.bits > 1 ? 's' : ''}; ` +
      `built in ${built.toFixed(1)} s, saved in ${saved.toFixed(2)} s (${(mem.total / 2 ** 20).toFixed(1)} MiB)\n`,
  );
  return 0;
}
