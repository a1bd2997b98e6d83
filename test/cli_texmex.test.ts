/**
 * The shell workflow on texmex files: rabitq groundtruth -> build -> search ->
 * recall -> info, on the bundled siftsmall, checked against the shipped
 * ground truth, brute force and `rabitq bench`; and every bad input of those
 * commands: exit 2, one line naming the file, no output file left behind.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { runBench } from '../src/bench/runner.js';
import { readIvecs, writeFvecs, writeIvecs } from '../src/io.js';
import { ROOT, ensureDist, exact, gaussian, rng, tempFolders } from './helpers.js';

const SIFT = path.join(ROOT, 'datasets', 'siftsmall');
const BASE = path.join(SIFT, 'base.fvecs');
const QUERY = path.join(SIFT, 'query.fvecs');
const GT = path.join(SIFT, 'groundtruth.ivecs');
const tmp = tempFolders('cli-texmex');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), isTTY: false });
  return { code, out, err };
}

/** Exit 2, one `rabitq <cmd>: error:` line matching `re`, no stack trace, and `dir` unchanged (no output, no temporary). */
async function expectRefused(args: string[], re: RegExp, dir: string): Promise<void> {
  const before = fs.readdirSync(dir).sort();
  const r = await run(args);
  expect(r.err).toMatch(re);
  expect(r.code).toBe(2);
  expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  expect(r.err).toMatch(/^rabitq \w+: error: /);
  expect(r.err).not.toMatch(/\n\s+at /);
  expect(fs.readdirSync(dir).sort()).toEqual(before);
}

let work: string;
let index: string;

beforeAll(async () => {
  work = tmp('sift');
  index = path.join(work, 'sift.rbq');
  const b = await run(['build', BASE, '--out', index, '--threads', '1', '--no-progress']);
  expect(b.err).toBe('');
  expect(b.code).toBe(0);
}, 60_000);

describe('rabitq groundtruth / search / recall on siftsmall', () => {
  it('groundtruth reproduces the shipped siftsmall ground truth byte for byte', async () => {
    const out = path.join(work, 'gt.ivecs');
    const r = await run(['groundtruth', BASE, QUERY, '--k', '100', '--out', out]);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(GT))).toBe(true);
  });

  it('search + recall give the recall rabitq bench reports at the same nprobe', async () => {
    const results = path.join(work, 'r16.ivecs');
    const dists = path.join(work, 'd16.fvecs');
    const s = await run([
      'search',
      index,
      QUERY,
      '--k',
      '10',
      '--nprobe',
      '16',
      '--out',
      results,
      '--distances',
      dists,
    ]);
    expect(s.code).toBe(0);
    expect(s.err).toMatch(/100 queries, k 10, nprobe 16: .* QPS/);
    expect(s.err).toMatch(/single-query latency over 100 queries: mean .* p99/);
    const ids = await readIvecs(results);
    expect([ids.dim, ids.count]).toEqual([10, 100]);
    const rec = await run(['recall', results, GT, '--json']);
    expect(rec.code).toBe(0);
    const got = JSON.parse(rec.out) as { rows: number; k: number; recall: Record<string, number> };
    expect(got.rows).toBe(100);

    const io = { stdout: () => {}, stderr: () => {}, isTTY: false };
    const bench = await runBench(
      {
        data: SIFT,
        k: 10,
        threads: 1,
        runs: 1,
        warmup: 0,
        minRunMs: 0,
        modes: ['batch'],
        nprobe: [16],
        compare: [],
        out: null,
        seed: 42,
        hnswM: 16,
        progress: false,
        commandLine: [],
      },
      io,
    );
    const point = bench.report.methods[0]!.points[0]!;
    expect(point.value).toBe(16);
    expect(got.recall['10']).toBeCloseTo(point.recall10!, 10);
    expect(got.recall['1']).toBeCloseTo(point.recall1!, 10);
    // and the figure is a real one: well above chance, below a full scan's
    expect(got.recall['10']).toBeGreaterThan(0.8);
  }, 60_000);

  it('a full probe finds the exact neighbours; the distances file holds their squared L2 distances', async () => {
    const results = path.join(work, 'rall.ivecs');
    const dists = path.join(work, 'dall.fvecs');
    expect(
      (await run(['search', index, QUERY, '--k', '100', '--nprobe', '100000', '-o', results, '--distances', dists]))
        .code,
    ).toBe(0);
    const rec = await run(['recall', results, GT]);
    expect(rec.out).toMatch(/recall@1 +1\.0000/);
    expect(rec.out).toMatch(/recall@10 +1\.0000/);
    expect(rec.out).toMatch(/recall@100 +(1\.0000|0\.99)/); // a tie at the 100th place could swap an id
    const { readFvecs } = await import('../src/io.js');
    const base = await readFvecs(BASE);
    const q = await readFvecs(QUERY);
    const ids = await readIvecs(results);
    const d = await readFvecs(dists);
    for (const [qi, j] of [
      [0, 0],
      [7, 5],
      [99, 99],
    ] as const) {
      const id = ids.data[qi * 100 + j]!;
      const want = exact('l2', q.data.subarray(qi * 128, (qi + 1) * 128), base.data.subarray(id * 128, (id + 1) * 128));
      expect(d.data[qi * 100 + j]).toBeCloseTo(want, 0);
    }
  });

  it('recall of the ground truth against itself is 1 at every k; --k picks the figure', async () => {
    const r = await run(['recall', GT, GT, '--k', '50']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/recall@1 +1\.0000\nrecall@50 +1\.0000\nrecall@100 +1\.0000/);
  });
});

