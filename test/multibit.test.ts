// Multi-bit RaBitQ codes (issue 11): `bits` 1..9 end to end on the genuine
// siftsmall set (recall without raw vectors, fewer exact distances with
// them), round trips, mutations, SIMD levels, files of format version 1,
// and bad input.
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { IndexFileError, IvfRabitqIndex, readFvecs, readIvecs, recallAtK } from '../src/index.js';
import { native, type SimdLevelName } from '../src/native.js';
import { ROOT, tempFolders } from './helpers.js';
import { META, parseLayout, resealSection } from './fixtures/index-file.mjs';

const siftDir = path.join(ROOT, 'datasets', 'siftsmall');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const tmp = tempFolders('rabitq-multibit-');

type Index = IvfRabitqIndex<Int32Array>;

let base: Float32Array;
let queries: Float32Array;
let gt: { dim: number; count: number; data: Int32Array };
const dim = 128;
const k = 10;
const NC = 64;

async function batch(index: Index, q: Float32Array, extra: object = {}) {
  return index.searchBatch(q, { k, nprobe: NC, stats: true, ...extra });
}

beforeAll(async () => {
  base = (await readFvecs(path.join(siftDir, 'base.fvecs'))).data;
  queries = (await readFvecs(path.join(siftDir, 'query.fvecs'))).data;
  gt = await readIvecs(path.join(siftDir, 'groundtruth.ivecs'));
});

describe('multi-bit codes on the genuine siftsmall (10k x 128, 100 queries, 64 clusters, full probe)', () => {
  const noVec = new Map<number, number>();

  // Non-decreasing up to 7 bits; above that the 8-bit query's rounding is
  // the noise floor (measured: 0.995 / 0.992 / 0.996 at 7 / 8 / 9 bits with
  // seed 3), so 8 and 9 bits must stay within 0.005 of the best so far.
  it(
    'without raw vectors: recall@10 >= 0.91 at 4 bits, >= 0.99 at 7, non-decreasing in bits',
    { timeout: 120_000 },
    async () => {
      let prev = 0;
      for (const bits of [1, 2, 3, 4, 5, 6, 7, 8, 9]) {
        const index = await IvfRabitqIndex.build(base, { dim, numClusters: NC, storeVectors: false, bits, seed: 3 });
        expect(index.bits).toBe(bits);
        const r = await batch(index, queries);
        const recall = recallAtK(r.ids, gt, k);
        noVec.set(bits, recall);
        console.log(
          `  bits ${bits}, no vectors: recall@10 ${recall.toFixed(4)}, ${(r.stats!.exEstimated / 100).toFixed(0)} multi-bit estimates per query`,
        );
        expect(recall, `bits ${bits}`).toBeGreaterThanOrEqual(bits <= 7 ? prev : prev - 0.005);
        prev = Math.max(prev, recall);
        expect(r.stats!.reranked).toBe(0);
        if (bits === 1) expect(r.stats!.exEstimated).toBe(0);
        else expect(r.stats!.exEstimated).toBeGreaterThan(0);
        const m = index.memoryUsage();
        expect(m.exCodes).toBe(bits === 1 ? 0 : 10_000 * ((128 * (bits - 1)) / 8 + 8));
        expect(m.vectors).toBe(0);
        expect(m.total).toBe(m.codes + m.factors + m.exCodes + m.ids + m.vectors + m.centroids + m.other);
        expect(index.buildStats().bits).toBe(bits);
        // The distances are the multi-bit estimates: sorted, and near the exact ones.
        for (let i = 1; i < k; i++) expect(r.distances[i]!).toBeGreaterThanOrEqual(r.distances[i - 1]!);
      }
      expect(noVec.get(4)!).toBeGreaterThanOrEqual(0.91);
      expect(noVec.get(7)!).toBeGreaterThanOrEqual(0.99);
    },
  );

  it(
    'with raw vectors and bits >= 3: recall@10 >= 0.999 with fewer exact distances than 1 bit',
    { timeout: 120_000 },
    async () => {
      let reranked1 = 0;
      for (const bits of [1, 3, 5, 7]) {
        const index = await IvfRabitqIndex.build(base, { dim, numClusters: NC, bits, seed: 3 });
        const r = await batch(index, queries);
        const recall = recallAtK(r.ids, gt, k);
        const perQuery = r.stats!.reranked / 100;
        console.log(
          `  bits ${bits}, vectors: recall@10 ${recall.toFixed(4)}, ${perQuery.toFixed(1)} re-ranked per query`,
        );
        if (bits === 1) reranked1 = r.stats!.reranked;
        else {
          expect(recall).toBeGreaterThanOrEqual(0.999);
          expect(r.stats!.reranked).toBeLessThan(reranked1);
          // Every exact distance was first a multi-bit estimate.
          expect(r.stats!.exEstimated).toBeGreaterThanOrEqual(r.stats!.reranked);
        }
        // search() counts the same way (the batch visits clusters in another
        // order, so its thresholds tighten at other times: close, not equal).
        const one = index.search(queries.subarray(0, dim), { k, nprobe: NC, stats: true });
        const batchCount = r.perQueryStats![0]!.exEstimated;
        expect(Math.abs(one.stats!.exEstimated - batchCount)).toBeLessThanOrEqual(Math.max(5, 0.1 * batchCount));
      }
    },
  );

  it('every SIMD level gives the same ids (with and without raw vectors)', { timeout: 60_000 }, async () => {
    const best = native.detectedLevel();
    const all: SimdLevelName[] = ['scalar', 'avx2', 'avx512'];
    const levels = all.slice(0, all.indexOf(best) + 1);
    const original = native.simdLevel();
    const q = queries.subarray(0, 30 * dim);
    try {
      for (const storeVectors of [false, true]) {
        const index = await IvfRabitqIndex.build(base, { dim, numClusters: NC, storeVectors, bits: 6, seed: 3 });
        let first: Int32Array | undefined;
        for (const level of levels) {
          native.setSimdLevel(level);
          const r = await batch(index, q);
          if (first === undefined) first = r.ids;
          else expect(Array.from(r.ids), `${level} storeVectors ${storeVectors}`).toEqual(Array.from(first));
        }
      }
    } finally {
      native.setSimdLevel(original);
    }
  });
});

