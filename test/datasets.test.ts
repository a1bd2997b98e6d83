import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main, type ExactKnn } from '../datasets/cli.js';
import { classifyFileName } from '../datasets/registry.js';
import { readFvecs, readIvecs, writeFvecs, writeIvecs } from '../src/io.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let hasTar = true;
try {
  execFileSync('tar', ['--version'], { stdio: 'ignore' });
} catch {
  hasTar = false;
}

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'rabitq-ds-'));
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// helpers

function floats(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s >>> 8) / 65536;
  }
  return a;
}

/** Plain brute-force k-NN (squared L2, ties by id), used as the reference. */
const bruteForce: ExactKnn = async (base, queries, { dim, k }) => {
  const nb = base.length / dim;
  const nq = queries.length / dim;
  const ids = new Int32Array(nq * k);
  const distances = new Float32Array(nq * k);
  for (let q = 0; q < nq; q++) {
    const d: Array<[number, number]> = [];
    for (let i = 0; i < nb; i++) {
      let s = 0;
      for (let j = 0; j < dim; j++) {
        const t = base[i * dim + j]! - queries[q * dim + j]!;
        s += t * t;
      }
      d.push([s, i]);
    }
    d.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let j = 0; j < k; j++) {
      ids[q * k + j] = d[j]![1];
      distances[q * k + j] = d[j]![0];
    }
  }
  return { ids, distances };
};

interface TinySet {
  base: Float32Array;
  query: Float32Array;
  gt: Int32Array;
  learn: Float32Array;
  dim: number;
}

/** Writes texmex-style files for a small random set into `dir/<prefix>/`. */
async function makeTinySet(dir: string, prefix: string, opts: { nb?: number; subdir?: string } = {}): Promise<TinySet> {
  const dim = 16;
  const nb = opts.nb ?? 3000;
  const set: TinySet = {
    base: floats(nb * dim, 1),
    query: floats(6 * dim, 2),
    gt: new Int32Array(0),
    learn: floats(40 * dim, 3),
    dim,
  };
  set.gt = (await bruteForce(set.base, set.query, { dim, k: 10 })).ids;
  const d = path.join(dir, opts.subdir ?? prefix);
  fs.mkdirSync(d, { recursive: true });
  await writeFvecs(path.join(d, `${prefix}_base.fvecs`), { dim, data: set.base });
  await writeFvecs(path.join(d, `${prefix}_query.fvecs`), { dim, data: set.query });
  await writeIvecs(path.join(d, `${prefix}_groundtruth.ivecs`), { dim: 10, data: set.gt });
  await writeFvecs(path.join(d, `${prefix}_learn.fvecs`), { dim, data: set.learn });
  fs.writeFileSync(path.join(d, 'README'), 'not a vector file\n');
  fs.writeFileSync(path.join(d, `._${prefix}_base.fvecs`), 'macOS resource fork junk');
  return set;
}

/** Packs `dir/<top>` into a .tar.gz with the system tar and returns its bytes. */
function pack(dir: string, top: string, format: 'gnu' | 'pax' | 'ustar' = 'gnu'): Buffer {
  const out = path.join(dir, `${top.slice(0, 20)}-${format}.tar.gz`);
  execFileSync('tar', [`--format=${format}`, '-czf', out, '-C', dir, top]);
  return fs.readFileSync(out);
}

async function expectSetEqual(dir: string, set: TinySet, withLearn = true): Promise<void> {
  expect((await readFvecs(path.join(dir, 'base.fvecs'))).data).toEqual(set.base);
  expect((await readFvecs(path.join(dir, 'query.fvecs'))).data).toEqual(set.query);
  const gt = await readIvecs(path.join(dir, 'groundtruth.ivecs'));
  expect(gt.dim).toBe(10);
  expect(gt.data).toEqual(set.gt);
  if (withLearn) expect((await readFvecs(path.join(dir, 'learn.fvecs'))).data).toEqual(set.learn);
  else expect(fs.existsSync(path.join(dir, 'learn.fvecs'))).toBe(false);
  expect(fs.readdirSync(dir).filter((f) => f.endsWith('.part') || f.endsWith('.partial'))).toEqual([]);
  expect(JSON.parse(fs.readFileSync(path.join(dir, 'dataset.json'), 'utf8')).files.base.rows).toBe(
    set.base.length / set.dim,
  );
}