describe('rabitq info <index-file>', () => {
  it('shows what the file holds, as text and JSON, and says whether the big sections were verified', async () => {
    const t = await run(['info', index]);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/format version 3/);
    expect(t.out).toMatch(/vectors +10000 x 128/);
    expect(t.out).toMatch(/metric +l2/);
    expect(t.out).toMatch(/raw vectors +kept/);
    expect(t.out).toMatch(/CODE, FACT, IDS, VECS not verified \(use --verify\)/);
    const j = await run(['info', index, '--json', '--verify']);
    expect(j.code).toBe(0);
    const info = JSON.parse(j.out) as Record<string, unknown> & { sections: { tag: string; bytes: number }[] };
    expect(info).toMatchObject({ dim: 128, vectors: 10000, metric: 'l2', bits: 1, idBits: 32, rawVectors: true });
    expect(info.checksums).toBe('all verified');
    expect(info.fileBytes).toBe(fs.statSync(index).size);
    expect(info.sections.find((s) => s.tag === 'VECS')!.bytes).toBe(10000 * 128 * 4);
    expect(info.sections.find((s) => s.tag === 'IDS')!.bytes).toBe(10000 * 4);
  });

  it('--verify finds a flipped byte in a big section that the quick look does not read', async () => {
    const d = tmp('info-bad');
    const bad = path.join(d, 'bad.rbq');
    fs.copyFileSync(index, bad);
    const bytes = fs.readFileSync(bad);
    bytes[bytes.length - 5] ^= 0x40; // inside VECS, the last section
    fs.writeFileSync(bad, bytes);
    expect((await run(['info', bad])).code).toBe(0);
    await expectRefused(['info', bad, '--verify'], /bad\.rbq.*(checksum|CRC)/i, d);
  });

  it('without a file it still shows the machine', async () => {
    const r = await run(['info']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/simd/);
  });
});

