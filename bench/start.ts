/**
 * `npm start`: a quick, readable recall / QPS tour on the bundled siftsmall
 * (10k x 128 base vectors, 100 queries, top-100 ground truth).
 *
 *   npm start                       rabitq + js IVF-Flat + hnswlib
 *   npm start -- --compare all      also faiss (needs python3 with faiss-cpu)
 *
 * A repository script (not shipped): it runs the CLI's bench harness
 * (src/bench) with fixed settings.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { processIo, type CliIo } from '../src/cli/io.js';
import { parseChoiceList, parseCommandLine, stringOption } from '../src/cli/options.js';
import { errorLine, isInputError } from '../src/cli/errors.js';
import { cpusAllowedList, parseCpuList } from '../src/bench/machine.js';
import { repoRoot } from '../src/bench/paths.js';
import { runBench } from '../src/bench/runner.js';
import { PEER_NAMES, type PeerName } from '../src/bench/types.js';

const NPROBE = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

function compareFromArgs(argv: readonly string[]): PeerName[] {
  const raw = stringOption(parseCommandLine(argv, { compare: { type: 'string' } }).values, 'compare');
  if (raw === undefined) return ['js', 'hnswlib'];
  if (raw === 'all') return ['js', 'hnswlib', 'faiss'];
  if (raw === 'none') return [];
  return parseChoiceList('compare', raw, PEER_NAMES);
}

async function start(argv: readonly string[], io: CliIo): Promise<number> {
  const compare = compareFromArgs(argv);
  const dir = path.join(repoRoot(), 'datasets', 'siftsmall');
  if (!existsSync(path.join(dir, 'base.fvecs'))) {
    io.stderr(`npm start: the bundled dataset is missing (${dir}/base.fvecs)\n`);
    return 2;
  }
  const allowed = parseCpuList(cpusAllowedList() ?? '0').length || 1;
  const started = Date.now();
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
      compare,
      out: null,
      seed: 42,
      hnswM: 16,
      progress: io.isTTY,
      commandLine: ['npm', 'start', ...argv],
      title: 'rabitq quick benchmark: siftsmall (10k x 128, 100 queries), 64 clusters, k = 10',
    },
    io,
  );
  io.stdout(
    `\ndone in ${((Date.now() - started) / 1000).toFixed(1)} s. Larger runs and result files:\n` +
      '  npm run bench -- --data <dir with base/query/groundtruth> --compare faiss,hnswlib,js\n',
  );
  return 0;
}

start(process.argv.slice(2), processIo).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const bad = isInputError(err);
    process.stderr.write(`npm start: ${bad ? 'error' : 'failed'}: ${errorLine(err)}\n`);
    process.exitCode = bad ? 2 : 1;
  },
);