async function run(args: string[], deps = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(
    args,
    {},
    {
      stdout: (t) => {
        out += t;
      },
      stderr: (t) => {
        err += t;
      },
      isTTY: false,
    },
    deps,
  );
  if (code === 1 || code === 2) expect(err).not.toMatch(/\n\s+at /); // never a stack trace
  return { code, out, err };
}

function fetchArgs(name: string, url: string, dataDir: string, ...more: string[]): string[] {
  return [name, '--url', url, '--data-dir', dataDir, '--quiet', '--retry-delay', '5', '--timeout', '5', ...more];
}

// ---------------------------------------------------------------------------
// loopback servers

interface FtpOptions {
  files: Record<string, Buffer>;
  /** bytes to send before cutting the data connection, for the first N transfers */
  cut?: { bytes: number; times: number };
  noEpsv?: boolean;
  noRest?: boolean;
}

interface TestServer {
  url: string;
  log: string[];
  close: () => Promise<void>;
}

async function startFtp(opts: FtpOptions): Promise<TestServer> {
  const log: string[] = [];
  const sockets = new Set<net.Socket>();
  const servers = new Set<net.Server>();
  let cuts = opts.cut?.times ?? 0;
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const server = net.createServer((ctl) => {
    track(ctl);
    let cwd = '/';
    let rest = 0;
    let dataConn: Promise<net.Socket> | null = null;
    const send = (line: string): void => {
      if (!ctl.destroyed) ctl.write(`${line}\r\n`);
    };
    const resolvePath = (p: string): string => (p.startsWith('/') ? p : path.posix.join(cwd, p));
    const openData = async (): Promise<number> => {
      const ds = net.createServer();
      servers.add(ds);
      dataConn = new Promise((resolve) =>
        ds.once('connection', (s) => {
          track(s);
          ds.close();
          resolve(s);
        }),
      );
      await new Promise<void>((r) => ds.listen(0, '127.0.0.1', r));
      return (ds.address() as net.AddressInfo).port;
    };
    ctl.setEncoding('latin1');
    let buf = '';
    let queue = Promise.resolve();
    ctl.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        queue = queue.then(() => handle(line));
      }
    });
    const handle = async (line: string): Promise<void> => {
      log.push(line);
      const [cmd, ...args] = line.split(' ');
      const arg = args.join(' ');
      switch (cmd) {
        case 'USER':
          return send('331 Password required');
        case 'PASS':
          return send('230-Welcome\r\n230 Logged in');
        case 'TYPE':
          return send('200 Type set');
        case 'CWD': {
          const d = resolvePath(arg);
          if (Object.keys(opts.files).some((f) => f.startsWith(`${d}/`))) {
            cwd = d;
            return send('250 OK');
          }
          return send('550 No such directory');
        }
        case 'SIZE': {
          const f = opts.files[resolvePath(arg)];
          return send(f ? `213 ${f.length}` : '550 No such file');
        }
        case 'EPSV':
          if (opts.noEpsv) return send('500 EPSV not understood');
          return send(`229 Entering Extended Passive Mode (|||${await openData()}|)`);
        case 'PASV': {
          const port = await openData();
          return send(`227 Entering Passive Mode (127,0,0,1,${port >> 8},${port & 255}).`);
        }
        case 'REST':
          if (opts.noRest) return send('502 REST not implemented');
          rest = Number(arg);
          return send(`350 Restarting at ${rest}`);
        case 'RETR': {
          const f = opts.files[resolvePath(arg)];
          if (!f || !dataConn) return send('550 No such file');
          send('150 Opening BINARY mode data connection');
          const ds = await dataConn;
          dataConn = null;
          const from = rest;
          rest = 0;
          if (cuts > 0 && opts.cut) {
            cuts--;
            const end = Math.min(f.length, from + opts.cut.bytes);
            await new Promise<void>((r) => ds.write(f.subarray(from, end), () => r()));
            ds.destroy();
            return send('426 Connection closed; transfer aborted');
          }
          ds.end(f.subarray(from));
          await new Promise((r) => ds.once('close', r));
          return send('226 Transfer complete');
        }
        case 'QUIT':
          send('221 Bye');
          ctl.end();
          return;
        default:
          return send('502 Command not implemented');
      }
    };
    ctl.write('220-Test FTP server\r\n220-second line\r\n220 Ready\r\n');
  });
  servers.add(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `ftp://127.0.0.1:${port}`,
    log,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([...servers].map((s) => new Promise((r) => s.close(() => r(null)))));
    },
  };
}