describe('build options: --metric, --bits, --no-vectors, --ids (64-bit) and search --ids64', () => {
  it('a 64-bit-id index is refused by search without --ids64 and written as low/high int32 pairs with it', async () => {
    const d = tmp('ids64');
    const n = 300;
    const dim = 16;
    const r = rng(5);
    const data = Float32Array.from({ length: n * dim }, () => gaussian(r));
    const vecs = path.join(d, 'v.fvecs');
    await writeFvecs(vecs, { dim, data });
    const wide = new BigInt64Array(n);
    for (let i = 0; i < n; i++) wide[i] = 2n ** 40n + BigInt(i) * 3n;
    const idsFile = path.join(d, 'ids.ivecs');
    await writeIvecs(idsFile, { dim: 2, data: new Int32Array(wide.buffer) });
    const idx = path.join(d, 'v.rbq');
    const b = await run([
      'build',
      vecs,
      '-o',
      idx,
      '--ids',
      idsFile,
      '--metric',
      'cosine',
      '--bits',
      '3',
      '--no-vectors',
    ]);
    expect(b.code).toBe(0);
    const info = JSON.parse((await run(['info', idx, '--json'])).out) as Record<string, unknown>;
    expect(info).toMatchObject({ idBits: 64, metric: 'cosine', bits: 3, rawVectors: false, vectors: n });
    const queries = path.join(d, 'q.fvecs');
    await writeFvecs(queries, { dim, data: data.slice(0, 4 * dim) });
    await expectRefused(['search', idx, queries, '--out', path.join(d, 'r.ivecs')], /64-bit ids.*--ids64/, d);
    const out = path.join(d, 'r.ivecs');
    expect((await run(['search', idx, queries, '--out', out, '--k', '3', '--nprobe', '1000', '--ids64'])).code).toBe(0);
    const res = await readIvecs(out);
    expect([res.dim, res.count]).toEqual([6, 4]);
    const asIds = new BigInt64Array(res.data.buffer, res.data.byteOffset, res.data.length / 2);
    // each query is base row q: its own id comes first
    for (let q = 0; q < 4; q++) expect(asIds[q * 3]).toBe(wide[q]);
  });

  it('--ids with a negative or repeated id, a wrong row count or three columns is refused before the build', async () => {
    const d = tmp('ids-bad');
    const vecs = path.join(d, 'v.fvecs');
    await writeFvecs(vecs, { dim: 4, data: Float32Array.from({ length: 40 }, (_, i) => i) });
    const neg = path.join(d, 'neg.ivecs');
    await writeIvecs(neg, { dim: 1, data: Int32Array.from({ length: 10 }, (_, i) => (i === 3 ? -2 : i)) });
    const short = path.join(d, 'short.ivecs');
    await writeIvecs(short, { dim: 1, data: Int32Array.from({ length: 9 }, (_, i) => i) });
    const dup = path.join(d, 'dup.ivecs');
    await writeIvecs(dup, { dim: 1, data: Int32Array.from({ length: 10 }, (_, i) => i % 7) });
    const three = path.join(d, 'three.ivecs');
    await writeIvecs(three, { dim: 3, data: new Int32Array(30) });
    const out = path.join(d, 'x.rbq');
    await expectRefused(['build', vecs, '-o', out, '--ids', dup], /dup\.ivecs: id 0 appears twice, at rows 0 and 7/, d);
    await expectRefused(['build', vecs, '-o', out, '--ids', neg], /--ids .*neg\.ivecs: row 3 holds the id -2/, d);
    await expectRefused(
      ['build', vecs, '-o', out, '--ids', short],
      /short\.ivecs has 9 rows but there are 10 vectors/,
      d,
    );
    await expectRefused(['build', vecs, '-o', out, '--ids', three], /three\.ivecs has 3 columns/, d);
  });
});

describe('ground truth and bench in other metrics', () => {
  // vectors with very different norms, so l2, cosine and ip neighbours differ
  const dim = 8;
  const n = 400;
  const nq = 12;
  const r = rng(77);
  const base = Float32Array.from({ length: n * dim }, (_, i) => gaussian(r) * (1 + (Math.floor(i / dim) % 7) * 3));
  const queries = Float32Array.from({ length: nq * dim }, () => gaussian(r));
  const brute = (metric: 'l2' | 'cosine' | 'ip', k: number): Int32Array => {
    const out = new Int32Array(nq * k);
    for (let q = 0; q < nq; q++) {
      const qv = queries.subarray(q * dim, (q + 1) * dim);
      const order = Array.from({ length: n }, (_, i) => i).map((i) => {
        const dist = exact(metric, qv, base.subarray(i * dim, (i + 1) * dim));
        return { i, s: metric === 'ip' ? -dist : dist };
      });
      order.sort((a, b) => a.s - b.s || a.i - b.i);
      for (let j = 0; j < k; j++) out[q * k + j] = order[j]!.i;
    }
    return out;
  };
  let d: string;
  beforeAll(async () => {
    d = tmp('metrics');
    await writeFvecs(path.join(d, 'base.fvecs'), { dim, data: base });
    await writeFvecs(path.join(d, 'query.fvecs'), { dim, data: queries });
  });

  it.each(['l2', 'cosine', 'ip'] as const)('groundtruth --metric %s equals brute force in float64', async (metric) => {
    const out = path.join(d, `gt-${metric}.ivecs`);
    const res = await run([
      'groundtruth',
      path.join(d, 'base.fvecs'),
      path.join(d, 'query.fvecs'),
      '--k',
      '20',
      '--metric',
      metric,
      '-o',
      out,
    ]);
    expect(res.code).toBe(0);
    const gt = await readIvecs(out);
    expect(Array.from(gt.data)).toEqual(Array.from(brute(metric, 20)));
  });

  it('bench --metric cosine refuses an l2 ground truth and runs on a cosine one', async () => {
    const set = tmp('bench-cos');
    fs.copyFileSync(path.join(d, 'base.fvecs'), path.join(set, 'base.fvecs'));
    fs.copyFileSync(path.join(d, 'query.fvecs'), path.join(set, 'query.fvecs'));
    await writeIvecs(path.join(set, 'groundtruth.ivecs'), { dim: 20, data: brute('l2', 20) });
    const args = [
      'bench',
      '--data',
      set,
      '--metric',
      'cosine',
      '--no-out',
      '--runs',
      '1',
      '--warmup',
      '0',
      '--min-time',
      '0',
      '--clusters',
      '8',
    ];
    const bad = await run(args);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(
      /ground truth .*groundtruth\.ivecs is not in the cosine metric.*rabitq groundtruth --metric cosine/,
    );
    await writeIvecs(path.join(set, 'groundtruth.ivecs'), { dim: 20, data: brute('cosine', 20) });
    const ok = await run([...args, '--nprobe', '8']);
    expect(ok.err).not.toMatch(/error/);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/metric cosine/);
    // all clusters probed with exact re-ranking: the cosine neighbours, all of them
    expect(ok.out).toMatch(/\n +8 +1\.0000 +1\.0000/);
  });
});

