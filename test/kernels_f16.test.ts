import { describe, it, expect } from 'vitest';
import { native, type SimdLevelName } from '../src/native.js';
import { loadTestingAddon } from '../bench/native_testing.js';

const kernels = loadTestingAddon().kernels;

function levels(): SimdLevelName[] {
  const all: SimdLevelName[] = ['scalar', 'avx2', 'avx512'];
  return all.slice(0, all.indexOf(native.detectedLevel()) + 1);
}

/** Reference binary16 decoding, written from the format definition. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe('half-precision centroid tiles', () => {
  it('float_to_half rounds to the nearest half (ties to even), incl. subnormals and overflow', () => {
    const xs = Float32Array.from([
      0,
      -0,
      1,
      -2.5,
      65504,
      65520,
      1e6,
      -1e6,
      6.1e-5,
      5.96e-8,
      2.98e-8,
      1e-9,
      0.1,
      1 / 3,
      2049,
      2051,
      Infinity,
      NaN,
    ]);
    const out = new Uint16Array(xs.length);
    kernels.floatToHalf(xs, out);
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!;
      const got = halfToNumber(out[i]!);
      if (Number.isNaN(x)) {
        expect(Number.isNaN(got)).toBe(true);
        continue;
      }
      if (Math.abs(x) >= 65520) {
        expect(got).toBe(Math.sign(x) * Infinity);
        continue;
      }
      // No other half is closer to x than the one chosen.
      const up = halfToNumber(out[i]! + 1),
        down = halfToNumber(Math.max(0, out[i]! - 1) | (out[i]! & 0x8000));
      expect(Math.abs(got - x)).toBeLessThanOrEqual(Math.abs(up - x));
      if ((out[i]! & 0x7fff) > 0) expect(Math.abs(got - x)).toBeLessThanOrEqual(Math.abs(down - x));
    }
    expect(halfToNumber(out[14]!)).toBe(2048); // 2049 ties to even
    expect(halfToNumber(out[15]!)).toBe(2052); // 2051 ties to even
  });

  it('dot_tile16_f16 equals the scalar level and the decoded dot products at every level', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    for (const dim of [1, 3, 16, 17, 128, 960]) {
      for (const np of [1, 3, 4, 5, 9]) {
        const xs = Float32Array.from({ length: np * dim }, rnd);
        const ct = new Uint16Array(dim * 16);
        kernels.floatToHalf(Float32Array.from({ length: dim * 16 }, rnd), ct);
        const want = new Float32Array(np * 16);
        kernels.dotTile16F16('scalar', xs, np, dim, ct, want);
        for (let p = 0; p < np; p++)
          for (let j = 0; j < 16; j++) {
            let s = 0;
            for (let t = 0; t < dim; t++) s += xs[p * dim + t]! * halfToNumber(ct[t * 16 + j]!);
            expect(Math.abs(want[p * 16 + j]! - s)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(s)));
          }
        for (const level of levels()) {
          const got = new Float32Array(np * 16);
          kernels.dotTile16F16(level, xs, np, dim, ct, got);
          for (let i = 0; i < got.length; i++)
            expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want[i]!)));
        }
      }
    }
  });
});
