/**
 * `rabitq recall <results.ivecs> <groundtruth.ivecs> [--k 10]`: recall@k of
 * result ids against the exact ground truth, row by row.
 */
import type { CliIo } from './io.js';
import { InputError } from './errors.js';
import { recallAtK } from '../recall.js';
import { readIvecsInput } from './files.js';
import { UsageError, intOption, parseCommandLine, type OptionSpec } from './options.js';

export const RECALL_HELP = `Usage: rabitq recall <results.ivecs> <groundtruth.ivecs> [--k <n>] [--json]

Recall@k: the mean over queries of how many of the k first result ids are
among the k first ground-truth ids, divided by k. Row i of both files is
query i; every query of the ground truth must have a result row. Also shows
recall@1, and recall@100 when both files have at least 100 columns.

  <results.ivecs>       ids, best first, e.g. from \`rabitq search\` (or - for standard input)
  <groundtruth.ivecs>   exact neighbour ids, nearest first, e.g. from \`rabitq groundtruth\`
  --k <n>               the k of the main figure (default 10, or the
                        results' width when it is smaller and --k is not given)
  --json                print {"rows", "recall": {"1": .., "10": ..}} on stdout

Exit codes: 0 done, 1 failure while running, 2 bad input or usage.
`;

const SPEC: Record<string, OptionSpec> = {
  k: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export async function recallCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine(argv, SPEC, 2);
  if (values.help === true) {
    io.stdout(RECALL_HELP);
    return 0;
  }
  if (positionals.length < 2) throw new UsageError('needs two files: <results.ivecs> <groundtruth.ivecs>');
  const kGiven = intOption(values, 'k', 1, 100000);
  const [resultsPath, gtPath] = positionals as [string, string];
  if (resultsPath === '-' && gtPath === '-')
    throw new UsageError('only one of the two files can be standard input (-)');
  const results = await readIvecsInput({ path: resultsPath, what: 'results' });
  const gt = await readIvecsInput({ path: gtPath, what: 'ground truth' });
  const rName = resultsPath === '-' ? 'results (standard input)' : resultsPath;
  if (results.count < gt.count) {
    throw new InputError(
      `${rName} has ${results.count} rows but the ground truth ${gtPath} has ${gt.count}: every query needs a result row`,
    );
  }
  if (results.count > gt.count) {
    throw new InputError(
      `${rName} has ${results.count} rows but the ground truth ${gtPath} only ${gt.count}: are they for the same queries?`,
    );
  }
  const k = kGiven ?? Math.min(10, results.dim);
  if (k > results.dim) throw new InputError(`--k ${k} is more than the ${results.dim} ids per row of ${rName}`);
  if (k > gt.dim) throw new InputError(`--k ${k} is more than the ${gt.dim} ids per row of the ground truth ${gtPath}`);
  const ks = [...new Set([1, k, ...(results.dim >= 100 && gt.dim >= 100 ? [100] : [])])].sort((a, b) => a - b);
  const recall: Record<string, number> = {};
  for (const kk of ks) recall[String(kk)] = recallAtK(results.data, gt, kk, results.dim);
  if (values.json === true) {
    io.stdout(JSON.stringify({ rows: gt.count, k, recall }) + '\n');
  } else {
    io.stdout(`${gt.count} queries\n`);
    for (const kk of ks) io.stdout(`${`recall@${kk}`.padEnd(12)}${recall[String(kk)]!.toFixed(4)}\n`);
  }
  return 0;
}
