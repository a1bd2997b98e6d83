/**
 * Property-based tests (fast-check) over the public API: random shapes
 * (dim 1..200, n 0..500), values (NaN, +-Infinity, huge, subnormal, -0),
 * options (valid and not) and call orders. Whatever the input, every call
 * returns a result or throws a typed error (TypeError, RangeError or a
 * RabitqError subclass) and the process lives; and where the input is
 * ordinary, the answers are right: a full-probe search with raw vectors and
 * a wide error bound is exact k-NN, fromBuffer(toBuffer()) answers exactly
 * like the original, the index holds exactly the ids a model says it does.
 *
 * The seed is fixed so CI runs the same cases every time; FC_SEED picks
 * another, FC_RUNS multiplies the number of runs (e.g. FC_RUNS=20 for a long
 * session). A failure prints the seed and the shrunk counterexample.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import path from 'node:path';
import { IvfRabitqIndex, RabitqError, exactKnn, type IdArray } from '../src/index.js';
import { rng, tempFolders } from './helpers.js';

const SEED = Number(process.env.FC_SEED ?? 0x5eed14);
const SCALE = Math.max(1, Number(process.env.FC_RUNS ?? 1));
const params = (runs: number): fc.Parameters<unknown> => ({
  seed: SEED,
  numRuns: Math.round(runs * SCALE),
  endOnFailure: true,
  // A run that hangs fails with its counterexample instead of stalling the suite.
  timeout: 20_000,
});

const tmpDir = tempFolders('properties');

/** Errors the API may throw: argument errors and the package's own. */
function isTyped(e: unknown): boolean {
  return e instanceof TypeError || e instanceof RangeError || e instanceof RabitqError;
}

/** Runs fn; a typed error is an answer (returned), anything else fails the property. */
async function typed<T>(fn: () => T | Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: Error }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (!isTyped(e)) throw new Error(`untyped error: ${String(e)}`, { cause: e });
    return { ok: false, error: e as Error };
  }
}

// ---- values ------------------------------------------------------------------

// Refused by every entry point (RangeError naming row and column).
const NON_FINITE = [NaN, Infinity, -Infinity];
// Finite, but their squares overflow float32 (issue 14.2).
const HUGE = [3.4e38, -3.4e38, 1e20, -1e20];
const TINY = [1e-45, -1e-45, 1e-40, -0, 0];
const SPECIALS = [...NON_FINITE, ...HUGE, ...TINY];

/**
 * A recipe for a row-major matrix, cheap to generate and to shrink: values
 * from a seeded generator at a magnitude, plus a few special values written
 * at chosen places.
 */
interface Matrix {
  seed: number;
  magnitude: number;
  specials: readonly { at: number; value: number }[];
}
const NO_SPECIALS: Matrix['specials'] = [];

const matrixArb = (specials: number[], magnitudes = [1, 1, 1, 100, 1e-3, 1e-40, 1e6]): fc.Arbitrary<Matrix> =>
  fc.record({
    seed: fc.integer({ min: 1, max: 1 << 30 }),
    magnitude: fc.constantFrom(...magnitudes),
    specials:
      specials.length > 0
        ? fc.oneof(
            { weight: 2, arbitrary: fc.constant(NO_SPECIALS) },
            {
              weight: 1,
              arbitrary: fc.array(fc.record({ at: fc.nat(), value: fc.constantFrom(...specials) }), { maxLength: 3 }),
            },
          )
        : fc.constant(NO_SPECIALS),
  });
/** Magnitudes where squared distances overflow float32 (issue 14.2). */
const HUGE_MAGNITUDES = [1e19, 1e25, 3e38];

function materialize(m: Matrix, rows: number, dim: number): Float32Array {
  const next = rng(m.seed);
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < out.length; i++) out[i] = (next() * 2 - 1) * m.magnitude;
  for (const s of m.specials) if (out.length > 0) out[s.at % out.length] = s.value;
  return out;
}

/** Every value finite and small enough that squared distances stay exact-ish in float32. */
function ordinary(a: Float32Array): boolean {
  for (const x of a) if (!Number.isFinite(x) || Math.abs(x) > 1e6) return false;
  return true;
}

// ---- options -----------------------------------------------------------------

/** Mostly valid values, sometimes the kind of value a caller gets wrong. */
function sometimesBad<T>(good: fc.Arbitrary<T>, ...bad: unknown[]): fc.Arbitrary<T | unknown> {
  return fc.oneof({ weight: 8, arbitrary: good }, { weight: 1, arbitrary: fc.constantFrom(...bad) });
}

