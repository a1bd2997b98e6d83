/** Locating, loading and validating a benchmark dataset. */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { InputError, errorLine } from '../cli/errors.js';
import type { FloatVectors, IntVectors, VectorReaders } from './types.js';

export interface DatasetPaths {
  name: string;
  base: string;
  query: string;
  groundTruth: string;
}

export interface LoadedDataset {
  paths: DatasetPaths;
  dim: number;
  base: FloatVectors;
  /** only the first `nq` queries */
  queries: FloatVectors;
  queryCountInFile: number;
  groundTruth: IntVectors;
}

function pick(dir: string, stem: string): string | null {
  for (const ext of ['fvecs', 'bvecs']) {
    const p = path.join(dir, `${stem}.${ext}`);
    if (existsSync(p)) return p;
  }
  return null;
}

/**
 * Resolve the three files from --data <dir> and/or explicit --base/--query/--gt
 * (explicit paths win). Throws InputError when something is missing.
 */
export function resolveDatasetPaths(opts: { data?: string; base?: string; query?: string; gt?: string }): DatasetPaths {
  let base = opts.base;
  let query = opts.query;
  let gt = opts.gt;
  if (opts.data !== undefined) {
    const dir = opts.data;
    if (!existsSync(dir)) throw new InputError(`dataset directory not found: ${dir}`);
    if (!statSync(dir).isDirectory()) throw new InputError(`--data must be a directory: ${dir}`);
    base ??= pick(dir, 'base') ?? undefined;
    query ??= pick(dir, 'query') ?? undefined;
    gt ??= existsSync(path.join(dir, 'groundtruth.ivecs')) ? path.join(dir, 'groundtruth.ivecs') : undefined;
    if (base === undefined) throw new InputError(`no base.fvecs or base.bvecs in ${dir}`);
    if (query === undefined) throw new InputError(`no query.fvecs or query.bvecs in ${dir}`);
    if (gt === undefined) throw new InputError(`no groundtruth.ivecs in ${dir}`);
  }
  if (base === undefined || query === undefined || gt === undefined) {
    const missing = [
      base === undefined ? '--base' : null,
      query === undefined ? '--query' : null,
      gt === undefined ? '--gt' : null,
    ].filter(Boolean);
    throw new InputError(`no dataset given: use --data <dir> or ${missing.join(', ')}`);
  }
  for (const [flag, p] of [
    ['base', base],
    ['query', query],
    ['ground truth', gt],
  ] as const) {
    if (!existsSync(p)) throw new InputError(`${flag} file not found: ${p}`);
    if (!statSync(p).isFile()) throw new InputError(`${flag} path is not a file: ${p}`);
  }
  if (!/\.(fvecs|bvecs)$/.test(base)) throw new InputError(`base file must be .fvecs or .bvecs: ${base}`);
  if (!/\.(fvecs|bvecs)$/.test(query)) throw new InputError(`query file must be .fvecs or .bvecs: ${query}`);
  if (!/\.ivecs$/.test(gt)) throw new InputError(`ground truth file must be .ivecs: ${gt}`);
  const name =
    opts.data !== undefined
      ? path.basename(path.resolve(opts.data))
      : path.basename(path.dirname(path.resolve(base))) || 'dataset';
  return { name, base, query, groundTruth: gt };
}

async function readVectors(engine: VectorReaders, file: string, what: string): Promise<FloatVectors> {
  try {
    return file.endsWith('.bvecs') ? await engine.readBvecs(file) : await engine.readFvecs(file);
  } catch (err) {
    throw new InputError(`cannot read ${what} file ${file}: ${errorLine(err)}`);
  }
}

/**
 * Load and cross-check the dataset. `nq` limits the number of queries;
 * `k` is the number of neighbours that will be requested (the ground truth
 * must have at least that many columns).
 */
export async function loadDataset(
  engine: VectorReaders,
  paths: DatasetPaths,
  opts: { nq?: number; k: number },
): Promise<LoadedDataset> {
  const base = await readVectors(engine, paths.base, 'base');
  const queriesAll = await readVectors(engine, paths.query, 'query');
  let groundTruth: IntVectors;
  try {
    groundTruth = await engine.readIvecs(paths.groundTruth);
  } catch (err) {
    throw new InputError(`cannot read ground truth file ${paths.groundTruth}: ${errorLine(err)}`);
  }
  if (base.count === 0) throw new InputError(`base file ${paths.base} holds no vectors`);
  if (queriesAll.count === 0) throw new InputError(`query file ${paths.query} holds no vectors`);
  if (base.dim !== queriesAll.dim) {
    throw new InputError(
      `dimension mismatch: base vectors have dim ${base.dim} but queries have dim ${queriesAll.dim}`,
    );
  }
  let nq = queriesAll.count;
  if (opts.nq !== undefined) {
    if (opts.nq > queriesAll.count) {
      throw new InputError(`--nq ${opts.nq} exceeds the ${queriesAll.count} queries in ${paths.query}`);
    }
    nq = opts.nq;
  }
  if (groundTruth.count < nq) {
    throw new InputError(
      `ground truth has ${groundTruth.count} rows but ${nq} queries are used (${paths.groundTruth})`,
    );
  }
  if (groundTruth.dim < opts.k) {
    throw new InputError(`ground truth has ${groundTruth.dim} neighbours per query but --k is ${opts.k}`);
  }
  const queries: FloatVectors =
    nq === queriesAll.count
      ? queriesAll
      : { dim: queriesAll.dim, count: nq, data: queriesAll.data.subarray(0, nq * queriesAll.dim) };
  const gt: IntVectors =
    groundTruth.count === nq
      ? groundTruth
      : { dim: groundTruth.dim, count: nq, data: groundTruth.data.subarray(0, nq * groundTruth.dim) };
  return {
    paths,
    dim: base.dim,
    base,
    queries,
    queryCountInFile: queriesAll.count,
    groundTruth: gt,
  };
}
