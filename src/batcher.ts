/**
 * Micro-batching of single-query searches.
 *
 * Many concurrent callers each ask for one query; the batcher gathers them
 * and runs them together through `index.searchBatch` on the native pool, so
 * the JS thread never blocks on a search and the pool works on full batches.
 *
 * Policy:
 * - Queries are grouped by their (k, nprobe) pair: a batch only ever holds
 *   queries with the same k and the same nprobe (nprobe clamped to the number
 *   of clusters, as the index does). Each group has its own FIFO queue.
 * - A group is ready when it holds maxBatchSize queries, or maxDelayMs after
 *   its oldest query arrived, whichever comes first. Ready groups are served
 *   oldest-first; at most maxInFlight batches run at once, so a busy pool
 *   makes the queue grow instead of the number of running batches.
 * - At most `capacity` queries wait (all groups together); past that a search
 *   rejects at once with QueueFullError. Memory stays bounded by
 *   capacity + maxInFlight * maxBatchSize query copies.
 * - With timeoutMs, a query still waiting timeoutMs after it was submitted
 *   rejects with TimeoutError and is never run. A query whose batch has
 *   started runs to completion.
 * - Each query is validated when submitted (the checks of index.search,
 *   src/query.ts); a bad query rejects only its own Promise.
 *
 * Metrics: prom-client metrics in a Registry of the batcher's own (or the
 * one given in options.registry, e.g. a server's), so several batchers or
 * servers in one process never share one. prom-client is loaded when the
 * first batcher is created, not when the library is imported.
 */
import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';
import { RabitqError, assertIntInRange, describeValue } from './errors.js';
import { checkKAndNprobe, checkQueries, type IdArray } from './query.js';

/** The waiting queue is full; retry later. */
export class QueueFullError extends RabitqError {
  readonly capacity: number;
  constructor(capacity: number) {
    super('EQUEUEFULL', `the search queue is full (capacity ${capacity} queries); retry later`);
    this.capacity = capacity;
  }
}

/** A query waited longer than timeoutMs before its batch started; it was not run. */
export class TimeoutError extends RabitqError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number, waitedMs: number) {
    super(
      'ETIMEDOUT',
      `the query waited ${waitedMs.toFixed(1)} ms in the queue, more than timeoutMs (${timeoutMs}); it was not run`,
    );
    this.timeoutMs = timeoutMs;
  }
}

/** search() was called after close(). */
export class BatcherClosedError extends RabitqError {
  constructor() {
    super('ECLOSED', 'the batcher is closed: it accepts no new searches');
  }
}

export interface BatcherOptions {
  /** Largest batch handed to searchBatch (default 64). */
  maxBatchSize?: number;
  /** Longest time the oldest query of a group waits for the batch to fill, in ms (default 2). */
  maxDelayMs?: number;
  /** Most queries waiting at once, all groups together (default 1024). */
  capacity?: number;
  /** Reject queries that waited longer than this, in ms (default: no limit). */
  timeoutMs?: number;
  /**
   * Most batches running at once (default 1: each batch already uses the
   * whole pool, and the queue meanwhile fills the next batch).
   */
  maxInFlight?: number;
  /** Worker threads per batch, passed to searchBatch (default: the whole pool). */
  threads?: number;
  /** Registry for the batcher's metrics (default: a new one of its own). */
  registry?: Registry;
  /** Prefix of the metric names (default `rabitq_batcher_`). */
  metricsPrefix?: string;
}

export interface BatcherSearchOptions {
  k: number;
  nprobe: number;
}

export interface BatcherResult<Ids extends IdArray = Int32Array> {
  /** This query's k ids (a fresh array): Int32Array, or BigInt64Array for an index with 64-bit ids. */
  ids: Ids;
  /** This query's k squared distances (a fresh array). */
  distances: Float32Array;
}

export interface BatcherRejections {
  /** QueueFullError */
  queueFull: number;
  /** TimeoutError */
  timeout: number;
  /** TypeError / RangeError from validation */
  invalid: number;
  /** search() after close() */
  closed: number;
  /** searchBatch itself failed */
  failed: number;
}

