/**
 * An HTTP search server (fastify) in front of an index, with a batcher
 * between the requests and the native pool.
 *
 *   POST /search         {vector, k?, nprobe?}    -> {ids, distances}
 *   POST /search/batch   {vectors, k?, nprobe?}   -> {ids: [[...]], distances: [[...]]}
 *   (either also takes application/octet-stream: little-endian float32, k and nprobe in the query string)
 *   GET  /healthz        200 once the index is ready, 503 before and while shutting down
 *   GET  /metrics        Prometheus text
 *   POST /admin/reload   load the index again (only with an auth token and a reloadIndex function)
 *
 * Bad input gets a 400 whose message names the field; a full queue gets
 * 503 with Retry-After; a query that waited past the timeout gets 504.
 *
 * Exposure: with `authToken` every endpoint but /healthz needs
 * `Authorization: Bearer <token>`; `tls` serves HTTPS; every connection has
 * header, whole-request and idle timeouts, so a slow or silent client cannot
 * hold a connection (or a drain) open; close() destroys what is still open
 * after `drainTimeoutMs`.
 */
import type { RateLimitPluginOptions } from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
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
import { assertIntInRange, describeValue } from '../errors.js';
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
  /** Releases the index's memory / file mapping now (IvfRabitqIndex.close). */
  close?(): void;
}

/** PEM certificate chain and private key for HTTPS. */
export interface TlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
}

/** What a successful reload installed. */
export interface ReloadResult {
  vectors: number;
  dim: number;
  clusters: number;
  /** When the new index started serving. */
  loadedAt: Date;
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
  /** Batches handed to the native pool at once (default 1; see BatcherOptions.maxInFlight). */
  maxInFlight?: number;
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
  /**
   * After a 503 for a full queue, that connection is not read again for this
   * long, in ms (default: the Retry-After, 1000 ms; 0: read on at once). The
   * 503 itself goes out at once; only a client that re-sends on the same
   * connection before its Retry-After waits, in the kernel's buffers, at no
   * cost to the event loop. Clients that honour Retry-After see no difference.
   */
  pauseAfterShedMs?: number;
  /** fastify's logger option (default false). */
  logger?: boolean;
  /**
   * Route single searches through the batcher (default true). false runs
   * each request's search on the event loop, one query per native call: the
   * baseline the load benchmark compares the batcher against.
   */
  batching?: boolean;
  /**
   * Bearer token every endpoint but /healthz requires (default: none, no
   * authentication). Compared in constant time; never logged.
   */
  authToken?: string;
  /** Serve HTTPS with this certificate and key (default: plain HTTP). */
  tls?: TlsOptions;
  /** Time a client has to send the request headers, in ms (default 10 000). */
  headersTimeoutMs?: number;
  /** Time a client has to send the whole request, body included, in ms (default 30 000). */
  requestTimeoutMs?: number;
  /** A connection with no traffic either way for this long is closed, in ms (default 60 000). */
  idleTimeoutMs?: number;
  /**
   * close() waits this long (ms, default 10 000) for the requests in flight,
   * then destroys the connections still open (a client trickling its body
   * would otherwise hold the drain until its request timeout).
   */
  drainTimeoutMs?: number;
  /**
   * Most requests per minute from one client address (default: no limit);
   * /healthz is not counted (@fastify/rate-limit, keyed by the client's address).
   */
  rateLimitPerMinute?: number;
  /**
   * Loads the index again for reload() (SIGHUP in `rabitq serve`, or
   * POST /admin/reload when authToken is set). Without it reload() fails.
   */
  reloadIndex?: () => Promise<ServableIndex>;
  /**
   * Close (index.close()) an index once a reload has replaced it and its
   * in-flight searches have finished, so a mapped file is released at once
   * instead of at garbage collection (default false: the caller may still
   * use the index it passed in). `rabitq serve` sets it: it owns its indexes.
   */
  closeReplacedIndex?: boolean;
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
  /** e.g. http://127.0.0.1:8080 (https:// with tls) */
  readonly url: string;
  readonly port: number;
  /** Resolves once the index is loaded (rejects if loading failed). */
  readonly ready: Promise<void>;
  /** The batcher of the index being served, once it is loaded. */
  readonly batcher: Batcher<IdArray> | null;
  /** The index being served (null while loading). */
  readonly index: ServableIndex | null;
  /** The server's own prom-client registry (what /metrics shows; the batcher's metrics included). */
  readonly registry: Registry;
  /**
   * Loads the index again with options.reloadIndex and swaps it in: searches
   * already accepted finish on the old index, later ones use the new one.
   * On failure the old index keeps serving, the failure is counted in
   * /metrics (rabitq_reload_failures_total) and the Promise rejects.
   * Concurrent calls run one after the other.
   */
  reload(): Promise<ReloadResult>;
  /** Replaces the TLS certificate and key for new connections (e.g. after a renewal). */
  setTls(tls: TlsOptions): void;
  /**
   * Stop accepting, let the requests in flight finish (for at most
   * drainTimeoutMs, then destroy the connections still open), drain the
   * batcher. Resolves with the number of connections it had to destroy.
   * Idempotent.
   */
  close(): Promise<{ destroyedConnections: number }>;
}