const buildOptionsArb = fc.record(
  {
    numClusters: sometimesBad(fc.integer({ min: 1, max: 30 }), 0, -1, 1.5, NaN, '4', 1e9),
    metric: sometimesBad(fc.constantFrom('l2', 'l2', 'cosine', 'ip'), 'L2', 'dot', 0),
    bits: sometimesBad(fc.integer({ min: 1, max: 9 }), 0, 10, 2.5, '3'),
    storeVectors: sometimesBad(fc.boolean(), 1, 'yes'),
    ids: fc.constantFrom('default', 'default', 'u32', 'u64', 'u64', 'dup', 'bad'),
    rotation: fc.constantFrom(undefined, 'fht', 'dense', 'qr'),
    seed: fc.integer({ min: 0, max: 1000 }),
  },
  { requiredKeys: ['ids', 'seed'] },
);
type BuildChoice = typeof buildOptionsArb extends fc.Arbitrary<infer T> ? T : never;

function idsFor(kind: string, n: number, base: number): Uint32Array | BigUint64Array | number[] | undefined {
  switch (kind) {
    case 'u32':
      return Uint32Array.from({ length: n }, (_, i) => base + 3 * i);
    case 'u64':
      return BigUint64Array.from({ length: n }, (_, i) => 2n ** 40n + BigInt(base + 3 * i));
    case 'dup':
      return Uint32Array.from({ length: n }, (_, i) => (i === n - 1 && n > 1 ? base : base + 3 * i));
    case 'bad':
      return Array.from({ length: n }, (_, i) => i);
    default:
      return undefined;
  }
}

function buildOptions(c: BuildChoice, dim: number, n: number): Record<string, unknown> {
  const o: Record<string, unknown> = { dim, seed: c.seed, threads: 2, kmeansIterations: 3 };
  for (const key of ['numClusters', 'metric', 'bits', 'storeVectors', 'rotation'] as const) {
    if (c[key] !== undefined) o[key] = c[key];
  }
  const ids = idsFor(c.ids, n, 5);
  if (ids !== undefined) o.ids = ids;
  return o;
}

// ---- brute force ---------------------------------------------------------------

/** The k smallest squared L2 distances (float64) from q to the rows of a model. */
function bruteForce(rows: Map<bigint, Float32Array>, q: Float32Array, k: number): number[] {
  const d: number[] = [];
  for (const v of rows.values()) {
    let s = 0;
    for (let j = 0; j < q.length; j++) s += (v[j]! - q[j]!) ** 2;
    d.push(s);
  }
  return d.sort((a, b) => a - b).slice(0, k);
}

function closeTo(a: number, b: number, scale: number): boolean {
  if (a === b) return true; // also both Infinity (an empty slot)
  return Math.abs(a - b) <= 1e-3 * (Math.abs(b) + scale) + 1e-6;
}

const idOf = (ids: IdArray, i: number): bigint => BigInt(ids[i]!);

// ---- the properties ----------------------------------------------------------------

