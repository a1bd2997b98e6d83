import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticDataset } from '../src/bench/synthetic.js';
import { main } from '../src/cli/main.js';
import { parseCommandLine, parseIntList } from '../src/cli/options.js';
import { ensureDist } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), isTTY: false });
  return { code, out, err };
}

/** Exit code 2 with exactly one line on stderr, matching `re`, and no stack trace. */
async function expectBadInput(args: string[], re: RegExp): Promise<void> {
  const r = await run(args);
  expect(r.err).toMatch(re);
  expect(r.code).toBe(2);
  // setup warnings (e.g. an unpinned process) may come first when the error is found late
  const lines = r.err
    .trimEnd()
    .split('\n')
    .filter((l) => !l.startsWith('warning: '));
  expect(lines).toHaveLength(1);
  expect(r.err).not.toMatch(/\n\s+at /);
  expect(lines[0]).toMatch(/^rabitq( bench)?: error: /);
}

let tmp: string;
let good: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'rabitq-cli-test-'));
  good = path.join(tmp, 'good');
  await writeSyntheticDataset(good, { n: 400, nq: 10, dim: 8, gtK: 20 });
  await writeSyntheticDataset(path.join(tmp, 'dims'), { n: 100, nq: 5, dim: 8, queryDim: 12 });
  await writeSyntheticDataset(path.join(tmp, 'rows'), { n: 100, nq: 10, dim: 8, gtK: 10, gtRows: 4 });
  await writeSyntheticDataset(path.join(tmp, 'empty-dir-sibling'), { n: 50, nq: 2, dim: 4, gtK: 10 });
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('argument parsing', () => {
  it('accepts --opt value, --opt=value, short flags and --no-flag', () => {
    const { values } = parseCommandLine(['--a', '1', '--b=2', '-v', '--no-c'], {
      a: { type: 'string' },
      b: { type: 'string' },
      v: { type: 'boolean', short: 'v' },
      c: { type: 'boolean' },
    });
    expect(values).toEqual({ a: '1', b: '2', v: true, c: false });
  });

  it('expands integer lists and ranges', () => {
    expect(parseIntList('nprobe', '1,2,4-6,4', 1)).toEqual([1, 2, 4, 5, 6]);
    expect(() => parseIntList('nprobe', '1,,2', 1)).toThrow(/comma-separated/);
    expect(() => parseIntList('nprobe', '3-1', 1)).toThrow(/empty range/);
  });
});

