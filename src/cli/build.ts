/**
 * `rabitq build <vectors.fvecs|.bvecs> --out <index-file>`: builds an index
 * from a vector file and saves it (atomically) for `rabitq serve` or
 * IvfRabitqIndex.load().
 */
import type { CliIo } from './io.js';
import { InputError } from './errors.js';
import { checkOutputPath, openVectorSource, readIvecsInput } from './files.js';
import { UsageError, choiceOption, intOption, parseCommandLine, stringOption, type OptionSpec } from './options.js';

export const BUILD_HELP = `Usage: rabitq build <vectors.fvecs|vectors.bvecs|-> --out <index-file> [options]

Builds an IVF + RaBitQ index from a vector file (- reads standard input) and saves it.

  --out, -o <file>      where to write the index (required; written atomically;
                        refused before the build when it is the input file or
                        its folder is missing or not writable)
  --clusters <n>        IVF clusters (default: about 4 * sqrt(N))
  --metric <m>          l2 (default), cosine or ip
  --rotation <r>        fht (default) or dense
  --seed <n>            seed (default 42)
  --threads <n>         build threads (default: the CPUs this process may use)
  --no-vectors          do not keep the raw vectors (no exact re-ranking; 4*dim bytes per vector less)
  --bits <n>            bits per dimension of the codes, 1..9 (default 1; above 1, multi-bit codes:
                        with --no-vectors the recall, with vectors fewer exact distances)
  --ids <file.ivecs>    your ids, one row per vector in the same order: 1 column
                        (ids 0..2^31-1) or 2 columns (64-bit ids: low then high
                        32 bits, as \`rabitq search --ids64\` writes them)
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
  ids: { type: 'string' },
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
    if (file !== '-' && !/\.(fvecs|bvecs)$/i.test(file)) {
      throw new UsageError(`the vector file must end in .fvecs or .bvecs (or be -), got ${JSON.stringify(file)}`);
    }
    if (out === undefined || out === '') throw new UsageError('missing --out <index-file>');
  }
  const metric = choiceOption(values, 'metric', ['l2', 'cosine', 'ip'] as const, 'l2');
  const rotation = choiceOption(values, 'rotation', ['fht', 'dense'] as const, 'fht');
  return {
    help,
    file: file ?? '',
    out: out ?? '',
    clusters: intOption(values, 'clusters', 1, 2 ** 31 - 1),
    metric,
    rotation,
    seed: intOption(values, 'seed', 0, 2 ** 31 - 1, 42),
    threads: intOption(values, 'threads', 1, 1024),
    storeVectors: values.vectors !== false,
    bits: intOption(values, 'bits', 1, 9, 1),
    ids: stringOption(values, 'ids'),
    progress: typeof values.progress === 'boolean' ? values.progress : undefined,
  };
}

/** Duplicate ids are the caller's input error: named with both rows here, not after the load. */
function checkUnique(name: string, ids: Uint32Array | BigUint64Array): void {
  const firstRow = new Map<number | bigint, number>();
  for (let r = 0; r < ids.length; r++) {
    const seen = firstRow.get(ids[r]!);
    if (seen !== undefined) throw new InputError(`${name}: id ${ids[r]} appears twice, at rows ${seen} and ${r}`);
    firstRow.set(ids[r]!, r);
  }
}

/**
 * The ids of --ids: an .ivecs of `count` rows, one column (32-bit ids, each
 * in 0..2^31-1) or two (a 64-bit id as low, high 32-bit halves).
 */
async function readIds(file: string, count: number): Promise<Uint32Array | BigUint64Array> {
  const name = file === '-' ? '--ids (standard input)' : `--ids ${file}`;
  const f = await readIvecsInput({ path: file, what: '--ids' });
  if (f.count !== count) throw new InputError(`${name} has ${f.count} rows but there are ${count} vectors`);
  if (f.dim === 1) {
    const bad = f.data.findIndex((v) => v < 0);
    if (bad >= 0) throw new InputError(`${name}: row ${bad} holds the id ${f.data[bad]}; ids must be 0..2^31-1`);
    const ids = new Uint32Array(f.data.buffer, f.data.byteOffset, f.data.length);
    checkUnique(name, ids);
    return ids;
  }
  if (f.dim === 2) {
    const wide = new BigUint64Array(count);
    for (let r = 0; r < count; r++) {
      const id = (BigInt(f.data[2 * r + 1]! >>> 0) << 32n) | BigInt(f.data[2 * r]! >>> 0);
      if (id >= 2n ** 63n) throw new InputError(`${name}: row ${r} holds an id of 2^63 or more`);
      wide[r] = id;
    }
    checkUnique(name, wide);
    return wide;
  }
  throw new InputError(`${name} has ${f.dim} columns: one id per row (1 column, or 2 for 64-bit ids) expected`);
}

export async function buildCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const o = buildOptionsFromArgs(argv);
  if (o.help) {
    io.stdout(BUILD_HELP);
    return 0;
  }
  const inputs = [
    { path: o.file, what: 'the vector file' },
    ...(o.ids !== undefined ? [{ path: o.ids, what: '--ids' }] : []),
  ];
  if (o.ids === '-' && o.file === '-') throw new UsageError('only one input can be standard input (-)');
  // Before anything is read or built: a build can take minutes, and an --out
  // naming the input would replace the vectors with the index.
  await checkOutputPath({ path: o.out, what: '--out' }, inputs);
  const [{ IvfRabitqIndex }, { buildProgressBar }] = await Promise.all([
    import('../ivf_index.js'),
    import('../bench/progress.js'),
  ]);
  const source = await openVectorSource(inputs[0]!);
  let vf;
  try {
    vf = { dim: source.dim, count: source.count, data: await source.read(0, source.count) };
  } finally {
    await source.close();
  }
  const fileName = o.file === '-' ? 'standard input' : o.file;
  if (o.clusters !== undefined && o.clusters > vf.count) {
    throw new UsageError(`--clusters ${o.clusters} is more than the ${vf.count} vectors in ${fileName}`);
  }
  const ids = o.ids === undefined ? undefined : await readIds(o.ids, vf.count);
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
      ...(ids !== undefined ? { ids } : {}),
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
