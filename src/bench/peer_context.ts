/** What every benchmark peer is given. */
import type { LoadedDataset } from './dataset.js';
import type { BenchMetric, Mode } from './types.js';

export interface PeerContext {
  dataset: LoadedDataset;
  k: number;
  /** the metric every peer searches in (cosine: normalized vectors) */
  metric: BenchMetric;
  runs: number;
  warmup: number;
  /** minimum duration of one timed run, in ms */
  minRunMs: number;
  threads: number;
  modes: Mode[];
  /** number of IVF clusters used by rabitq (IVF peers use the same) */
  clusters: number;
  nprobe: number[];
  efSearch: number[];
  /** rabitq's centroids (clusters * dim), shared with IVF peers */
  centroids: Float32Array | null;
  seed: number;
  hnswM: number;
  faissMethods: string[];
  /** scratch directory, removed after the run */
  tmpDir: string;
  log: (line: string) => void;
}

/** Thrown by a peer that cannot run here (missing dependency): reported as skipped. */
export class PeerUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PeerUnavailable';
  }
}
