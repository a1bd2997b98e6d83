import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  RabitqError,
  VectorFileError,
  assertFinite,
  assertFloat32Array,
  assertPositiveInt,
  assertIntInRange,
  assertRows,
} from '../src/errors.js';
import {
  MAX_DIM,
  inspectVectorFile,
  inspectVectorFileSync,
  readBvecs,
  readBvecsSync,
  readFvecs,
  readFvecsSync,
  readIvecs,
  readIvecsSync,
  writeBvecs,
  writeBvecsSync,
  writeFvecs,
  writeFvecsSync,
  writeIvecs,
  writeIvecsSync,
} from '../src/io.js';
import { rng } from '../src/random.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rabitq-io-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Fast exact comparison of two typed arrays (deep equality is slow on millions of elements). */
function expectSame(a: ArrayBufferView, b: ArrayBufferView): void {
  expect(a.constructor).toBe(b.constructor);
  const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  expect(x.length).toBe(y.length);
  expect(x.equals(y)).toBe(true);
}

function tmp(name: string): string {
  return path.join(dir, name);
}

/** Deterministic pseudo-random floats in [-100, 100). */
function floats(n: number, seed = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 200 - 100);
}

/** Builds raw record bytes by hand (independent of the writer). */
function rawRecords(dims: number[], elemBytes: number, fill = 7): Buffer {
  const parts: Buffer[] = [];
  for (const d of dims) {
    const b = Buffer.alloc(4 + Math.max(d, 0) * elemBytes, fill);
    b.writeInt32LE(d, 0);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/** Asserts a VectorFileError naming `file` at `offset`. */
async function expectBadFile(
  p: Promise<unknown> | (() => unknown),
  file: string,
  offset: number,
  text?: RegExp,
): Promise<VectorFileError> {
  let err: unknown;
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(VectorFileError);
  const e = err as VectorFileError;
  expect(e).toBeInstanceOf(RabitqError);
  expect(e.code).toBe('EBADFILE');
  expect(e.file).toBe(file);
  expect(e.offset).toBe(offset);
  expect(e.message).toContain(file);
  expect(e.message).toContain(`byte offset ${offset}`);
  if (text) expect(e.message).toMatch(text);
  return e;
}

describe('errors', () => {
  it('RabitqError / VectorFileError carry codes and names', () => {
    const e = new VectorFileError('/x/y.fvecs', 12, 'broken');
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(RabitqError);
    expect(e.name).toBe('VectorFileError');
    expect(e.code).toBe('EBADFILE');
    expect(e.message).toBe('/x/y.fvecs: broken (at byte offset 12)');
    const b = new RabitqError('EFOO', 'foo');
    expect(b.name).toBe('RabitqError');
    expect(b.code).toBe('EFOO');
  });

  it('argument helpers throw TypeError / RangeError naming the argument', () => {
    expect(() => assertPositiveInt('k', 0)).toThrow(new RangeError('k must be an integer >= 1, got 0'));
    expect(() => assertPositiveInt('k', 2.5)).toThrow(RangeError);
    expect(() => assertPositiveInt('k', NaN)).toThrow(RangeError);
    expect(() => assertPositiveInt('k', '3')).toThrow(new TypeError('k must be an integer >= 1, got "3"'));
    expect(() => assertPositiveInt('k', 3)).not.toThrow();
    expect(() => assertIntInRange('dim', 70000, 1, 65536)).toThrow(/dim must be an integer in 1\.\.65536, got 70000/);
    expect(() => assertFloat32Array('queries', [1, 2])).toThrow(/queries must be a Float32Array, got a Array/);
    expect(() => assertFloat32Array('queries', new Float64Array(2))).toThrow(TypeError);
    expect(assertRows('base', new Float32Array(12), 4)).toBe(3);
    expect(() => assertRows('base', new Float32Array(10), 4)).toThrow(
      /base\.length \(10\) must be a multiple of dim \(4\)/,
    );
  });

  it('assertFinite names the row and column of the first bad value', () => {
    const a = new Float32Array(12);
    expect(() => assertFinite('base', a, 4)).not.toThrow();
    a[9] = Infinity;
    a[11] = NaN;
    expect(() => assertFinite('base', a, 4)).toThrow(RangeError);
    expect(() => assertFinite('base', a, 4)).toThrow(/base .*Infinity at row 2, column 1/);
    a[9] = 0;
    expect(() => assertFinite('base', a, 4)).toThrow(/NaN at row 2, column 3/);
  });
});

describe('round trips', () => {
  it('fvecs async: write then read back, full and ranged', async () => {
    const dim = 7;
    const n = 53;
    const data = floats(n * dim);
    const f = tmp('rt.fvecs');
    await writeFvecs(f, { dim, data });
    expect(fs.statSync(f).size).toBe(n * (4 + 4 * dim));
    const all = await readFvecs(f);
    expect(all.dim).toBe(dim);
    expect(all.count).toBe(n);
    expect(all.data).toBeInstanceOf(Float32Array);
    expect(all.data).toEqual(data);
    for (const [s, e] of [
      [0, 1],
      [5, 17],
      [n - 1, n],
      [0, n],
      [10, 10],
    ] as const) {
      const r = await readFvecs(f, { start: s, end: e });
      expect(r.count).toBe(e - s);
      expect(r.dim).toBe(dim);
      expect(r.data).toEqual(data.subarray(s * dim, e * dim));
    }
    expect((await readFvecs(f, { start: 50 })).data).toEqual(data.subarray(50 * dim));
    expect((await readFvecs(f, { end: 3 })).data).toEqual(data.subarray(0, 3 * dim));
    // no temporary files left behind
    expect(fs.readdirSync(dir).filter((x) => x.startsWith('rt.fvecs.tmp'))).toEqual([]);
  });

  it('ivecs and bvecs async round trips, bvecs asFloat32', async () => {
    const dim = 5;
    const n = 9;
    const ints = new Int32Array(n * dim).map((_, i) => (i * 2654435761) | 0);
    const fi = tmp('rt.ivecs');
    await writeIvecs(fi, { dim, data: ints });
    const ri = await readIvecs(fi);
    expect(ri).toEqual({ dim, count: n, data: ints });
    expect((await readIvecs(fi, { start: 2, end: 4 })).data).toEqual(ints.subarray(2 * dim, 4 * dim));

    const bytes = new Uint8Array(n * dim).map((_, i) => (i * 37) & 255);
    const fb = tmp('rt.bvecs');
    await writeBvecs(fb, { dim, data: bytes });
    expect(fs.statSync(fb).size).toBe(n * (4 + dim));
    const rb = await readBvecs(fb);
    expect(rb.data).toBeInstanceOf(Uint8Array);
    expect(rb.data).toEqual(bytes);
    const rf = await readBvecs(fb, { start: 3, end: 8, asFloat32: true });
    expect(rf.data).toBeInstanceOf(Float32Array);
    expect(Array.from(rf.data)).toEqual(Array.from(bytes.subarray(3 * dim, 8 * dim)));
  });

  it('sync variants match the async ones', async () => {
    const dim = 3;
    const data = floats(30, 5);
    const f = tmp('rts.fvecs');
    writeFvecsSync(f, { dim, data });
    expect(readFvecsSync(f)).toEqual(await readFvecs(f));
    expect(readFvecsSync(f, { start: 4, end: 6 }).data).toEqual(data.subarray(12, 18));
    const fi = tmp('rts.ivecs');
    writeIvecsSync(fi, { dim, data: new Int32Array([1, 2, 3, -4, -5, -6]) });
    expect(readIvecsSync(fi)).toEqual({ dim, count: 2, data: new Int32Array([1, 2, 3, -4, -5, -6]) });
    const fb = tmp('rts.bvecs');
    writeBvecsSync(fb, { dim, data: new Uint8Array([0, 128, 255]) });
    expect(readBvecsSync(fb).data).toEqual(new Uint8Array([0, 128, 255]));
    expect(readBvecsSync(fb, { asFloat32: true }).data).toEqual(new Float32Array([0, 128, 255]));
  });

  it('writes a subarray view correctly and the format matches hand-built bytes', async () => {
    const big = floats(40, 9);
    const view = big.subarray(8, 20); // 3 rows of 4, non-zero byteOffset
    const f = tmp('view.fvecs');
    await writeFvecs(f, { dim: 4, data: view });
    const buf = fs.readFileSync(f);
    expect(buf.length).toBe(3 * 20);
    expect(buf.readInt32LE(0)).toBe(4);
    expect(buf.readInt32LE(20)).toBe(4);
    expect(buf.readFloatLE(24)).toBe(view[4]);
    expect((await readFvecs(f)).data).toEqual(view);
  });

  it('handles files spanning several read chunks, dim 1 and MAX_DIM', async () => {
    const dim = 128;
    const n = 20_000; // ~10 MB, more than one 4 MiB staging chunk
    const data = floats(n * dim, 3);
    const f = tmp('big.fvecs');
    await writeFvecs(f, { dim, data });
    const all = await readFvecs(f);
    expect(all.count).toBe(n);
    expectSame(all.data, data);
    const mid = readFvecsSync(f, { start: 8000, end: 16_500 });
    expectSame(mid.data, data.subarray(8000 * dim, 16_500 * dim));

    const f1 = tmp('d1.ivecs');
    await writeIvecs(f1, { dim: 1, data: new Int32Array([3, 1, 2]) });
    expect(await readIvecs(f1)).toEqual({ dim: 1, count: 3, data: new Int32Array([3, 1, 2]) });

    const fm = tmp('dmax.bvecs');
    const wide = new Uint8Array(MAX_DIM * 2).fill(9);
    await writeBvecs(fm, { dim: MAX_DIM, data: wide });
    const rw = await readBvecs(fm, { start: 1 });
    expect(rw.dim).toBe(MAX_DIM);
    expect(rw.count).toBe(1);
  });

  it('ranged reads do not touch rows outside the range', async () => {
    const dim = 4;
    const data = floats(10 * dim, 11);
    const f = tmp('sparse.fvecs');
    await writeFvecs(f, { dim, data });
    const buf = fs.readFileSync(f);
    buf.writeInt32LE(99, 5 * 20); // corrupt the header of row 5 only
    fs.writeFileSync(f, buf);
    expect((await readFvecs(f, { start: 0, end: 3 })).data).toEqual(data.subarray(0, 12));
    expect(readFvecsSync(f, { start: 7, end: 10 }).data).toEqual(data.subarray(28, 40));
    await expectBadFile(readFvecs(f, { start: 4, end: 7 }), f, 100, /record 5 header says dimension 99/);
    await expectBadFile(readFvecs(f), f, 100);
  });

  it('inspectVectorFile reports the layout, scan checks every header', async () => {
    const f = tmp('inspect.fvecs');
    await writeFvecs(f, { dim: 4, data: floats(40) });
    expect(await inspectVectorFile(f, 'fvecs')).toEqual({
      type: 'fvecs',
      dim: 4,
      count: 10,
      bytes: 200,
      recordBytes: 20,
    });
    expect(inspectVectorFileSync(f, 'fvecs', { scan: true }).count).toBe(10);
    const buf = fs.readFileSync(f);
    buf.writeInt32LE(3, 6 * 20);
    fs.writeFileSync(f, buf);
    expect((await inspectVectorFile(f, 'fvecs')).count).toBe(10);
    await expectBadFile(inspectVectorFile(f, 'fvecs', { scan: true }), f, 120);
    await expect(inspectVectorFile(f, 'xvecs' as 'fvecs')).rejects.toThrow(TypeError);
  });
});

describe('bad files', () => {
  it('missing file keeps the ENOENT information', async () => {
    const f = tmp('does-not-exist.fvecs');
    const e = await expectBadFile(readFvecs(f), f, 0, /ENOENT/);
    expect(e.sysCode).toBe('ENOENT');
    expect((e.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    const s = await expectBadFile(() => readIvecsSync(f), f, 0, /ENOENT/);
    expect(s.sysCode).toBe('ENOENT');
  });

  it('a directory is rejected', async () => {
    await expectBadFile(readFvecs(dir), dir, 0, /not a regular file/);
  });

  it('empty and too-short files', async () => {
    const f = tmp('empty.fvecs');
    fs.writeFileSync(f, Buffer.alloc(0));
    await expectBadFile(readFvecs(f), f, 0, /empty/);
    await expectBadFile(() => readFvecsSync(f), f, 0, /empty/);
    const g = tmp('short.ivecs');
    fs.writeFileSync(g, Buffer.from([1, 0]));
    await expectBadFile(readIvecs(g), g, 0, /too short/);
  });

  it('truncated last record names the offset of the partial record', async () => {
    const good = rawRecords([4, 4, 4], 4); // 3 * 20 bytes
    const f = tmp('trunc.fvecs');
    fs.writeFileSync(f, Buffer.concat([good, Buffer.alloc(7)]));
    await expectBadFile(readFvecs(f), f, 60, /truncated record/);
    await expectBadFile(() => readFvecsSync(f, { start: 0, end: 1 }), f, 60, /truncated/);
    // cut inside the header of the partial record
    fs.writeFileSync(f, Buffer.concat([good, Buffer.from([4, 0])]));
    await expectBadFile(readFvecs(f), f, 60);
    // cut inside the data of the only record
    fs.writeFileSync(f, good.subarray(0, 15));
    await expectBadFile(readFvecs(f), f, 0, /truncated/);
  });

  it('a dimension change names the offset of the first bad header', async () => {
    const f = tmp('dimchange.ivecs');
    fs.writeFileSync(f, rawRecords([3, 3, 3, 3, 2, 3, 3, 3], 4));
    // record 4 has dim 2: file size is not a multiple of 16 -> still reported
    await expect(readIvecs(f)).rejects.toThrow(VectorFileError);
    // same-size change: header says 5 but body still 3 elements
    const buf = rawRecords([3, 3, 3, 3, 3, 3, 3, 3], 4);
    buf.writeInt32LE(5, 3 * 16);
    fs.writeFileSync(f, buf);
    await expectBadFile(readIvecs(f), f, 48, /record 3 header says dimension 5 but record 0 says 3/);
    await expectBadFile(() => readIvecsSync(f), f, 48);
    // second header differs and the size does not divide
    fs.writeFileSync(f, rawRecords([3, 4, 3], 4));
    await expectBadFile(readIvecs(f), f, 16, /record 1 header says dimension 4/);
    // last header differs, detected even for a ranged read of the first row
    const last = rawRecords([3, 3, 3, 3], 4);
    last.writeInt32LE(-1, 48);
    fs.writeFileSync(f, last);
    await expectBadFile(readIvecs(f, { start: 0, end: 1 }), f, 48);
  });

  it('invalid dimensions: 0, negative, > 65536', async () => {
    for (const d of [0, -3, MAX_DIM + 1, 2 ** 31 - 1]) {
      const f = tmp(`baddim${d}.fvecs`);
      const b = Buffer.alloc(64);
      b.writeInt32LE(d, 0);
      fs.writeFileSync(f, b);
      await expectBadFile(readFvecs(f), f, 0, new RegExp(`invalid dimension ${d}`));
      await expectBadFile(() => readBvecsSync(f), f, 0);
    }
  });

  it('a .bvecs file read as .fvecs is detected', async () => {
    const f = tmp('really-b.fvecs');
    await writeBvecs(f, { dim: 128, data: new Uint8Array(128 * 10).fill(200) });
    await expectBadFile(readFvecs(f), f, 516, /1-byte elements \(\.bvecs\)/);
    await expectBadFile(() => readFvecsSync(f, { start: 0, end: 1 }), f, 516);
  });

  it('an .fvecs file read as .bvecs is detected', async () => {
    const f = tmp('really-f.bvecs');
    await writeFvecs(f, { dim: 4, data: new Float32Array(12).fill(1.5) });
    await expectBadFile(readBvecs(f), f, 8, /4-byte elements/);
    // size happens to divide the bvecs record size: caught by the header checks
    const g = tmp('really-f2.bvecs');
    await writeFvecs(g, { dim: 4, data: new Float32Array(8).fill(1.5) }); // 40 bytes = 5 * 8
    await expectBadFile(readBvecs(g, { start: 0, end: 1 }), g, 8, /4-byte elements/);
  });
});

describe('argument errors', () => {
  it('readers reject bad paths and ranges with TypeError / RangeError', async () => {
    const f = tmp('args.fvecs');
    await writeFvecs(f, { dim: 2, data: new Float32Array(10) });
    await expect(readFvecs(123 as unknown as string)).rejects.toThrow(TypeError);
    await expect(readFvecs('')).rejects.toThrow(/path must be a non-empty string/);
    await expect(readFvecs(f, { start: -1 })).rejects.toThrow(RangeError);
    await expect(readFvecs(f, { start: 1.5 })).rejects.toThrow(/opts\.start must be an integer >= 0, got 1\.5/);
    await expect(readFvecs(f, { start: 'a' as unknown as number })).rejects.toThrow(TypeError);
    await expect(readFvecs(f, { start: 3, end: 2 })).rejects.toThrow(RangeError);
    await expect(readFvecs(f, { end: 6 })).rejects.toThrow(/opts\.end must be <= the number of rows \(5\)/);
    await expect(readFvecs(f, { start: 6 })).rejects.toThrow(RangeError);
    await expect(readFvecs(f, 5 as unknown as object)).rejects.toThrow(TypeError);
    await expect(readBvecs(f, { asFloat32: 'yes' as unknown as boolean })).rejects.toThrow(TypeError);
    expect(() => readFvecsSync(f, { end: -2 })).toThrow(RangeError);
    expect(() => readIvecsSync(null as unknown as string)).toThrow(TypeError);
  });

  it('writers validate type, dim and length', async () => {
    const f = tmp('w.fvecs');
    await expect(writeFvecs(f, { dim: 2, data: new Int32Array(4) as unknown as Float32Array })).rejects.toThrow(
      /data must be a Float32Array/,
    );
    await expect(writeIvecs(f, { dim: 2, data: new Float32Array(4) as unknown as Int32Array })).rejects.toThrow(
      TypeError,
    );
    await expect(writeFvecs(f, { dim: 0, data: new Float32Array(4) })).rejects.toThrow(
      /dim must be an integer in 1\.\.65536, got 0/,
    );
    await expect(writeFvecs(f, { dim: MAX_DIM + 1, data: new Float32Array(4) })).rejects.toThrow(RangeError);
    await expect(writeFvecs(f, { dim: 1.5, data: new Float32Array(4) })).rejects.toThrow(RangeError);
    await expect(writeFvecs(f, { dim: 3, data: new Float32Array(4) })).rejects.toThrow(
      /data\.length \(4\) must be a multiple of dim \(3\)/,
    );
    await expect(writeFvecs(f, { dim: 3, data: new Float32Array(0) })).rejects.toThrow(RangeError);
    await expect(writeFvecs(f, null as unknown as { dim: number; data: Float32Array })).rejects.toThrow(TypeError);
    expect(() => writeIvecsSync(f, { dim: -1, data: new Int32Array(4) })).toThrow(RangeError);
    expect(fs.existsSync(f)).toBe(false);
    await expect(
      writeFvecs(path.join(dir, 'no', 'such', 'dir.fvecs'), { dim: 1, data: new Float32Array(1) }),
    ).rejects.toThrow(/ENOENT/);
  });
});

describe('real texmex siftsmall files', () => {
  const base = path.join(repoRoot, 'datasets/siftsmall/base.fvecs');
  const query = path.join(repoRoot, 'datasets/siftsmall/query.fvecs');
  const gt = path.join(repoRoot, 'datasets/siftsmall/groundtruth.ivecs');

  it('have the expected shapes and values', async () => {
    const b = await readFvecs(base);
    expect([b.count, b.dim]).toEqual([10_000, 128]);
    expect(b.data.length).toBe(10_000 * 128);
    expect(b.data.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)).toBe(true);
    const q = readFvecsSync(query);
    expect([q.count, q.dim]).toEqual([100, 128]);
    const g = await readIvecs(gt);
    expect([g.count, g.dim]).toEqual([100, 100]);
    expect(g.data.every((x) => x >= 0 && x < 10_000)).toBe(true);
    // The published first ground-truth row of SIFT10K starts with these ids.
    expect(Array.from(g.data.subarray(0, 4))).toEqual([2176, 3752, 882, 4009]);
    // and its first id really is the nearest base vector of query 0
    let best = -1;
    let bestD = Infinity;
    for (let i = 0; i < b.count; i++) {
      let d = 0;
      for (let j = 0; j < 128; j++) {
        const t = b.data[i * 128 + j]! - q.data[j]!;
        d += t * t;
      }
      if (d < bestD) [bestD, best] = [d, i];
    }
    expect(best).toBe(g.data[0]);
  });

  it('ranged reads of the real base file match the full read', async () => {
    const all = await readFvecs(base);
    const part = await readFvecs(base, { start: 9990, end: 10_000 });
    expectSame(part.data, all.data.subarray(9990 * 128));
  });
});