describe('rabitq CLI (in process)', () => {
  it('prints help and version', async () => {
    const h = await run([]);
    expect(h.code).toBe(0);
    expect(h.out).toContain('Usage: rabitq <command>');
    const bh = await run(['bench', '--help']);
    expect(bh.code).toBe(0);
    expect(bh.out).toContain('--nprobe <list>');
    const v = await run(['--version']);
    expect(v.code).toBe(0);
    expect(v.out.trim()).toBe(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('reports unknown commands and options', async () => {
    await expectBadInput(['frobnicate'], /unknown command "frobnicate"/);
    await expectBadInput(['--frob'], /unknown option --frob/);
    await expectBadInput(['bench', '--data', good, '--bogus'], /unknown option --bogus/);
    await expectBadInput(['bench', '--data', good, 'extra'], /unexpected argument "extra"/);
    await expectBadInput(['bench', '--data'], /option --data needs a value/);
    await expectBadInput(['bench', '--k', '5', '--k', '6', '--data', good], /given more than once/);
  });

  it('reports missing datasets and files', async () => {
    await expectBadInput(['bench'], /no dataset given/);
    await expectBadInput(['bench', '--data', path.join(tmp, 'nope')], /dataset directory not found/);
    await expectBadInput(
      [
        'bench',
        '--base',
        path.join(tmp, 'missing.fvecs'),
        '--query',
        path.join(good, 'query.fvecs'),
        '--gt',
        path.join(good, 'groundtruth.ivecs'),
      ],
      /base file not found: .*missing\.fvecs/,
    );
    await expectBadInput(
      ['bench', '--base', path.join(good, 'base.fvecs'), '--query', path.join(good, 'query.fvecs')],
      /no dataset given: use --data <dir> or --gt/,
    );
    await expectBadInput(['bench', '--data', tmp], /no base\.fvecs or base\.bvecs in/);
  });

  it('reports inconsistent datasets', async () => {
    await expectBadInput(
      ['bench', '--data', path.join(tmp, 'dims')],
      /dimension mismatch: base vectors have dim 8 but queries have dim 12/,
    );
    await expectBadInput(
      ['bench', '--data', path.join(tmp, 'rows')],
      /ground truth has 4 rows but 10 queries are used/,
    );
    await expectBadInput(
      ['bench', '--data', good, '--k', '50'],
      /ground truth has 20 neighbours per query but --k is 50/,
    );
    await expectBadInput(['bench', '--data', good, '--nq', '11'], /--nq 11 exceeds the 10 queries/);
    // a corrupt file is bad input too
    await expectBadInput(
      [
        'bench',
        '--base',
        path.join(ROOT, 'package.json'),
        '--query',
        path.join(good, 'query.fvecs'),
        '--gt',
        path.join(good, 'groundtruth.ivecs'),
      ],
      /base file must be \.fvecs or \.bvecs/,
    );
  });

  it('validates nprobe and other numbers', async () => {
    const d = ['bench', '--data', good];
    await expectBadInput([...d, '--nprobe', '0'], /--nprobe must be >= 1, got 0/);
    await expectBadInput([...d, '--nprobe', '1.5'], /--nprobe values must be integers, got "1.5"/);
    await expectBadInput([...d, '--nprobe', '2,abc'], /--nprobe values must be integers, got "abc"/);
    await expectBadInput([...d, '--nprobe', '-3'], /--nprobe values must be integers/);
    await expectBadInput([...d, '--clusters', '8', '--nprobe', '4,9'], /--nprobe 9 is out of range: --clusters is 8/);
    await expectBadInput([...d, '--clusters', '1000'], /--clusters 1000 exceeds the 400 base vectors/);
    await expectBadInput([...d, '--k', '0'], /--k must be in 1\.\.100000, got 0/);
    await expectBadInput([...d, '--threads', 'two'], /--threads must be an integer, got "two"/);
    await expectBadInput([...d, '--runs', '0'], /--runs must be in 1\.\.1000/);
    await expectBadInput([...d, '--mode', 'fast'], /--mode: unknown value "fast" \(expected single, batch\)/);
    await expectBadInput([...d, '--compare', 'faiss,annoy'], /--compare: unknown value "annoy"/);
    await expectBadInput([...d, '--name', '../x'], /--name may contain only/);
  });

  it('rejects nprobe above the default number of clusters after the build', async () => {
    // 400 vectors -> the library picks round(4 * sqrt(400)) = 80 clusters by default
    await expectBadInput(
      ['bench', '--data', good, '--nprobe', '1,5000', '--runs', '1', '--no-out'],
      /nprobe 5000 is out of range: the index has \d+ clusters/,
    );
  });

  it('runs a tiny benchmark and writes its files', async () => {
    const outDir = path.join(tmp, 'out');
    const r = await run([
      'bench',
      '--data',
      good,
      '--clusters',
      '4',
      '--nprobe',
      '1,4',
      '--runs',
      '1',
      '--warmup',
      '0',
      '--min-time',
      '0',
      '--mode',
      'single,batch',
      '--compare',
      'js',
      '--out',
      outDir,
      '--name',
      'cli-run',
    ]);
    expect(r.err).not.toMatch(/error|failed/);
    expect(r.code).toBe(0);
    expect(r.out).toContain('rabitq (single)');
    expect(r.out).toContain('js IVF-Flat (single)');
    expect(readdirSync(outDir).sort()).toEqual(['cli-run.json', 'cli-run.md', 'cli-run.svg']);
    const json = JSON.parse(await readFile(path.join(outDir, 'cli-run.json'), 'utf8'));
    expect(json.commandLine.slice(0, 4)).toEqual(['rabitq', 'bench', '--data', good]);
    expect(json.config).toMatchObject({
      clusters: 4,
      nprobe: [1, 4],
      k: 10,
      runs: 1,
      warmup: 0,
      minRunMs: 0,
      modes: ['single', 'batch'],
      compare: ['js'],
    });
    expect(json.methods).toHaveLength(3);
    expect(json.dataset).toMatchObject({ baseCount: 400, queryCount: 10, groundTruthColumns: 20, dim: 8 });
    // gt has only 20 columns: no recall@100
    expect(json.methods[0].points[0].recall100).toBeNull();
  });
});

describe('rabitq CLI (spawned)', () => {
  const cli = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

  beforeAll(() => {
    ensureDist(cli);
  }, 180_000);

  it('is an executable node script that exits 2 on bad input', () => {
    expect(readFileSync(cli, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    const r = spawnSync(process.execPath, [cli, 'bench', '--data', path.join(tmp, 'nope'), '--nprobe', '1'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `rabitq bench: error: dataset directory not found: ${path.join(tmp, 'nope')}`,
    ]);
    const bad = spawnSync(process.execPath, [cli, 'bench', '--data', good, '--nprobe', 'x'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(
      /^rabitq bench: error: --nprobe values must be integers, got "x" \(see rabitq bench --help\)\n$/,
    );
    const ok = spawnSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
  });
});
