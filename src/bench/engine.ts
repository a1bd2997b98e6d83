/** The real library behind the Engine interface used by the runner. */
import { IvfRabitqIndex, simdLevel } from '../index.js';
import { fileReaders } from './readers.js';
import type { Engine } from './types.js';

/** The rabitq library as an Engine (importing this module loads the native addon). */
export const rabitqEngine: Engine = {
  simdLevel: () => simdLevel(),
  buildIndex: (vectors, opts) => IvfRabitqIndex.build(vectors, opts),
  loadIndex: (path) => IvfRabitqIndex.load(path, { idType: 'u32' }),
  saveIndex: (index, path) => (index as unknown as IvfRabitqIndex).save(path),
  ...fileReaders,
};

/** Kept async so callers can treat loading failures uniformly. */
export async function loadEngine(): Promise<Engine> {
  return rabitqEngine;
}
