/**
 * An HTTP search server (fastify) in front of an index, with a batcher
 * between the requests and the native pool.
 *
 *   POST /search         {vector, k?, nprobe?}    -> {ids, distances}
 *   POST /search/batch   {vectors, k?, nprobe?}   -> {ids: [[...]], distances: [[...]]}
 *   (either also takes application/octet-stream: little-endian float32, k and nprobe in the query string)
 *   GET  /healthz        200 once the index is ready, 503 before and while shutting down
 *   GET  /metrics        Prometheus text
 *
 * Bad input gets a 400 whose message names the field; a full queue gets
 * 503 with Retry-After; a query that waited past the timeout gets 504.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  BatcherClosedError,
  QueueFullError,
  TimeoutError,
  createBatcher,
  promText,
  type BatchableIndex,
  type Batcher,
  type BatcherOptions,
  type BatcherResult,
} from '../batcher.js';
import type { IdArray } from '../query.js';

/** What the server needs from an index (an IvfRabitqIndex fits, whatever its id type). */
export interface ServableIndex extends BatchableIndex<IdArray> {
  readonly size: number;
  readonly numClusters: number;
  /** One query on the calling thread (used when batching is off). */
  search?(
    query: Float32Array,
    options: { k: number; nprobe: number },
  ): { ids: ArrayLike<number | bigint>; distances: Float32Array };
  memoryUsage?(): { total: number };
}

export interface ServerOptions {
  /** The index, or a Promise of it: the server listens at once and answers 503 until it resolves. */
  index: ServableIndex | Promise<ServableIndex>;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Batcher settings (default maxBatchSize 64, maxDelayMs 2, capacity 1024, timeoutMs 1000). */
  maxBatchSize?: number;
  maxDelayMs?: number;
  capacity?: number;
  timeoutMs?: number;
  /** Largest k a request may ask for (default 1024). */
  maxK?: number;
  /** k when a request gives none (default 10). */
  defaultK?: number;
  /** nprobe when a request gives none (default min(16, numClusters)). */
  defaultNprobe?: number;
  /** Most vectors in one /search/batch request (default: the queue capacity). */
  maxBatchVectors?: number;
  /** Largest request body in bytes (default 16 MiB); larger ones get 413. */
  bodyLimit?: number;
  /** Seconds sent in Retry-After with a 503 (default 1). */
  retryAfterSeconds?: number;
  /** fastify's logger option (default false). */
  logger?: boolean;
  /**
   * Route single searches through the batcher (default true). false runs
   * each request's search on the event loop, one query per native call: the
   * baseline the load benchmark compares the batcher against.
   */
  batching?: boolean;
}

/** JSON has no 64-bit integers: ids above 2^53 are sent as decimal strings. */
function idsToJson(ids: ArrayLike<number | bigint>): (number | string)[] {
  return Array.from(ids, (v) =>
    typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -1n ? Number(v) : v.toString()) : v,
  );
}

export interface RabitqServer {
  /** The fastify instance (for inject() in tests, extra routes, ...). */
  readonly app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly port: number;
  /** Resolves once the index is loaded (rejects if loading failed). */
  readonly ready: Promise<void>;
  /** The batcher, once the index is loaded. */
  readonly batcher: Batcher<IdArray> | null;
  /** The server's own prom-client registry (what /metrics shows; the batcher's metrics included). */
  readonly registry: Registry;
  /** Stop accepting, let the requests in flight finish, drain the batcher. Idempotent. */
  close(): Promise<void>;
}

/** A 400 whose message names the field at fault. */
class BadRequest extends Error {
  readonly statusCode = 400;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const MAX_DIM = 65536;
const MAX_NPROBE = 1 << 20;

function positiveInt(name: string, raw: unknown, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const s = typeof raw === 'string' ? raw.trim() : '';
  const v = /^[0-9]{1,10}$/.test(s) ? Number(s) : NaN;
  if (!(v >= 1 && v <= max))
    throw new BadRequest(`${name} must be an integer in 1..${max}, got ${JSON.stringify(raw)}`);
  return v;
}

/** JSON numbers to float32, refusing values that are not finite as float32. */
function toFloat32(name: string, values: readonly number[], out: Float32Array, offset: number): void {
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    const f = Math.fround(x);
    if (f - f !== 0) throw new BadRequest(`${name}[${i}] must be a finite float32 number, got ${x}`);
    out[offset + i] = f;
  }
}

