/**
 * Every SIMD kernel level the CPU offers against the scalar reference (and
 * the scalar reference against plain TypeScript), through the test-only
 * addon (bench/native_testing.ts); plus the RABITQ_SIMD / level-selection
 * error paths of the library addon.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { native, type SimdLevelName } from '../src/native.js';
import { rng } from './helpers.js';
import { loadTestingAddon } from '../bench/native_testing.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const distIndex = path.join(repoRoot, 'dist', 'src', 'index.js');

const ALL_LEVELS: SimdLevelName[] = ['scalar', 'avx2', 'avx512', 'neon'];
const detected = native.detectedLevel();
/** x86-64 levels are ordered (each CPU offers a prefix); AArch64 offers scalar and neon. */
const FAMILY: SimdLevelName[] = detected === 'neon' ? ['scalar', 'neon'] : ['scalar', 'avx2', 'avx512'];
const LEVELS = FAMILY.slice(0, FAMILY.indexOf(detected) + 1);
const SIMD_LEVELS = LEVELS.filter((l) => l !== 'scalar');
const UNSUPPORTED = ALL_LEVELS.filter((l) => !LEVELS.includes(l));
const k = loadTestingAddon().kernels;
/**
 * Under qemu-user (the arm64 stage of .ci/run) a child process cannot exec the
 * guest Node binary directly: RABITQ_TEST_NODE names a wrapper that runs it
 * under the emulator, and timings mean nothing there (RABITQ_TEST_EMULATED=1).
 */
const NODE = process.env.RABITQ_TEST_NODE || process.execPath;
const EMULATED = process.env.RABITQ_TEST_EMULATED === '1';
const initialLevel = native.simdLevel();

afterAll(() => {
  native.setSimdLevel(initialLevel);
});

const EDGE_DIMS = [1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 960, 1024, 4096];
/** The edge dimensions plus 60 random ones in 1..1100 (fixed seed). */
const DIMS = (() => {
  const r = rng(20240601);
  const out = [...EDGE_DIMS];
  for (let i = 0; i < 60; i++) out.push(1 + Math.floor(r() * 1100));
  return out;
})();

