/**
 * Shapes shared by the ANN benchmark runner, its peers and the CLI.
 *
 * The engine interfaces are structural subsets of the public `rabitq` API so
 * tests can drive the runner with a small in-process double.
 */

export interface FloatVectors {
  dim: number;
  count: number;
  data: Float32Array;
}

export interface IntVectors {
  dim: number;
  count: number;
  data: Int32Array;
}

export interface SearchStatsLike {
  queries: number;
  clustersProbed: number;
  codesScanned: number;
  reranked: number;
  /** multi-bit estimates computed (indexes with bits > 1) */
  exEstimated?: number;
}

export interface BuildProgress {
  phase: 'train' | 'assign' | 'encode';
  done: number;
  total: number;
}

/** The metric of a benchmark: the index, the peers and the ground truth all use it. */
export type BenchMetric = 'l2' | 'cosine' | 'ip';

export interface BuildOptionsLike {
  dim: number;
  numClusters?: number;
  metric?: BenchMetric;
  seed?: number;
  threads?: number;
  /** bits per dimension of the codes (1..9; the library's default when absent) */
  bits?: number;
  /** keep the raw vectors for exact re-ranking (the library's default: true) */
  storeVectors?: boolean;
  onProgress?: (p: BuildProgress) => void;
}

export interface SearchResultLike {
  ids: Int32Array;
  distances: Float32Array;
  stats?: SearchStatsLike;
}

export interface IndexLike {
  readonly dim: number;
  /** the index's metric (absent in test doubles: l2) */
  readonly metric?: BenchMetric;
  readonly size: number;
  readonly numClusters: number;
  /** bits per dimension of the codes (absent: a 1-bit engine) */
  readonly bits?: number;
  search(query: Float32Array, opts: { k: number; nprobe: number; stats?: boolean }): SearchResultLike;
  searchBatch(
    queries: Float32Array,
    opts: { k: number; nprobe: number; threads?: number; stats?: boolean },
  ): Promise<SearchResultLike>;
  memoryUsage(): { total: number };
  buildStats(): { trainMs: number; assignMs: number; encodeMs: number };
  centroids(): Float32Array;
}

export interface VectorReaders {
  readFvecs(path: string): Promise<FloatVectors>;
  /** bvecs converted to float32 */
  readBvecs(path: string): Promise<FloatVectors>;
  readIvecs(path: string): Promise<IntVectors>;
}

/** What the runner needs from the library (see loadEngine() for the real one). */
export interface Engine extends VectorReaders {
  simdLevel(): string;
  buildIndex(vectors: Float32Array, opts: BuildOptionsLike): Promise<IndexLike>;
  /** Load a saved index (bench --index); optional for test engines. */
  loadIndex?(path: string): Promise<IndexLike>;
  /** Save an index built by buildIndex. */
  saveIndex?(index: IndexLike, path: string): Promise<void>;
}

export type Mode = 'single' | 'batch';
export type PeerName = 'faiss' | 'hnswlib' | 'js';
export const PEER_NAMES: readonly PeerName[] = ['faiss', 'hnswlib', 'js'];
export const MODES: readonly Mode[] = ['single', 'batch'];

/** One operating point of a method's sweep (one nprobe / efSearch value). */
export interface SweepPoint {
  param: string;
  value: number;
  recall1: number | null;
  recall10: number | null;
  recall100: number | null;
  /** median over the timed runs */
  qps: number;
  /** QPS of every timed run, in run order */
  qpsRuns: number[];
  /** single mode only (null for batch): median over runs of the per-run mean */
  meanLatencyUs: number | null;
  /** single mode only (null for batch): median over runs of the per-run p99 */
  p99LatencyUs: number | null;
  /** per query, from a separate untimed pass with stats enabled (rabitq only) */
  clustersProbedPerQuery: number | null;
  codesScannedPerQuery: number | null;
  rerankedPerQuery: number | null;
  /** multi-bit estimates per query (rabitq indexes with bits > 1) */
  exEstimatedPerQuery?: number | null;
  error?: string;
}

export interface BuildBreakdown {
  trainMs: number;
  assignMs: number;
  encodeMs: number;
  /** wall-clock time of the whole build() call */
  totalMs: number;
}

export type MethodStatus = 'ok' | 'failed';

export interface MethodResult {
  /** stable id, e.g. "rabitq", "faiss-ivfpq", "hnswlib", "js-ivfflat" */
  method: string;
  /** display label, e.g. "rabitq (batch, 2 threads)" */
  label: string;
  peer: 'rabitq' | PeerName;
  mode: Mode;
  threads: number;
  status: MethodStatus;
  error?: string;
  buildSeconds: number | null;
  build?: BuildBreakdown;
  bytesPerVector: number | null;
  memory?: Record<string, number>;
  notes?: string;
  points: SweepPoint[];
}

export interface PeerStatus {
  peer: PeerName;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  version?: string;
}

export interface SummaryRow {
  method: string;
  label: string;
  status: MethodStatus;
  qpsAt090: number | null;
  qpsAt095: number | null;
  qpsAt099: number | null;
  maxRecall10: number | null;
  buildSeconds: number | null;
  bytesPerVector: number | null;
  error?: string;
}

export interface MachineInfo {
  cpuModel: string;
  logicalCpus: number;
  cpusAllowedList: string;
  cpusAllowed: number;
  simdLevel: string;
  node: string;
  platform: string;
  arch: string;
  totalMemoryBytes: number;
  hostname: string;
}

export interface DatasetInfo {
  name: string;
  basePath: string;
  queryPath: string;
  groundTruthPath: string;
  dim: number;
  baseCount: number;
  queryCount: number;
  queryCountInFile: number;
  groundTruthRows: number;
  groundTruthColumns: number;
}

export interface BenchConfig {
  /** absent in reports written before --metric existed: l2 */
  metric?: BenchMetric;
  clusters: number | null;
  nprobe: number[];
  efSearch: number[];
  k: number;
  threads: number;
  runs: number;
  warmup: number;
  minRunMs: number;
  modes: Mode[];
  compare: PeerName[];
  seed: number;
}

export interface BenchReport {
  schema: 'rabitq-bench/1';
  name: string;
  date: string;
  commit: string;
  commandLine: string[];
  machine: MachineInfo;
  dataset: DatasetInfo;
  config: BenchConfig;
  methods: MethodResult[];
  peers: PeerStatus[];
  summary: SummaryRow[];
  warnings: string[];
  /** process.resourceUsage().maxRSS in bytes, after rabitq only / at the end */
  peakRssBytesRabitq: number;
  peakRssBytes: number;
  durationSeconds: number;
}