interface HttpOptions {
  files: Record<string, Buffer>;
  /** for the first N requests, send this many body bytes, then cut the connection */
  cut?: { bytes: number; times: number };
  ignoreRange?: boolean;
}

async function startHttp(opts: HttpOptions): Promise<TestServer> {
  const log: string[] = [];
  let cuts = opts.cut?.times ?? 0;
  const server = http.createServer((req, res) => {
    const range = req.headers.range;
    log.push(`${req.method} ${req.url} ${range ?? '-'}`);
    const f = opts.files[req.url ?? ''];
    if (!f) {
      res.writeHead(404).end('not found');
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (m && !opts.ignoreRange) {
      start = Number(m[1]);
      if (start >= f.length) {
        res.writeHead(416, { 'content-range': `bytes */${f.length}` }).end();
        return;
      }
      res.writeHead(206, {
        'content-length': f.length - start,
        'content-range': `bytes ${start}-${f.length - 1}/${f.length}`,
      });
    } else {
      res.writeHead(200, { 'content-length': f.length });
    }
    if (cuts > 0 && opts.cut) {
      cuts--;
      res.write(f.subarray(start, Math.min(f.length, start + opts.cut.bytes)), () => res.socket?.destroy());
      return;
    }
    res.end(f.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

// ---------------------------------------------------------------------------

describe('classifyFileName', () => {
  it('maps texmex and plain names to roles', () => {
    expect(classifyFileName('sift/sift_base.fvecs')).toEqual({ role: 'base', type: 'fvecs' });
    expect(classifyFileName('gist_groundtruth.ivecs')).toEqual({ role: 'groundtruth', type: 'ivecs' });
    expect(classifyFileName('query.bvecs')).toEqual({ role: 'query', type: 'bvecs' });
    expect(classifyFileName('siftsmall/siftsmall_learn.fvecs')).toEqual({ role: 'learn', type: 'fvecs' });
    expect(classifyFileName('._sift_base.fvecs')).toBeNull();
    expect(classifyFileName('sift/README')).toBeNull();
    expect(classifyFileName('database.fvecs')).toBeNull();
  });
});

describe.skipIf(!hasTar)('download, resume, verify, extract', () => {
  let tiny: TinySet;
  let tinyTgz: Buffer;
  beforeAll(async () => {
    const src = path.join(work, 'src-tiny');
    tiny = await makeTinySet(src, 'tiny');
    tinyTgz = pack(src, 'tiny');
  });

  it('FTP: a transfer cut mid-way is resumed with REST', { timeout: 30_000 }, async () => {
    const cutAt = Math.floor(tinyTgz.length * 0.4);
    const srv = await startFtp({ files: { '/pub/data/tiny.tar.gz': tinyTgz }, cut: { bytes: cutAt, times: 1 } });
    try {
      const dataDir = path.join(work, 'ftp1');
      const r = await run(fetchArgs('tiny', `${srv.url}/pub/data/tiny.tar.gz`, dataDir));
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/base\.fvecs\s+3000 x 16/);
      const retr = srv.log.filter((l) => l.startsWith('RETR'));
      expect(retr).toHaveLength(2);
      const rest = srv.log.filter((l) => l.startsWith('REST')).map((l) => Number(l.split(' ')[1]));
      expect(rest).toHaveLength(1);
      expect(rest[0]).toBeGreaterThan(0);
      expect(rest[0]).toBeLessThanOrEqual(cutAt);
      expect(srv.log).toContain('CWD /pub/data');
      expect(srv.log).toContain('TYPE I');
      expect(srv.log).toContain('USER anonymous');
      const out = path.join(dataDir, 'tiny');
      await expectSetEqual(out, tiny);
      expect(fs.existsSync(path.join(out, 'tiny.tar.gz'))).toBe(false); // archive removed after unpacking
      // a second run finds the set installed and does not connect
      const n = srv.log.length;
      const again = await run(fetchArgs('tiny', `${srv.url}/pub/data/tiny.tar.gz`, dataDir));
      expect(again.code).toBe(0);
      expect(again.out).toMatch(/already present/);
      expect(srv.log.length).toBe(n);
    } finally {
      await srv.close();
    }
  });

  it(
    'FTP: PASV fallback, resume of a partial file left by an earlier run, --keep-archive, --skip-learn',
    { timeout: 30_000 },
    async () => {
      const srv = await startFtp({ files: { '/tiny.tar.gz': tinyTgz }, noEpsv: true });
      try {
        const dataDir = path.join(work, 'ftp2');
        fs.mkdirSync(path.join(dataDir, 'tiny'), { recursive: true });
        fs.writeFileSync(path.join(dataDir, 'tiny', 'tiny.tar.gz.part'), tinyTgz.subarray(0, 1000));
        const r = await run(fetchArgs('tiny', `${srv.url}/tiny.tar.gz`, dataDir, '--keep-archive', '--skip-learn'));
        expect(r.err).toBe('');
        expect(r.code).toBe(0);
        expect(srv.log).toContain('EPSV');
        expect(srv.log).toContain('PASV');
        expect(srv.log).toContain('REST 1000');
        const out = path.join(dataDir, 'tiny');
        await expectSetEqual(out, tiny, false);
        expect(fs.readFileSync(path.join(out, 'tiny.tar.gz')).equals(tinyTgz)).toBe(true);
      } finally {
        await srv.close();
      }
    },
  );

  it(
    'FTP: gives up after retries without progress, then a later run resumes the partial file',
    { timeout: 30_000 },
    async () => {
      const dataDir = path.join(work, 'ftp3');
      const first = await startFtp({ files: { '/tiny.tar.gz': tinyTgz }, cut: { bytes: 5000, times: 1 } });
      const dead = await startFtp({ files: { '/tiny.tar.gz': tinyTgz }, cut: { bytes: 0, times: 100 } }); // never sends data
      const good = await startFtp({ files: { '/tiny.tar.gz': tinyTgz } });
      try {
        // --retries counts attempts without progress: a cut after 5000 bytes still gets retried
        const r1 = await run(fetchArgs('tiny', `${first.url}/tiny.tar.gz`, dataDir, '--retries', '0'));
        expect(r1.code).toBe(0);
        expect(first.log.filter((l) => l.startsWith('RETR'))).toHaveLength(2);
        fs.rmSync(path.join(dataDir, 'tiny'), { recursive: true });

        fs.mkdirSync(path.join(dataDir, 'tiny'), { recursive: true });
        fs.writeFileSync(path.join(dataDir, 'tiny', 'tiny.tar.gz.part'), tinyTgz.subarray(0, 3000));
        const r2 = await run(fetchArgs('tiny', `${dead.url}/tiny.tar.gz`, dataDir, '--retries', '2'));
        expect(r2.code).toBe(1);
        expect(r2.err).toMatch(/gave up after 3 attempts; run again to resume/);
        expect(dead.log.filter((l) => l === 'REST 3000')).toHaveLength(3);
        expect(fs.statSync(path.join(dataDir, 'tiny', 'tiny.tar.gz.part')).size).toBe(3000);

        const r3 = await run(fetchArgs('tiny', `${good.url}/tiny.tar.gz`, dataDir));
        expect(r3.code).toBe(0);
        expect(good.log).toContain('REST 3000');
        await expectSetEqual(path.join(dataDir, 'tiny'), tiny);
      } finally {
        await Promise.all([first.close(), dead.close(), good.close()]);
      }
    },
  );

  it('FTP: a server without REST makes the client start over', { timeout: 30_000 }, async () => {
    const srv = await startFtp({ files: { '/tiny.tar.gz': tinyTgz }, noRest: true });
    try {
      const dataDir = path.join(work, 'ftp4');
      fs.mkdirSync(path.join(dataDir, 'tiny'), { recursive: true });
      fs.writeFileSync(path.join(dataDir, 'tiny', 'tiny.tar.gz.part'), randomBytes(700));
      const r = await run(fetchArgs('tiny', `${srv.url}/tiny.tar.gz`, dataDir));
      expect(r.code).toBe(0);
      expect(srv.log).toContain('REST 700');
      expect(srv.log.filter((l) => l.startsWith('RETR'))).toHaveLength(1);
      await expectSetEqual(path.join(dataDir, 'tiny'), tiny);
    } finally {
      await srv.close();
    }
  });

  it('FTP: missing remote file is a clean error without retries', { timeout: 30_000 }, async () => {
    const srv = await startFtp({ files: { '/pub/tiny.tar.gz': tinyTgz } });
    try {
      const r = await run(fetchArgs('tiny', `${srv.url}/pub/nope.tar.gz`, path.join(work, 'ftp5')));
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/no such file on the server/);
      expect(srv.log.filter((l) => l.startsWith('USER'))).toHaveLength(1);
    } finally {
      await srv.close();
    }
  });

  it('HTTP: a cut connection is resumed with a Range request', { timeout: 30_000 }, async () => {
    const cutAt = Math.floor(tinyTgz.length / 2);
    const srv = await startHttp({ files: { '/d/tiny.tar.gz': tinyTgz }, cut: { bytes: cutAt, times: 1 } });
    try {
      const dataDir = path.join(work, 'http1');
      const r = await run(fetchArgs('tiny', `${srv.url}/d/tiny.tar.gz`, dataDir));
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(srv.log).toHaveLength(2);
      expect(srv.log[0]).toBe('GET /d/tiny.tar.gz -');
      const m = /bytes=(\d+)-$/.exec(srv.log[1]!);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![1])).toBeLessThanOrEqual(cutAt);
      await expectSetEqual(path.join(dataDir, 'tiny'), tiny);
    } finally {
      await srv.close();
    }
  });

  it('HTTP: a server that ignores Range replaces a stale partial file', { timeout: 30_000 }, async () => {
    const srv = await startHttp({ files: { '/tiny.tar.gz': tinyTgz }, ignoreRange: true });
    try {
      const dataDir = path.join(work, 'http2');
      fs.mkdirSync(path.join(dataDir, 'tiny'), { recursive: true });
      fs.writeFileSync(path.join(dataDir, 'tiny', 'tiny.tar.gz.part'), randomBytes(500));
      const r = await run(fetchArgs('tiny', `${srv.url}/tiny.tar.gz`, dataDir));
      expect(r.code).toBe(0);
      expect(srv.log).toEqual(['GET /tiny.tar.gz bytes=500-']);
      await expectSetEqual(path.join(dataDir, 'tiny'), tiny);
    } finally {
      await srv.close();
    }
  });

  it('HTTP: complete partial file (416) is accepted; 404 fails at once', { timeout: 30_000 }, async () => {
    const srv = await startHttp({ files: { '/tiny.tar.gz': tinyTgz } });
    try {
      const dataDir = path.join(work, 'http3');
      fs.mkdirSync(path.join(dataDir, 'tiny'), { recursive: true });
      fs.writeFileSync(path.join(dataDir, 'tiny', 'tiny.tar.gz.part'), tinyTgz);
      const r = await run(fetchArgs('tiny', `${srv.url}/tiny.tar.gz`, dataDir));
      expect(r.code).toBe(0);
      await expectSetEqual(path.join(dataDir, 'tiny'), tiny);

      const missing = await run(fetchArgs('other', `${srv.url}/missing.tar.gz`, dataDir));
      expect(missing.code).toBe(1);
      expect(missing.err).toMatch(/HTTP 404/);
      expect(srv.log.filter((l) => l.includes('missing'))).toHaveLength(1);
    } finally {
      await srv.close();
    }
  });

  it('long member names (GNU and pax) are handled', { timeout: 30_000 }, async () => {
    const src = path.join(work, 'src-long');
    const longDir = `${'deep-directory-name-'.repeat(7)}end`; // > 100 characters
    const set = await makeTinySet(src, 'lng', { nb: 200, subdir: longDir });
    for (const format of ['gnu', 'pax'] as const) {
      const tgz = pack(src, longDir, format);
      const srv = await startHttp({ files: { '/lng.tar.gz': tgz } });
      try {
        const dataDir = path.join(work, `long-${format}`);
        const r = await run(fetchArgs('lng', `${srv.url}/lng.tar.gz`, dataDir));
        expect(r.err).toBe('');
        expect(r.code).toBe(0);
        await expectSetEqual(path.join(dataDir, 'lng'), set);
      } finally {
        await srv.close();
      }
    }
  });

  it('verifies --size and --sha256', { timeout: 30_000 }, async () => {
    const srv = await startHttp({ files: { '/tiny.tar.gz': tinyTgz } });
    try {
      const dataDir = path.join(work, 'verify');
      const badSize = await run(
        fetchArgs('tiny', `${srv.url}/tiny.tar.gz`, dataDir, '--size', String(tinyTgz.length + 1)),
      );
      expect(badSize.code).toBe(1);
      expect(badSize.err).toMatch(new RegExp(`reports ${tinyTgz.length} bytes, expected ${tinyTgz.length + 1}`));

      const badSha = await run(fetchArgs('tiny', `${srv.url}/tiny.tar.gz`, dataDir, '--sha256', '0'.repeat(64)));
      expect(badSha.code).toBe(1);
      expect(badSha.err).toMatch(/SHA-256 mismatch/);
      expect(fs.existsSync(path.join(dataDir, 'tiny', 'tiny.tar.gz.part'))).toBe(false);

      const sha = (await import('node:crypto')).createHash('sha256').update(tinyTgz).digest('hex');
      const ok = await run(
        fetchArgs(
          'tiny',
          `${srv.url}/tiny.tar.gz`,
          dataDir,
          '--sha256',
          sha.toUpperCase(),
          '--size',
          String(tinyTgz.length),
        ),
      );
      expect(ok.code).toBe(0);
      await expectSetEqual(path.join(dataDir, 'tiny'), tiny);
    } finally {
      await srv.close();
    }
  });

  it('rejects corrupt archives and bad vector files inside them', { timeout: 30_000 }, async () => {
    const src = path.join(work, 'src-bad');
    await makeTinySet(src, 'bad', { nb: 100 });
    const basePath = path.join(src, 'bad', 'bad_base.fvecs');
    fs.truncateSync(basePath, fs.statSync(basePath).size - 10);
    const badTgz = pack(src, 'bad');
    const truncatedTgz = tinyTgz.subarray(0, Math.floor(tinyTgz.length * 0.7));
    const srv = await startHttp({
      files: {
        '/bad.tar.gz': badTgz,
        '/tiny.tar.gz': tinyTgz,
        '/junk.tar.gz': randomBytes(4000),
        '/trunc.tar.gz': truncatedTgz,
      },
    });
    try {
      const dataDir = path.join(work, 'corrupt');
      const bad = await run(fetchArgs('bad', `${srv.url}/bad.tar.gz`, dataDir));
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(/base\.fvecs: truncated record.*byte offset 6732/);

      const junk = await run(fetchArgs('junk', `${srv.url}/junk.tar.gz`, dataDir));
      expect(junk.code).toBe(1);
      expect(junk.err).toMatch(/not a tar archive/);

      const trunc = await run(fetchArgs('trunc', `${srv.url}/trunc.tar.gz`, dataDir));
      expect(trunc.code).toBe(1);
      expect(trunc.err).toMatch(/corrupt gzip data|truncated/);
      expect(fs.readdirSync(path.join(dataDir, 'trunc')).filter((f) => f.endsWith('.partial'))).toEqual([]);

      // a known name enforces the published shapes
      const wrong = await run(fetchArgs('siftsmall', `${srv.url}/tiny.tar.gz`, dataDir));
      expect(wrong.code).toBe(1);
      expect(wrong.err).toMatch(/3000 x 16 fvecs, but siftsmall base is 10000 x 128 fvecs/);
    } finally {
      await srv.close();
    }
  });

  it(
    'the genuine siftsmall files served as a texmex-style archive pass the strict checks',
    { timeout: 60_000 },
    async () => {
      const src = path.join(work, 'src-siftsmall');
      const d = path.join(src, 'siftsmall');
      fs.mkdirSync(d, { recursive: true });
      for (const f of ['base.fvecs', 'query.fvecs', 'groundtruth.ivecs']) {
        fs.copyFileSync(path.join(repoRoot, 'datasets/siftsmall', f), path.join(d, `siftsmall_${f}`));
      }
      const tgz = pack(src, 'siftsmall');
      const srv = await startFtp({
        files: { '/local/texmex/corpus/siftsmall.tar.gz': tgz },
        cut: { bytes: 300_000, times: 2 },
      });
      try {
        const dataDir = path.join(work, 'real');
        const r = await run(
          fetchArgs('siftsmall', `${srv.url}/local/texmex/corpus/siftsmall.tar.gz`, dataDir, '--skip-learn'),
        );
        expect(r.err).toBe('');
        expect(r.code).toBe(0);
        expect(srv.log.filter((l) => l.startsWith('REST'))).toHaveLength(2);
        const out = path.join(dataDir, 'siftsmall');
        for (const f of ['base.fvecs', 'query.fvecs', 'groundtruth.ivecs']) {
          expect(
            fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(repoRoot, 'datasets/siftsmall', f))),
          ).toBe(true);
        }
        // without --skip-learn the official layout needs the learn set
        const strict = await run(
          fetchArgs('siftsmall', `${srv.url}/local/texmex/corpus/siftsmall.tar.gz`, path.join(work, 'real2')),
        );
        expect(strict.code).toBe(1);
        expect(strict.err).toMatch(/missing the learn file/);
      } finally {
        await srv.close();
      }
    },
  );
});