describe('properties (fast-check)', { timeout: 120_000 }, () => {
  it('build + search with any shape, values and options: a result or a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 0, max: 500 }),
        matrixArb(SPECIALS, [1, 1, 100, 1e-3, 1e-40, 1e6, 1e19]),
        buildOptionsArb,
        fc.record({
          k: sometimesBad(fc.integer({ min: 1, max: 40 }), 0, -3, 2.5, NaN, 2 ** 21, '5'),
          nprobe: sometimesBad(fc.integer({ min: 1, max: 40 }), 0, -1, Infinity, 1.5),
          queryMagnitude: fc.constantFrom(1, 1e-40, 1e19, 3e38),
          querySpecial: fc.option(fc.constantFrom(...SPECIALS), { nil: undefined }),
          wrongLength: fc.boolean(),
        }),
        async (dim, n, m, choice, s) => {
          const data = materialize(m, n, dim);
          const built = await typed(() => IvfRabitqIndex.build(data, buildOptions(choice, dim, n) as never));
          if (!built.ok) return;
          const index = built.value as IvfRabitqIndex<IdArray>;
          expect(index.size).toBe(n);
          expect(index.dim).toBe(dim);
          const q = materialize({ seed: m.seed + 1, magnitude: s.queryMagnitude, specials: [] }, 1, dim);
          if (s.querySpecial !== undefined) q[0] = s.querySpecial;
          const query = s.wrongLength ? q.subarray(1) : q;
          const r = await typed(() => index.search(query, { k: s.k, nprobe: s.nprobe } as never));
          if (r.ok) {
            const k = s.k as number;
            expect(r.value.ids.length).toBe(k);
            for (let i = 0; i < k; i++) {
              const id = idOf(r.value.ids, i);
              if (id !== -1n) expect(index.has(id)).toBe(true);
            }
          }
          const b = await typed(() => index.searchBatch(query, { k: s.k, nprobe: s.nprobe } as never));
          if (r.ok !== b.ok) throw new Error(`search ${r.ok ? 'answered' : 'threw'} but searchBatch did not`);
          // The single and batch paths give the same answer (not yet for
          // queries whose squares overflow: issue 14.2, fixed elsewhere).
          const overflows =
            s.queryMagnitude >= 1e19 ||
            HUGE.includes(s.querySpecial ?? 0) ||
            m.magnitude >= 1e19 ||
            m.specials.some((x) => HUGE.includes(x.value));
          if (r.ok && b.ok && !overflows) {
            expect(Array.from(b.value.ids, String)).toEqual(Array.from(r.value.ids, String));
            expect(Array.from(b.value.distances)).toEqual(Array.from(r.value.distances));
          }
        },
      ),
      params(150),
    );
  });

  it('full-probe search with raw vectors and a wide bound equals exactKnn (l2, finite inputs)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 500 }),
        matrixArb([]),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 30 }),
        async (dim, n, m, bits, k, clusters) => {
          const data = materialize({ ...m, magnitude: Math.min(m.magnitude, 100) }, n, dim);
          const numClusters = Math.min(clusters, n);
          const index = await IvfRabitqIndex.build(data, { dim, numClusters, bits, threads: 2, kmeansIterations: 3 });
          const queries = materialize({ seed: m.seed + 7, magnitude: 1, specials: [] }, 3, dim);
          // One more neighbour than asked: a tie at the k-th place is visible.
          const want = await exactKnn(data, queries, { dim, k: k + 1 });
          const got = await index.searchBatch(queries, { k, nprobe: numClusters, epsilon: 1e6 });
          for (let q = 0; q < 3; q++) {
            const wd = want.distances.subarray(q * (k + 1), (q + 1) * (k + 1));
            const wi = want.ids.subarray(q * (k + 1), (q + 1) * (k + 1));
            const scale = Math.abs(wd[0]!) + 1;
            for (let i = 0; i < k; i++) {
              const at = q * k + i;
              if (!closeTo(got.distances[at]!, wd[i]!, scale)) {
                throw new Error(`query ${q} slot ${i}: index distance ${got.distances[at]}, exact ${wd[i]}`);
              }
              // Ids agree wherever the distance is not tied with a neighbour.
              const tied = (i > 0 && closeTo(wd[i - 1]!, wd[i]!, scale)) || closeTo(wd[i + 1]!, wd[i]!, scale);
              if (!tied) expect(got.ids[at]).toBe(wi[i]);
            }
          }
        },
      ),
      params(80),
    );
  });

  // Issue 14.2: finite values whose squares overflow float32 (a stored row
  // of +-1e20, a query of 1e19) must give k results whenever k vectors exist
  // (full probe), or a RangeError naming the row and column (before the fix:
  // ids -1, distance Infinity).
  it('huge finite values: k results whenever k vectors exist, or a RangeError', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 3, max: 200 }),
        fc.constantFrom('l2', 'cosine', 'ip'),
        fc.boolean(),
        matrixArb(HUGE),
        fc.constantFrom(1, ...HUGE_MAGNITUDES),
        async (dim, n, metric, storeVectors, m, queryMagnitude) => {
          const data = materialize(m, n, dim);
          const built = await typed(() =>
            IvfRabitqIndex.build(data, { dim, metric, storeVectors, numClusters: 2, threads: 2 }),
          );
          if (!built.ok) {
            expect(built.error).toBeInstanceOf(RangeError);
            return;
          }
          const index = built.value;
          const q = materialize({ seed: m.seed + 5, magnitude: queryMagnitude, specials: [] }, 1, dim);
          const k = 3;
          const r = await typed(() => index.search(q, { k, nprobe: 2 }));
          if (!r.ok) {
            expect(r.error).toBeInstanceOf(RangeError);
            return;
          }
          for (let i = 0; i < k; i++) expect(r.value.ids[i]).not.toBe(-1);
        },
      ),
      params(30),
    );
  });

  // A random program over one index, checked after every step against a
  // model (a Map from id to vector): size, has(), the ids a search may
  // return, k results whenever k vectors exist (full probe), exactness
  // against brute force for l2 with raw vectors, and the round trips.
  type Op =
    | { kind: 'add'; rows: number; m: Matrix; ids: 'default' | 'own' | 'existing' | 'dup' }
    | { kind: 'remove'; picks: number[]; extra: number[] }
    | { kind: 'compact' }
    | { kind: 'search'; k: number; filter: boolean; m: Matrix }
    | { kind: 'searchBatch'; nq: number; k: number; m: Matrix }
    | { kind: 'save'; mmap: boolean; verify: boolean }
    | { kind: 'buffer' };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant('add' as const),
      rows: fc.integer({ min: 1, max: 40 }),
      m: matrixArb([...NON_FINITE, ...TINY]),
      ids: fc.constantFrom('default' as const, 'own' as const, 'existing' as const, 'dup' as const),
    }),
    fc.record({
      kind: fc.constant('remove' as const),
      picks: fc.array(fc.nat(), { maxLength: 30 }),
      extra: fc.array(fc.nat({ max: 100_000 }), { maxLength: 3 }),
    }),
    fc.constant({ kind: 'compact' as const }),
    fc.record({
      kind: fc.constant('search' as const),
      k: fc.integer({ min: 1, max: 50 }),
      filter: fc.boolean(),
      m: matrixArb(TINY),
    }),
    fc.record({
      kind: fc.constant('searchBatch' as const),
      nq: fc.integer({ min: 1, max: 5 }),
      k: fc.integer({ min: 1, max: 20 }),
      m: matrixArb(TINY),
    }),
    fc.record({ kind: fc.constant('save' as const), mmap: fc.boolean(), verify: fc.boolean() }),
    fc.constant({ kind: 'buffer' as const }),
  );

  it('random call orders keep the index equal to a model', async () => {
    let file = 0;
    const dir = tmpDir('calls');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 200 }),
        fc.constantFrom('l2', 'l2', 'cosine', 'ip'),
        fc.integer({ min: 1, max: 9 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        async (dim, n, metric, bits, storeVectors, wide, ops) => {
          const seed = dim * 1000 + n;
          const data = materialize({ seed, magnitude: 10, specials: [] }, n, dim);
          const ids = wide
            ? BigUint64Array.from({ length: n }, (_, i) => 2n ** 50n + BigInt(i))
            : Uint32Array.from({ length: n }, (_, i) => i);
          let index = (await IvfRabitqIndex.build(data, {
            dim,
            metric,
            bits,
            storeVectors,
            ids,
            numClusters: Math.min(n, 1 + (seed % 8)),
            threads: 2,
            kmeansIterations: 3,
          })) as IvfRabitqIndex<IdArray>;
          const model = new Map<bigint, Float32Array>();
          for (let i = 0; i < n; i++) model.set(BigInt(ids[i]!), data.subarray(i * dim, (i + 1) * dim));
          let nextOwn = 1_000_000;
          let maxEver = BigInt(ids[n - 1]!);
          const toIds = (list: bigint[]) =>
            wide ? BigUint64Array.from(list) : Uint32Array.from(list, (x) => Number(x));
          const exact = metric === 'l2' && storeVectors;

          // `rows`: the vectors the search may return (all, or the filter's).
          const checkAnswer = (
            rows: Map<bigint, Float32Array>,
            q: Float32Array,
            got: { ids: IdArray; distances: Float32Array },
            k: number,
          ) => {
            const have = Math.min(k, rows.size);
            for (let i = 0; i < k; i++) {
              const id = idOf(got.ids, i);
              if (i < have) {
                if (!rows.has(id)) throw new Error(`slot ${i}: id ${id} is not in the index (or not allowed)`);
              } else expect(id).toBe(-1n);
            }
            if (exact && ordinary(q)) {
              const want = bruteForce(rows, q, k);
              for (let i = 0; i < have; i++) {
                if (!closeTo(got.distances[i]!, want[i]!, want[0]! + 1))
                  throw new Error(`slot ${i}: distance ${got.distances[i]}, brute force ${want[i]}`);
              }
            }
          };

          for (const op of ops) {
            switch (op.kind) {
              case 'add': {
                const rows = materialize(op.m, op.rows, dim);
                const live = [...model.keys()];
                let list: bigint[] | undefined;
                if (op.ids === 'own') list = Array.from({ length: op.rows }, () => BigInt(nextOwn++));
                if (op.ids === 'existing' && live.length > 0)
                  list = Array.from({ length: op.rows }, (_, i) => (i === 0 ? live[0]! : BigInt(nextOwn++)));
                if (op.ids === 'dup') list = Array.from({ length: op.rows }, () => BigInt(nextOwn));
                const before = index.size;
                const r = await typed(() => index.add(rows, list === undefined ? undefined : toIds(list)));
                if (!r.ok) {
                  // Refused as a whole: nothing changed.
                  expect(index.size).toBe(before);
                  break;
                }
                if (list === undefined) {
                  // Default ids: the next ones after the largest ever used.
                  list = Array.from({ length: op.rows }, (_, i) => maxEver + 1n + BigInt(i));
                  for (const id of list) if (!index.has(id)) throw new Error(`default id ${id} is not in the index`);
                }
                list.forEach((id, i) => model.set(id, rows.subarray(i * dim, (i + 1) * dim)));
                for (const id of list) if (id > maxEver) maxEver = id;
                break;
              }
              case 'remove': {
                const live = [...model.keys()];
                const gone = op.picks.filter(() => live.length > 0).map((p) => live[p % live.length]!);
                const list = [...gone, ...op.extra.map((x) => BigInt(x) + 10_000_000n)];
                const removed = await index.remove(list);
                let expected = 0;
                for (const id of new Set(list)) if (model.delete(id)) expected++;
                expect(removed).toBe(expected);
                break;
              }
              case 'compact':
                await index.compact();
                break;
              case 'search': {
                const q = materialize(op.m, 1, dim);
                let filter: Uint32Array | BigUint64Array | undefined;
                let allowed = model;
                if (op.filter) {
                  const keep = [...model.keys()].filter((_, i) => i % 3 === 0);
                  filter = toIds(keep);
                  allowed = new Map(keep.map((id) => [id, model.get(id)!]));
                }
                const k = op.k;
                const r = index.search(q, { k, nprobe: index.numClusters, epsilon: 1e6, filter });
                checkAnswer(allowed, q, r, k);
                break;
              }
              case 'searchBatch': {
                const qs = materialize(op.m, op.nq, dim);
                const r = await index.searchBatch(qs, { k: op.k, nprobe: index.numClusters, epsilon: 1e6 });
                for (let i = 0; i < op.nq; i++) {
                  const one = index.search(qs.subarray(i * dim, (i + 1) * dim), {
                    k: op.k,
                    nprobe: index.numClusters,
                    epsilon: 1e6,
                  });
                  const part = {
                    ids: r.ids.subarray(i * op.k, (i + 1) * op.k) as IdArray,
                    distances: r.distances.subarray(i * op.k, (i + 1) * op.k),
                  };
                  expect(Array.from(part.ids, String)).toEqual(Array.from(one.ids, String));
                  checkAnswer(model, qs.subarray(i * dim, (i + 1) * dim), part, op.k);
                }
                break;
              }
              case 'save':
              case 'buffer': {
                let back: IvfRabitqIndex<IdArray>;
                if (op.kind === 'save') {
                  const p = path.join(dir, `i${file++}.rbq`);
                  await index.save(p);
                  back = await IvfRabitqIndex.load(p, { mmap: op.mmap, verify: op.verify });
                } else {
                  back = await IvfRabitqIndex.fromBuffer(await index.toBuffer());
                }
                expect(back.size).toBe(index.size);
                // The copy answers exactly like the original.
                const q = materialize({ seed: file + 3, magnitude: 10, specials: [] }, 1, dim);
                const opts = { k: 7, nprobe: 2 };
                const a = index.search(q, opts);
                const b = back.search(q, opts);
                expect(Array.from(b.ids, String)).toEqual(Array.from(a.ids, String));
                expect(Array.from(b.distances)).toEqual(Array.from(a.distances));
                index = back;
                break;
              }
            }
            expect(index.size).toBe(model.size);
            for (const id of [...model.keys()].slice(0, 20)) expect(index.has(id)).toBe(true);
          }
        },
      ),
      params(100),
    );
  });
});