/**
 * The queries of test/fixtures/make-v1.mjs and make-v2.mjs: their LCG data
 * (dim, n and seed as recorded), the first 5 rows shifted a little.
 */
function recordedQueries(recorded: { dim: number; n: number; seed: number }): Float32Array {
  const d = recorded.dim;
  const v = new Float32Array(recorded.n * d);
  let s = recorded.seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  for (let i = 0; i < v.length; i++) v[i] = Math.round((rnd() * 2 - 1) * 1000) / 100;
  return v.slice(0, 5 * d).map((x, i) => x + ((i % 7) - 3) * 0.05);
}

describe('multi-bit codes: persistence and mutations', () => {
  const n = 3000;
  let q: Float32Array;
  beforeAll(() => {
    q = queries.subarray(0, 20 * dim);
  });

  for (const storeVectors of [false, true]) {
    it(`save / load (read, mmap) and toBuffer / fromBuffer give the same results (storeVectors ${storeVectors})`, async () => {
      const index = await IvfRabitqIndex.build(base.subarray(0, n * dim), {
        dim,
        numClusters: 16,
        storeVectors,
        bits: 7,
        metric: 'cosine',
      });
      const want = await batch(index, q, { nprobe: 16 });
      const file = path.join(tmp('persist'), `b7-${storeVectors}.rbq`);
      await index.save(file);
      const loaded = [
        await IvfRabitqIndex.load(file, { idType: 'u32', bits: 7 }),
        await IvfRabitqIndex.load(file, { idType: 'u32', mmap: true }),
        await IvfRabitqIndex.fromBuffer(await index.toBuffer(), { idType: 'u32', bits: 7 }),
      ];
      for (const l of loaded) {
        expect(l.bits).toBe(7);
        const got = await batch(l, q, { nprobe: 16 });
        expect(Array.from(got.ids)).toEqual(Array.from(want.ids));
        expect(Array.from(got.distances)).toEqual(Array.from(want.distances));
        expect(l.memoryUsage().exCodes).toBe(index.memoryUsage().exCodes);
      }
      expect(loaded[1]!.memoryUsage().mapped).toBeGreaterThan(0);
    });

    it(`add / remove / compact equal a build of the same vectors with the same centroids (storeVectors ${storeVectors})`, async () => {
      const opts = { dim, numClusters: 16, storeVectors, bits: 4, seed: 5 } as const;
      const head = base.subarray(0, 2000 * dim);
      const a = await IvfRabitqIndex.build(head, opts);
      const b = await IvfRabitqIndex.build(head, opts);
      await a.add(base.subarray(2000 * dim, n * dim));
      await b.add(base.subarray(2000 * dim, 2500 * dim), undefined, { bits: 4 });
      const gone = Array.from({ length: 300 }, (_, i) => i * 8);
      expect(await b.remove(gone)).toBe(gone.length);
      const back = new Float32Array(gone.length * dim);
      gone.forEach((id, i) => back.set(base.subarray(id * dim, (id + 1) * dim), i * dim));
      await b.add(back, Uint32Array.from(gone));
      await b.add(
        base.subarray(2500 * dim, n * dim),
        Uint32Array.from({ length: 500 }, (_, i) => 2500 + i),
      );
      const sortedRows = (ids: Int32Array) => {
        const out: number[][] = [];
        for (let i = 0; i < ids.length; i += k) out.push(Array.from(ids.subarray(i, i + k)).sort((x, y) => x - y));
        return out;
      };
      const ra = await batch(a, q, { nprobe: 16 });
      expect(sortedRows((await batch(b, q, { nprobe: 16 })).ids)).toEqual(sortedRows(ra.ids));
      await b.compact();
      const rc = await batch(b, q, { nprobe: 16 });
      expect(sortedRows(rc.ids)).toEqual(sortedRows(ra.ids));
      expect(b.memoryUsage().exCodes).toBe(n * ((128 * 3) / 8 + 8));
      // And the saved form of the changed index answers the same.
      const again = await IvfRabitqIndex.fromBuffer(await b.toBuffer(), { idType: 'u32' });
      expect(Array.from((await batch(again, q, { nprobe: 16 })).ids)).toEqual(Array.from(rc.ids));
    });
  }

  it('files written by format version 1 (before multi-bit codes) still load, as 1-bit indexes with the same results', async () => {
    const recorded = JSON.parse(readFileSync(path.join(FIXTURES, 'v1-index.json'), 'utf8'));
    const v1 = readFileSync(path.join(FIXTURES, 'v1-vec.rbq'));
    expect(v1.readUInt32LE(8)).toBe(1);
    const qs = recordedQueries(recorded);
    for (const name of ['vec', 'novec']) {
      const file = path.join(FIXTURES, `v1-${name}.rbq`);
      for (const mmap of [false, true]) {
        const index = await IvfRabitqIndex.load(file, { idType: 'u32', mmap, verify: true, bits: 1 });
        expect(index.bits).toBe(1);
        expect(index.memoryUsage().exCodes).toBe(0);
        const r = await index.searchBatch(qs, { k: 5, nprobe: 6 });
        expect(Array.from(r.ids)).toEqual(recorded[name].ids);
        // Float kernels sum in another order at other SIMD levels (the recording was made at the best one).
        r.distances.forEach((x, i) =>
          expect(Math.abs(x - recorded[name].distances[i]) / (1 + Math.abs(x))).toBeLessThan(1e-5),
        );
        // Saved again, it is a file of today's version that loads the same.
        const again = await IvfRabitqIndex.fromBuffer(await index.toBuffer(), { idType: 'u32' });
        expect((await again.toBuffer()).readUInt32LE(8)).toBe(3);
        expect(Array.from((await again.searchBatch(qs, { k: 5, nprobe: 6 })).ids)).toEqual(recorded[name].ids);
      }
    }
  });
});