/** A view of `n` elements starting `offset` elements into a larger buffer: unaligned for offset 1..3. */
function floats(n: number, offset: number, r: () => number, lo = -1, hi = 1): Float32Array {
  const buf = new Float32Array(n + offset + 5);
  for (let i = 0; i < buf.length; i++) buf[i] = lo + r() * (hi - lo);
  return buf.subarray(offset, offset + n);
}
function bytes(n: number, offset: number, fillFn: () => number): Uint8Array {
  const buf = new Uint8Array(n + offset + 7);
  for (let i = 0; i < buf.length; i++) buf[i] = fillFn();
  return buf.subarray(offset, offset + n);
}
function words(n: number, offset: number, r: () => number): BigUint64Array {
  const buf = new BigUint64Array(n + offset + 3);
  for (let i = 0; i < buf.length; i++) {
    buf[i] = (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
  }
  return buf.subarray(offset, offset + n);
}

/** |got - want| within 1e-5 relative, plus 1e-6 of the sum of |terms| for sums that cancel. */
function expectClose(got: number, want: number, scale: number, what: string): void {
  const tol = 1e-5 * Math.abs(want) + 1e-6 * scale;
  if (!(Math.abs(got - want) <= tol)) {
    expect.fail(`${what}: got ${got}, want ${want} (tolerance ${tol})`);
  }
}

function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
function popcount64(x: bigint): number {
  return popcount32(Number(x & 0xffffffffn)) + popcount32(Number(x >> 32n));
}

describe('kernel levels', () => {
  it('detectedLevel is a known level and scalar is always available', () => {
    expect(ALL_LEVELS).toContain(detected);
    expect(LEVELS[0]).toBe('scalar');
    if (process.arch === 'arm64') expect(detected).toBe('neon');
    if (process.arch === 'x64') expect(detected).not.toBe('neon');
  });

  it('setSimdLevel switches to every supported level', () => {
    for (const level of LEVELS) {
      native.setSimdLevel(level);
      expect(native.simdLevel()).toBe(level);
    }
    native.setSimdLevel(initialLevel);
    expect(native.simdLevel()).toBe(initialLevel);
  });

  it.skipIf(EMULATED)('choosing a level per call is cheap: no CPUID or other trap per kernel call', () => {
    // In a VM each CPUID instruction traps (microseconds); a kernel call at
    // d = 1 is about 0.2 us. Best of 3 rounds, 10x headroom for loaded machines.
    const one = new Float32Array([1]);
    for (const level of LEVELS) {
      // warm up first, so the result does not depend on earlier tests having compiled the call path
      for (let i = 0; i < 5000; i++) k.l2sq(level, one, one);
      let best = Infinity;
      for (let round = 0; round < 3; round++) {
        const t0 = performance.now();
        for (let i = 0; i < 5000; i++) k.l2sq(level, one, one);
        best = Math.min(best, ((performance.now() - t0) * 1000) / 5000);
      }
      expect(best, `${level}: microseconds per call`).toBeLessThan(2);
    }
  });

  it('unknown or unsupported levels throw RangeError from setSimdLevel and every kernel', () => {
    const a = new Float32Array(8);
    const bad = ['bogus', '', 'AVX2', 'sse4', 'avx-512', ...UNSUPPORTED] as SimdLevelName[];
    for (const level of bad) {
      expect(() => native.setSimdLevel(level), level).toThrow(RangeError);
      expect(() => k.l2sq(level, a, a), level).toThrow(RangeError);
      expect(() => k.dot(level, a, a), level).toThrow(RangeError);
      expect(() => k.minmax(level, a), level).toThrow(RangeError);
      expect(() => k.quantize(level, a, 0, 1, a, 15, new Uint8Array(8)), level).toThrow(RangeError);
      expect(() => k.popcountAnd(level, new BigUint64Array(2), new BigUint64Array(2)), level).toThrow(RangeError);
      expect(() => k.bitplaneIp(level, new BigUint64Array(4), 2, new BigUint64Array(2)), level).toThrow(RangeError);
      expect(() => k.fastscan(level, new Uint8Array(32), new Uint8Array(32), 1, new Uint16Array(32)), level).toThrow(
        RangeError,
      );
      expect(() => k.dotTile16(level, a, 1, 8, new Float32Array(128), new Float32Array(16)), level).toThrow(RangeError);
      expect(() => k.dotTile16F16(level, a, 1, 8, new Uint16Array(128), new Float32Array(16)), level).toThrow(
        RangeError,
      );
    }
    // The level in use is unchanged by the failed calls.
    expect(native.simdLevel()).toBe(initialLevel);
    expect(() => native.setSimdLevel('bogus' as SimdLevelName)).toThrow(/unknown SIMD level/);
    for (const level of UNSUPPORTED) {
      expect(() => native.setSimdLevel(level)).toThrow(/not supported by this CPU/);
    }
  });
});

describe('float kernels equal scalar', () => {
  it('scalar l2sq and dot match a float64 TypeScript loop', () => {
    const r = rng(1);
    for (const d of DIMS) {
      const a = floats(d, 0, r);
      const b = floats(d, 0, r);
      let l2 = 0;
      let ip = 0;
      let abs = 0;
      for (let i = 0; i < d; i++) {
        l2 += (a[i] - b[i]) ** 2;
        ip += a[i] * b[i];
        abs += Math.abs(a[i] * b[i]);
      }
      expectClose(k.l2sq('scalar', a, b), l2, l2, `scalar l2sq d=${d}`);
      expectClose(k.dot('scalar', a, b), ip, abs, `scalar dot d=${d}`);
    }
  });

  it.each(SIMD_LEVELS)('%s l2sq and dot over edge and random dims, unaligned', (level) => {
    const r = rng(2);
    for (const d of DIMS) {
      for (let offset = 0; offset <= 3; offset++) {
        const scale = d % 5 === 0 ? 1000 : 1;
        const a = floats(d, offset, r, -scale, scale);
        const b = floats(d, (offset + 1) % 4, r, -scale, scale);
        let l2 = 0;
        let abs = 0;
        for (let i = 0; i < d; i++) {
          l2 += (a[i] - b[i]) ** 2;
          abs += Math.abs(a[i] * b[i]);
        }
        expectClose(k.l2sq(level, a, b), k.l2sq('scalar', a, b), l2, `${level} l2sq d=${d} offset=${offset}`);
        expectClose(k.dot(level, a, b), k.dot('scalar', a, b), abs, `${level} dot d=${d} offset=${offset}`);
        expect(k.l2sq(level, a, a)).toBe(0);
      }
    }
  });

  it.each(SIMD_LEVELS)('%s minmax is exact, extremes anywhere', (level) => {
    const r = rng(3);
    for (const d of DIMS) {
      for (let offset = 0; offset <= 3; offset++) {
        const x = floats(d, offset, r, -50, 50);
        x[d - 1 - (offset % d)] = 77; // near the tail
        x[Math.floor(r() * d)] = -88;
        const [lo, hi] = k.minmax(level, x);
        expect([lo, hi], `${level} d=${d}`).toEqual(k.minmax('scalar', x));
        let mn = x[0];
        let mx = x[0];
        for (const v of x) {
          mn = Math.min(mn, v);
          mx = Math.max(mx, v);
        }
        expect([lo, hi]).toEqual([mn, mx]);
      }
    }
  });

  it.each(SIMD_LEVELS)('%s dotTile16 for np = 1..9', (level) => {
    const r = rng(4);
    for (const dim of [1, 2, 3, 7, 8, 9, 16, 17, 33, 64, 100, 128, 129, 960]) {
      for (let np = 1; np <= 9; np++) {
        const xs = floats(np * dim, np % 4, r);
        const ct = floats(dim * 16, dim % 4, r);
        const want = new Float32Array(np * 16);
        const got = new Float32Array(np * 16 + 16).fill(123);
        k.dotTile16('scalar', xs, np, dim, ct, want);
        k.dotTile16(level, xs, np, dim, ct, got.subarray(0, np * 16));
        for (let p = 0; p < np; p++) {
          for (let j = 0; j < 16; j++) {
            let ref = 0;
            let abs = 0;
            for (let t = 0; t < dim; t++) {
              ref += xs[p * dim + t] * ct[t * 16 + j];
              abs += Math.abs(xs[p * dim + t] * ct[t * 16 + j]);
            }
            expectClose(want[p * 16 + j], ref, abs, `scalar dotTile16 dim=${dim} np=${np}`);
            expectClose(got[p * 16 + j], want[p * 16 + j], abs, `${level} dotTile16 dim=${dim} np=${np} p=${p} j=${j}`);
          }
        }
        expect(
          got.subarray(np * 16).every((v) => v === 123),
          'no write past the output',
        ).toBe(true);
      }
    }
  });

  it.each(SIMD_LEVELS)('%s dotTile16F16 (half-precision tiles) for np = 1..9', (level) => {
    const r = rng(9);
    for (const dim of [1, 2, 3, 7, 8, 9, 16, 17, 33, 64, 100, 128, 129, 960]) {
      for (let np = 1; np <= 9; np++) {
        const xs = floats(np * dim, np % 4, r);
        const ctBuf = new Uint16Array(dim * 16 + 3);
        k.floatToHalf(floats(dim * 16 + 3, 0, r, -2, 2), ctBuf);
        const ct = ctBuf.subarray(dim % 4 === 0 ? 0 : 1, (dim % 4 === 0 ? 0 : 1) + dim * 16);
        const want = new Float32Array(np * 16);
        const got = new Float32Array(np * 16 + 16).fill(123);
        k.dotTile16F16('scalar', xs, np, dim, ct, want);
        k.dotTile16F16(level, xs, np, dim, ct, got.subarray(0, np * 16));
        for (let i = 0; i < np * 16; i++) {
          const p = Math.floor(i / 16);
          let abs = 0;
          for (let t = 0; t < dim; t++) abs += Math.abs(xs[p * dim + t]) * 2;
          expectClose(got[i], want[i], abs, `${level} dotTile16F16 dim=${dim} np=${np} i=${i}`);
        }
        expect(
          got.subarray(np * 16).every((v) => v === 123),
          'no write past the output',
        ).toBe(true);
      }
    }
  });
});

describe('integer kernels equal scalar exactly', () => {
  /** The scalar quantizer, step by step in float32 arithmetic. */
  function quantizeTs(
    x: Float32Array,
    lo: number,
    invDelta: number,
    offsets: Float32Array,
    maxval: number,
    out: Uint8Array,
  ): number {
    const f = Math.fround;
    const l = f(lo);
    const inv = f(invDelta);
    let sum = 0;
    for (let i = 0; i < x.length; i++) {
      const v = f(f(f(x[i] - l) * inv) + offsets[i]);
      const q = Math.min(maxval, v > 0 ? Math.floor(v) : 0);
      out[i] = q;
      sum += q;
    }
    return sum;
  }

  it.each(LEVELS)('%s quantize for B = 1..8 equals scalar and a float32 TypeScript loop', (level) => {
    const r = rng(5);
    for (const d of DIMS) {
      const offset = d % 4;
      const x = floats(d, offset, r, -2, 3);
      const offsets = floats(d, 3 - offset, r, 0, 0.99999);
      const [lo, hi] = k.minmax('scalar', x);
      const range = hi > lo ? hi - lo : 1;
      for (let bits = 1; bits <= 8; bits++) {
        const maxval = 2 ** bits - 1;
        // Keep (x - lo) * invDelta <= maxval in float32 despite rounding.
        const invDelta = Math.fround((maxval / range) * (1 - 1e-6));
        const want = new Uint8Array(d);
        const got = bytes(d + 16, 1, () => 0xab);
        const sumWant = k.quantize('scalar', x, lo, invDelta, offsets, maxval, want);
        const sumGot = k.quantize(level, x, lo, invDelta, offsets, maxval, got.subarray(0, d));
        expect(sumGot, `${level} sum d=${d} B=${bits}`).toBe(sumWant);
        expect(Buffer.from(got.subarray(0, d)).equals(Buffer.from(want)), `${level} codes d=${d} B=${bits}`).toBe(true);
        expect(
          got.subarray(d).every((v) => v === 0xab),
          `${level} wrote past the end d=${d}`,
        ).toBe(true);
        if (level === 'scalar') {
          const ts = new Uint8Array(d);
          expect(quantizeTs(x, lo, invDelta, offsets, maxval, ts)).toBe(sumWant);
          expect(Buffer.from(ts).equals(Buffer.from(want)), `TS reference d=${d} B=${bits}`).toBe(true);
        }
        expect(want.every((v) => v <= maxval)).toBe(true);
      }
    }
  });

  it.each(LEVELS)('%s popcountAnd equals a TypeScript popcount', (level) => {
    const r = rng(6);
    for (const n of DIMS) {
      const nw = Math.max(1, Math.ceil(n / 8)); // words for an n*8-bit code
      const a = words(nw, n % 3, r);
      const b = words(nw, (n + 1) % 3, r);
      let want = 0;
      for (let i = 0; i < nw; i++) want += popcount64(a[i] & b[i]);
      expect(k.popcountAnd(level, a, b), `${level} words=${nw}`).toBe(want);
    }
  });

  it.each(LEVELS)('%s bitplaneIp equals a TypeScript bit-plane sum and the B-bit inner product', (level) => {
    const r = rng(7);
    for (const d of DIMS) {
      const nw = Math.ceil(d / 64);
      for (const bits of [1, 2, 3, 4, 5, 8]) {
        const planes = words(bits * nw, d % 3, r);
        const code = words(nw, (d + 2) % 3, r);
        let want = 0;
        for (let b = 0; b < bits; b++) {
          let c = 0;
          for (let w = 0; w < nw; w++) c += popcount64(planes[b * nw + w] & code[w]);
          want += c * 2 ** b;
        }
        expect(k.bitplaneIp(level, planes, bits, code), `${level} words=${nw} bits=${bits}`).toBe(want);
        if (nw <= 2 && level === 'scalar') {
          // Same thing coordinate by coordinate: sum of the B-bit query values where the code bit is 1.
          let ip = 0;
          for (let j = 0; j < nw * 64; j++) {
            const w = j >> 6;
            const bit = BigInt(j & 63);
            if (((code[w] >> bit) & 1n) === 0n) continue;
            let v = 0;
            for (let b = 0; b < bits; b++) v += Number((planes[b * nw + w] >> bit) & 1n) << b;
            ip += v;
          }
          expect(ip).toBe(want);
        }
      }
    }
  });

  function fastscanTs(codes: Uint8Array, luts: Uint8Array, npairs: number): Uint16Array {
    const out = new Uint16Array(32);
    for (let j = 0; j < 32; j++) {
      let s = 0;
      for (let p = 0; p < npairs; p++) {
        const c = codes[p * 32 + j];
        s += luts[p * 32 + (c & 15)] + luts[p * 32 + 16 + (c >> 4)];
      }
      out[j] = s;
    }
    return out;
  }

  it.each(LEVELS)('%s fastscanLuts for npairs 1..130 equals a TypeScript loop', (level) => {
    const r = rng(9);
    for (let npairs = 1; npairs <= 130; npairs++) {
      for (const pattern of ['random', 'max'] as const) {
        const qu = bytes(npairs * 8, npairs % 4, () => (pattern === 'max' ? 15 : Math.floor(r() * 16)));
        const got = bytes(npairs * 32 + 8, (npairs + 1) % 4, () => 0xab);
        k.fastscanLuts(level, qu, npairs, got.subarray(0, npairs * 32));
        const want = new Uint8Array(npairs * 32);
        for (let m = 0; m < 2 * npairs; m++)
          for (let v = 0; v < 16; v++) {
            let s = 0;
            for (let b = 0; b < 4; b++) if (v & (1 << b)) s += qu[4 * m + b]!;
            want[(m >> 1) * 32 + (m & 1) * 16 + v] = s;
          }
        expect(Array.from(got.subarray(0, npairs * 32)), `${level} npairs=${npairs} ${pattern}`).toEqual(
          Array.from(want),
        );
        expect(
          got.subarray(npairs * 32).every((v) => v === 0xab),
          `${level} wrote past the LUTs`,
        ).toBe(true);
      }
    }
  });

  it.each(LEVELS)('%s fastscan for npairs 1..130 equals a TypeScript loop', (level) => {
    const r = rng(8);
    const pairs = Array.from({ length: 130 }, (_, i) => i + 1).concat([240, 258]);
    for (const npairs of pairs) {
      for (const pattern of ['random', 'max'] as const) {
        const codes = bytes(npairs * 32, npairs % 4, () => Math.floor(r() * 256));
        const luts = bytes(npairs * 32, (npairs + 1) % 4, () => (pattern === 'max' ? 127 : Math.floor(r() * 128)));
        const got = new Uint16Array(40).fill(0xbeef);
        k.fastscan(level, codes, luts, npairs, got.subarray(0, 32));
        const want = fastscanTs(codes, luts, npairs);
        expect(Array.from(got.subarray(0, 32)), `${level} npairs=${npairs} ${pattern}`).toEqual(Array.from(want));
        expect(got.subarray(32).every((v) => v === 0xbeef)).toBe(true);
      }
    }
  });

  it.each(LEVELS)(
    '%s estimate (values and the mask of lower <= threshold) is bit-identical to the scalar level and matches a float32 TypeScript loop',
    (level) => {
      const r = rng(9);
      const roundoff = 2 ** -20;
      for (let n = 1; n <= 32; n++) {
        const factors = new Float32Array(4 * n).map((_, i) => (i % 4 === 2 ? Math.floor(r() * 128) : (r() - 0.3) * 50));
        // A NaN factor now and then: its vector must never be in the mask.
        if (n % 5 === 0) factors[4 * (n - 1) + 3] = NaN;
        const ip = new Uint16Array(n).map(() => Math.floor(r() * 4000));
        const params = new Float32Array([r() * 100, -r() * 3, r() * 0.5, (r() - 0.5) * 20, r() * 10, r() * 2]);
        const est = new Float32Array(n + 3).fill(-7);
        const lower = new Float32Array(n + 3).fill(-7);
        const se = new Float32Array(n);
        const sl = new Float32Array(n);
        k.estimate('scalar', factors, ip, params, se, sl, Infinity);
        // Thresholds at, between and around the lower bounds, so that every
        // bit position is tried both ways (and equality counts as passing).
        const finite = Array.from(sl)
          .filter(Number.isFinite)
          .sort((a, b) => a - b);
        // (float32 values: the kernel compares in float32.)
        const top = finite.at(-1)!;
        const thresholds = [
          -Infinity,
          Infinity,
          finite[0]!,
          finite[finite.length >> 1]!,
          top - Math.abs(top) * 1e-5 - 1e-5,
        ].map(Math.fround);
        for (const threshold of thresholds) {
          const mask = k.estimate(level, factors, ip, params, est.subarray(0, n), lower.subarray(0, n), threshold);
          expect(Array.from(est.subarray(0, n)), `${level} n=${n}`).toEqual(Array.from(se));
          expect(Array.from(lower.subarray(0, n))).toEqual(Array.from(sl));
          expect(Array.from(est.subarray(n))).toEqual([-7, -7, -7]);
          let want = 0;
          for (let j = 0; j < n; j++) if (sl[j]! <= threshold) want |= 1 << j;
          expect(mask >>> 0, `${level} n=${n} threshold ${threshold}`).toBe(want >>> 0);
          expect(k.estimate('scalar', factors, ip, params, se, sl, threshold) >>> 0).toBe(want >>> 0);
        }
        const f = Math.fround;
        const [qn, tl, td, sq, em, qm] = params as unknown as number[];
        for (let j = 0; j < n; j++) {
          const a = f(f(tl! * factors[4 * j + 2]!) + f(td! * ip[j]!));
          const v = f(f(factors[4 * j]! + qn!) + f(factors[4 * j + 1]! * f(a - sq!)));
          expect(est[j]).toBe(v);
          const bound = f(f(v - f(em! * factors[4 * j + 3]!)) + f(qm! * factors[4 * j + 1]!));
          expect(lower[j]).toBe(f(bound - f(roundoff * f(Math.abs(v) + qn!))));
        }
      }
    },
  );
});

describe('RABITQ_SIMD', () => {
  function runWith(value: string): { status: number | null; stdout: string; stderr: string } {
    const url = pathToFileURL(distIndex).href;
    const res = spawnSync(NODE, ['-e', `import(${JSON.stringify(url)}).then((m) => console.log(m.simdLevel()))`], {
      env: { ...process.env, RABITQ_SIMD: value },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: res.status, stdout: res.stdout.trim(), stderr: res.stderr };
  }

  it('needs the compiled package (npm run build:ts)', () => {
    expect(existsSync(distIndex), `${distIndex} is missing: run npm run build:ts`).toBe(true);
  });

  it('a bogus value fails the import with a clear RangeError', () => {
    const res = runWith('bogus');
    expect(res.status).not.toBe(0);
    expect(res.stderr).toContain("RangeError: RABITQ_SIMD must be one of scalar, avx2, avx512, neon; got 'bogus'");
  });

  it.each(ALL_LEVELS)('RABITQ_SIMD=%s is reported by simdLevel() when the CPU supports it', (level) => {
    const res = runWith(level);
    if (LEVELS.includes(level)) {
      expect(res.stderr).toBe('');
      expect(res.status).toBe(0);
      expect(res.stdout).toBe(level);
    } else {
      expect(res.status).not.toBe(0);
      expect(res.stderr).toMatch(/RangeError: RABITQ_SIMD=\w+ asks for a SIMD level this CPU does not support/);
    }
  });

  it('unset (or empty) means the detected level', () => {
    const res = runWith('');
    expect(res.status).toBe(0);
    expect(res.stdout).toBe(detected);
  });
});