describe('import and groundtruth', () => {
  it('imports texmex-named files by copy or symlink', { timeout: 30_000 }, async () => {
    const src = path.join(work, 'imp-src');
    const set = await makeTinySet(src, 'mine', { nb: 300 });
    const dataDir = path.join(work, 'imp-data');
    const r = await run(['import', path.join(src, 'mine'), '--data-dir', dataDir]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    await expectSetEqual(path.join(dataDir, 'mine'), set);
    expect(fs.lstatSync(path.join(dataDir, 'mine', 'base.fvecs')).isSymbolicLink()).toBe(false);

    const again = await run(['import', path.join(src, 'mine'), '--data-dir', dataDir]);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already exists/);

    const s = await run(['import', path.join(src, 'mine'), '--data-dir', dataDir, '--name', 'linked', '--symlink']);
    expect(s.code).toBe(0);
    expect(fs.lstatSync(path.join(dataDir, 'linked', 'base.fvecs')).isSymbolicLink()).toBe(true);
    await expectSetEqual(path.join(dataDir, 'linked'), set);

    const list = await run(['list', '--data-dir', dataDir]);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/linked\s+installed/);
    expect(list.out).toMatch(/gist\s+not installed/);
  });

  it('import checks the files and reports the bad one', async () => {
    const src = path.join(work, 'imp-bad');
    fs.mkdirSync(src, { recursive: true });
    await writeFvecs(path.join(src, 'base.fvecs'), { dim: 4, data: floats(40, 1) });
    fs.writeFileSync(
      path.join(src, 'query.fvecs'),
      Buffer.concat([fs.readFileSync(path.join(src, 'base.fvecs')), Buffer.alloc(3)]),
    );
    const r = await run(['import', src, '--data-dir', path.join(work, 'imp-bad-data')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(path.join(src, 'query.fvecs'));
    expect(r.err).toMatch(/byte offset 200/);

    fs.rmSync(path.join(src, 'query.fvecs'));
    await writeIvecs(path.join(src, 'groundtruth.ivecs'), { dim: 2, data: new Int32Array([0, 10]) });
    const gt = await run(['import', src, '--data-dir', path.join(work, 'imp-bad-data')]);
    expect(gt.code).toBe(2);
    expect(gt.err).toMatch(/id 10 at row 0, column 1 is not a base row/);

    fs.rmSync(path.join(src, 'groundtruth.ivecs'));
    await writeFvecs(path.join(src, 'x_base.fvecs'), { dim: 4, data: floats(4, 1) });
    const dup = await run(['import', src, '--data-dir', path.join(work, 'imp-bad-data')]);
    expect(dup.code).toBe(2);
    expect(dup.err).toMatch(/more than one base file/);
  });

  it('import of the bundled siftsmall under its own name passes the shape checks', async () => {
    const r = await run([
      'import',
      path.join(repoRoot, 'datasets/siftsmall'),
      '--data-dir',
      path.join(work, 'imp-sift'),
      '--symlink',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/base\.fvecs\s+10000 x 128/);
    expect(r.out).toMatch(/groundtruth\.ivecs\s+100 x 100/);
  });

  it('groundtruth computes exact neighbours with the injected exactKnn', { timeout: 30_000 }, async () => {
    const dir = path.join(work, 'gt');
    fs.mkdirSync(dir, { recursive: true });
    const base = floats(500 * 8, 7);
    const query = floats(7 * 8, 8);
    await writeFvecs(path.join(dir, 'base.fvecs'), { dim: 8, data: base });
    await writeFvecs(path.join(dir, 'query.fvecs'), { dim: 8, data: query });
    let calls = 0;
    const deps = {
      exactKnn: (async (b, q, o) => {
        calls++;
        return bruteForce(b, q, o);
      }) as ExactKnn,
    };
    const r = await run(['groundtruth', dir, '--k', '25', '--quiet'], deps);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(calls).toBe(1);
    const gt = await readIvecs(path.join(dir, 'groundtruth.ivecs'));
    expect([gt.count, gt.dim]).toEqual([7, 25]);
    expect(gt.data).toEqual((await bruteForce(base, query, { dim: 8, k: 25 })).ids);

    const exists = await run(['groundtruth', dir, '--k', '25'], deps);
    expect(exists.code).toBe(2);
    expect(exists.err).toMatch(/already exists \(use --force/);
    const tooMany = await run(['groundtruth', dir, '--k', '501', '--force'], deps);
    expect(tooMany.code).toBe(2);
    expect(tooMany.err).toMatch(/--k \(501\) must be <= the number of base vectors \(500\)/);
    const forced = await run(['groundtruth', dir, '--k', '3', '--force', '--quiet'], deps);
    expect(forced.code).toBe(0);
    expect((await readIvecs(path.join(dir, 'groundtruth.ivecs'))).dim).toBe(3);
  });
});

describe('bad command-line input', () => {
  const dataDir = (): string => path.join(work, 'cli');
  it.each([
    [[], /no command given/],
    [['nosuchset'], /unknown dataset "nosuchset"; known: siftsmall, sift, gist/],
    [['siftsmall', '--bogus'], /unknown option --bogus/],
    [['siftsmall', 'extra'], /unexpected argument "extra"/],
    [['siftsmall', '--url', 'not a url'], /--url is not a valid URL/],
    [['siftsmall', '--url', 'file:///etc/passwd'], /--url must be ftp:\/\/, http:\/\/ or https:\/\//],
    [['../escape', '--url', 'http://127.0.0.1:9/x.tar.gz'], /invalid dataset name/],
    [['siftsmall', '--retries', 'x'], /--retries must be an integer >= 0, got "x"/],
    [['siftsmall', '--sha256', 'abc'], /--sha256 must be 64 hex digits/],
    [['groundtruth', '.', '--k', '0'], /--k must be an integer >= 1, got "0"/],
    [['groundtruth'], /groundtruth needs a directory/],
    [['groundtruth', '/no/such/dir'], /not a directory/],
    [['import', '/no/such/dir'], /not a directory: \/no\/such\/dir/],
    [['import'], /import needs a directory/],
  ] as Array<[string[], RegExp]>)('%j -> exit 2', async (args, msg) => {
    const r = await run([...args, '--data-dir', dataDir()]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: [^\n]+\n$/); // one line
    expect(r.err).toMatch(msg);
  });

  it('--help prints the usage', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Usage: npm run dataset/);
  });
});