describe('multi-bit files of format version 2 (12-byte multi-bit factors)', () => {
  it('load (read and mmap), answer as recorded, and save as version 3 with 8-byte factors', async () => {
    const recorded = JSON.parse(readFileSync(path.join(FIXTURES, 'v2-index.json'), 'utf8'));
    const qs = recordedQueries(recorded);
    for (const name of ['vec', 'novec']) {
      const file = path.join(FIXTURES, `v2-${name}.rbq`);
      expect(readFileSync(file).readUInt32LE(8)).toBe(2);
      for (const mmap of [false, true]) {
        const index = await IvfRabitqIndex.load(file, { idType: 'u32', mmap, verify: true, bits: 4 });
        expect(index.bits).toBe(4);
        // dim 24 pads to 64: 3 extra bits x 64 / 8 bytes + 8 bytes of factors
        expect(index.memoryUsage().exCodes).toBe(recorded.n * ((64 * 3) / 8 + 8));
        const r = await index.searchBatch(qs, { k: 5, nprobe: 6 });
        // With raw vectors the exact distances decide; without, the multi-bit
        // estimate does, and its value does not use the narrowed bound terms.
        expect(Array.from(r.ids)).toEqual(recorded[name].ids);
        r.distances.forEach((x, i) =>
          expect(Math.abs(x - recorded[name].distances[i]) / (1 + Math.abs(x))).toBeLessThan(1e-5),
        );
        const bytes = await index.toBuffer();
        expect(bytes.readUInt32LE(8)).toBe(3);
        const exft = parseLayout(bytes).sections.find((x) => x.name === 'EXFT')!;
        expect(exft.length).toBe(recorded.n * 8);
        const again = await IvfRabitqIndex.fromBuffer(bytes, { idType: 'u32' });
        expect(Array.from((await again.searchBatch(qs, { k: 5, nprobe: 6 })).ids)).toEqual(recorded[name].ids);
      }
    }
  });
});

