/** The real library behind the Engine interface used by the runner. */
import { readBvecs, readFvecs, readIvecs } from '../../src/io.js';
import type { Engine, IndexLike, VectorReaders } from './types.js';

/** Readers of the library's src/io.ts (no native code needed). */
export const fileReaders: VectorReaders = {
  readFvecs: (p) => readFvecs(p),
  readBvecs: (p) => readBvecs(p, { asFloat32: true }),
  readIvecs: (p) => readIvecs(p),
};

/** Loads the rabitq library (native addon included); throws if it cannot be loaded. */
export async function loadEngine(): Promise<Engine> {
  // The specifier is a variable so this file type-checks before src/index.ts exists.
  const spec = '../../src/index.js';
  const lib = (await import(spec)) as {
    simdLevel(): string;
    IvfRabitqIndex: { build(v: Float32Array, o: object): Promise<IndexLike> };
    recallAtK: Engine['recallAtK'];
  };
  return {
    simdLevel: () => lib.simdLevel(),
    buildIndex: (vectors, opts) => lib.IvfRabitqIndex.build(vectors, opts),
    recallAtK: (ids, gt, k, stride) => lib.recallAtK(ids, gt, k, stride),
    ...fileReaders,
  };
}