export interface BatcherStats {
  /** Queries waiting now. */
  queued: number;
  /** Queries in batches running now. */
  running: number;
  /** Batches started so far. */
  batches: number;
  /** Queries answered so far. */
  completed: number;
  /** Batches by size: counts[i] counts sizes in (bounds[i-1], bounds[i]]; bounds are 1, 2, 4, ..., maxBatchSize. */
  batchSizes: { bounds: number[]; counts: number[] };
  /** Queue wait of recent queries (submit to batch start), in ms; 0 before any. */
  queueWaitMs: { p50: number; p99: number; samples: number };
  rejected: BatcherRejections;
}

export interface Batcher<Ids extends IdArray = Int32Array> {
  /** Queue one query; resolves with exactly its own result. Never throws synchronously. */
  search(query: Float32Array, options: BatcherSearchOptions): Promise<BatcherResult<Ids>>;
  /** Stop accepting, run everything queued, resolve when all of it settled. */
  close(): Promise<void>;
  /** Whether close() was called. */
  readonly closed: boolean;
  /** Queries waiting now (the same as stats().queued, without computing the rest). */
  readonly queued: number;
  /**
   * Whether one more query would be queued now. When not, counts a
   * queue-full rejection, as search() would: lets a server refuse a request
   * before reading its body.
   */
  admit(): boolean;
  stats(): BatcherStats;
  /** The prom-client registry holding the batcher's metrics. */
  readonly registry: Registry;
  /** The metrics in the Prometheus text exposition format (names start with options.metricsPrefix). */
  prometheus(): Promise<string>;
}

/** What the batcher needs from an index (an IvfRabitqIndex fits). */
export interface BatchableIndex<Ids extends IdArray = Int32Array> {
  readonly dim: number;
  readonly numClusters?: number;
  searchBatch(
    queries: Float32Array,
    options: { k: number; nprobe: number; threads?: number },
  ): Promise<{ ids: Ids; distances: Float32Array }>;
}

const WAIT_RING = 2048;

interface Pending<Ids extends IdArray> {
  query: Float32Array;
  enqueuedAt: number;
  resolve: (r: BatcherResult<Ids>) => void;
  reject: (e: unknown) => void;
}

interface Group<Ids extends IdArray> {
  key: string;
  k: number;
  nprobe: number;
  /** FIFO; items[head..] are waiting. */
  items: Pending<Ids>[];
  head: number;
  timer: ReturnType<typeof setTimeout> | null;
  /** maxDelayMs has passed since the oldest waiting query arrived. */
  due: boolean;
}

function now(): number {
  return performance.now();
}

function checkOption(name: string, v: unknown, min: number, max: number): void {
  if (v !== undefined) assertIntInRange(`options.${name}`, v, min, max);
}

