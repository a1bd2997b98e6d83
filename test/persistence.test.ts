/**
 * Persistence: save / load (read, mmap, verify) / toBuffer / fromBuffer round trips for every metric and id width,
 * storeVectors: false across a save, and the file errors (missing, corrupt, unwritable).
 *
 * Models (brute force in float64, sequential replicas) and seeded data come from helpers.ts.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { IvfRabitqIndex, IndexFileError } from '../src/index.js';
import type { Metric, SearchOptions } from '../src/index.js';
import {
  rng,
  type AnyIndex,
  ROOT,
  clustered,
  row,
  concat,
  sample,
  type Rows,
  bruteTopK,
  rowIds,
  recallOf,
  searchRows,
  tempFolders,
} from './helpers.js';

const tmpDir = tempFolders('persistence');

describe('save / load / toBuffer / fromBuffer round trips', () => {
  const combos: [Metric, 'u32' | 'u64'][] = [
    ['l2', 'u32'],
    ['l2', 'u64'],
    ['cosine', 'u32'],
    ['cosine', 'u64'],
    ['ip', 'u32'],
    ['ip', 'u64'],
  ];
  it.each(combos)('%s with %s ids, after adds and removes', async (metric, idw) => {
    const dim = 40,
      n = 1200,
      nc = 16;
    const dir = tmpDir(`rt-${metric}-${idw}`);
    const data = clustered(n, dim, 12, 11);
    const ids =
      idw === 'u32'
        ? Uint32Array.from({ length: n }, (_, i) => i * 3 + 1)
        : BigUint64Array.from({ length: n }, (_, i) => BigInt(i) * 10n ** 12n + 7n);
    const index = (await IvfRabitqIndex.build(data, { dim, numClusters: nc, metric, ids, seed: 3 })) as AnyIndex;
    const extra = clustered(200, dim, 12, 12);
    const extraIds =
      idw === 'u32'
        ? Uint32Array.from({ length: 150 }, (_, i) => 10_000_000 + i)
        : BigUint64Array.from({ length: 150 }, (_, i) => 2n ** 40n + BigInt(i));
    await index.add(extra.subarray(0, 150 * dim), extraIds);
    await index.add(extra.subarray(150 * dim)); // default ids
    const r = rng(5);
    const removed: (number | bigint)[] = [
      ...sample(r, n, 100).map((i) => ids[i]!),
      ...sample(r, 150, 30).map((i) => extraIds[i]!),
    ];
    expect(await index.remove(removed as number[])).toBe(130);
    expect(index.size).toBe(n + 200 - 130);

    const file = path.join(dir, 'index.rbq');
    await index.save(file);
    const fileBytes = fs.readFileSync(file);
    const buf = await index.toBuffer();
    expect(Buffer.compare(buf, fileBytes)).toBe(0);

    // Queries: fresh points, and the vectors of removed and of kept ids.
    const queries = concat(clustered(40, dim, 12, 13), data.subarray(0, 10 * dim), extra.subarray(0, 10 * dim));
    const allowed = Array.from(ids as ArrayLike<number | bigint>).filter((_, i) => i % 5 === 0);
    const optsList: SearchOptions[] = [
      { k: 10, nprobe: 4 },
      { k: 7, nprobe: nc, rerank: false },
      {
        k: 5,
        nprobe: 2,
        filter: idw === 'u32' ? Uint32Array.from(allowed as number[]) : BigUint64Array.from(allowed as bigint[]),
      },
    ];
    const want = await Promise.all(optsList.map((o) => index.searchBatch(queries, o)));
    const scratchBuf = Buffer.from(buf);
    const loaded: Record<string, AnyIndex> = {
      read: await IvfRabitqIndex.load(file),
      mmap: await IvfRabitqIndex.load(file, { mmap: true }),
      mmapVerify: await IvfRabitqIndex.load(file, { mmap: true, verify: true }),
      buffer: await IvfRabitqIndex.fromBuffer(scratchBuf),
    };
    scratchBuf.fill(0); // fromBuffer copied the bytes: the index must not care
    for (const [how, ix] of Object.entries(loaded)) {
      expect({
        how,
        size: ix.size,
        dim: ix.dim,
        metric: ix.metric,
        idType: ix.idType,
        nc: ix.numClusters,
        sv: ix.storeVectors,
      }).toEqual({ how, size: index.size, dim, metric, idType: idw, nc, sv: true });
      for (let o = 0; o < optsList.length; o++) {
        const got = await ix.searchBatch(queries, optsList[o]!);
        expect(got.ids).toBeInstanceOf(idw === 'u32' ? Int32Array : BigInt64Array);
        expect(got.ids).toEqual(want[o]!.ids);
        expect(got.distances).toEqual(want[o]!.distances);
        // The synchronous path agrees with the batch.
        const single = searchRows(ix, queries.subarray(0, 8 * dim), optsList[o]!);
        expect(single.ids).toEqual(want[o]!.ids.subarray(0, 8 * optsList[o]!.k));
        expect(single.distances).toEqual(want[o]!.distances.subarray(0, 8 * optsList[o]!.k));
      }
      for (const id of removed.slice(0, 20)) expect(ix.has(id)).toBe(false);
      for (const id of Array.from(ids as ArrayLike<number | bigint>)
        .filter((v) => !removed.includes(v))
        .slice(0, 20))
        expect(ix.has(id)).toBe(true);
      expect(ix.has(extraIds[149]!)).toBe(!removed.includes(extraIds[149]!));
      await ix.verify();
    }
    // No removed id in any result.
    const removedSet = new Set(removed.map((v) => BigInt(v)));
    for (const w of want)
      for (const id of Array.from(w.ids as ArrayLike<number | bigint>)) expect(removedSet.has(BigInt(id))).toBe(false);

    // An mmap-loaded index saved again is the same file, byte for byte; so is fromBuffer's toBuffer.
    const file2 = path.join(dir, 'resaved.rbq');
    await loaded.mmap!.save(file2);
    expect(Buffer.compare(fs.readFileSync(file2), fileBytes)).toBe(0);
    expect(Buffer.compare(await loaded.buffer!.toBuffer(), fileBytes)).toBe(0);
    expect(Buffer.compare(await loaded.read!.toBuffer(), fileBytes)).toBe(0);

    // The loaded indexes keep living like the original: default ids continue
    // from the same place, and results stay identical.
    const more = clustered(20, dim, 12, 14);
    await index.add(more);
    await loaded.mmap!.add(more);
    await loaded.buffer!.add(more);
    const after = await index.searchBatch(queries, { k: 10, nprobe: 4 });
    for (const ix of [loaded.mmap!, loaded.buffer!]) {
      expect(ix.size).toBe(index.size);
      const got = await ix.searchBatch(queries, { k: 10, nprobe: 4 });
      expect(got.ids).toEqual(after.ids);
      expect(got.distances).toEqual(after.distances);
    }
    // Default ids: 50 after the largest explicit id, then these 20.
    const lastDefault = idw === 'u32' ? 10_000_000 + 150 + 50 + 19 : 1199n * 10n ** 12n + 7n + 50n + 20n;
    expect(index.has(lastDefault)).toBe(true);
    expect(loaded.mmap!.has(lastDefault)).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['index.rbq', 'resaved.rbq']);
  });

  it('an empty index (everything removed) saves, loads and comes back to life', async () => {
    const dim = 16;
    const data = clustered(100, dim, 4, 21);
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: 5 });
    expect(await index.remove(Array.from({ length: 100 }, (_, i) => i))).toBe(100);
    const file = path.join(tmpDir('empty'), 'empty.rbq');
    await index.save(file);
    for (const ix of [
      await IvfRabitqIndex.load(file, { idType: 'u32' }),
      await IvfRabitqIndex.load(file, { mmap: true, verify: true, idType: 'u32' }),
      await IvfRabitqIndex.fromBuffer(await index.toBuffer(), { idType: 'u32' }),
    ]) {
      expect(ix.size).toBe(0);
      const r = ix.search(row(data, dim, 0), { k: 3, nprobe: 5 });
      expect(Array.from(r.ids)).toEqual([-1, -1, -1]);
      expect(Array.from(r.distances)).toEqual([Infinity, Infinity, Infinity]);
      await ix.add(data.subarray(0, 10 * dim));
      expect(ix.size).toBe(10);
      // Default ids continue after the largest id ever used (99).
      expect(ix.has(100)).toBe(true);
      expect(ix.has(109)).toBe(true);
      expect(ix.search(row(data, dim, 3), { k: 1, nprobe: 5 }).ids[0]).toBe(103);
    }
  });

  it('an mmap-loaded index survives its file being saved over and deleted', async () => {
    const dim = 24;
    const data = clustered(800, dim, 8, 31);
    const index = await IvfRabitqIndex.build(data, { dim, numClusters: 10 });
    const file = path.join(tmpDir('overwrite'), 'self.rbq');
    await index.save(file);
    const mapped = await IvfRabitqIndex.load(file, { mmap: true });
    const queries = clustered(20, dim, 8, 32);
    const before = await mapped.searchBatch(queries, { k: 5, nprobe: 3 });
    await mapped.remove([1, 2, 3]);
    await mapped.save(file); // atomically over the file it maps
    const reloaded = await IvfRabitqIndex.load(file, { mmap: true, verify: true });
    expect(reloaded.size).toBe(797);
    const now = await mapped.searchBatch(queries, { k: 5, nprobe: 3 });
    expect((await reloaded.searchBatch(queries, { k: 5, nprobe: 3 })).ids).toEqual(now.ids);
    fs.rmSync(file);
    const still = await mapped.searchBatch(queries, { k: 5, nprobe: 3 });
    expect(still.ids).toEqual(now.ids);
    for (const id of now.ids) expect([1, 2, 3, -1]).not.toContain(id);
    // Only the removed ids changed the results.
    for (let q = 0; q < 20; q++) {
      const b = rowIds(before.ids, q, 5).filter((id) => id > 3n);
      expect(rowIds(now.ids, q, 5).slice(0, b.length)).toEqual(b);
    }
  });
});

describe('storeVectors: false', () => {
  it('keeps no vectors, returns the same estimates as a full index, survives save/load', async () => {
    // Estimates alone rank well when the residuals (vector - centroid) are
    // small against the gaps between neighbours: a fine partition of tight
    // blobs (on coarser ones 1-bit estimates give a recall of 0.4 to 0.7).
    const dim = 128,
      n = 3000,
      nc = 200,
      k = 10;
    const data = clustered(n, dim, 100, 101);
    const queries = clustered(50, dim, 100, 102);
    const lean = await IvfRabitqIndex.build(data, { dim, numClusters: nc, seed: 8, storeVectors: false });
    const full = await IvfRabitqIndex.build(data, { dim, numClusters: nc, seed: 8 });
    expect(lean.storeVectors).toBe(false);
    expect(lean.memoryUsage().vectors).toBe(0);
    expect(full.memoryUsage().vectors).toBe(n * dim * 4);
    expect(() => lean.search(row(queries, dim, 0), { k, nprobe: 4, rerank: true })).toThrow(RangeError);
    await expect(lean.searchBatch(queries, { k, nprobe: 4, rerank: true })).rejects.toThrow(RangeError);

    const est = await lean.searchBatch(queries, { k, nprobe: nc });
    const fullEst = await full.searchBatch(queries, { k, nprobe: nc, rerank: false });
    expect(est.ids).toEqual(fullEst.ids);
    expect(est.distances).toEqual(fullEst.distances);
    const rows: Rows = new Map();
    for (let i = 0; i < n; i++) rows.set(BigInt(i), row(data, dim, i));
    let recall = 0;
    for (let q = 0; q < 50; q++)
      recall += recallOf(rowIds(est.ids, q, k), bruteTopK(rows, row(queries, dim, q), k, 'l2'));
    expect(recall / 50).toBeGreaterThanOrEqual(0.8);

    // Mutations work without vectors too.
    await lean.remove([0, 1, 2]);
    await lean.add(queries.subarray(0, 5 * dim));
    expect(lean.memoryUsage().vectors).toBe(0);
    const file = path.join(tmpDir('lean'), 'lean.rbq');
    await lean.save(file);
    await full.save(file + '.full');
    expect(fs.statSync(file).size).toBeLessThan(fs.statSync(file + '.full').size - n * dim * 4 + 4096);
    const after = await lean.searchBatch(queries, { k, nprobe: 5 });
    for (const loaded of [
      await IvfRabitqIndex.load(file),
      await IvfRabitqIndex.load(file, { mmap: true }),
      await IvfRabitqIndex.fromBuffer(await lean.toBuffer()),
    ]) {
      expect(loaded.storeVectors).toBe(false);
      expect(loaded.memoryUsage().vectors).toBe(0);
      expect(loaded.size).toBe(n + 2);
      const got = await loaded.searchBatch(queries, { k, nprobe: 5 });
      expect(got.ids).toEqual(after.ids);
      expect(got.distances).toEqual(after.distances);
      expect(() => loaded.search(row(queries, dim, 0), { k, nprobe: 4, rerank: true })).toThrow(RangeError);
    }
    // The added vectors are found by their estimates.
    const self = await lean.searchBatch(queries.subarray(0, 5 * dim), { k: 1, nprobe: nc });
    expect(Array.from(self.ids)).toEqual([3000, 3001, 3002, 3003, 3004]);
  });
});

describe('file errors', () => {
  const dim = 16;
  const data = clustered(300, dim, 4, 131);
  let small: IvfRabitqIndex;
  const getSmall = async () => (small ??= await IvfRabitqIndex.build(data, { dim, numClusters: 6 }));

  async function expectFileError(
    p: Promise<unknown>,
    code: 'EIO' | 'EBADINDEX',
    file: string,
    what: string,
  ): Promise<IndexFileError> {
    let err: unknown;
    try {
      await p;
    } catch (e) {
      err = e;
    }
    expect(err, what).toBeInstanceOf(IndexFileError);
    const e = err as IndexFileError;
    expect({ what, code: e.code, file: e.file }).toEqual({ what, code, file });
    return e;
  }

  it('load of a missing file, a folder, an empty file', async () => {
    const dir = tmpDir('load-errors');
    const missing = path.join(dir, 'nope.rbq');
    for (const mmap of [false, true]) {
      const e = await expectFileError(IvfRabitqIndex.load(missing, { mmap }), 'EIO', missing, `missing, mmap ${mmap}`);
      expect(e.message).toContain(missing);
      await expectFileError(IvfRabitqIndex.load(dir, { mmap }), 'EIO', dir, `folder, mmap ${mmap}`);
      const empty = path.join(dir, 'empty.rbq');
      fs.writeFileSync(empty, '');
      await expectFileError(IvfRabitqIndex.load(empty, { mmap }), 'EBADINDEX', empty, `empty, mmap ${mmap}`);
    }
  });

  it('fromBuffer rejects random bytes, truncations and every flipped byte tried', async () => {
    const ix = await getSmall();
    const good = await ix.toBuffer();
    // Accepted at any byte offset (the bytes are copied to aligned memory).
    const shifted = Buffer.alloc(good.length + 3);
    good.copy(shifted, 3);
    expect((await IvfRabitqIndex.fromBuffer(shifted.subarray(3))).size).toBe(300);

    const r = rng(132);
    const random = Uint8Array.from({ length: 4096 }, () => Math.floor(r() * 256));
    await expectFileError(IvfRabitqIndex.fromBuffer(random), 'EBADINDEX', 'buffer', 'random bytes');
    const magicThenRandom = Buffer.concat([good.subarray(0, 16), Buffer.from(random)]);
    await expectFileError(IvfRabitqIndex.fromBuffer(magicThenRandom), 'EBADINDEX', 'buffer', 'magic then random');
    await expectFileError(IvfRabitqIndex.fromBuffer(new Uint8Array(0)), 'EBADINDEX', 'buffer', 'empty');
    for (const len of [1, 8, 31, 32, 100, 400, Math.floor(good.length / 2), good.length - 64, good.length - 1]) {
      await expectFileError(
        IvfRabitqIndex.fromBuffer(good.subarray(0, len)),
        'EBADINDEX',
        'buffer',
        `truncated to ${len}`,
      );
    }
    await expectFileError(
      IvfRabitqIndex.fromBuffer(Buffer.concat([good, Buffer.alloc(64)])),
      'EBADINDEX',
      'buffer',
      'trailing bytes',
    );
    // Every byte of the header region, then positions spread over the body.
    const positions = new Set<number>();
    for (let i = 0; i < 512; i++) positions.add(i);
    for (let i = 0; i < 200; i++) positions.add(Math.floor(r() * good.length));
    positions.add(good.length - 1);
    for (const pos of positions) {
      const bad = Buffer.from(good);
      bad[pos]! ^= 0xff;
      await expectFileError(IvfRabitqIndex.fromBuffer(bad), 'EBADINDEX', 'buffer', `flipped byte ${pos}`);
    }
  });

  it('a corrupted file: read load and mmap verify reject it; a lazy mmap load defers to verify()', async () => {
    const ix = await getSmall();
    const dir = tmpDir('corrupt');
    const file = path.join(dir, 'c.rbq');
    await ix.save(file);
    const bytes = fs.readFileSync(file);
    // A byte near the end lies in the big arrays (codes / factors / ids / vectors).
    bytes[bytes.length - 10]! ^= 0x01;
    fs.writeFileSync(file, bytes);
    await expectFileError(IvfRabitqIndex.load(file), 'EBADINDEX', file, 'read');
    await expectFileError(IvfRabitqIndex.load(file, { mmap: true, verify: true }), 'EBADINDEX', file, 'mmap verify');
    const lazy = await IvfRabitqIndex.load(file, { mmap: true });
    await expectFileError(lazy.verify(), 'EBADINDEX', 'index', 'verify()');
    // compact() copies the arrays out of the mapping: it checks them first, and leaves the index as it was.
    const q = row(data, dim, 4);
    const before = lazy.search(q, { k: 5, nprobe: 6 });
    await expectFileError(lazy.compact(), 'EBADINDEX', 'index', 'compact()');
    expect(lazy.memoryUsage().mapped).toBeGreaterThan(0);
    expect(lazy.search(q, { k: 5, nprobe: 6 })).toEqual(before);
    await expectFileError(lazy.verify(), 'EBADINDEX', 'index', 'verify() after compact()');
    // Saving it would write the corrupt bytes under fresh checksums: refused too.
    const copy = path.join(dir, 'copy.rbq');
    await expectFileError(lazy.save(copy), 'EBADINDEX', copy, 'save()');
    await expectFileError(lazy.toBuffer(), 'EBADINDEX', 'index', 'toBuffer()');
    expect(fs.readdirSync(dir).sort()).toEqual(['c.rbq']);
    // A truncated file is rejected by every load, mapped or not (never a SIGBUS).
    const cut = path.join(dir, 'cut.rbq');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 200));
    for (const o of [{}, { mmap: true }, { mmap: true, verify: true }]) {
      await expectFileError(IvfRabitqIndex.load(cut, o), 'EBADINDEX', cut, `truncated ${JSON.stringify(o)}`);
    }
  });

  it('save into a missing folder or onto a folder fails cleanly', async () => {
    const ix = await getSmall();
    const dir = tmpDir('save-errors');
    const inMissing = path.join(dir, 'missing', 'x.rbq');
    await expectFileError(ix.save(inMissing), 'EIO', inMissing, 'missing folder');
    expect(fs.existsSync(path.join(dir, 'missing'))).toBe(false);
    const trailing = path.join(dir, 'sub') + '/';
    await expectFileError(ix.save(trailing), 'EIO', trailing, 'trailing slash');
    // A folder at the target: the write succeeds, the rename fails, and the
    // temporary file must go.
    const target = path.join(dir, 'taken');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep.txt'), 'keep');
    await expectFileError(ix.save(target), 'EIO', target, 'folder at the target');
    expect(fs.readdirSync(dir).sort()).toEqual(['taken']);
    expect(fs.readFileSync(path.join(target, 'keep.txt'), 'utf8')).toBe('keep');
    expect(fs.readdirSync(target)).toEqual(['keep.txt']);
  });

  it('a save that fails while writing (file size limit) leaves the old file intact and no temporary file', async () => {
    const dim2 = 64;
    const big = await IvfRabitqIndex.build(clustered(2000, dim2, 8, 141), { dim: dim2, numClusters: 20 });
    const srcDir = tmpDir('efbig-src');
    const src = path.join(srcDir, 'big.rbq');
    await big.save(src);
    expect(fs.statSync(src).size).toBeGreaterThan(256 * 1024);
    const dir = tmpDir('efbig');
    const target = path.join(dir, 'index.rbq');
    const old = Buffer.from('the previous index, which must survive\n'.repeat(10));
    fs.writeFileSync(target, old);
    const script = path.join(srcDir, 'save.cjs');
    fs.writeFileSync(
      script,
      `
      const addon = require(${JSON.stringify(path.join(ROOT, 'node_modules', 'node-gyp-build'))})(${JSON.stringify(ROOT)});
      addon.loadIndex(process.argv[2], false, false)
        .then((ix) => ix.save(process.argv[3]))
        .then(() => { process.stdout.write('saved'); }, (e) => { process.stdout.write('failed: ' + e.message); process.exitCode = 3; });
    `,
    );
    // ulimit -f counts 512-byte blocks in sh: a 64 KiB limit on any file the child writes.
    const res = spawnSync(
      'sh',
      ['-c', `ulimit -f 128 && exec "${process.execPath}" "$0" "$1" "$2"`, script, src, target],
      { encoding: 'utf8' },
    );
    expect(res.stdout).toMatch(/^failed: .*cannot save/);
    expect(res.status).toBe(3);
    expect(Buffer.compare(fs.readFileSync(target), old)).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['index.rbq']);
    // Without the limit the same save works and replaces the file.
    await big.save(target);
    expect((await IvfRabitqIndex.load(target)).size).toBe(2000);
    expect(fs.readdirSync(dir)).toEqual(['index.rbq']);
  });
});
