/**
 * `rabitq search <index-file> <queries> --k 10 --nprobe 32 --out results.ivecs`:
 * runs a query file through a saved index with searchBatch, chunk by chunk
 * (a 10M-query file never needs 10M rows in memory), and writes the ids
 * (and optionally the distances) as texmex files.
 */
import type { CliIo } from './io.js';
import { InputError } from './errors.js';
import { AtomicVecsWriter, checkOutputPath, inputErrorNaming, openVectorSource, type VectorSource } from './files.js';
import { mean, percentile } from '../bench/stats.js';
import { UsageError, intOption, parseCommandLine, stringOption, type OptionSpec } from './options.js';

export const SEARCH_HELP = `Usage: rabitq search <index-file> <queries> --k <n> --nprobe <n> --out <results.ivecs> [options]

Searches every query of a .fvecs or .bvecs file (or - for standard input) in
an index saved by \`rabitq build\` or index.save(), and writes the ids of the
k results of each query, best first, as one .ivecs row per query. Queries
are read and searched in chunks, so the query file may be larger than memory.

  --k <n>               results per query (default 10)
  --nprobe <n>          clusters scanned per query (default 32; above the
                        index's clusters it scans them all)
  --out, -o <file>      the .ivecs to write (required; written atomically)
  --distances <file>    also write the distances as .fvecs (same rows; squared
                        L2, 1 - cos, or the inner product, by the index's metric)
  --threads <n>         search threads (default: the CPUs this process may use)
  --mmap                map the index file instead of reading it
  --chunk <n>           queries per searchBatch call (default 10000)
  --latency-sample <n>  after the batch, time this many single-query searches
                        (one thread) for the latency summary (default 1000; 0: none)
  --ids64               accept an index with 64-bit ids (see below)

A slot without a result (fewer than k vectors in the index) is id -1.

64-bit ids: an index built with 64-bit ids (BigUint64Array ids) is refused
unless --ids64 is given. With --ids64 each id takes two int32 columns, so a
row has 2k columns: column 2j holds the low 32 bits and column 2j+1 the high
32 bits of result j. Read as little-endian int64, a row's bytes after its
dimension field are the k ids; -1 (both halves -1) marks a missing slot.
(An index with 32-bit ids written with --ids64 uses the same layout.)

The summary on stderr gives the queries per second of the batch search and
the latency of single searches on a sample of the queries.
Exit codes: 0 done, 1 failure while running, 2 bad input or usage.
`;

