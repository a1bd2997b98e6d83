/**
 * `npm start`: a quick, readable recall / QPS tour on the bundled siftsmall
 * (10k x 128 base vectors, 100 queries, top-100 ground truth).
 *
 *   npm start                       rabitq + js IVF-Flat + hnswlib
 *   npm start -- --compare all      also faiss (needs python3 with faiss-cpu)
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { errorLine, isInputError } from '../src/bench/errors.js';
import { cpusAllowedList, parseCpuList } from '../src/bench/machine.js';
import { repoRoot } from '../src/bench/paths.js';
import { runBench } from '../src/bench/runner.js';
import type { PeerName } from '../src/bench/types.js';

const NPROBE = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

function compareFromArgs(argv: string[]): PeerName[] {
  const i = argv.findIndex((a) => a === '--compare' || a.startsWith('--compare='));
  if (i < 0) return ['js', 'hnswlib'];
  const raw = argv[i]!.includes('=') ? argv[i]!.split('=')[1]! : (argv[i + 1] ?? '');
  if (raw === 'all') return ['js', 'hnswlib', 'faiss'];
  if (raw === 'none') return [];
  const names = raw.split(',').filter(Boolean);
  for (const n of names) {
    if (!['faiss', 'hnswlib', 'js'].includes(n)) throw new Error(`--compare: unknown peer ${JSON.stringify(n)}`);
  }
  return names as PeerName[];
}

async function start(argv: string[]): Promise<number> {
  const dir = path.join(repoRoot(), 'datasets', 'siftsmall');
  if (!existsSync(path.join(dir, 'base.fvecs'))) {
    process.stderr.write(`npm start: the bundled dataset is missing (${dir}/base.fvecs)\n`);
    return 2;
  }
  const allowed = parseCpuList(cpusAllowedList() ?? '0').length || 1;
  const started = Date.now();
  const out = (l: string) => void process.stdout.write(l + '\n');
  await runBench(
    {
      data: dir,
      clusters: 64,
      nprobe: NPROBE,
      k: 10,
      threads: allowed,
      runs: 3,
      warmup: 1,
      minRunMs: 50,
      modes: ['single', 'batch'],
      compare: compareFromArgs(argv),
      out: null,
      seed: 42,
      hnswM: 16,
      progress: Boolean(process.stderr.isTTY),
      commandLine: ['npm', 'start', ...argv],
      title: 'rabitq quick benchmark: siftsmall (10k x 128, 100 queries), 64 clusters, k = 10',
    },
    { out, err: (l) => void process.stderr.write(l + '\n') },
  );
  out('');
  out(`done in ${((Date.now() - started) / 1000).toFixed(1)} s. Larger runs and result files:`);
  out('  npm run bench -- --data <dir with base/query/groundtruth> --compare faiss,hnswlib,js');
  return 0;
}

start(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`npm start: ${isInputError(err) ? 'error' : 'failed'}: ${errorLine(err)}\n`);
    process.exitCode = isInputError(err) ? 2 : 1;
  },
);
