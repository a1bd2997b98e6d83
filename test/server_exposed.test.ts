/**
 * The server exposed to clients it cannot trust (issue 14): connection
 * timeouts, the drain deadline, bearer tokens, TLS, rate limiting, the
 * refusal to bind a public address without a token, zero-downtime reload,
 * and body limits past 2 GiB. All over loopback, with small timeouts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IvfRabitqIndex, writeFvecs } from '../src/index.js';
import { startServer, type RabitqServer, type ServableIndex } from '../src/server/index.js';
import { main } from '../src/cli/main.js';
import { serveOptionsFromArgs, isLoopbackHost } from '../src/cli/serve.js';
import { ensureDist, ROOT, rng } from './helpers.js';

const DIM = 8;
const TOKEN = 'test-token-0123456789abcdef';

function synthetic(n: number, dim: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * dim }, () => r() - 0.5);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rabitq-exposed-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let indexA: IvfRabitqIndex;
let indexB: IvfRabitqIndex;
const query = Array.from(synthetic(1, DIM, 99));
beforeAll(async () => {
  indexA = await IvfRabitqIndex.build(synthetic(400, DIM, 1), { dim: DIM, numClusters: 4 });
  indexB = await IvfRabitqIndex.build(synthetic(400, DIM, 2), { dim: DIM, numClusters: 4 });
}, 60_000);

const idsOf = (idx: IvfRabitqIndex) => Array.from(idx.search(Float32Array.from(query), { k: 5, nprobe: 4 }).ids);

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}
const bearer = { authorization: `Bearer ${TOKEN}` };

/**
 * A raw client: writes `head`, then `drip` every `everyMs` until the server
 * closes the connection; resolves with what it read and when it was cut off.
 */
function trickle(
  port: number,
  head: string,
  drip: string | null,
  everyMs = 50,
): { closed: Promise<{ ms: number; response: string }>; socket: net.Socket } {
  const socket = net.connect(port, '127.0.0.1');
  const t0 = performance.now();
  let response = '';
  let timer: NodeJS.Timeout | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (response += d));
  socket.on('error', () => {});
  socket.on('connect', () => {
    if (head !== '') socket.write(head);
    if (drip !== null) timer = setInterval(() => socket.writable && socket.write(drip), everyMs);
  });
  const closed = new Promise<{ ms: number; response: string }>((resolve) =>
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ ms: performance.now() - t0, response });
    }),
  );
  return { closed, socket };
}

/** Resolves with 'open' if the socket is still open after `ms`. */
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<'open'>((r) => setTimeout(() => r('open'), ms))]);

const BODY_HEAD = (len: number) =>
  `POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`;