/** A 400 whose message names the field at fault. */
class BadRequest extends Error {
  readonly statusCode = 400;
}

/** 401: no or a wrong bearer token. */
class Unauthorized extends Error {
  readonly statusCode = 401;
  readonly code = 'EUNAUTHORIZED';
}

/** Largest delay Node's timers take (2^31 - 1 ms); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * JSON bodies become one string before parsing, and V8 strings hold at most
 * 2^29 - 24 characters: past that fastify's body reader would throw from a
 * stream callback. JSON bodies are held to 500 MiB whatever bodyLimit says
 * (binary bodies may use all of it).
 */
const MAX_JSON_BODY = 500 * 1024 * 1024;
/** Node allocates no Buffer past this (4 GiB on 64-bit Node 20). */
const MAX_BODY = 2 ** 32;

/** An integer option in [min, max] or its default; a RangeError/TypeError naming `options.name`. */
function intOpt(name: string, v: unknown, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  assertIntInRange(`options.${name}`, v, min, max);
  return v;
}

/** The token's rules, checked where it is given, so a bad one fails at start and not on every request. */
function checkToken(token: unknown): string {
  if (typeof token !== 'string') throw new TypeError(`options.authToken must be a string, got ${describeValue(token)}`);
  // never quote the token in a message: it may end up in a log
  if (token.length < 16) throw new RangeError(`options.authToken must be at least 16 characters, got ${token.length}`);
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new RangeError(
      'options.authToken may hold only printable ASCII characters without spaces (it travels in an HTTP header)',
    );
  }
  return token;
}