describe('multi-bit codes: bad input', () => {
  const small = () => base.subarray(0, 500 * dim);

  it('bits outside 1..9 or not an integer is a RangeError naming bits', async () => {
    for (const bits of [0, 10, -1, 2.5, NaN, Infinity, '4', null]) {
      await expect(
        IvfRabitqIndex.build(small(), { dim, numClusters: 4, bits: bits as number }),
        String(bits),
      ).rejects.toThrow(RangeError);
      await expect(IvfRabitqIndex.build(small(), { dim, numClusters: 4, bits: bits as number })).rejects.toThrow(
        /options\.bits/,
      );
    }
  });

  it('bits given to load() / fromBuffer() / add() that disagree with the index: RangeError naming bits', async () => {
    const index = (await IvfRabitqIndex.build(small(), { dim, numClusters: 4, bits: 3 })) as Index;
    const file = path.join(tmp('bad'), 'b3.rbq');
    await index.save(file);
    await expect(IvfRabitqIndex.load(file, { bits: 4 })).rejects.toThrow(RangeError);
    await expect(IvfRabitqIndex.load(file, { bits: 4 })).rejects.toThrow(/options\.bits is 4 .* 3-bit/);
    await expect(IvfRabitqIndex.load(file, { bits: 12 })).rejects.toThrow(/options\.bits/);
    await expect(IvfRabitqIndex.fromBuffer(await index.toBuffer(), { bits: 1 })).rejects.toThrow(RangeError);
    await expect(index.add(base.subarray(0, dim), undefined, { bits: 2 })).rejects.toThrow(/options\.bits is 2/);
    await expect(index.add(base.subarray(0, dim), undefined, { bits: 0 })).rejects.toThrow(RangeError);
    expect(index.size).toBe(500);
  });

  it('a file whose multi-bit sections disagree with its header is IndexFileError EBADINDEX', async () => {
    const index = (await IvfRabitqIndex.build(small(), { dim, numClusters: 4, bits: 5 })) as Index;
    const good = await index.toBuffer();
    const L = parseLayout(good);
    const meta = L.sections.find((s: { name: string }) => s.name === 'META')!;
    expect(L.sections.map((s: { name: string }) => s.name)).toEqual(expect.arrayContaining(['EXCD', 'EXFT']));
    for (const bits of [0n, 1n, 4n, 6n, 9n, 10n, 1n << 40n]) {
      const b = Buffer.from(good);
      b.writeBigUInt64LE(bits, meta.offset + 8 * META.bits);
      resealSection(b, meta);
      const err = await IvfRabitqIndex.fromBuffer(b).catch((e: unknown) => e);
      expect(err, String(bits)).toBeInstanceOf(IndexFileError);
      expect((err as IndexFileError).code).toBe('EBADINDEX');
    }
    // A 1-bit file that claims 5 bits has no multi-bit sections.
    const one = await (await IvfRabitqIndex.build(small(), { dim, numClusters: 4 })).toBuffer();
    const m1 = parseLayout(one).sections.find((s: { name: string }) => s.name === 'META')!;
    one.writeBigUInt64LE(5n, m1.offset + 8 * META.bits);
    resealSection(one, m1);
    await expect(IvfRabitqIndex.fromBuffer(one)).rejects.toMatchObject({ code: 'EBADINDEX' });
  });
});