describe('connection timeouts (defect 3b)', () => {
  let server: RabitqServer;
  beforeAll(async () => {
    server = await startServer({
      index: indexA,
      port: 0,
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
      idleTimeoutMs: 400,
    });
  });
  afterAll(() => server.close());

  it('has timeouts a user would choose by default (none was set before)', async () => {
    const s = await startServer({ index: indexA, port: 0 });
    try {
      expect(s.app.server.requestTimeout).toBe(30_000);
      expect(s.app.server.headersTimeout).toBe(10_000);
      expect(s.app.server.timeout).toBe(60_000);
    } finally {
      await s.close();
    }
  });

  it('cuts off a client that trickles its headers within the headers timeout', async () => {
    const { closed } = trickle(server.port, 'POST /search HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n');
    const r = await within(closed, 3000);
    expect(r).not.toBe('open');
    const { ms, response } = r as { ms: number; response: string };
    expect(ms).toBeGreaterThan(250);
    expect(ms).toBeLessThan(1500);
    expect(response).toMatch(/^HTTP\/1\.1 408/);
  });

  it('cuts off a client that trickles its body within the request timeout', async () => {
    const { closed } = trickle(server.port, BODY_HEAD(100_000), ' ');
    const r = await within(closed, 3000);
    expect(r).not.toBe('open');
    const { ms, response } = r as { ms: number; response: string };
    expect(ms).toBeGreaterThan(500);
    expect(ms).toBeLessThan(2000);
    expect(response).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes a connection that sends nothing after the idle timeout', async () => {
    const { closed } = trickle(server.port, '', null);
    const r = await within(closed, 3000);
    expect(r).not.toBe('open');
    expect((r as { ms: number }).ms).toBeGreaterThan(350);
  });

  it('still answers a client that is quick', async () => {
    const res = await post(`${server.url}/search`, { vector: query, k: 5, nprobe: 4 });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { ids: number[] }).ids).toEqual(idsOf(indexA));
  });

  it('refuses timeouts out of range with errors naming the option', async () => {
    await expect(startServer({ index: indexA, port: 0, requestTimeoutMs: 0 })).rejects.toThrow(
      /options\.requestTimeoutMs must be an integer in 1\.\./,
    );
    await expect(startServer({ index: indexA, port: 0, headersTimeoutMs: 500, requestTimeoutMs: 400 })).rejects.toThrow(
      /options\.headersTimeoutMs \(500\) must not exceed options\.requestTimeoutMs \(400\)/,
    );
    await expect(startServer({ index: indexA, port: 0, drainTimeoutMs: -1 })).rejects.toThrow(RangeError);
    await expect(startServer({ index: indexA, port: 0, pauseAfterShedMs: -1 })).rejects.toThrow(
      /options\.pauseAfterShedMs must be an integer in 0\.\./,
    );
    await expect(startServer({ index: indexA, port: 0, retryAfterSeconds: 1.5 })).rejects.toThrow(
      /options\.retryAfterSeconds must be an integer in 0\.\./,
    );
  });
});

describe('drain deadline', () => {
  it('close() destroys the connections still open after drainTimeoutMs', async () => {
    const server = await startServer({ index: indexA, port: 0, requestTimeoutMs: 60_000, drainTimeoutMs: 300 });
    const { closed } = trickle(server.port, BODY_HEAD(100_000), ' ');
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    const r = await within(server.close(), 3000);
    expect(r).toEqual({ destroyedConnections: 1 });
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThan(250);
    expect(ms).toBeLessThan(1500);
    expect(await within(closed, 1000)).not.toBe('open');
  });
});

describe('bodyLimit past 2 GiB (defect 7)', () => {
  it('--body-limit-mb 2048 and 4096 are whole byte counts; 4097 is a clear usage error', () => {
    expect(serveOptionsFromArgs(['i.rbq', '--body-limit-mb', '2048']).bodyLimit).toBe(2 ** 31);
    expect(serveOptionsFromArgs(['i.rbq', '--body-limit-mb', '4096']).bodyLimit).toBe(2 ** 32);
    expect(() => serveOptionsFromArgs(['i.rbq', '--body-limit-mb', '4097'])).toThrow(
      /--body-limit-mb must be in 1\.\.4096, got 4097/,
    );
  });

  it('a server with a 2 GiB body limit starts and serves; a bad bodyLimit is a RangeError naming it', async () => {
    const s = await startServer({ index: indexA, port: 0, bodyLimit: 2048 * 1024 * 1024 });
    try {
      expect((await post(`${s.url}/search`, { vector: query, k: 5, nprobe: 4 })).status).toBe(200);
    } finally {
      await s.close();
    }
    await expect(startServer({ index: indexA, port: 0, bodyLimit: -2147483648 })).rejects.toThrow(
      /options\.bodyLimit must be an integer in 1\.\.4294967296, got -2147483648/,
    );
  });
});

