import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IvfRabitqIndex, writeFvecs } from '../src/index.js';
import { startServer, type RabitqServer, type ServableIndex } from '../src/server/index.js';
import { main } from '../src/cli/main.js';
import { ensureDist, rng } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const DIM = 16;
const N = 3000;

/** Deterministic pseudo-random floats in [-0.5, 0.5). */
function synthetic(n: number, dim: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * dim }, () => r() - 0.5);
}

function post(url: string, body: unknown, type = 'application/json'): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': type },
    // a copy: fetch's BodyInit takes only ArrayBuffer-backed views
    body: typeof body === 'string' ? body : body instanceof Uint8Array ? new Uint8Array(body) : JSON.stringify(body),
  });
}

/** GET on a new connection (no keep-alive). */
function getFresh(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function binary(v: Float32Array): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  v.forEach((x, i) => dv.setFloat32(i * 4, x, true));
  return out;
}

let index: IvfRabitqIndex;
// synthetic and deterministic, so the describe bodies below can use it at collection time
const queries = synthetic(100, DIM, 77);
let server: RabitqServer;
const row = (i: number) => queries.slice(i * DIM, (i + 1) * DIM);

beforeAll(async () => {
  index = await IvfRabitqIndex.build(synthetic(N, DIM, 3), { dim: DIM, numClusters: 16 });
  server = await startServer({ index, host: '127.0.0.1', port: 0 });
  await server.ready;
}, 60_000);

afterAll(async () => {
  await server?.close();
});