function sizeBounds(maxBatchSize: number): number[] {
  const b: number[] = [];
  for (let s = 1; s < maxBatchSize; s *= 2) b.push(s);
  b.push(maxBatchSize);
  return b;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/** Registry text without prom-client's blank lines between metrics (one line per sample or comment). */
export function promText(text: string): string {
  return text.replace(/\n{2,}/g, '\n');
}

type PromClient = typeof import('prom-client');
let promClient: PromClient | null = null;
/** prom-client, loaded on first use (it is CommonJS: a synchronous require). */
function prom(): PromClient {
  return (promClient ??= createRequire(import.meta.url)('prom-client') as PromClient);
}

/**
 * Creates a batcher in front of `index`. See the module comment for the
 * batching, grouping, back-pressure and timeout policy.
 */
export function createBatcher<Ids extends IdArray = Int32Array>(
  index: BatchableIndex<Ids>,
  options: BatcherOptions = {},
): Batcher<Ids> {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`options must be an object, got ${describeValue(options)}`);
  }
  checkOption('maxBatchSize', options.maxBatchSize, 1, 1 << 16);
  if (
    options.maxDelayMs !== undefined &&
    (typeof options.maxDelayMs !== 'number' || !(options.maxDelayMs >= 0) || !Number.isFinite(options.maxDelayMs))
  ) {
    throw new RangeError(`options.maxDelayMs must be a finite number >= 0, got ${describeValue(options.maxDelayMs)}`);
  }
  checkOption('capacity', options.capacity, 1, 1 << 24);
  if (
    options.timeoutMs !== undefined &&
    (typeof options.timeoutMs !== 'number' || !(options.timeoutMs > 0) || !Number.isFinite(options.timeoutMs))
  ) {
    throw new RangeError(`options.timeoutMs must be a finite number > 0, got ${describeValue(options.timeoutMs)}`);
  }
  checkOption('maxInFlight', options.maxInFlight, 1, 1024);
  checkOption('threads', options.threads, 1, 1024);
  const prefix = options.metricsPrefix ?? 'rabitq_batcher_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new TypeError(
      `options.metricsPrefix must be a metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${describeValue(prefix)}`,
    );
  }

  const maxBatchSize = options.maxBatchSize ?? 64;
  const maxDelayMs = options.maxDelayMs ?? 2;
  const capacity = options.capacity ?? 1024;
  const timeoutMs = options.timeoutMs;
  const maxInFlight = options.maxInFlight ?? 1;
  const threads = options.threads;
  const dim = index.dim;
  const numClusters = index.numClusters;

  const groups = new Map<string, Group<Ids>>();
  let queued = 0;
  let running = 0;
  let inFlight = 0;
  let closing = false;
  let closePromise: Promise<void> | null = null;
  let onIdle: (() => void) | null = null;
  let timeoutTimer: ReturnType<typeof setTimeout> | null = null;
  let timeoutTimerAt = Infinity;

  // stats
  const bounds = sizeBounds(maxBatchSize);
  const sizeCounts = new Array<number>(bounds.length).fill(0);
  let batches = 0;
  let completed = 0;
  const waits = new Float64Array(WAIT_RING);
  let waitCount = 0;
  let waitSumMs = 0;
  const rejected: BatcherRejections = { queueFull: 0, timeout: 0, invalid: 0, closed: 0, failed: 0 };

  // Metrics: gauges and counters read the state above when scraped; the
  // histogram and the summary observe each batch / query.
  const { Counter, Gauge, Histogram, Registry: PromRegistry, Summary } = prom();
  const registry = options.registry ?? new PromRegistry();
  const registers = [registry];
  new Gauge({
    name: `${prefix}queue_depth`,
    help: 'Queries waiting for a batch.',
    registers,
    collect() {
      this.set(queued);
    },
  });
  new Gauge({
    name: `${prefix}running_queries`,
    help: 'Queries in batches running now.',
    registers,
    collect() {
      this.set(running);
    },
  });
  new Counter({
    name: `${prefix}queries_completed_total`,
    help: 'Queries answered.',
    registers,
    collect() {
      this.reset();
      this.inc(completed);
    },
  });
  const batchSizeMetric = new Histogram({
    name: `${prefix}batch_size`,
    help: 'Queries per batch run.',
    buckets: bounds,
    registers,
  });
  // Quantiles of the last WAIT_RING waits, computed when scraped (a
  // prom-client observe() per query costs microseconds on the event loop);
  // _sum and _count cover every query since the start, as counters should.
  const queueWaitName = `${prefix}queue_wait_seconds`;
  const queueWaitMetric = new Summary({
    name: queueWaitName,
    help: `Queue wait of the last ${WAIT_RING} queries started (quantiles); sum and count since the start.`,
    percentiles: [0.5, 0.99],
    registers,
    collect() {
      this.reset();
      const n = Math.min(waitCount, WAIT_RING);
      for (let i = 0; i < n; i++) this.observe(waits[i]! / 1000);
    },
  });
  const summaryGet = queueWaitMetric.get.bind(queueWaitMetric);
  queueWaitMetric.get = async () => {
    const m = await summaryGet();
    for (const v of m.values) {
      if (v.metricName === `${queueWaitName}_sum`) v.value = waitSumMs / 1000;
      else if (v.metricName === `${queueWaitName}_count`) v.value = waitCount;
    }
    return m;
  };
  const reasons: [keyof BatcherRejections, string][] = [
    ['queueFull', 'queue_full'],
    ['timeout', 'timeout'],
    ['invalid', 'invalid'],
    ['closed', 'closed'],
    ['failed', 'failed'],
  ];
  new Counter({
    name: `${prefix}rejections_total`,
    help: 'Queries rejected, by reason.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [key, reason] of reasons) this.inc({ reason }, rejected[key]);
    },
  });

  function recordWait(ms: number): void {
    waits[waitCount % WAIT_RING] = ms;
    waitCount++;
    waitSumMs += ms;
  }

  function waiting(g: Group<Ids>): number {
    return g.items.length - g.head;
  }

  function shift(g: Group<Ids>): Pending<Ids> {
    const p = g.items[g.head]!;
    g.items[g.head] = undefined as unknown as Pending<Ids>;
    g.head++;
    if (g.head === g.items.length) {
      g.items.length = 0;
      g.head = 0;
    } else if (g.head >= 1024 && g.head * 2 >= g.items.length) {
      g.items = g.items.slice(g.head);
      g.head = 0;
    }
    queued--;
    return p;
  }

  function isReady(g: Group<Ids>): boolean {
    return waiting(g) > 0 && (closing || g.due || waiting(g) >= maxBatchSize);
  }

  function armDelay(g: Group<Ids>): void {
    if (g.timer !== null || waiting(g) === 0) return;
    g.due = false;
    const oldest = g.items[g.head]!.enqueuedAt;
    // always through a timer, even when the delay has already passed (the
    // process may have been descheduled): being due must lead to a pump()
    const delay = Math.max(0, oldest + maxDelayMs - now());
    g.timer = setTimeout(() => {
      g.timer = null;
      if (waiting(g) === 0) return;
      g.due = true;
      pump();
    }, delay);
  }

  function dropGroupIfEmpty(g: Group<Ids>): void {
    if (waiting(g) === 0) {
      if (g.timer !== null) clearTimeout(g.timer);
      g.timer = null;
      groups.delete(g.key);
    }
  }

  /** Rejects waiting queries older than timeoutMs; returns the next deadline. */
  function expire(t: number): number {
    if (timeoutMs === undefined) return Infinity;
    let next = Infinity;
    for (const g of [...groups.values()]) {
      while (waiting(g) > 0) {
        const head = g.items[g.head]!;
        const waited = t - head.enqueuedAt;
        if (waited < timeoutMs) {
          next = Math.min(next, head.enqueuedAt + timeoutMs);
          break;
        }
        shift(g);
        rejected.timeout++;
        head.reject(new TimeoutError(timeoutMs, waited));
      }
      dropGroupIfEmpty(g);
    }
    return next;
  }

  function armTimeout(deadline: number): void {
    if (timeoutMs === undefined || deadline === Infinity) return;
    if (timeoutTimer !== null && timeoutTimerAt <= deadline) return;
    if (timeoutTimer !== null) clearTimeout(timeoutTimer);
    timeoutTimerAt = deadline;
    timeoutTimer = setTimeout(
      () => {
        timeoutTimer = null;
        timeoutTimerAt = Infinity;
        armTimeout(expire(now()));
        pump();
        checkIdle();
      },
      Math.max(0, deadline - now()) + 0.5,
    );
    // pending work keeps the process alive through the delay timers, not this one
    timeoutTimer.unref?.();
  }

  function checkIdle(): void {
    if (closing && queued === 0 && inFlight === 0 && onIdle) {
      const f = onIdle;
      onIdle = null;
      if (timeoutTimer !== null) clearTimeout(timeoutTimer);
      timeoutTimer = null;
      f();
    }
  }

  function pickReady(): Group<Ids> | null {
    let best: Group<Ids> | null = null;
    for (const g of groups.values()) {
      if (!isReady(g)) continue;
      // full groups first, then the one whose oldest query waited longest
      if (best === null) {
        best = g;
        continue;
      }
      const gFull = waiting(g) >= maxBatchSize;
      const bFull = waiting(best) >= maxBatchSize;
      if (gFull !== bFull ? gFull : g.items[g.head]!.enqueuedAt < best.items[best.head]!.enqueuedAt) best = g;
    }
    return best;
  }

  function pump(): void {
    if (inFlight >= maxInFlight) return;
    const t = now();
    armTimeout(expire(t));
    while (inFlight < maxInFlight) {
      const g = pickReady();
      if (g === null) break;
      const n = Math.min(maxBatchSize, waiting(g));
      const batch: Pending<Ids>[] = new Array<Pending<Ids>>(n);
      for (let i = 0; i < n; i++) {
        const p = shift(g);
        recordWait(t - p.enqueuedAt);
        batch[i] = p;
      }
      // the rest of the group starts a fresh delay from its (new) oldest query
      if (g.timer !== null) clearTimeout(g.timer);
      g.timer = null;
      g.due = false;
      if (waiting(g) === 0) groups.delete(g.key);
      else armDelay(g);
      run(g.k, g.nprobe, batch);
    }
    checkIdle();
  }

  function run(k: number, nprobe: number, batch: Pending<Ids>[]): void {
    const n = batch.length;
    inFlight++;
    running += n;
    batches++;
    batchSizeMetric.observe(n);
    let b = 0;
    while (bounds[b]! < n) b++;
    sizeCounts[b]!++;
    const queries = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) queries.set(batch[i]!.query, i * dim);
    const opts = threads === undefined ? { k, nprobe } : { k, nprobe, threads };
    let promise: Promise<{ ids: Ids; distances: Float32Array }>;
    try {
      promise = index.searchBatch(queries, opts);
    } catch (err) {
      promise = Promise.reject(err);
    }
    const done = () => {
      inFlight--;
      running -= n;
    };
    promise
      .then(
        (res) => {
          done();
          // The next batch starts in .finally, after these callers' answers
          // (HTTP responses in a server). Starting it first, so the pool works
          // while the event loop writes them, measured worse: under 4x
          // overload on one core the goodput fell from ~2,340 to ~1,880
          // answers/s (four alternating runs, bench/results/batch-engine.md).
          for (let i = 0; i < n; i++) {
            batch[i]!.resolve({
              ids: res.ids.slice(i * k, (i + 1) * k) as Ids,
              distances: res.distances.slice(i * k, (i + 1) * k),
            });
          }
          completed += n;
        },
        (err: unknown) => {
          done();
          rejected.failed += n;
          for (const p of batch) p.reject(err);
        },
      )
      .finally(() => {
        pump();
        checkIdle();
      });
  }

  function validate(query: unknown, options: unknown): { k: number; nprobe: number; copy: Float32Array } {
    const { k, nprobe } = checkKAndNprobe(options, numClusters);
    checkQueries('query', query, dim, true);
    return { k, nprobe, copy: (query as Float32Array).slice() };
  }

  function search(query: Float32Array, options: BatcherSearchOptions): Promise<BatcherResult<Ids>> {
    if (closing) {
      rejected.closed++;
      return Promise.reject(new BatcherClosedError());
    }
    let v: { k: number; nprobe: number; copy: Float32Array };
    try {
      v = validate(query, options);
    } catch (err) {
      rejected.invalid++;
      return Promise.reject(err);
    }
    if (queued >= capacity) {
      // make room from queries that are past their timeout before refusing
      armTimeout(expire(now()));
      if (queued >= capacity) {
        rejected.queueFull++;
        return Promise.reject(new QueueFullError(capacity));
      }
    }
    const key = `${v.k}/${v.nprobe}`;
    let g = groups.get(key);
    if (g === undefined) {
      g = { key, k: v.k, nprobe: v.nprobe, items: [], head: 0, timer: null, due: false };
      groups.set(key, g);
    }
    const group = g;
    return new Promise<BatcherResult<Ids>>((resolve, reject) => {
      const t = now();
      group.items.push({ query: v.copy, enqueuedAt: t, resolve, reject });
      queued++;
      if (timeoutMs !== undefined) armTimeout(t + timeoutMs);
      if (waiting(group) >= maxBatchSize) pump();
      else if (group.timer === null && !group.due) {
        if (maxDelayMs === 0) {
          group.due = true;
          // let the other queries submitted in this same tick join
          group.timer = setTimeout(() => {
            group.timer = null;
            pump();
          }, 0);
        } else armDelay(group);
      }
    });
  }

  function close(): Promise<void> {
    if (closePromise) return closePromise;
    closing = true;
    closePromise = new Promise<void>((resolve) => {
      onIdle = resolve;
    });
    for (const g of groups.values()) {
      if (g.timer !== null) clearTimeout(g.timer);
      g.timer = null;
    }
    pump();
    checkIdle();
    return closePromise;
  }

  function admit(): boolean {
    if (queued < capacity) return true;
    armTimeout(expire(now()));
    if (queued < capacity) return true;
    rejected.queueFull++;
    return false;
  }

  function stats(): BatcherStats {
    const n = Math.min(waitCount, WAIT_RING);
    const sorted = waits.slice(0, n).sort();
    return {
      queued,
      running,
      batches,
      completed,
      batchSizes: { bounds: [...bounds], counts: [...sizeCounts] },
      queueWaitMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), samples: n },
      rejected: { ...rejected },
    };
  }

  async function prometheus(): Promise<string> {
    return promText(await registry.metrics());
  }

  return {
    search,
    close,
    get closed() {
      return closing;
    },
    get queued() {
      return queued;
    },
    stats,
    admit,
    registry,
    prometheus,
  };
}
