/** Vector file readers of the library's src/io.ts (pure TypeScript, no native addon). */
import { readBvecs, readFvecs, readIvecs } from '../io.js';
import type { VectorReaders } from './types.js';

export const fileReaders: VectorReaders = {
  readFvecs: (p) => readFvecs(p),
  readBvecs: (p) => readBvecs(p, { asFloat32: true }),
  readIvecs: (p) => readIvecs(p),
};