describe('search endpoints', () => {
  it('POST /search answers like index.search', async () => {
    const res = await post(`${server.url}/search`, { vector: Array.from(row(0)), k: 5, nprobe: 4 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ids: number[]; distances: number[] };
    const direct = index.search(row(0), { k: 5, nprobe: 4 });
    expect(body.ids).toEqual(Array.from(direct.ids));
    expect(body.distances).toEqual(Array.from(direct.distances));
  });

  it('uses k = 10 and nprobe = min(16, clusters) by default', async () => {
    const res = await post(`${server.url}/search`, { vector: Array.from(row(1)) });
    const body = (await res.json()) as { ids: number[] };
    expect(body.ids).toEqual(Array.from(index.search(row(1), { k: 10, nprobe: 16 }).ids));
  });

  it('POST /search/batch answers every vector', async () => {
    const vectors = [0, 1, 2, 3].map((i) => Array.from(row(i)));
    const res = await post(`${server.url}/search/batch`, { vectors, k: 3, nprobe: 8 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ids: number[][]; distances: number[][] };
    expect(body.ids).toHaveLength(4);
    for (let i = 0; i < 4; i++) {
      const direct = index.search(row(i), { k: 3, nprobe: 8 });
      expect(body.ids[i]).toEqual(Array.from(direct.ids));
      expect(body.distances[i]).toEqual(Array.from(direct.distances));
    }
  });

  it('accepts little-endian float32 bodies with k and nprobe in the query string', async () => {
    const res = await post(`${server.url}/search?k=4&nprobe=2`, binary(row(5)), 'application/octet-stream');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { ids: number[] }).ids).toEqual(
      Array.from(index.search(row(5), { k: 4, nprobe: 2 }).ids),
    );
    const three = new Float32Array(3 * DIM);
    three.set(queries.subarray(0, 3 * DIM));
    const rb = await post(`${server.url}/search/batch?k=2&nprobe=16`, binary(three), 'application/octet-stream');
    expect(rb.status).toBe(200);
    const body = (await rb.json()) as { ids: number[][] };
    expect(body.ids).toEqual([0, 1, 2].map((i) => Array.from(index.search(row(i), { k: 2, nprobe: 16 }).ids)));
  });

  it('GET /healthz and GET /metrics', async () => {
    // the request counters and histograms below appear once a search has been served
    expect((await post(`${server.url}/search`, { vector: Array.from(row(2)), k: 3 })).status).toBe(200);
    const h = await fetch(`${server.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ status: 'ok', vectors: N, dim: DIM });
    const m = await fetch(`${server.url}/metrics`);
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await m.text();
    expect(text).toMatch(/rabitq_http_requests_total\{route="\/search",status="200"\} \d+/);
    expect(text).toContain('# TYPE rabitq_http_request_duration_seconds histogram');
    expect(text).toMatch(/rabitq_http_request_duration_seconds_count\{route="\/search"\} \d+/);
    expect(text).toContain(`rabitq_index_vectors ${N}`);
    expect(text).toMatch(/rabitq_index_memory_bytes \d+/);
    expect(text).toContain('rabitq_index_ready 1');
    expect(text).toMatch(/rabitq_batcher_batch_size_count \d+/);
    expect(text).toContain('rabitq_batcher_queue_depth 0');
    expect(text).toContain('rabitq_batcher_rejections_total{reason="queue_full"} 0');
  });

  it('GET /metrics keeps the metric names, types and labels it had before prom-client', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const types = [...text.matchAll(/^# TYPE (\w+) (\w+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(types).toEqual([
      'rabitq_http_requests_total counter',
      'rabitq_http_request_duration_seconds histogram',
      'rabitq_index_ready gauge',
      'rabitq_index_vectors gauge',
      'rabitq_index_dimension gauge',
      'rabitq_index_clusters gauge',
      'rabitq_index_memory_bytes gauge',
      // (added with reload, issue 14)
      'rabitq_index_loaded_timestamp_seconds gauge',
      'rabitq_reloads_total counter',
      'rabitq_reload_failures_total counter',
      'rabitq_batcher_queue_depth gauge',
      'rabitq_batcher_running_queries gauge',
      'rabitq_batcher_queries_completed_total counter',
      'rabitq_batcher_batch_size histogram',
      'rabitq_batcher_queue_wait_seconds summary',
      'rabitq_batcher_rejections_total counter',
    ]);
    // sample names with their label names (values aside)
    const samples = new Set(
      text
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => l.replace(/ \S+$/, '').replace(/="[^"]*"/g, '')),
    );
    for (const name of [
      'rabitq_http_requests_total{route,status}',
      'rabitq_http_request_duration_seconds_bucket{le,route}',
      'rabitq_http_request_duration_seconds_sum{route}',
      'rabitq_http_request_duration_seconds_count{route}',
      'rabitq_index_ready',
      'rabitq_index_vectors',
      'rabitq_index_dimension',
      'rabitq_index_clusters',
      'rabitq_index_memory_bytes',
      'rabitq_batcher_queue_depth',
      'rabitq_batcher_running_queries',
      'rabitq_batcher_queries_completed_total',
      'rabitq_batcher_batch_size_bucket{le}',
      'rabitq_batcher_batch_size_sum',
      'rabitq_batcher_batch_size_count',
      'rabitq_batcher_queue_wait_seconds{quantile}',
      'rabitq_batcher_queue_wait_seconds_sum',
      'rabitq_batcher_queue_wait_seconds_count',
      'rabitq_batcher_rejections_total{reason}',
    ]) {
      expect(samples, name).toContain(name);
    }
    for (const reason of ['queue_full', 'timeout', 'invalid', 'closed', 'failed']) {
      expect(text).toContain(`rabitq_batcher_rejections_total{reason="${reason}"}`);
    }
  });

  it('two servers in one process keep their own metrics', async () => {
    const other = await startServer({ index, port: 0 });
    try {
      await other.ready;
      const before = await (await fetch(`${server.url}/metrics`)).text();
      const count = (t: string) =>
        Number(/rabitq_http_requests_total\{route="\/healthz",status="200"\} (\d+)/.exec(t)?.[1] ?? 0);
      for (let i = 0; i < 3; i++) expect((await fetch(`${other.url}/healthz`)).status).toBe(200);
      expect(count(await (await fetch(`${other.url}/metrics`)).text())).toBe(3);
      expect(count(await (await fetch(`${server.url}/metrics`)).text())).toBe(count(before));
    } finally {
      await other.close();
    }
  });
});

describe('bad input gets a 400 naming the field', () => {
  const good = () => Array.from(row(0));
  const nanBin = row(0);
  nanBin[3] = NaN;
  const cases: [string, string, unknown, string, RegExp][] = [
    [
      'wrong dimension',
      '/search',
      { vector: [1, 2, 3] },
      'application/json',
      /^vector must have 16 elements .* got 3$/,
    ],
    ['NaN literal', '/search', '{"vector":[1,NaN,2]}', 'application/json', /^vector must contain only finite numbers/],
    [
      'null element (JSON.stringify of NaN)',
      '/search',
      { vector: [1, null, 2] },
      'application/json',
      /^vector\[1\] must be number$/,
    ],
    ['string element', '/search', { vector: [1, '2'] }, 'application/json', /^vector\[1\] must be number$/],
    [
      'beyond float32',
      '/search',
      `{"vector":[1e39${',0'.repeat(DIM - 1)}]}`,
      'application/json',
      /^vector\[0\] must be a finite float32 number/,
    ],
    ['missing vector', '/search', { k: 3 }, 'application/json', /^vector is required$/],
    ['vector not an array', '/search', { vector: 'abc' }, 'application/json', /^vector must be array$/],
    ['empty vector', '/search', { vector: [] }, 'application/json', /^vector must NOT have fewer than 1 items$/],
    ['k = 0', '/search', { vector: good(), k: 0 }, 'application/json', /^k must be >= 1$/],
    ['k too large', '/search', { vector: good(), k: 5000 }, 'application/json', /^k must be <= 1024$/],
    ['k fractional', '/search', { vector: good(), k: 2.5 }, 'application/json', /^k must be integer$/],
    ['k as a string', '/search', { vector: good(), k: '3' }, 'application/json', /^k must be integer$/],
    ['nprobe = 0', '/search', { vector: good(), nprobe: 0 }, 'application/json', /^nprobe must be >= 1$/],
    ['unknown field', '/search', { vector: good(), kk: 3 }, 'application/json', /^unknown field "kk"$/],
    ['not JSON', '/search', '{"vector": [1, 2', 'application/json', /^the body is not valid JSON/],
    [
      'batch row of the wrong dimension',
      '/search/batch',
      { vectors: [good(), [1, 2]] },
      'application/json',
      /^vectors\[1\] must have 16 elements/,
    ],
    [
      'batch element not a number',
      '/search/batch',
      { vectors: [good(), [1, true]] },
      'application/json',
      /^vectors\[1\]\[1\] must be number$/,
    ],
    ['batch missing vectors', '/search/batch', { vector: good() }, 'application/json', /^vectors is required$/],
    ['batch empty', '/search/batch', { vectors: [] }, 'application/json', /^vectors must NOT have fewer than 1 items$/],
    ['JSON null', '/search', 'null', 'application/json', /^body must be object$/],
    ['JSON array', '/search/batch', '[[1, 2]]', 'application/json', /^body must be object$/],
    ['empty JSON body', '/search', '', 'application/json', /^the body is not valid JSON/],
    ['text body', '/search', 'hello', 'text/plain', /^vector is required: send a JSON body/],
    [
      'binary of the wrong length',
      '/search?k=3',
      new Uint8Array(10),
      'application/octet-stream',
      /^body: a binary body must be exactly 64 bytes/,
    ],
    [
      'binary NaN',
      '/search',
      binary(nanBin),
      'application/octet-stream',
      /^body\[3\] must be a finite number, got NaN$/,
    ],
    [
      'binary bad k',
      '/search?k=abc',
      binary(row(0)),
      'application/octet-stream',
      /^k must be an integer in 1\.\.1024, got "abc"$/,
    ],
    [
      'binary k too large',
      '/search/batch?k=2000',
      binary(row(0)),
      'application/octet-stream',
      /^k must be an integer in 1\.\.1024/,
    ],
    [
      'binary batch of a partial row',
      '/search/batch',
      new Uint8Array(100),
      'application/octet-stream',
      /^body: a binary body must be a positive multiple of 64 bytes/,
    ],
  ];
  for (const [name, url, body, type, re] of cases) {
    it(name, async () => {
      const res = await post(`${server.url}${url}`, body, type);
      const json = (await res.json()) as { message: string; statusCode: number };
      expect({ status: res.status, message: json.message }).toEqual({
        status: 400,
        message: expect.stringMatching(re),
      });
    });
  }

  it('oversize bodies get 413 and too many vectors get 400; the server keeps serving', async () => {
    const small = await startServer({ index, port: 0, bodyLimit: 2048, maxBatchVectors: 4 });
    try {
      await small.ready;
      const big = await post(`${small.url}/search`, { vector: Array.from({ length: 400 }, () => 0.123456789) });
      expect(big.status).toBe(413);
      const many = await post(`${small.url}/search/batch`, { vectors: Array.from({ length: 5 }, () => [0]) });
      expect(many.status).toBe(400);
      expect(((await many.json()) as { message: string }).message).toMatch(/^vectors must NOT have more than 4 items$/);
      const ok = await post(`${small.url}/search`, { vector: Array.from(row(0)) });
      expect(ok.status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('never answered 500', async () => {
    // bad JSON and bad binary bodies of its own, so the check does not rely on the cases above having run
    expect((await post(`${server.url}/search`, '{"vector": [1, 2')).status).toBe(400);
    expect((await post(`${server.url}/search`, new Uint8Array(10), 'application/octet-stream')).status).toBe(400);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).not.toMatch(/status="5\d\d"/);
    expect(text).toMatch(/rabitq_http_requests_total\{route="\/search",status="400"\} \d+/);
  });
});

describe('load, timeouts and readiness', () => {
  it('a full queue gets 503 with Retry-After, the rest succeed', async () => {
    const s = await startServer({ index, port: 0, capacity: 1, maxDelayMs: 20, maxBatchSize: 64 });
    try {
      await s.ready;
      const rs = await Promise.all(
        Array.from({ length: 40 }, (_, i) => post(`${s.url}/search`, { vector: Array.from(row(i)) })),
      );
      const codes = rs.map((r) => r.status);
      expect(codes).toContain(200);
      expect(codes).toContain(503);
      expect(codes.every((c) => c === 200 || c === 503)).toBe(true);
      for (const r of rs.filter((x) => x.status === 503)) {
        expect(r.headers.get('retry-after')).toBe('1');
        expect(await r.json()).toMatchObject({ code: 'EQUEUEFULL' });
      }
      const batch = await post(`${s.url}/search/batch`, { vectors: [Array.from(row(0)), Array.from(row(1))] });
      expect(batch.status).toBe(400); // more vectors than the queue can ever hold
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(/rabitq_batcher_rejections_total\{reason="queue_full"\} [1-9]/);
      // shed before Fastify (src/server/index.ts shed()), still counted per route and status
      const shed = codes.filter((c) => c === 503).length;
      expect(metrics).toContain(`rabitq_http_requests_total{route="/search",status="503"} ${shed}`);
    } finally {
      await s.close();
    }
  });

  /** POST on the agent's one connection; resolves with the status and the ms it took. */
  function postOn(agent: http.Agent, url: string, body: string): Promise<{ status: number; ms: number; port: number }> {
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const req = http.request(
        url,
        { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () =>
            resolve({ status: res.statusCode!, ms: performance.now() - t0, port: req.socket!.localPort! }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * A server with a queue of one query; the first query (its own connection)
   * waits maxDelayMs in it, so a second one, sent on `held` (one keep-alive
   * connection), is shed with 503.
   */
  async function shedOnHeldConnection(maxDelayMs: number, pauseAfterShedMs: number) {
    const s = await startServer({ index, port: 0, capacity: 1, maxDelayMs, pauseAfterShedMs });
    const held = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await s.ready;
    const body = JSON.stringify({ vector: Array.from(row(0)) });
    const first = postOn(new http.Agent({ keepAlive: false }), `${s.url}/search`, body);
    await new Promise((r) => setTimeout(r, 20));
    const shed = await postOn(held, `${s.url}/search`, body);
    expect(shed.status).toBe(503);
    return { s, held, body, first, shed };
  }

  for (const pauseAfterShedMs of [0, 600]) {
    it(`after a 503 the same connection is read again ${pauseAfterShedMs ? `after pauseAfterShedMs (${pauseAfterShedMs})` : 'at once with pauseAfterShedMs 0'}`, async () => {
      // a 150 ms batching delay keeps the first query in the queue
      const { s, held, body, first, shed } = await shedOnHeldConnection(150, pauseAfterShedMs);
      try {
        // re-sent at once on the same connection (the client ignores Retry-After)
        const again = await postOn(held, `${s.url}/search`, body);
        expect(again.port).toBe(shed.port);
        if (pauseAfterShedMs) {
          // read once the pause is over, when the first query has left the queue
          expect(again.status).toBe(200);
          expect(again.ms).toBeGreaterThanOrEqual(pauseAfterShedMs - 50);
        } else {
          // read at once, while the first query still fills the queue
          expect(again.status).toBe(503);
          expect(again.ms).toBeLessThan(100);
        }
        expect((await first).status).toBe(200);
        // other connections are not held
        const other = await postOn(new http.Agent({ keepAlive: false }), `${s.url}/search`, body);
        expect(other.status).toBe(200);
        expect(other.ms).toBeLessThan(pauseAfterShedMs || 400);
      } finally {
        held.destroy();
        await s.close();
      }
    });
  }

  it('close() answers a connection held after a 503 instead of waiting out the pause', async () => {
    const { s, held, body, first } = await shedOnHeldConnection(100, 20_000);
    try {
      const again = postOn(held, `${s.url}/search`, body).catch((e: Error) => e);
      await first;
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      await s.close();
      expect(performance.now() - t0).toBeLessThan(5000);
      // answered, not dropped unread with its connection
      const r = await again;
      expect(r).not.toBeInstanceOf(Error);
      expect([200, 503]).toContain((r as { status: number }).status);
    } finally {
      held.destroy();
    }
  });

  it('a query that waits longer than the timeout gets 504', async () => {
    const s = await startServer({ index, port: 0, timeoutMs: 5, maxDelayMs: 200 });
    try {
      await s.ready;
      const res = await post(`${s.url}/search`, { vector: Array.from(row(0)) });
      expect(res.status).toBe(504);
      expect(await res.json()).toMatchObject({ code: 'ETIMEDOUT' });
    } finally {
      await s.close();
    }
  });

  it('answers 503 until the index is loaded', async () => {
    let resolve!: (i: ServableIndex) => void;
    const s = await startServer({ index: new Promise<ServableIndex>((r) => (resolve = r)), port: 0 });
    try {
      const h = await fetch(`${s.url}/healthz`);
      expect(h.status).toBe(503);
      expect(await h.json()).toMatchObject({ status: 'loading' });
      const early = await post(`${s.url}/search`, { vector: Array.from(row(0)) });
      expect(early.status).toBe(503);
      expect(early.headers.get('retry-after')).toBe('1');
      resolve(index);
      await s.ready;
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      expect((await post(`${s.url}/search`, { vector: Array.from(row(0)) })).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('close() lets queued requests finish', async () => {
    const s = await startServer({ index, port: 0, maxDelayMs: 300 });
    await s.ready;
    const inflight = Promise.all([0, 1, 2].map((i) => post(`${s.url}/search`, { vector: Array.from(row(i)), k: 2 })));
    while (s.batcher!.stats().queued < 3) await new Promise((r) => setTimeout(r, 5));
    const t0 = performance.now();
    await s.close();
    expect(performance.now() - t0).toBeLessThan(250); // drained at once, not after the delay
    const rs = await inflight;
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200]);
  });
});

describe('rabitq serve (child process)', () => {
  let tmp: string;
  beforeAll(async () => {
    // the children run dist/: build it here rather than rely on an earlier test file having done so
    ensureDist('dist/src/cli/main.js');
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rabitq-serve-test-'));
    await writeFvecs(path.join(tmp, 'small.fvecs'), { dim: DIM, data: synthetic(2000, DIM, 11) });
  }, 180_000);
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  async function spawnServe(args: string[]) {
    const cli = path.join(ROOT, 'dist/src/cli/main.js');
    const child = spawn(process.execPath, [cli, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listening line: ${err}`)), 20_000);
      const check = () => {
        const m = /listening on (http:\/\/\S+?);/.exec(err);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        } else setTimeout(check, 20);
      };
      check();
    });
    for (let i = 0; i < 200 && (await fetch(`${url}/healthz`)).status !== 200; i++)
      await new Promise((r) => setTimeout(r, 50));
    return { child, url, exited, stderr: () => err };
  }

  async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), isTTY: false });
    return { code, out, err };
  }

  it('prints its help and reports bad usage on one line', async () => {
    const h = await run(['serve', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toContain('Usage: rabitq serve <index-file | vectors.fvecs | vectors.bvecs>');
    expect((await run(['help', 'serve'])).out).toContain('--max-delay-ms');
    expect(h.out).toContain('--max-in-flight');
    expect((await run(['--help'])).out).toMatch(/serve\s+serve an index file/);
    expect((await run(['--help'])).out).toMatch(/build\s+build an index from a vector file and save it/);
    const bad: [string[], RegExp][] = [
      [['serve'], /missing the index file/],
      [['serve', 'a.fvecs', '--workers', '2'], /--workers needs an index file/],
      [['serve', 'a.rbq', '--workers', '0'], /--workers must be in 1\./],
      [['serve', 'a.fvecs', '--port', 'http'], /--port must be an integer/],
      [['serve', 'a.fvecs', '--port', '70000'], /--port must be in 0\.\.65535/],
      [['serve', 'a.fvecs', '--capacity', '0'], /--capacity must be in 1\./],
      [['serve', 'a.fvecs', '--max-in-flight', '0'], /--max-in-flight must be in 1\./],
      [['serve', 'a.fvecs', '--pause-after-shed-ms', '30001'], /--pause-after-shed-ms must be in 0\.\.30000/],
      [['serve', 'a.fvecs', '--bogus'], /unknown option --bogus/],
      [['serve', 'a.fvecs', 'b.fvecs'], /unexpected argument "b.fvecs"/],
    ];
    for (const [args, re] of bad) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(re);
      expect(r.err).toMatch(/^rabitq serve: error: [^\n]+\n$/);
    }
  });

  it('fails cleanly (exit 1) on a missing file and on too many clusters', async () => {
    const missing = await run(['serve', path.join(tmp, 'nope.fvecs'), '--port', '0']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^rabitq serve: failed: .*nope\.fvecs/);
    const clusters = await run(['serve', path.join(tmp, 'small.fvecs'), '--port', '0', '--clusters', '5000']);
    expect(clusters.code).toBe(2);
    expect(clusters.err).toMatch(/--clusters 5000 is more than the 2000 vectors/);
  });

  it('serves, then drains and exits 0 on SIGTERM', async () => {
    const cli = path.join(ROOT, 'dist/src/cli/main.js');
    expect(existsSync(cli), 'build dist first: npx tsc -p tsconfig.json').toBe(true);
    const child = spawn(
      process.execPath,
      [
        cli,
        'serve',
        path.join(tmp, 'small.fvecs'),
        '--port',
        '0',
        '--clusters',
        '8',
        '--max-delay-ms',
        '800',
        '--max-in-flight',
        '2',
        '--timeout-ms',
        '5000',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    child.stderr.setEncoding('utf8');
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no listening line: ${err}`)), 20_000);
        child.stderr.on('data', (d: string) => {
          err += d;
          const m = /listening on (http:\/\/\S+?);/.exec(err);
          if (m) {
            clearTimeout(t);
            resolve(m[1]!);
          }
        });
      });
      for (let i = 0; i < 200 && (await fetch(`${url}/healthz`)).status !== 200; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const vec = Array.from(synthetic(1, DIM, 5));
      const inflight = Promise.all([0, 1, 2].map(() => post(`${url}/search`, { vector: vec, k: 3 })));
      // SIGTERM while the three queries wait in the batcher (max delay 800 ms)
      let queued = false;
      for (let i = 0; i < 100 && !queued; i++) {
        queued = /rabitq_batcher_queue_depth 3\n/.test(await (await fetch(`${url}/metrics`)).text());
        if (!queued) await new Promise((r) => setTimeout(r, 2));
      }
      expect(queued).toBe(true);
      const t0 = performance.now();
      child.kill('SIGTERM');
      const rs = await inflight;
      expect(rs.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(performance.now() - t0).toBeLessThan(700); // drained at once, not after the delay
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
      expect(code).toBe(0);
      expect(err).toContain('SIGTERM received: draining');
      expect(err).toContain('stopped');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 40_000);

  it('rabitq build saves an index; serve loads it (mapped) and answers like the loaded index; a bad file exits 1', async () => {
    const file = path.join(tmp, 'small.rbq');
    const b = await run(['build', path.join(tmp, 'small.fvecs'), '--out', file, '--clusters', '8', '--no-progress']);
    expect(b.code, b.err).toBe(0);
    expect(b.out).toMatch(/2000 vectors x 16, 8 clusters, metric l2/);
    expect((await run(['build', path.join(tmp, 'small.fvecs')])).err).toMatch(/missing --out/);
    const loaded = await IvfRabitqIndex.load(file, { idType: 'u32' });
    const vec = synthetic(1, DIM, 5);
    const direct = loaded.search(vec, { k: 4, nprobe: 8 });

    const bad = path.join(tmp, 'bad.rbq');
    await writeFile(bad, 'not an index');
    const r = await run(['serve', bad, '--port', '0']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/failed to load the index: .*bad\.rbq.*bad magic/);

    const { child, url, exited, stderr } = await spawnServe([file, '--port', '0', '--k', '4', '--nprobe', '8']);
    try {
      const res = await post(`${url}/search`, { vector: Array.from(vec) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { ids: number[]; distances: number[] };
      expect(body.ids).toEqual(Array.from(direct.ids));
      expect(stderr()).toMatch(/loading .*small\.rbq \(mapped\)/);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);

  it('--workers 2 runs two processes on one port; both answer; SIGTERM drains both and exits 0', async () => {
    const file = path.join(tmp, 'small.rbq');
    if (!existsSync(file))
      expect((await run(['build', path.join(tmp, 'small.fvecs'), '-o', file, '--clusters', '8'])).code).toBe(0);
    const { child, url, exited, stderr } = await spawnServe([file, '--port', '0', '--workers', '2', '--no-batch']);
    try {
      // the listening line comes from a worker; wait until both loaded
      for (let i = 0; i < 200 && (stderr().match(/index ready/g) ?? []).length < 2; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect((stderr().match(/index ready/g) ?? []).length).toBe(2);
      // a new connection per request, so the primary spreads them over the workers
      const pids = new Set<number>();
      for (let i = 0; i < 40 && pids.size < 2; i++) {
        const h = JSON.parse(await getFresh(`${url}/healthz`)) as { pid: number };
        pids.add(h.pid);
      }
      expect(pids.size).toBe(2);
      const res = await post(`${url}/search`, { vector: Array.from(synthetic(1, DIM, 1)), k: 3 });
      expect(res.status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr()).toMatch(/draining 2 workers/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);

  it('--workers 2 with an index no worker can load: exits 1 without a restart loop', async () => {
    const bad = path.join(tmp, 'bad-workers.rbq');
    await writeFile(bad, 'not an index');
    const cli = path.join(ROOT, 'dist/src/cli/main.js');
    const child = spawn(process.execPath, [cli, 'serve', bad, '--port', '0', '--workers', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    try {
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      expect(code, err).toBe(1);
      // each of the two workers tried at most once: no restarts of a worker that never got ready
      expect((err.match(/failed to load the index/g) ?? []).length, err).toBeLessThanOrEqual(2);
      expect(err).toMatch(/exited \(1\)/); // the worker's exit code reaches the primary
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);

  it('--workers 2: Ctrl-C (SIGINT to the whole process group) drains every worker and exits 0; a killed worker is restarted', async () => {
    const file = path.join(tmp, 'small.rbq');
    if (!existsSync(file))
      expect((await run(['build', path.join(tmp, 'small.fvecs'), '-o', file, '--clusters', '8'])).code).toBe(0);
    const cli = path.join(ROOT, 'dist/src/cli/main.js');
    // its own process group, like a shell job, so the group signal does not reach the test runner
    const child = spawn(process.execPath, [cli, 'serve', file, '--port', '0', '--workers', '2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    const ready = async (n: number) => {
      for (let i = 0; i < 400 && (err.match(/index ready/g) ?? []).length < n; i++)
        await new Promise((r) => setTimeout(r, 25));
      expect((err.match(/index ready/g) ?? []).length, err).toBe(n);
    };
    try {
      await ready(2);
      const url = /listening on (http:\/\/\S+?);/.exec(err)![1]!;
      // a worker that dies after it got ready is replaced
      const { pid } = JSON.parse(await getFresh(`${url}/healthz`)) as { pid: number };
      process.kill(pid, 'SIGKILL');
      await ready(3);
      process.kill(-child.pid!, 'SIGINT');
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 20_000))]);
      expect(code, err).toBe(0);
      expect(err).toMatch(/SIGINT received: draining 2 workers/);
      expect((err.match(/\]: stopped/g) ?? []).length, err).toBe(2);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
  }, 60_000);
});