describe('bad input: exit 2, one line naming the file, nothing written', () => {
  it('build refuses an --out that is the input (same name, ./name, symlink either way) before building', async () => {
    const d = tmp('same');
    const x = path.join(d, 'X.fvecs');
    fs.copyFileSync(BASE, x);
    fs.symlinkSync(x, path.join(d, 'link.fvecs'));
    const before = fs.readFileSync(x);
    const cwd = process.cwd();
    process.chdir(d);
    try {
      await expectRefused(
        ['build', 'X.fvecs', '--out', 'X.fvecs'],
        /--out X\.fvecs is the same file as the vector file X\.fvecs/,
        d,
      );
      await expectRefused(['build', 'X.fvecs', '--out', './X.fvecs'], /same file as the vector file/, d);
      await expectRefused(['build', 'link.fvecs', '--out', 'X.fvecs'], /same file as the vector file link\.fvecs/, d);
      await expectRefused(['build', 'X.fvecs', '--out', 'link.fvecs'], /--out link\.fvecs is the same file/, d);
    } finally {
      process.chdir(cwd);
    }
    expect(fs.readFileSync(x).equals(before)).toBe(true);
  });

  it('build checks the output folder before it reads (or builds from) the input', async () => {
    const d = tmp('folder');
    const junk = path.join(d, 'junk.fvecs');
    fs.writeFileSync(junk, Buffer.from([1, 2, 3]));
    // the input is unreadable too: the folder is reported, so it was checked first
    await expectRefused(
      ['build', junk, '--out', path.join(d, 'missing', 'i.rbq')],
      /folder .*missing does not exist/,
      d,
    );
    await expectRefused(['build', junk, '--out', path.join(junk, 'i.rbq')], /junk\.fvecs is not a folder/, d);
    await expectRefused(['build', junk, '--out', d], /is a folder, not a file/, d);
  });

  it('groundtruth and search refuse outputs that are inputs (through symlinks too) or each other', async () => {
    const d = tmp('outs');
    const q = path.join(d, 'q.fvecs');
    fs.copyFileSync(QUERY, q);
    await expectRefused(
      ['groundtruth', BASE, q, '--out', path.join(d, 'nope', 'gt.ivecs')],
      /folder .*nope does not exist/,
      d,
    );
    fs.symlinkSync(q, path.join(d, 'gt.ivecs'));
    await expectRefused(
      ['groundtruth', BASE, q, '--out', path.join(d, 'gt.ivecs')],
      /--out .*gt\.ivecs is the same file as queries .*q\.fvecs/,
      d,
    );
    const r = path.join(d, 'r.ivecs');
    await expectRefused(
      ['search', index, q, '--out', r, '--distances', q],
      /--distances .*q\.fvecs is the same file as queries/,
      d,
    );
    await expectRefused(['search', index, q, '--out', path.join(d, 'gt.ivecs')], /same file as queries/, d);
    fs.writeFileSync(path.join(d, 'd.fvecs'), 'old');
    fs.symlinkSync(path.join(d, 'd.fvecs'), path.join(d, 'r2.ivecs'));
    await expectRefused(
      ['search', index, q, '--out', path.join(d, 'r2.ivecs'), '--distances', path.join(d, 'd.fvecs')],
      /--distances .*d\.fvecs is the same file as --out .*r2\.ivecs/,
      d,
    );
    expect(fs.readFileSync(q).equals(fs.readFileSync(QUERY))).toBe(true);
  });

  it('search refuses queries of another dimension, naming both files', async () => {
    const d = tmp('dims');
    const q = path.join(d, 'q12.fvecs');
    await writeFvecs(q, { dim: 12, data: new Float32Array(36) });
    await expectRefused(
      ['search', index, q, '--out', path.join(d, 'r.ivecs')],
      /q12\.fvecs: queries have dimension 12 but the index .*sift\.rbq has dimension 128/,
      d,
    );
    await expectRefused(
      ['groundtruth', BASE, q, '--out', path.join(d, 'gt.ivecs')],
      /q12\.fvecs: queries have dimension 12 but the base .* has 128/,
      d,
    );
  });

  it('recall checks rows and k against both files', async () => {
    const d = tmp('recall');
    const r10 = path.join(d, 'r10.ivecs');
    const gt = await readIvecs(GT);
    await writeIvecs(r10, { dim: 10, data: gt.data.filter((_, i) => i % 100 < 10) });
    const half = path.join(d, 'half.ivecs');
    await writeIvecs(half, { dim: 10, data: gt.data.filter((_, i) => i % 100 < 10).subarray(0, 500) });
    await expectRefused(
      ['recall', half, GT],
      /half\.ivecs has 50 rows but the ground truth .*groundtruth\.ivecs has 100/,
      d,
    );
    await expectRefused(['recall', r10, GT, '--k', '20'], /--k 20 is more than the 10 ids per row of .*r10\.ivecs/, d);
    const gt5 = path.join(d, 'gt5.ivecs');
    await writeIvecs(gt5, { dim: 5, data: gt.data.filter((_, i) => i % 100 < 5) });
    await expectRefused(
      ['recall', r10, gt5, '--k', '10'],
      /--k 10 is more than the 5 ids per row of the ground truth .*gt5\.ivecs/,
      d,
    );
    await expectRefused(['recall', GT, half], /has 100 rows but the ground truth .*half\.ivecs only 50/, d);
    await expectRefused(['recall', path.join(d, 'none.ivecs'), GT], /none\.ivecs.*ENOENT/, d);
  });

  it('numeric options are range-checked, large values included', async () => {
    const d = tmp('nums');
    const out = path.join(d, 'r.ivecs');
    await expectRefused(['search', index, QUERY, '-o', out, '--k', '0'], /--k must be in 1\.\.100000, got 0/, d);
    await expectRefused(
      ['search', index, QUERY, '-o', out, '--nprobe', '4294967296'],
      /--nprobe must be in 1\.\.2147483647/,
      d,
    );
    await expectRefused(
      ['groundtruth', BASE, QUERY, '-o', out, '--threads', '99999999999999999999'],
      /--threads must be/,
      d,
    );
    await expectRefused(
      ['build', BASE, '-o', path.join(d, 'i.rbq'), '--clusters', '3000000000'],
      /--clusters must be in 1\.\.2147483647/,
      d,
    );
  });

  it('each command has --help', async () => {
    for (const [cmd, re] of [
      ['groundtruth', /Usage: rabitq groundtruth <base> <queries>/],
      ['search', /two int32 columns/],
      ['recall', /Usage: rabitq recall <results\.ivecs> <groundtruth\.ivecs>/],
      ['info', /--verify/],
      ['build', /--ids <file\.ivecs>/],
      ['bench', /--metric <m>/],
    ] as const) {
      const h = await run([cmd, '--help']);
      expect(h.code).toBe(0);
      expect(h.out).toMatch(re);
      expect((await run(['help', cmd])).out).toBe(h.out);
    }
  });
});

describe('the installed command with standard input', () => {
  const cli = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
  beforeAll(() => ensureDist('dist/src/cli/main.js'), 120_000);

  it('search reads queries from - and recall reads results from -', () => {
    const d = tmp('stdin');
    const out = path.join(d, 'r.ivecs');
    const s = spawnSync(process.execPath, [cli, 'search', index, '-', '--nprobe', '400', '-o', out], {
      input: fs.readFileSync(QUERY),
      encoding: 'utf8',
    });
    expect(s.stderr).toMatch(/100 queries/);
    expect(s.status).toBe(0);
    const r = spawnSync(process.execPath, [cli, 'recall', '-', GT], { input: fs.readFileSync(out), encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/recall@10 +1\.0000/);
    // bytes that are neither layout
    const bad = spawnSync(process.execPath, [cli, 'search', index, '-', '-o', path.join(d, 'r2.ivecs')], {
      input: Buffer.from([9, 0, 0, 0, 1]),
      encoding: 'utf8',
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/queries \(standard input\) is neither \.fvecs nor \.bvecs/);
    expect(fs.existsSync(path.join(d, 'r2.ivecs'))).toBe(false);
  });
});