/** Little-endian float32 rows from a binary body. */
function fromBinary(name: string, body: Buffer, dim: number, single: boolean): { data: Float32Array; n: number } {
  const rowBytes = dim * 4;
  if (single ? body.length !== rowBytes : body.length === 0 || body.length % rowBytes !== 0) {
    throw new BadRequest(
      single
        ? `${name}: a binary body must be exactly ${rowBytes} bytes (one little-endian float32 vector of dimension ${dim}), got ${body.length}`
        : `${name}: a binary body must be a positive multiple of ${rowBytes} bytes (little-endian float32 vectors of dimension ${dim}), got ${body.length}`,
    );
  }
  const n = body.length / rowBytes;
  const data = new Float32Array(n * dim);
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  for (let i = 0; i < data.length; i++) {
    const x = view.getFloat32(i * 4, true);
    if (x - x !== 0) {
      const row = Math.floor(i / dim);
      throw new BadRequest(`${single ? name : `${name}[${row}]`}[${i - row * dim}] must be a finite number, got ${x}`);
    }
    data[i] = x;
  }
  return { data, n };
}

/**
 * Starts the server and resolves once it listens (the index may still be
 * loading: see `ready`).
 */
export async function startServer(options: ServerOptions): Promise<RabitqServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  const maxK = options.maxK ?? 1024;
  const capacity = options.capacity ?? 1024;
  const retryAfter = String(options.retryAfterSeconds ?? 1);
  const batcherOptions: BatcherOptions = {
    maxBatchSize: options.maxBatchSize ?? 64,
    maxDelayMs: options.maxDelayMs ?? 2,
    capacity,
    timeoutMs: options.timeoutMs ?? 1000,
  };
  const maxBatchVectors = Math.min(options.maxBatchVectors ?? capacity, capacity);
  const batching = options.batching ?? true;

  let index: ServableIndex | null = null;
  let batcher: Batcher<IdArray> | null = null;
  let loadError: Error | null = null;
  let draining = false;
  let defaultNprobe = options.defaultNprobe ?? 16;
  const defaultK = options.defaultK ?? 10;

  // One registry per server: two servers in one process keep their own metrics.
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({
    name: 'rabitq_http_requests_total',
    help: 'HTTP requests answered, by route and status.',
    labelNames: ['route', 'status'],
    registers,
  });
  const latency = new Histogram({
    name: 'rabitq_http_request_duration_seconds',
    help: 'HTTP request latency, by route.',
    labelNames: ['route'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  new Gauge({
    name: 'rabitq_index_ready',
    help: '1 once the index is loaded and the server is not shutting down.',
    registers,
    collect() {
      this.set(index && !draining ? 1 : 0);
    },
  });
  const indexGauge = (name: string, help: string, value: (idx: ServableIndex) => number | undefined) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = index ? value(index) : undefined;
        if (v === undefined) this.reset();
        else this.set(v);
      },
    });
  indexGauge('rabitq_index_vectors', 'Vectors in the index.', (idx) => idx.size);
  indexGauge('rabitq_index_dimension', 'Vector dimension of the index.', (idx) => idx.dim);
  indexGauge('rabitq_index_clusters', 'IVF clusters of the index.', (idx) => idx.numClusters);
  indexGauge('rabitq_index_memory_bytes', 'Bytes held by the index.', (idx) => idx.memoryUsage?.().total);
  function observe(route: string, status: number, seconds: number): void {
    requests.inc({ route, status: String(status) });
    latency.observe({ route }, seconds);
  }

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 16 << 20,
    // no silent coercion ("1" -> 1, null -> 0) and no silent dropping of unknown fields
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    return503OnClosing: true,
    // "vector[3] must be number" rather than "body/vector/3 must be number"
    schemaErrorFormatter: (errors, dataVar) => {
      const e = errors[0];
      if (!e) return new BadRequest(`${dataVar} is invalid`);
      const missing = e.keyword === 'required' ? (e.params as { missingProperty?: string }).missingProperty : undefined;
      if (missing !== undefined) return new BadRequest(`${missing} is required`);
      if (e.keyword === 'additionalProperties') {
        return new BadRequest(
          `unknown field ${JSON.stringify((e.params as { additionalProperty?: string }).additionalProperty)}`,
        );
      }
      const field = e.instancePath
        .slice(1)
        .split('/')
        .map((p, i) => (/^\d+$/.test(p) && i > 0 ? `[${p}]` : i > 0 ? `.${p}` : p))
        .join('');
      return new BadRequest(`${field === '' ? dataVar : field} ${e.message ?? 'is invalid'}`);
    },
  });

  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  // JSON.parse (own "__proto__" keys are harmless here: the schemas refuse unknown fields),
  // with a message naming the field for the NaN / Infinity that JSON cannot carry
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      const field = request.url.startsWith('/search/batch') ? 'vectors' : 'vector';
      const nonFinite = /(^|[^A-Za-z"])(-?Infinity|NaN)\b/.exec(body as string);
      const e = new BadRequest(
        nonFinite
          ? `${field} must contain only finite numbers (found ${nonFinite[2]}, which is not valid JSON)`
          : `the body is not valid JSON: ${(err as Error).message}`,
      );
      done(e, undefined);
    }
  });

  // while draining, close each connection after its response: a keep-alive
  // connection left open would hold app.close() until it times out
  app.addHook('onSend', async (_request, reply, payload) => {
    if (draining) void reply.header('connection', 'close');
    return payload;
  });

  // Shed load before the body is read and parsed: under overload most
  // requests are turned away, and a cheap 503 leaves the event loop for the
  // ones that were accepted.
  app.addHook('onRequest', (request, reply, done) => {
    if (batching && batcher && !draining && request.url.startsWith('/search') && !batcher.admit()) {
      const err = new QueueFullError(capacity);
      void reply
        .status(503)
        .header('retry-after', retryAfter)
        .send({ statusCode: 503, error: 'Service Unavailable', code: err.code, message: err.message });
      return;
    }
    done();
  });

  app.addHook('onResponse', async (request, reply) => {
    observe(request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, _request, reply) => {
    let status =
      typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (err instanceof QueueFullError || err instanceof BatcherClosedError) {
      status = 503;
      void reply.header('retry-after', retryAfter);
    } else if (err instanceof TimeoutError) {
      status = 504;
    }
    if (status >= 500 && status !== 503 && status !== 504) app.log.error(err);
    const code = err.code ?? (status === 400 ? 'EBADREQUEST' : undefined);
    void reply.status(status).send({
      statusCode: status,
      error:
        status === 400
          ? 'Bad Request'
          : status === 503
            ? 'Service Unavailable'
            : status === 504
              ? 'Gateway Timeout'
              : 'Error',
      ...(code ? { code } : {}),
      message: status >= 500 && status !== 503 && status !== 504 ? 'internal error' : err.message,
    });
  });

  function need(reply: FastifyReply): { idx: ServableIndex; b: Batcher<IdArray> } | null {
    if (index && batcher && !draining) return { idx: index, b: batcher };
    void reply
      .status(503)
      .header('retry-after', retryAfter)
      .send({
        statusCode: 503,
        error: 'Service Unavailable',
        message: draining
          ? 'the server is shutting down'
          : loadError
            ? `the index failed to load: ${loadError.message}`
            : 'the index is still loading',
      });
    return null;
  }

  interface SearchParams {
    k: number;
    nprobe: number;
  }

  function params(
    request: FastifyRequest,
    body: { k?: number; nprobe?: number } | null,
    idx: ServableIndex,
  ): SearchParams {
    const q = (request.query ?? {}) as Record<string, unknown>;
    const k = body?.k ?? positiveInt('k', q.k, maxK) ?? defaultK;
    const nprobe =
      body?.nprobe ?? positiveInt('nprobe', q.nprobe, MAX_NPROBE) ?? Math.min(defaultNprobe, idx.numClusters);
    if (k > maxK) throw new BadRequest(`k must be an integer in 1..${maxK}, got ${k}`);
    return { k, nprobe };
  }

  const common = {
    k: { type: 'integer', minimum: 1, maximum: maxK },
    nprobe: { type: 'integer', minimum: 1, maximum: MAX_NPROBE },
  };
  const vectorSchema = { type: 'array', minItems: 1, maxItems: MAX_DIM, items: { type: 'number' } };
  const searchSchema = {
    body: {
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['vector'],
            additionalProperties: false,
            properties: { vector: vectorSchema, ...common },
          },
        },
      },
    },
  };
  const batchSchema = {
    body: {
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['vectors'],
            additionalProperties: false,
            properties: {
              vectors: { type: 'array', minItems: 1, maxItems: maxBatchVectors, items: vectorSchema },
              ...common,
            },
          },
        },
      },
    },
  };

  /** A body that is neither JSON nor binary (none at all, e.g.) never reaches the schemas. */
  function checkBody(request: FastifyRequest, field: string): void {
    const b = request.body;
    if (b === undefined || b === null || typeof b !== 'object') {
      throw new BadRequest(
        `${field} is required: send a JSON body or little-endian float32 as application/octet-stream`,
      );
    }
  }

  interface JsonSearch {
    vector: number[];
    k?: number;
    nprobe?: number;
  }
  interface JsonBatch {
    vectors: number[][];
    k?: number;
    nprobe?: number;
  }

  app.post('/search', { schema: searchSchema }, async (request, reply) => {
    const ready = need(reply);
    if (!ready) return reply;
    const { idx, b } = ready;
    checkBody(request, 'vector');
    let query: Float32Array;
    let p: SearchParams;
    if (Buffer.isBuffer(request.body)) {
      p = params(request, null, idx);
      query = fromBinary('body', request.body, idx.dim, true).data;
    } else {
      const body = request.body as JsonSearch;
      p = params(request, body, idx);
      if (body.vector.length !== idx.dim) {
        throw new BadRequest(`vector must have ${idx.dim} elements (the index dimension), got ${body.vector.length}`);
      }
      query = new Float32Array(idx.dim);
      toFloat32('vector', body.vector, query, 0);
    }
    const r = batching || !idx.search ? await b.search(query, p) : idx.search(query, p);
    return { ids: idsToJson(r.ids), distances: Array.from(r.distances) };
  });

  app.post('/search/batch', { schema: batchSchema }, async (request, reply) => {
    const ready = need(reply);
    if (!ready) return reply;
    const { idx, b } = ready;
    checkBody(request, 'vectors');
    const dim = idx.dim;
    let data: Float32Array;
    let n: number;
    let p: SearchParams;
    if (Buffer.isBuffer(request.body)) {
      p = params(request, null, idx);
      ({ data, n } = fromBinary('body', request.body, dim, false));
      if (n > maxBatchVectors)
        throw new BadRequest(`body holds ${n} vectors, more than the limit of ${maxBatchVectors}`);
    } else {
      const body = request.body as JsonBatch;
      p = params(request, body, idx);
      n = body.vectors.length;
      data = new Float32Array(n * dim);
      body.vectors.forEach((v, i) => {
        if (v.length !== dim)
          throw new BadRequest(`vectors[${i}] must have ${dim} elements (the index dimension), got ${v.length}`);
        toFloat32(`vectors[${i}]`, v, data, i * dim);
      });
    }
    // all or nothing: refuse the whole request when the queue cannot take it
    if (b.queued + n > capacity) throw new QueueFullError(capacity);
    const settled = await Promise.allSettled(
      Array.from({ length: n }, (_, i) => b.search(data.subarray(i * dim, (i + 1) * dim), p)),
    );
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    const results = settled.map((s) => (s as PromiseFulfilledResult<BatcherResult<IdArray>>).value);
    return { ids: results.map((r) => idsToJson(r.ids)), distances: results.map((r) => Array.from(r.distances)) };
  });

  app.get('/healthz', async (_request, reply) => {
    if (index && !draining)
      return { status: 'ok', vectors: index.size, dim: index.dim, clusters: index.numClusters, pid: process.pid };
    return reply.status(503).send({
      status: draining ? 'draining' : loadError ? 'failed' : 'loading',
      ...(loadError ? { message: loadError.message } : {}),
    });
  });

  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', registry.contentType);
    return promText(await registry.metrics());
  });

  const ready = Promise.resolve(options.index).then(
    (idx) => {
      index = idx;
      if (options.defaultNprobe === undefined) defaultNprobe = Math.min(16, idx.numClusters);
      batcher = createBatcher(idx, { ...batcherOptions, registry });
    },
    (err: unknown) => {
      loadError = err instanceof Error ? err : new Error(String(err));
      throw loadError;
    },
  );
  // the caller may never look at `ready`: a load failure must not become an unhandled rejection
  ready.catch(() => {});

  await app.listen({ host, port });
  const addr = app.server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let closing: Promise<void> | null = null;
  return {
    app,
    url: `http://${shownHost}:${addr.port}`,
    port: addr.port,
    ready,
    get batcher() {
      return batcher;
    },
    registry,
    close() {
      closing ??= (async () => {
        draining = true;
        // app.close() stops listening, answers new requests on open connections
        // with 503 and waits for the requests in flight; batcher.close() runs
        // their queued queries at once instead of after the batching delay
        await Promise.all([app.close(), batcher?.close()]);
      })();
      return closing;
    },
  };
}
