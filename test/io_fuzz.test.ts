/**
 * The vector-file readers (.fvecs / .ivecs / .bvecs) on random and mutated
 * bytes. They are TypeScript (src/io.ts), so they are fuzzed here with
 * fast-check rather than with the libFuzzer targets of the native index
 * reader (native/fuzz/). Every read (sync and async, whole file or a row
 * range) and every inspect must return a consistent result or throw a
 * VectorFileError (a RangeError for a range past the end); an untouched file
 * must read back exactly. Seed and FC_RUNS as in properties.test.ts.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import {
  VectorFileError,
  inspectVectorFile,
  readBvecs,
  readBvecsSync,
  readFvecs,
  readFvecsSync,
  readIvecs,
  readIvecsSync,
} from '../src/index.js';
import { inspectVectorFileSync } from '../src/io.js';
import { tempFolders } from './helpers.js';

const SEED = Number(process.env.FC_SEED ?? 0x10f22);
const SCALE = Math.max(1, Number(process.env.FC_RUNS ?? 1));
const tmpDir = tempFolders('io-fuzz');

type Kind = 'fvecs' | 'ivecs' | 'bvecs';
const ELEMENT: Record<Kind, number> = { fvecs: 4, ivecs: 4, bvecs: 1 };

/** A well-formed file: count records of [dim as int32][dim elements]. */
function wellFormed(kind: Kind, dim: number, count: number, fill: number): Buffer {
  const rec = 4 + dim * ELEMENT[kind];
  const b = Buffer.alloc(rec * count);
  for (let r = 0; r < count; r++) {
    b.writeInt32LE(dim, r * rec);
    for (let j = 0; j < dim * ELEMENT[kind]; j++) b[r * rec + 4 + j] = (fill + 31 * r + 7 * j) & 0xff;
  }
  return b;
}

const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 9 }) }),
  fc.record({
    op: fc.constant('header' as const),
    record: fc.nat(),
    value: fc.constantFrom(0, -1, 1, 65536, 65537, 2 ** 31 - 1, -(2 ** 31)),
  }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(b: Buffer, kind: Kind, dim: number, ms: Mutation[]): Buffer {
  let out = Buffer.from(b);
  for (const m of ms) {
    if (m.op === 'flip' && out.length > 0) out[m.at % out.length] = m.value;
    if (m.op === 'truncate') out = out.subarray(0, m.at % (out.length + 1));
    if (m.op === 'append') out = Buffer.concat([out, m.bytes]);
    if (m.op === 'header') {
      const rec = 4 + dim * ELEMENT[kind];
      const at = (m.record % Math.max(1, Math.floor(out.length / rec))) * rec;
      if (at + 4 <= out.length) out.writeInt32LE(m.value, at);
    }
  }
  return out;
}

/** A read either succeeds with a consistent shape or throws a typed error. */
async function readAll(
  kind: Kind,
  file: string,
  range: { start?: number; end?: number } | undefined,
): Promise<{ dim: number; count: number; data: ArrayLike<number> } | null> {
  const calls: (() => unknown)[] = {
    fvecs: [() => readFvecsSync(file, range), () => readFvecs(file, range)],
    ivecs: [() => readIvecsSync(file, range), () => readIvecs(file, range)],
    bvecs: [
      () => readBvecsSync(file, range),
      () => readBvecs(file, range),
      () => readBvecs(file, { ...range, asFloat32: true }),
    ],
  }[kind];
  let first: { dim: number; count: number; data: ArrayLike<number> } | null | undefined;
  for (const call of calls) {
    let got: { dim: number; count: number; data: ArrayLike<number> } | null;
    try {
      got = (await call()) as { dim: number; count: number; data: ArrayLike<number> };
      expect(got.data.length).toBe(got.dim * got.count);
      expect(got.dim).toBeGreaterThanOrEqual(1);
    } catch (e) {
      if (!(e instanceof VectorFileError) && !(e instanceof RangeError)) throw e;
      got = null;
    }
    // Sync and async readers agree on whether the file is readable.
    if (first === undefined) first = got;
    else expect(got === null).toBe(first === null);
  }
  return first ?? null;
}

describe('vector-file readers on random and mutated bytes (fast-check)', { timeout: 120_000 }, () => {
  it('well-formed files read back exactly; mutated ones read consistently or throw VectorFileError', async () => {
    const dir = tmpDir('mutated');
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Kind>('fvecs', 'ivecs', 'bvecs'),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 20 }),
        fc.nat(255),
        fc.array(mutation, { maxLength: 4 }),
        fc.option(fc.record({ start: fc.nat(25), end: fc.nat(25) }), { nil: undefined }),
        async (kind, dim, count, fill, ms, range) => {
          const good = wellFormed(kind, dim, count, fill);
          const bytes = mutate(good, kind, dim, ms);
          const file = path.join(dir, `f${n++}.${kind}`);
          fs.writeFileSync(file, bytes);
          const r = range && range.end < range.start ? { start: range.end, end: range.start } : range;
          const got = await readAll(kind, file, r);
          for (const scan of [false, true]) {
            try {
              const info = inspectVectorFileSync(file, kind, { scan });
              expect(info.bytes).toBe(bytes.length);
              expect(info.count * info.recordBytes).toBe(bytes.length);
              const again = await inspectVectorFile(file, kind, { scan });
              expect(again).toEqual(info);
            } catch (e) {
              if (!(e instanceof VectorFileError)) throw e;
            }
          }
          if (ms.length === 0) {
            // Untouched: readable, with the exact shape and bytes.
            if (got === null) {
              // only a range past the end may fail
              expect(r !== undefined && ((r.end ?? 0) > count || (r.start ?? 0) > count)).toBe(true);
              return;
            }
            const start = r?.start ?? 0;
            const end = Math.min(r?.end ?? count, count);
            expect(got.dim).toBe(dim);
            expect(got.count).toBe(end - start);
            const rec = 4 + dim * ELEMENT[kind];
            const view = good.subarray(start * rec, end * rec);
            const expected: number[] = [];
            for (let row = 0; row < end - start; row++) {
              for (let j = 0; j < dim; j++) {
                const at = row * rec + 4 + j * ELEMENT[kind];
                expected.push(
                  kind === 'fvecs' ? view.readFloatLE(at) : kind === 'ivecs' ? view.readInt32LE(at) : view[at]!,
                );
              }
            }
            expect(Array.from(got.data)).toEqual(expected);
          }
        },
      ),
      { seed: SEED, numRuns: Math.round(150 * SCALE), endOnFailure: true },
    );
  });

  it('random bytes: a result or a VectorFileError', async () => {
    const dir = tmpDir('random');
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Kind>('fvecs', 'ivecs', 'bvecs'),
        fc.uint8Array({ maxLength: 64 }),
        async (kind, bytes) => {
          const file = path.join(dir, `r${n++}.${kind}`);
          fs.writeFileSync(file, bytes);
          await readAll(kind, file, undefined);
        },
      ),
      { seed: SEED + 1, numRuns: Math.round(150 * SCALE), endOnFailure: true },
    );
  });
});