describe('bearer token', () => {
  let server: RabitqServer;
  beforeAll(async () => {
    server = await startServer({ index: indexA, port: 0, authToken: TOKEN, reloadIndex: async () => indexA });
    await server.ready;
  });
  afterAll(() => server.close());

  it('every endpoint but /healthz needs it: 401 without, 401 with a wrong one, 200 with it', async () => {
    const body = { vector: query, k: 5, nprobe: 4 };
    const none = await post(`${server.url}/search`, body);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="rabitq"');
    expect(await none.json()).toMatchObject({ statusCode: 401, code: 'EUNAUTHORIZED', error: 'Unauthorized' });
    const wrong = await post(`${server.url}/search`, body, { authorization: `Bearer ${TOKEN.slice(0, -1)}x` });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    // a prefix of the token, a longer one, another scheme
    for (const authorization of [`Bearer ${TOKEN.slice(0, 8)}`, `Bearer ${TOKEN}x`, `Basic ${TOKEN}`]) {
      expect((await post(`${server.url}/search`, body, { authorization })).status).toBe(401);
    }
    const ok = await post(`${server.url}/search`, body, bearer);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { ids: number[] }).ids).toEqual(idsOf(indexA));
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${server.url}/metrics`, { headers: bearer })).status).toBe(200);
    expect((await post(`${server.url}/search/batch`, { vectors: [query] })).status).toBe(401);
    expect((await post(`${server.url}/admin/reload`, {})).status).toBe(401);
    // unknown paths too: no probing which routes exist
    expect((await fetch(`${server.url}/nope`)).status).toBe(401);
    expect((await fetch(`${server.url}/nope`, { headers: bearer })).status).toBe(404);
  });

  it('/healthz answers anyone, with details only for the token holder', async () => {
    const anon = await fetch(`${server.url}/healthz`);
    expect(anon.status).toBe(200);
    expect(await anon.json()).toEqual({ status: 'ok' });
    const full = await fetch(`${server.url}/healthz`, { headers: bearer });
    expect(await full.json()).toMatchObject({ status: 'ok', vectors: 400, dim: DIM, clusters: 4 });
  });

  it('answers 401 before reading the body', async () => {
    // headers announce 10 MB that never come: the answer cannot wait for them
    const { closed, socket } = trickle(server.port, BODY_HEAD(10_000_000), null);
    let first = '';
    await new Promise<void>((resolve) =>
      socket.on('data', (d: string) => {
        first += d;
        resolve();
      }),
    );
    expect(first).toMatch(/^HTTP\/1\.1 401/);
    socket.destroy();
    await closed;
  });

  it('refuses tokens that are too short or not header-safe, without quoting them', async () => {
    await expect(startServer({ index: indexA, port: 0, authToken: 'short' })).rejects.toThrow(
      /authToken must be at least 16 characters, got 5/,
    );
    const spaced = 'has a space in it, long enough';
    const err = await startServer({ index: indexA, port: 0, authToken: spaced }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(RangeError);
    expect((err as Error).message).not.toContain(spaced);
    await expect(startServer({ index: indexA, port: 0, authToken: 42 as unknown as string })).rejects.toThrow(
      TypeError,
    );
  });
});

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

describe('TLS', () => {
  it.skipIf(!hasOpenssl)('serves HTTPS with the given certificate, and nothing over plain HTTP', async () => {
    const key = path.join(tmp, 'key.pem');
    const cert = path.join(tmp, 'cert.pem');
    const selfSigned = (key: string, cert: string) => {
      const r = spawnSync(
        'openssl',
        [
          ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
          ...['-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'],
          ...['-addext', 'subjectAltName=IP:127.0.0.1'],
        ],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
    };
    selfSigned(key, cert);
    const ca = readFileSync(cert);
    const server = await startServer({ index: indexA, port: 0, tls: { cert: ca, key: readFileSync(key) } });
    try {
      await server.ready;
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const body = JSON.stringify({ vector: query, k: 5, nprobe: 4 });
      const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = https.request(
          `${server.url}/search`,
          { method: 'POST', ca, headers: { 'content-type': 'application/json' } },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      expect(answer.status).toBe(200);
      expect((JSON.parse(answer.text) as { ids: number[] }).ids).toEqual(idsOf(indexA));
      // a certificate the client does not trust fails the handshake
      const untrusted = await new Promise<Error | null>((resolve) => {
        const req = https.get(`${server.url}/healthz`, (res) => {
          res.resume();
          resolve(null);
        });
        req.on('error', resolve);
      });
      expect(untrusted).toBeInstanceOf(Error);
      // plain HTTP to the TLS port gets no HTTP answer
      const plain = await fetch(server.url.replace('https:', 'http:') + '/healthz').then(
        (res) => res.status,
        () => 'failed',
      );
      expect(plain).not.toBe(200);
      // setTls (SIGHUP in the CLI): new connections get the new certificate
      const fingerprint = (trusted: Buffer) =>
        new Promise<string>((resolve, reject) => {
          const req = https.get(`${server.url}/healthz`, { ca: trusted, agent: false }, (res) => {
            resolve((res.socket as TLSSocket).getPeerCertificate().fingerprint256);
            res.resume();
          });
          req.on('error', reject);
        });
      const before = await fingerprint(ca);
      const key2 = path.join(tmp, 'key2.pem');
      const cert2 = path.join(tmp, 'cert2.pem');
      selfSigned(key2, cert2);
      server.setTls({ cert: readFileSync(cert2), key: readFileSync(key2) });
      const after = await fingerprint(readFileSync(cert2));
      expect(after).not.toBe(before);
    } finally {
      await server.close();
    }
  });
});

describe('rate limit', () => {
  it('answers 429 with Retry-After past the limit; /healthz is not counted', async () => {
    const server = await startServer({ index: indexA, port: 0, rateLimitPerMinute: 3 });
    try {
      await server.ready;
      for (let i = 0; i < 5; i++) expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await post(`${server.url}/search`, { vector: query })).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const limited = await post(`${server.url}/search`, { vector: query });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await limited.json()).toMatchObject({ statusCode: 429, code: 'ERATELIMITED', error: 'Too Many Requests' });
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('reload', () => {
  it('swaps the index: queued searches finish on the old one, later ones use the new one', async () => {
    const next: ServableIndex[] = [indexB];
    const server = await startServer({
      index: indexA,
      port: 0,
      maxDelayMs: 300,
      reloadIndex: async () => next.shift() ?? indexA,
    });
    try {
      await server.ready;
      const loaded0 = /^rabitq_index_loaded_timestamp_seconds (\S+)$/m.exec(await server.registry.metrics())![1];
      // waits in the batcher (300 ms delay) while the reload happens
      const queued = post(`${server.url}/search`, { vector: query, k: 5, nprobe: 4 });
      for (let i = 0; i < 100 && server.batcher!.queued === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(server.batcher!.queued).toBe(1);
      const r = await server.reload();
      expect(r).toMatchObject({ vectors: 400, dim: DIM, clusters: 4 });
      expect(server.index).toBe(indexB);
      const after = await post(`${server.url}/search`, { vector: query, k: 5, nprobe: 4 });
      expect(((await (await queued).json()) as { ids: number[] }).ids).toEqual(idsOf(indexA));
      expect(((await after.json()) as { ids: number[] }).ids).toEqual(idsOf(indexB));
      expect(idsOf(indexA)).not.toEqual(idsOf(indexB)); // (so the two checks above tell them apart)
      const m = await (await fetch(`${server.url}/metrics`)).text();
      expect(m).toContain('rabitq_reloads_total 1');
      expect(m).toContain('rabitq_reload_failures_total 0');
      expect(m).toContain('rabitq_batcher_queue_depth 0');
      expect(/^rabitq_index_loaded_timestamp_seconds (\S+)$/m.exec(m)![1]).not.toBe(loaded0);
    } finally {
      await server.close();
    }
  });

  it('closeReplacedIndex: the replaced index is closed once its queued search has answered', async () => {
    const { IvfRabitqIndex } = await import('../src/index.js');
    const vectors = new Float32Array(400 * DIM).map((_, i) => Math.sin(i * 0.37) * 3);
    const own = await IvfRabitqIndex.build(vectors, { dim: DIM, numClusters: 4 });
    const server = await startServer({
      index: own,
      port: 0,
      maxDelayMs: 300,
      closeReplacedIndex: true,
      reloadIndex: async () => indexB,
    });
    try {
      await server.ready;
      const queued = post(`${server.url}/search`, { vector: query, k: 5, nprobe: 4 });
      for (let i = 0; i < 100 && server.batcher!.queued === 0; i++) await new Promise((r) => setTimeout(r, 5));
      await server.reload();
      // still queued on the old index: not closed yet, and it answers
      expect(() => own.search(Float32Array.from(query), { k: 1, nprobe: 4 })).not.toThrow();
      const res = await queued;
      expect(res.status).toBe(200);
      for (let i = 0; i < 100; i++) {
        try {
          own.search(Float32Array.from(query), { k: 1, nprobe: 4 });
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(() => own.search(Float32Array.from(query), { k: 1, nprobe: 4 })).toThrow(/closed/);
      // the new index serves
      expect((await post(`${server.url}/search`, { vector: query, k: 5, nprobe: 4 })).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('a failed reload keeps the old index, counts the failure and reports it', async () => {
    const server = await startServer({
      index: indexA,
      port: 0,
      authToken: TOKEN,
      reloadIndex: async () => {
        throw new Error('index.rbq: bad magic');
      },
    });
    try {
      await server.ready;
      await expect(server.reload()).rejects.toThrow(/bad magic/);
      const res = await post(`${server.url}/admin/reload`, {}, bearer);
      expect(res.status).toBe(500);
      expect(await res.json()).toMatchObject({
        code: 'ERELOAD',
        message: 'reload failed, still serving the previous index: index.rbq: bad magic',
      });
      expect(server.index).toBe(indexA);
      const s = await post(`${server.url}/search`, { vector: query, k: 5, nprobe: 4 }, bearer);
      expect(((await s.json()) as { ids: number[] }).ids).toEqual(idsOf(indexA));
      const m = await (await fetch(`${server.url}/metrics`, { headers: bearer })).text();
      expect(m).toContain('rabitq_reload_failures_total 2');
      expect(m).toContain('rabitq_reloads_total 0');
      const h = await (await fetch(`${server.url}/healthz`, { headers: bearer })).json();
      expect(h).toMatchObject({ status: 'ok', lastReloadError: 'index.rbq: bad magic' });
    } finally {
      await server.close();
    }
  });

  it('POST /admin/reload with the token swaps the index; there is no such route without a token', async () => {
    const server = await startServer({ index: indexA, port: 0, authToken: TOKEN, reloadIndex: async () => indexB });
    try {
      await server.ready;
      const res = await post(`${server.url}/admin/reload`, {}, bearer);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: 'reloaded', vectors: 400, dim: DIM });
      const s = await post(`${server.url}/search`, { vector: query, k: 5, nprobe: 4 }, bearer);
      expect(((await s.json()) as { ids: number[] }).ids).toEqual(idsOf(indexB));
    } finally {
      await server.close();
    }
    const open = await startServer({ index: indexA, port: 0, reloadIndex: async () => indexB });
    try {
      expect((await post(`${open.url}/admin/reload`, {})).status).toBe(404);
    } finally {
      await open.close();
    }
  });

  it('lets the old index be garbage-collected once its searches are done', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let collected = false;
    const registry = new FinalizationRegistry(() => (collected = true));
    // a copy of indexA the test keeps no reference to
    const server = await (async () => {
      const copy = await IvfRabitqIndex.fromBuffer(await indexA.toBuffer());
      registry.register(copy, 'old');
      return startServer({ index: copy, port: 0, reloadIndex: async () => indexB });
    })();
    try {
      await server.ready;
      expect((await post(`${server.url}/search`, { vector: query, k: 5, nprobe: 4 })).status).toBe(200);
      await server.reload();
      for (let i = 0; i < 50 && !collected; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(collected).toBe(true);
    } finally {
      await server.close();
    }
  });
});

describe('rabitq serve exposed (CLI)', () => {
  let file: string;
  let fileB: string;
  let tokenFile: string;
  beforeAll(async () => {
    ensureDist('dist/src/cli/main.js');
    file = path.join(tmp, 'a.rbq');
    fileB = path.join(tmp, 'b.rbq');
    await indexA.save(file);
    await indexB.save(fileB);
    tokenFile = path.join(tmp, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    chmodSync(tokenFile, 0o600);
    await writeFvecs(path.join(tmp, 'v.fvecs'), { dim: DIM, data: synthetic(50, DIM, 3) });
  }, 180_000);

  async function run(args: string[], env?: Record<string, string>) {
    let out = '';
    let err = '';
    const saved = process.env.RABITQ_AUTH_TOKEN;
    if (env?.RABITQ_AUTH_TOKEN !== undefined) process.env.RABITQ_AUTH_TOKEN = env.RABITQ_AUTH_TOKEN;
    try {
      const code = await main(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), isTTY: false });
      return { code, out, err };
    } finally {
      if (saved === undefined) delete process.env.RABITQ_AUTH_TOKEN;
      else process.env.RABITQ_AUTH_TOKEN = saved;
    }
  }

  function spawnServe(args: string[]) {
    const cli = path.join(ROOT, 'dist/src/cli/main.js');
    const child = spawn(process.execPath, [cli, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const waitFor = async (re: RegExp, ms = 20_000) => {
      for (let t = 0; t < ms && !re.test(err); t += 20) await new Promise((r) => setTimeout(r, 20));
      expect(err).toMatch(re);
      return re.exec(err)!;
    };
    return { child, exited, waitFor, stderr: () => err };
  }

  it('refuses a non-loopback address without a token (exit 2) unless --insecure or a token is given', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
      const r = await run(['serve', file, '--host', host, '--port', '0']);
      expect(r.code, host).toBe(2);
      expect(r.err).toMatch(/^rabitq serve: error: refusing to listen on \S+ without authentication.*--insecure/);
    }
    for (const host of ['127.0.0.1', '127.3.4.5', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(host), host).toBe(true);
    expect(isLoopbackHost('::ffff:10.0.0.1')).toBe(false);
    expect(serveOptionsFromArgs([file, '--host', '0.0.0.0', '--insecure'], {}).insecure).toBe(true);
    expect(serveOptionsFromArgs([file, '--host', '0.0.0.0', '--auth-token-file', tokenFile], {}).host).toBe('0.0.0.0');
    expect(serveOptionsFromArgs([file, '--host', '0.0.0.0'], { RABITQ_AUTH_TOKEN: TOKEN }).envToken).toBe(TOKEN);
  });

  it('range-checks the new options', async () => {
    const bad: [string[], RegExp][] = [
      [['--tls-cert', 'c.pem'], /--tls-cert and --tls-key go together/],
      [['--rate-limit', '0'], /--rate-limit must be in 1\./],
      [['--drain-timeout', 'soon'], /--drain-timeout must be a number of seconds/],
      [['--drain-timeout', '1e3'], /--drain-timeout must be a number of seconds/],
      [['--request-timeout', '0'], /--request-timeout must be in 0\.01\.\.3600 seconds/],
      [['--headers-timeout', '20', '--request-timeout', '5'], /--headers-timeout must not be longer/],
      [['--timeout-ms', '60000'], /--timeout-ms must be shorter than --idle-timeout/],
    ];
    for (const [args, re] of bad) {
      const r = await run(['serve', file, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(re);
    }
    const o = serveOptionsFromArgs([file, '--drain-timeout', '0.5', '--request-timeout', '5']);
    expect(o).toMatchObject({
      drainTimeoutMs: 500,
      requestTimeoutMs: 5000,
      headersTimeoutMs: 5000,
      idleTimeoutMs: 60_000,
    });
    const short = await run(['serve', file, '--port', '0'], { RABITQ_AUTH_TOKEN: 'tooshort' });
    expect(short.code).toBe(2);
    expect(short.err).toMatch(/the auth token must be at least 16 characters/);
    expect(short.err).not.toContain('tooshort');
  });

  it('SIGTERM with a client trickling its body: exits 0 soon after --drain-timeout; the token is never printed', async () => {
    const { child, exited, waitFor, stderr } = spawnServe([
      ...[file, '--port', '0', '--auth-token-file', tokenFile],
      ...['--request-timeout', '60', '--drain-timeout', '1'],
    ]);
    try {
      const url = (await waitFor(/listening on (http:\/\/\S+?);/))[1]!;
      await waitFor(/index ready/);
      expect((await post(`${url}/search`, { vector: query }, bearer)).status).toBe(200);
      expect(
        (await post(`${url}/search`, { vector: query }, { authorization: 'Bearer wrong-token-0123456789' })).status,
      ).toBe(401);
      const port = Number(new URL(url).port);
      const { closed } = trickle(
        port,
        BODY_HEAD(100_000).replace('\r\n\r\n', `\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`),
        ' ',
      );
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      child.kill('SIGTERM');
      const code = await within(exited, 6000);
      expect(code, stderr()).toBe(0);
      expect(performance.now() - t0).toBeGreaterThan(900);
      expect(performance.now() - t0).toBeLessThan(4000);
      expect(await within(closed, 1000)).not.toBe('open');
      expect(stderr()).toMatch(/drain deadline \(1 s\) passed: closed 1 connection/);
      expect(stderr()).not.toContain(TOKEN);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 40_000);

  it('SIGHUP maps the file again: a new index swaps the answers, a bad file keeps the old one and counts the failure', async () => {
    const served = path.join(tmp, 'served.rbq');
    writeFileSync(served, readFileSync(file));
    const { child, exited, waitFor } = spawnServe([served, '--port', '0', '--rate-limit', '600']);
    try {
      const url = (await waitFor(/listening on (http:\/\/\S+?);/))[1]!;
      await waitFor(/index ready/);
      const ids = async () =>
        ((await (await post(`${url}/search`, { vector: query, k: 5, nprobe: 4 })).json()) as { ids: number[] }).ids;
      expect(await ids()).toEqual(idsOf(indexA));
      const limited = await post(`${url}/search`, { vector: query });
      expect(limited.headers.get('x-ratelimit-limit')).toBe('600');
      // replaced the way a deploy should: a new file renamed over the old name
      writeFileSync(`${served}.tmp`, readFileSync(fileB));
      renameSync(`${served}.tmp`, served);
      child.kill('SIGHUP');
      await waitFor(/index reloaded \(400 vectors x 8/);
      expect(await ids()).toEqual(idsOf(indexB));
      writeFileSync(`${served}.tmp`, 'not an index');
      renameSync(`${served}.tmp`, served);
      child.kill('SIGHUP');
      await waitFor(/reload failed, still serving the previous index: .*bad magic/);
      expect(await ids()).toEqual(idsOf(indexB));
      const m = await (await fetch(`${url}/metrics`)).text();
      expect(m).toContain('rabitq_reload_failures_total 1');
      expect(m).toContain('rabitq_reloads_total 1');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 40_000);
  it('--workers 2: SIGHUP to the primary reloads every worker', async () => {
    const served = path.join(tmp, 'served-workers.rbq');
    writeFileSync(served, readFileSync(file));
    const { child, exited, waitFor, stderr } = spawnServe([served, '--port', '0', '--workers', '2']);
    try {
      const url = (await waitFor(/listening on (http:\/\/\S+?);/))[1]!;
      await waitFor(/index ready[^]*index ready/);
      writeFileSync(`${served}.tmp`, readFileSync(fileB));
      renameSync(`${served}.tmp`, served);
      child.kill('SIGHUP');
      await waitFor(/index reloaded[^]*index reloaded/);
      expect(stderr()).toMatch(/SIGHUP received: reloading the index in every worker/);
      const res = await post(`${url}/search`, { vector: query, k: 5, nprobe: 4 });
      expect(((await res.json()) as { ids: number[] }).ids).toEqual(idsOf(indexB));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 40_000);
});