function rateLimitSettings(perMinute: number): RateLimitPluginOptions {
  return {
    max: perMinute,
    timeWindow: 60_000,
    // health checks come from load balancers, often on one address, every few seconds
    allowList: (request) => request.routeOptions.url === '/healthz',
    errorResponseBuilder: (_request, context) =>
      Object.assign(
        new Error(`more than ${perMinute} requests a minute from this address; retry in ${context.after}`),
        { statusCode: context.statusCode, code: 'ERATELIMITED' },
      ),
  };
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

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
  // Closures below must not capture `options`: it holds the first index (or
  // its Promise), which a reload has to be able to release.
  const { index: firstIndex, reloadIndex } = options;
  // (read here: a closure that reads `options` would keep options.index, the
  // first index, alive for the server's lifetime)
  const closeReplacedIndex = options.closeReplacedIndex === true;
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  const maxK = options.maxK ?? 1024;
  const capacity = options.capacity ?? 1024;
  const retryAfterSeconds = intOpt('retryAfterSeconds', options.retryAfterSeconds, 0, MAX_TIMER_MS / 1000, 1);
  const retryAfter = String(retryAfterSeconds);
  const batcherOptions: BatcherOptions = {
    maxBatchSize: options.maxBatchSize ?? 64,
    maxDelayMs: options.maxDelayMs ?? 2,
    capacity,
    timeoutMs: options.timeoutMs ?? 1000,
    ...(options.maxInFlight !== undefined ? { maxInFlight: options.maxInFlight } : {}),
  };
  const maxBatchVectors = Math.min(options.maxBatchVectors ?? capacity, capacity);
  const batching = options.batching ?? true;
  // Checked with plain arithmetic before fastify sees them: a shifted
  // megabyte count once overflowed into a negative bodyLimit.
  const bodyLimit = intOpt('bodyLimit', options.bodyLimit, 1, MAX_BODY, 16 * 1024 * 1024);
  const requestTimeout = intOpt('requestTimeoutMs', options.requestTimeoutMs, 1, MAX_TIMER_MS, 30_000);
  const headersTimeout = intOpt(
    'headersTimeoutMs',
    options.headersTimeoutMs,
    1,
    MAX_TIMER_MS,
    Math.min(10_000, requestTimeout),
  );
  // Node refuses a headers timeout longer than the request timeout; say so in our words
  if (headersTimeout > requestTimeout) {
    throw new RangeError(
      `options.headersTimeoutMs (${headersTimeout}) must not exceed options.requestTimeoutMs (${requestTimeout})`,
    );
  }
  const idleTimeout = intOpt('idleTimeoutMs', options.idleTimeoutMs, 1, MAX_TIMER_MS, 60_000);
  const drainTimeout = intOpt('drainTimeoutMs', options.drainTimeoutMs, 0, MAX_TIMER_MS, 10_000);
  // (shorter than the keep-alive timeout, or a held connection would be closed instead)
  const pauseAfterShed = intOpt(
    'pauseAfterShedMs',
    options.pauseAfterShedMs,
    0,
    MAX_TIMER_MS,
    Math.min(retryAfterSeconds * 1000, Math.floor(idleTimeout / 2)),
  );
  const rateLimit =
    options.rateLimitPerMinute === undefined
      ? undefined
      : intOpt('rateLimitPerMinute', options.rateLimitPerMinute, 1, 1e9, 0);
  const tokenDigest = options.authToken === undefined ? null : sha256(checkToken(options.authToken));
  if (reloadIndex !== undefined && typeof reloadIndex !== 'function') {
    throw new TypeError(`options.reloadIndex must be a function, got ${describeValue(reloadIndex)}`);
  }
  const tls = options.tls;
  if (tls !== undefined && (typeof tls !== 'object' || tls === null || !tls.cert || !tls.key)) {
    throw new TypeError('options.tls must be { cert, key } (PEM strings or Buffers)');
  }

  let index: ServableIndex | null = null;
  let batcher: Batcher<IdArray> | null = null;
  let loadError: Error | null = null;
  let draining = false;
  const fixedNprobe = options.defaultNprobe;
  let defaultNprobe = fixedNprobe ?? 16;
  const defaultK = options.defaultK ?? 10;
  let loadedAt: Date | null = null;
  let lastReloadError: string | null = null;

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
  new Gauge({
    name: 'rabitq_index_loaded_timestamp_seconds',
    help: 'Unix time the index being served was loaded (changes at each successful reload).',
    registers,
    collect() {
      if (loadedAt) this.set(loadedAt.getTime() / 1000);
      else this.reset();
    },
  });
  const reloads = new Counter({
    name: 'rabitq_reloads_total',
    help: 'Successful index reloads.',
    registers,
  });
  const reloadFailures = new Counter({
    name: 'rabitq_reload_failures_total',
    help: 'Index reloads that failed (the previous index kept serving).',
    registers,
  });
  // Each request's labelled children looked up once per (route, status):
  // prom-client hashes the label object on every inc() / observe() otherwise.
  const requestCounters = new Map<string, { inc(): void }>();
  const latencyHistograms = new Map<string, { observe(v: number): void }>();
  function observe(route: string, status: number, seconds: number): void {
    const key = `${status} ${route}`;
    let c = requestCounters.get(key);
    if (!c) requestCounters.set(key, (c = requests.labels({ route, status: String(status) })));
    c.inc();
    let h = latencyHistograms.get(route);
    if (!h) latencyHistograms.set(route, (h = latency.labels({ route })));
    h.observe(seconds);
  }

  // Node checks the header and request timeouts on a timer (every 30 s by
  // default), so a trickling client would outlive them by up to that much.
  const connectionsCheckingInterval = Math.max(10, Math.min(1000, Math.floor(headersTimeout / 4)));
  const httpServerOptions = { requestTimeout, headersTimeout, connectionsCheckingInterval };

  // Shedding happens here, before Fastify sees the request: under overload
  // most requests are turned away, and each one Fastify handled (request and
  // reply objects, hooks, an error object, JSON) cost ~100 us of the one
  // event loop that also serves the accepted ones: at 4x overload the
  // goodput fell to 39% of the sustainable rate. A rejected request gets a
  // response written once at start-up; its body is never read (Node
  // discards it and keeps the connection).
  const shedBody = JSON.stringify({
    statusCode: 503,
    error: 'Service Unavailable',
    code: 'EQUEUEFULL',
    message: new QueueFullError(capacity).message,
  });
  const shedHeaders = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(shedBody)),
    'retry-after': retryAfter,
  };
  function shed(req: IncomingMessage, res: ServerResponse): boolean {
    if (!batching || !batcher || draining || !req.url?.startsWith('/search') || batcher.admit()) return false;
    res.writeHead(503, shedHeaders);
    res.end(shedBody);
    observe('/search', 503, 0);
    if (pauseAfterShed > 0) res.once('finish', () => setImmediate(pauseReading, req.socket));
    return true;
  }

  // Even a rejection costs the event loop ~60 us (parsing, the response's
  // system call), and closed-loop clients that re-send the moment they get a
  // 503 made the server spend most of its time turning them away: at 4x
  // overload it answered 45% of its sustainable rate. So after a 503 the
  // connection is not read until its Retry-After has passed. (Paused after
  // the response has finished: Node resumes the socket to discard the
  // unread body of the rejected request.)
  const pausedSockets = new Map<Socket, NodeJS.Timeout>();
  function pauseReading(socket: Socket): void {
    if (socket.destroyed || draining || pausedSockets.has(socket)) return;
    socket.pause();
    pausedSockets.set(socket, setTimeout(resumeReading, pauseAfterShed, socket));
  }
  function resumeReading(socket: Socket): void {
    const timer = pausedSockets.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    pausedSockets.delete(socket);
    if (!socket.destroyed) socket.resume();
  }

  const app = Fastify({
    // Fastify's own server (lib/server.js), with shed() in front.
    serverFactory: (handler) => {
      const front = (req: IncomingMessage, res: ServerResponse) => {
        if (!shed(req, res)) handler(req, res);
      };
      const server = tls
        ? https.createServer(
            { cert: tls.cert, key: tls.key, handshakeTimeout: headersTimeout, ...httpServerOptions },
            front,
          )
        : http.createServer(httpServerOptions, front);
      server.keepAliveTimeout = Math.min(72_000, idleTimeout);
      server.requestTimeout = requestTimeout;
      server.setTimeout(idleTimeout);
      return server;
    },
    logger: options.logger ?? false,
    bodyLimit,
    requestTimeout,
    connectionTimeout: idleTimeout,
    keepAliveTimeout: Math.min(72_000, idleTimeout),
    // (a TLS handshake that never finishes is as bad as headers that never
    // do: handshakeTimeout above)
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
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: Math.min(bodyLimit, MAX_JSON_BODY) },
    (request, body, done) => {
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
    },
  );

  // while draining, close each connection after its response: a keep-alive
  // connection left open would hold app.close() until it times out
  // (callback hooks: an async one costs every request a promise)
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) void reply.header('connection', 'close');
    done(null, payload);
  });

  // Authentication first of all, before any body is read: a client without
  // the token costs the server one header comparison.
  function bearer(request: FastifyRequest): 'ok' | 'missing' | 'invalid' {
    if (!tokenDigest) return 'ok';
    const header = request.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header) : null;
    if (!m) return 'missing';
    // equal-length digests: the comparison takes the same time whatever the
    // token's length or where it differs
    return timingSafeEqual(sha256(m[1]!), tokenDigest) ? 'ok' : 'invalid';
  }
  if (tokenDigest) {
    app.addHook('onRequest', (request, reply, done) => {
      if (request.routeOptions.url === '/healthz') return done();
      const auth = bearer(request);
      if (auth === 'ok') return done();
      void reply.header(
        'www-authenticate',
        auth === 'invalid' ? 'Bearer realm="rabitq", error="invalid_token"' : 'Bearer realm="rabitq"',
      );
      done(
        new Unauthorized(
          auth === 'invalid'
            ? 'the bearer token is not valid'
            : 'this endpoint needs an "Authorization: Bearer <token>" header',
        ),
      );
    });
  }

  app.addHook('onResponse', (request, reply, done) => {
    observe(request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
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
          : status === 401
            ? 'Unauthorized'
            : status === 429
              ? 'Too Many Requests'
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

  // The plugin adds its hook to each route declared after it.
  // (loaded only when asked for: most servers never rate-limit)
  if (rateLimit !== undefined) {
    await app.register((await import('@fastify/rate-limit')).default, rateLimitSettings(rateLimit));
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

  // With a token, /healthz tells an anonymous caller (a load balancer) only
  // the status; the details (and the reason of a failed load, which names
  // files) need the token.
  app.get('/healthz', async (request, reply) => {
    const details = bearer(request) === 'ok';
    if (index && !draining) {
      if (!details) return { status: 'ok' };
      return {
        status: 'ok',
        vectors: index.size,
        dim: index.dim,
        clusters: index.numClusters,
        pid: process.pid,
        loadedAt: loadedAt?.toISOString(),
        ...(lastReloadError !== null ? { lastReloadError } : {}),
      };
    }
    return reply.status(503).send({
      status: draining ? 'draining' : loadError ? 'failed' : 'loading',
      ...(loadError && details ? { message: loadError.message } : {}),
    });
  });

  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', registry.contentType);
    return promText(await registry.metrics());
  });

  /**
   * Serves `idx` from now on. The batcher is per index (its queries were
   * checked against that index's dimension): the old one finishes what it
   * holds on the old index, and once it has, nothing here refers to the old
   * index any more and its memory and mapping go with the garbage.
   */
  function install(idx: ServableIndex): void {
    const old = batcher;
    // the batcher's metrics describe the batcher being used: the new one
    // takes over their names (its counters start again from 0, which
    // Prometheus reads as a counter reset)
    if (old) {
      for (const m of registry.getMetricsAsArray()) {
        if (m.name.startsWith('rabitq_batcher_')) registry.removeSingleMetric(m.name);
      }
    }
    // Only an index to close is held past this call: without
    // closeReplacedIndex the old one is left to the garbage collector.
    const toClose = closeReplacedIndex && index !== null && index !== idx ? index : null;
    batcher = createBatcher(idx, { ...batcherOptions, registry });
    index = idx;
    if (fixedNprobe === undefined) defaultNprobe = Math.min(16, idx.numClusters);
    loadedAt = new Date();
    // The old batcher drains first: its queued searches still use the old index.
    const drained = old?.close();
    if (toClose && drained) {
      void drained.then(() => {
        try {
          toClose.close?.();
        } catch (err) {
          app.log.warn({ err }, 'closing the replaced index failed');
        }
      });
    }
  }

  const ready = Promise.resolve(firstIndex).then(
    (idx) => {
      // a reload that finished first wins (it read the file later)
      if (!index) install(idx);
    },
    (err: unknown) => {
      loadError = err instanceof Error ? err : new Error(String(err));
      throw loadError;
    },
  );
  // the caller may never look at `ready`: a load failure must not become an unhandled rejection
  ready.catch(() => {});

  async function reloadOnce(): Promise<ReloadResult> {
    try {
      if (draining) throw new Error('the server is shutting down');
      if (!reloadIndex) throw new Error('no reloadIndex function was given to startServer');
      // the first load settles first, so a reload never races it
      await ready.catch(() => {});
      const idx = await reloadIndex();
      if (draining) throw new Error('the server is shutting down');
      install(idx);
      loadError = null;
      lastReloadError = null;
      reloads.inc();
      app.log.info({ vectors: idx.size, dim: idx.dim }, 'index reloaded');
      return { vectors: idx.size, dim: idx.dim, clusters: idx.numClusters, loadedAt: loadedAt! };
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      lastReloadError = e.message;
      reloadFailures.inc();
      app.log.error({ err: e }, 'index reload failed; still serving the previous index');
      throw e;
    }
  }
  let reloadQueue: Promise<unknown> = Promise.resolve();
  function reload(): Promise<ReloadResult> {
    const run = reloadQueue.then(reloadOnce);
    reloadQueue = run.catch(() => {});
    return run;
  }

  // An admin endpoint only behind a token: without one, anyone who reaches
  // the port could make the server read the disk over and over.
  if (tokenDigest && reloadIndex) {
    app.post('/admin/reload', async (_request, reply) => {
      try {
        const r = await reload();
        return { status: 'reloaded', ...r, loadedAt: r.loadedAt.toISOString() };
      } catch (err) {
        return reply.status(draining ? 503 : 500).send({
          statusCode: draining ? 503 : 500,
          error: draining ? 'Service Unavailable' : 'Internal Server Error',
          code: 'ERELOAD',
          message: `reload failed, still serving the previous index: ${(err as Error).message}`,
        });
      }
    });
  }

  // Every connection, raw TCP (before any TLS handshake), so the drain
  // deadline can end them all.
  const sockets = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      resumeReading(socket);
    });
  });

  await app.listen({ host, port });
  const addr = app.server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let closing: Promise<{ destroyedConnections: number }> | null = null;
  return {
    app,
    url: `${tls ? 'https' : 'http'}://${shownHost}:${addr.port}`,
    port: addr.port,
    ready,
    get batcher() {
      return batcher;
    },
    get index() {
      return index;
    },
    registry,
    reload,
    setTls(next: TlsOptions) {
      if (!tls) throw new Error('setTls: this server was started without tls');
      const ctx: SecureContextOptions = { cert: next.cert, key: next.key };
      (app.server as unknown as { setSecureContext(o: SecureContextOptions): void }).setSecureContext(ctx);
    },
    close() {
      closing ??= (async () => {
        draining = true;
        // A held client's next request is read and answered rather than lost
        // unread when app.close() ends the connections it finds idle: resume
        // them, then let the loop poll once (the second setImmediate runs after
        // the next poll phase).
        if (pausedSockets.size > 0) {
          for (const s of [...pausedSockets.keys()]) resumeReading(s);
          for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
        }
        let destroyedConnections = 0;
        // after the deadline, whatever still holds a connection (a body
        // trickled a byte at a time, a response nobody reads) loses it
        const deadline = setTimeout(() => {
          destroyedConnections = sockets.size;
          for (const s of sockets) s.destroy();
        }, drainTimeout);
        try {
          // app.close() stops listening, answers new requests on open connections
          // with 503 and waits for the requests in flight; batcher.close() runs
          // their queued queries at once instead of after the batching delay
          await Promise.all([app.close(), batcher?.close()]);
        } finally {
          clearTimeout(deadline);
        }
        return { destroyedConnections };
      })();
      return closing;
    },
  };
}