const SPEC: Record<string, OptionSpec> = {
  k: { type: 'string' },
  nprobe: { type: 'string' },
  out: { type: 'string', short: 'o' },
  distances: { type: 'string' },
  threads: { type: 'string' },
  mmap: { type: 'boolean' },
  chunk: { type: 'string' },
  'latency-sample': { type: 'string' },
  ids64: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** The ids of `ids` (Int32Array or BigInt64Array) as int32 columns: one per id, or two (low, high) with `wide`. */
function idColumns(ids: Int32Array | BigInt64Array, wide: boolean): Int32Array {
  if (!wide) return ids as Int32Array;
  if (ids instanceof BigInt64Array) return new Int32Array(ids.buffer, ids.byteOffset, ids.length * 2).slice();
  const out = new Int32Array(ids.length * 2);
  for (let i = 0; i < ids.length; i++) {
    out[2 * i] = ids[i]!;
    out[2 * i + 1] = ids[i]! < 0 ? -1 : 0;
  }
  return out;
}

export async function searchCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, SPEC, 2);
  if (values.help === true) {
    io.stdout(SEARCH_HELP);
    return 0;
  }
  if (positionals.length < 2) throw new UsageError('needs two files: <index-file> <queries>');
  const out = stringOption(values, 'out');
  if (out === undefined) throw new UsageError('missing --out <results.ivecs>');
  if (!/\.ivecs$/i.test(out)) throw new UsageError(`--out must end in .ivecs, got ${JSON.stringify(out)}`);
  const distOut = stringOption(values, 'distances');
  if (distOut !== undefined && !/\.fvecs$/i.test(distOut)) {
    throw new UsageError(`--distances must end in .fvecs, got ${JSON.stringify(distOut)}`);
  }
  const k = intOption(values, 'k', 1, 100000, 10);
  const nprobe = intOption(values, 'nprobe', 1, 2 ** 31 - 1, 32);
  const threads = intOption(values, 'threads', 1, 1024);
  const chunk = intOption(values, 'chunk', 1, 10_000_000, 10000);
  const latencySample = intOption(values, 'latency-sample', 0, 1_000_000, 1000);
  const ids64 = values.ids64 === true;
  const indexFile = positionals[0]!;
  if (indexFile === '-') throw new UsageError('the index must be a file (standard input cannot be mapped or checked)');
  const inputs = [
    { path: indexFile, what: 'index' },
    { path: positionals[1]!, what: 'queries' },
  ];
  const outputs = [
    { path: out, what: '--out' },
    ...(distOut !== undefined ? [{ path: distOut, what: '--distances' }] : []),
  ];
  for (let i = 0; i < outputs.length; i++) await checkOutputPath(outputs[i]!, inputs, outputs.slice(0, i));

  const { IvfRabitqIndex } = await import('../ivf_index.js');
  let index;
  try {
    index = await IvfRabitqIndex.load(indexFile, { mmap: values.mmap === true });
  } catch (err) {
    throw inputErrorNaming(`index ${indexFile}`, indexFile, err);
  }
  if (index.idType === 'u64' && !ids64) {
    throw new InputError(
      `index ${indexFile} has 64-bit ids, which do not fit an .ivecs column; give --ids64 to write each id as two int32 columns (see --help)`,
    );
  }
  let queries: VectorSource | null = null;
  const idsWriter = await AtomicVecsWriter.open(out);
  const distWriter = distOut !== undefined ? await AtomicVecsWriter.open(distOut) : null;
  try {
    queries = await openVectorSource(inputs[1]!);
    if (queries.dim !== index.dim) {
      throw new InputError(
        `${queries.name}: queries have dimension ${queries.dim} but the index ${indexFile} has dimension ${index.dim}`,
      );
    }
    const nq = queries.count;
    const idDim = ids64 ? 2 * k : k;
    let searchNs = 0n;
    let sample: Float32Array | null = null;
    const sampleCount = Math.min(latencySample, nq);
    for (let q0 = 0; q0 < nq; q0 += chunk) {
      const q1 = Math.min(nq, q0 + chunk);
      const rows = await queries.read(q0, q1);
      if (sample === null && sampleCount > 0) sample = rows.slice(0, Math.min(sampleCount, q1 - q0) * index.dim);
      const t0 = process.hrtime.bigint();
      const r = await index.searchBatch(rows, { k, nprobe, ...(threads !== undefined ? { threads } : {}) });
      searchNs += process.hrtime.bigint() - t0;
      await idsWriter.write(idDim, idColumns(r.ids, ids64));
      if (distWriter) await distWriter.write(k, r.distances);
    }
    // The latency of one search() call, on the first queries, one thread.
    const lat = new Float64Array(sample ? sample.length / index.dim : 0);
    for (let i = 0; i < lat.length; i++) {
      const q = sample!.subarray(i * index.dim, (i + 1) * index.dim);
      const t0 = process.hrtime.bigint();
      index.search(q, { k, nprobe });
      lat[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    }
    await idsWriter.commit();
    if (distWriter) await distWriter.commit();
    const secs = Number(searchNs) / 1e9;
    const nprobeUsed = Math.min(nprobe, index.numClusters);
    io.stderr(
      `search: ${nq} queries, k ${k}, nprobe ${nprobeUsed}${nprobeUsed < nprobe ? ` (of ${nprobe} asked; the index has ${index.numClusters} clusters)` : ''}: ` +
        `${secs.toFixed(3)} s in searchBatch, ${(nq / Math.max(secs, 1e-9)).toFixed(0)} QPS -> ${out}${distOut ? `, ${distOut}` : ''}\n`,
    );
    if (lat.length > 0) {
      io.stderr(
        `search: single-query latency over ${lat.length} queries: mean ${mean(lat).toFixed(1)} us, ` +
          `p50 ${percentile(lat, 50).toFixed(1)} us, p99 ${percentile(lat, 99).toFixed(1)} us, max ${percentile(lat, 100).toFixed(1)} us\n`,
      );
    }
    return 0;
  } finally {
    await idsWriter.abort();
    await distWriter?.abort();
    await queries?.close();
  }
}
