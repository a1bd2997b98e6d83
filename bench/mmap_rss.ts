/**
 * Resident memory of an index loaded with `mmap: true`, before and after a
 * warm sweep of queries, against the parts memoryUsage() reports: does a
 * mapped index keep just the codes, factors and the vectors it re-ranked in
 * RAM, or the whole file?
 *
 *   taskset -c 1 node dist/bench/mmap_rss.js ../data/sift1m-cv/idx-b3.rbq [more.rbq ...] \
 *     --queries ../data/sift1m-cv/query.bvecs --nprobe 32 [--drop-caches]
 *
 * Each index is measured in a fresh process (this script re-runs itself per
 * file), so one file's pages do not count for the next. RssFile is the file
 * pages mapped into the process; the page cache may hold more, shared with
 * other processes and dropped first under memory pressure. --drop-caches
 * (root) empties the page cache before each load, for a cold start.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IvfRabitqIndex, readBvecs, readFvecs } from '../src/index.js';
import { UsageError, intOption, parseCommandLine, stringOption } from '../src/cli/options.js';
import { cpuModel, cpusAllowedList, gitCommit } from '../src/bench/machine.js';

const here = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(here), '..', here.includes(`${path.sep}dist${path.sep}`) ? '..' : '.');

interface Rss {
  anonMiB: number;
  fileMiB: number;
}

function rss(): Rss {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { anonMiB: kb('RssAnon') / 1024, fileMiB: kb('RssFile') / 1024 };
}

const MiB = (b: number) => b / 2 ** 20;

async function measureOne(indexFile: string, queriesFile: string, nprobe: number, k: number, dropCaches: boolean) {
  if (dropCaches) writeFileSync('/proc/sys/vm/drop_caches', '1');
  const queries = /\.bvecs$/i.test(queriesFile)
    ? await readBvecs(queriesFile, { asFloat32: true })
    : await readFvecs(queriesFile);
  const before = rss();
  const t0 = performance.now();
  const index = await IvfRabitqIndex.load(indexFile, { mmap: true });
  const loadMs = performance.now() - t0;
  const afterLoad = rss();
  const nq = Math.min(queries.count, 2000);
  const stats = { reranked: 0, exEstimated: 0, codesScanned: 0 };
  const t1 = performance.now();
  for (let i = 0; i < nq; i++) {
    const r = index.search(queries.data.subarray(i * queries.dim, (i + 1) * queries.dim), {
      k,
      nprobe,
      stats: true,
    });
    stats.reranked += r.stats!.reranked;
    stats.exEstimated += r.stats!.exEstimated;
    stats.codesScanned += r.stats!.codesScanned;
  }
  const sweepMs = performance.now() - t1;
  const afterSweep = rss();
  const memory = index.memoryUsage();
  const vectorRowBytes = index.storeVectors ? index.dim * 4 : 0;
  return {
    index: indexFile,
    fileMiB: MiB(statSync(indexFile).size),
    size: index.size,
    dim: index.dim,
    bits: index.bits,
    storeVectors: index.storeVectors,
    nprobe,
    k,
    queries: nq,
    dropCaches,
    loadMs,
    sweepMs,
    memoryMiB: Object.fromEntries(Object.entries(memory).map(([part, b]) => [part, MiB(b)])),
    // The sweep touches every code and factor of the clusters it probes (at
    // nprobe of numClusters, on these query sets most clusters over 2,000
    // queries), and only the re-ranked vectors' rows.
    hotMiB: MiB(memory.codes + memory.factors + memory.exCodes + memory.ids + memory.centroids),
    rerankedRowsMiB: MiB(stats.reranked * vectorRowBytes),
    stats,
    rss: { before, afterLoad, afterSweep },
  };
}

const { values, positionals: indexFiles } = parseCommandLine(
  process.argv.slice(2),
  {
    queries: { type: 'string' },
    nprobe: { type: 'string' },
    k: { type: 'string' },
    'drop-caches': { type: 'boolean' },
    child: { type: 'boolean' },
    name: { type: 'string' },
  },
  64,
);
const queriesFile = stringOption(values, 'queries');
if (indexFiles.length === 0 || !queriesFile) throw new UsageError('index files and --queries are required');
const nprobe = intOption(values, 'nprobe', 1, 1 << 20, 32);
const k = intOption(values, 'k', 1, 1024, 10);
const dropCaches = values['drop-caches'] === true;

if (values.child) {
  process.stdout.write(JSON.stringify(await measureOne(indexFiles[0]!, queriesFile, nprobe, k, dropCaches)) + '\n');
  process.exit(0);
}

const rows: Array<Awaited<ReturnType<typeof measureOne>>> = [];
for (const file of indexFiles) {
  const argv = [here, '--child', file, '--queries', queriesFile, '--nprobe', String(nprobe), '--k', String(k)];
  if (dropCaches) argv.push('--drop-caches');
  const out = execFileSync(process.execPath, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const row = JSON.parse(out) as Awaited<ReturnType<typeof measureOne>>;
  rows.push(row);
  process.stderr.write(
    `${path.basename(file)}: file ${row.fileMiB.toFixed(0)} MiB; index pages resident after load ${(row.rss.afterLoad.fileMiB - row.rss.before.fileMiB).toFixed(0)}, after sweep ${(row.rss.afterSweep.fileMiB - row.rss.before.fileMiB).toFixed(0)} MiB; hot parts ${row.hotMiB.toFixed(0)} MiB, vectors ${row.memoryMiB.vectors!.toFixed(0)} MiB\n`,
  );
}

const commit = gitCommit(ROOT);
const affinity = cpusAllowedList() ?? '?';
const name = stringOption(values, 'name') ?? 'mmap-rss';
const report = {
  name,
  date: new Date().toISOString(),
  commit,
  cpu: cpuModel(),
  cpusAllowed: affinity,
  node: process.version,
  commandLine: ['node', 'dist/bench/mmap_rss.js', ...process.argv.slice(2)].join(' '),
  rows,
};
const out = path.join(ROOT, 'bench', 'results');
writeFileSync(path.join(out, `${name}.json`), JSON.stringify(report, null, 2) + '\n');
const f = (x: number) => x.toFixed(0);
const lines = [
  `### ${name}`,
  '',
  `Each index loaded with \`mmap: true\` in a fresh process, then ${rows[0]!.queries} queries searched one by one at nprobe ${nprobe}, k ${k}` +
    (dropCaches ? ', page cache dropped before each load (cold).' : ' (page cache warm from earlier runs).') +
    ' Index pages resident = RssFile (file pages mapped into the process) minus its value before the load (node and its libraries); "hot parts" = codes + factors + multi-bit codes + ids + centroids (memoryUsage()); "re-ranked rows" = exact distances x 4 x dim bytes (an upper bound on distinct vector bytes read).',
  '',
  `Machine: ${report.cpu}, CPUs ${affinity}, node ${process.version}; commit \`${commit}\`, ${report.date}.`,
  '',
  '| index | bits | raw vectors | file (MiB) | index pages resident after load | after sweep | RssAnon growth | hot parts (MiB) | vectors (MiB) | re-ranked rows (MiB) | load (ms) |',
  '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${path.basename(r.index)} | ${r.bits} | ${r.storeVectors ? 'kept' : 'none'} | ${f(r.fileMiB)} | ${f(r.rss.afterLoad.fileMiB - r.rss.before.fileMiB)} | ${f(r.rss.afterSweep.fileMiB - r.rss.before.fileMiB)} | ${f(r.rss.afterSweep.anonMiB - r.rss.before.anonMiB)} | ${f(r.hotMiB)} | ${f(r.memoryMiB.vectors!)} | ${f(r.rerankedRowsMiB)} | ${f(r.loadMs)} |`,
  ),
  '',
  `Command: \`${report.commandLine}\``,
  '',
];
writeFileSync(path.join(out, `${name}.md`), lines.join('\n'));
process.stderr.write(`wrote bench/results/${name}.{json,md}\n`);
