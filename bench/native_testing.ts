/**
 * The test-only addon (rabitq_testing, native/binding/testing/): the SIMD
 * kernels one by one at a given level, for the kernel tests and
 * bench/kernels.ts. The library never loads it and prebuilds do not carry
 * it: it is built by `node-gyp rebuild` (npm run build) as
 * build/Release/rabitq_testing.testnode (not *.node, so that node-gyp-build
 * and prebuildify keep finding the library addon), or by cmake-js next to
 * rabitq.node. RABITQ_TESTING_ADDON=<file> overrides the path.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SimdLevelName } from '../src/native.js';

export interface NativeKernels {
  l2sq(level: SimdLevelName, a: Float32Array, b: Float32Array): number;
  dot(level: SimdLevelName, a: Float32Array, b: Float32Array): number;
  minmax(level: SimdLevelName, x: Float32Array): [number, number];
  quantize(
    level: SimdLevelName,
    x: Float32Array,
    lo: number,
    invDelta: number,
    offsets: Float32Array,
    maxval: number,
    out: Uint8Array,
  ): number;
  popcountAnd(level: SimdLevelName, a: BigUint64Array, b: BigUint64Array): number;
  bitplaneIp(level: SimdLevelName, planes: BigUint64Array, bits: number, code: BigUint64Array): number;
  fastscan(level: SimdLevelName, codes: Uint8Array, luts: Uint8Array, npairs: number, out: Uint16Array): void;
  /** FastScan LUTs of a quantized query (values <= 15): qu npairs*8 bytes, luts npairs*32. */
  fastscanLuts(level: SimdLevelName, qu: Uint8Array, npairs: number, luts: Uint8Array): void;
  dotTile16(level: SimdLevelName, xs: Float32Array, np: number, dim: number, ct: Float32Array, out: Float32Array): void;
  dotTile16F16(
    level: SimdLevelName,
    xs: Float32Array,
    np: number,
    dim: number,
    ct: Uint16Array,
    out: Float32Array,
  ): void;
  floatToHalf(input: Float32Array, out: Uint16Array): void;
  /** params: qnorm2, twoLo, twoDelta, sumq, errMul, quantMul; returns the mask of lower <= threshold */
  estimate(
    level: SimdLevelName,
    factors: Float32Array,
    ip: Uint16Array,
    params: Float32Array,
    est: Float32Array,
    lower: Float32Array,
    threshold: number,
  ): number;
}

export interface NativeTesting {
  kernels: NativeKernels;
}

const FILE = 'rabitq_testing.testnode';

/** Where the test addon is looked for, in order. */
export function testingAddonCandidates(): string[] {
  const here = fileURLToPath(import.meta.url);
  // bench/native_testing.ts is one level below the package root, dist/bench/native_testing.js two.
  const root = path.resolve(path.dirname(here), '..', here.includes(`${path.sep}dist${path.sep}`) ? '..' : '.');
  const env = process.env.RABITQ_TESTING_ADDON;
  return [
    ...(env ? [path.resolve(env)] : []),
    path.join(root, 'build', 'Release', FILE),
    path.join(root, 'build', 'Debug', FILE),
    path.join(root, 'build-cmake', 'Release', FILE),
  ];
}

let loaded: NativeTesting | undefined;

/** Loads the test addon once per thread; throws with the paths tried when it was not built. */
export function loadTestingAddon(): NativeTesting {
  if (loaded) return loaded;
  const tried = testingAddonCandidates();
  const file = tried.find((f) => existsSync(f));
  if (file === undefined) {
    throw new Error(
      `the test addon ${FILE} was not found (build it with npm run build or npx node-gyp rebuild); tried ${tried.join(', ')}`,
    );
  }
  // Not *.node, so require() would not take it: load it as Node loads addons.
  const mod = { exports: {} as NativeTesting };
  process.dlopen(mod, file);
  loaded = mod.exports;
  return loaded;
}
